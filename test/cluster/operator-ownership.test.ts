// The operator never takes what is not its own, and mints nothing before the workload can be
// applied: on the real API server, as its ServiceAccount, with the real control plane.
import {
  ApiextensionsV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import { CRD_NAME, GROUP, PLURAL, VERSION } from '../../src/operator/api/constants.ts';
import { connectorSchema, loadConnectorCrd } from '../../src/operator/api/crd.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { connectorEvents } from '../helpers/connector-events.ts';
import { eventually } from '../helpers/eventually.ts';
import { connectors, type OperatorEnvironment, startOperatorEnvironment } from '../helpers/operator-env.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;

test.serial.before(async () => {
  env = await startOperatorEnvironment(cluster());
  await env.startOperator();
});
test.after.always(async () => {
  await env?.stop();
});

const spec = { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] } };
const stalled = (c: Connector) =>
  c.status?.conditions?.find((x) => x.type === 'Stalled' && x.status === 'True');

async function stalledWith(namespace: string, reason: string): Promise<Connector> {
  const api = connectors(cluster().kc);
  return eventually(
    async () => {
      const c = await api.get(namespace, 'edge');
      return stalled(c)?.reason === reason ? c : undefined;
    },
    { description: `Connector ${namespace}/edge Stalled ${reason}`, timeoutMs: 30_000 },
  );
}

async function controlPlaneRecord(connectorId: string) {
  return env.admin.getConnector(connectorId).catch(() => undefined);
}

test('a user ConfigMap with the child name is never taken over; once it is gone the Connector proceeds', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'own-cm');
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespacedConfigMap({
    namespace,
    body: { metadata: { name: 'edge-config' }, data: { mine: 'keep me' } },
  });
  await connectors(kc).create(namespace, { metadata: { name: 'edge', namespace }, spec });

  const c = await stalledWith(namespace, 'OwnershipConflict');
  t.regex(stalled(c)?.message ?? '', new RegExp(`ConfigMap ${namespace}/edge-config`));
  const configMap = await core.readNamespacedConfigMap({ namespace, name: 'edge-config' });
  t.deepEqual(configMap.data, { mine: 'keep me' }, 'the user data is untouched');
  t.is(configMap.metadata?.ownerReferences, undefined, 'no owner reference was added');
  t.is(
    configMap.metadata?.managedFields?.some((f) => f.manager === 'vaultpam-connector-operator'),
    false,
    'the operator never wrote it',
  );
  const secret = await core
    .readNamespacedSecret({ namespace, name: 'edge-enrollment-token' })
    .catch(() => undefined);
  t.is(secret, undefined, 'no token Secret');
  t.is(await controlPlaneRecord(`${namespace}.edge`), undefined, 'no control-plane record, no token');

  await core.deleteNamespacedConfigMap({ namespace, name: 'edge-config' });
  await eventually(
    () => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' }).catch(() => undefined),
    { description: 'the token Secret once the name is free', timeoutMs: 30_000 },
  );
  // The pass writes the token Secret first, then the ConfigMap and StatefulSet, and its status last:
  // seeing the Secret says the pass is under way, not that it ended.
  const after = await eventually(
    () =>
      connectors(kc)
        .get(namespace, 'edge')
        .then((c) => (stalled(c) === undefined ? c : undefined)),
    { description: 'the status no longer stalled', timeoutMs: 30_000 },
  );
  t.is(stalled(after), undefined, 'no longer stalled');
  const owned = await core.readNamespacedConfigMap({ namespace, name: 'edge-config' });
  t.is(owned.metadata?.ownerReferences?.[0]?.uid, after.metadata.uid);
});

test('a user Secret with the token Secret name keeps its data and no token is minted', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'own-secret');
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespacedSecret({
    namespace,
    body: { metadata: { name: 'edge-enrollment-token' }, stringData: { password: 'app-db-password' } },
  });
  await connectors(kc).create(namespace, { metadata: { name: 'edge', namespace }, spec });
  const c = await stalledWith(namespace, 'OwnershipConflict');
  t.regex(stalled(c)?.message ?? '', new RegExp(`Secret ${namespace}/edge-enrollment-token`));
  const secret = await core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' });
  t.deepEqual(Object.keys(secret.data ?? {}), ['password']);
  t.is(Buffer.from(secret.data?.password ?? '', 'base64').toString(), 'app-db-password');
  t.is(secret.metadata?.ownerReferences, undefined);
  t.is(c.status?.enrollment?.mintCount ?? 0, 0, 'no mint counted');
  const record = await controlPlaneRecord(`${namespace}.edge`);
  t.is(record?.liveToken ?? null, null, 'no live token in the control plane');
});

test('a StatefulSet of someone else with the workload name is left alone', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'own-sts');
  const apps = kc.makeApiClient(AppsV1Api);
  await apps.createNamespacedStatefulSet({
    namespace,
    body: {
      metadata: { name: 'edge' },
      spec: {
        replicas: 3,
        serviceName: 'edge',
        selector: { matchLabels: { app: 'theirs' } },
        template: {
          metadata: { labels: { app: 'theirs' } },
          spec: { containers: [{ name: 'db', image: 'postgres:17' }] },
        },
      },
    },
  });
  await connectors(kc).create(namespace, { metadata: { name: 'edge', namespace }, spec });
  const c = await stalledWith(namespace, 'OwnershipConflict');
  t.regex(stalled(c)?.message ?? '', new RegExp(`StatefulSet ${namespace}/edge`));
  const sts = await apps.readNamespacedStatefulSet({ namespace, name: 'edge' });
  t.is(sts.spec?.replicas, 3);
  t.is(sts.spec?.template?.spec?.containers?.[0]?.name, 'db');
  t.is(sts.metadata?.ownerReferences, undefined);
});

test('a claim of someone else with the data claim’s name is neither mounted nor grown: OwnershipConflict, no workload, no token', async (t) => {
  // The StatefulSet controller binds a template's claim by name: creating the workload would have
  // mounted this claim into the connector, and spec.storage.size would have grown it (the operator
  // patched another owner's 1Gi claim to 50Gi within a second).
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'own-claim');
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  await core.createNamespacedPersistentVolumeClaim({
    namespace,
    body: {
      metadata: { name: 'data-edge-0', labels: { app: 'billing' } },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    },
  });
  await connectors(kc).create(namespace, {
    metadata: { name: 'edge', namespace },
    spec: { ...spec, storage: { size: '50Gi' } },
  });
  const c = await stalledWith(namespace, 'OwnershipConflict');
  t.regex(stalled(c)?.message ?? '', new RegExp(`PersistentVolumeClaim ${namespace}/data-edge-0`));
  const claim = await core.readNamespacedPersistentVolumeClaim({ namespace, name: 'data-edge-0' });
  t.is(claim.spec?.resources?.requests?.storage, '1Gi', 'not grown');
  t.is(
    claim.metadata?.managedFields?.some((f) => f.manager === 'vaultpam-connector-operator'),
    false,
    'the operator never wrote it',
  );
  t.is(await apps.readNamespacedStatefulSet({ namespace, name: 'edge' }).catch(() => undefined), undefined);
  t.is(await controlPlaneRecord(`${namespace}.edge`), undefined, 'no control-plane record, no token');

  // Named in spec.storage.existingClaim (the admission policy admits a Connector's own data claim's
  // name there): the same conflict, nothing mounted.
  await core.createNamespacedPersistentVolumeClaim({
    namespace,
    body: {
      metadata: { name: 'data-edge3-0', labels: { app: 'billing' } },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    },
  });
  await connectors(kc).create(namespace, {
    metadata: { name: 'edge3', namespace },
    spec: { ...spec, storage: { existingClaim: 'data-edge3-0' } },
  });
  const named = await eventually(
    async () => {
      const c = await connectors(kc).get(namespace, 'edge3');
      return stalled(c)?.reason === 'OwnershipConflict' ? c : undefined;
    },
    { description: 'edge3 Stalled OwnershipConflict', timeoutMs: 30_000 },
  );
  t.regex(stalled(named)?.message ?? '', new RegExp(`PersistentVolumeClaim ${namespace}/data-edge3-0`));
  t.is(await apps.readNamespacedStatefulSet({ namespace, name: 'edge3' }).catch(() => undefined), undefined);
});

test('a spec admission accepts but Kubernetes refuses: InvalidSpec names the field, and no token is minted', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'refused');
  // The CRD checks the affinity's shape, not that a requirement's key is a label key (a rule per key
  // would exceed CEL's cost budget): only the StatefulSet's own validation can refuse this one.
  await connectors(kc).create(namespace, {
    metadata: { name: 'edge', namespace },
    spec: {
      ...spec,
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              { matchExpressions: [{ key: 'no such zone!', operator: 'In', values: ['a'] }] },
            ],
          },
        },
      },
    },
  });
  const c = await stalledWith(namespace, 'InvalidSpec');
  t.regex(stalled(c)?.message ?? '', /spec\.affinity \(StatefulSet .*key\): Invalid value/);
  t.notRegex(stalled(c)?.message ?? '', /ControlPlaneRejected/);
  await assertNothingMinted(t, namespace, c);
});

// Serial: while the API server swaps a CRD's schema, a request to the old one can be answered 503
// ("apiserver is shutting down"); serial tests run before the others start.
test.serial(
  'a spec.affinity of a shape Kubernetes refuses, admitted by the CRD as it was: InvalidSpec, not a retry forever, and after the CRD upgrade too',
  async (t) => {
    // Until the CRD gave spec.affinity Kubernetes' schema it kept whatever came; so does a cluster
    // that kept the old CRD (helm upgrade leaves CRDs as they are). The StatefulSet's server-side
    // apply refuses such a body with an HTTP 500 ("failed to create typed patch object"), which the
    // operator retried forever (Reconciling, RetryingAfterError).
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'misfit');
    const api = connectors(kc);
    const misfit = {
      metadata: { name: 'edge', namespace },
      spec: {
        ...spec,
        affinity: {
          podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { topologyKey: 'x' } },
        } as unknown as Connector['spec']['affinity'],
      },
    };
    await withAffinityAsItCame(kc, namespace, async () => {
      await eventually(() => api.create(namespace, misfit).then(succeeded, failed), {
        description: 'a Connector written while spec.affinity is kept as it comes',
        timeoutMs: 30_000,
      });
      await api.create(namespace, { ...misfit, metadata: { name: 'edge2', namespace } });
      const c = await stalledWith(namespace, 'InvalidSpec');
      t.regex(
        stalled(c)?.message ?? '',
        /spec\.affinity \(StatefulSet spec\.template\.spec\.affinity\.podAntiAffinity\.requiredDuringSchedulingIgnoredDuringExecution\): expected list.*; fix spec\.affinity$/,
      );
      t.is(
        c.status?.conditions?.find((x) => x.type === 'Reconciling'),
        undefined,
        'no retry under way',
      );
      await assertNothingMinted(t, namespace, c);
    });

    // The CRD has the schema now, and the stored Connector does not fit it: no server-side apply to
    // it is possible (the API server cannot type it). Its status still follows a spec change.
    await api.patchSpec(namespace, 'edge', { spec: { podLabels: { team: 'b' } } });
    const after = await eventually(
      async () => {
        const c = await api.get(namespace, 'edge');
        return stalled(c)?.observedGeneration === 2 ? c : undefined;
      },
      { description: 'the status of generation 2', timeoutMs: 30_000 },
    );
    t.is(stalled(after)?.reason, 'InvalidSpec');
    t.regex(stalled(after)?.message ?? '', /spec\.affinity \(StatefulSet .*\): expected list/);
    // edge2, deleted while no apply to it is possible, goes at once: its finalizer is removed by a
    // patch that holds at the version it read; the pass had written its Terminating status since,
    // so it reads again rather than report a refused removal and back off.
    await eventually(async () => stalled(await api.get(namespace, 'edge2'))?.reason === 'InvalidSpec', {
      description: 'edge2 Stalled InvalidSpec',
      timeoutMs: 30_000,
    });
    await api.delete(namespace, 'edge2');
    await eventually(() => api.get(namespace, 'edge2').then(failed, succeeded), {
      description: 'edge2 gone',
      timeoutMs: 30_000,
    });
    const refused = (await connectorEvents(kc, namespace, 'edge2')).filter(
      (e) => e.reason === 'ReconcileStalled' && /finalizer/.test(e.note ?? ''),
    );
    t.deepEqual(
      refused.map((e) => e.note),
      [],
      'no refused finalizer removal on the way',
    );
    // Its spec fixed, the status says so: the Stalled condition written while no apply was possible
    // (owned by no field manager then) is gone, not left for good by the next apply.
    await api.patchSpec(namespace, 'edge', { spec: { affinity: null } } as never);
    const fixed = await eventually(
      async () => {
        const c = await api.get(namespace, 'edge');
        return c.status?.observedGeneration === 3 ? c : undefined;
      },
      { description: 'the status of the fixed spec', timeoutMs: 30_000 },
    );
    t.is(stalled(fixed), undefined, 'no Stalled InvalidSpec once the spec is fixed');
    // And it can be deleted: its finalizer goes, whatever field manager holds it now.
    await api.delete(namespace, 'edge');
    await eventually(() => api.get(namespace, 'edge').then(failed, succeeded), {
      description: 'the Connector gone',
      timeoutMs: 30_000,
    });
    t.pass();
  },
);

/** No token Secret, no live token in the control plane and no mint counted for namespace/edge. */
async function assertNothingMinted(t: ExecutionContext, namespace: string, c: Connector): Promise<void> {
  const core = cluster().kc.makeApiClient(CoreV1Api);
  const secret = await core
    .readNamespacedSecret({ namespace, name: 'edge-enrollment-token' })
    .catch(() => undefined);
  t.is(secret, undefined, 'no token Secret');
  const record = await controlPlaneRecord(`${namespace}.edge`);
  t.is(record?.liveToken ?? null, null, 'no token minted in the control plane');
  t.is(c.status?.enrollment?.mintCount ?? 0, 0);
}

/**
 * Runs `during` while the installed CRD keeps spec.affinity as it comes, as it did before it had a
 * schema, and restores the schema after (what was stored stays as it was written), returning once
 * the API server refuses an affinity of the wrong shape in `namespace` again. The API server serves
 * a changed schema a moment after the CRD changed: `during` waits for it.
 */
async function withAffinityAsItCame(
  kc: KubeConfig,
  namespace: string,
  during: () => Promise<void>,
): Promise<void> {
  const crds = kc.makeApiClient(ApiextensionsV1Api);
  const path = '/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/affinity';
  const replaceAffinity = (value: object) =>
    crds.patchCustomResourceDefinition(
      { name: CRD_NAME, body: [{ op: 'replace', path, value }] },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
  const ours = connectorSchema(await loadConnectorCrd()).properties?.spec?.properties?.affinity ?? {};
  await replaceAffinity({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true });
  try {
    await during();
  } finally {
    await replaceAffinity(ours);
    const probe = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'Connector',
      metadata: { name: 'schema-probe' },
      spec: { ...spec, affinity: { nodeAffinity: 'yes' } },
    };
    const api = kc.makeApiClient(CustomObjectsApi);
    await eventually(
      () =>
        api
          .createNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            namespace,
            plural: PLURAL,
            dryRun: 'All',
            body: probe,
          })
          .then(failed, (error: { code?: number }) => error.code === 422),
      { description: 'the affinity schema served again', timeoutMs: 30_000 },
    );
  }
}

const succeeded = () => true;
const failed = () => false;

test('two Connectors of two namespaces with one connector id: the second mints nothing, and a Retain delete of the first does not hand it the record', async (t) => {
  const { kc } = cluster();
  const first = await createTestNamespace(kc, 'id-a');
  const second = await createTestNamespace(kc, 'id-b');
  const core = kc.makeApiClient(CoreV1Api);
  const api = connectors(kc);
  const shared = { ...spec, connector: { ...spec.connector, id: `shared.${first}` } };
  await api.create(first, {
    metadata: { name: 'edge', namespace: first },
    spec: { ...shared, deletionPolicy: 'Retain' },
  });
  const firstSecret = await eventually(
    () =>
      core.readNamespacedSecret({ namespace: first, name: 'edge-enrollment-token' }).catch(() => undefined),
    { description: 'the first Connector token Secret', timeoutMs: 30_000 },
  );
  const owned = await env.admin.getConnector(`shared.${first}`);
  t.is(owned.ownerUid, (await api.get(first, 'edge')).metadata.uid);

  await api.create(second, { metadata: { name: 'edge', namespace: second }, spec: shared });
  const c = await stalledWith(second, 'ConnectorIdConflict');
  t.regex(stalled(c)?.message ?? '', /belongs to another Connector/);
  // A blocked Connector shows nothing of the other one's record: not its state, heartbeat or identity.
  t.is(c.status?.controlPlaneState, undefined);
  t.is(c.status?.identity, undefined);
  t.is(c.status?.lastHeartbeatTime, undefined);
  t.is(c.status?.phase, 'Pending');
  t.is(
    await core
      .readNamespacedSecret({ namespace: second, name: 'edge-enrollment-token' })
      .catch(() => undefined),
    undefined,
    'no token for the second claimant',
  );
  const still = await env.admin.getConnector(`shared.${first}`);
  t.is(
    still.liveToken?.expiresAt,
    firstSecret.metadata?.annotations?.['vaultpam.io/token-expires-at'],
    'the first Connector token was not revoked by the second',
  );

  await api.delete(first, 'edge');
  await eventually(async () => ((await api.get(first, 'edge').catch(() => undefined)) ? undefined : true), {
    description: 'the first Connector gone',
    timeoutMs: 30_000,
  });
  // The record is kept for the first namespace: the second Connector looks again and stays blocked.
  await stalledWith(second, 'ConnectorIdConflict');
  await eventually(
    async () => {
      const again = await api.get(second, 'edge');
      return /for a Connector of another namespace to claim/.test(stalled(again)?.message ?? '')
        ? true
        : undefined;
    },
    { description: 'the second Connector told the record was kept for another namespace', timeoutMs: 30_000 },
  );
  const kept = await env.admin.getConnector(`shared.${first}`);
  t.like(kept, { ownerUid: null, handoverNamespace: first });
  t.is(
    await core
      .readNamespacedSecret({ namespace: second, name: 'edge-enrollment-token' })
      .catch(() => undefined),
    undefined,
  );
});

test('a Retain delete keeps the record for its own namespace: a Connector of another namespace naming the id stays Stalled, changes nothing, and its deletion leaves the record', async (t) => {
  const { kc } = cluster();
  const owner = await createTestNamespace(kc, 'keep-a');
  const squatter = await createTestNamespace(kc, 'keep-b');
  const core = kc.makeApiClient(CoreV1Api);
  const api = connectors(kc);
  const id = `kept.${owner}`;
  const shared = { ...spec, connector: { ...spec.connector, id } };
  await api.create(owner, {
    metadata: { name: 'edge', namespace: owner },
    spec: { ...shared, deletionPolicy: 'Retain' },
  });
  await eventually(
    () =>
      core.readNamespacedSecret({ namespace: owner, name: 'edge-enrollment-token' }).catch(() => undefined),
    { description: 'the owner token Secret', timeoutMs: 30_000 },
  );
  await api.delete(owner, 'edge');
  await eventually(async () => ((await api.get(owner, 'edge').catch(() => undefined)) ? undefined : true), {
    description: 'the owner Connector gone',
    timeoutMs: 30_000,
  });
  const kept = await env.admin.getConnector(id);
  t.like(kept, { ownerUid: null, handoverNamespace: owner, liveToken: null });

  // Another namespace names the id, with a recovery requested from the start: nothing happens.
  await api.create(squatter, {
    metadata: { name: 'edge', namespace: squatter },
    spec: { ...shared, recovery: { requestId: 'take-it' } },
  });
  const c = await stalledWith(squatter, 'ConnectorIdConflict');
  t.regex(stalled(c)?.message ?? '', /for a Connector of another namespace to claim, not this one/);
  t.false(
    (stalled(c)?.message ?? '').includes(`namespace ${owner}`),
    'where the record went is not revealed',
  );
  t.is(
    await core
      .readNamespacedSecret({ namespace: squatter, name: 'edge-enrollment-token' })
      .catch(() => undefined),
    undefined,
    'no token for the other namespace',
  );
  const untouched = await env.admin.getConnector(id);
  t.is(untouched.revision, kept.revision, 'the record did not change: no claim, mint or recovery');
  t.is(untouched.recovery, kept.recovery);

  // Its deletion (deletionPolicy Release) does not delete the record it never owned.
  await api.delete(squatter, 'edge');
  await eventually(
    async () => ((await api.get(squatter, 'edge').catch(() => undefined)) ? undefined : true),
    {
      description: 'the other Connector gone',
      timeoutMs: 30_000,
    },
  );
  t.like(await env.admin.getConnector(id), {
    ownerUid: null,
    handoverNamespace: owner,
    revision: kept.revision,
  });

  // A Connector of the owner's namespace claims it, paired as it was: no token is minted.
  await api.create(owner, { metadata: { name: 'again', namespace: owner }, spec: shared });
  const claimed = await eventually(
    async () => {
      const record = await env.admin.getConnector(id);
      return record.ownerUid ? record : undefined;
    },
    { description: 'the record claimed from its own namespace', timeoutMs: 30_000 },
  );
  t.is(claimed.ownerUid, (await api.get(owner, 'again')).metadata.uid);
  t.is(claimed.handoverNamespace, null);
});

test('a Retain release retried after its disown went through says the record was kept, not that it was not ours', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'retain-retry');
  const api = connectors(kc);
  const id = `${namespace}.edge`;
  await api.create(namespace, {
    metadata: { name: 'edge', namespace },
    spec: { ...spec, deletionPolicy: 'Retain' },
  });
  const uid = await eventually(
    async () => {
      const record = await controlPlaneRecord(id);
      return record?.ownerUid ?? undefined;
    },
    { description: 'the record owned', timeoutMs: 30_000 },
  );
  // The disown of an earlier attempt went through but its answer was lost (or the operator restarted).
  await env.admin.disownConnector(id, uid, namespace);
  await api.delete(namespace, 'edge');
  const event = await eventually(
    async () => (await connectorEvents(kc, namespace, 'edge')).find((e) => e.reason === 'ConnectorRetained'),
    { description: 'the ConnectorRetained Event', timeoutMs: 30_000 },
  );
  t.is(event.type, 'Normal');
  t.regex(
    event.note ?? '',
    new RegExp(`kept the control-plane record of ${id.replaceAll('.', '\\.')} and let go of it`),
  );
  t.notRegex(event.note ?? '', /does not own it/);
});
