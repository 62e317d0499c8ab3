// Two operator replicas: only the Lease holder acts; when the leader dies without releasing the
// Lease, the standby takes over after it expires and carries on from the cluster's state alone.
import { CoordinationV1Api, CoreV1Api } from '@kubernetes/client-node';
import test from 'ava';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { connectors, type OperatorEnvironment, startOperatorEnvironment } from '../helpers/operator-env.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;

test.serial.before(async () => {
  env = await startOperatorEnvironment(cluster());
});
test.after.always(async () => {
  await env?.stop();
});

const spec = { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: [] } };

async function reconcileCount(metrics: {
  registry: {
    getSingleMetric(name: string): { get(): Promise<{ values: Array<{ value: number }> }> } | undefined;
  };
}) {
  const metric = await metrics.registry.getSingleMetric('vaultpam_operator_reconciles_total')?.get();
  return metric?.values.reduce((sum, v) => sum + v.value, 0) ?? 0;
}

test.serial(
  'a standby replica does nothing while the leader holds the lease; killing the leader hands over',
  async (t) => {
    const { kc } = cluster();
    const core = kc.makeApiClient(CoreV1Api);
    const api = connectors(kc);
    const first = await env.startOperator();
    await eventually(() => first.isLeader(), { description: 'first replica leads' });
    const second = await env.startOperator();
    await second.ready();

    const namespace = await createTestNamespace(kc, 'lead');
    await api.create(namespace, { metadata: { name: 'one', namespace }, spec });
    await eventually(() => core.readNamespacedSecret({ namespace, name: 'one-enrollment-token' }), {
      description: 'leader acted',
    });
    t.false(second.isLeader());
    t.is(await reconcileCount(second.metrics as never), 0, 'the standby reconciled nothing');
    t.is(await second.metrics.totalWrites({ excludeKinds: ['Lease'] }), 0, 'and wrote nothing');

    // The leader dies: it stops renewing and never releases the lease.
    await first.stop({ release: false });
    await eventually(() => second.isLeader(), {
      description: 'standby takes over after the lease expires',
      timeoutMs: 20_000,
    });
    await api.create(namespace, { metadata: { name: 'two', namespace }, spec });
    await eventually(() => core.readNamespacedSecret({ namespace, name: 'two-enrollment-token' }), {
      description: 'new leader acted',
    });
    t.true((await reconcileCount(second.metrics as never)) > 0);
    const lease = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({
      namespace: 'vaultpam-system',
      name: 'vaultpam-connector-operator',
    });
    t.is(lease.spec?.holderIdentity, 'operator-2');
    t.true((lease.spec?.leaseTransitions ?? 0) >= 1);
  },
);
