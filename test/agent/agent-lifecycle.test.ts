// The agent against the real control plane over real mTLS sockets: enrollment, reconnect without a
// token, degraded paths, renewal at the configured fraction, reconnect after an outage, and a crash
// between spending the token and writing the certificate.
import { readFile, rm, stat } from 'node:fs/promises';
import { Agent } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { type AgentConfig, parseAgentCommandLine } from '../../src/agent/config.ts';
import { generateEcKey } from '../../src/agent/enrollment.ts';
import { startHealthServer } from '../../src/agent/health-server.ts';
import { identityPaths } from '../../src/agent/identity-files.ts';
import { savePendingKey } from '../../src/agent/identity-write.ts';
import { parsePathCheck } from '../../src/agent/path-checks.ts';
import { requestJson } from '../../src/lib/https-json.ts';
import { createCsrPem, keyMatchesCertificate, parseCertificateFacts } from '../../src/lib/pki.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import {
  agentConfig,
  prepareConnector,
  recordsMatching,
  restartControlPlane,
  runAgent,
  startTestControlPlane,
  type TestControlPlane,
  waitFor,
} from './harness.ts';

test('first boot enrolls once, persists the identity (key 0600) and goes online with the bootstrap retired', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.first';
  const { token, tokenFile, dataDir } = await prepareConnector(t, control, connectorId);
  const terminationLog = join(dataDir, 'termination-log');
  const { agent, logs, counts } = runAgent(
    t,
    agentConfig({
      connectorId,
      controlPlaneUrl: control.cp.url,
      caFile: control.caFile,
      tokenFile,
      dataDir,
      terminationLog,
    }),
  );
  const connector = await waitFor('online and retired', async () => {
    const c = await control.admin.getConnector(connectorId);
    return c.state === 'online' && c.bootstrapRetired ? c : undefined;
  });
  const paths = identityPaths(dataDir);
  t.is((await stat(paths.key)).mode & 0o777, 0o600);
  const metadata = JSON.parse(await readFile(paths.metadata, 'utf8')) as Record<string, string>;
  t.is(metadata.connectorId, connectorId);
  t.is(metadata.controlPlaneUrl, control.cp.url);
  t.is(metadata.serial, connector.certificate?.serial);
  const keyPem = await readFile(paths.key, 'utf8');
  t.is(counts.enroll, 1);
  t.deepEqual(
    connector.paths.map((p) => p.name),
    ['tunnel'],
  );

  // The local readiness probe follows accepted heartbeats.
  const health = await startHealthServer({ host: '127.0.0.1', port: 0, readiness: () => agent.readiness() });
  t.teardown(() => health.close());
  t.is((await fetch(`${health.url}/readyz`)).status, 200);

  const outcome = await agent.stop();
  t.is(outcome.exitCode, 0);
  t.is(recordsMatching(logs, /^enrolled/).length, 1);
  await t.throwsAsync(readFile(terminationLog), undefined, 'a clean stop writes no termination message');
  assertNoSecrets(t, 'agent logs', logs.text(), [token, keyPem]);
});

test('a restart with the persisted identity reconnects over mTLS without any token', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.restart';
  const { token, tokenFile, dataDir } = await prepareConnector(t, control, connectorId);
  const config = agentConfig({
    connectorId,
    controlPlaneUrl: control.cp.url,
    caFile: control.caFile,
    tokenFile,
    dataDir,
    terminationLog: join(dataDir, 'termination-log'),
  });
  const first = runAgent(t, config);
  await waitFor('retired', async () => (await control.admin.getConnector(connectorId)).bootstrapRetired);
  t.is((await first.agent.stop()).exitCode, 0);
  const serialBefore = (await control.admin.getConnector(connectorId)).certificate?.serial;

  await rm(tokenFile);
  const second = runAgent(t, config);
  await waitFor('two accepted heartbeats', () => second.agent.status().heartbeatsAccepted >= 2);
  t.is(second.counts.enroll, 0, 'no enrollment request at all');
  const connector = await control.admin.getConnector(connectorId);
  t.is(connector.state, 'online');
  t.is(connector.certificate?.serial, serialBefore, 'same identity, no re-pairing');
  t.is(recordsMatching(second.logs, /^loaded the persisted identity/).length, 1);
  t.is(recordsMatching(second.logs, /^connected: heartbeat accepted/).length, 1);
  const keyPem = await readFile(identityPaths(dataDir).key, 'utf8');
  assertNoSecrets(t, 'agent logs', first.logs.text() + second.logs.text(), [token, keyPem]);
});

/** Pairs and runs an agent with these path checks until the control plane reads it as degraded. */
async function runUntilDegraded(
  t: ExecutionContext,
  control: TestControlPlane,
  connectorId: string,
  pathChecks: AgentConfig['pathChecks'],
) {
  const { tokenFile, dataDir } = await prepareConnector(t, control, connectorId);
  runAgent(
    t,
    agentConfig({
      connectorId,
      controlPlaneUrl: control.cp.url,
      caFile: control.caFile,
      tokenFile,
      dataDir,
      terminationLog: join(dataDir, 'termination-log'),
      pathChecks,
    }),
  );
  return waitFor('degraded', async () => {
    const c = await control.admin.getConnector(connectorId);
    return c.state === 'degraded' ? c : undefined;
  });
}

test('one failing path check makes the connector degraded, and it recovers when the path does', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.paths';
  const target = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  const address = target.address();
  if (typeof address !== 'object' || address === null) return t.fail('no address');
  const port = address.port;
  // Close the target: the path is down from the start.
  await new Promise<void>((resolve) => target.close(() => resolve()));
  const degraded = await runUntilDegraded(t, control, connectorId, [{ name: 'db', host: '127.0.0.1', port }]);
  const db = degraded.paths.find((p) => p.name === 'db');
  t.false(db?.healthy);
  t.regex(db?.detail ?? '', /ECONNREFUSED/);
  t.true(degraded.paths.find((p) => p.name === 'tunnel')?.healthy);

  const revived = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => revived.listen(port, '127.0.0.1', resolve));
  t.teardown(() => revived.close());
  await waitFor(
    'online again',
    async () => (await control.admin.getConnector(connectorId)).state === 'online',
  );
  t.pass();
});

test('the most paths the configuration admits, each failing with the longest detail, fit a heartbeat', async (t) => {
  // 63 checks (the tunnel is the 64th path), names of 63 characters and the longest host the
  // parser admits, in bytes (the control plane's bound is in UTF-8 bytes): 253 printable ASCII
  // characters, a host longer, or with any other character, is refused (below). They do not
  // resolve: the control plane accepts the heartbeat, so the connector is degraded, not offline.
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.many-paths';
  const host = `${['a', 'b', 'c'].map((c) => c.repeat(63)).join('.')}.${'d'.repeat(53)}.invalid`;
  t.is(Buffer.byteLength(host), 253);
  for (const longer of [`${host}x`, `${'我'.repeat(253)}`, `${host.slice(0, 252)}é`])
    t.is(typeof parsePathCheck(`p=${longer}:65535`), 'string', 'refused: more bytes than the host tested');
  const texts = Array.from(
    { length: 63 },
    (_, i) => `${String(i).padStart(2, '0')}${'p'.repeat(61)}=${host}:65535`,
  );
  // The checks as the agent's own flag parsing admits them (it refuses a 64th or a longer host).
  const parsed = parseAgentCommandLine(
    [
      ...['--connector-id', connectorId, '--control-plane-url', control.cp.url, '--data-dir', '/data'],
      ...texts.flatMap((text) => ['--path-check', text]),
    ],
    {},
  );
  if (parsed.help) return t.fail('help');
  const degraded = await runUntilDegraded(t, control, connectorId, parsed.config.pathChecks);
  t.is(degraded.paths.length, 64);
  t.regex(
    degraded.paths.find((p) => p.name !== 'tunnel')?.detail ?? '',
    /^connect to a{63}\..*\.invalid:65535 /,
  );
});

test('the certificate is renewed at the configured fraction of its lifetime and the new one is persisted', async (t) => {
  // Connector certificates are backdated 5 min by the control plane, so with a 4 s lifetime the
  // validity window is 304 s and 0.995 of it falls about 2.5 s after issuance.
  const control = await startTestControlPlane(t, { certificateLifetimeSeconds: 4 });
  const connectorId = 'team-a.renew';
  const { token, tokenFile, dataDir } = await prepareConnector(t, control, connectorId);
  const paths = identityPaths(dataDir);
  const fraction = 0.995;
  const { agent, logs, counts } = runAgent(
    t,
    agentConfig({
      connectorId,
      controlPlaneUrl: control.cp.url,
      caFile: control.caFile,
      tokenFile,
      dataDir,
      terminationLog: join(dataDir, 'termination-log'),
      renewAtFraction: fraction,
    }),
  );
  await waitFor('enrolled', () => agent.status().serial);
  const original = parseCertificateFacts(await readFile(paths.cert, 'utf8'));
  const keyBefore = await readFile(paths.key, 'utf8');
  const dueAt =
    original.notBefore.getTime() + fraction * (original.notAfter.getTime() - original.notBefore.getTime());

  await waitFor('renewed', () => agent.status().renewals >= 1);
  const renewedLine = recordsMatching(logs, /^certificate renewed/)[0];
  if (!renewedLine) return t.fail('no renewal log line');
  t.true(
    new Date(String(renewedLine.time)).getTime() >= dueAt,
    'not renewed before the fraction of the lifetime',
  );
  t.is(renewedLine.previousSerial, original.serial);

  // The control plane accepts heartbeats with the renewed certificate and recorded the renewal.
  const heartbeatsAtRenewal = agent.status().heartbeatsAccepted;
  await waitFor('heartbeat after renewal', () => agent.status().heartbeatsAccepted > heartbeatsAtRenewal);
  t.is((await agent.stop()).exitCode, 0);

  // Stopped: what is on disk is final and must be the certificate the control plane now recognises.
  const onDisk = parseCertificateFacts(await readFile(paths.cert, 'utf8'));
  const metadata = JSON.parse(await readFile(paths.metadata, 'utf8')) as { serial: string; notAfter: string };
  const recorded = await control.admin.getConnector(connectorId);
  t.not(onDisk.serial, original.serial);
  t.is(agent.status().serial, onDisk.serial);
  t.is(metadata.serial, onDisk.serial, 'identity.json follows the certificate');
  t.is(metadata.notAfter, onDisk.notAfter.toISOString());
  t.is(recorded.certificate?.serial, onDisk.serial);
  t.is(await readFile(paths.key, 'utf8'), keyBefore, 'renewal keeps the key');
  t.true(counts.renew >= 1);
  t.is(counts.enroll, 1);
  const audit = await control.admin.audit({ connectorId });
  t.true(audit.some((entry) => entry.type === 'endpoint.cert_renewed'));
  assertNoSecrets(t, 'agent logs', logs.text(), [token, keyBefore]);
});

test('with the control plane down at start, the agent retries with backoff, never uses a token, and connects when it comes up', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.outage';
  const { token, tokenFile, dataDir } = await prepareConnector(t, control, connectorId);
  const config = agentConfig({
    connectorId,
    controlPlaneUrl: control.cp.url,
    caFile: control.caFile,
    tokenFile,
    dataDir,
    terminationLog: join(dataDir, 'termination-log'),
    retryInitialMs: 20,
    retryMaxMs: 80,
  });
  const first = runAgent(t, config);
  await waitFor('retired', async () => (await control.admin.getConnector(connectorId)).bootstrapRetired);
  await first.agent.stop();
  await control.admin.close();
  await control.cp.close();

  // The token file is still mounted: a reconnect failure must never make the agent use it.
  const second = runAgent(t, config);
  await waitFor(
    'several refused attempts',
    () => recordsMatching(second.logs, /^heartbeat failed/).length >= 3,
  );
  const failures = recordsMatching(second.logs, /^heartbeat failed/);
  t.true(failures.every((r) => r.code === 'CONNECTION_REFUSED' && r.failureClass === 'Reconnect'));
  t.regex(String(failures[0]?.msg), /connection refused to 127\.0\.0\.1:\d+/);
  const delays = failures.map((r) => Number(r.retryInMs));
  t.true(
    delays.every((d) => d >= 10 && d <= 80),
    `delays stay within the cap: ${delays.join(',')}`,
  );
  t.true(Number(failures.at(-1)?.attempt) > Number(failures[0]?.attempt));
  t.is(second.counts.enroll, 0);

  const revived = await restartControlPlane(t, control);
  await waitFor('connected after the outage', () => second.agent.status().phase === 'connected');
  t.is(second.counts.enroll, 0, 'still no enrollment');
  t.is(recordsMatching(second.logs, /^connected: heartbeat accepted/).length, 1);
  t.true(Number(recordsMatching(second.logs, /^connected/)[0]?.failedAttempts) >= 3);
  const state = revived.service.getConnector(connectorId).state;
  t.true(state === 'online' || state === 'offline', `record kept across the restart (${state})`);
  await waitFor('online', () => revived.service.getConnector(connectorId).state === 'online');
  const keyPem = await readFile(identityPaths(dataDir).key, 'utf8');
  assertNoSecrets(t, 'agent logs', first.logs.text() + second.logs.text(), [token, keyPem]);
});

test('a crash after the token was spent and before the certificate was written: the restart is sent the lost answer for the key it kept', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.crashed';
  const { token, tokenFile, dataDir } = await prepareConnector(t, control, connectorId);
  // What the agent that crashed left: its key, written before the token was spent (enrollment.ts),
  // and a spent token whose answer never reached the disk.
  const keyPem = await generateEcKey();
  await savePendingKey(dataDir, keyPem);
  const spent = await requestJson({
    method: 'POST',
    url: `${control.cp.url}/v1/enroll`,
    agent: new Agent({ ca: control.cp.caPem }),
    body: { connectorId, token, csrPem: createCsrPem(keyPem, connectorId) },
    timeoutMs: 10_000,
  });
  t.is(spent.status, 201);
  t.is((await control.admin.getConnector(connectorId)).state, 'enrolling');

  const { agent, logs, counts } = runAgent(
    t,
    agentConfig({
      connectorId,
      controlPlaneUrl: control.cp.url,
      caFile: control.caFile,
      tokenFile,
      dataDir,
      terminationLog: join(dataDir, 'termination-log'),
    }),
  );
  const connector = await waitFor('online and retired', async () => {
    const c = await control.admin.getConnector(connectorId);
    return c.state === 'online' && c.bootstrapRetired ? c : undefined;
  });
  t.is(counts.enroll, 1, 'one enrollment request: no second token, no recovery');
  const paths = identityPaths(dataDir);
  t.is(await readFile(paths.key, 'utf8'), keyPem, 'the key it kept');
  const certPem = await readFile(paths.cert, 'utf8');
  t.true(keyMatchesCertificate(keyPem, certPem));
  t.is(connector.certificate?.serial, parseCertificateFacts(certPem).serial);
  t.is(certPem, (spent.json as { certificatePem: string }).certificatePem, 'the answer that was lost');
  const types = (await control.admin.audit({ connectorId })).map((e) => e.type);
  t.deepEqual(
    types.filter((type) => type.startsWith('endpoint.enroll')),
    ['endpoint.enrolled', 'endpoint.enrollment_answered_again'],
  );
  t.is((await agent.stop()).exitCode, 0);
  assertNoSecrets(t, 'agent logs', logs.text(), [token, keyPem]);
});
