// The scale benchmark's read of the operator's metrics, against a real HTTP server that fails the
// way a busy operator's does: a connection closed before any answer is read again (one such failure
// ended a 10,000-connector run before its restart figure), a 429 or 503 (the operator could not
// review the token just then) is read again after its Retry-After, another refusal is not, and
// giving up names the cause. And the token it reads with is renewed before it expires (a run at
// 10,000 Connectors outlasts a token's hour).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { readOperatorMetrics } from '../../bench/scale-operator.ts';
import { renewedToken } from '../../dev/local-cluster/metrics-reader.ts';
import { FakeClock } from '../../src/lib/clock.ts';

/** A server on a free loopback port that answers each request with `answer(n)` (n from 1). */
async function serve(answer: (n: number, request: IncomingMessage, response: ServerResponse) => void) {
  let n = 0;
  const paths: string[] = [];
  const server = createServer((request, response) => {
    paths.push(request.url ?? '');
    answer(++n, request, response);
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    paths,
    close: () =>
      new Promise<void>((closed) => {
        server.closeAllConnections();
        server.close(() => closed());
      }),
  };
}

const METRICS = 'vaultpam_operator_leader 1\n';

test('a connection closed before the answer is read again, and the answer returned', async (t) => {
  const server = await serve((n, request, response) => {
    if (n <= 2) request.socket.destroy();
    else response.end(METRICS);
  });
  t.teardown(server.close);
  t.is(await readOperatorMetrics(server.url), METRICS);
  t.is(server.paths.length, 3, 'two failed reads, then the one answered');
  t.true(
    server.paths.every((path) => path.startsWith('/metrics?name[]=vaultpam_operator_')),
    'only the polled metrics are asked for',
  );
});

test('a transport failure every time gives up after the attempts, naming the URL and the cause', async (t) => {
  const server = await serve((_n, request) => request.socket.destroy());
  t.teardown(server.close);
  const error = await t.throwsAsync(readOperatorMetrics(server.url, 3));
  t.is(server.paths.length, 3);
  t.regex(error?.message ?? '', /failed 3 times in a row \(Error: socket hang up, ECONNRESET\)/);
  t.true(error?.message.includes(server.url));
});

test('an HTTP answer other than 200 is the operator saying no: not retried', async (t) => {
  const server = await serve((_n, _request, response) => {
    response.statusCode = 400;
    response.end('unknown metric name');
  });
  t.teardown(server.close);
  const error = await t.throwsAsync(readOperatorMetrics(server.url));
  t.is(server.paths.length, 1);
  t.is(error?.message, "the operator's /metrics answered 400: unknown metric name");
});

// Before: any answer but 200 ended the run, a 429 of a busy operator too.
test('a 429 or 503 is read again after its Retry-After, with the token asked for each read', async (t) => {
  const seen: Array<{ at: number; authorization: string | undefined }> = [];
  const server = await serve((n, request, response) => {
    seen.push({ at: Date.now(), authorization: request.headers.authorization });
    if (n === 1) {
      response.writeHead(429, { 'retry-after': '1' });
      response.end('{"code":"TOO_MANY_REVIEWS"}');
    } else if (n === 2) {
      response.writeHead(503, { 'retry-after': '1' });
      response.end('{"code":"AUTHORIZATION_UNAVAILABLE"}');
    } else response.end(METRICS);
  });
  t.teardown(server.close);
  let asked = 0;
  const token = async () => `token-${++asked}`;
  t.is(await readOperatorMetrics(server.url, 6, token), METRICS);
  t.deepEqual(
    seen.map((s) => s.authorization),
    ['Bearer token-1', 'Bearer token-2', 'Bearer token-3'],
  );
  for (const i of [1, 2]) {
    const waited = (seen[i]?.at ?? 0) - (seen[i - 1]?.at ?? 0);
    t.true(waited >= 950, `waited ${waited} ms: the Retry-After`);
  }
});

test('429s every time give up after the attempts', async (t) => {
  const server = await serve((_n, _request, response) => {
    response.writeHead(429, { 'retry-after': '0' });
    response.end('busy');
  });
  t.teardown(server.close);
  const error = await t.throwsAsync(readOperatorMetrics(server.url, 2));
  t.is(server.paths.length, 2);
  t.is(error?.message, "the operator's /metrics answered 429 2 times in a row: busy");
});

// Before: the benchmark asked for one token of an hour and read with it for the whole run.
test('the metrics token is asked for again once 80% of its lifetime has passed', async (t) => {
  const clock = new FakeClock(0);
  const asks: boolean[] = [];
  const token = renewedToken(async (first) => {
    asks.push(first);
    return { token: `t${asks.length}`, lifetimeMs: 3_600_000 };
  }, clock);
  t.is(await token(), 't1');
  clock.advance(2_879_000);
  t.is(await token(), 't1', 'within 80% of its hour: the same token');
  clock.advance(1_000);
  const [a, b] = await Promise.all([token(), token()]);
  t.deepEqual([a, b], ['t2', 't2'], 'renewed once for both callers');
  t.deepEqual(asks, [true, false], 'the ServiceAccount is set up once; then only tokens are asked for');
  clock.advance(2_880_000);
  t.is(await token(), 't3');
});

test('a failed token request is made again by the next read', async (t) => {
  let fail = true;
  const token = renewedToken(async () => {
    if (fail) throw new Error('the API server is away');
    return { token: 'ok', lifetimeMs: 3_600_000 };
  }, new FakeClock(0));
  await t.throwsAsync(token(), { message: 'the API server is away' });
  fail = false;
  t.is(await token(), 'ok');
});
