// The watch of a control plane's CA ConfigMap (control-plane/ca-watches.ts), against a real
// kube-apiserver. The registry starts it after a check has read the ConfigMap, so the watch's first
// list may already show a later version, or none: a change between the check's read and that list
// is a change the check did not see, and must check the control plane again as any later one does.
import { CoreV1Api } from '@kubernetes/client-node';
import test from 'ava';
import { ControlPlaneCaWatches } from '../../src/operator/control-plane/ca-watches.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { captureLogs } from '../helpers/log-capture.ts';

const cluster = useCluster(test);
const KEY = 'ControlPlane/x/prod';

async function world(prefix: string) {
  const { kc } = cluster();
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = await createTestNamespace(kc, prefix);
  const changes: string[] = [];
  const watches = new ControlPlaneCaWatches({
    kc,
    logger: captureLogs().logger,
    onChange: (key) => changes.push(key),
  });
  const write = async (value: string) => {
    const body = { metadata: { name: 'ca' }, data: { 'ca.crt': value } };
    const existing = await core.readNamespacedConfigMap({ namespace, name: 'ca' }).catch(() => undefined);
    const written = existing
      ? await core.replaceNamespacedConfigMap({ namespace, name: 'ca', body })
      : await core.createNamespacedConfigMap({ namespace, body });
    return written.metadata?.resourceVersion ?? '';
  };
  return { core, namespace, changes, watches, write };
}

type World = Awaited<ReturnType<typeof world>>;

/** Lets the watch list and deliver what it will (an absence can only be waited for). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 2_000));

for (const [what, between] of [
  ['changed', (w: World) => w.write('second')],
  ['deleted', (w: World) => w.core.deleteNamespacedConfigMap({ namespace: w.namespace, name: 'ca' })],
] as const) {
  test(`a CA ConfigMap ${what} between the check and the watch start checks the control plane again`, async (t) => {
    const w = await world('cawatch');
    t.teardown(() => w.watches.stop());
    const seen = await w.write('first');
    await between(w); // after the check read it, before the watch lists
    w.watches.ensure(KEY, { namespace: w.namespace, name: 'ca', seenVersion: seen });
    await eventually(() => w.changes.length > 0, { timeoutMs: 30_000 });
    t.deepEqual(w.changes, [KEY]);
  });
}

test('the version the check read is no news; a change after it is, once', async (t) => {
  const w = await world('cawatch');
  t.teardown(() => w.watches.stop());
  const seen = await w.write('first');
  w.watches.ensure(KEY, { namespace: w.namespace, name: 'ca', seenVersion: seen });
  await settle();
  t.deepEqual(w.changes, [], 'the first list shows what the check read');
  // A later check of the same ConfigMap keeps the one watch.
  w.watches.ensure(KEY, { namespace: w.namespace, name: 'ca', seenVersion: seen });
  t.deepEqual(w.watches.keys(), [KEY]);
  await w.write('second');
  await eventually(() => w.changes.length > 0, { timeoutMs: 30_000 });
  await settle();
  t.deepEqual(w.changes, [KEY]);
});

test('a CA ConfigMap created after a check that found none checks the control plane again', async (t) => {
  const w = await world('cawatch');
  t.teardown(() => w.watches.stop());
  w.watches.ensure(KEY, { namespace: w.namespace, name: 'ca', seenVersion: '' });
  await settle();
  t.deepEqual(w.changes, []);
  await w.write('first');
  await eventually(() => w.changes.length > 0, { timeoutMs: 30_000 });
  t.deepEqual(w.changes, [KEY]);
});
