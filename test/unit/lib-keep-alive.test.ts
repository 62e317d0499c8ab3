// The keep-alive options of this package's clients: with them node's agent closes an idle connection
// when the server's Keep-Alive announcement says (less a second); without an idle timeout of its own
// it ignores the announcement, which is why the options carry one.
import { once } from 'node:events';
import { Agent, type AgentOptions, createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { KEEP_ALIVE_AGENT_OPTIONS } from '../../src/lib/keep-alive.ts';
import { selfSignedCertificate } from '../helpers/certificates.ts';

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/**
 * A server announcing 2 s that itself keeps idle connections a minute longer, and a client with
 * `options`; answers how many connections the server still has 2.5 s after one request.
 */
async function openAfterIdle(t: ExecutionContext, options: AgentOptions): Promise<number> {
  const { certPem, keyPem } = await selfSignedCertificate({ sanIps: ['127.0.0.1'] });
  const server = createServer({ cert: certPem, key: keyPem, keepAliveTimeout: 2_000 }, (_req, res) =>
    res.end('{}'),
  );
  server.keepAliveTimeoutBuffer = 60_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const agent = new Agent({ ca: certPem, ...options });
  t.teardown(() => {
    agent.destroy();
    server.closeAllConnections();
    server.close();
  });
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const announced = await new Promise<string | undefined>((resolve, reject) => {
    request(url, { agent }, (res) => {
      res.resume().on('end', () => resolve(res.headers['keep-alive'] as string | undefined));
    })
      .on('error', reject)
      .end();
  });
  t.is(announced, 'timeout=2');
  await sleep(2_500);
  return new Promise((resolve, reject) =>
    server.getConnections((error, n) => (error ? reject(error) : resolve(n))),
  );
}

test('with the options, the client closes an idle connection a second before the announced timeout', async (t) => {
  t.is(await openAfterIdle(t, KEEP_ALIVE_AGENT_OPTIONS), 0);
});

test("without an idle timeout, node's agent ignores the announcement and keeps the connection", async (t) => {
  t.is(await openAfterIdle(t, { keepAlive: true }), 1);
});
