// The agent's run loop: start (the CA file, what an interrupted write left, the identity or a first
// boot), then heartbeat until stopped, replacing a refused identity at most once on the way. It ends
// in one of three ways: stopped (exit 0), failed closed (exit 10-14, with the log line and the
// termination message) or an unexpected error (exit 1). A certificate only in memory gets one last
// save on every way out.
import { readFile } from 'node:fs/promises';
import { errorMessage } from '../lib/errors.ts';
import type { AgentApi, ControlPlaneClientOptions } from './control-plane-client.ts';
import type { Enrollment } from './enrollment.ts';
import { reportFailClosed } from './fail-closed.ts';
import {
  type AgentFailure,
  configurationFailure,
  EXIT_CODES,
  isAgentFailure,
  scrubSecrets,
} from './failure.ts';
import type { HeartbeatLoop } from './heartbeat-loop.ts';
import { identityPaths } from './identity-files.ts';
import type { IdentityInUse } from './identity-in-use.ts';
import { removeStrayTempFiles } from './identity-write.ts';
import { isIdentityLost, type RecoveryToken, ReplaceRefusedIdentity } from './recovery-token.ts';
import { type AgentSession, StopRequested } from './session.ts';
import { tokenFilePresent } from './token-file.ts';

export interface AgentOutcome {
  exitCode: number;
  failure: AgentFailure | undefined;
}

export class AgentLifecycle {
  /** Settles when the agent stops: clean stop (exit 0) or fail closed (exit 10-14). */
  readonly done: Promise<AgentOutcome>;
  private readonly session: AgentSession;
  private readonly identity: IdentityInUse;
  private readonly enrollment: Enrollment;
  private readonly recoveryToken: RecoveryToken;
  private readonly heartbeats: HeartbeatLoop;
  private readonly createClient: (options: ControlPlaneClientOptions) => AgentApi;

  constructor(parts: {
    session: AgentSession;
    identity: IdentityInUse;
    enrollment: Enrollment;
    recoveryToken: RecoveryToken;
    heartbeats: HeartbeatLoop;
    createClient: (options: ControlPlaneClientOptions) => AgentApi;
  }) {
    this.session = parts.session;
    this.identity = parts.identity;
    this.enrollment = parts.enrollment;
    this.recoveryToken = parts.recoveryToken;
    this.heartbeats = parts.heartbeats;
    this.createClient = parts.createClient;
    this.done = this.run();
  }

  /** Stops heartbeating, closes connections and resolves with exit code 0. */
  async stop(): Promise<AgentOutcome> {
    if (this.session.requestStop()) {
      this.session.logger.info('stopping: closing the control-plane connection');
      // Destroying the sockets aborts an in-flight request; the loop sees the stop and ends.
      this.session.client?.close();
    }
    return this.done;
  }

  private async run(): Promise<AgentOutcome> {
    const { session } = this;
    try {
      await this.startAndHeartbeat();
      await this.identity.saveBeforeExit();
      return this.stopped();
    } catch (error) {
      await this.identity.saveBeforeExit();
      if (error instanceof StopRequested || (session.stopRequested && !isAgentFailure(error))) {
        return this.stopped();
      }
      if (isAgentFailure(error)) return this.failClosed(error);
      session.status.phase = 'failed';
      session.logger.error(
        { code: 'INTERNAL_ERROR', err: scrubSecrets(errorMessage(error)) },
        'unexpected agent error',
      );
      session.client?.close();
      return { exitCode: 1, failure: undefined };
    }
  }

  private stopped(): AgentOutcome {
    this.session.status.phase = 'stopped';
    this.session.client?.close();
    this.session.logger.info('stopped');
    return { exitCode: EXIT_CODES.clean, failure: undefined };
  }

  private async failClosed(failure: AgentFailure): Promise<AgentOutcome> {
    this.session.status.phase = 'failed';
    this.session.client?.close();
    await reportFailClosed(failure, this.session.logger, this.session.config.terminationLog);
    return { exitCode: failure.exitCode, failure };
  }

  private async startAndHeartbeat(): Promise<void> {
    await this.start();
    for (;;) {
      this.session.status.phase = 'connecting';
      try {
        await this.heartbeats.run();
        return;
      } catch (error) {
        // Lost while running (key or certificate deleted): remembered, so a later start can tell a
        // recovery's token from one that was already mounted.
        if (isIdentityLost(error)) await this.recoveryToken.onIdentityLost(error, { atStart: false });
        if (!(error instanceof ReplaceRefusedIdentity)) throw error;
        await this.recoveryToken.replaceRefused(error.refusal, error.evidence);
      }
    }
  }

  /** Loads the identity (or pairs once on a first boot) and sets up the control-plane client. */
  private async start(): Promise<void> {
    const { config, logger } = this.session;
    const caPem = await readCaFile(config.caFile);
    const strays = await removeStrayTempFiles(config.dataDir).catch((error: unknown) => {
      throw configurationFailure(
        `data directory ${config.dataDir} (--data-dir, env PAM_AGENT_DATA_DIR) cannot be read: ${errorMessage(error)}`,
      );
    });
    if (strays.length > 0) {
      logger.info({ files: strays }, 'removed temporary files left by an interrupted write');
    }
    const loaded = await this.recoveryToken.loadOrReplaceLost();
    // The control plane is verified with --ca-file, else the identity's ca.pem, else the system roots.
    const identityCaPem = loaded.kind === 'present' ? loaded.identity.caPem : undefined;
    this.session.client = this.createClient({
      baseUrl: config.controlPlaneUrl,
      caPem: caPem ?? identityCaPem,
      caFile: caPem ? config.caFile : identityCaPem ? identityPaths(config.dataDir).ca : undefined,
      requestTimeoutMs: config.requestTimeoutMs,
      clock: this.session.clock,
    });
    if (loaded.kind === 'absent') {
      await this.enrollment.enroll(loaded.pendingKeyPem);
      return;
    }
    for (const note of loaded.notes) logger.warn(note);
    await this.identity.useLoaded(loaded.identity);
    logger.info(
      {
        connectorId: config.connectorId,
        serial: loaded.identity.facts.serial,
        notAfter: loaded.identity.metadata.notAfter,
      },
      'loaded the persisted identity; reconnecting over mTLS without a token',
    );
    if (await tokenFilePresent(config.tokenFile)) {
      logger.info(
        { tokenFile: config.tokenFile },
        'an enrollment token file is present but not used: this connector already has an identity',
      );
    }
  }
}

async function readCaFile(caFile: string | undefined): Promise<string | undefined> {
  if (!caFile) return undefined;
  let text: string;
  try {
    text = await readFile(caFile, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw configurationFailure(
      `--ca-file (env VAULTPAM_CA_FILE) ${caFile} cannot be read: ${code === 'ENOENT' ? 'no such file' : (code ?? errorMessage(error))}`,
    );
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw configurationFailure(`--ca-file (env VAULTPAM_CA_FILE) ${caFile} holds no PEM certificate`);
  }
  return text;
}
