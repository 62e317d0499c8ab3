// The per-connector series the alerts read, from a real operator (as its ServiceAccount, against the
// real API server and the reference control plane) scraped over HTTP as Prometheus scrapes it: a
// Connector's phase, live token and certificate expiry follow its status from the first token to
// Online, its series go with it when it is deleted, the exposition passes `promtool check metrics`,
// and no token is ever in it.
import test from 'ava';
import type { Connector } from '../../src/operator/api/types.ts';
import type { RunningOperator } from '../../src/operator/operator.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually, isGone } from '../helpers/eventually.ts';
import { connectors, type OperatorEnvironment, startOperatorEnvironment } from '../helpers/operator-env.ts';
import { promtool } from './promtool.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;
let operator: RunningOperator;

test.serial.before(async () => {
  env = await startOperatorEnvironment(cluster(), { heartbeatIntervalSeconds: 2 });
  operator = await env.startOperator();
});
test.after.always(async () => {
  await env?.stop();
});

/** /metrics as Prometheus reads it: HTTPS, a ServiceAccount token bound to the metrics-reader role. */
async function scrape(): Promise<string> {
  const response = await env.scrapeMetrics(operator);
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  return response.text;
}

/** The samples of one metric for one Connector, as `label=value,... value` without namespace and name. */
function samplesOf(text: string, metric: string, namespace: string, name: string): string[] {
  const prefix = `${metric}{namespace="${namespace}",name="${name}"`;
  return text
    .split('\n')
    .filter((line) => line.startsWith(prefix))
    .map((line) => line.slice(prefix.length).replace(/^,/, '').replace('}', ''));
}

const seconds = (time: string | undefined) => String(Date.parse(time ?? '') / 1000);
const spec = { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] } };

test.serial(
  'the series of a Connector follow its status from its first token to Online, and go when it is deleted',
  async (t) => {
    const namespace = await createTestNamespace(cluster().kc, 'metrics');
    const api = connectors(cluster().kc);
    await api.create(namespace, { metadata: { name: 'edge', namespace }, spec });

    // A token minted and not used yet: phase, token expiry and mint time as status says.
    const enrolling = await eventually(
      async () => {
        const c = await api.get(namespace, 'edge');
        if (!c.status?.enrollment?.tokenSecretName || !c.status.phase) return undefined;
        const text = await scrape();
        const phase = samplesOf(text, 'vaultpam_operator_connector_phase', namespace, 'edge');
        return phase.length === 1 && phase[0] === `phase="${c.status.phase}" 1` ? { c, text } : undefined;
      },
      { description: 'a live token and the phase in the scrape' },
    );
    const status = (enrolling.c as Connector).status;
    // status.liveToken names the same token (kubectl get's Token Expiry column).
    t.deepEqual(status?.liveToken, {
      expiresAt: status?.enrollment?.tokenExpiresAt,
      mintedAt: status?.enrollment?.tokenMintedAt,
      mintedFor: 'Enrollment',
    });
    t.deepEqual(
      samplesOf(
        enrolling.text,
        'vaultpam_operator_connector_token_expiry_timestamp_seconds',
        namespace,
        'edge',
      ),
      [`minted_for="enrollment" ${seconds(status?.enrollment?.tokenExpiresAt)}`],
    );
    t.deepEqual(
      samplesOf(
        enrolling.text,
        'vaultpam_operator_connector_token_minted_timestamp_seconds',
        namespace,
        'edge',
      ),
      [`minted_for="enrollment" ${seconds(status?.enrollment?.tokenMintedAt)}`],
    );
    t.deepEqual(
      samplesOf(
        enrolling.text,
        'vaultpam_operator_connector_certificate_expiry_timestamp_seconds',
        namespace,
        'edge',
      ),
      [],
    );

    // Paired and Online: no live token, the certificate's expiry as status says.
    const pod = await env.runAgent(namespace, 'edge');
    t.teardown(() => pod.stop());
    const online = await eventually(
      async () => {
        const c = await api.get(namespace, 'edge');
        if (
          c.status?.phase !== 'Online' ||
          c.status.enrollment?.tokenSecretName ||
          !c.status.identity?.notAfter
        ) {
          return undefined;
        }
        const text = await scrape();
        return samplesOf(text, 'vaultpam_operator_connector_phase', namespace, 'edge')[0] ===
          'phase="Online" 1'
          ? { c, text }
          : undefined;
      },
      { description: 'Online in status and in the scrape', timeoutMs: 60_000 },
    );
    t.deepEqual(samplesOf(online.text, 'vaultpam_operator_connector_phase', namespace, 'edge'), [
      'phase="Online" 1',
    ]);
    t.deepEqual(
      samplesOf(online.text, 'vaultpam_operator_connector_token_expiry_timestamp_seconds', namespace, 'edge'),
      [],
    );
    t.deepEqual(samplesOf(online.text, 'vaultpam_operator_connector_stalled', namespace, 'edge'), []);
    t.deepEqual(
      samplesOf(
        online.text,
        'vaultpam_operator_connector_certificate_expiry_timestamp_seconds',
        namespace,
        'edge',
      ),
      [` ${seconds(online.c.status?.identity?.notAfter)}`],
    );
    t.notRegex(online.text + enrolling.text, /vpe_[0-9a-f]{16}_/, 'no enrollment token in /metrics');

    const lint = await promtool(['check', 'metrics'], undefined, online.text);
    t.is(lint.code, 0, lint.stdout + lint.stderr);

    // Deleted: once the finalizer released it and it is gone from the cache, so are its series.
    await pod.stop();
    await api.delete(namespace, 'edge');
    await eventually(() => isGone(() => api.get(namespace, 'edge')), { description: 'Connector deleted' });
    const after = await eventually(
      async () => {
        const text = await scrape();
        return text.includes(`name="edge"`) && text.includes(`namespace="${namespace}"`) ? undefined : text;
      },
      { description: 'no series of the deleted Connector' },
    );
    t.false(after.includes(`namespace="${namespace}",name="edge"`));
  },
);
