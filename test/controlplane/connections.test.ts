// Connections to the control plane: an idle one is closed after the keep-alive timeout (shorter than
// the heartbeat interval, so the control plane never holds a connection per agent), agents come back
// with a resumed TLS session, and neither a kept-alive connection nor a resumed session lets a
// certificate through that its record refuses.
import { Agent, request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import test from 'ava';
import { ControlPlaneClient } from '../../src/agent/control-plane-client.ts';
import { systemClock } from '../../src/lib/clock.ts';
import { enrolledAgent, type Harness, metricValue, rawTls, startHarness, type TestAgent } from './helpers.ts';

interface Beat {
  status: number;
  code: string | undefined;
  /** The request went out on a connection that had served one before. */
  reusedConnection: boolean;
  /** The connection's TLS session was resumed from a ticket, not a full handshake. */
  resumedSession: boolean;
}

/** One heartbeat with the agent's certificate through `agent`, saying how the connection was made. */
function beat(h: Harness, agent: Agent): Promise<Beat> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${h.cp.url}/v1/heartbeat`,
      { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
      (res) => {
        // Read now: once the answer has ended, the socket goes back to the agent or away.
        const resumedSession = (res.socket as TLSSocket).isSessionReused();
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
          resolve({
            status: res.statusCode ?? 0,
            code: body.error?.code,
            reusedConnection: req.reusedSocket,
            resumedSession,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ paths: [{ name: 'tunnel', healthy: true }] }));
  });
}

function agentFor(h: Harness, connector: TestAgent, keepAlive: boolean): Agent {
  return new Agent({
    keepAlive,
    maxSockets: 1,
    ca: h.cp.caPem,
    key: connector.keyPem,
    cert: connector.certPem,
  });
}

/** Polls the open-connection gauge until it reads `expected` (the close event may trail the client's), at most 5 s. */
async function openConnectionsSettleAt(h: Harness, expected: number): Promise<number> {
  const deadline = Date.now() + 5_000;
  let value = await metricValue(h, 'cp_http_open_connections');
  while (value !== expected && Date.now() < deadline) {
    await new Promise((done) => setTimeout(done, 50));
    value = await metricValue(h, 'cp_http_open_connections');
  }
  return value;
}

/** Makes the connector offline on the control plane's clock and begins a guided recovery (revokes its certificate). */
async function revoke(h: Harness, connectorId: string): Promise<void> {
  h.clock.advance(60_000);
  h.cp.sweep();
  await h.admin.beginRecovery(connectorId, 'rq-conn');
}

test('a certificate revoked while its connection is kept alive is refused on the next request over it', async (t) => {
  // A keep-alive long enough that the connection surely stays open between the two heartbeats.
  const h = await startHarness(t, { heartbeatIntervalSeconds: 10, keepAliveTimeoutSeconds: 60 });
  const connector = await enrolledAgent(h, 'ns.kept');
  const agent = agentFor(h, connector, true);
  t.teardown(() => agent.destroy());

  const first = await beat(h, agent);
  t.is(first.status, 200);
  t.false(first.reusedConnection);
  await revoke(h, 'ns.kept');
  const second = await beat(h, agent);
  t.true(second.reusedConnection, 'the same connection, whose TLS handshake accepted the certificate');
  t.is(second.status, 401);
  t.is(second.code, 'CLIENT_CERTIFICATE_REVOKED');
});

test('a resumed TLS session carries its certificate: accepted as it was, refused once revoked', async (t) => {
  const h = await startHarness(t, { heartbeatIntervalSeconds: 10 });
  const connector = await enrolledAgent(h, 'ns.resumed');
  // No keep-alive: each heartbeat is a new connection; the agent keeps the session ticket.
  const agent = agentFor(h, connector, false);
  t.teardown(() => agent.destroy());

  const first = await beat(h, agent);
  t.is(first.status, 200);
  t.false(first.resumedSession);
  const second = await beat(h, agent);
  t.false(second.reusedConnection);
  t.true(second.resumedSession, 'a new connection resumes the session from its ticket');
  t.is(second.status, 200, 'the identity is the certificate of the resumed session');
  await revoke(h, 'ns.resumed');
  const third = await beat(h, agent);
  t.true(third.resumedSession);
  t.is(third.status, 401);
  t.is(third.code, 'CLIENT_CERTIFICATE_REVOKED');
  t.is(await metricValue(h, 'cp_http_tls_handshakes_total', 'resumed="true"'), 2);
  t.true((await metricValue(h, 'cp_http_tls_handshakes_total', 'resumed="false"')) >= 1);
});

test('an idle connection is closed after the announced keep-alive timeout, even when its client keeps it', async (t) => {
  const h = await startHarness(t, { keepAliveTimeoutSeconds: 1 });
  const started = Date.now();
  // A client that ignores the Keep-Alive hint: it sends one request and waits for the server to close.
  const answer = await rawTls(h, 'GET /healthz HTTP/1.1\r\nHost: cp\r\n\r\n');
  const seconds = (Date.now() - started) / 1000;
  t.regex(answer, /^HTTP\/1\.1 200/);
  t.regex(answer, /\r\nkeep-alive: timeout=1\r\n/i);
  // Node closes a second after the announced timeout (its keepAliveTimeoutBuffer).
  t.true(seconds < 10, `closed by the control plane after ${seconds} s`);
  t.is(await openConnectionsSettleAt(h, 0), 0);
});

test('open connections are counted while they are open', async (t) => {
  const h = await startHarness(t, { keepAliveTimeoutSeconds: 60 });
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: h.cp.caPem });
  t.teardown(() => agent.destroy());
  await new Promise<void>((resolve, reject) => {
    request(`${h.cp.url}/healthz`, { agent }, (res) => res.resume().on('end', resolve))
      .on('error', reject)
      .end();
  });
  t.is(await metricValue(h, 'cp_http_open_connections'), 1);
  agent.destroy();
  t.is(await openConnectionsSettleAt(h, 0), 0);
});

/** The Keep-Alive header of an answer on a fresh connection. */
function keepAliveOf(h: Harness, path: string, options: { method?: string; key?: string; cert?: string }) {
  return new Promise<string | undefined>((resolve, reject) => {
    const agent = new Agent({ keepAlive: true, ca: h.cp.caPem, key: options.key, cert: options.cert });
    request(
      `${h.cp.url}${path}`,
      { method: options.method ?? 'GET', agent, headers: { 'content-type': 'application/json' } },
      (res) => {
        res.resume().on('end', () => {
          agent.destroy();
          resolve(res.headers['keep-alive'] as string | undefined);
        });
      },
    )
      .on('error', reject)
      .end(options.method === 'POST' ? JSON.stringify({ paths: [] }) : undefined);
  });
}

test('agents are told to close after each answer while the keep-alive timeout is shorter than the heartbeat interval', async (t) => {
  const h = await startHarness(t, { heartbeatIntervalSeconds: 10 });
  const connector = await enrolledAgent(h, 'ns.announce');
  const asAgent = { method: 'POST', key: connector.keyPem, cert: connector.certPem };
  t.is(await keepAliveOf(h, '/v1/heartbeat', asAgent), 'timeout=1');
  t.is(await keepAliveOf(h, '/healthz', {}), 'timeout=2', 'everyone else: the keep-alive timeout (2 s)');

  // Longer than the interval: agents keep their connection between heartbeats.
  await h.restart({ heartbeatIntervalSeconds: 10, keepAliveTimeoutSeconds: 65 });
  t.is(await keepAliveOf(h, '/v1/heartbeat', asAgent), 'timeout=65');
});

test("the agent's client holds no connection between heartbeats and resumes its TLS session", async (t) => {
  const h = await startHarness(t, { heartbeatIntervalSeconds: 10 });
  const connector = await enrolledAgent(h, 'ns.client');
  const client = new ControlPlaneClient({
    baseUrl: h.cp.url,
    caPem: h.cp.caPem,
    caFile: undefined,
    requestTimeoutMs: 5_000,
    clock: systemClock,
  });
  t.teardown(() => client.close());
  client.setIdentity({ keyPem: connector.keyPem, certPem: connector.certPem as string });
  // The harness's own calls (admin, enrollment) made handshakes too: count from here.
  const full = await metricValue(h, 'cp_http_tls_handshakes_total', 'resumed="false"');
  const resumed = await metricValue(h, 'cp_http_tls_handshakes_total', 'resumed="true"');
  t.is((await client.heartbeat({ paths: [] })).state, 'online');
  t.is(await openConnectionsSettleAt(h, 0), 0, 'closed after the answer');
  t.is((await client.heartbeat({ paths: [] })).state, 'online');
  t.is(
    await metricValue(h, 'cp_http_tls_handshakes_total', 'resumed="false"'),
    full + 1,
    'one full handshake',
  );
  t.is(
    await metricValue(h, 'cp_http_tls_handshakes_total', 'resumed="true"'),
    resumed + 1,
    'then a resumed one',
  );
  t.is(await openConnectionsSettleAt(h, 0), 0);
});
