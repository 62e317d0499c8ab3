// Status follows the control plane, and an operator with nothing to do writes nothing.
import { CoreV1Api } from '@kubernetes/client-node';
import test from 'ava';
import type { Connector } from '../../src/operator/api/types.ts';
import type { RunningOperator } from '../../src/operator/operator.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { connectors, type OperatorEnvironment, startOperatorEnvironment } from '../helpers/operator-env.ts';
import { runAgentFromSecret } from '../helpers/simulated-pod.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;
let operator: RunningOperator;

test.serial.before(async () => {
  // Heartbeats every 2 s (offline after 6 s): a loaded CI machine must not flap the connector.
  env = await startOperatorEnvironment(cluster(), { heartbeatIntervalSeconds: 2 });
  // A short resync makes the operator look at every Connector often: it must still write nothing.
  operator = await env.startOperator({ resyncMs: 500 });
});
test.after.always(async () => {
  await env?.stop();
});

const spec = { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] } };
const condition = (c: Connector, type: string) => c.status?.conditions?.find((x) => x.type === type);

async function onlineConnector(namespace: string, more: Partial<Connector['spec']> = {}) {
  const { kc } = cluster();
  const api = connectors(kc);
  await api.create(namespace, { metadata: { name: 'edge', namespace }, spec: { ...spec, ...more } });
  await eventually(
    () => api.get(namespace, 'edge').then((c) => c.status?.enrollment?.tokenSecretName !== undefined),
    {
      description: 'token minted',
    },
  );
  const pod = await env.runAgent(namespace, 'edge');
  await eventually(
    () =>
      api
        .get(namespace, 'edge')
        .then(
          (c) =>
            c.status?.phase === 'Online' &&
            c.status.enrollment?.retired &&
            !c.status.enrollment.tokenSecretName,
        ),
    {
      description: 'Online, retired, token gone',
    },
  );
  return { api, pod };
}

test.serial('an idle operator makes no writes while heartbeats arrive and resyncs run', async (t) => {
  const namespace = await createTestNamespace(cluster().kc, 'idle');
  const { api, pod } = await onlineConnector(namespace);
  t.teardown(() => pod.stop());
  const writesByKind = async () =>
    Object.fromEntries(
      ((await operator.metrics.kubernetesWrites.get()).values ?? []).map((v) => [
        `${v.labels.kind}/${v.labels.verb}`,
        v.value,
      ]),
    );
  const countWrites = () => operator.metrics.totalWrites({ excludeKinds: ['Lease'] });
  const reconciles = async () =>
    (
      await operator.metrics.registry.getSingleMetric('vaultpam_operator_reconciles_total')?.get()
    )?.values.reduce((sum, v) => sum + v.value, 0) ?? 0;
  // The StatefulSet controller creates the pod and its claim in its own time (slowly on a loaded
  // machine); the world must be still before "nothing changes" can be measured.
  await eventually(
    () => api.get(namespace, 'edge').then((c) => c.status?.storage?.podName && c.status.storage.claimUID),
    { description: 'pod and claim observed', timeoutMs: 60_000 },
  );
  // Let the last transition settle (heartbeat time, events), then count.
  await eventually(
    async () => {
      const before = await countWrites();
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      return (await countWrites()) === before;
    },
    { description: 'writes settle', timeoutMs: 60_000 },
  );
  const writesBefore = await countWrites();
  const kindsBefore = await writesByKind();
  const reconcilesBefore = await reconciles();
  const beatsBefore = pod.agent.status().heartbeatsAccepted;
  const statusBefore = JSON.stringify((await api.get(namespace, 'edge')).status);
  // Idle is measured over 5 heartbeats and 4 passes, however long a loaded machine takes for them
  // (4 s of sleep, which they took in quiet, asked them to arrive within a time).
  await eventually(
    async () =>
      pod.agent.status().heartbeatsAccepted - beatsBefore >= 5 &&
      (await reconciles()) - reconcilesBefore >= 4,
    { description: '5 heartbeats and 4 passes', timeoutMs: 120_000 },
  );
  const statusAfter = JSON.stringify((await api.get(namespace, 'edge')).status);
  const after = await writesByKind();
  t.is(
    await countWrites(),
    writesBefore,
    `and wrote nothing (writes by kind before ${JSON.stringify(kindsBefore)}, after ${JSON.stringify(after)}; status before ${statusBefore}, after ${statusAfter})`,
  );

  // Every request is counted by its answer, reads as well as writes: the answered writes are the
  // writes sent (nothing failed here), and the informers' lists and the reads are there too.
  const answered = (await operator.metrics.kubernetesRequests.get()).values;
  const sum = (keep: (labels: Record<string, string | number>) => boolean) =>
    answered.filter((v) => keep(v.labels)).reduce((total, v) => total + v.value, 0);
  const writeVerbs = new Set(['create', 'update', 'patch', 'delete']);
  t.is(
    sum((l) => writeVerbs.has(String(l.verb))),
    await operator.metrics.totalWrites(),
    JSON.stringify(answered.map((v) => v.labels)),
  );
  t.true(sum((l) => l.verb === 'list' && l.resource === 'connectors.vaultpam.io' && l.code === '200') >= 1);
  t.true(sum((l) => l.verb === 'watch' && l.resource === 'connectors.vaultpam.io') >= 1);
  t.true(sum((l) => l.verb === 'patch' && l.resource === 'connectors.vaultpam.io' && l.code === '200') >= 1);
});

test.serial(
  'status follows the control plane: Offline with a Reconnect diagnosis, then Online again',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'flap');
    const { api, pod } = await onlineConnector(namespace);
    const dataDir = pod.dataDir;
    await pod.agent.stop();
    const offline = await eventually(
      () => api.get(namespace, 'edge').then((c) => (c.status?.phase === 'Offline' ? c : undefined)),
      { description: 'Offline after missed heartbeats' },
    );
    t.is(offline.status?.diagnosis?.failureClass, 'Reconnect');
    t.is(condition(offline, 'Healthy')?.reason, 'HeartbeatMissed');
    t.is(condition(offline, 'Ready')?.status, 'False');

    // Same identity, no token: the connector reconnects by itself.
    const restarted = await env.runAgent(namespace, 'edge', dataDir);
    t.teardown(() => restarted.stop());
    const back = await eventually(
      () => api.get(namespace, 'edge').then((c) => (c.status?.phase === 'Online' ? c : undefined)),
      {
        description: 'Online again',
      },
    );
    t.is(back.status?.diagnosis, undefined);
    t.is(
      back.status?.identity?.certificateSerial,
      offline.status?.identity?.certificateSerial,
      'same identity, no re-pairing',
    );
  },
);

test.serial(
  'a recovery request id on a Connector that needs none: recorded as not needed, and the Online connector is not held back (no Stalled, no Ready=False RecoveryFailed)',
  async (t) => {
    // The reproduction of an outsider review: a GitOps manifest that still carries an old request
    // id recreates the Connector with it. The control plane refuses the recovery as
    // RECOVERY_NOT_NEEDED; the connector paired and was Online, Healthy and Enrolled, but
    // Stalled/Ready=False RecoveryFailed, and a new id stalled it the same way.
    const namespace = await createTestNamespace(cluster().kc, 'notneeded');
    const { api, pod } = await onlineConnector(namespace, { recovery: { requestId: 'A_b.c' } });
    t.teardown(() => pod.stop());
    // Ready follows the connector (here Unknown while the test cluster leaves the claim Pending),
    // never the request: it said False, RecoveryFailed.
    const settled = (requestId: string) =>
      eventually(
        () =>
          api
            .get(namespace, 'edge')
            .then((c) =>
              c.status?.recovery?.requestId === requestId &&
              c.status.recovery.outcome !== undefined &&
              c.status.phase === 'Online'
                ? c
                : undefined,
            ),
        { description: `Online, with the record of ${requestId}` },
      );
    const first = await settled('A_b.c');
    t.is(condition(first, 'Stalled'), undefined);
    t.not(condition(first, 'Ready')?.reason, 'RecoveryFailed');
    t.is(condition(first, 'Healthy')?.status, 'True');
    t.is(condition(first, 'Enrolled')?.status, 'True');
    t.like(first.status?.recovery, { step: 'Failed', outcome: 'NotNeeded' });
    t.regex(
      first.status?.recovery?.reason ?? '',
      /RECOVERY_NOT_NEEDED.*spec\.recovery\.requestId can be removed/,
    );

    await api.patchSpec(namespace, 'edge', { spec: { recovery: { requestId: 'incident-2' } } });
    const second = await settled('incident-2');
    t.is(condition(second, 'Stalled'), undefined);
    t.not(condition(second, 'Ready')?.reason, 'RecoveryFailed');
    t.like(second.status?.recovery, { step: 'Failed', outcome: 'NotNeeded', handledRequestIds: ['A_b.c'] });
    t.is(
      second.status?.identity?.certificateSerial,
      first.status?.identity?.certificateSerial,
      'nothing was done to the connector',
    );
  },
);

test.serial(
  'a Connector that needs a recovery stays Stalled RecoveryRequired while the operator cannot reach the control plane',
  async (t) => {
    // The reproduction of an outsider review: Stalled (RecoveryRequired: a person must act) went
    // while the control plane was unreachable, replaced by Reconciling RetryingAfterError, which
    // kstatus, Argo CD and Flux read as progress.
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'lost-unreachable');
    const api = connectors(kc);
    await api.create(namespace, { metadata: { name: 'edge', namespace }, spec });
    const minted = await eventually(
      () => api.get(namespace, 'edge').then((c) => c.status?.enrollment?.tokenSecretName),
      { description: 'token minted' },
    );
    // The token the agent pairs with, kept aside: once spent, it proves the caller is the connector.
    const core = kc.makeApiClient(CoreV1Api);
    const secret = await core.readNamespacedSecret({ namespace, name: minted });
    await core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: 'spent' }, data: secret.data },
    });
    const pod = await env.runAgent(namespace, 'edge');
    await eventually(
      () =>
        api.get(namespace, 'edge').then((c) => c.status?.phase === 'Online' && c.status.enrollment?.retired),
      { description: 'Online, retired' },
    );
    await pod.stop();
    // The identity is lost: a fresh data directory, and the agent falls back to its spent token.
    const lost = await runAgentFromSecret({
      kc,
      namespace,
      secretName: 'spent',
      connectorId: `${namespace}.edge`,
      controlPlaneUrl: env.controlPlane.url,
      caPem: env.controlPlane.caPem,
    });
    t.teardown(() => lost.stop());
    await eventually(
      () => api.get(namespace, 'edge').then((c) => condition(c, 'Stalled')?.reason === 'RecoveryRequired'),
      { description: 'Stalled RecoveryRequired' },
    );

    await env.stopControlPlane();
    t.teardown(() => env.startControlPlaneAgain());
    // A pass now, rather than at the next periodic look.
    await api.patchSpec(namespace, 'edge', { metadata: { labels: { touched: 'yes' } } });
    const unreachable = await eventually(
      () =>
        api
          .get(namespace, 'edge')
          .then((c) => (condition(c, 'Healthy')?.reason === 'ControlPlaneUnreachable' ? c : undefined)),
      { description: 'the operator reports the control plane unreachable' },
    );
    t.is(unreachable.status?.phase, 'NeedsRecovery', 'the last phase seen');
    const stalled = condition(unreachable, 'Stalled');
    t.is(stalled?.status, 'True', 'the need for a person to act does not vanish');
    t.is(stalled?.reason, 'RecoveryRequired');
    t.is(condition(unreachable, 'Reconciling'), undefined, 'never both Stalled and Reconciling');
    const ready = condition(unreachable, 'Ready');
    t.is(ready?.status, 'False');
    t.is(ready?.reason, 'RecoveryRequired');
    t.regex(ready?.message ?? '', /meanwhile a temporary error is retried with backoff/);
  },
);
