// Who may read the operator's /metrics, against the suite's real kube-apiserver: the operator as
// installed (its ServiceAccount, the shipped RBAC), its metrics listener on HTTPS, and callers with
// real ServiceAccount tokens from the TokenRequest API. /metrics names every tenant's Connectors, so
// only a token whose user the API server authorizes for get on /metrics reads it (Prometheus' with
// the ClusterRole vaultpam-connector-operator-metrics-reader bound); the probes stay plain and open.
import { connect as tlsConnect } from 'node:tls';
import { KubeConfig } from '@kubernetes/client-node';
import test from 'ava';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { scrapeMetrics, serviceAccountToken } from '../helpers/metrics-scrape.ts';
import { connectors, startOperatorEnvironment } from '../helpers/operator-env.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';

const cluster = useCluster(test);

test.serial(
  '/metrics: 401 without a token or with one the API server rejects, 403 without the role, 200 with it; probes stay plain',
  async (t) => {
    const logs = captureLogs('operator', 'debug');
    const environment = await startOperatorEnvironment(cluster(), { logger: logs.logger });
    t.teardown(() => environment.stop());
    const { kc } = cluster();
    const tenant = await createTestNamespace(kc, 'tenant');
    await connectors(kc).create(tenant, {
      metadata: { name: 'payroll-db', namespace: tenant },
      spec: { connector: { org: 'acme', endpointId: 'ep-payroll' } },
    });
    const operator = await environment.startOperator();
    const endpoint = operator.metricsEndpoint;
    if (!endpoint) throw new Error('no metrics endpoint');
    t.regex(endpoint.url, /^https:\/\/127\.0\.0\.1:\d+$/);

    const readerToken = await environment.metricsReaderToken();
    // A pod of another tenant: a real ServiceAccount, nothing bound to it.
    const strangerToken = await serviceAccountToken(kc, await createTestNamespace(kc, 'other'), 'curious', {
      reader: false,
    });
    const garbage = `eyJhbGciOiJSUzI1NiJ9.${'x'.repeat(40)}.not-a-signature`;

    const allowed = await eventually(
      async () => {
        const answer = await scrapeMetrics(endpoint, { token: readerToken });
        return answer.status === 200 && answer.text.includes('name="payroll-db"') && answer;
      },
      { description: "the reader's scrape shows the tenant's Connector" },
    );
    t.true(allowed.text.includes(`namespace="${tenant}"`));
    t.true(String(allowed.headers['content-type']).startsWith('text/plain'));

    const anonymous = await scrapeMetrics(endpoint);
    t.is(anonymous.status, 401, 'no token: 401');
    t.regex(String(anonymous.headers['www-authenticate']), /^Bearer/);
    const notBearer = await scrapeMetrics(endpoint, { headers: { authorization: `Basic ${btoa('a:b')}` } });
    t.is(notBearer.status, 401, 'no bearer token: 401');
    const rejected = await scrapeMetrics(endpoint, { token: garbage });
    t.is(rejected.status, 401, 'a token the API server does not authenticate: 401');
    const stranger = await scrapeMetrics(endpoint, { token: strangerToken });
    t.is(stranger.status, 403, 'a real ServiceAccount without the role: 403');
    t.regex(JSON.parse(stranger.text).message, /vaultpam-connector-operator-metrics-reader/);
    // Twice: the cached refusal answers the same.
    t.is((await scrapeMetrics(endpoint, { token: strangerToken })).status, 403);
    t.is(
      (
        await scrapeMetrics(endpoint, {
          token: readerToken,
          path: '/metrics?name[]=vaultpam_operator_leader',
        })
      ).status,
      200,
    );
    for (const refused of [anonymous, notBearer, rejected, stranger]) {
      t.false(refused.text.includes('payroll-db'), 'a refusal names no Connector');
      t.false(refused.text.includes(tenant), 'a refusal names no tenant namespace');
    }
    // Any other path is 404 before the token is looked at (it serves nothing), with or without one.
    t.is((await scrapeMetrics(endpoint, { path: '/nope' })).status, 404);
    t.is((await scrapeMetrics(endpoint, { path: '/nope', token: readerToken })).status, 404);

    // The probes: plain HTTP, no credentials (kubelet's), and no metrics there.
    const probes = `http://${operator.address?.host}:${operator.address?.port}`;
    t.is((await fetch(`${probes}/healthz`)).status, 200);
    t.true([200, 503].includes((await fetch(`${probes}/readyz`)).status));
    const metricsOnProbes = await fetch(`${probes}/metrics`);
    t.is(metricsOnProbes.status, 404);
    t.false((await metricsOnProbes.text()).includes('payroll-db'));
    // And the metrics listener speaks no plain HTTP, not even to the reader's token: no answer at
    // all (Node's TLS server closes a connection whose first bytes are no TLS), never the metrics.
    // (Before, this checked a request with no token, whose 401 would have passed as well, and then
    // accepted ECONNREFUSED, which passed with nothing listening.) A TLS handshake first proves a
    // listener is there, so a refused connection is a failure.
    const { hostname, port } = new URL(endpoint.url);
    await new Promise<void>((resolve, reject) => {
      const socket = tlsConnect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', reject);
    });
    const plain = await scrapeMetrics(
      { url: endpoint.url.replace('https:', 'http:') },
      { token: readerToken },
    ).then(
      (answer) => `answered ${answer.status}: ${answer.text.slice(0, 80)}`,
      (error: { code?: string }) => error.code ?? 'failed',
    );
    t.true(['ECONNRESET', 'EPIPE', 'HPE_INVALID_CONSTANT'].includes(plain), plain);

    await operator.stop();
    assertNoSecrets(t, "the operator's log", logs.text(), [readerToken, strangerToken, garbage]);
    t.true(
      logs.records().some((record) => String(record.msg).includes('not authorized')),
      'the refusal is logged (with the user, not the token)',
    );
  },
);

test.serial('/metrics: 503, never the metrics, when the API server cannot be asked', async (t) => {
  const logs = captureLogs('operator', 'debug');
  const environment = await startOperatorEnvironment(cluster(), { logger: logs.logger });
  t.teardown(() => environment.stop());
  const readerToken = await environment.metricsReaderToken();
  // The operator's own credentials, sent to a port where no API server listens.
  const { createServer } = await import('node:net');
  const closed = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
  const config = environment.operatorKubeConfig.exportConfig();
  const server = environment.operatorKubeConfig.getCurrentCluster()?.server ?? '';
  const unreachable = new KubeConfig();
  unreachable.loadFromString(config.replaceAll(server, `https://127.0.0.1:${closed}`));
  const operator = await environment.startOperator({ kc: unreachable, leaderElection: undefined });
  const endpoint = operator.metricsEndpoint;
  if (!endpoint) throw new Error('no metrics endpoint');
  for (const token of [readerToken, 'garbage-token-that-is-long-enough']) {
    const answer = await scrapeMetrics(endpoint, { token });
    t.is(answer.status, 503, 'the API server cannot be asked: 503');
    t.is(answer.headers['retry-after'], '1');
    t.false(answer.text.includes('vaultpam_operator_'), 'no metric in the answer');
  }
  t.is((await scrapeMetrics(endpoint)).status, 401, 'without any token there is nothing to ask: 401');
  // Not cached: the next scrape asks again (and fails again while the server is away).
  t.is((await scrapeMetrics(endpoint, { token: readerToken })).status, 503);
  const probes = `http://${operator.address?.host}:${operator.address?.port}`;
  t.is((await fetch(`${probes}/healthz`)).status, 200, 'the probes answer without the API server');
  await operator.stop();
  assertNoSecrets(t, "the operator's log", logs.text(), [readerToken, 'garbage-token-that-is-long-enough']);
  t.true(logs.text().includes('answered 503'), 'the failure is logged');
});
