// The runbook's first-boot bootstrap failures and normal reconnect failures, and a Degraded path,
// end to end with real processes: the real API server, etcd and controller-manager, the reference
// control plane, the operator as its ServiceAccount, and connector pods running the real agent
// through the local pod runner. Each scenario (issue 8, scenarios 6 to 10) runs in its own
// namespace, and asserts the status, conditions, Events, the control plane's audit entries and the
// token Secret.
//
// The pod runner runs probes on the periods the pod declares (a kubelet's timing: liveness every
// 10 s, failing after 3), not every 300 ms as the shared default does: with the control plane's
// 1 s heartbeat interval (offline after 3 s), a 300 ms probe period would have the liveness probe
// kill an agent stopped for 4 s, which is not what a kubelet does to an agent stopped for 4 s.
//
// Time: the operator and the control plane share a shifted clock (env.clock) that ages tokens
// without waiting. It goes back to real time before a certificate is issued: TLS checks the
// certificate's dates on the real clocks of both processes, and the agent has its own real clock.
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import {
  AppsV1Api,
  CoreV1Api,
  EventsV1Api,
  type KubeConfig,
  type V1StatefulSet,
  Watch,
} from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import type { PodRunner } from '../../dev/local-cluster/pod-runner.ts';
import type { AuditEntry } from '../../src/controlplane/audit.ts';
import type { Condition, Connector, ConnectorStatus } from '../../src/operator/api/types.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { connectors } from '../helpers/operator-env.ts';
import { LONG, useRunningPods } from '../helpers/running-pods.ts';

const fileStartedAt = Date.now();
const cluster = useCluster(test);
const system = useRunningPods(test, cluster, { probePeriodMs: undefined });

test.serial.before(async () => {
  // Every second the operator looks at each Connector again: a token aged by the shifted clock is
  // noticed without waiting for the real-time requeue at its expiry.
  await system().env.startOperator({ resyncMs: 1_000 });
});

const spec = { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] } };
/** An image this node cannot run (as one that cannot be pulled yet): the pod stays Pending. */
const HELD_IMAGE = 'registry.example.com/acme/unpulled-agent:1.0';
const AGENT_IMAGE = 'vaultpam-connector:test';
/** The environment's control plane: heartbeats every 1 s, offline after 3 intervals. */
const OFFLINE_AFTER_MS = 3_000;

const NO_TOKEN = /vpe_[0-9a-f]{16}_/;
const NO_KEY = /PRIVATE KEY/;

// ---- what the world looks like ----------------------------------------------------------------

const condition = (status: ConnectorStatus | undefined, type: string): Condition | undefined =>
  status?.conditions?.find((c) => c.type === type);

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

interface ConnectorEvent {
  type: string;
  reason: string;
  note: string;
  count: number;
}

/** The Events regarding the Connector (events.k8s.io/v1), oldest first. */
async function connectorEvents(kc: KubeConfig, namespace: string, name: string): Promise<ConnectorEvent[]> {
  const list = await kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
  return list.items
    .filter((e) => e.regarding?.kind === 'Connector' && e.regarding.name === name)
    .sort((a, b) => new Date(a.eventTime ?? 0).getTime() - new Date(b.eventTime ?? 0).getTime())
    .map((e) => ({
      type: e.type ?? '',
      reason: e.reason ?? '',
      note: e.note ?? '',
      count: e.series?.count ?? 1,
    }));
}

/** Waits for an Event of `reason` whose note matches `note` (Events are recorded without holding up the pass). */
async function eventSaying(
  kc: KubeConfig,
  namespace: string,
  name: string,
  reason: string,
  note: RegExp = /./,
): Promise<ConnectorEvent> {
  let last: ConnectorEvent[] = [];
  try {
    return await eventually(
      async () => {
        last = await connectorEvents(kc, namespace, name);
        return last.find((e) => e.reason === reason && note.test(e.note));
      },
      { timeoutMs: 20_000, intervalMs: 250, description: `Event ${reason} ${note}` },
    );
  } catch (error) {
    const seen = last.map((e) => `${e.type} ${e.reason} x${e.count}: ${e.note}`.slice(0, 300)).join('\n');
    throw new Error(`${(error as Error).message}\nEvents:\n${seen}`);
  }
}

interface StatusSeen {
  /** When this process received it (Date.now()). */
  at: number;
  status: ConnectorStatus | undefined;
}

/**
 * Every status the API server hands out for one Connector, as a watch sees them: a transient
 * condition (a token revoked, held for one pass) or a phase that must never appear is caught
 * whatever the polling interval of the test.
 */
async function watchStatus(kc: KubeConfig, namespace: string, name: string) {
  const seen: StatusSeen[] = [];
  const watch = new Watch(kc);
  let controller: AbortController | undefined;
  let stopped = false;
  let resourceVersion: string | undefined;
  const start = async (): Promise<void> => {
    controller = await watch.watch(
      `/apis/vaultpam.io/v1alpha1/namespaces/${namespace}/connectors`,
      { fieldSelector: `metadata.name=${name}`, ...(resourceVersion ? { resourceVersion } : {}) },
      (type: string, object: Connector) => {
        if (type !== 'ADDED' && type !== 'MODIFIED') return;
        resourceVersion = object.metadata.resourceVersion;
        seen.push({ at: Date.now(), status: object.status });
      },
      (error: unknown) => {
        // A watch ends now and then; an expired resourceVersion (410) starts over with a fresh list.
        if (error) resourceVersion = undefined;
        restart();
      },
    );
  };
  const restart = () => {
    if (stopped) return;
    setTimeout(() => {
      if (!stopped) start().catch(restart);
    }, 200).unref();
  };
  await start();
  return {
    seen,
    /** The first status from index `from` on that satisfies `predicate`, waiting for the watch to deliver it. */
    first(predicate: (status: ConnectorStatus | undefined) => boolean, description: string, from = 0) {
      return eventually(() => seen.slice(from).find((s) => predicate(s.status)), {
        timeoutMs: 10_000,
        description: `the watch delivers a status: ${description}`,
      });
    },
    stop() {
      stopped = true;
      controller?.abort();
    },
  };
}

/** The audit entries of one connector, oldest first. */
const auditOf = (connectorId: string) => system().env.admin.audit({ connectorId, limit: 1000 });
const ofType = (entries: AuditEntry[], type: string) => entries.filter((e) => e.type === type);
const at = (entry: AuditEntry | undefined) => Date.parse(entry?.at ?? '');

/** The token Secret's public facts: the token's id (never the token), its mint key and expiry. */
async function tokenSecret(kc: KubeConfig, namespace: string, name: string) {
  const secret = await kc
    .makeApiClient(CoreV1Api)
    .readNamespacedSecret({ namespace, name: `${name}-enrollment-token` })
    .catch((error: { code?: number }) => {
      if (error.code === 404) return undefined;
      throw error;
    });
  if (!secret) return undefined;
  const token = Buffer.from(secret.data?.token ?? '', 'base64').toString('utf8');
  return {
    tokenId: token.split('_')[1],
    mintKey: secret.metadata?.annotations?.['vaultpam.io/mint-key'],
    expiresAt: secret.metadata?.annotations?.['vaultpam.io/token-expires-at'],
  };
}

/** The agent's own process: a child of the watchdog whose pid the pod runner reports. */
async function agentPid(runner: PodRunner, namespace: string, pod: string): Promise<number> {
  const watchdog = runner.describePod(namespace, pod)?.pids[0];
  if (watchdog === undefined) throw new Error(`the pod runner runs no process for ${namespace}/${pod}`);
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid !== watchdog) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes('connector.ts')) return Number(entry);
  }
  throw new Error(`no agent process under the watchdog ${watchdog} of ${namespace}/${pod}`);
}

type LogLine = { time: string; msg: string } & Record<string, unknown>;

/** The agent's pino lines whose message matches, parsed. */
async function agentLines(runner: PodRunner, namespace: string, pod: string, message: RegExp) {
  const logs = await runner.getLogs(namespace, pod, { allInstances: true });
  return logs
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => {
      try {
        return JSON.parse(line) as LogLine;
      } catch {
        return undefined;
      }
    })
    .filter((line): line is LogLine => line !== undefined && message.test(String(line.msg)));
}

/**
 * When the scenario ends: if an assertion failed, logs what the world looked like (the status, the
 * pod, the agent's log tail, the control plane's audit entries and the Connector's Events; none of
 * them holds a secret), so the failure reads without a rerun; then deletes the namespace (the
 * Connector releases its record on the way).
 */
function removeAfterwards(t: ExecutionContext, namespace: string, name = 'edge'): void {
  t.teardown(async () => {
    const { kc } = cluster();
    const core = kc.makeApiClient(CoreV1Api);
    if (!t.passed) {
      const connector = await connectors(kc)
        .get(namespace, name)
        .catch(() => undefined);
      const podName = connector?.status?.storage?.podName ?? `${name}-0`;
      const pod = await core.readNamespacedPod({ namespace, name: podName }).catch(() => undefined);
      const logs = await system()
        .runner.getLogs(namespace, podName, { allInstances: true })
        .catch(() => '');
      const audit = await auditOf(`${namespace}.${name}`).catch(() => []);
      const events = await connectorEvents(kc, namespace, name).catch(() => []);
      t.log(`status: ${JSON.stringify(connector?.status)}`);
      t.log(`pod ${podName}: ${JSON.stringify(pod?.status?.containerStatuses)}`);
      t.log(`agent log tail:\n${logs.slice(-3000)}`);
      t.log(
        `audit:\n${audit.map((e) => `${e.seq} ${e.at} ${e.type} ${JSON.stringify(e.details)}`).join('\n')}`,
      );
      t.log(`events:\n${events.map((e) => `${e.type} ${e.reason} x${e.count}: ${e.note}`).join('\n')}`);
    }
    await core.deleteNamespace({ name: namespace }).catch(() => {});
  });
}

/** Lets a held-back agent start: the image fixed, and the Pending pod deleted. */
async function releaseAgent(kc: KubeConfig, namespace: string, name: string): Promise<void> {
  await connectors(kc).patchSpec(namespace, name, { spec: { image: null } });
  const apps = kc.makeApiClient(AppsV1Api);
  await eventually(
    () =>
      apps
        .readNamespacedStatefulSet({ namespace, name })
        .then((s) => s.spec?.template.spec?.containers[0]?.image === AGENT_IMAGE || undefined),
    { ...LONG, description: 'the StatefulSet carries the runnable image' },
  );
  // The StatefulSet controller does not replace a pod that never became ready with the new
  // revision (Kubernetes' documented "forced rollback"): the pod is deleted, as a person would.
  await kc.makeApiClient(CoreV1Api).deleteNamespacedPod({ namespace, name: `${name}-0` });
}

/** Asserts what a successful first pairing leaves behind: Online, Autonomous, retired, no Secret. */
async function assertPairedOnce(
  t: ExecutionContext,
  namespace: string,
  name: string,
  paired: Connector,
  expectedTokenId: string | undefined,
): Promise<void> {
  const { kc } = cluster();
  const status = paired.status;
  t.is(status?.phase, 'Online');
  t.is(status?.mode, 'Autonomous');
  t.true(status?.enrollment?.retired);
  t.is(status?.enrollment?.tokenSecretName, undefined);
  t.is(status?.diagnosis, undefined, 'no diagnosis once it is online');
  t.is(condition(status, 'Enrolled')?.reason, 'BootstrapRetired');
  t.is(condition(status, 'Healthy')?.reason, 'HeartbeatOk');
  t.is(condition(status, 'DurableStorage')?.reason, 'ClaimBound');
  await eventually(() => tokenSecret(kc, namespace, name).then((s) => s === undefined), {
    ...LONG,
    description: 'token Secret deleted',
  });
  const audit = await auditOf(`${namespace}.${name}`);
  const enrolled = ofType(audit, 'endpoint.enrolled');
  t.is(enrolled.length, 1, 'exactly one pairing');
  t.is(enrolled[0]?.details.tokenId, expectedTokenId, 'paired with the last token minted');
  t.is(ofType(audit, 'endpoint.bootstrap_retired').length, 1);
  t.is(ofType(audit, 'gateway.enrollment_failed').length, 0, 'no token was refused');
  await eventSaying(kc, namespace, name, 'PhaseOnline');
  const logs = await system().runner.getLogs(namespace, `${name}-0`, { allInstances: true });
  t.regex(logs, /enrolled: identity persisted/);
  t.notRegex(logs, NO_TOKEN, 'no enrollment token in the agent log');
  t.notRegex(logs, NO_KEY, 'no private key in the agent log');
}

/** Sets the shared clock so that "now" is `instant` (ms since the epoch, by the shifted clock). */
function moveClockTo(instant: number): void {
  system().env.clock.offsetMs = instant - Date.now();
}

/** Gives the operator several passes (it resyncs every second) to do what it must not do. */
const severalPasses = () => new Promise((resolve) => setTimeout(resolve, 3_000));

// ---- scenario 6 --------------------------------------------------------------------------------

test.serial(
  'first-boot bootstrap failure: the enrolment token expired before the connector ever came online; a fresh token is generated with the documented backoff, FirstBootBootstrap once it repeats, and the connector pairs with the fresh one',
  async (t) => {
    const startedAt = Date.now();
    const { kc } = cluster();
    const { env, waitForStatus } = system();
    const api = connectors(kc);
    const namespace = await createTestNamespace(kc, 'expired');
    removeAfterwards(t, namespace);
    const connectorId = `${namespace}.edge`;
    t.teardown(() => {
      env.clock.offsetMs = 0;
    });
    const history = await watchStatus(kc, namespace, 'edge');
    t.teardown(() => history.stop());

    // The agent is held back: its image cannot run on this node yet, so the pod stays Pending.
    await api.create(namespace, {
      metadata: { name: 'edge', namespace },
      spec: { ...spec, image: HELD_IMAGE, enrollment: { tokenTTL: '5m' } },
    });
    const first = await waitForStatus(
      namespace,
      'edge',
      'token #1 minted',
      (c) =>
        c.status?.enrollment?.mintCount === 1 && condition(c.status, 'Enrolled')?.reason === 'TokenMinted',
    );
    await eventually(
      () =>
        kc
          .makeApiClient(CoreV1Api)
          .readNamespacedPod({ namespace, name: 'edge-0' })
          .then(
            (p) => p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'ImageNotRunnableLocally',
          ),
      { ...LONG, description: 'the pod is held back' },
    );
    t.is(first.status?.phase, 'Pending');
    t.is(first.status?.enrollment?.tokenSecretName, 'edge-enrollment-token');
    t.is(first.status?.diagnosis, undefined);
    const secret1 = await tokenSecret(kc, namespace, 'edge');
    t.regex(secret1?.mintKey ?? '', /^enroll-.*-1$/);
    t.is((await env.admin.getConnector(connectorId)).liveToken?.tokenId, secret1?.tokenId);
    await eventSaying(kc, namespace, 'edge', 'TokenMinted', /#1 .*300 s/);

    // 1. The first token expires unused: routine, re-minted at once, no diagnosis.
    moveClockTo(Date.parse(secret1?.expiresAt ?? '') + 1_000);
    const second = await waitForStatus(
      namespace,
      'edge',
      'token #2 minted after the first expired',
      (c) => c.status?.enrollment?.mintCount === 2 && c.status.enrollment.tokenSecretName !== undefined,
    );
    t.is(second.status?.phase, 'Pending');
    t.is(second.status?.diagnosis, undefined, 'one expired token is routine');
    const secret2 = await eventually(
      () => tokenSecret(kc, namespace, 'edge').then((s) => (s?.mintKey?.endsWith('-2') ? s : undefined)),
      { ...LONG, description: 'the Secret holds token #2' },
    );
    t.not(secret2.tokenId, secret1?.tokenId);
    t.is((await env.admin.getConnector(connectorId)).liveToken?.tokenId, secret2.tokenId);
    await eventSaying(kc, namespace, 'edge', 'TokenSecretDeleted', /no longer live/);
    await eventSaying(kc, namespace, 'edge', 'TokenMinted', /#2 /);

    // 2. The second token expires unused: FirstBootBootstrap, and the next token waits 1 min.
    const expiry2 = Date.parse(secret2.expiresAt ?? '');
    moveClockTo(expiry2 + 1_000);
    const diagnosed = await waitForStatus(
      namespace,
      'edge',
      'FirstBootBootstrap once a token expired again',
      (c) => c.status?.diagnosis?.failureClass === 'FirstBootBootstrap',
    );
    t.is(diagnosed.status?.phase, 'Pending');
    t.regex(
      diagnosed.status?.diagnosis?.reason ?? '',
      /never paired: .*enrollment tokens expired or were revoked before the agent used them \(2 so far\)/,
    );
    t.regex(diagnosed.status?.diagnosis?.nextStep ?? '', /fresh token/);
    t.is(condition(diagnosed.status, 'Enrolled')?.status, 'False');
    t.is(condition(diagnosed.status, 'Enrolled')?.reason, 'TokenExpired');
    t.is(condition(diagnosed.status, 'Ready')?.status, 'False');
    t.is(diagnosed.status?.enrollment?.tokenSecretName, undefined);
    t.is(diagnosed.status?.enrollment?.mintCount, 2);
    await eventually(() => tokenSecret(kc, namespace, 'edge').then((s) => s === undefined), {
      ...LONG,
      description: 'the expired token Secret deleted',
    });
    const diagnosedEvent = await eventSaying(kc, namespace, 'edge', 'DiagnosedFirstBootBootstrap');
    t.is(diagnosedEvent.type, 'Warning');
    t.false(
      history.seen.some((s) => {
        const enrollment = s.status?.enrollment;
        const beforeRepeat =
          (enrollment?.mintCount ?? 0) < 2 ||
          (enrollment?.mintCount === 2 && enrollment.tokenSecretName !== undefined);
        return beforeRepeat && s.status?.diagnosis !== undefined;
      }),
      'no diagnosis after the first expiry, while token #2 was live',
    );

    // Half way through the minute: still no token.
    moveClockTo(expiry2 + 30_000);
    await severalPasses();
    t.is(ofType(await auditOf(connectorId), 'token.minted').length, 2, 'no token within the backoff');
    moveClockTo(expiry2 + 61_000);
    await waitForStatus(
      namespace,
      'edge',
      'token #3 a minute after the second expiry',
      (c) => c.status?.enrollment?.mintCount === 3 && c.status.enrollment.tokenSecretName !== undefined,
    );
    const secret3 = await eventually(
      () => tokenSecret(kc, namespace, 'edge').then((s) => (s?.mintKey?.endsWith('-3') ? s : undefined)),
      { ...LONG, description: 'the Secret holds token #3' },
    );

    // 3. The third expires too: the delay doubles to 2 min.
    const expiry3 = Date.parse(secret3.expiresAt ?? '');
    moveClockTo(expiry3 + 1_000);
    await waitForStatus(
      namespace,
      'edge',
      'token #3 expired',
      (c) =>
        c.status?.enrollment?.mintCount === 3 &&
        c.status.enrollment.tokenSecretName === undefined &&
        /\(3 so far\)/.test(c.status.diagnosis?.reason ?? ''),
    );
    moveClockTo(expiry3 + 90_000);
    await severalPasses();
    t.is(ofType(await auditOf(connectorId), 'token.minted').length, 3, 'no token within the doubled backoff');
    moveClockTo(expiry3 + 121_000);
    await waitForStatus(
      namespace,
      'edge',
      'token #4 two minutes after the third expiry',
      (c) => c.status?.enrollment?.mintCount === 4 && c.status.enrollment.tokenSecretName !== undefined,
    );
    const secret4 = await eventually(
      () => tokenSecret(kc, namespace, 'edge').then((s) => (s?.mintKey?.endsWith('-4') ? s : undefined)),
      { ...LONG, description: 'the Secret holds token #4' },
    );

    // The control plane's audit: four tokens, each minted when the backoff allowed.
    const minted = ofType(await auditOf(connectorId), 'token.minted');
    t.deepEqual(
      minted.map((e) => String(e.details.idempotencyKey).replace(/^enroll-.*-(\d+)$/, '#$1')),
      ['#1', '#2', '#3', '#4'],
    );
    const expiries = minted.map((e) => Date.parse(String(e.details.expiresAt)));
    const delays = [1, 2, 3].map((n) => at(minted[n]) - (expiries[n - 1] ?? 0));
    t.log(`re-mint delays after each expiry (shifted clock): ${delays.map(seconds).join(', ')}`);
    t.true((delays[0] ?? Number.POSITIVE_INFINITY) < 60_000, 'the first expired token is re-minted at once');
    t.true((delays[1] ?? 0) >= 60_000, 'then after 1 min');
    t.true((delays[2] ?? 0) >= 120_000, 'then after 2 min');
    t.is(minted.at(-1)?.details.tokenId, secret4.tokenId);

    // 4. The agent can start (the image fixed, the stuck pod replaced): it pairs with token #4.
    env.clock.offsetMs = 0;
    await releaseAgent(kc, namespace, 'edge');
    const paired = await waitForStatus(
      namespace,
      'edge',
      'paired with the fresh token',
      (c) => c.status?.phase === 'Online' && c.status.enrollment?.retired === true,
    );
    await assertPairedOnce(t, namespace, 'edge', paired, secret4.tokenId);
    t.is(paired.status?.enrollment?.mintCount, 4);
    t.false(
      history.seen.some((s) => s.status?.phase === 'NeedsRecovery'),
      'never NeedsRecovery',
    );
    t.log(`scenario 6 took ${seconds(Date.now() - startedAt)}`);
  },
);

// ---- scenario 7 --------------------------------------------------------------------------------

test.serial(
  'first-boot bootstrap failure: the enrolment token revoked before it was used (someone clicked Revoke); reported, a new token generated as documented, and the connector pairs with it',
  async (t) => {
    const startedAt = Date.now();
    const { kc } = cluster();
    const { env, waitForStatus } = system();
    const api = connectors(kc);
    const namespace = await createTestNamespace(kc, 'revoked');
    removeAfterwards(t, namespace);
    const connectorId = `${namespace}.edge`;
    t.teardown(() => {
      env.clock.offsetMs = 0;
    });
    const history = await watchStatus(kc, namespace, 'edge');
    t.teardown(() => history.stop());

    await api.create(namespace, {
      metadata: { name: 'edge', namespace },
      spec: { ...spec, image: HELD_IMAGE },
    });
    await waitForStatus(
      namespace,
      'edge',
      'token #1 minted',
      (c) =>
        c.status?.enrollment?.mintCount === 1 && condition(c.status, 'Enrolled')?.reason === 'TokenMinted',
    );
    const secret1 = await tokenSecret(kc, namespace, 'edge');
    t.truthy(secret1?.tokenId);
    t.is((await env.admin.getConnector(connectorId)).liveToken?.tokenId, secret1?.tokenId);

    // 1. The live token is revoked in the control plane before the agent could use it.
    t.deepEqual(await env.admin.revokeTokens(connectorId), { revoked: 1 });
    await waitForStatus(
      namespace,
      'edge',
      'token #2 minted after the revocation',
      (c) => c.status?.enrollment?.mintCount === 2 && c.status.enrollment.tokenSecretName !== undefined,
    );
    const reported = await history.first(
      (status) => condition(status, 'Enrolled')?.reason === 'TokenRevoked',
      'the status says the token was revoked',
    );
    t.is(condition(reported?.status, 'Enrolled')?.status, 'False');
    t.regex(condition(reported?.status, 'Enrolled')?.message ?? '', /edge-enrollment-token was revoked/);
    t.is(reported?.status?.enrollment?.tokenSecretName, undefined, 'its Secret is no longer named');
    t.is(reported?.status?.phase, 'Pending');
    await eventSaying(kc, namespace, 'edge', 'TokenSecretDeleted', /no longer live/);
    await eventSaying(kc, namespace, 'edge', 'TokenMinted', /#2 /);
    const secret2 = await eventually(
      () => tokenSecret(kc, namespace, 'edge').then((s) => (s?.mintKey?.endsWith('-2') ? s : undefined)),
      { ...LONG, description: 'the Secret holds token #2' },
    );
    t.not(secret2.tokenId, secret1?.tokenId);
    t.is((await env.admin.getConnector(connectorId)).liveToken?.tokenId, secret2.tokenId);
    let audit = await auditOf(connectorId);
    const revoked1 = ofType(audit, 'token.revoked')[0];
    t.is(revoked1?.details.tokenId, secret1?.tokenId);
    const minted2 = ofType(audit, 'token.minted')[1];
    t.log(`first revocation -> token #2: ${seconds(at(minted2) - at(revoked1))} (at once)`);
    t.true(at(minted2) - at(revoked1) < 60_000, 'the first revoked token is replaced at once');

    // 2. Revoked again: the next token waits for the backoff, counted from the revocation.
    const seenBefore = history.seen.length;
    t.deepEqual(await env.admin.revokeTokens(connectorId), { revoked: 1 });
    await waitForStatus(
      namespace,
      'edge',
      'the second revoked token Secret deleted, none minted yet',
      (c) => c.status?.enrollment?.mintCount === 2 && c.status.enrollment.tokenSecretName === undefined,
    );
    await history.first(
      (status) => condition(status, 'Enrolled')?.reason === 'TokenRevoked',
      'the second revocation is reported too',
      seenBefore,
    );
    const revoked2 = ofType(await auditOf(connectorId), 'token.revoked')[1];
    t.is(revoked2?.details.tokenId, secret2.tokenId);
    moveClockTo(at(revoked2) + 30_000);
    await severalPasses();
    t.is(ofType(await auditOf(connectorId), 'token.minted').length, 2, 'no token within the backoff');
    moveClockTo(at(revoked2) + 61_000);
    await waitForStatus(
      namespace,
      'edge',
      'token #3 a minute after the second revocation',
      (c) => c.status?.enrollment?.mintCount === 3 && c.status.enrollment.tokenSecretName !== undefined,
    );
    const secret3 = await eventually(
      () => tokenSecret(kc, namespace, 'edge').then((s) => (s?.mintKey?.endsWith('-3') ? s : undefined)),
      { ...LONG, description: 'the Secret holds token #3' },
    );
    audit = await auditOf(connectorId);
    const minted3 = ofType(audit, 'token.minted')[2];
    t.log(`second revocation -> token #3: ${seconds(at(minted3) - at(revoked2))} (shifted clock)`);
    // The status records the revocation in whole seconds: the minute counts from up to 1 s earlier.
    t.true(at(minted3) - at(revoked2) >= 59_000, 'the re-mint backoff counts from the revocation');

    // 3. The agent starts and pairs with the new token.
    env.clock.offsetMs = 0;
    await releaseAgent(kc, namespace, 'edge');
    const paired = await waitForStatus(
      namespace,
      'edge',
      'paired with the new token',
      (c) => c.status?.phase === 'Online' && c.status.enrollment?.retired === true,
    );
    await assertPairedOnce(t, namespace, 'edge', paired, secret3.tokenId);
    audit = await auditOf(connectorId);
    t.deepEqual(
      ofType(audit, 'token.revoked').map((e) => e.details.tokenId),
      [secret1?.tokenId, secret2.tokenId],
      'the two revoked tokens, and no other',
    );
    t.false(history.seen.some((s) => s.status?.phase === 'NeedsRecovery'));
    t.log(`scenario 7 took ${seconds(Date.now() - startedAt)}`);
  },
);

// ---- scenario 8 --------------------------------------------------------------------------------

/**
 * How long the control plane stays down. The issue's 60 s is twice the production offline threshold
 * (3 heartbeats of 10 s); here heartbeats come every 1 s and the threshold is 3 s, so 10 s is more
 * than three thresholds, and long enough for the agent's reconnect backoff to reach 8-16 s steps.
 */
const OUTAGE_MS = 10_000;

test.serial(
  'normal reconnect failure: the control plane unreachable (restarted on the same port and data); temporary Offline, never Needs recovery, and back Online without a new enrollment token',
  async (t) => {
    const startedAt = Date.now();
    const { kc } = cluster();
    const { env, waitForStatus, runner } = system();
    const api = connectors(kc);
    const core = kc.makeApiClient(CoreV1Api);
    const namespace = await createTestNamespace(kc, 'cpdown');
    removeAfterwards(t, namespace);
    const connectorId = `${namespace}.edge`;

    await api.create(namespace, { metadata: { name: 'edge', namespace }, spec });
    const online = await waitForStatus(
      namespace,
      'edge',
      'Online and retired',
      (c) =>
        c.status?.phase === 'Online' &&
        c.status.enrollment?.retired === true &&
        c.status.enrollment.tokenSecretName === undefined,
    );
    const serial = online.status?.identity?.certificateSerial;
    t.truthy(serial);
    const before = await auditOf(connectorId);
    const baselineSeq = before.at(-1)?.seq ?? 0;
    const pid = await agentPid(runner, namespace, 'edge-0');
    const restarts = async () =>
      (await core.readNamespacedPod({ namespace, name: 'edge-0' })).status?.containerStatuses?.[0]
        ?.restartCount;
    const restartsBefore = await restarts();
    const history = await watchStatus(kc, namespace, 'edge');
    t.teardown(() => history.stop());

    // 1. The control plane goes away.
    const stoppedAt = Date.now();
    await env.stopControlPlane();
    let restarted = false;
    t.teardown(async () => {
      if (!restarted) await env.startControlPlaneAgain();
    });
    const unreachable = await waitForStatus(
      namespace,
      'edge',
      'the operator reports the control plane unreachable',
      (c) => condition(c.status, 'Healthy')?.reason === 'ControlPlaneUnreachable',
    );
    // The operator cannot ask: it keeps the last phase it knew and says why it cannot tell.
    t.is(condition(unreachable.status, 'Healthy')?.status, 'Unknown');
    t.is(condition(unreachable.status, 'Ready')?.status, 'Unknown');
    t.is(unreachable.status?.phase, 'Online', 'the last phase it knew, not NeedsRecovery');
    t.regex(condition(unreachable.status, 'Healthy')?.message ?? '', /./);

    // The agent retries with its persisted identity. The control plane comes back once it has been
    // down for OUTAGE_MS and the agent's next try is at least two offline thresholds away, so the
    // agent is not back within the grace period a restarted control plane gives every connector:
    // the control plane then reports it offline, until the agent's retry brings it online.
    const failureMessage = /^heartbeat failed: connection refused/;
    const restartAt = await eventually(
      async () => {
        if (Date.now() - stoppedAt < OUTAGE_MS) return undefined;
        const last = (await agentLines(runner, namespace, 'edge-0', failureMessage)).at(-1);
        const retryAt = Date.parse(last?.time ?? '') + Number(last?.retryInMs);
        return retryAt - Date.now() >= 2 * OFFLINE_AFTER_MS ? Date.now() : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100, description: 'the agent retrying with a long enough backoff' },
    );
    await env.startControlPlaneAgain();
    restarted = true;
    const restartedAt = Date.now();
    const outageMs = restartedAt - stoppedAt;
    t.log(`control plane down for ${seconds(outageMs)} (decided at ${seconds(restartAt - stoppedAt)})`);
    const failures = (await agentLines(runner, namespace, 'edge-0', failureMessage)).filter(
      (l) => Date.parse(l.time) >= stoppedAt,
    );
    t.true(failures.length >= 3, `${failures.length} failed heartbeats retried`);
    t.regex(failures[0]?.msg ?? '', /retrying with the persisted identity/);

    // 2. Offline: a reconnect failure, the identity intact; not Needs recovery.
    const offline = await waitForStatus(
      namespace,
      'edge',
      'Offline after the control plane came back',
      (c) => c.status?.phase === 'Offline',
    );
    t.is(offline.status?.controlPlaneState, 'offline');
    t.is(condition(offline.status, 'Healthy')?.status, 'False');
    t.is(condition(offline.status, 'Healthy')?.reason, 'HeartbeatMissed');
    t.is(condition(offline.status, 'Enrolled')?.reason, 'BootstrapRetired');
    t.is(offline.status?.diagnosis?.failureClass, 'Reconnect');
    t.regex(offline.status?.diagnosis?.nextStep ?? '', /without a new token/);
    t.is(condition(offline.status, 'Stalled'), undefined);
    const offlineEvent = await eventSaying(kc, namespace, 'edge', 'PhaseOffline', /Online -> Offline/);
    t.is(offlineEvent.type, 'Warning');

    // 3. The agent's retry reaches the control plane: Online with the same identity, no token.
    const back = await waitForStatus(
      namespace,
      'edge',
      'Online again',
      (c) => c.status?.phase === 'Online' && condition(c.status, 'Healthy')?.reason === 'HeartbeatOk',
    );
    const offlineAt = (await history.first((status) => status?.phase === 'Offline', 'Offline')).at;
    const backAt = (
      await history.first(
        (status) => status?.phase === 'Online',
        'Online after Offline',
        history.seen.findIndex((s) => s.at === offlineAt),
      )
    ).at;
    t.log(
      `after the restart the status showed Offline in ${seconds(offlineAt - restartedAt)} and Online again in ${seconds(backAt - restartedAt)}`,
    );
    t.is(back.status?.identity?.certificateSerial, serial, 'the same certificate');
    t.is(back.status?.enrollment?.mintCount, 1, 'no token counted');
    t.is(back.status?.enrollment?.tokenSecretName, undefined);
    t.is(back.status?.diagnosis, undefined);
    await eventSaying(kc, namespace, 'edge', 'PhaseOnline', /Offline -> Online/);
    t.true(await tokenSecret(kc, namespace, 'edge').then((s) => s === undefined), 'no token Secret');
    t.false(
      history.seen.some((s) => ['NeedsRecovery', 'Recovering'].includes(s.status?.phase ?? '')),
      'never NeedsRecovery',
    );
    t.false(
      history.seen.some((s) => s.status?.enrollment?.tokenSecretName !== undefined),
      'no token Secret at any time',
    );

    const window = (await auditOf(connectorId)).filter((e) => e.seq > baselineSeq);
    t.deepEqual(
      window
        .filter((e) => e.type === 'endpoint.state_changed')
        .map((e) => `${e.details.from}->${e.details.to}`),
      ['online->offline', 'offline->online'],
    );
    t.is(ofType(window, 'endpoint.state_changed')[0]?.details.reason, 'heartbeat timeout');
    for (const type of ['token.minted', 'endpoint.enrolled', 'gateway.enrollment_failed', 'recovery.started'])
      t.is(ofType(window, type).length, 0, `no ${type}`);
    // The same process reconnected: no restart, the same pid, a reconnect line after the failures.
    t.is(await restarts(), restartsBefore);
    t.is(await agentPid(runner, namespace, 'edge-0'), pid);
    const reconnected = (await agentLines(runner, namespace, 'edge-0', /^connected: heartbeat accepted/)).at(
      -1,
    );
    t.true(Number(reconnected?.failedAttempts) >= failures.length, 'reconnected after the failed attempts');
    t.true(Date.parse(reconnected?.time ?? '') > stoppedAt);
    const logs = await runner.getLogs(namespace, 'edge-0', { allInstances: true });
    t.notRegex(logs, NO_TOKEN);
    t.notRegex(logs, NO_KEY);
    t.log(`scenario 8 took ${seconds(Date.now() - startedAt)}`);
  },
);

// ---- scenario 9 --------------------------------------------------------------------------------

test.serial(
  'normal reconnect failure: heartbeats stop while the process lives (SIGSTOP); Offline within the heartbeat timeout, and Online when it runs again, without a token',
  async (t) => {
    const startedAt = Date.now();
    const { kc } = cluster();
    const { waitForStatus, runner } = system();
    const api = connectors(kc);
    const core = kc.makeApiClient(CoreV1Api);
    const namespace = await createTestNamespace(kc, 'sigstop');
    removeAfterwards(t, namespace);
    const connectorId = `${namespace}.edge`;

    await api.create(namespace, { metadata: { name: 'edge', namespace }, spec });
    const online = await waitForStatus(
      namespace,
      'edge',
      'Online and retired',
      (c) =>
        c.status?.phase === 'Online' &&
        c.status.enrollment?.retired === true &&
        c.status.enrollment.tokenSecretName === undefined,
    );
    const serial = online.status?.identity?.certificateSerial;
    const baselineSeq = (await auditOf(connectorId)).at(-1)?.seq ?? 0;
    const restarts = async () =>
      (await core.readNamespacedPod({ namespace, name: 'edge-0' })).status?.containerStatuses?.[0]
        ?.restartCount;
    const restartsBefore = await restarts();
    const history = await watchStatus(kc, namespace, 'edge');
    t.teardown(() => history.stop());

    // 1. The agent process is stopped: it lives, but sends nothing.
    const pid = await agentPid(runner, namespace, 'edge-0');
    process.kill(pid, 'SIGSTOP');
    const stoppedAt = Date.now();
    let continued = false;
    t.teardown(() => {
      if (!continued) process.kill(pid, 'SIGCONT');
    });
    const offline = await waitForStatus(
      namespace,
      'edge',
      'Offline while the agent is stopped',
      (c) => c.status?.phase === 'Offline',
    );
    const statusAt = (await history.first((status) => status?.phase === 'Offline', 'Offline')).at;
    const window = (await auditOf(connectorId)).filter((e) => e.seq > baselineSeq);
    const wentOffline = ofType(window, 'endpoint.state_changed').find((e) => e.details.to === 'offline');
    t.truthy(wentOffline, 'the control plane recorded the heartbeat timeout');
    t.is(wentOffline?.details.reason, 'heartbeat timeout');
    t.log(
      `control plane offline ${seconds(at(wentOffline) - stoppedAt)} after SIGSTOP (threshold ${seconds(OFFLINE_AFTER_MS)} + sweep 1 s + up to 1 s since the last heartbeat); the Connector status showed it ${at(wentOffline) <= statusAt ? '' : '-'}${((statusAt - at(wentOffline)) / 1000).toFixed(3)} s after the control plane's change (target: within 2 s)`,
    );
    t.is(offline.status?.controlPlaneState, 'offline');
    t.is(condition(offline.status, 'Healthy')?.status, 'False');
    t.is(condition(offline.status, 'Healthy')?.reason, 'HeartbeatMissed');
    t.regex(condition(offline.status, 'Healthy')?.message ?? '', /no heartbeat since /);
    t.is(condition(offline.status, 'Enrolled')?.reason, 'BootstrapRetired');
    t.is(offline.status?.mode, 'Autonomous');
    t.is(offline.status?.diagnosis?.failureClass, 'Reconnect');
    t.regex(offline.status?.diagnosis?.reason ?? '', /still holds its identity/);
    t.is(condition(offline.status, 'Stalled'), undefined);
    const offlineEvent = await eventSaying(kc, namespace, 'edge', 'PhaseOffline', /Online -> Offline/);
    t.is(offlineEvent.type, 'Warning');
    process.kill(pid, 0); // still alive (throws if not)

    // 2. It runs again: the next heartbeat brings it back.
    process.kill(pid, 'SIGCONT');
    continued = true;
    const back = await waitForStatus(
      namespace,
      'edge',
      'Online after SIGCONT',
      (c) => c.status?.phase === 'Online' && condition(c.status, 'Healthy')?.reason === 'HeartbeatOk',
    );
    t.is(back.status?.identity?.certificateSerial, serial);
    t.is(back.status?.enrollment?.tokenSecretName, undefined);
    t.is(back.status?.diagnosis, undefined);
    await eventSaying(kc, namespace, 'edge', 'PhaseOnline', /Offline -> Online/);
    t.is(await restarts(), restartsBefore, 'the same process: not restarted');
    t.is(await agentPid(runner, namespace, 'edge-0'), pid);
    const after = (await auditOf(connectorId)).filter((e) => e.seq > baselineSeq);
    t.deepEqual(
      ofType(after, 'endpoint.state_changed').map((e) => `${e.details.from}->${e.details.to}`),
      ['online->offline', 'offline->online'],
    );
    for (const type of ['token.minted', 'endpoint.enrolled', 'gateway.enrollment_failed'])
      t.is(ofType(after, type).length, 0, `no ${type}`);
    t.true(await tokenSecret(kc, namespace, 'edge').then((s) => s === undefined), 'no token Secret');
    t.false(
      history.seen.some((s) => s.status?.phase === 'NeedsRecovery'),
      'never NeedsRecovery',
    );
    t.log(`scenario 9 took ${seconds(Date.now() - startedAt)}`);
  },
);

// ---- scenario 10 -------------------------------------------------------------------------------

/** A TCP service behind the connector that the agent's path check probes. */
async function listenOn(port: number): Promise<Server> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return server;
}

/**
 * A StatefulSet that runs the agent the way the operator's own does, plus one runtime path
 * (`VAULTPAM_PATH_CHECKS`, the agent's --path-check), consenting to adoption by the Connector. The
 * Connector has no field for path checks; an adopted workload is the documented way to run the
 * agent with flags of one's own.
 */
function agentStatefulSet(name: string, connector: string, pathCheck: string): V1StatefulSet {
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path, port: 'health' },
    periodSeconds,
    failureThreshold,
  });
  return {
    metadata: { name, labels: { 'vaultpam.io/adopted-by': connector } },
    spec: {
      replicas: 1,
      serviceName: name,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name, 'app.kubernetes.io/name': 'vaultpam-connector' } },
        spec: {
          containers: [
            {
              name: 'connector',
              image: AGENT_IMAGE,
              env: [
                { name: 'PAM_AGENT_DATA_DIR', value: '/data' },
                {
                  name: 'VAULTPAM_CONNECTOR_ID',
                  valueFrom: { configMapKeyRef: { name: `${connector}-config`, key: 'connector-id' } },
                },
                {
                  name: 'VAULTPAM_CONTROL_PLANE_URL',
                  valueFrom: { configMapKeyRef: { name: `${connector}-config`, key: 'control-plane-url' } },
                },
                { name: 'VAULTPAM_CA_FILE', value: '/etc/vaultpam/config/ca.crt' },
                { name: 'VAULTPAM_TOKEN_FILE', value: '/var/run/vaultpam/enrollment/token' },
                { name: 'VAULTPAM_HEALTH_LISTEN', value: '0.0.0.0:8081' },
                { name: 'VAULTPAM_PATH_CHECKS', value: pathCheck },
              ],
              ports: [{ name: 'health', containerPort: 8081 }],
              volumeMounts: [
                { name: 'data', mountPath: '/data' },
                { name: 'config', mountPath: '/etc/vaultpam/config', readOnly: true },
                { name: 'enrollment-token', mountPath: '/var/run/vaultpam/enrollment', readOnly: true },
              ],
              startupProbe: probe('/healthz', 2, 30),
              livenessProbe: probe('/healthz', 10, 3),
              readinessProbe: probe('/readyz', 5, 2),
            },
          ],
          volumes: [
            { name: 'config', configMap: { name: `${connector}-config` } },
            {
              name: 'enrollment-token',
              secret: { secretName: `${connector}-enrollment-token`, optional: true, defaultMode: 0o400 },
            },
          ],
        },
      },
      volumeClaimTemplates: [
        {
          metadata: { name: 'data' },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
        },
      ],
    },
  };
}

test.serial(
  'Degraded: at least one runtime path is unhealthy, but not every connector path is down; the path is named, and healthy again it is Online',
  async (t) => {
    const startedAt = Date.now();
    const { kc } = cluster();
    const { env, waitForStatus } = system();
    const api = connectors(kc);
    const core = kc.makeApiClient(CoreV1Api);
    const namespace = await createTestNamespace(kc, 'degraded');
    removeAfterwards(t, namespace);
    const connectorId = `${namespace}.edge`;
    // The StatefulSet controller creates pods only once the namespace's ServiceAccount exists.
    await eventually(() => core.readNamespacedServiceAccount({ namespace, name: 'default' }), {
      ...LONG,
      description: 'default ServiceAccount',
    });

    let target = await listenOn(0);
    t.teardown(() => new Promise<void>((resolve) => target.close(() => resolve())));
    const port = (target.address() as { port: number }).port;
    await kc.makeApiClient(AppsV1Api).createNamespacedStatefulSet({
      namespace,
      body: agentStatefulSet('edge-agent', 'edge', `db=127.0.0.1:${port}`),
    });
    await api.create(namespace, {
      metadata: { name: 'edge', namespace },
      spec: { ...spec, workloadRef: { kind: 'StatefulSet', name: 'edge-agent' } },
    });
    const online = await waitForStatus(
      namespace,
      'edge',
      'the adopted agent paired, every path healthy',
      (c) =>
        c.status?.phase === 'Online' &&
        c.status.enrollment?.retired === true &&
        c.status.enrollment.tokenSecretName === undefined,
    );
    t.is(online.status?.storage?.podName, 'edge-agent-0');
    t.is(online.status?.mode, 'Autonomous');
    t.is(condition(online.status, 'Healthy')?.reason, 'HeartbeatOk');
    const record = await env.admin.getConnector(connectorId);
    t.deepEqual(
      record.paths.map((p) => [p.name, p.healthy]),
      [
        ['tunnel', true],
        ['db', true],
      ],
    );
    const baselineSeq = (await auditOf(connectorId)).at(-1)?.seq ?? 0;
    const history = await watchStatus(kc, namespace, 'edge');
    t.teardown(() => history.stop());

    // 1. The service behind the connector goes away: one path unhealthy, the tunnel still up.
    await new Promise<void>((resolve) => target.close(() => resolve()));
    const degraded = await waitForStatus(
      namespace,
      'edge',
      'Degraded with the path named',
      (c) => c.status?.phase === 'Degraded',
    );
    const healthy = condition(degraded.status, 'Healthy');
    t.is(healthy?.status, 'False');
    t.is(healthy?.reason, 'PathUnhealthy');
    t.regex(
      healthy?.message ?? '',
      new RegExp(`unhealthy path\\(s\\): db \\(connect to 127\\.0\\.0\\.1:${port} failed`),
    );
    t.notRegex(healthy?.message ?? '', /tunnel/, 'the tunnel is not named: it is healthy');
    t.is(condition(degraded.status, 'Ready')?.reason, 'PathUnhealthy');
    t.is(degraded.status?.controlPlaneState, 'degraded');
    t.is(degraded.status?.diagnosis, undefined, 'heartbeats arrive: no failure class');
    t.is(condition(degraded.status, 'Enrolled')?.reason, 'BootstrapRetired');
    const degradedEvent = await eventSaying(kc, namespace, 'edge', 'PhaseDegraded', /Online -> Degraded/);
    t.is(degradedEvent.type, 'Warning');
    const paths = (await env.admin.getConnector(connectorId)).paths;
    t.deepEqual(
      paths.map((p) => [p.name, p.healthy]),
      [
        ['tunnel', true],
        ['db', false],
      ],
    );

    // 2. The service is back on its port: every path healthy, Online.
    target = await listenOn(port);
    const back = await waitForStatus(
      namespace,
      'edge',
      'Online with every path healthy',
      (c) => c.status?.phase === 'Online' && condition(c.status, 'Healthy')?.reason === 'HeartbeatOk',
    );
    t.is(back.status?.controlPlaneState, 'online');
    t.regex(condition(back.status, 'Healthy')?.message ?? '', /every path healthy/);
    await eventSaying(kc, namespace, 'edge', 'PhaseOnline', /Degraded -> Online/);
    const window = (await auditOf(connectorId)).filter((e) => e.seq > baselineSeq);
    t.deepEqual(
      ofType(window, 'endpoint.state_changed').map((e) => `${e.details.from}->${e.details.to}`),
      ['online->degraded', 'degraded->online'],
    );
    for (const type of ['token.minted', 'endpoint.enrolled', 'gateway.enrollment_failed'])
      t.is(ofType(window, type).length, 0, `no ${type}`);
    t.true(await tokenSecret(kc, namespace, 'edge').then((s) => s === undefined), 'no token Secret');
    t.false(
      history.seen.some((s) => ['Offline', 'NeedsRecovery'].includes(s.status?.phase ?? '')),
      'neither Offline nor NeedsRecovery: only a path was down',
    );
    const logs = await system().runner.getLogs(namespace, 'edge-agent-0', { allInstances: true });
    t.notRegex(logs, NO_TOKEN);
    t.notRegex(logs, NO_KEY);
    t.log(`scenario 10 took ${seconds(Date.now() - startedAt)}`);
    t.log(`file total: ${seconds(Date.now() - fileStartedAt)} (cluster start included)`);
  },
);
