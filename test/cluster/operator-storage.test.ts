// Storage posture and token lifecycle against the real API server: the operator judges what backs
// the data directory from the pods that exist (the StatefulSet controller creates them; nothing
// runs them here), notices a replaced claim, re-mints an expired token, and grows a bound claim when
// spec.storage.size grows (adoption has its own file).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  EventsV1Api,
  PatchStrategy,
  StorageV1Api,
  setHeaderOptions,
} from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import { LocalProvisioner, PROVISIONER_NAME } from '../../dev/local-cluster/local-provisioner.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { FIELD_MANAGER } from '../../src/operator/api/constants.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { connectors, type OperatorEnvironment, startOperatorEnvironment } from '../helpers/operator-env.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;

test.serial.before(async () => {
  env = await startOperatorEnvironment(cluster());
  await env.startOperator({ resyncMs: 500 });
});
test.after.always(async () => {
  await env?.stop();
});

const connectorSpec = { org: 'acme', endpointId: 'ep-1', allowedNetworks: [] };
const condition = (c: Connector, type: string) => c.status?.conditions?.find((x) => x.type === type);

test.serial(
  'ephemeral by choice: the pod mounts an emptyDir, mode GuidedRecovery, Ready not blocked by it',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'eph');
    const api = connectors(kc);
    await api.create(namespace, {
      metadata: { name: 'edge', namespace },
      spec: { connector: connectorSpec, storage: { ephemeral: true } },
    });
    const c = await eventually(
      () => api.get(namespace, 'edge').then((x) => (x.status?.storage?.podName ? x : undefined)),
      { description: 'posture judged from the pod' },
    );
    t.is(c.status?.mode, 'GuidedRecovery');
    t.is(c.status?.storage?.source, 'EmptyDir');
    t.is(condition(c, 'DurableStorage')?.reason, 'EphemeralByChoice');
    const sts = await kc.makeApiClient(AppsV1Api).readNamespacedStatefulSet({ namespace, name: 'edge' });
    t.is(sts.spec?.volumeClaimTemplates, undefined);
  },
);

test.serial('a claim replaced after pairing is reported as identity loss', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'claim');
  const core = kc.makeApiClient(CoreV1Api);
  const api = connectors(kc);
  await api.create(namespace, { metadata: { name: 'edge', namespace }, spec: { connector: connectorSpec } });
  await eventually(() => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' }), {
    description: 'token',
  });
  const agent = await env.runAgent(namespace, 'edge');
  const paired = await eventually(
    () =>
      api
        .get(namespace, 'edge')
        .then((x) => (x.status?.enrollment?.retired && x.status.storage?.claimUID ? x : undefined)),
    { description: 'paired with the claim remembered' },
  );
  const originalUID = paired.status?.storage?.claimUID;
  await agent.stop();
  // The claim and its pod are deleted; the StatefulSet controller recreates both: an empty new claim.
  await core.deleteNamespacedPersistentVolumeClaim({ namespace, name: 'data-edge-0' });
  // The StatefulSet controller may delete the Pending pod of a claim being deleted first.
  await core
    .deleteNamespacedPod({ namespace, name: 'edge-0', gracePeriodSeconds: 0 })
    .catch((error: { code?: number }) => {
      if (error.code !== 404) throw error;
    });
  const replaced = await eventually(
    () =>
      api
        .get(namespace, 'edge')
        .then((x) => (condition(x, 'DurableStorage')?.reason === 'ClaimReplaced' ? x : undefined)),
    { description: 'replaced claim noticed', timeoutMs: 60_000 },
  );
  t.not(replaced.status?.storage?.claimUID, undefined);
  t.is(replaced.status?.storage?.claimUID, originalUID, 'the identity claim is remembered');
  t.is(replaced.status?.diagnosis?.failureClass, 'IdentityLoss');
  t.regex(replaced.status?.diagnosis?.nextStep ?? '', /reattach the original volume/);
  t.is(replaced.status?.mode, 'GuidedRecovery');
  // Between the old claim's end and the new claim, no pod mounts anything: the claim the identity was
  // on is gone, and what the next pod gets is an empty one. The mode never said Autonomous then.
  const events = await kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
  const modes = events.items
    .filter((e) => e.regarding?.name === 'edge' && /^(Mode|Storage)/.test(e.reason ?? ''))
    .map((e) => `${e.reason}: ${e.note}`);
  t.false(
    modes.some((m) => m.includes('-> Autonomous')),
    `no mode Autonomous without the storage: ${JSON.stringify(modes)}`,
  );
});

test.serial('a token that expires unused is deleted and a fresh one minted', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'ttl');
  const core = kc.makeApiClient(CoreV1Api);
  const api = connectors(kc);
  await api.create(namespace, {
    metadata: { name: 'edge', namespace },
    spec: { connector: connectorSpec, enrollment: { tokenTTL: '5m' } },
  });
  const first = await eventually(
    () => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' }),
    { description: 'token' },
  );
  const firstKey = first.metadata?.annotations?.['vaultpam.io/mint-key'] ?? '';
  t.regex(firstKey, /-1$/);
  // Six minutes pass for the control plane and the operator (a shifted clock: TLS stays valid).
  env.clock.offsetMs += 6 * 60_000;
  t.teardown(() => {
    env.clock.offsetMs -= 6 * 60_000;
  });
  const second = await eventually(
    async () => {
      const s = await core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' });
      return s.metadata?.annotations?.['vaultpam.io/mint-key'] !== firstKey ? s : undefined;
    },
    { description: 're-minted token' },
  );
  t.regex(second.metadata?.annotations?.['vaultpam.io/mint-key'] ?? '', /-2$/);
  t.not(second.data?.token, first.data?.token);
  // The Secret is applied before the status that counts it is written: wait for the count, not a race.
  const c = await eventually(
    () => api.get(namespace, 'edge').then((x) => (x.status?.enrollment?.mintCount === 2 ? x : undefined)),
    { description: 'status counts the second mint' },
  );
  t.is(c.status?.enrollment?.mintCount, 2);
  const record = await env.admin.getConnector(`${namespace}.edge`);
  const secondToken = Buffer.from(second.data?.token ?? '', 'base64').toString();
  t.is(record.liveToken?.tokenId, secondToken.split('_')[1], 'the live token is the one in the Secret');
});

// --- growing storage: two StorageClasses, claims bound by the local provisioner -------------------

/**
 * A Connector on `storageClassName` whose claim is Bound (a hostPath volume pre-bound to it), paired
 * and online (so no Enrolling reason takes precedence over what the test looks at).
 */
async function connectorWithBoundClaim(t: ExecutionContext, storageClassName: string): Promise<string> {
  const { kc } = cluster();
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = await createTestNamespace(kc, 'grow');
  await connectors(kc).create(namespace, {
    metadata: { name: 'edge', namespace },
    spec: { connector: connectorSpec, storage: { size: '1Gi', storageClassName } },
  });
  const claim = await eventually(
    () => core.readNamespacedPersistentVolumeClaim({ namespace, name: 'data-edge-0' }).catch(() => undefined),
    { description: 'the StatefulSet controller creates the claim' },
  );
  const root = await mkdtemp(join(tmpdir(), 'vaultpam-volumes-'));
  await new LocalProvisioner({ core, root, logger: silentLogger() }).provision(claim);
  await rm(root, { recursive: true, force: true });
  await eventually(() => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' }), {
    description: 'token',
  });
  const agent = await env.runAgent(namespace, 'edge');
  t.teardown(() => agent.stop());
  await eventually(
    () =>
      connectors(kc)
        .get(namespace, 'edge')
        .then(
          (c) =>
            c.status?.phase === 'Online' &&
            c.status.storage?.claimPhase === 'Bound' &&
            condition(c, 'Reconciling') === undefined,
        ),
    { description: 'online, the claim bound, nothing in progress', timeoutMs: 60_000 },
  );
  return namespace;
}

/** A StorageClass served by the local provisioner's name, with or without allowVolumeExpansion. */
async function storageClass(prefix: string, allowVolumeExpansion: boolean): Promise<string> {
  const name = `${prefix}-${process.pid}`;
  await cluster()
    .kc.makeApiClient(StorageV1Api)
    .createStorageClass({
      body: {
        metadata: { name },
        provisioner: PROVISIONER_NAME,
        ...(allowVolumeExpansion ? { allowVolumeExpansion } : {}),
      },
    });
  return name;
}

const operatorManages = (managedFields: Array<{ manager?: string }> | undefined) =>
  (managedFields ?? []).some((f) => f.manager === FIELD_MANAGER);

/**
 * A paired Connector whose bound 1Gi claim is on `storageClassName`, grown to 2Gi, and a check that
 * its StatefulSet is still the one it was.
 */
async function grownTo2Gi(t: ExecutionContext, storageClassName: string) {
  const { kc } = cluster();
  const apps = kc.makeApiClient(AppsV1Api);
  const namespace = await connectorWithBoundClaim(t, storageClassName);
  const before = await apps.readNamespacedStatefulSet({ namespace, name: 'edge' });
  await connectors(kc).patchSpec(namespace, 'edge', { spec: { storage: { size: '2Gi' } } });
  const statefulSetUnchanged = async () => {
    const after = await apps.readNamespacedStatefulSet({ namespace, name: 'edge' });
    t.is(after.metadata?.generation, before.metadata?.generation, 'the StatefulSet was not changed');
    t.is(after.spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.storage, '1Gi');
  };
  return { namespace, statefulSetUnchanged };
}

/** The Connector once `holds` is true of it. */
function connectorOnce(namespace: string, description: string, holds: (c: Connector) => boolean) {
  return eventually(
    () =>
      connectors(cluster().kc)
        .get(namespace, 'edge')
        .then((c) => (holds(c) ? c : undefined)),
    { description },
  );
}

async function reasonsOfEvents(namespace: string): Promise<string[]> {
  const list = await cluster().kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
  return list.items.filter((e) => e.regarding?.kind === 'Connector').map((e) => e.reason ?? '');
}

test.serial(
  'a larger spec.storage.size grows the bound claim under the operator field manager; the StatefulSet is untouched and nothing stalls',
  async (t) => {
    const core = cluster().kc.makeApiClient(CoreV1Api);
    const grown = await grownTo2Gi(t, await storageClass('expandable', true));
    const namespace = grown.namespace;
    const claim = await eventually(
      () =>
        core
          .readNamespacedPersistentVolumeClaim({ namespace, name: 'data-edge-0' })
          .then((c) => (c.spec?.resources?.requests?.storage === '2Gi' ? c : undefined)),
      { description: 'the live claim asks for 2Gi' },
    );
    t.true(operatorManages(claim.metadata?.managedFields), 'written under the operator field manager');
    // No resizer serves this class here: the volume stays 1Gi, and the status says what it waits for.
    const expanding = await connectorOnce(
      namespace,
      'Reconciling ExpandingStorage',
      (c) => condition(c, 'Reconciling')?.reason === 'ExpandingStorage',
    );
    t.regex(condition(expanding, 'Reconciling')?.message ?? '', /asks for 2Gi and has 1Gi|from 1Gi to 2Gi/);
    t.is(condition(expanding, 'Stalled'), undefined, 'not stalled');
    await grown.statefulSetUnchanged();

    // The storage provider finishes: the volume and the claim's capacity grow.
    const volumeName = claim.spec?.volumeName ?? '';
    await core.patchPersistentVolume(
      { name: volumeName, body: { spec: { capacity: { storage: '2Gi' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await core.patchNamespacedPersistentVolumeClaimStatus(
      { namespace, name: 'data-edge-0', body: { status: { capacity: { storage: '2Gi' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const done = await connectorOnce(
      namespace,
      'Reconciling clears once the capacity is there',
      (c) => condition(c, 'Reconciling') === undefined,
    );
    t.is(condition(done, 'Stalled'), undefined);
    const reasons = await eventually(
      () => reasonsOfEvents(namespace).then((r) => (r.includes('StorageExpanded') ? r : undefined)),
      { description: 'the StorageExpanded Event' },
    );
    t.true(reasons.includes('StorageExpansionRequested'));
    await grown.statefulSetUnchanged();

    // Any other change is applied with the claim template as it is: accepted, not refused whole.
    await connectors(cluster().kc).patchSpec(namespace, 'edge', { spec: { podAnnotations: { team: 'a' } } });
    const rolled = await eventually(
      () =>
        cluster()
          .kc.makeApiClient(AppsV1Api)
          .readNamespacedStatefulSet({ namespace, name: 'edge' })
          .then((sts) => (sts.spec?.template.metadata?.annotations?.team === 'a' ? sts : undefined)),
      { description: 'the operator applied the StatefulSet, claim template and all' },
    );
    t.is(rolled.spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.storage, '1Gi');
  },
);

test.serial(
  'a StorageClass without allowVolumeExpansion: Stalled StorageExpansionUnsupported naming it, nothing patched',
  async (t) => {
    const fixed = await storageClass('fixed', false);
    const { namespace, statefulSetUnchanged } = await grownTo2Gi(t, fixed);
    const stalled = await connectorOnce(
      namespace,
      'Stalled StorageExpansionUnsupported',
      (c) => condition(c, 'Stalled')?.reason === 'StorageExpansionUnsupported',
    );
    const message = condition(stalled, 'Stalled')?.message ?? '';
    t.regex(message, new RegExp(`StorageClass ${fixed} does not allow volume expansion`));
    t.regex(message, new RegExp(`set allowVolumeExpansion: true on StorageClass ${fixed}`));
    t.is(condition(stalled, 'Ready')?.reason, 'StorageExpansionUnsupported');
    const reasons = await eventually(
      () =>
        reasonsOfEvents(namespace).then((r) => (r.includes('StorageExpansionUnsupported') ? r : undefined)),
      { description: 'the Warning Event' },
    );
    t.false(reasons.includes('StorageExpansionRequested'));
    const claim = await cluster()
      .kc.makeApiClient(CoreV1Api)
      .readNamespacedPersistentVolumeClaim({ namespace, name: 'data-edge-0' });
    t.is(claim.spec?.resources?.requests?.storage, '1Gi', 'the claim was not patched');
    t.false(operatorManages(claim.metadata?.managedFields), 'the operator never wrote the claim');
    await statefulSetUnchanged();
  },
);
