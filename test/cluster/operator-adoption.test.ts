// An adopted workload (spec.workloadRef) is watched narrowly: its object by name and its pods by its
// own selector. The operator here resyncs only every 60 s, so each change below reaching the status
// within 20 s proves that a watch, not a resync, woke the Connector.
import {
  AppsV1Api,
  CoreV1Api,
  EventsV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1Deployment,
} from '@kubernetes/client-node';
import test from 'ava';
import type { Connector } from '../../src/operator/api/types.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually, isGone } from '../helpers/eventually.ts';
import { connectors, type OperatorEnvironment, startOperatorEnvironment } from '../helpers/operator-env.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;

test.serial.before(async () => {
  env = await startOperatorEnvironment(cluster());
  await env.startOperator({ resyncMs: 60_000 });
});
test.after.always(async () => {
  await env?.stop();
});

const condition = (c: Connector, type: string) => c.status?.conditions?.find((x) => x.type === type);
const WITHIN_WATCH = { timeoutMs: 20_000 };

function legacyDeployment(volume: Record<string, unknown>): V1Deployment {
  return {
    metadata: { name: 'legacy-connector' },
    spec: {
      replicas: 1,
      // A connector on a ReadWriteOnce claim is replaced, not rolled: the old pod goes first.
      strategy: { type: 'Recreate' },
      selector: { matchLabels: { app: 'legacy-connector' } },
      template: {
        metadata: { labels: { app: 'legacy-connector' } },
        spec: {
          containers: [
            {
              name: 'connector',
              image: 'vaultpam-connector:legacy',
              env: [{ name: 'PAM_AGENT_DATA_DIR', value: '/var/lib/vaultpam' }],
              volumeMounts: [{ name: 'state', mountPath: '/var/lib/vaultpam' }],
            },
          ],
          volumes: [{ name: 'state', ...volume }],
        },
      },
    },
  };
}

test.serial(
  'a workload created after its Connector, and a pod replaced onto other storage, reach the status by watch',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'adoptwatch');
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    await eventually(() => core.readNamespacedServiceAccount({ namespace, name: 'default' }), {
      description: 'default ServiceAccount',
    });
    const api = connectors(kc);
    // The Connector first: its first passes find no workload at all.
    await api.create(namespace, {
      metadata: { name: 'legacy', namespace },
      spec: {
        connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: [] },
        workloadRef: { kind: 'Deployment', name: 'legacy-connector' },
      },
    });
    await eventually(() => api.get(namespace, 'legacy').then((c) => c.status?.phase !== undefined), {
      description: 'first status without a workload',
    });

    await apps.createNamespacedDeployment({ namespace, body: legacyDeployment({ emptyDir: {} }) });
    const onEmptyDir = await eventually(
      () =>
        api
          .get(namespace, 'legacy')
          .then((c) =>
            c.status?.storage?.podName && c.status.storage.source === 'EmptyDir' ? c : undefined,
          ),
      { description: 'the adopted pod on emptyDir', ...WITHIN_WATCH },
    );
    t.is(condition(onEmptyDir, 'DurableStorage')?.reason, 'EmptyDir');
    t.is(onEmptyDir.status?.mode, 'GuidedRecovery');
    const firstPod = onEmptyDir.status?.storage?.podName ?? '';
    t.regex(firstPod, /^legacy-connector-/);
    const warning = await eventually(
      async () => {
        const events = await kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
        return events.items.find((e) => e.type === 'Warning' && e.reason === 'StorageEmptyDir');
      },
      { description: 'a Warning Event naming pod and volume' },
    );
    t.true(warning.note?.includes(firstPod), warning.note);
    t.true(warning.note?.includes('"state"'), warning.note);
    // Adopted: the operator builds no StatefulSet of its own.
    t.true(await isGone(() => apps.readNamespacedStatefulSet({ namespace, name: 'legacy' })));

    // The user moves the data directory onto a claim: a new ReplicaSet and a new pod.
    await core.createNamespacedPersistentVolumeClaim({
      namespace,
      body: {
        metadata: { name: 'legacy-state' },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
      },
    });
    await apps.patchNamespacedDeployment(
      {
        namespace,
        name: 'legacy-connector',
        body: legacyDeployment({ persistentVolumeClaim: { claimName: 'legacy-state' } }),
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const onClaim = await eventually(
      () =>
        api
          .get(namespace, 'legacy')
          .then((c) => (c.status?.storage?.source === 'PersistentVolumeClaim' ? c : undefined)),
      { description: 'the replacement pod on the claim', ...WITHIN_WATCH },
    ).catch(async (error: Error) => {
      const pods = await core.listNamespacedPod({ namespace });
      const last = await api.get(namespace, 'legacy');
      throw new Error(
        `${error.message}; pods: ${pods.items.map((p) => `${p.metadata?.name}@${p.metadata?.creationTimestamp?.toISOString()}`).join(', ')}; storage: ${JSON.stringify(last.status?.storage)}`,
      );
    });
    t.is(onClaim.status?.storage?.claimName, 'legacy-state');
    t.not(onClaim.status?.storage?.podName, firstPod);
  },
);
