// The operator's own writes come back to it as watch events (their echoes): the finalizer it adds,
// every status it writes, the objects it creates. The pass that wrote knows what it wrote, so an echo
// wakes no pass of its own; anyone else's change, before or after the operator's, still does. Against
// the real API server: the versions the operator's writer produced are told apart in a real watch,
// and an operator reconciles a Connector that stops at a gate once, not once per write.
import { CoreV1Api, type V1ConfigMap } from '@kubernetes/client-node';
import test from 'ava';
import type { Connector } from '../../src/operator/api/types.ts';
import type { RunningOperator } from '../../src/operator/operator.ts';
import { KubeWriter } from '../../src/operator/runtime/apply.ts';
import { Informer } from '../../src/operator/runtime/informers.ts';
import { OwnVersions } from '../../src/operator/runtime/own-versions.ts';
import { unlessOwnCreation } from '../../src/operator/runtime/owned-events.ts';
import { RESOURCE_TYPES } from '../../src/operator/runtime/resources.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { connectors, type OperatorEnvironment, startOperatorEnvironment } from '../helpers/operator-env.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;
let operator: RunningOperator;

test.serial.before(async () => {
  env = await startOperatorEnvironment(cluster());
  operator = await env.startOperator();
});
test.after.always(async () => {
  await env?.stop();
});

test.serial("a watch tells the add of the writer's own creation from anyone else's", async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'own-adds');
  const ownVersions = new OwnVersions([RESOURCE_TYPES.configMap.kind]);
  const writer = new KubeWriter({ kc, logger: captureLogs().logger, ownVersions });
  const adds = new Map<string, boolean>();
  const informer = new Informer<V1ConfigMap>({
    kc,
    logger: captureLogs().logger,
    type: RESOURCE_TYPES.configMap,
    namespace,
    labelSelector: 'app=c',
  });
  informer.addHandlers({
    onAdd: (cm) => {
      const name = cm.metadata?.name ?? '';
      adds.set(name, true);
      unlessOwnCreation(ownVersions, cm, () => adds.set(name, false));
    },
  });
  informer.start();
  t.teardown(() => informer.stop());
  await informer.waitForSync(AbortSignal.timeout(30_000));

  const configMap = (name: string): V1ConfigMap => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace, labels: { app: 'c' } },
    data: { a: '1' },
  });
  await writer.apply(configMap('mine'), { dryRun: true });
  t.is(ownVersions.size(), 0, 'a dry run produces no version');
  await writer.apply(configMap('mine'));
  await kc.makeApiClient(CoreV1Api).createNamespacedConfigMap({ namespace, body: configMap('theirs') });
  await eventually(() => adds.size === 2, { description: 'both adds watched' });
  t.true(adds.get('mine'), "the writer's own creation");
  t.false(adds.get('theirs'), "another writer's");
  t.is(ownVersions.size(), 0, 'the echo was taken');
});

test.serial(
  'a Connector that stops at a gate is reconciled once: its finalizer and status echoes wake no pass',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'echoes');
    const reconciles = async () =>
      (
        await operator.metrics.registry.getSingleMetric('vaultpam_operator_reconciles_total')?.get()
      )?.values.reduce((sum, v) => sum + v.value, 0) ?? 0;
    const before = await reconciles();
    const api = connectors(kc);
    // Its workload does not exist: the pass adds the finalizer, writes Stalled WorkloadNotFound, and
    // has nothing else to do until that workload appears.
    await api.create(namespace, {
      metadata: { name: 'edge', namespace },
      spec: {
        connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] },
        workloadRef: { kind: 'StatefulSet', name: 'absent' },
      } as Connector['spec'],
    });
    const stalled = await eventually(
      () =>
        api
          .get(namespace, 'edge')
          .then((c) =>
            c.status?.conditions?.find((x) => x.type === 'Stalled' && x.reason === 'WorkloadNotFound'),
          ),
      { description: 'Stalled WorkloadNotFound' },
    );
    t.truthy(stalled);
    // The pass is counted once it ended, after the status it wrote is there to read.
    await eventually(async () => (await reconciles()) - before >= 1, {
      description: 'the pass counted',
      timeoutMs: 60_000,
    });
    // Two seconds for the echoes to arrive and for any pass they would queue to run.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    t.is(
      (await reconciles()) - before,
      1,
      'one pass: the finalizer and the status it wrote came back as echoes only',
    );

    // A change by someone else is not an echo: a label wakes a pass.
    await api.patchSpec(namespace, 'edge', { metadata: { labels: { team: 'x' } } });
    await eventually(async () => (await reconciles()) - before === 2, {
      description: 'the label is reconciled',
    });
  },
);
