// The runbook end to end: real API server, real control plane, the operator as its ServiceAccount,
// and connector pods really running the agent (the local pod runner plays kubelet). A connector
// pairs on durable storage, loses its identity when its claim is replaced, is diagnosed, and a
// guided recovery (scale to zero, revoke, mint one token, pair once, validate a restart without a
// token) brings it back; restarting the operator half way repeats no side effect.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import test from 'ava';
import { silentLogger } from '../../src/lib/logger.ts';
import { crashBackoffFrom } from '../../src/local-cluster/crash-backoff.ts';
import { PodRunner } from '../../src/local-cluster/pod-runner.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import type { RunningOperator } from '../../src/operator/operator.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { connectors, type OperatorEnvironment, startOperatorEnvironment } from '../helpers/operator-env.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;
let runner: PodRunner;
let runnerRoot: string;

test.serial.before(async () => {
  env = await startOperatorEnvironment(cluster());
  runnerRoot = await mkdtemp(join(tmpdir(), 'vaultpam-pods-'));
  runner = new PodRunner({
    kubeConfig: cluster().kc,
    rootDir: runnerRoot,
    logger: silentLogger(),
    crashBackoff: crashBackoffFrom(500, 3_000),
    probePeriodMs: 300,
    resyncPeriodMs: 1_000,
    leaseRenewMs: 2_000,
  });
  await runner.start();
});
test.after.always(async () => {
  await runner?.stop();
  await env?.stop();
  if (runnerRoot) await rm(runnerRoot, { recursive: true, force: true });
});

const spec = { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] } };
const LONG = { timeoutMs: 90_000, intervalMs: 250 };

async function waitForStatus(
  namespace: string,
  name: string,
  description: string,
  predicate: (c: Connector) => boolean,
) {
  const api = connectors(cluster().kc);
  let last: Connector | undefined;
  try {
    return await eventually(
      () =>
        api.get(namespace, name).then((c) => {
          last = c;
          return predicate(c) ? c : undefined;
        }),
      { ...LONG, description },
    );
  } catch (error) {
    // Say what the world looked like, so a failure can be read without re-running it.
    const pod = await cluster()
      .kc.makeApiClient(CoreV1Api)
      .readNamespacedPod({ namespace, name: `${name}-0` })
      .catch(() => undefined);
    const logs = await runner.getLogs(namespace, `${name}-0`, { allInstances: true }).catch(() => '');
    throw new Error(
      `${(error as Error).message}\nstatus: ${JSON.stringify(last?.status)}\npod: ${JSON.stringify(pod?.status?.containerStatuses)}\nlogs: ${logs.slice(-3000)}`,
    );
  }
}

test.serial(
  'identity lost with its claim, diagnosed, and recovered once; a restarted operator repeats nothing',
  async (t) => {
    const { kc } = cluster();
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
      recoveries.map((v) => [v.labels.outcome, v.value]),
      [['succeeded', 1]],
      'the operator that finished the recovery counted it once',
    );
    await operator.stop();
  },
);
