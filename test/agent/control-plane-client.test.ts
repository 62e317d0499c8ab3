// The agent's HTTPS client against small real HTTPS servers on 127.0.0.1: error bodies, timeouts,
// refused connections, a server certificate outside its validity (clock skew wording), and how the
// client uses connections and TLS sessions.
import { createPublicKey } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import { ControlPlaneClient } from '../../src/agent/control-plane-client.ts';
import { systemClock } from '../../src/lib/clock.ts';
import { CodedError } from '../../src/lib/errors.ts';
import { generateKeyPairPem, issueCertificatePem } from '../../src/lib/pki.ts';
import { makeCa, type TestCa, tempDir } from './fixtures.ts';

let ca: TestCa;
test.before(async () => {
  ca = await makeCa('Client Test CA');
});

async function serverCert(notBefore: Date, notAfter: Date) {
  const pair = await generateKeyPairPem('ec-p256');
  const certPem = issueCertificatePem({
    issuerKeyPem: ca.keyPem,
    issuerCertPem: ca.certPem,
    subjectPublicKey: createPublicKey(pair.publicKeyPem),
    subject: [{ shortName: 'CN', value: '127.0.0.1' }],
    notBefore,
    notAfter,
    sanIps: ['127.0.0.1'],
    extendedKeyUsage: ['serverAuth'],
  });
  return { key: pair.privateKeyPem, cert: certPem };
}

async function httpsServer(
  t: ExecutionContext,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000) },
): Promise<string> {
  const { key, cert } = await serverCert(validity.notBefore, validity.notAfter);
  const server = createServer({ key, cert }, handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function client(
  baseUrl: string,
  overrides: Partial<ConstructorParameters<typeof ControlPlaneClient>[0]> = {},
) {
  return new ControlPlaneClient({
    baseUrl,
    caPem: ca.certPem,
    caFile: '/etc/vaultpam/ca.crt',
    requestTimeoutMs: 2_000,
    clock: systemClock,
    ...overrides,
  });
}

function answer(status: number, body: unknown) {
  return (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
}

async function rejection(promise: Promise<unknown>): Promise<CodedError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!(error instanceof CodedError)) throw new Error(`expected a CodedError, got ${String(error)}`);
  return error;
}

const heartbeat = { paths: [{ name: 'tunnel', healthy: true }] };
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

test('a contract error body becomes a CodedError with the same code, status and message', async (t) => {
  const url = await httpsServer(
    t,
    answer(401, { error: { code: 'ENROLLMENT_TOKEN_EXPIRED', message: 'the enrollment token has expired' } }),
  );
  const c = client(url);
  t.teardown(() => c.close());
  const token = 'vpe_0123456789abcdef_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZn';
  const error = await rejection(c.enroll({ connectorId: 'c1', token, csrPem: 'x' }));
  t.is(error.code, 'ENROLLMENT_TOKEN_EXPIRED');
  t.is(error.httpStatus, 401);
  t.false(error.temporary);
  t.is(error.message, 'the enrollment token has expired');
  t.false(
    JSON.stringify({ ...error, message: error.message }).includes(token),
    'the request body is not echoed',
  );
});

test('an answer that echoes the enrollment request (a proxy error page) carries no token on, in its message or details', async (t) => {
  // Not in the token format the log scrubber knows: only the value sent can be recognised.
  const token = 'opaque-token-from-another-issuer-0123456789';
  const url = await httpsServer(t, (req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: {
            code: 'BAD_REQUEST',
            message: `upstream rejected ${body}`,
            details: { request: JSON.parse(body) },
          },
        }),
      );
    });
  });
  const c = client(url);
  t.teardown(() => c.close());
  const error = await rejection(c.enroll({ connectorId: 'c1', token, csrPem: 'x' }));
  t.is(error.code, 'BAD_REQUEST');
  t.regex(error.message, /\[REDACTED\]/, 'the echo is still quoted');
  t.false(JSON.stringify({ message: error.message, details: error.details }).includes(token));
});

test('a control plane URL with a path (behind a path-prefixed proxy) keeps it: the contract paths go under it', async (t) => {
  const asked: string[] = [];
  const url = await httpsServer(t, (req, res) => {
    asked.push(req.url ?? '');
    answer(200, { state: 'online', heartbeatIntervalSeconds: 10 })(req, res);
  });
  for (const base of [`${url}/vaultpam`, `${url}/vaultpam/`]) {
    const c = client(base);
    t.teardown(() => c.close());
    await c.heartbeat(heartbeat);
  }
  t.deepEqual(asked, ['/vaultpam/v1/heartbeat', '/vaultpam/v1/heartbeat']);
});

test('5xx answers are temporary, even without a JSON body', async (t) => {
  const url = await httpsServer(t, answer(503, 'upstream restarting'));
  const c = client(url);
  t.teardown(() => c.close());
  const error = await rejection(c.heartbeat(heartbeat));
  t.is(error.code, 'HTTP_503');
  t.true(error.temporary);
});

test('a success answer missing fields is a malformed answer, not a crash', async (t) => {
  const url = await httpsServer(t, answer(200, { state: 'online' }));
  const c = client(url);
  t.teardown(() => c.close());
  const error = await rejection(c.heartbeat(heartbeat));
  t.is(error.code, 'BAD_RESPONSE');
  t.regex(error.message, /heartbeat answer is malformed/);
});

test('a server that never answers times out with a clear message', async (t) => {
  const url = await httpsServer(t, () => {});
  const c = client(url, { requestTimeoutMs: 150 });
  t.teardown(() => c.close());
  const error = await rejection(c.heartbeat(heartbeat));
  t.is(error.code, 'CONNECTION_TIMEOUT');
  t.regex(error.message, /timed out/);
  t.true(error.temporary);
});

test('connection refused names the host and is temporary', async (t) => {
  const closedUrl = await (async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const free = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    return `https://127.0.0.1:${free}`;
  })();
  const c = client(closedUrl);
  t.teardown(() => c.close());
  const error = await rejection(c.heartbeat(heartbeat));
  t.is(error.code, 'CONNECTION_REFUSED');
  t.regex(error.message, /^connection refused to 127\.0\.0\.1:\d+/);
  t.true(error.temporary);
});

test('an expired server certificate is explained against local time', async (t) => {
  const url = await httpsServer(t, answer(200, {}), {
    notBefore: new Date(Date.now() - 2 * 86_400_000),
    notAfter: new Date(Date.now() - 3_600_000),
  });
  const c = client(url);
  t.teardown(() => c.close());
  const error = await rejection(c.heartbeat(heartbeat));
  t.is(error.code, 'SERVER_CERT_EXPIRED');
  t.regex(
    error.message,
    /the control plane certificate of 127\.0\.0\.1:\d+ has expired \(valid from .* to .*, local time is .*1 h 0 min past expiry\)/,
  );
  t.false(error.temporary);
});

test('a server certificate from the future says either clock may be off: this node behind, or the issuer ahead', async (t) => {
  const url = await httpsServer(t, answer(200, {}), {
    notBefore: new Date(Date.now() + 2 * 3_600_000),
    notAfter: new Date(Date.now() + 86_400_000),
  });
  const c = client(url);
  t.teardown(() => c.close());
  const error = await rejection(c.heartbeat(heartbeat));
  t.is(error.code, 'SERVER_CERT_NOT_YET_VALID');
  t.regex(
    error.message,
    /not yet valid .*either this node's clock is (1 h 59 min|2 h 0 min) behind, or the certificate was issued by a clock (1 h 59 min|2 h 0 min) ahead/,
  );
});

test('an untrusted server certificate gives the unknown-authority line naming the CA file', async (t) => {
  const url = await httpsServer(t, answer(200, {}));
  const other = await makeCa('Unrelated CA');
  const dir = await tempDir(t);
  const caFile = join(dir, 'other-ca.pem');
  await writeFile(caFile, other.certPem);
  const c = client(url, { caPem: other.certPem, caFile });
  t.teardown(() => c.close());
  const error = await rejection(c.heartbeat(heartbeat));
  t.is(error.code, 'CA_UNTRUSTED');
  t.true(error.message.startsWith('x509: certificate signed by unknown authority'));
  t.true(error.message.includes(caFile));
});

/**
 * A server that announces `keepAliveSeconds` in its Keep-Alive header but itself closes an idle
 * connection only after a minute more (so within that minute only the client can be closing it), and
 * counts its TLS handshakes, full and resumed.
 */
async function countingServer(
  t: ExecutionContext,
  keepAliveSeconds: number,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
) {
  const { key, cert } = await serverCert(new Date(Date.now() - 60_000), new Date(Date.now() + 3_600_000));
  const server = createServer({ key, cert, keepAliveTimeout: keepAliveSeconds * 1000 }, handler);
  server.keepAliveTimeoutBuffer = 60_000;
  const handshakes = { full: 0, resumed: 0 };
  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.isSessionReused()) handshakes.resumed += 1;
    else handshakes.full += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const connections = () =>
    new Promise<number>((resolve, reject) =>
      server.getConnections((error, n) => (error ? reject(error) : resolve(n))),
    );
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, handshakes, connections };
}

const beatAnswer = answer(200, { state: 'online', heartbeatIntervalSeconds: 10 });

test('the client closes an idle connection when the control plane says, and the next heartbeat resumes the TLS session', async (t) => {
  // Announces 2 s: node's agent closes a second before, after 1 s idle.
  const server = await countingServer(t, 2, beatAnswer);
  const c = client(server.url);
  t.teardown(() => c.close());
  await c.heartbeat(heartbeat);
  await c.heartbeat(heartbeat);
  t.deepEqual(server.handshakes, { full: 1, resumed: 0 }, 'calls in a burst share the connection');
  const deadline = Date.now() + 10_000;
  while ((await server.connections()) > 0 && Date.now() < deadline) await sleep(50);
  t.is(await server.connections(), 0, 'closed by the client, long before the server would have');
  await c.heartbeat(heartbeat);
  t.deepEqual(server.handshakes, { full: 1, resumed: 1 }, 'a new connection, with the session resumed');
});

test('a control plane announcing a long keep-alive gets its connection kept between heartbeats', async (t) => {
  const server = await countingServer(t, 60, beatAnswer);
  const c = client(server.url);
  t.teardown(() => c.close());
  await c.heartbeat(heartbeat);
  await sleep(1_500);
  t.is(await server.connections(), 1);
  await c.heartbeat(heartbeat);
  t.deepEqual(server.handshakes, { full: 1, resumed: 0 });
});
