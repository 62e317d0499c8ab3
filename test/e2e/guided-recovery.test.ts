// The runbook end to end: real API server, real control plane, the operator as its ServiceAccount,
// and connector pods really running the agent (the local pod runner plays kubelet). A connector
// pairs on durable storage, loses its identity when its claim is replaced, is diagnosed, and a
// guided recovery (scale to zero, revoke, mint one token, pair once, validate a restart without a
// token) brings it back; restarting the operator half way repeats no side effect.
import { CoreV1Api } from '@kubernetes/client-node';
import test from 'ava';
import type { RunningOperator } from '../../src/operator/operator.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { connectors } from '../helpers/operator-env.ts';
import { useRunningPods } from '../helpers/running-pods.ts';

const cluster = useCluster(test);
const system = useRunningPods(test, cluster);

const spec = { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] } };

test.serial(
  'identity lost with its claim, diagnosed, and recovered once; a restarted operator repeats nothing',
  async (t) => {
    const { kc } = cluster();
    const { env, runner, waitForStatus } = system();
    const core = kc.makeApiClient(CoreV1Api);
    const api = connectors(kc);
    let operator: RunningOperator = await env.startOperator({ resyncMs: 2_000 });
    const namespace = await createTestNamespace(kc, 'e2e');
    const connectorId = `${namespace}.edge`;
    await api.create(namespace, { metadata: { name: 'edge', namespace }, spec });

    // 1. First pairing on durable storage: Online, Autonomous, bootstrap retired, token Secret gone.
    const online = await waitForStatus(
      namespace,
      'edge',
      'Online and retired',
      (c) =>
        c.status?.phase === 'Online' &&
        c.status.enrollment?.retired === true &&
        c.status.mode === 'Autonomous' &&
        !c.status.enrollment.tokenSecretName,
    );
    const firstSerial = online.status?.identity?.certificateSerial;
    t.truthy(firstSerial);
    t.is(online.status?.conditions?.find((c) => c.type === 'DurableStorage')?.reason, 'ClaimBound');

    // 2. The claim is replaced (deleted with its pod, recreated empty by the StatefulSet controller).
    await core.deleteNamespacedPersistentVolumeClaim({ namespace, name: 'data-edge-0' });
    await core.deleteNamespacedPod({ namespace, name: 'edge-0' });
    const lost = await waitForStatus(
      namespace,
      'edge',
      'identity loss diagnosed',
      (c) => c.status?.diagnosis?.failureClass === 'IdentityLoss',
    );
    t.is(lost.status?.mode, 'GuidedRecovery');
    t.regex(lost.status?.diagnosis?.nextStep ?? '', /spec\.recovery\.requestId/);
    const before = await env.admin.audit({ connectorId });
    const mintsBefore = before.filter((e) => e.type === 'token.minted').length;

    // 3. Ask for a guided recovery; kill the operator once the token is minted, start a new one.
    await api.patchSpec(namespace, 'edge', { spec: { recovery: { requestId: 'incident-42' } } });
    // Not Completed: the restarted operator must be the one that finishes (and counts) the recovery.
    await waitForStatus(namespace, 'edge', 'recovery reaches ScalingUp or later', (c) =>
      ['ScalingUp', 'AwaitingOnline', 'ValidatingRestart'].includes(c.status?.recovery?.step ?? ''),
    );
    await operator.stop({ release: true });
    operator = await env.startOperator({ resyncMs: 2_000 });

    const done = await waitForStatus(
      namespace,
      'edge',
      'recovery completed',
      (c) => c.status?.recovery?.step === 'Completed' || c.status?.recovery?.step === 'Failed',
    );
    t.is(done.status?.recovery?.outcome, 'Succeeded', done.status?.recovery?.reason);
    t.is(done.status?.phase, 'Online');
    t.is(done.status?.recovery?.evidence?.phaseBefore !== undefined, true);
    t.regex(done.status?.recovery?.evidence?.proof ?? '', /validation restart/);
    t.not(
      done.status?.identity?.certificateSerial,
      firstSerial,
      'a new identity was issued by the re-pairing',
    );

    // Exactly one token minted and one pairing for the request, even across the operator restart.
    const after = await env.admin.audit({ connectorId });
    const since = before.at(-1)?.seq ?? 0;
    const window = after.filter((e) => e.seq > since);
    t.is(
      after.filter((e) => e.type === 'token.minted').length - mintsBefore,
      1,
      'one token for the recovery',
    );
    t.is(window.filter((e) => e.type === 'endpoint.enrolled').length, 1, 'one pairing');
    t.true((done.status?.recovery?.evidence?.auditEntries ?? []).some((e) => e.type === 'endpoint.enrolled'));
    await t.throwsAsync(
      () => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' }),
      undefined,
      'token Secret deleted',
    );

    // The agent's own log proves the reconnect after the validation restart used the persisted identity.
    const logs = await runner.getLogs(namespace, 'edge-0', { allInstances: true });
    t.regex(logs, /identity|reconnect|connected/i);
    t.notRegex(logs, /vpe_[0-9a-f]{16}_/, 'no enrollment token in the agent logs');
    t.notRegex(logs, /PRIVATE KEY/, 'no private key in the agent logs');
    const recoveries = (await operator.metrics.recoveries.get()).values;
    t.deepEqual(
      recoveries.map((v) => [v.labels.outcome, v.value]).sort(),
      [
        ['failed', 0],
        ['not_needed', 0],
        ['succeeded', 1],
      ],
      'the operator that finished the recovery counted it once',
    );
    await operator.stop();
  },
);
