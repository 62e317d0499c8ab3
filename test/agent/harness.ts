// End-to-end harness: the real control plane in-process on 127.0.0.1:0, its admin client, real temp
// data directories, and the real agent with its logs captured for assertions and secret scans.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { type AgentDependencies, type RunningAgent, startAgent } from '../../src/agent/agent.ts';
import { type AgentConfig, DEFAULT_SAN_URI_PREFIX } from '../../src/agent/config.ts';
import { type AgentApi, ControlPlaneClient } from '../../src/agent/control-plane-client.ts';
import { identityPaths } from '../../src/agent/identity-files.ts';
import {
  type ControlPlaneOptions,
  type StartedControlPlane,
  startControlPlane,
  usableAdminCredential,
} from '../../src/controlplane/server.ts';
import { ShiftedClock, systemClock } from '../../src/lib/clock.ts';
import { ControlPlaneAdminClient } from '../../src/operator/control-plane/admin-client.ts';
import { type CapturedLogs, captureLogs } from '../helpers/log-capture.ts';
import { tempDir } from './fixtures.ts';

/** Polls `condition` every `intervalMs` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  description: string,
  condition: () => T | Promise<T>,
  { timeoutMs = 15_000, intervalMs = 25 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${description}${last ? `: ${String(last)}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export interface TestControlPlane {
  cp: StartedControlPlane;
  admin: ControlPlaneAdminClient;
  caFile: string;
  dataDir: string;
  clock: ShiftedClock;
  options: Partial<ControlPlaneOptions>;
}

export async function startTestControlPlane(
  t: ExecutionContext,
  options: Partial<ControlPlaneOptions> & { port?: number } = {},
): Promise<TestControlPlane> {
  const dataDir = await tempDir(t, 'vaultpam-cp-');
  const clock = new ShiftedClock();
  const cp = await startControlPlane({
    dataDir,
    host: '127.0.0.1',
    port: 0,
    clock,
    heartbeatIntervalSeconds: 1,
    ...options,
  });
  const admin = new ControlPlaneAdminClient({
    url: cp.url,
    caPem: cp.caPem,
    credential: usableAdminCredential(cp),
  });
  t.teardown(async () => {
    admin.close();
    await cp.close();
  });
  const caFile = join(dataDir, 'trusted-ca.pem');
  await writeFile(caFile, cp.caPem);
  return { cp, admin, caFile, dataDir, clock, options };
}

/** Restarts a stopped control plane on the same port with the same data directory. */
export async function restartControlPlane(
  t: ExecutionContext,
  previous: TestControlPlane,
): Promise<StartedControlPlane> {
  const port = Number(new URL(previous.cp.url).port);
  const cp = await startControlPlane({
    dataDir: previous.dataDir,
    host: '127.0.0.1',
    port,
    clock: previous.clock,
    heartbeatIntervalSeconds: 1,
    ...previous.options,
  });
  t.teardown(() => cp.close());
  return cp;
}

export const CONNECTOR_CONFIG = { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] };

/** Creates the connector record and mints a token into `<dir>/token`; returns the token and its file. */
export async function prepareConnector(
  t: ExecutionContext,
  control: TestControlPlane,
  connectorId: string,
): Promise<{ token: string; tokenFile: string; dataDir: string }> {
  await control.admin.ensureConnector(connectorId, CONNECTOR_CONFIG);
  const minted = await control.admin.mintToken(connectorId, { idempotencyKey: `key-${connectorId}` });
  const secretDir = await tempDir(t, 'vaultpam-token-');
  const tokenFile = join(secretDir, 'token');
  await writeFile(tokenFile, minted.token, { mode: 0o600 });
  const dataDir = await tempDir(t, 'vaultpam-data-');
  await mkdir(dataDir, { recursive: true });
  return { token: minted.token, tokenFile, dataDir };
}

export function agentConfig(
  overrides: Partial<AgentConfig> &
    Pick<AgentConfig, 'connectorId' | 'controlPlaneUrl' | 'dataDir' | 'terminationLog'>,
): AgentConfig {
  return {
    caFile: undefined,
    tokenFile: undefined,
    healthListen: { host: '127.0.0.1', port: 0 },
    heartbeatIntervalMs: 100,
    renewAtFraction: 0.5,
    pathChecks: [],
    giveUpAfterMs: 0,
    // As the flag's default (5m): longer than any test that does not set it.
    giveUpOnRefusalAfterMs: 300_000,
    retryInitialMs: 20,
    retryMaxMs: 200,
    requestTimeoutMs: 5_000,
    sanUriPrefix: DEFAULT_SAN_URI_PREFIX,
    logLevel: 'debug',
    ...overrides,
  };
}

export interface RequestCounts {
  enroll: number;
  heartbeat: number;
  renew: number;
}

export interface TestAgent {
  agent: RunningAgent;
  logs: CapturedLogs;
  counts: RequestCounts;
}

/** Starts the real agent in-process; counts the requests it makes; stops it when the test ends. */
export function runAgent(
  t: ExecutionContext,
  config: AgentConfig,
  extra: Partial<AgentDependencies> = {},
): TestAgent {
  const logs = captureLogs('vaultpam-connector', 'debug');
  const counts: RequestCounts = { enroll: 0, heartbeat: 0, renew: 0 };
  const createClient = (options: ConstructorParameters<typeof ControlPlaneClient>[0]): AgentApi => {
    const client = new ControlPlaneClient(options);
    return {
      enroll: (body) => {
        counts.enroll += 1;
        return client.enroll(body);
      },
      heartbeat: (body) => {
        counts.heartbeat += 1;
        return client.heartbeat(body);
      },
      renew: (body) => {
        counts.renew += 1;
        return client.renew(body);
      },
      setIdentity: (identity) => client.setIdentity(identity),
      close: () => client.close(),
    };
  };
  const agent = startAgent({
    config,
    logger: logs.logger,
    clock: systemClock,
    createClient,
    ...extra,
  });
  t.teardown(async () => {
    await agent.stop();
  });
  return { agent, logs, counts };
}

/** Log records whose message matches. */
export function recordsMatching(logs: CapturedLogs, pattern: RegExp): Array<Record<string, unknown>> {
  return logs.records().filter((record) => pattern.test(String(record.msg)));
}

/** The agent configuration of a prepared connector: its token file and data directory, the termination log in it. */
export function configFor(
  control: TestControlPlane,
  connectorId: string,
  files: { tokenFile: string; dataDir: string },
): AgentConfig {
  return agentConfig({
    connectorId,
    controlPlaneUrl: control.cp.url,
    caFile: control.caFile,
    tokenFile: files.tokenFile,
    dataDir: files.dataDir,
    terminationLog: join(files.dataDir, 'termination-log'),
  });
}

/** A connector paired by a real agent, which is then stopped: its identity is on disk, its token spent. */
export async function enrolledConnector(t: ExecutionContext, control: TestControlPlane, connectorId: string) {
  const prepared = await prepareConnector(t, control, connectorId);
  const config = configFor(control, connectorId, prepared);
  const first = runAgent(t, config);
  await waitFor('retired', async () => (await control.admin.getConnector(connectorId)).bootstrapRetired);
  t.is((await first.agent.stop()).exitCode, 0);
  const keyPem = await readFile(identityPaths(prepared.dataDir).key, 'utf8');
  return { ...prepared, config, keyPem };
}
