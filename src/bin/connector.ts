#!/usr/bin/env node
// vaultpam-connector: the reference connector agent. This file is the only part of the agent that
// reads argv and the environment, listens on a socket by default configuration and handles signals.
import packageJson from '../../package.json' with { type: 'json' };
import { startAgent } from '../agent/agent.ts';
import { AGENT_FLAGS, parseAgentCommandLine, terminationLogFrom } from '../agent/config.ts';
import { reportFailClosed } from '../agent/fail-closed.ts';
import { type AgentFailure, configurationFailure, isAgentFailure } from '../agent/failure.ts';
import { type HealthServer, startHealthServer } from '../agent/health-server.ts';
import { helpText } from '../lib/cli.ts';
import { systemClock } from '../lib/clock.ts';
import { errorMessage, fsErrorCode } from '../lib/errors.ts';
import { createLogger, type Logger } from '../lib/logger.ts';
import { stopOnSignalOrOrphaned } from './shutdown.ts';

const PROGRAM = 'vaultpam-connector';
const SUMMARY =
  'Reference VaultPAM connector agent: enrolls once with a single-use token, persists its identity in the ' +
  'data directory, then heartbeats and renews its certificate over mTLS. Fails closed with exit codes ' +
  '10-14 and a termination message when the runbook says recovery is needed.';

async function failBeforeStart(
  logger: Logger,
  terminationLog: string,
  failure: AgentFailure,
): Promise<never> {
  await reportFailClosed(failure, logger, terminationLog);
  logger.flush();
  process.exit(failure.exitCode);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let parsed: ReturnType<typeof parseAgentCommandLine>;
  try {
    parsed = parseAgentCommandLine(argv, process.env);
  } catch (error) {
    const logger = createLogger({ name: PROGRAM });
    if (!isAgentFailure(error)) throw error;
    return failBeforeStart(logger, terminationLogFrom(argv, process.env), error);
  }
  if (parsed.help) {
    process.stdout.write(`${helpText(PROGRAM, SUMMARY, AGENT_FLAGS)}\n`);
    return;
  }
  const { config } = parsed;
  const logger = createLogger({ name: PROGRAM, level: config.logLevel });
  logger.info(
    {
      connectorId: config.connectorId,
      controlPlaneUrl: config.controlPlaneUrl,
      dataDir: config.dataDir,
      version: packageJson.version,
    },
    'starting',
  );

  let agent: ReturnType<typeof startAgent> | undefined;
  let health: HealthServer;
  try {
    health = await startHealthServer({
      host: config.healthListen.host,
      port: config.healthListen.port,
      readiness: () =>
        agent?.readiness() ?? {
          ready: false,
          lastHeartbeatAt: null,
          state: 'not ready (starting)',
          lastReportedState: null,
          detail: 'starting',
        },
    });
  } catch (error) {
    return failBeforeStart(
      logger,
      config.terminationLog,
      configurationFailure(
        `--health-listen (env VAULTPAM_HEALTH_LISTEN) ${config.healthListen.host}:${config.healthListen.port} ` +
          `cannot be used: ${fsErrorCode(error)}`,
      ),
    );
  }
  logger.info({ url: health.url }, 'health probes listening on /healthz and /readyz');

  const running = startAgent({
    config,
    logger,
    clock: systemClock,
    agentVersion: `${PROGRAM}/${packageJson.version}`,
  });
  agent = running;
  const exit = (code: number) => {
    logger.flush();
    process.exit(code);
  };
  let signalled = false;
  stopOnSignalOrOrphaned(async () => {
    signalled = true;
    logger.info('shutdown signal received');
    await running.stop();
    await health.close();
  }, exit);
  const outcome = await running.done;
  await health.close();
  // After a signal, the signal handler exits (0 for SIGTERM, 130 for SIGINT).
  if (!signalled) exit(outcome.exitCode);
}

main().catch((error: unknown) => {
  process.stderr.write(`${PROGRAM}: unexpected error: ${errorMessage(error)}\n`);
  process.exit(1);
});
