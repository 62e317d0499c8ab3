// The one HTTPS JSON helper both clients use, against a real HTTPS server: one deadline for the
// whole request, a size limit on answers, the server's error code and words kept, secrets redacted,
// and one rule for which answers are worth retrying.
import { once } from 'node:events';
import { Agent, createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { CodedError } from '../../src/lib/errors.ts';
import { answerError, isRetryableStatus, requestJson } from '../../src/lib/https-json.ts';
import { selfSignedCertificate } from '../helpers/certificates.ts';

type Handler = Parameters<typeof createServer>[1];

async function serve(t: ExecutionContext, handler: Handler): Promise<{ url: string; agent: Agent }> {
  const { certPem, keyPem } = await selfSignedCertificate({ sanIps: ['127.0.0.1'] });
  const server: Server = createServer({ cert: certPem, key: keyPem }, handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const agent = new Agent({ ca: certPem, keepAlive: true });
  t.teardown(() => {
    agent.destroy();
    server.closeAllConnections();
    server.close();
  });
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, agent };
}

test('sends JSON and reads the status, headers and parsed body whatever the status', async (t) => {
  const seen: Array<{ method?: string; type?: string; body: string }> = [];
  const { url, agent } = await serve(t, (req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      seen.push({ method: req.method, type: req.headers['content-type'], body });
      res.writeHead(409, { 'content-type': 'application/json', date: 'Tue, 01 Dec 2026 10:00:00 GMT' });
      res.end(JSON.stringify({ error: { code: 'CONNECTOR_ID_CONFLICT', message: 'owned by another' } }));
    });
  });
  const answer = await requestJson({
    method: 'PUT',
    url: `${url}/v1/x`,
    agent,
    body: { a: 1 },
    timeoutMs: 5000,
  });
  t.is(answer.status, 409);
  t.is(answer.headers.date, 'Tue, 01 Dec 2026 10:00:00 GMT');
  t.deepEqual(answer.json, { error: { code: 'CONNECTOR_ID_CONFLICT', message: 'owned by another' } });
  t.deepEqual(seen, [{ method: 'PUT', type: 'application/json', body: '{"a":1}' }]);
});

test('a body that is not JSON reads as undefined, its text kept', async (t) => {
  const { url, agent } = await serve(t, (_req, res) => res.end('<html>proxy error</html>'));
  const answer = await requestJson({ method: 'GET', url, agent, timeoutMs: 5000 });
  t.is(answer.json, undefined);
  t.is(answer.text, '<html>proxy error</html>');
});

test('one deadline for the whole request: a server that answers headers and then stalls is cut off', async (t) => {
  const { url, agent } = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"partial":');
  });
  const error = await t.throwsAsync(requestJson({ method: 'GET', url, agent, timeoutMs: 300 }));
  t.is((error as { code?: string }).code, 'REQUEST_TIMEOUT');
  t.regex(error?.message ?? '', /no answer within 300 ms/);
});

test('an answer over the size limit is refused as BAD_RESPONSE naming the path', async (t) => {
  const { url, agent } = await serve(t, (_req, res) => res.end('x'.repeat(4096)));
  const error = await t.throwsAsync(
    requestJson({ method: 'GET', url: `${url}/v1/big`, agent, timeoutMs: 5000, maxAnswerBytes: 1024 }),
  );
  t.true(error instanceof CodedError);
  t.is((error as CodedError).code, 'BAD_RESPONSE');
  t.regex(error?.message ?? '', /\/v1\/big exceeds 1024 bytes/);
});

test('a transport failure keeps its own code for the caller to explain', async (t) => {
  const { url, agent } = await serve(t, (_req, res) => res.end('{}'));
  const port = Number(new URL(url).port);
  const closed = `https://127.0.0.1:${port === 1 ? 2 : 1}`;
  const error = await t.throwsAsync(requestJson({ method: 'GET', url: closed, agent, timeoutMs: 5000 }));
  t.is((error as { code?: string }).code, 'ECONNREFUSED');
});

test('the request socket is handed out with whether it was reused', async (t) => {
  const { url, agent } = await serve(t, (_req, res) => res.end('{}'));
  const reused: boolean[] = [];
  for (let i = 0; i < 2; i += 1) {
    await requestJson({ method: 'GET', url, agent, timeoutMs: 5000, onSocket: (_s, r) => reused.push(r) });
  }
  t.deepEqual(reused, [false, true]);
});

test('retry rule: 5xx, 429 and 408 are temporary; every other status is permanent', (t) => {
  for (const status of [500, 502, 503, 504, 429, 408]) t.true(isRetryableStatus(status), String(status));
  for (const status of [400, 401, 403, 404, 409, 410, 413, 422])
    t.false(isRetryableStatus(status), String(status));
});

test('answerError keeps the server code, words and details, redacts secrets, and can mark the class', (t) => {
  class ServerWords extends CodedError {}
  const error = answerError(
    503,
    { error: { code: 'BUSY', message: 'retry later, Bearer s3cret-cred', details: { field: 'x' } } },
    {
      fallbackMessage: 'HTTP 503',
      redact: ['s3cret-cred', ''],
      details: { path: '/v1/x' },
      errorClass: ServerWords,
    },
  );
  t.true(error instanceof ServerWords);
  t.is(error.code, 'BUSY');
  t.is(error.message, 'retry later, Bearer [REDACTED]');
  t.is(error.httpStatus, 503);
  t.true(error.temporary);
  t.deepEqual(error.details, { field: 'x', path: '/v1/x' });
  const bare = answerError(404, undefined, { fallbackMessage: 'HTTP 404' });
  t.is(bare.code, 'HTTP_404');
  t.is(bare.message, 'HTTP 404');
  t.false(bare.temporary);
  t.is(bare.details, undefined);
});

test('answerError redacts a secret from the code, and from details at any depth, keys and JSON-in-strings too, whatever the secret', (t) => {
  const token = 'vpe_0123456789abcdef_SECRETsecretSECRET';
  const echoed = answerError(
    400,
    {
      error: {
        code: token,
        message: 'no',
        details: {
          request: { token, nested: [{ again: `x${token}y` }] },
          raw: JSON.stringify({ body: JSON.stringify({ token }) }),
          [token]: 1,
        },
      },
    },
    { fallbackMessage: 'f', redact: [token] },
  );
  t.false(
    JSON.stringify({ code: echoed.code, message: echoed.message, details: echoed.details }).includes(token),
  );
  t.is(echoed.code, '[REDACTED]');
  // A short secret that is also JSON syntax used to make the redaction throw (SyntaxError: an
  // INTERNAL_ERROR the agent retried for good instead of failing closed).
  const short = answerError(
    401,
    { error: { code: 'NO', message: 'm', details: { n: 12, s: '1' } } },
    {
      fallbackMessage: 'f',
      redact: ['1'],
    },
  );
  t.deepEqual(short.details, { n: 12, s: '[REDACTED]' });
  // Deep nesting ends in a marker, not a stack overflow.
  let deep: unknown = 'leaf';
  for (let i = 0; i < 10_000; i += 1) deep = { d: deep };
  t.notThrows(() =>
    answerError(
      500,
      { error: { code: 'X', message: 'm', details: deep } },
      { fallbackMessage: 'f', redact: ['s'] },
    ),
  );
});
