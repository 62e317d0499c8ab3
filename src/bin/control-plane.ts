#!/usr/bin/env node
// vaultpam-control-plane: the reference VaultPAM control plane. This file is the only part of it that
// reads argv and the environment, listens on a socket and handles signals.
import { CONTROL_PLANE_FLAGS, parseControlPlaneCommandLine } from '../controlplane/config.ts';
import { startControlPlane } from '../controlplane/server.ts';
import { helpText } from '../lib/cli.ts';
import { errorMessage, isCodedError } from '../lib/errors.ts';
import { createLogger } from '../lib/logger.ts';
import { stopOnSignalOrOrphaned } from './shutdown.ts';

const PROGRAM = 'vaultpam-control-plane';
const SUMMARY =
  'Reference VaultPAM control plane: admin API for the operator (connectors, enrollment tokens, recovery, ' +
  'change stream, audit), enrollment and mTLS heartbeat/renewal for connector agents, /healthz and /metrics. ' +
  'State lives in SQLite in the data directory, next to the CA it creates on first start.';

async function main(): Promise<void> {
  let config: ReturnType<typeof parseControlPlaneCommandLine>;
  try {
    config = parseControlPlaneCommandLine(process.argv.slice(2), process.env);
  } catch (error) {
    if (!isCodedError(error)) throw error;
    process.stderr.write(`${PROGRAM}: ${error.message}\n`);
    process.exit(2);
  }
  if (config.help) {
    process.stdout.write(`${helpText(PROGRAM, SUMMARY, CONTROL_PLANE_FLAGS)}\n`);
    return;
  }
  const logger = createLogger({ name: PROGRAM, level: config.logLevel });
  const controlPlane = await startControlPlane({
    dataDir: config.dataDir,
    logger,
    host: config.host,
    port: config.port,
    heartbeatIntervalSeconds: config.heartbeatIntervalSeconds,
    offlineAfterSeconds: config.offlineAfterSeconds,
    certificateLifetimeSeconds: config.certificateLifetimeSeconds,
    keepAliveTimeoutSeconds: config.keepAliveTimeoutSeconds,
    maxConnectionsPerAddress: config.maxConnectionsPerAddress,
    ...(config.maxConnections === undefined ? {} : { maxConnections: config.maxConnections }),
    sanUriPrefix: config.sanUriPrefix,
    serverHostnames: config.serverHostnames,
    adminCredentials: config.adminCredentials,
    processMetrics: true,
  });
  logger.info(
    {
      dataDir: config.dataDir,
      adminCredentialPath: controlPlane.adminCredentialPath ?? config.adminCredentialFile,
      heartbeatIntervalSeconds: config.heartbeatIntervalSeconds,
      offlineAfterSeconds: config.offlineAfterSeconds,
    },
    'configuration',
  );
  stopOnSignalOrOrphaned(
    async () => {
      logger.info('shutdown signal received');
      await controlPlane.close();
    },
    (code) => {
      logger.flush();
      process.exit(code);
    },
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`${PROGRAM}: ${errorMessage(error)}\n`);
  process.exit(1);
});
