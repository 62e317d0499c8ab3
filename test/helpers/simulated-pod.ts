// Plays the connector pod for operator tests that run without the local pod runner: reads the token
// from the operator's Secret exactly as the mounted file would hold it, and runs the real agent
// in-process against the real control plane with a real data directory.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { type AgentDependencies, type RunningAgent, startAgent } from '../../src/agent/agent.ts';
import { DEFAULT_SAN_URI_PREFIX } from '../../src/agent/config.ts';
import { systemClock } from '../../src/lib/clock.ts';
import { silentLogger } from '../../src/lib/logger.ts';

export interface SimulatedPod {
  dataDir: string;
  agent: RunningAgent;
  /** The file the agent writes its termination message to (the pod's /dev/termination-log). */
  terminationLog: string;
  stop(): Promise<void>;
}

/** Writes the Secret's token (if any) to a file and starts the agent with it. */
export async function runAgentFromSecret(options: {
  kc: KubeConfig;
  namespace: string;
  secretName: string;
  connectorId: string;
  controlPlaneUrl: string;
  caPem: string;
  dataDir?: string;
  /** Wraps the control-plane client, to set a fault up while a request is on its way. */
  createClient?: AgentDependencies['createClient'];
  /** The agent's --give-up-on-refusal-after; its default (5 minutes) otherwise. */
  giveUpOnRefusalAfterMs?: number;
}): Promise<SimulatedPod> {
  const dir = await mkdtemp(join(tmpdir(), 'vaultpam-pod-'));
  const dataDir = options.dataDir ?? join(dir, 'data');
  const caFile = join(dir, 'ca.crt');
  await writeFile(caFile, options.caPem);
  const tokenFile = join(dir, 'token');
  const secret = await options.kc
    .makeApiClient(CoreV1Api)
    .readNamespacedSecret({ namespace: options.namespace, name: options.secretName })
    .catch(() => undefined);
  const encoded = secret?.data?.token;
  if (encoded) await writeFile(tokenFile, Buffer.from(encoded, 'base64'), { mode: 0o600 });
  const terminationLog = join(dir, 'termination-log');
  const agent = startAgent({
    ...(options.createClient ? { createClient: options.createClient } : {}),
    clock: systemClock,
    logger: silentLogger(),
    config: {
      connectorId: options.connectorId,
      controlPlaneUrl: options.controlPlaneUrl,
      caFile,
      tokenFile,
      dataDir,
      terminationLog,
      healthListen: { host: '127.0.0.1', port: 0 },
      heartbeatIntervalMs: 300,
      renewAtFraction: 0.5,
      pathChecks: [],
      giveUpAfterMs: 0,
      giveUpOnRefusalAfterMs: options.giveUpOnRefusalAfterMs ?? 300_000,
      retryInitialMs: 50,
      retryMaxMs: 500,
      requestTimeoutMs: 5_000,
      sanUriPrefix: DEFAULT_SAN_URI_PREFIX,
      logLevel: 'silent',
    },
  });
  return {
    dataDir,
    agent,
    terminationLog,
    async stop() {
      await agent.stop();
      if (!options.dataDir) await rm(dir, { recursive: true, force: true });
    },
  };
}
