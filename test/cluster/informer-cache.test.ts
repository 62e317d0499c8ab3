// What an informer's cache holds, against a real kube-apiserver: every object without
// metadata.managedFields (the field sets of every writer, which nothing in the operator reads and
// which would be a third or more of the operator's memory at scale), from the first list and from
// the watch alike, while everything else of the object is as the API server returned it; and the
// index by connector label (cache-index.ts) that finds one Connector's pods and claims without a scan;
// and the string pool (string-pool.ts) that keeps their shared strings once without changing a value.

import {
  CoreV1Api,
  type KubernetesObject,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
  type V1Pod,
} from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import { LABELS } from '../../src/operator/api/constants.ts';
import { byConnectorLabel } from '../../src/operator/cluster-reader.ts';
import { podAsCached } from '../../src/operator/reconcile/pod-cache.ts';
import { dataVolumeOf } from '../../src/operator/reconcile/storage-posture.ts';
import {
  Informer,
  type InformerHandlers,
  type InformerOptions,
} from '../../src/operator/runtime/informers.ts';
import { kubeClientOf } from '../../src/operator/runtime/kube-access.ts';
import { RESOURCE_TYPES } from '../../src/operator/runtime/resources.ts';
import { StringPool } from '../../src/operator/runtime/string-pool.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { captureLogs } from '../helpers/log-capture.ts';

const cluster = useCluster(test);

/**
 * An informer of the objects labelled app=c in `namespace`, with `handlers`, started, synced, and
 * stopped when the test ends.
 */
async function syncedInformer<T extends KubernetesObject>(
  t: ExecutionContext,
  options: Omit<InformerOptions<T>, 'kc' | 'logger' | 'labelSelector'> & { namespace: string },
  handlers: InformerHandlers<T> = {},
): Promise<Informer<T>> {
  const informer = new Informer<T>({
    kc: cluster().kc,
    labelSelector: 'app=c',
    logger: captureLogs().logger,
    ...options,
  });
  informer.addHandlers(handlers);
  informer.start();
  t.teardown(() => informer.stop());
  await informer.waitForSync(AbortSignal.timeout(30_000));
  return informer;
}

test('the cache keeps objects without managedFields, listed or watched, and the rest as served', async (t) => {
  const { kc } = cluster();
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = await createTestNamespace(kc, 'cache');
  const body = (name: string, v: string): V1ConfigMap => ({
    metadata: { name, labels: { app: 'c' } },
    data: { v },
  });
  await core.createNamespacedConfigMap({ namespace, body: body('listed', '1') });

  const updates: V1ConfigMap[] = [];
  const informer = await syncedInformer<V1ConfigMap>(
    t,
    { type: RESOURCE_TYPES.configMap, namespace },
    { onUpdate: (cm) => void updates.push(cm) },
  );

  // The API server does keep field managers for these objects: the cache leaves them out.
  const served = await core.readNamespacedConfigMap({ namespace, name: 'listed' });
  t.true((served.metadata?.managedFields?.length ?? 0) > 0, 'the API server returns managedFields');
  const listed = informer.get(namespace, 'listed');
  t.is(listed?.metadata?.managedFields, undefined, 'a listed object is cached without managedFields');
  t.is(listed?.metadata?.uid, served.metadata?.uid);
  t.is(listed?.metadata?.resourceVersion, served.metadata?.resourceVersion);
  t.deepEqual(listed?.data, { v: '1' });
  t.is(listed?.kind, 'ConfigMap');

  await core.createNamespacedConfigMap({ namespace, body: body('watched', '1') });
  await core.replaceNamespacedConfigMap({ namespace, name: 'listed', body: { ...served, data: { v: '2' } } });
  const watched = await eventually(() => informer.get(namespace, 'watched'), {
    description: 'the created ConfigMap reaches the cache through the watch',
  });
  t.is(watched.metadata?.managedFields, undefined, 'a watched object is cached without managedFields');
  const changed = await eventually(
    () =>
      informer.get(namespace, 'listed')?.data?.v === '2' ? informer.get(namespace, 'listed') : undefined,
    { description: 'the change reaches the cache' },
  );
  t.is(changed.metadata?.managedFields, undefined);
  t.true(updates.length > 0 && updates.every((cm) => cm.metadata?.managedFields === undefined));
});

test('the connector index finds one Connector’s objects as the watch adds, relabels and deletes them', async (t) => {
  const { kc } = cluster();
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = await createTestNamespace(kc, 'index');
  const body = (name: string, connector?: string): V1ConfigMap => ({
    metadata: { name, labels: { app: 'c', ...(connector ? { [LABELS.connector]: connector } : {}) } },
  });
  await core.createNamespacedConfigMap({ namespace, body: body('listed-a', 'a') });
  const informer = await syncedInformer<V1ConfigMap>(t, {
    type: RESOURCE_TYPES.configMap,
    namespace,
    index: byConnectorLabel,
  });
  const names = (connector: string) =>
    informer
      .byIndex(`${namespace}/${connector}`)
      .map((cm) => cm.metadata?.name)
      .sort();
  t.deepEqual(names('a'), ['listed-a'], 'a listed object is indexed');

  await core.createNamespacedConfigMap({ namespace, body: body('watched-b', 'b') });
  await core.createNamespacedConfigMap({ namespace, body: body('unlabelled') });
  await eventually(() => informer.get(namespace, 'unlabelled'), { description: 'the watch delivers both' });
  t.deepEqual(names('b'), ['watched-b']);
  t.deepEqual(names('a'), ['listed-a'], 'an object without the label is in no group');

  // Relabelled: it leaves its old group and joins the new one.
  await core.patchNamespacedConfigMap(
    { namespace, name: 'listed-a', body: { metadata: { labels: { [LABELS.connector]: 'b' } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  await eventually(() => (names('a').length === 0 ? true : undefined), {
    description: 'the relabelled object leaves group a',
  });
  t.deepEqual(names('b'), ['listed-a', 'watched-b']);

  await core.deleteNamespacedConfigMap({ namespace, name: 'watched-b' });
  await eventually(() => (names('b').length === 1 ? true : undefined), {
    description: 'the deleted object leaves its group',
  });
  t.deepEqual(names('b'), ['listed-a']);
  t.throws(
    () =>
      new Informer<V1ConfigMap>({ kc, type: RESOURCE_TYPES.configMap, logger: captureLogs().logger }).byIndex(
        'x',
      ),
    {
      message: /byIndex needs the index option/,
    },
  );
});

test('a transform decides what the cache keeps of listed and watched pods, and handlers see the same', async (t) => {
  const { kc } = cluster();
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = await createTestNamespace(kc, 'podcache');
  // Pods are admitted only once the namespace's default ServiceAccount exists.
  await eventually(() => core.readNamespacedServiceAccount({ namespace, name: 'default' }), {
    description: 'the default ServiceAccount',
  });
  const body = (name: string): V1Pod => ({
    metadata: { name, labels: { app: 'c' } },
    spec: {
      containers: [
        {
          name: 'connector',
          image: 'vaultpam-connector:test',
          env: [
            { name: 'PAM_AGENT_DATA_DIR', value: '/data' },
            { name: 'OTHER', value: 'x' },
          ],
          volumeMounts: [{ name: 'data', mountPath: '/data' }],
        },
      ],
      volumes: [{ name: 'data', emptyDir: {} }],
    },
  });
  await core.createNamespacedPod({ namespace, body: body('listed') });
  const added: V1Pod[] = [];
  const informer = await syncedInformer<V1Pod>(
    t,
    { type: RESOURCE_TYPES.pod, namespace, transform: podAsCached },
    { onAdd: (pod) => void added.push(pod) },
  );
  await core.createNamespacedPod({ namespace, body: body('watched') });
  const watched = await eventually(() => informer.get(namespace, 'watched'), {
    description: 'the created pod reaches the cache through the watch',
  });
  for (const cached of [informer.get(namespace, 'listed'), watched]) {
    const served = await core.readNamespacedPod({ namespace, name: cached?.metadata?.name ?? '' });
    t.is(cached?.kind, 'Pod');
    t.is(cached?.metadata?.uid, served.metadata?.uid);
    t.is(cached?.spec?.containers[0]?.image, undefined, 'the image is not kept');
    t.is(cached?.spec?.dnsPolicy, undefined, 'nor the API server defaults');
    t.deepEqual(cached?.spec?.containers[0]?.env, [{ name: 'PAM_AGENT_DATA_DIR', value: '/data' }]);
    // (client-node's answer is made of its model classes; compared as JSON.)
    t.deepEqual(dataVolumeOf(cached?.spec), JSON.parse(JSON.stringify(dataVolumeOf(served.spec))));
  }
  t.deepEqual(
    added.map((pod) => pod.spec?.containers[0]?.image),
    [undefined, undefined],
  );
});

test('a string pool changes no value of listed or watched objects, and holds the strings they share', async (t) => {
  const { kc } = cluster();
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = await createTestNamespace(kc, 'pool');
  const shared = 'a value every ConfigMap of this test repeats';
  const body = (name: string): V1ConfigMap => ({
    metadata: { name, labels: { app: 'c' }, annotations: { note: shared } },
    data: { shared, own: `${name} alone` },
  });
  await core.createNamespacedConfigMap({ namespace, body: body('listed') });
  const strings = new StringPool();
  const informer = await syncedInformer<V1ConfigMap>(t, {
    type: RESOURCE_TYPES.configMap,
    namespace,
    strings,
  });
  await core.createNamespacedConfigMap({ namespace, body: body('watched') });
  await eventually(() => informer.get(namespace, 'watched'), { description: 'the watch delivers it' });

  for (const name of ['listed', 'watched']) {
    // The JSON the API server serves, read by the operator's own client (no Date objects).
    const served = await kubeClientOf(kc).get<V1ConfigMap>(RESOURCE_TYPES.configMap, { namespace, name });
    delete served.metadata?.managedFields;
    t.deepEqual(
      informer.get(namespace, name),
      { apiVersion: 'v1', kind: 'ConfigMap', ...served },
      `${name}: every value as served (managedFields aside, as for every cached object)`,
    );
  }
  t.true(strings.has(shared), 'the value both objects hold is pooled');
  t.true(strings.has(namespace), 'so is the namespace they share');
});
