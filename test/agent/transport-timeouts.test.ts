// Issue 12, item 4: every phase of a request (TCP connect, TLS handshake, the answer) is bounded by
// --request-timeout, each timeout says "connection timed out after <n>s reaching <host:port>" and
// where it stopped, and --give-up-after counts from the first try. The faults are real: a port
// whose accept queue is full (the kernel drops the SYNs), a port that never speaks TLS, a TLS
// server that never answers, a proxy that stalls a live connection.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { startHealthServer } from '../../src/agent/health-server.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import { makeCa } from './fixtures.ts';
import {
  agentConfig,
  enrolledConnector,
  prepareConnector,
  recordsMatching,
  runAgent,
  startTestControlPlane,
  waitFor,
} from './harness.ts';
import {
  clientFor,
  droppingPort,
  endsWithin,
  heartbeat,
  rejection,
  serverCertificate,
  silentTcpPort,
  stallingProxy,
  tlsPort,
  urlOf,
} from './transport-servers.ts';

// Without the overall deadline a dropped connect lasts the kernel's SYN retries (over two minutes).
const ENDS_WITHIN_MS = 20_000;

async function readyzStatus(url: string): Promise<number> {
  return (await fetch(`${url}/readyz`)).status;
}

test('a host that drops the TCP connect: the request ends at --request-timeout, "connection timed out after 0.3s reaching ... while connecting"', async (t) => {
  const port = await droppingPort(t);
  const client = clientFor(t, urlOf(port), { caPem: undefined, requestTimeoutMs: 300 });
  const error = await endsWithin(rejection(client.heartbeat(heartbeat)), ENDS_WITHIN_MS, 'the request');
  t.is(error.code, 'CONNECTION_TIMEOUT');
  t.true(error.temporary);
  t.is(error.details?.phase, 'connecting');
  t.true(
    error.message.startsWith(`connection timed out after 0.3s reaching 127.0.0.1:${port} while connecting`),
    error.message,
  );
});

test('a port that accepts TCP but never speaks TLS: the timeout names the tls handshake', async (t) => {
  const port = await silentTcpPort(t);
  const client = clientFor(t, urlOf(port), { caPem: undefined, requestTimeoutMs: 300 });
  const error = await endsWithin(rejection(client.heartbeat(heartbeat)), ENDS_WITHIN_MS, 'the request');
  t.is(error.code, 'CONNECTION_TIMEOUT');
  t.is(error.details?.phase, 'tls handshake');
  t.true(
    error.message.startsWith(
      `connection timed out after 0.3s reaching 127.0.0.1:${port} during the tls handshake`,
    ),
    error.message,
  );
});

test('a TLS server that takes the request and never answers: the timeout says it was waiting for the answer', async (t) => {
  const ca = await makeCa('Timeout Test CA');
  const port = await tlsPort(t, await serverCertificate(ca), () => {});
  const client = clientFor(t, urlOf(port), { caPem: ca.certPem, requestTimeoutMs: 300 });
  const error = await endsWithin(rejection(client.heartbeat(heartbeat)), ENDS_WITHIN_MS, 'the request');
  t.is(error.code, 'CONNECTION_TIMEOUT');
  t.is(error.details?.phase, 'waiting for the answer');
  t.true(
    error.message.startsWith(
      `connection timed out after 0.3s reaching 127.0.0.1:${port} waiting for the answer`,
    ),
    error.message,
  );
});

test('packets dropped from the first try: each failure is logged with the wording, /readyz stays 503, --give-up-after ends with exit 14', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.dropped';
  const { token, config, keyPem } = await enrolledConnector(t, control, connectorId);
  const port = await droppingPort(t);
  const dropped = {
    ...config,
    controlPlaneUrl: urlOf(port),
    requestTimeoutMs: 300,
    giveUpAfterMs: 1_000,
    retryInitialMs: 10,
    retryMaxMs: 40,
  };
  const { agent, logs, counts } = runAgent(t, dropped);
  const health = await startHealthServer({ host: '127.0.0.1', port: 0, readiness: () => agent.readiness() });
  t.teardown(() => health.close());
  t.is(await readyzStatus(health.url), 503);

  const wording = new RegExp(
    `^heartbeat failed: connection timed out after 0\\.3s reaching 127\\.0\\.0\\.1:${port} while connecting`,
  );
  await endsWithin(
    waitFor('a logged timeout', () => recordsMatching(logs, wording).length > 0, {
      timeoutMs: ENDS_WITHIN_MS,
    }),
    ENDS_WITHIN_MS,
    'the first logged timeout',
  );
  t.is(await readyzStatus(health.url), 503, '/readyz stays 503 while the control plane is unreachable');

  const outcome = await endsWithin(agent.done, ENDS_WITHIN_MS, 'the agent');
  t.is(outcome.exitCode, 14);
  t.is(outcome.failure?.failureClass, 'Reconnect');
  t.is(outcome.failure?.code, 'CONTROL_PLANE_UNREACHABLE');
  t.true(recordsMatching(logs, wording).every((record) => record.code === 'CONNECTION_TIMEOUT'));
  const termination = JSON.parse(await readFile(dropped.terminationLog, 'utf8')) as { reason: string };
  t.regex(termination.reason, /last error CONNECTION_TIMEOUT: connection timed out after 0\.3s reaching/);
  t.is(await readyzStatus(health.url), 503);
  t.is(counts.enroll, 0);
  assertNoSecrets(t, 'agent logs', logs.text(), [token, keyPem]);
});

test('--give-up-after counts from the start of the first try: one try that hangs longer than it is enough', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.first-try';
  const prepared = await prepareConnector(t, control, connectorId);
  const port = await droppingPort(t);
  const config = agentConfig({
    connectorId,
    controlPlaneUrl: urlOf(port),
    caFile: control.caFile,
    tokenFile: prepared.tokenFile,
    dataDir: prepared.dataDir,
    terminationLog: join(prepared.dataDir, 'termination-log'),
    requestTimeoutMs: 500,
    giveUpAfterMs: 300,
  });
  const { agent, logs, counts } = runAgent(t, config);
  const outcome = await endsWithin(agent.done, ENDS_WITHIN_MS, 'the agent');
  t.is(outcome.exitCode, 14);
  t.is(outcome.failure?.failureClass, 'FirstBootBootstrap');
  t.is(counts.enroll, 1, 'the first try already lasted longer than --give-up-after');
  t.regex(
    String(outcome.failure?.message),
    new RegExp(`connection timed out after 0\\.5s reaching 127\\.0\\.0\\.1:${port} while connecting`),
  );
  assertNoSecrets(t, 'agent logs', logs.text(), [prepared.token]);
});

test('a live connection that stalls: /readyz turns 503 with a log line, then the timeouts, then exit 14', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.stalled';
  const { token, config, keyPem } = await enrolledConnector(t, control, connectorId);
  const proxy = await stallingProxy(t, control.cp.url);
  const stalled = {
    ...config,
    controlPlaneUrl: proxy.url,
    requestTimeoutMs: 400,
    giveUpAfterMs: 1_500,
    retryInitialMs: 10,
    retryMaxMs: 40,
  };
  const { agent, logs } = runAgent(t, stalled);
  const health = await startHealthServer({ host: '127.0.0.1', port: 0, readiness: () => agent.readiness() });
  t.teardown(() => health.close());
  await waitFor('ready', async () => (await readyzStatus(health.url)) === 200);

  proxy.stall();
  await waitFor('not ready', async () => (await readyzStatus(health.url)) === 503);
  const notReady = recordsMatching(logs, /^not ready: last heartbeat accepted .* more than 3 intervals/);
  t.is(notReady.length, 1, 'losing readiness is logged once');
  t.is(notReady[0]?.level, 40);

  const outcome = await endsWithin(agent.done, ENDS_WITHIN_MS, 'the agent');
  t.is(outcome.exitCode, 14);
  const timeouts = recordsMatching(
    logs,
    /^heartbeat failed: connection timed out after 0\.4s reaching 127\.0\.0\.1:\d+ (waiting for the answer|during the tls handshake)/,
  );
  t.true(timeouts.length >= 1, logs.text());
  t.is(recordsMatching(logs, /^not ready:/).length, 1);
  assertNoSecrets(t, 'agent logs', logs.text(), [token, keyPem]);
});
