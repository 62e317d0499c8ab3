// The scale benchmark's read of the operator's metrics, against a real HTTP server that fails the
// way a busy operator's does: a connection closed before any answer is read again (one such failure
// ended a 10,000-connector run before its restart figure), an HTTP refusal is not, and giving up
// names the cause.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { readOperatorMetrics } from '../../bench/scale-operator.ts';

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
  t.regex(error?.message ?? '', /failed 3 times in a row \(TypeError: fetch failed: .+\)/);
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
