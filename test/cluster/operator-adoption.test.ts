// An adopted workload (spec.workloadRef) is watched narrowly: its object by name and its pods by its
// own selector. The operator here resyncs only every 60 s, so each change below reaching the status
// within 20 s proves that a watch, not a resync, woke the Connector.
//
// And the operator is nobody's deputy: it adopts only a workload that consents (the label
// vaultpam.io/adopted-by naming the Connector), asks the control plane before a recovery scales
// anything, and gives an adopted workload back the replicas it had when an attempt fails.
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

function legacyDeployment(
  volume: Record<string, unknown>,
  options: { replicas?: number; adoptedBy?: string | null } = {},
): V1Deployment {
  // The workload's consent to adoption by the Connector "legacy" (null: none).
  const adoptedBy = options.adoptedBy === undefined ? 'legacy' : options.adoptedBy;
  return {
    metadata: {
      name: 'legacy-connector',
      ...(adoptedBy === null ? {} : { labels: { 'vaultpam.io/adopted-by': adoptedBy } }),
    },
    spec: {
      replicas: options.replicas ?? 1,
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

/** A namespace whose default ServiceAccount exists (the ReplicaSet controller needs it for pods). */
async function adoptionNamespace(prefix: string): Promise<string> {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, prefix);
  await eventually(
    () => kc.makeApiClient(CoreV1Api).readNamespacedServiceAccount({ namespace, name: 'default' }),
    { description: 'default ServiceAccount' },
  );
  return namespace;
}

/**
 * The Deployment's replicas and generation. Every write of its spec (a scale through the scale
 * subresource too) raises the generation, so an unchanged generation proves it was never scaled;
 * managedFields cannot tell: a scale write leaves spec.replicas owned by no manager.
 */
async function deploymentFacts(namespace: string) {
  const d = await cluster()
    .kc.makeApiClient(AppsV1Api)
    .readNamespacedDeployment({ namespace, name: 'legacy-connector' });
  return { replicas: d.spec?.replicas, generation: d.metadata?.generation };
}

/**
 * A namespace with the Deployment legacy-connector (3 replicas, emptyDir) and then the Connector
 * "legacy" adopting it; returns the Deployment as created.
 */
async function adoption(
  prefix: string,
  deployment: { replicas?: number; adoptedBy?: string | null },
  spec: Partial<Connector['spec']>,
) {
  const { kc } = cluster();
  const namespace = await adoptionNamespace(prefix);
  const apps = kc.makeApiClient(AppsV1Api);
  const api = connectors(kc);
  await apps.createNamespacedDeployment({
    namespace,
    body: legacyDeployment({ emptyDir: {} }, { replicas: 3, ...deployment }),
  });
  const created = await deploymentFacts(namespace);
  await api.create(namespace, {
    metadata: { name: 'legacy', namespace },
    spec: {
      connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: [] },
      workloadRef: { kind: 'Deployment', name: 'legacy-connector' },
      ...spec,
    },
  });
  return { namespace, apps, api, created };
}

test.serial(
  'a workload created after its Connector, and a pod replaced onto other storage, reach the status by watch',
  async (t) => {
    const { kc } = cluster();
    const namespace = await adoptionNamespace('adoptwatch');
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
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

test.serial(
  'the reproduction: a Deployment that did not consent is not adopted: Stalled AdoptionNotConsented, still 3 replicas, no record, no token',
  async (t) => {
    const { kc } = cluster();
    const { namespace, apps, api } = await adoption(
      'noconsent',
      { adoptedBy: null },
      { recovery: { requestId: 'incident-1' } },
    );

    const stalled = await eventually(
      () =>
        api
          .get(namespace, 'legacy')
          .then((c) => (condition(c, 'Stalled')?.reason === 'AdoptionNotConsented' ? c : undefined)),
      { description: 'Stalled AdoptionNotConsented' },
    );
    const message = condition(stalled, 'Stalled')?.message ?? '';
    t.true(
      message.includes(
        `kubectl -n ${namespace} label deployment legacy-connector vaultpam.io/adopted-by=legacy`,
      ),
      message,
    );
    t.is(stalled.status?.recovery, undefined, 'no recovery started');
    t.is(stalled.status?.storage?.podName, undefined, 'nothing about the workload is reported');
    const event = await eventually(
      async () => {
        const events = await kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
        return events.items.find((e) => e.reason === 'AdoptionNotConsented');
      },
      { description: 'a Warning Event' },
    );
    t.is(event.type, 'Warning');

    // Several passes later (blocked Connectors are looked at every 15 s; the watch wakes it too),
    // still nothing: the Deployment untouched, no record, no token.
    await apps.patchNamespacedDeployment(
      { namespace, name: 'legacy-connector', body: { metadata: { annotations: { poke: 'x' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const before = await deploymentFacts(namespace);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    t.deepEqual(await deploymentFacts(namespace), before);
    t.is(before.replicas, 3);
    t.like(await t.throwsAsync(env.admin.getConnector(`${namespace}.legacy`)), {
      code: 'CONNECTOR_NOT_FOUND',
    });
    t.true(
      await isGone(() =>
        kc.makeApiClient(CoreV1Api).readNamespacedSecret({ namespace, name: 'legacy-enrollment-token' }),
      ),
      'no token Secret',
    );
  },
);

/**
 * The Connector "legacy" pairs once (the real agent, playing the pod with the operator's token), is
 * Online with its bootstrap retired, then goes silent until the control plane says offline.
 */
async function pairOnceThenGoSilent(namespace: string): Promise<void> {
  const { kc } = cluster();
  const api = connectors(kc);
  await eventually(
    () => kc.makeApiClient(CoreV1Api).readNamespacedSecret({ namespace, name: 'legacy-enrollment-token' }),
    { description: 'token' },
  );
  const pod = await env.runAgent(namespace, 'legacy');
  await eventually(
    () =>
      api
        .get(namespace, 'legacy')
        .then((c) => (c.status?.phase === 'Online' && c.status.enrollment?.retired ? c : undefined)),
    { description: 'paired and online' },
  );
  await pod.stop();
  await eventually(
    () => api.get(namespace, 'legacy').then((c) => c.status?.controlPlaneState === 'offline' || undefined),
    { description: 'offline' },
  );
}

test.serial(
  'with consent, a recovery of a connector that never paired is refused as not needed before scaling, with the control plane reason; the Deployment was never scaled, and nothing is held back',
  async (t) => {
    const { kc } = cluster();
    const { namespace, apps, api, created } = await adoption(
      'neverpaired',
      { adoptedBy: null },
      { recovery: { requestId: 'incident-2' } },
    );
    await eventually(
      () =>
        api
          .get(namespace, 'legacy')
          .then((c) => condition(c, 'Stalled')?.reason === 'AdoptionNotConsented' || undefined),
      { description: 'not adopted yet' },
    );
    // The workload's owner consents: the watch on it wakes the Connector.
    await apps.patchNamespacedDeployment(
      {
        namespace,
        name: 'legacy-connector',
        body: { metadata: { labels: { 'vaultpam.io/adopted-by': 'legacy' } } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const failed = await eventually(
      () => api.get(namespace, 'legacy').then((c) => (c.status?.recovery?.step === 'Failed' ? c : undefined)),
      { description: 'the recovery ends Failed', ...WITHIN_WATCH },
    );
    // The first pairing is normal enrollment's: the request is not needed, which the record says,
    // and it holds nothing back (it stalled the Connector as RecoveryFailed).
    t.is(failed.status?.recovery?.outcome, 'NotNeeded');
    t.regex(
      failed.status?.recovery?.reason ?? '',
      /^the control plane refused it, so nothing was done: RECOVERY_NOT_NEEDED: a connector in state pending needs no recovery; mint a token instead; .*spec\.recovery\.requestId can be removed/,
    );
    t.is(condition(failed, 'Stalled'), undefined);
    t.is(failed.status?.recovery?.evidence?.replicasBefore, 3);
    const after = await deploymentFacts(namespace);
    t.is(after.replicas, 3);
    t.is(after.generation, created.generation, 'the spec was never changed: never scaled');
    // Not a recovery, but a first pairing: normal enrollment mints its token.
    await eventually(
      () => kc.makeApiClient(CoreV1Api).readNamespacedSecret({ namespace, name: 'legacy-enrollment-token' }),
      { description: 'an enrollment token for the first pairing' },
    );
  },
);

test.serial(
  'a recovery that fails after scaling down (its token expires) gives the adopted Deployment back its 3 replicas',
  async (t) => {
    const { namespace, api, created } = await adoption('restore', {}, { enrollment: { tokenTTL: '5m' } });
    await pairOnceThenGoSilent(namespace);

    await api.patchSpec(namespace, 'legacy', { spec: { recovery: { requestId: 'incident-3' } } });
    const waiting = await eventually(
      () =>
        api
          .get(namespace, 'legacy')
          .then((c) => (c.status?.recovery?.step === 'AwaitingOnline' ? c : undefined)),
      { description: 'scaled down, token minted, scaled up to pair', timeoutMs: 60_000 },
    );
    t.is(waiting.status?.recovery?.evidence?.replicasBefore, 3);
    const paired = await deploymentFacts(namespace);
    t.is(paired.replicas, 1, 'one replica to pair once');
    t.true((paired.generation ?? 0) > (created.generation ?? 0), 'its spec was changed: scaled');

    // Nobody pairs; the recovery token expires (a shifted clock for operator and control plane).
    env.clock.offsetMs += 6 * 60_000;
    t.teardown(() => {
      env.clock.offsetMs -= 6 * 60_000;
    });
    const failed = await eventually(
      () => api.get(namespace, 'legacy').then((c) => (c.status?.recovery?.step === 'Failed' ? c : undefined)),
      { description: 'the recovery fails', timeoutMs: 30_000 },
    );
    t.regex(failed.status?.recovery?.reason ?? '', /recovery token expired/);
    const restored = await eventually(
      () => deploymentFacts(namespace).then((d) => (d.replicas === 3 ? d : undefined)),
      { description: 'the 3 replicas it had' },
    ).catch(async (error: Error) => {
      const state = {
        deployment: await deploymentFacts(namespace),
        status: (await api.get(namespace, 'legacy')).status,
      };
      throw new Error(`${error.message}; ${JSON.stringify(state)}`);
    });
    t.is(restored.replicas, 3);
  },
);

test.serial(
  'a Connector deleted in the middle of a recovery gives the adopted Deployment back its 3 replicas, after the release',
  async (t) => {
    // The author who deletes the Connector may have no right to scale the Deployment: the workload's
    // owner agreed to be recovered, not to be left at 1 replica (before, it was).
    const { kc } = cluster();
    const { namespace, api } = await adoption('deleted-mid', {}, {});
    await pairOnceThenGoSilent(namespace);
    await api.patchSpec(namespace, 'legacy', { spec: { recovery: { requestId: 'incident-4' } } });
    await eventually(
      () =>
        api.get(namespace, 'legacy').then((c) => c.status?.recovery?.step === 'AwaitingOnline' || undefined),
      { description: 'scaled down, token minted, scaled up to pair', timeoutMs: 60_000 },
    );
    t.is((await deploymentFacts(namespace)).replicas, 1);

    await api.delete(namespace, 'legacy');
    await eventually(() => isGone(() => api.get(namespace, 'legacy')), { description: 'the Connector gone' });
    t.is((await deploymentFacts(namespace)).replicas, 3, 'given back before the finalizer went');
    const record = await env.admin.getConnector(`${namespace}.legacy`).catch(() => undefined);
    t.is(record, undefined, 'released first: no record, so no recovery token left to pair with');
    const events = await kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
    t.true(
      events.items.some(
        (e) =>
          e.reason === 'RecoveryAbandoned' &&
          /back the 3 replicas it had before the recovery/.test(e.note ?? ''),
      ),
      'the Event says so',
    );
  },
);
