// The agent lifecycle with injected fakes: a FakeClock whose timers the test fires, fixed jitter
// and a scripted control-plane client. Real files and real certificates; no network, no waiting
// on wall-clock time for backoff, give-up or renewal.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { startAgent } from '../../src/agent/agent.ts';
import type { AgentConfig } from '../../src/agent/config.ts';
import type {
  AgentApi,
  CertificateAnswer,
  EnrollAnswer,
  EnrollRequest,
  HeartbeatAnswer,
  HeartbeatRequest,
} from '../../src/agent/control-plane-client.ts';
import { identityPaths } from '../../src/agent/identity-files.ts';
import { saveIdentity } from '../../src/agent/identity-write.ts';
import { backoffDelay } from '../../src/lib/backoff.ts';
import { FakeClock } from '../../src/lib/clock.ts';
import { CodedError } from '../../src/lib/errors.ts';
import { issueCertificatePem, parseCertificateFacts, verifyCsrPem } from '../../src/lib/pki.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import { issueConnectorCert, makeCa, type TestCa, tempDir } from './fixtures.ts';
import { agentConfig, waitFor } from './harness.ts';

const connectorId = 'unit.agent';
const token = 'vpe_0123456789abcdef_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZn';
let ca: TestCa;

test.before(async () => {
  ca = await makeCa('Unit CA');
});

/** A fake clock that records every delay the agent waits for. */
class RecordingClock extends FakeClock {
  delays: number[] = [];

  override setTimeout(callback: () => void, milliseconds: number): number {
    this.delays.push(milliseconds);
    return super.setTimeout(callback, milliseconds);
  }

  /** Waits until the agent schedules its next wake-up, then moves the clock to it. */
  async fire(): Promise<number> {
    await waitFor('a scheduled timer', () => this.pendingTimers > 0, { intervalMs: 2 });
    const due = this.nextDueIn() ?? 0;
    this.advance(due);
    return due;
  }
}

const refused = () =>
  new CodedError('CONNECTION_REFUSED', 'connection refused by cp:443', {
    temporary: true,
    details: { host: 'cp:443', transport: true },
  });

type Step<T> = T | CodedError;

/** A scripted client: each call takes the next step of its script (the last one repeats). */
class ScriptedClient implements AgentApi {
  calls = { enroll: 0, heartbeat: 0, renew: 0 };
  heartbeats: HeartbeatRequest[] = [];
  enrollScript: Array<Step<'issue'>> = [];
  heartbeatScript: Array<Step<HeartbeatAnswer>> = [];
  renewScript: Array<Step<'issue'>> = [];
  clock: FakeClock;

  constructor(clock: FakeClock) {
    this.clock = clock;
  }

  private take<T>(script: Array<Step<T>>, index: number): T {
    const step = script[Math.min(index, script.length - 1)];
    if (step === undefined) throw new Error('empty script');
    if (step instanceof CodedError) throw step;
    return step;
  }

  private issue(csrPem: string): CertificateAnswer {
    const now = this.clock.now();
    const certPem = issueCertificatePem({
      issuerKeyPem: ca.keyPem,
      issuerCertPem: ca.certPem,
      subjectPublicKey: verifyCsrPem(csrPem).publicKey,
      subject: [{ shortName: 'CN', value: connectorId }],
      notBefore: now,
      notAfter: new Date(now.getTime() + 3_600_000),
      sanUris: [`spiffe://vaultpam.local/connector/${connectorId}`],
      extendedKeyUsage: ['clientAuth'],
    });
    const facts = parseCertificateFacts(certPem);
    return {
      certificatePem: certPem,
      caPem: ca.certPem,
      serial: facts.serial,
      notAfter: facts.notAfter.toISOString(),
    };
  }

  async enroll(body: EnrollRequest): Promise<EnrollAnswer> {
    this.take(this.enrollScript, this.calls.enroll++);
    return { ...this.issue(body.csrPem), heartbeatIntervalSeconds: 10 };
  }

  async heartbeat(body: HeartbeatRequest): Promise<HeartbeatAnswer> {
    this.heartbeats.push(body);
    return this.take(this.heartbeatScript, this.calls.heartbeat++);
  }

  async renew(body: { csrPem: string }): Promise<CertificateAnswer> {
    this.take(this.renewScript, this.calls.renew++);
    return this.issue(body.csrPem);
  }

  setIdentity(): void {}
  close(): void {}
}

const accepted: HeartbeatAnswer = {
  state: 'online',
  heartbeatIntervalSeconds: 10,
  renewAfter: '2030-01-01T00:00:00Z',
};

async function setup(t: ExecutionContext, overrides: Partial<AgentConfig> = {}, { enrolled = true } = {}) {
  const dataDir = await tempDir(t);
  const clock = new RecordingClock(Date.now());
  if (enrolled) {
    const { keyPem, certPem } = await issueConnectorCert(ca, {
      connectorId,
      notBefore: clock.now(),
      notAfter: new Date(clock.now().getTime() + 3_600_000),
    });
    const facts = parseCertificateFacts(certPem);
    await saveIdentity(dataDir, {
      keyPem,
      certPem,
      caPem: ca.certPem,
      metadata: {
        connectorId,
        serial: facts.serial,
        notAfter: facts.notAfter.toISOString(),
        enrolledAt: clock.now().toISOString(),
        controlPlaneUrl: 'https://cp.example',
      },
    });
  }
  const tokenFile = join(dataDir, 'token');
  await writeFile(tokenFile, token);
  const config = agentConfig({
    connectorId,
    controlPlaneUrl: 'https://cp.example',
    dataDir,
    tokenFile,
    terminationLog: join(dataDir, 'termination-log'),
    heartbeatIntervalMs: undefined,
    retryInitialMs: 1000,
    retryMaxMs: 8000,
    ...overrides,
  });
  const client = new ScriptedClient(clock);
  const logs = captureLogs('unit', 'debug');
  const start = () => {
    const agent = startAgent({
      config,
      logger: logs.logger,
      clock,
      random: () => 0.5,
      createClient: () => client,
      probe: async (target) => ({ name: target.name, healthy: false, detail: 'probe says down' }),
    });
    t.teardown(() => agent.stop());
    return agent;
  };
  return { clock, client, logs, config, start, dataDir };
}

test('reconnect failures back off exponentially with jitter, then the control-plane interval takes over', async (t) => {
  const { clock, client, logs, start } = await setup(t);
  client.heartbeatScript = [refused(), refused(), refused(), accepted];
  const agent = start();
  for (let i = 0; i < 4; i++) await clock.fire();
  const policy = { baseMs: 1000, capMs: 8000, jitter: 'equal', random: () => 0.5 } as const;
  t.deepEqual(clock.delays.slice(0, 4), [1, 2, 3].map((n) => backoffDelay(n, policy)).concat(10_000));
  t.is(client.calls.enroll, 0, 'a reconnect failure never uses the token');
  t.is(agent.status().phase, 'connected');
  t.true(agent.readiness().ready);
  clock.advance(30_001);
  t.false(agent.readiness().ready, 'not ready once three intervals pass without an accepted heartbeat');
  t.is(logs.records().filter((r) => r.msg === 'connected: heartbeat accepted over mTLS').length, 1);
  t.is((await agent.stop()).exitCode, 0);
});

test('heartbeats carry the tunnel and every extra path with its health', async (t) => {
  const { client, start } = await setup(t, { pathChecks: [{ name: 'db', host: '10.0.0.5', port: 5432 }] });
  client.heartbeatScript = [accepted];
  const agent = start();
  await waitFor('a heartbeat', () => client.heartbeats.length >= 1);
  t.deepEqual(client.heartbeats[0]?.paths, [
    { name: 'tunnel', healthy: true, detail: 'mTLS session established' },
    { name: 'db', healthy: false, detail: 'probe says down' },
  ]);
  await agent.stop();
});

test('the give-up time is measured on the injected clock and ends with exit 14', async (t) => {
  const { clock, client, start } = await setup(t, { giveUpAfterMs: 10_000 });
  client.heartbeatScript = [refused()];
  const agent = start();
  const startedAt = clock.now().getTime();
  while (agent.status().phase !== 'failed') {
    await Promise.race([clock.fire(), agent.done]);
  }
  const outcome = await agent.done;
  t.is(outcome.exitCode, 14);
  t.is(outcome.failure?.failureClass, 'Reconnect');
  t.true(clock.now().getTime() - startedAt >= 10_000);
  t.true(client.calls.heartbeat >= 3);
  t.is(client.calls.enroll, 0);
});

test('first boot: a 5xx enrollment answer is retried, then the identity is persisted and used', async (t) => {
  const { clock, client, logs, start, dataDir } = await setup(t, {}, { enrolled: false });
  client.enrollScript = [
    new CodedError('HTTP_503', 'restarting', { httpStatus: 503, temporary: true }),
    'issue',
  ];
  client.heartbeatScript = [accepted];
  const agent = start();
  await clock.fire();
  await waitFor('connected', () => agent.status().phase === 'connected');
  t.is(client.calls.enroll, 2);
  const metadata = JSON.parse(await readFile(identityPaths(dataDir).metadata, 'utf8')) as { serial: string };
  t.is(agent.status().serial, metadata.serial);
  const keyPem = await readFile(identityPaths(dataDir).key, 'utf8');
  assertNoSecrets(t, 'agent logs', logs.text(), [token, keyPem]);
});

test('first boot: after a temporary failure, a refused token stops everything (exactly two requests)', async (t) => {
  const { clock, client, start } = await setup(t, {}, { enrolled: false });
  client.enrollScript = [
    new CodedError('HTTP_502', 'bad gateway', { httpStatus: 502, temporary: true }),
    new CodedError('ENROLLMENT_TOKEN_INVALID', 'the enrollment token was already used', { httpStatus: 401 }),
  ];
  const agent = start();
  await clock.fire();
  const outcome = await agent.done;
  t.is(outcome.exitCode, 11);
  t.is(outcome.failure?.code, 'ENROLLMENT_TOKEN_INVALID');
  t.is(client.calls.enroll, 2);
  t.is(clock.pendingTimers, 0, 'nothing left scheduled');
});

test('a rejected client certificate fails closed with exit 13', async (t) => {
  const { client, start } = await setup(t);
  client.heartbeatScript = [
    new CodedError('CLIENT_CERTIFICATE_REJECTED', 'the certificate was revoked', { httpStatus: 401 }),
  ];
  const outcome = await start().done;
  t.is(outcome.exitCode, 13);
  t.is(outcome.failure?.code, 'IDENTITY_REJECTED');
});

test('renewal waits for the fraction, a failed renewal is retried at the next heartbeat, and the result is persisted', async (t) => {
  const { clock, client, logs, start, dataDir } = await setup(t, {
    renewAtFraction: 0.5,
    heartbeatIntervalMs: 60_000,
  });
  // A control plane that gives no renewAfter: the fraction decides (its renewAfter would win).
  const { renewAfter: _none, ...withoutRenewAfter } = accepted;
  client.heartbeatScript = [withoutRenewAfter];
  client.renewScript = [new CodedError('HTTP_503', 'busy', { httpStatus: 503, temporary: true }), 'issue'];
  const agent = start();
  const serialBefore = await waitFor('loaded', () => agent.status().serial);
  // A one-hour certificate, heartbeats every minute on the fake clock: nothing to renew for 30 min.
  const dueAt = (agent.status().notAfter?.getTime() ?? 0) - 1_800_000;
  while (clock.now().getTime() < dueAt) {
    t.is(client.calls.renew, 0);
    await clock.fire();
  }
  await clock.fire();
  await waitFor('renewed', () => agent.status().renewals === 1);
  t.is(client.calls.renew, 2, 'one failed attempt, one retry at the next heartbeat');
  t.is(logs.records().filter((r) => String(r.msg).startsWith('certificate renewal failed')).length, 1);
  const onDisk = parseCertificateFacts(await readFile(identityPaths(dataDir).cert, 'utf8'));
  t.not(onDisk.serial, serialBefore);
  t.is(agent.status().serial, onDisk.serial);
  await agent.stop();
});
