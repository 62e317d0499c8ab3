// A metric label is a series the operator keeps for its lifetime, so no label value may be chosen
// by someone else. A control plane is chosen by a namespace admin (a ControlPlane may name any
// server): one that answers every call with an error code of its own making must not add a series
// of vaultpam_operator_reconcile_errors_total per answer. Against the real API server, the
// operator as its ServiceAccount and a real HTTPS server playing that control plane.
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { CoreV1Api } from '@kubernetes/client-node';
import test from 'ava';
import { selfSignedCertificate } from '../helpers/certificates.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { connectors, controlPlaneResources, startOperatorEnvironment } from '../helpers/operator-env.ts';

const cluster = useCluster(test);
const logs = captureLogs('operator-metric-labels');

test('error codes a control plane makes up are one label, UNRECOGNIZED_CODE, and still quoted in the condition', async (t) => {
  const env = await startOperatorEnvironment(cluster(), { logger: logs.logger });
  t.teardown(() => env.stop());
  const operator = await env.startOperator();
  const { certPem, keyPem } = await selfSignedCertificate({ commonName: '127.0.0.1', sanIps: ['127.0.0.1'] });
  let errorAnswers = 0;
  const server = createServer({ key: keyPem, cert: certPem }, (request, response) => {
    response.setHeader('content-type', 'application/json');
    if (request.url === '/v1/admin/whoami') {
      response.end(JSON.stringify({ ok: true }));
      return;
    }
    errorAnswers += 1;
    response.statusCode = 503;
    response.end(JSON.stringify({ error: { code: `Busy_${errorAnswers}`, message: 'busy' } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'labels');
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespacedSecret({
    namespace,
    body: {
      metadata: { name: 'cred', annotations: { 'vaultpam.io/control-plane-url': url } },
      stringData: { credential: 'namespace-admin-credential-0123' },
    },
  });
  await core.createNamespacedConfigMap({
    namespace,
    body: { metadata: { name: 'ca' }, data: { 'ca.crt': certPem } },
  });
  await controlPlaneResources(kc).create(namespace, 'theirs', {
    url,
    caConfigMapRef: { name: 'ca' },
    credentialSecretRef: { name: 'cred' },
  });
  for (const name of ['a', 'b']) {
    await connectors(kc).create(namespace, {
      metadata: { name, namespace },
      spec: {
        connector: { org: 'acme', endpointId: `ep-${name}` },
        controlPlaneRef: { kind: 'ControlPlane', name: 'theirs' },
      },
    });
  }

  const metrics = async () => (await env.scrapeMetrics(operator)).text;
  const errorSeries = await eventually(
    async () => {
      const series = (await metrics())
        .split('\n')
        .filter((line) => line.startsWith('vaultpam_operator_reconcile_errors_total{'));
      // Several distinct made-up codes answered and counted: the label set has seen them all.
      return errorAnswers >= 6 && series.some((line) => line.includes('UNRECOGNIZED_CODE'))
        ? series
        : undefined;
    },
    { timeoutMs: 60_000, description: 'reconcile errors counted after six made-up codes' },
  );
  t.deepEqual(
    errorSeries.filter((line) => line.includes('Busy_')),
    [],
    'no series is named by a code the server made up',
  );
  t.regex(errorSeries.join('\n'), /\{code="UNRECOGNIZED_CODE"\} [1-9]/);
  // The person still sees what the server said: the condition quotes its code.
  const quoted = await eventually(async () => {
    const reconciling = (await connectors(kc).get(namespace, 'a')).status?.conditions?.find(
      (c) => c.type === 'Reconciling' || c.type === 'Stalled',
    );
    return /Busy_\d+/.test(reconciling?.message ?? '') ? reconciling?.message : undefined;
  });
  t.regex(quoted, /Busy_\d+: .*busy/);
});
