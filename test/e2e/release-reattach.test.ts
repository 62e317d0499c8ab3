// A claim kept after a deletionPolicy Release delete, reattached by a new Connector of the same
// name, end to end: real API server, real control plane, the operator as its ServiceAccount, and
// connector pods really running the agent (the local pod runner plays kubelet). Release deleted the
// record and its certificate, so the agent's identity on the kept claim is refused: the operator
// says NeedsRecovery with an IdentityLoss diagnosis and holds no token, and one guided recovery
// (revoke, mint one token, the agent moves the refused identity aside and pairs once) brings it back.
import { readdir } from 'node:fs/promises';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import test from 'ava';
import { claimDirectory } from '../../dev/local-cluster/volumes.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { connectors } from '../helpers/operator-env.ts';
import { LONG, useRunningPods } from '../helpers/running-pods.ts';

const cluster = useCluster(test);
const system = useRunningPods(test, cluster);
const spec = { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] } };

/** True once the read answers 404 (the Kubernetes client's `code`, the admin client's `httpStatus`). */
const gone = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (error: { code?: unknown; httpStatus?: number }) =>
      error.code === 404 || error.httpStatus === 404 || undefined,
  );

test.serial(
  'a claim kept after a Release delete: the refused identity is diagnosed, no token is held, and one recovery pairs it once',
  async (t) => {
    const { kc } = cluster();
    const { env, runner, root, waitForStatus } = system();
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    const api = connectors(kc);
    await env.startOperator({ resyncMs: 2_000 });
    const namespace = await createTestNamespace(kc, 'reattach');
    const connectorId = `${namespace}.edge`;

    // 1. A Connector pairs on its claim.
    await api.create(namespace, { metadata: { name: 'edge', namespace }, spec });
    const online = await waitForStatus(
      namespace,
      'edge',
      'Online and retired',
      (c) => c.status?.phase === 'Online' && c.status.enrollment?.retired === true,
    );
    const firstSerial = online.status?.identity?.certificateSerial;
    t.truthy(firstSerial);
    const claimUID = (await core.readNamespacedPersistentVolumeClaim({ namespace, name: 'data-edge-0' }))
      .metadata?.uid;
    t.truthy(claimUID);

    // 2. Deleted with deletionPolicy Release (the default): the record goes, the claim stays.
    await api.delete(namespace, 'edge');
    await eventually(() => gone(api.get(namespace, 'edge')), { ...LONG, description: 'Connector gone' });
    await eventually(() => gone(env.admin.getConnector(connectorId)), {
      ...LONG,
      description: 'control-plane record released',
    });
    await eventually(() => gone(apps.readNamespacedStatefulSet({ namespace, name: 'edge' })), {
      ...LONG,
      description: 'StatefulSet collected',
    });
    await eventually(() => gone(core.readNamespacedPod({ namespace, name: 'edge-0' })), {
      ...LONG,
      description: 'pod gone',
    });
    const kept = await core.readNamespacedPersistentVolumeClaim({ namespace, name: 'data-edge-0' });
    t.is(kept.metadata?.uid, claimUID, 'the claim is retained with the identity on it');

    const releasedSeq = (await env.admin.audit({ connectorId })).at(-1)?.seq ?? 0;

    // 3. A new Connector of the same name reattaches the claim: its record is new and pending.
    await api.create(namespace, { metadata: { name: 'edge', namespace }, spec });
    const refused = await waitForStatus(
      namespace,
      'edge',
      'refused identity diagnosed, no token held',
      (c) =>
        c.status?.phase === 'NeedsRecovery' &&
        c.status.diagnosis?.failureClass === 'IdentityLoss' &&
        c.status.enrollment?.tokenSecretName === undefined,
    );
    t.is(refused.status?.controlPlaneState, 'pending');
    t.regex(refused.status?.diagnosis?.reason ?? '', /does not accept/);
    t.regex(refused.status?.diagnosis?.reason ?? '', /deletionPolicy Release/);
    t.true((refused.status?.diagnosis?.evidence ?? []).some((e) => /IDENTITY_REJECTED/.test(e)));
    t.regex(refused.status?.diagnosis?.nextStep ?? '', /spec\.recovery\.requestId/);
    const cond = (type: string) => refused.status?.conditions?.find((c) => c.type === type);
    t.is(cond('Enrolled')?.reason, 'NeedsRecovery');
    t.is(cond('Stalled')?.reason, 'RecoveryRequired');
    // No live token anywhere: revoked in the control plane, no Secret.
    await eventually(
      async () => (await env.admin.getConnector(connectorId)).liveToken === null || undefined,
      { ...LONG, description: 'no live token in the control plane' },
    );
    await eventually(() => gone(core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' })), {
      ...LONG,
      description: 'no token Secret',
    });
    const stillRefused = await api.get(namespace, 'edge');
    t.is(stillRefused.status?.phase, 'NeedsRecovery', 'it stays there until asked');

    // 4. One guided recovery.
    await api.patchSpec(namespace, 'edge', { spec: { recovery: { requestId: 'reattach-1' } } });
    const done = await waitForStatus(
      namespace,
      'edge',
      'recovery finished',
      (c) => c.status?.recovery?.step === 'Completed' || c.status?.recovery?.step === 'Failed',
    );
    t.is(done.status?.recovery?.outcome, 'Succeeded', done.status?.recovery?.reason);
    t.is(done.status?.recovery?.evidence?.phaseBefore, 'NeedsRecovery');
    t.regex(done.status?.recovery?.evidence?.proof ?? '', /validation restart/);
    const back = await waitForStatus(namespace, 'edge', 'Online', (c) => c.status?.phase === 'Online');
    t.is(back.status?.diagnosis, undefined);
    t.not(back.status?.identity?.certificateSerial, firstSerial);

    // Exactly one pairing after the refused identity's token was revoked, and one token minted for
    // it. (Counted by sequence, not by the recovery's startedAt: that has whole seconds, and the
    // bootstrap mint can fall in the same second.)
    const audit = await env.admin.audit({ connectorId });
    const revoked = audit.find((e) => e.seq > releasedSeq && e.type === 'token.revoked');
    t.truthy(revoked, 'the unused bootstrap token was revoked');
    const window = audit.filter((e) => e.seq > (revoked?.seq ?? releasedSeq));
    t.is(window.filter((e) => e.type === 'endpoint.enrolled').length, 1, 'one pairing');
    t.is(window.filter((e) => e.type === 'token.minted').length, 1, 'one token');
    t.is(
      audit.filter((e) => e.seq > releasedSeq && e.type === 'endpoint.enrolled').length,
      1,
      'since the re-creation, no pairing but the recovery one',
    );

    // The agent moved the refused identity aside on the claim, and said so.
    const data = claimDirectory(root, claimUID ?? '');
    const entries = await readdir(data);
    t.true(entries.includes('identity'));
    t.is(entries.filter((n) => n.startsWith('identity.rejected-')).length, 1, entries.join(', '));
    const logs = await runner.getLogs(namespace, 'edge-0', { allInstances: true });
    t.regex(logs, /moved the refused identity to .*identity\.rejected-/);
    t.notRegex(logs, /vpe_[0-9a-f]{16}_/, 'no enrollment token in the agent logs');
    t.notRegex(logs, /PRIVATE KEY/, 'no private key in the agent logs');
  },
);

test.serial('under recovery.policy Automatic the same reattachment recovers by itself, once', async (t) => {
  const { kc } = cluster();
  const { env, waitForStatus } = system();
  const core = kc.makeApiClient(CoreV1Api);
  const api = connectors(kc);
  const namespace = await createTestNamespace(kc, 'reattach-auto');
  const connectorId = `${namespace}.edge`;
  const auto = { ...spec, recovery: { policy: 'Automatic' as const } };
  await api.create(namespace, { metadata: { name: 'edge', namespace }, spec: auto });
  await waitForStatus(namespace, 'edge', 'Online', (c) => c.status?.phase === 'Online');
  await api.delete(namespace, 'edge');
  await eventually(() => gone(env.admin.getConnector(connectorId)), { ...LONG, description: 'released' });
  await eventually(() => gone(core.readNamespacedPod({ namespace, name: 'edge-0' })), {
    ...LONG,
    description: 'pod gone',
  });
  await eventually(() => gone(api.get(namespace, 'edge')), { ...LONG, description: 'Connector gone' });
  const releasedSeq = (await env.admin.audit({ connectorId })).at(-1)?.seq ?? 0;

  await api.create(namespace, { metadata: { name: 'edge', namespace }, spec: auto });
  const done = await waitForStatus(
    namespace,
    'edge',
    'automatic recovery finished',
    (c) => c.status?.recovery?.step === 'Completed' || c.status?.recovery?.step === 'Failed',
  );
  t.is(done.status?.recovery?.outcome, 'Succeeded', done.status?.recovery?.reason);
  t.regex(done.status?.recovery?.requestId ?? '', /^auto-/);
  t.is(done.status?.recovery?.evidence?.phaseBefore, 'NeedsRecovery');
  await waitForStatus(namespace, 'edge', 'Online', (c) => c.status?.phase === 'Online');
  const audit = await env.admin.audit({ connectorId });
  t.is(audit.filter((e) => e.seq > releasedSeq && e.type === 'endpoint.enrolled').length, 1, 'one pairing');
});
