import { createServer, type Server } from 'node:net';
import test from 'ava';
import { startHealthServer } from '../../src/agent/health-server.ts';
import { checkPaths, parsePathCheck, probeTcp } from '../../src/agent/path-checks.ts';

async function listeningTcpServer(t: { teardown(fn: () => void): void }): Promise<number> {
  const server: Server = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no address');
  return address.port;
}

/** A port that was just free: listen on 0, note the port, close. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('no address');
  return address.port;
}

test('healthz is always ok; readyz follows the readiness function', async (t) => {
  let ready = false;
  const server = await startHealthServer({
    host: '127.0.0.1',
    port: 0,
    readiness: () => ({
      ready,
      lastHeartbeatAt: ready ? '2026-01-01T00:00:00.000Z' : null,
      state: ready ? 'online' : null,
      lastReportedState: ready ? 'online' : null,
      detail: ready ? 'fine' : 'no heartbeat accepted yet',
    }),
  });
  t.teardown(() => server.close());
  const healthz = await fetch(`${server.url}/healthz`);
  t.is(healthz.status, 200);
  t.deepEqual(await healthz.json(), { status: 'ok' });
  const notReady = await fetch(`${server.url}/readyz`);
  t.is(notReady.status, 503);
  t.is(((await notReady.json()) as { detail: string }).detail, 'no heartbeat accepted yet');
  ready = true;
  const nowReady = await fetch(`${server.url}/readyz`);
  t.is(nowReady.status, 200);
  t.like(await nowReady.json(), { status: 'ready', state: 'online' });
  t.is((await fetch(`${server.url}/other`)).status, 404);
  t.is((await fetch(`${server.url}/healthz`, { method: 'POST' })).status, 405);
  await server.close();
  await server.close();
  t.pass('closing twice is harmless');
});

test('a TCP path check is healthy when something listens and unhealthy with the reason when not', async (t) => {
  const open = await listeningTcpServer(t);
  const closed = await closedPort();
  const results = await checkPaths(
    [
      { name: 'db', host: '127.0.0.1', port: open },
      { name: 'gone', host: '127.0.0.1', port: closed },
    ],
    1000,
  );
  t.deepEqual(results[0], { name: 'db', healthy: true });
  t.is(results[1]?.name, 'gone');
  t.false(results[1]?.healthy);
  t.regex(results[1]?.detail ?? '', new RegExp(`connect to 127\\.0\\.0\\.1:${closed} failed: ECONNREFUSED`));
  t.false((await probeTcp({ name: 'x', host: 'no-such-host.invalid', port: 1 }, 1000)).healthy);
});

test('path check syntax errors say what is wrong', (t) => {
  t.deepEqual(parsePathCheck('db=10.0.0.5:5432'), { name: 'db', host: '10.0.0.5', port: 5432 });
  t.regex(parsePathCheck('=h:1') as string, /must look like name=host:port/);
  t.regex(parsePathCheck('DB=h:1') as string, /path name "DB" must be lowercase/);
  t.regex(parsePathCheck('db=h') as string, /must be host:port/);
  t.regex(parsePathCheck('db=h:0') as string, /port from 1 to 65535/);
});
