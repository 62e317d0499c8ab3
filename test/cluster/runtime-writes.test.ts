// The runtime's writes against a real kube-apiserver: server-side apply (idempotent, one field
// manager, other managers' fields left alone), status apply on a custom resource's status
// subresource, deletes, controller owner references, the Event recorder (series aggregation, per-object
// rate limit, secret filter) and the credential source that reloads a rotated Secret.
import { randomBytes } from 'node:crypto';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  type EventsV1Event,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import test from 'ava';
import { FIELD_MANAGER } from '../../src/operator/api/constants.ts';
import { controllerOwnerReference, KubeWriter } from '../../src/operator/runtime/apply.ts';
import { CredentialSource } from '../../src/operator/runtime/credential.ts';
import { EventRecorder, REDACTED_NOTE, REPORTING_CONTROLLER } from '../../src/operator/runtime/events.ts';
import { createOperatorMetrics } from '../../src/operator/runtime/metrics.ts';
import { RESOURCE_TYPES, type ResourceType } from '../../src/operator/runtime/resources.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';

const cluster = useCluster(test);

// A CRD of the tests' own, so these tests exercise the status subresource independently of the
// Connector CRD's evolving schema.
const WIDGET: ResourceType = {
  apiVersion: 'runtime-test.vaultpam.io/v1',
  kind: 'Widget',
  plural: 'widgets',
  namespaced: true,
};

interface Widget extends KubernetesObject {
  spec?: { size?: number };
  status?: {
    phase?: string;
    note?: string;
    conditions?: Array<{ type: string; status: string; reason?: string }>;
  };
}

let widgetCrdInstalled: Promise<void> | undefined;
function installWidgetCrd(): Promise<void> {
  widgetCrdInstalled ??= (async () => {
    const api = cluster().kc.makeApiClient(ApiextensionsV1Api);
    await api.createCustomResourceDefinition({
      body: {
        metadata: { name: 'widgets.runtime-test.vaultpam.io' },
        spec: {
          group: 'runtime-test.vaultpam.io',
          scope: 'Namespaced',
          names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              subresources: { status: {} },
              schema: {
                openAPIV3Schema: {
                  type: 'object',
                  properties: {
                    spec: { type: 'object', properties: { size: { type: 'integer' } } },
                    status: {
                      type: 'object',
                      properties: {
                        phase: { type: 'string' },
                        note: { type: 'string' },
                        conditions: {
                          type: 'array',
                          x_kubernetes_list_type: 'map',
                          x_kubernetes_list_map_keys: ['type'],
                          items: {
                            type: 'object',
                            required: ['type', 'status'],
                            properties: {
                              type: { type: 'string' },
                              status: { type: 'string' },
                              reason: { type: 'string' },
                            },
                          },
                        },
                      },
                    },
                  },
                },
              },
            },
          ],
        },
      },
    });
    await eventually(
      async () => {
        const crd = await api.readCustomResourceDefinition({ name: 'widgets.runtime-test.vaultpam.io' });
        return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
      },
      { description: 'Widget CRD established' },
    );
  })();
  return widgetCrdInstalled;
}

function writerFor(kc = cluster().kc) {
  const metrics = createOperatorMetrics();
  const logs = captureLogs();
  return { writer: new KubeWriter({ kc, logger: logs.logger, metrics }), metrics, logs };
}

function desiredConfigMap(namespace: string, name: string, data: Record<string, string>): V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace, labels: { app: 'demo' } },
    data,
  };
}

test.serial('apply creates an object, and applying the same intent again changes nothing', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'apply');
  const { writer, metrics } = writerFor();

  const created = await writer.apply(desiredConfigMap(namespace, 'cfg', { a: '1' }));
  t.is(created.data?.a, '1');
  t.truthy(created.metadata?.uid);
  const managers = created.metadata?.managedFields?.map((f) => `${f.manager}/${f.operation}`);
  t.deepEqual(managers, [`${FIELD_MANAGER}/Apply`]);

  const again = await writer.apply(desiredConfigMap(namespace, 'cfg', { a: '1' }));
  t.is(again.metadata?.resourceVersion, created.metadata?.resourceVersion, 'an unchanged apply is a no-op');

  const changed = await writer.apply(desiredConfigMap(namespace, 'cfg', { a: '2' }));
  t.not(changed.metadata?.resourceVersion, created.metadata?.resourceVersion);
  t.is(changed.data?.a, '2');
  t.is(await metrics.totalWrites(), 3, 'every apply request is counted');
  t.regex(
    await metrics.registry.metrics(),
    /vaultpam_operator_kubernetes_writes_total\{kind="ConfigMap",verb="patch"\} 3/,
  );
});

test.serial('apply leaves fields of another field manager alone and takes back fields it owns', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'mgr');
  const { writer } = writerFor();
  const objects = KubernetesObjectApi.makeApiClient(kc);
  await writer.apply(desiredConfigMap(namespace, 'shared', { ours: '1' }));

  // Someone else (a human with kubectl, another controller) adds a field of their own...
  await objects.patch(
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'shared', namespace }, data: { theirs: 'x' } },
    undefined,
    undefined,
    'someone-else',
    false,
    PatchStrategy.ServerSideApply,
  );
  const mine = await writer.apply(desiredConfigMap(namespace, 'shared', { ours: '2' }));
  t.deepEqual(mine.data, { ours: '2', theirs: 'x' }, 'their field survives our apply');

  // ...and then changes ours: force=true takes it back, because the operator owns what it applies.
  await objects.patch(
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'shared', namespace },
      data: { ours: 'hijacked' },
    },
    undefined,
    undefined,
    'someone-else',
    true,
    PatchStrategy.ServerSideApply,
  );
  const restored = await writer.apply(desiredConfigMap(namespace, 'shared', { ours: '2' }));
  t.is(restored.data?.ours, '2');

  // Without force a conflict is reported as a typed, temporary error instead of silently overwritten.
  await objects.patch(
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'shared', namespace }, data: { ours: 'again' } },
    undefined,
    undefined,
    'someone-else',
    true,
    PatchStrategy.ServerSideApply,
  );
  const conflict = await t.throwsAsync(() =>
    writer.apply(desiredConfigMap(namespace, 'shared', { ours: '3' }), { force: false }),
  );
  t.is((conflict as { code?: string }).code, 'KUBERNETES_CONFLICT');
  t.true((conflict as { temporary?: boolean }).temporary);
  t.regex(conflict?.message ?? '', /ConfigMap .*\/shared/);
});

test.serial(
  'applyStatus writes only status, keeps the generation, is idempotent and drops fields no longer set',
  async (t) => {
    const { kc } = cluster();
    await installWidgetCrd();
    const namespace = await createTestNamespace(kc, 'status');
    const { writer, metrics } = writerFor();
    const widget = await writer.apply<Widget>({
      apiVersion: WIDGET.apiVersion,
      kind: WIDGET.kind,
      metadata: { name: 'w', namespace },
      spec: { size: 3 },
    });
    const generation = widget.metadata?.generation;
    t.is(generation, 1);

    const status = {
      phase: 'Ready',
      note: 'first pass',
      conditions: [{ type: 'Ready', status: 'True', reason: 'AllGood' }],
    };
    const first = await writer.applyStatus<Widget>(WIDGET, { namespace, name: 'w' }, status);
    t.deepEqual(first.status, status);
    t.is(first.metadata?.generation, generation, 'a status write does not bump the generation');
    t.deepEqual(first.spec, { size: 3 });

    const same = await writer.applyStatus<Widget>(WIDGET, { namespace, name: 'w' }, status);
    t.is(same.metadata?.resourceVersion, first.metadata?.resourceVersion, 'an unchanged status is a no-op');

    const rebuilt = await writer.applyStatus<Widget>(
      WIDGET,
      { namespace, name: 'w' },
      { phase: 'Degraded', conditions: [{ type: 'Ready', status: 'False', reason: 'PathDown' }] },
    );
    t.is(rebuilt.status?.phase, 'Degraded');
    t.is(rebuilt.status?.note, undefined, 'a field the operator stopped setting is removed');
    t.deepEqual(rebuilt.status?.conditions, [{ type: 'Ready', status: 'False', reason: 'PathDown' }]);
    t.is(rebuilt.metadata?.generation, generation);

    // Writing status through this path can never touch spec, whatever the body holds.
    const read = (await kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
      group: 'runtime-test.vaultpam.io',
      version: 'v1',
      namespace,
      plural: 'widgets',
      name: 'w',
    })) as Widget;
    t.deepEqual(read.spec, { size: 3 });
    t.regex(
      await metrics.registry.metrics(),
      /vaultpam_operator_kubernetes_writes_total\{kind="Widget",verb="patch"\} 4/,
    );

    const missing = await t.throwsAsync(() =>
      writer.applyStatus(WIDGET, { namespace, name: 'nope' }, { phase: 'X' }),
    );
    t.is((missing as { code?: string }).code, 'KUBERNETES_NOT_FOUND');
    t.false((missing as { temporary?: boolean }).temporary);
    await t.throwsAsync(() => writer.applyStatus(RESOURCE_TYPES.configMap, { namespace, name: 'cfg' }, {}), {
      message: /custom resources/,
    });
  },
);

test.serial(
  'controller owner references are complete, and an invalid object is a permanent, named error',
  async (t) => {
    const { kc } = cluster();
    await installWidgetCrd();
    const namespace = await createTestNamespace(kc, 'owner');
    const { writer } = writerFor();
    const owner = await writer.apply<Widget>({
      apiVersion: WIDGET.apiVersion,
      kind: WIDGET.kind,
      metadata: { name: 'owner', namespace },
      spec: { size: 1 },
    });
    const reference = controllerOwnerReference(owner);
    t.deepEqual(reference, {
      apiVersion: WIDGET.apiVersion,
      kind: 'Widget',
      name: 'owner',
      uid: owner.metadata?.uid ?? '',
      controller: true,
      blockOwnerDeletion: true,
    });
    const child = await writer.apply<V1ConfigMap>({
      ...desiredConfigMap(namespace, 'child', { x: '1' }),
      metadata: { name: 'child', namespace, ownerReferences: [reference] },
    });
    t.is(child.metadata?.ownerReferences?.[0]?.uid, owner.metadata?.uid);
    t.true(child.metadata?.ownerReferences?.[0]?.controller);

    t.throws(
      () => controllerOwnerReference({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }),
      {
        message: /metadata\.uid/,
      },
    );
    const invalid = await t.throwsAsync(() =>
      writer.apply(desiredConfigMap(namespace, 'Not_A_Valid_Name', {})),
    );
    t.is((invalid as { code?: string }).code, 'KUBERNETES_INVALID');
    t.false((invalid as { temporary?: boolean }).temporary);
    t.regex(invalid?.message ?? '', /Not_A_Valid_Name/);
    await t.throwsAsync(
      () => writer.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'no-namespace' } }),
      {
        message: /metadata\.namespace/,
      },
    );
  },
);

test.serial(
  'a finalizer write holds only at the version read: a change since is a temporary conflict to read again, not a refusal',
  async (t) => {
    const { kc } = cluster();
    await installWidgetCrd();
    const namespace = await createTestNamespace(kc, 'finalizers');
    const { writer } = writerFor();
    const widgets = kc.makeApiClient(CustomObjectsApi);
    const ref = { group: 'runtime-test.vaultpam.io', version: 'v1', namespace, plural: 'widgets' };
    const read = (await widgets.createNamespacedCustomObject({
      ...ref,
      body: {
        apiVersion: WIDGET.apiVersion,
        kind: WIDGET.kind,
        metadata: { name: 'held', finalizers: ['example.com/theirs'] },
        spec: { size: 1 },
      },
    })) as Widget;
    // Someone else writes between the read and the finalizer write (a GitOps sync, a person).
    await widgets.patchNamespacedCustomObject(
      { ...ref, name: 'held', body: { metadata: { labels: { synced: 'yes' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const finalizers = ['example.com/theirs', 'example.com/ours'];
    const target = { namespace, name: 'held' };
    const stale = await t.throwsAsync(() =>
      writer.replaceFinalizers(
        WIDGET,
        { ...target, resourceVersion: read.metadata?.resourceVersion ?? '' },
        finalizers,
      ),
    );
    // Before: the JSON patch's failed test answered 422, a permanent KUBERNETES_INVALID that the
    // reconciler took for an admission policy's refusal (Stalled FinalizerRefused).
    t.like(stale, { code: 'KUBERNETES_CONFLICT', temporary: true });
    const current = (await widgets.getNamespacedCustomObject({ ...ref, name: 'held' })) as Widget;
    t.deepEqual(current.metadata?.finalizers, ['example.com/theirs'], 'nothing written');
    await writer.replaceFinalizers(
      WIDGET,
      { ...target, resourceVersion: current.metadata?.resourceVersion ?? '' },
      finalizers,
    );
    const written = (await widgets.getNamespacedCustomObject({ ...ref, name: 'held' })) as Widget;
    t.deepEqual(written.metadata?.finalizers, finalizers);
    t.is(written.metadata?.labels?.synced, 'yes', "the other writer's change is kept");
    await writer.replaceFinalizers(
      WIDGET,
      { ...target, resourceVersion: written.metadata?.resourceVersion ?? '' },
      [],
    );
    const released = (await widgets.getNamespacedCustomObject({ ...ref, name: 'held' })) as Widget;
    t.deepEqual(released.metadata?.finalizers ?? [], [], 'all finalizers removed when none is asked for');
  },
);

test.serial(
  'a status field the installed CRD does not declare (operator upgraded before its CRD): a temporary error that says to upgrade the CRD',
  async (t) => {
    // Found reviewing status.liveToken: an operator upgraded before the CRD had every status write
    // carrying the new field refused (HTTP 500, "failed to create typed patch object ...: field not
    // declared in schema"), read as a permanent invalid write that quoted the typed-object error.
    const { kc } = cluster();
    await installWidgetCrd();
    const namespace = await createTestNamespace(kc, 'old-crd');
    const { writer } = writerFor();
    await writer.apply<Widget>({
      apiVersion: WIDGET.apiVersion,
      kind: WIDGET.kind,
      metadata: { name: 'w', namespace },
      spec: { size: 1 },
    });
    const error = await t.throwsAsync(
      writer.applyStatus<Widget>(
        WIDGET,
        { namespace, name: 'w' },
        { phase: 'Ready', liveToken: { expiresAt: '2026-01-01T00:00:00Z' } },
      ),
    );
    const coded = error as Error & { code?: string; temporary?: boolean };
    t.is(coded.code, 'CRD_OUTDATED');
    t.true(coded.temporary, 'upgrading the CRD fixes it without touching the object: retried');
    t.regex(
      coded.message,
      /the installed Widget CRD does not declare status\.liveToken, which this operator writes: the CRD is older than the operator; apply the CRDs of this release/,
    );
    // A misfit of anything else is still the permanent invalid write it was.
    const other = await t.throwsAsync(
      writer.applyStatus<Widget>(WIDGET, { namespace, name: 'w' }, { phase: 'Ready', note: 7 }),
    );
    t.not((other as Error & { code?: string }).code, 'CRD_OUTDATED');
  },
);

test.serial('delete reports whether it deleted, and a uid precondition protects a namesake', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'del');
  const { writer, metrics } = writerFor();
  const first = await writer.apply(desiredConfigMap(namespace, 'gone', {}));
  t.true(
    await writer.delete(
      RESOURCE_TYPES.configMap,
      { namespace, name: 'gone' },
      { uid: first.metadata?.uid ?? '' },
    ),
  );
  t.false(await writer.delete(RESOURCE_TYPES.configMap, { namespace, name: 'gone' }), 'already gone');

  await writer.apply(desiredConfigMap(namespace, 'gone', { reborn: 'yes' }));
  t.false(
    await writer.delete(
      RESOURCE_TYPES.configMap,
      { namespace, name: 'gone' },
      { uid: first.metadata?.uid ?? '' },
    ),
    'the new object with the same name is not the one we meant',
  );
  const still = await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ namespace, name: 'gone' });
  t.is(still.data?.reborn, 'yes');
  t.regex(
    await metrics.registry.metrics(),
    /vaultpam_operator_kubernetes_writes_total\{kind="ConfigMap",verb="delete"\} 3/,
  );
});

async function eventsAbout(namespace: string, name: string): Promise<EventsV1Event[]> {
  const list = await cluster().kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
  return list.items.filter((e) => e.regarding?.name === name);
}

test.serial(
  'repeated events become one Event with a series count; rate limit and secret filter apply',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'evt');
    const metrics = createOperatorMetrics();
    const logs = captureLogs();
    const recorder = new EventRecorder({
      kc,
      logger: logs.logger,
      identity: 'operator-0_0123456789',
      metrics,
      rateLimit: { burst: 4, refillEveryMs: 3_600_000 },
    });
    const subject = (name: string) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      name,
      namespace,
      uid: `uid-${name}`,
    });
    const offline = {
      type: 'Warning' as const,
      reason: 'ConnectorOffline',
      action: 'Observe',
      note: 'no heartbeat for 30s',
    };

    for (let i = 0; i < 3; i += 1) await recorder.record(subject('flappy'), offline);
    await recorder.record(subject('flappy'), { ...offline, note: 'no heartbeat for 60s' });
    let events = await eventsAbout(namespace, 'flappy');
    t.is(events.length, 2, 'three repeats made one Event, a different message another');
    const series = events.find((e) => e.note === 'no heartbeat for 30s');
    t.is(series?.series?.count, 3);
    t.is(series?.reportingController, REPORTING_CONTROLLER);
    t.is(series?.reportingInstance, 'operator-0_0123456789');
    t.is(series?.regarding?.uid, 'uid-flappy');
    t.is(series?.type, 'Warning');
    t.is(series?.action, 'Observe');

    // The burst of 4 is used up: further writes about this object are dropped and counted.
    await recorder.record(subject('flappy'), { ...offline, note: 'no heartbeat for 90s' });
    await recorder.record(subject('flappy'), offline);
    events = await eventsAbout(namespace, 'flappy');
    t.is(events.length, 2);
    t.is(events.find((e) => e.note === 'no heartbeat for 30s')?.series?.count, 3);
    const suppressed = Object.fromEntries(
      (await metrics.eventsSuppressed.get()).values.map((v) => [v.labels.reason, v.value]),
    );
    t.is(suppressed.rate_limited, 2);

    // Another object has its own budget; a secret in the note never reaches the API server or the log.
    const token = `vpe_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`;
    await recorder.record(subject('leaky'), {
      type: 'Normal',
      reason: 'TokenMinted',
      action: 'Mint',
      note: `minted ${token}`,
    });
    const leaky = await eventsAbout(namespace, 'leaky');
    t.is(leaky.length, 1);
    t.is(leaky[0]?.note, REDACTED_NOTE);
    const allEvents = (await kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace })).items;
    assertNoSecrets(t, 'Events', JSON.stringify(allEvents), [token]);
    assertNoSecrets(t, 'operator log', logs.text(), [token]);
    t.true(logs.records().some((r) => r.pattern === 'enrollment-token' && r.name === 'leaky'));
    t.regex(
      await metrics.registry.metrics(),
      /vaultpam_operator_kubernetes_writes_total\{kind="Event",verb="create"\} 3/,
    );
    t.regex(
      await metrics.registry.metrics(),
      /vaultpam_operator_kubernetes_writes_total\{kind="Event",verb="patch"\} 2/,
    );
  },
);

test.serial(
  'the credential source reads a Secret key and reloads it when the Secret changes, without logging it',
  async (t) => {
    const { kc } = cluster();
    const core = kc.makeApiClient(CoreV1Api);
    const namespace = await createTestNamespace(kc, 'cred');
    const first = `first-${randomBytes(12).toString('hex')}`;
    const second = `second-${randomBytes(12).toString('hex')}`;
    const b64 = (text: string) => Buffer.from(text).toString('base64');
    await core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: 'cp-admin' }, data: { credential: b64(`${first}\n`) } },
    });
    await core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: 'unrelated' }, data: { credential: b64('x') } },
    });

    const logs = captureLogs();
    const metrics = createOperatorMetrics();
    const changes: Array<string | undefined> = [];
    const source = new CredentialSource({
      kc,
      namespace,
      name: 'cp-admin',
      key: 'credential',
      logger: logs.logger,
      metrics,
      onChange: (value) => void changes.push(value),
    });
    source.start();
    t.teardown(() => source.stop());
    await source.waitForSync(AbortSignal.timeout(30_000));
    t.is(source.current(), first, 'decoded, without the trailing newline');

    await core.replaceNamespacedSecret({
      namespace,
      name: 'unrelated',
      body: { metadata: { name: 'unrelated' }, data: { credential: b64('y') } },
    });
    await core.replaceNamespacedSecret({
      namespace,
      name: 'cp-admin',
      body: { metadata: { name: 'cp-admin' }, data: { credential: b64(second) } },
    });
    await eventually(() => source.current() === second, {
      description: 'the rotated credential is observed',
    });

    await core.replaceNamespacedSecret({
      namespace,
      name: 'cp-admin',
      body: { metadata: { name: 'cp-admin' }, data: { other: b64('z') } },
    });
    await eventually(() => source.current() === undefined, { description: 'a missing key is noticed' });
    t.deepEqual(
      changes,
      [first, second, undefined],
      'onChange fires once per real change; other Secrets do not count',
    );
    t.true(
      logs
        .records()
        .some(
          (r) =>
            r.level === 40 &&
            String(r.msg).includes(`${namespace}/cp-admin has no non-empty key "credential"`),
        ),
    );
    assertNoSecrets(t, 'credential source log', logs.text(), [first, second]);
    t.is(await metrics.totalWrites(), 0, 'reading the credential writes nothing');
    t.is(source.status().resource, 'secrets');
  },
);
