import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import test from 'ava';
import forge from 'node-forge';
import { BODY_LIMIT_BYTES } from '../../src/controlplane/http/body.ts';
import { usableAdminCredential } from '../../src/controlplane/server.ts';
import { createCsrPem, generateKeyPairPem } from '../../src/lib/pki.ts';
import { ControlPlaneAdminClient } from '../../src/operator/control-plane/admin-client.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import {
  CONFIG,
  enrolledAgent,
  type Harness,
  jsonRequest,
  makeAgent,
  metricValue,
  raw,
  startHarness,
} from './helpers.ts';

function der(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
}

function tlv(buffer: Buffer, offset: number): { start: number; content: number; end: number } {
  const first = buffer[offset + 1] as number;
  if (first < 0x80) return { start: offset, content: offset + 2, end: offset + 2 + first };
  const count = first & 0x7f;
  let length = 0;
  for (let i = 0; i < count; i++) length = length * 256 + (buffer[offset + 2 + i] as number);
  return { start: offset, content: offset + 2 + count, end: offset + 2 + count + length };
}

/** A CSR carrying key A's public key and subject but key B's signature: no proof of possession. */
async function mismatchedCsr(commonName: string): Promise<string> {
  const a = der(createCsrPem((await generateKeyPairPem('ec-p256')).privateKeyPem, commonName));
  const b = der(createCsrPem((await generateKeyPairPem('ec-p256')).privateKeyPem, commonName));
  const criA = tlv(a, tlv(a, 0).content);
  const criB = tlv(b, tlv(b, 0).content);
  const content = Buffer.concat([a.subarray(criA.start, criA.end), b.subarray(criB.end, tlv(b, 0).end)]);
  const header =
    content.length < 128
      ? Buffer.from([0x30, content.length])
      : Buffer.from([0x30, 0x82, content.length >> 8, content.length & 0xff]);
  return `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.concat([header, content]).toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
}

async function enrollBody(h: Harness, body: unknown) {
  return raw(h, '/v1/enroll', jsonRequest('POST', body));
}

test('bad inputs each get their code, and the server keeps serving', async (t) => {
  const h = await startHarness(t);
  await h.admin.ensureConnector('ns.in', CONFIG);
  const token = (await h.admin.mintToken('ns.in', { idempotencyKey: 'k' })).token;
  const key = await generateKeyPairPem('ec-p256');
  const goodCsr = createCsrPem(key.privateKeyPem, 'ns.in');
  // Sent concurrently: the server must cope with them interleaved.
  const cases: Array<
    [string, Promise<{ status: number; json: { error: { code: string } } }>, number, string]
  > = [
    [
      'malformed JSON',
      raw(h, '/v1/enroll', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"connectorId":',
      }),
      400,
      'MALFORMED_JSON',
    ],
    [
      'oversized body',
      raw(h, '/v1/enroll', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ pad: 'x'.repeat(70 * 1024) }),
      }),
      413,
      'BODY_TOO_LARGE',
    ],
    [
      'wrong content type',
      raw(h, '/v1/enroll', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    ['not an object', enrollBody(h, [1, 2]), 400, 'INVALID_REQUEST'],
    ['missing field', enrollBody(h, { connectorId: 'ns.in', token }), 400, 'INVALID_REQUEST'],
    [
      'bad connectorId',
      enrollBody(h, { connectorId: 'NS_IN', token, csrPem: goodCsr }),
      400,
      'INVALID_REQUEST',
    ],
    ['malformed CSR', enrollBody(h, { connectorId: 'ns.in', token, csrPem: 'hello' }), 400, 'CSR_INVALID'],
    [
      'CSR signature from another key',
      mismatchedCsr('ns.in').then((csrPem) => enrollBody(h, { connectorId: 'ns.in', token, csrPem })),
      400,
      'CSR_INVALID',
    ],
    [
      'CSR CN mismatch',
      enrollBody(h, { connectorId: 'ns.in', token, csrPem: createCsrPem(key.privateKeyPem, 'ns.other') }),
      400,
      'CSR_SUBJECT_MISMATCH',
    ],
    [
      'weak RSA key',
      (async () => {
        const { generateKeyPairSync } = await import('node:crypto');
        const weak = generateKeyPairSync('rsa', {
          modulusLength: 1024,
          privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
          publicKeyEncoding: { type: 'spki', format: 'pem' },
        });
        return enrollBody(h, { connectorId: 'ns.in', token, csrPem: createCsrPem(weak.privateKey, 'ns.in') });
      })(),
      400,
      'CSR_KEY_UNSUPPORTED',
    ],
    ['unknown route', raw(h, '/v2/nothing'), 404, 'NOT_FOUND'],
    ['wrong method', raw(h, '/v1/enroll'), 405, 'METHOD_NOT_ALLOWED'],
    [
      'bad query parameter',
      raw(h, '/v1/changes?waitSeconds=99', { headers: { authorization: `Bearer ${h.cp.adminCredential}` } }),
      400,
      'INVALID_REQUEST',
    ],
    [
      'bad CIDR',
      raw(
        h,
        '/v1/connectors/ns.x',
        jsonRequest(
          'PUT',
          { ...CONFIG, allowedNetworks: ['10.0.0.0/33'] },
          {
            headers: { authorization: `Bearer ${h.cp.adminCredential}` },
          },
        ),
      ),
      400,
      'INVALID_REQUEST',
    ],
    [
      // isIP takes a zone of any length: one such entry filled a whole 64 KiB body.
      'a CIDR with an IPv6 zone',
      raw(
        h,
        '/v1/connectors/ns.x',
        jsonRequest(
          'PUT',
          { ...CONFIG, allowedNetworks: [`fe80::1%${'z'.repeat(30_000)}/64`] },
          { headers: { authorization: `Bearer ${h.cp.adminCredential}` } },
        ),
      ),
      400,
      'INVALID_REQUEST',
    ],
  ];
  for (const [name, pending, status, code] of cases) {
    const res = await pending;
    t.is(res.status, status, name);
    t.is(res.json?.error?.code, code, name);
  }
  // A 405 names the route's methods and does not echo the caller's path.
  const wrongMethod = await raw(h, `/v1/connectors/${'a'.repeat(200)}/tokens`, { method: 'PATCH' });
  t.is(wrongMethod.json.error.message, 'PATCH is not allowed here; use POST or DELETE');
  // The token was not consumed by any of the failures; the CSR failures were recorded.
  const agent = await makeAgent(h, 'ns.in');
  t.is((await agent.enroll(token)).status, 201);
  t.is((await raw(h, '/healthz')).json.status, 'ok');
  const reasons = (await h.admin.audit({ connectorId: 'ns.in' }))
    .filter((e) => e.type === 'gateway.enrollment_failed')
    .map((e) => String(e.details.reason))
    .sort();
  t.deepEqual(reasons, ['csr_invalid', 'csr_invalid', 'csr_key_unsupported', 'csr_subject_mismatch']);
});

interface Upload {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: the error body as the route answers it
  json: any;
  connection: string | undefined;
  /** Bytes handed to the socket before it closed (what the client managed to send). */
  sent: number;
  /** Bytes the server read off its side of the connection, TLS framing included. */
  serverRead: number;
}

/**
 * Streams `total` bytes of body to /v1/enroll in 64 KiB writes, honouring backpressure, and stops
 * writing as soon as the connection closes. Without `declareLength` the body is chunked (no
 * Content-Length), so the server learns the size only by reading.
 */
async function upload(h: Harness, total: number, declareLength: boolean): Promise<Upload> {
  // The server-side socket of this upload: its byte count shows how much the server really read,
  // independent of how much the kernel buffers on either side absorbed.
  const serverRead = new Promise<number>((resolve) => {
    h.cp.server.once('secureConnection', (socket: TLSSocket) => {
      socket.once('close', () => resolve(socket.bytesRead));
    });
  });
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (declareLength) headers['content-length'] = String(total);
  const req = request(`${h.cp.url}/v1/enroll`, { method: 'POST', headers, ca: h.cp.caPem, agent: false });
  // Once the server cuts the connection, pending writes fail with EPIPE/ECONNRESET: expected here.
  req.on('error', () => {});
  // A server that stops reading but keeps the connection open would stall the writes for good:
  // fail within seconds (the answer below rejects) rather than at the test timeout.
  req.setTimeout(10_000, () => req.destroy());
  const response = new Promise<Omit<Upload, 'sent' | 'serverRead'>>((resolve, reject) => {
    let answered = false;
    req.once('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', reject);
      res.once('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        h.responses.push(text);
        resolve({ status: res.statusCode ?? 0, json: JSON.parse(text), connection: res.headers.connection });
      });
    });
    // A started answer that is cut short fails through res 'error'; this is for no answer at all.
    req.once('close', () => {
      if (!answered) reject(new Error('the connection closed without an answer'));
    });
  });
  response.catch(() => {}); // awaited below; this only stops an early rejection being unhandled
  const socket = await new Promise<Socket>((resolve) => req.once('socket', resolve));
  let closed = false;
  socket.once('close', () => {
    closed = true;
  });
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let sent = 0;
  while (sent < total && !closed) {
    const size = Math.min(chunk.length, total - sent);
    sent += size;
    if (!req.write(chunk.subarray(0, size))) {
      await new Promise<void>((resolve) => {
        const done = () => {
          req.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        req.once('drain', done);
        socket.once('close', done);
      });
    }
  }
  if (!closed) req.end();
  return { ...(await response), sent, serverRead: await serverRead };
}

test('an oversized upload is answered 413 and cut off near the limit; the server keeps serving', async (t) => {
  const h = await startHarness(t);
  const total = 10 * 1024 * 1024;
  for (const declareLength of [false, true]) {
    const name = declareLength ? 'Content-Length over the limit' : 'chunked, no Content-Length';
    const result = await upload(h, total, declareLength);
    t.is(result.status, 413, name);
    t.is(result.json?.error?.code, 'BODY_TOO_LARGE', name);
    t.is(result.connection, 'close', `${name}: the answer says the connection ends`);
    t.true(result.sent < total, `${name}: the connection ended after ${result.sent} of ${total} bytes`);
    // The limit plus what is in flight in TLS records and socket buffers when reading stops; a
    // server that drains the upload reads all 10 MiB.
    t.true(
      result.serverRead < 16 * BODY_LIMIT_BYTES,
      `${name}: the server read ${result.serverRead} bytes (limit ${BODY_LIMIT_BYTES})`,
    );
  }
  t.is((await raw(h, '/healthz')).json.status, 'ok');
});

test('a body that is not UTF-8 answers MALFORMED_JSON saying so, stores nothing, and the server keeps serving', async (t) => {
  const h = await startHarness(t);
  const agent = await enrolledAgent(h, 'ns.utf8');
  t.is((await agent.heartbeat()).status, 200);
  const before = await h.admin.getConnector('ns.utf8');
  const { cursor } = await h.admin.listConnectors();
  // 0xff is never UTF-8; a lenient decoder made each such byte U+FFFD, three bytes in the record.
  const notUtf8 = (text: string) => {
    const [head, tail] = text.split('\u{ff}') as [string, string];
    return Buffer.concat([Buffer.from(head), Buffer.alloc(100, 0xff), Buffer.from(tail)]);
  };
  const headers = { 'content-type': 'application/json' };
  const refused = [
    await raw(h, '/v1/heartbeat', {
      method: 'POST',
      headers,
      body: notUtf8('{"paths":[{"name":"tunnel","healthy":false,"detail":"\u{ff}"}]}'),
      key: agent.keyPem,
      cert: agent.certPem,
    }),
    await raw(h, '/v1/connectors/ns.utf8', {
      method: 'PUT',
      headers: { ...headers, authorization: `Bearer ${h.cp.adminCredential}` },
      body: notUtf8('{"org":"\u{ff}","endpointId":"ep-1","allowedNetworks":[]}'),
    }),
    await raw(h, '/v1/enroll', {
      method: 'POST',
      headers,
      body: notUtf8('{"connectorId":"ns.utf8","token":"\u{ff}","csrPem":"x"}'),
    }),
  ];
  for (const res of refused) {
    t.is(res.status, 400);
    t.is(res.json.error.code, 'MALFORMED_JSON');
    t.regex(res.json.error.message, /not valid UTF-8/);
  }
  const after = await h.admin.getConnector('ns.utf8');
  t.is(after.revision, before.revision, 'the record did not change');
  t.deepEqual(after, before);
  t.deepEqual((await h.admin.changes(cursor)).changes, [], 'nothing was published');
  // Valid UTF-8 beyond ASCII is taken as sent, and the server still serves the connector.
  t.is((await agent.heartbeat([{ name: 'tunnel', healthy: false, detail: 'Störung €' }])).status, 200);
  t.is((await h.admin.getConnector('ns.utf8')).paths[0]?.detail, 'Störung €');
});

test('admin routes answer 401 without or with a wrong credential', async (t) => {
  const h = await startHarness(t);
  for (const headers of [
    {} as Record<string, string>,
    { authorization: 'Bearer wrong' },
    { authorization: `Basic ${h.cp.adminCredential}` },
  ]) {
    const res = await raw(h, '/v1/connectors', { headers });
    t.is(res.status, 401);
    t.is(res.json.error.code, 'UNAUTHORIZED');
  }
  const put = await raw(
    h,
    '/v1/connectors/ns.x',
    jsonRequest('PUT', CONFIG, { headers: { authorization: 'Bearer nope' } }),
  );
  t.is(put.status, 401);
  const client = new ControlPlaneAdminClient({ url: h.cp.url, caPem: h.cp.caPem, credential: 'wrong' });
  t.like(await t.throwsAsync(client.listConnectors()), {
    code: 'UNAUTHORIZED',
    httpStatus: 401,
    temporary: false,
  });
  client.close();
  t.is(
    (await raw(h, '/v1/connectors', { headers: { authorization: `Bearer ${h.cp.adminCredential}` } })).status,
    200,
  );
});

test('whoami proves an admin credential and writes nothing', async (t) => {
  const h = await startHarness(t);
  await h.admin.ensureConnector('ns.x', CONFIG);
  const { cursor } = await h.admin.listConnectors();
  const auditBefore = (await h.admin.audit({ limit: 1000 })).length;
  t.deepEqual(await h.admin.whoami(), { ok: true });
  const wrong = new ControlPlaneAdminClient({ url: h.cp.url, caPem: h.cp.caPem, credential: 'wrong' });
  t.like(await t.throwsAsync(wrong.whoami()), { code: 'UNAUTHORIZED', httpStatus: 401, temporary: false });
  wrong.close();
  t.deepEqual((await h.admin.changes(cursor)).changes, [], 'no change');
  t.is((await h.admin.audit({ limit: 1000 })).length, auditBefore, 'no audit entry');
});

test('configured admin credentials: any listed one works, nothing is written to the data dir', async (t) => {
  const h = await startHarness(t, {
    adminCredentials: ['first-credential-value', 'second-credential-value'],
  });
  t.is(h.cp.adminCredentialPath, undefined);
  for (const credential of ['first-credential-value', 'second-credential-value']) {
    t.is(
      (await raw(h, '/v1/connectors', { headers: { authorization: `Bearer ${credential}` } })).status,
      200,
    );
  }
});

test('the admin client maps network failures to a temporary CONTROL_PLANE_UNREACHABLE', async (t) => {
  const client = new ControlPlaneAdminClient({ url: 'https://127.0.0.1:1', caPem: '', credential: 'x' });
  t.like(await t.throwsAsync(client.getConnector('a.b')), {
    code: 'CONTROL_PLANE_UNREACHABLE',
    temporary: true,
  });
  client.close();
});

test('no log line and no API response (but the mint answer) holds a token, credential or key', async (t) => {
  const h = await startHarness(t);
  const responses: string[] = [];
  // An admin client whose transport records every answer except the mint answers.
  const recording = new ControlPlaneAdminClient({
    url: h.cp.url,
    caPem: h.cp.caPem,
    credential: usableAdminCredential(h.cp),
    fetch: (method, url, headers, body, timeoutMs) =>
      new Promise((resolve, reject) => {
        const req = request(url, { method, headers, ca: h.cp.caPem, timeout: timeoutMs }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if (!(method === 'POST' && url.endsWith('/tokens'))) responses.push(text);
            resolve({ status: res.statusCode ?? 0, body: text });
          });
        });
        req.on('error', reject);
        req.end(body);
      }),
  });
  t.teardown(() => recording.close());
  const secrets: string[] = [usableAdminCredential(h.cp), readFileSync(`${h.dataDir}/ca-key.pem`, 'utf8')];
  secrets.push(readFileSync(`${h.dataDir}/token-key`, 'utf8').trim());

  await recording.ensureConnector('ns.s1', CONFIG);
  const t1 = await recording.mintToken('ns.s1', { idempotencyKey: 'a' });
  const t2 = await recording.mintToken('ns.s1', { idempotencyKey: 'b' });
  secrets.push(t1.token, t2.token, (await recording.mintToken('ns.s1', { idempotencyKey: 'b' })).token);
  const agent = await makeAgent(h, 'ns.s1');
  secrets.push(agent.keyPem);
  await agent.enroll(t1.token); // revoked
  await agent.enroll(`${t2.token}x`); // malformed
  await agent.enroll(t2.token); // ok
  await agent.enroll(t2.token); // used
  await agent.heartbeat();
  await agent.renew();
  await (await makeAgent(h, 'ns.s1')).enroll(t2.token); // retired
  await recording.beginRecovery('ns.s1', 'r');
  const t3 = await recording.mintToken('ns.s1', { idempotencyKey: 'r' });
  secrets.push(t3.token);
  const fresh = await makeAgent(h, 'ns.s1');
  secrets.push(fresh.keyPem);
  await fresh.enroll(t3.token);
  await fresh.heartbeat([{ name: 'db', healthy: false, detail: 'down' }]);
  await recording.getConnector('ns.s1');
  await recording.listConnectors();
  await recording.changes(0);
  await recording.audit({ limit: 1000 });
  await recording.revokeTokens('ns.s1');
  await raw(h, '/metrics');
  await recording.deleteConnector('ns.s1');
  await h.cp.close();

  assertNoSecrets(t, 'log lines', h.logs.text(), secrets);
  assertNoSecrets(t, 'admin API answers', responses.join('\n'), secrets);
  assertNoSecrets(t, 'agent API answers', h.responses.join('\n'), secrets);
  t.true(h.logs.lines().length > 10, 'the scan saw real log output');
  t.true(h.logs.text().includes('connector enrolled'));
});

test('refused enrollments are audited within a budget per connector; unknown ids share one', async (t) => {
  const h = await startHarness(t, { budgets: { anonymousAudit: { burst: 3, refillEveryMs: 3_600_000 } } });
  const junk = `vpe_0123456789abcdef_${'C'.repeat(43)}`;
  // Ten invented connector ids: one shared budget of three entries.
  for (let i = 0; i < 10; i++) {
    const res = await (await makeAgent(h, `ns.invented-${i}`)).enroll(junk);
    t.is(res.json.error.code, 'ENROLLMENT_TOKEN_INVALID');
  }
  const audited = (await h.admin.audit({ limit: 1000 })).filter(
    (e) => e.type === 'gateway.enrollment_failed',
  );
  t.is(audited.length, 3);
  t.is(
    await metricValue(h, 'cp_enrollment_failures_total', 'reason="unknown"'),
    10,
    'every refusal is counted',
  );
  t.is(await metricValue(h, 'cp_audit_suppressed_total'), 7);

  // A real connector has a budget of its own; junk tokens change nothing about it.
  const agent = await enrolledAgent(h, 'ns.real');
  await agent.heartbeat();
  for (let i = 0; i < 5; i++) await (await makeAgent(h, 'ns.real')).enroll(junk);
  const forReal = () =>
    h.admin
      .audit({ connectorId: 'ns.real' })
      .then((entries) => entries.filter((e) => e.type === 'gateway.enrollment_failed'));
  t.is((await forReal()).length, 3);
  t.is((await h.admin.getConnector('ns.real')).state, 'online');

  // Its own spent token is evidence: a spent budget never skips that state change or its entry.
  await (await makeAgent(h, 'ns.real')).enroll(agent.pairedWith as string);
  t.is((await h.admin.getConnector('ns.real')).state, 'needs_recovery');
  t.deepEqual(
    (await forReal()).map((e) => e.details.reason),
    ['unknown', 'unknown', 'unknown', 'retired'],
  );
});

/**
 * A well-formed PKCS#10 CSR for an Ed25519 key, signed with it (Ed25519 signs the message itself:
 * no digest, algorithm 1.3.101.112). Built by hand: the project's CSR builder refuses Ed25519.
 */
async function ed25519Csr(commonName: string): Promise<string> {
  const { generateKeyPairSync, sign } = await import('node:crypto');
  const { asn1, pki } = forge;
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const node = (der: Buffer) => asn1.fromDer(der.toString('binary'));
  const seq = (items: forge.asn1.Asn1[]) =>
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, items);
  const holder = pki.createCertificate();
  holder.setSubject([{ shortName: 'CN', value: commonName }]);
  const info = seq([
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(0).getBytes()),
    pki.distinguishedNameToAsn1(holder.subject),
    node(publicKey.export({ type: 'spki', format: 'der' })),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, []),
  ]);
  const infoDer = Buffer.from(asn1.toDer(info).getBytes(), 'binary');
  const signature = sign(null, infoDer, privateKey);
  const csr = seq([
    info,
    seq([asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer('1.3.101.112').getBytes())]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\0${signature.toString('binary')}`),
  ]);
  const base64 = Buffer.from(asn1.toDer(csr).getBytes(), 'binary').toString('base64');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${base64}\n-----END CERTIFICATE REQUEST-----\n`;
}

test('an Ed25519 CSR answers CSR_KEY_UNSUPPORTED, on enrollment and on renewal', async (t) => {
  const h = await startHarness(t);
  await h.admin.ensureConnector('ns.ed', CONFIG);
  const { token } = await h.admin.mintToken('ns.ed', { idempotencyKey: 'k' });
  const refused = await enrollBody(h, { connectorId: 'ns.ed', token, csrPem: await ed25519Csr('ns.ed') });
  t.is(refused.status, 400);
  t.is(refused.json.error.code, 'CSR_KEY_UNSUPPORTED');
  t.regex(refused.json.error.message, /ed25519 is not supported; use RSA or EC/);
  t.is(await metricValue(h, 'cp_enrollment_failures_total', 'reason="csr_key_unsupported"'), 1);

  // The token was not consumed; the agent pairs with a supported key and then renews.
  const agent = await makeAgent(h, 'ns.ed');
  t.is((await agent.enroll(token)).status, 201);
  const renewal = await raw(
    h,
    '/v1/renew',
    jsonRequest('POST', { csrPem: await ed25519Csr('ns.ed') }, { key: agent.keyPem, cert: agent.certPem }),
  );
  t.is(renewal.status, 400);
  t.is(renewal.json.error.code, 'CSR_KEY_UNSUPPORTED');
});
