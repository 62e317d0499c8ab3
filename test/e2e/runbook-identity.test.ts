// The runbook's identity branches, end to end with real processes (issue 8, scenarios 1 to 5, 13 and
// 14): the real API server, etcd and controller-manager, the reference control plane, the operator
// as its ServiceAccount, and connector pods running the real agent through the local pod runner.
// One cluster, one control plane, one operator and one pod runner serve every scenario, each in its
// own namespace. Each scenario asserts what a person following the runbook would check: the status
// (phase, mode, conditions, diagnosis, recovery evidence), the Connector's Events, the control
// plane's audit entries and the token Secret, and says what the world looked like when it fails
// (waitForStatus in running-pods.ts prints the status, the pod, the agent's log, the audit and the
// Events). Times are measured and logged, never asserted.
import { X509Certificate } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AppsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  type EventsV1Event,
  PatchStrategy,
  setHeaderOptions,
  type V1Container,
  type V1Deployment,
  type V1Pod,
  type V1Secret,
  type V1StatefulSet,
  Watch,
} from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import { claimDirectory } from '../../dev/local-cluster/volumes.ts';
import { usableAdminCredential } from '../../src/controlplane/server.ts';
import { COMPONENTS, LABELS } from '../../src/operator/api/constants.ts';
import type { Connector, ConnectorSpec } from '../../src/operator/api/types.ts';
import type { AuditEntry } from '../../src/operator/control-plane/admin-client.ts';
import type { RunningOperator } from '../../src/operator/operator.ts';
import { validationRestartMark } from '../../src/operator/reconcile/recovery-machine.ts';
import { Informer } from '../../src/operator/runtime/informers.ts';
import { RESOURCE_TYPES } from '../../src/operator/runtime/resources.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { connectorEvents, tallyEvents } from '../helpers/connector-events.ts';
import { eventually, isGone } from '../helpers/eventually.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { connectors, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT } from '../helpers/operator-env.ts';
import { LONG, useRunningPods } from '../helpers/running-pods.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';

const cluster = useCluster(test);
const system = useRunningPods(test, cluster);
let operator: RunningOperator;
let fileStartedAt = 0;

// Scenario 15 reads what every scenario left behind: the operator's log lines, and every token the
// operator ever stored (a watch on the token Secrets collects each value as it appears).
const operatorLogs = captureLogs('operator', 'debug');
const tokensSeen = new Set<string>();
let tokenSecrets: Informer<V1Secret> | undefined;

test.serial.before(async () => {
  fileStartedAt = Date.now();
  tokenSecrets = new Informer<V1Secret>({
    kc: cluster().kc,
    type: RESOURCE_TYPES.secret,
    labelSelector: `${LABELS.component}=${COMPONENTS.enrollmentToken}`,
    logger: captureLogs().logger,
  });
  const collect = (secret: V1Secret) => {
    for (const value of Object.values(secret.data ?? {}))
      tokensSeen.add(Buffer.from(value, 'base64').toString());
  };
  tokenSecrets.addHandlers({ onAdd: collect, onUpdate: collect });
  tokenSecrets.start();
  await tokenSecrets.waitForSync(AbortSignal.timeout(30_000));
  // The operator's own resync (60 s here, 10 min by default) is longer than any wait below: every
  // reaction comes from a watch, the control plane's change stream or a recovery step's requeue.
  operator = await system().env.startOperator({ logger: operatorLogs.logger });
});
test.after.always(() => tokenSecrets?.stop());
test.after.always((t) => {
  t.log(`runbook-identity: all scenarios took ${seconds(Date.now() - fileStartedAt)} in total`);
});

const config = { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] };
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const SETTLE_MS = 4_000;

// ---------------------------------------------------------------------------------------------
// What each scenario reads: audit, Events, conditions, the token Secret, the agent's log.

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const condition = (c: Connector, type: string) => c.status?.conditions?.find((x) => x.type === type);
const api = () => connectors(cluster().kc);
const core = () => cluster().kc.makeApiClient(CoreV1Api);
const apps = () => cluster().kc.makeApiClient(AppsV1Api);

/** The connector's whole audit trail, oldest first (paged: the control plane answers 1000 at most). */
async function auditOf(connectorId: string): Promise<AuditEntry[]> {
  const all: AuditEntry[] = [];
  for (;;) {
    const last = all.at(-1);
    const page = await system().env.admin.audit({
      connectorId,
      limit: 1000,
      ...(last ? { afterSeq: last.seq } : {}),
    });
    all.push(...page);
    if (page.length < 1000) return all;
  }
}

/** Entries of one type after sequence number `after`. */
const entries = (audit: AuditEntry[], type: string, after = 0) =>
  audit.filter((e) => e.type === type && e.seq > after);
const lastSeq = (audit: AuditEntry[]) => audit.at(-1)?.seq ?? 0;

/** Events regarding the Connector `name` in its namespace. */

/** Counts recorded since `before` (both tallies of the same Connector). */
function since(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [reason, n] of Object.entries(after)) {
    const d = n - (before[reason] ?? 0);
    if (d !== 0) delta[reason] = d;
  }
  return delta;
}

/** Waits until the Connector's Events hold `reasons` (Events are written without holding up a pass). */
async function eventsWith(
  namespace: string,
  name: string,
  reasons: string[],
  before: Record<string, number> = {},
) {
  let last: Record<string, number> = {};
  let seen: EventsV1Event[] = [];
  try {
    return await eventually(
      async () => {
        const events = await connectorEvents(cluster().kc, namespace, name);
        seen = events;
        last = since(tallyEvents(events), before);
        return reasons.every((r) => (last[r] ?? 0) > 0) ? { events, counts: last } : undefined;
      },
      { ...LONG, description: `Events ${reasons.join(', ')}` },
    );
  } catch (error) {
    const notes = seen
      .map(
        (e) =>
          `${e.eventTime?.toISOString?.() ?? ''} ${e.type} ${e.reason} x${e.series?.count ?? 1}: ${e.note}`,
      )
      .sort()
      .join('\n');
    throw new Error(
      `${(error as Error).message}; recorded since: ${JSON.stringify(last)}; all Events:\n${notes}`,
    );
  }
}

const tokenSecretGone = (namespace: string, name: string) =>
  isGone(() => core().readNamespacedSecret({ namespace, name: `${name}-enrollment-token` }));

const agentStatus = (pod: V1Pod | undefined) => pod?.status?.containerStatuses?.[0];
const podReady = (pod: V1Pod | undefined) => agentStatus(pod)?.ready === true;

/** The pod `name` once it is another instance than `uid` (or any, without one) and its agent is ready. */
function readyPod(namespace: string, name: string, description: string, notUid?: string): Promise<V1Pod> {
  return eventually(
    async () => {
      const pod = await core().readNamespacedPod({ namespace, name });
      const other = notUid === undefined || pod.metadata?.uid !== notUid;
      return other && !pod.metadata?.deletionTimestamp && podReady(pod) ? pod : undefined;
    },
    { ...LONG, description },
  );
}

/** The agent's JSON log lines of a pod (its current instance, or every instance). */
async function agentLog(namespace: string, pod: string, allInstances = false) {
  const text = await system().runner.getLogs(namespace, pod, { allInstances });
  const lines = text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      try {
        return JSON.parse(line) as { msg?: string; time?: string; code?: string; connectorId?: string };
      } catch {
        return { msg: line };
      }
    });
  return {
    text,
    lines,
    count: (fragment: string) => lines.filter((l) => l.msg?.includes(fragment)).length,
  };
}

const LOADED = 'loaded the persisted identity; reconnecting over mTLS without a token';
const ENROLLING = 'no identity found: enrolling once with the token';
const ENROLLED = 'enrolled: identity persisted to the data directory';

/** Records every phase the Connector shows, polled quickly, until stopped (at the latest when the test ends). */
function recordPhases(t: ExecutionContext, namespace: string, name: string) {
  const seen: string[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const c = await api()
        .get(namespace, name)
        .catch(() => undefined);
      const phase = c?.status?.phase ?? '(none)';
      if (seen.at(-1) !== phase) seen.push(phase);
      await sleep(150);
    }
  })();
  t.teardown(() => {
    running = false;
  });
  return {
    seen,
    async stop() {
      running = false;
      await loop;
      const phase = (await api().get(namespace, name)).status?.phase ?? '(none)';
      if (seen.at(-1) !== phase) seen.push(phase);
      return seen;
    },
  };
}

/** The replicas an object's watch reports, in order, until stopped. */
async function watchReplicas(path: string, name: string) {
  const values: number[] = [];
  const request = await new Watch(cluster().kc).watch(
    path,
    { fieldSelector: `metadata.name=${name}` },
    (_phase: string, object: { spec?: { replicas?: number } }) => {
      const replicas = object.spec?.replicas;
      if (replicas !== undefined && values.at(-1) !== replicas) values.push(replicas);
    },
    () => {},
  );
  return {
    values,
    stop: () => request.abort(),
  };
}

function recoveriesSucceeded(): Promise<number> {
  return operator.metrics.recoveries
    .get()
    .then((m) => m.values.find((v) => v.labels.outcome === 'succeeded')?.value ?? 0);
}

/** A new namespace whose default ServiceAccount exists (controllers need it to create pods). */
async function scenarioNamespace(prefix: string): Promise<string> {
  const namespace = await createTestNamespace(cluster().kc, prefix);
  await eventually(() => core().readNamespacedServiceAccount({ namespace, name: 'default' }), {
    description: 'default ServiceAccount',
  });
  return namespace;
}

// Scenario 15 also reads every connector key the agents wrote. A scenario's claims go with its
// namespace (the local provisioner deletes a released volume's directory), at the pace of the
// cluster's controllers: read at the end, what was left depended on how far the deletions had got
// (a loaded run found one key where two were expected). So each scenario's keys are read before
// its namespace is deleted.
const keysSeen = new Set<string>();
async function collectKeys(): Promise<void> {
  for (const path of await filesUnder(system().root, (name) => name === 'key.pem')) {
    const key = await readFile(path, 'utf8').catch(() => '');
    if (key) keysSeen.add(key);
  }
}

/** Deletes the scenario's namespace afterwards, so its agents stop and the next scenario has the CPU. */
function cleanUp(t: ExecutionContext, namespace: string) {
  t.teardown(async () => {
    await collectKeys();
    await core()
      .deleteNamespace({ name: namespace })
      .catch(() => {});
  });
}

/** Creates the Connector and waits for its first pairing: Online, bootstrap retired, token Secret gone. */
async function firstBoot(namespace: string, name: string, spec: ConnectorSpec): Promise<Connector> {
  await api().create(namespace, { metadata: { name, namespace }, spec });
  return system().waitForStatus(
    namespace,
    name,
    'first boot: Online, bootstrap retired, no token Secret',
    (c) =>
      c.status?.phase === 'Online' &&
      c.status.enrollment?.retired === true &&
      !c.status.enrollment.tokenSecretName &&
      c.status.identity?.certificateSerial !== undefined &&
      condition(c, 'Ready')?.status !== undefined,
  );
}

/** Asserts the recovery's audit trail after `after`: one begin, one token for it, one pairing with it. */
function assertOnePairing(
  t: ExecutionContext,
  audit: AuditEntry[],
  after: number,
  requestId: string,
  serial: string | undefined,
) {
  const started = entries(audit, 'recovery.started', after);
  const minted = entries(audit, 'token.minted', after);
  const enrolled = entries(audit, 'endpoint.enrolled', after);
  t.is(started.length, 1, `one recovery begun in the control plane for ${requestId}`);
  t.is(started[0]?.details.requestId, requestId);
  t.is(minted.length, 1, 'one token minted for the request');
  t.is(minted[0]?.details.idempotencyKey, `recovery-${requestId}`);
  t.is(enrolled.length, 1, 'exactly one new pairing');
  t.is(enrolled[0]?.details.recoveryRequestId, requestId);
  t.is(enrolled[0]?.details.tokenId, minted[0]?.details.tokenId, 'paired with the token minted for it');
  t.is(enrolled[0]?.details.serial, serial, 'the status shows the certificate of that pairing');
  t.is(entries(audit, 'recovery.completed', after).length, 1);
  t.deepEqual(entries(audit, 'gateway.enrollment_failed', after), [], 'no refused enrollment');
}

// ---------------------------------------------------------------------------------------------
// Scenario 1

test.serial(
  'First boot on a claim: the connector pairs once, is Online in Autonomous mode, bootstrap retired and the token Secret gone',
  async (t) => {
    const startedAt = Date.now();
    const { env, root } = system();
    const namespace = await scenarioNamespace('boot');
    cleanUp(t, namespace);
    const connectorId = `${namespace}.edge`;

    const online = await firstBoot(namespace, 'edge', { connector: config });
    t.log(`Online ${seconds(Date.now() - startedAt)} after the Connector was created`);
    // Conditions settle in the same pass as the phase; wait for Ready itself rather than a moment.
    const ready = await system().waitForStatus(
      namespace,
      'edge',
      'Ready',
      (c) => condition(c, 'Ready')?.status === 'True' && !condition(c, 'Reconciling'),
    );
    const status = ready.status ?? {};
    t.is(status.phase, 'Online');
    t.is(status.mode, 'Autonomous');
    t.is(status.controlPlaneState, 'online');
    t.is(status.connectorId, connectorId);
    t.is(status.diagnosis, undefined);
    t.is(status.recovery, undefined);
    t.is(status.enrollment?.retired, true);
    t.is(status.enrollment?.mintCount, 1);
    t.is(status.enrollment?.tokenSecretName, undefined);
    t.is(status.identity?.certificateSerial, online.status?.identity?.certificateSerial);
    t.is(status.lastHeartbeatTime, undefined, 'no time shown while heartbeats arrive');
    const claim = await core().readNamespacedPersistentVolumeClaim({ namespace, name: 'data-edge-0' });
    t.like(status.storage, {
      source: 'PersistentVolumeClaim',
      claimName: 'data-edge-0',
      claimUID: claim.metadata?.uid,
      claimPhase: 'Bound',
      podName: 'edge-0',
    });
    t.like(condition(ready, 'Ready'), { status: 'True', reason: 'Ready' });
    t.like(condition(ready, 'DurableStorage'), { status: 'True', reason: 'ClaimBound' });
    t.like(condition(ready, 'Enrolled'), { status: 'True', reason: 'BootstrapRetired' });
    t.like(condition(ready, 'Healthy'), { status: 'True', reason: 'HeartbeatOk' });
    t.is(condition(ready, 'Stalled'), undefined);

    // The token Secret is gone, and the control plane holds no live token.
    t.true(await tokenSecretGone(namespace, 'edge'), 'token Secret deleted');
    const record = await env.admin.getConnector(connectorId);
    t.is(record.liveToken, null);
    t.is(record.bootstrapRetired, true);

    // Exactly one token minted and one pairing, with that token, issuing the certificate shown.
    const audit = await auditOf(connectorId);
    const minted = entries(audit, 'token.minted');
    const enrolled = entries(audit, 'endpoint.enrolled');
    t.is(minted.length, 1, 'exactly one token.minted');
    t.is(enrolled.length, 1, 'exactly one endpoint.enrolled');
    t.is(enrolled[0]?.details.tokenId, minted[0]?.details.tokenId);
    t.is(enrolled[0]?.details.serial, status.identity?.certificateSerial);
    t.is(enrolled[0]?.details.recoveryRequestId, null);
    t.is(entries(audit, 'endpoint.bootstrap_retired').length, 1);
    t.is(entries(audit, 'connector.created').length, 1);
    t.deepEqual(entries(audit, 'gateway.enrollment_failed'), []);
    t.deepEqual(entries(audit, 'recovery.started'), []);

    // Events: one token minted, the Secret deleted once (retired or consumed), Online once, no Warning.
    const { events, counts } = await eventsWith(namespace, 'edge', ['TokenMinted', 'PhaseOnline']);
    await eventually(async () => {
      const c = tallyEvents(await connectorEvents(cluster().kc, namespace, 'edge'));
      return (c.BootstrapRetired ?? 0) + (c.TokenConsumed ?? 0) > 0;
    });
    const final = tallyEvents(await connectorEvents(cluster().kc, namespace, 'edge'));
    t.is(counts.TokenMinted, 1, JSON.stringify(final));
    t.is(final.PhaseOnline, 1);
    t.is((final.BootstrapRetired ?? 0) + (final.TokenConsumed ?? 0), 1, JSON.stringify(final));
    t.deepEqual(
      events.filter((e) => e.type === 'Warning').map((e) => `${e.reason}: ${e.note}`),
      [],
      'no Warning on a clean first boot',
    );
    t.false(Object.keys(final).some((r) => r.startsWith('Recovery')));

    // The agent paired once with its token and persisted the identity on the claim.
    const log = await agentLog(namespace, 'edge-0', true);
    t.is(log.count(ENROLLING), 1);
    t.is(log.count(ENROLLED), 1);
    t.true(log.count('connected: heartbeat accepted over mTLS') >= 1);
    const files = await readdir(join(claimDirectory(root, claim.metadata?.uid ?? ''), 'identity'));
    for (const file of ['key.pem', 'cert.pem', 'ca.pem', 'identity.json']) t.true(files.includes(file), file);
    t.log(`scenario 1 took ${seconds(Date.now() - startedAt)}`);
  },
);

// ---------------------------------------------------------------------------------------------
// Scenario 2

test.serial(
  'Restarts on a claim (pod deleted, StatefulSet scaled to zero and back, node restarted) reconnect with the persisted identity: Online each time, no token minted, same certificate',
  async (t) => {
    t.timeout(300_000);
    const startedAt = Date.now();
    const { env, waitForStatus } = system();
    const namespace = await scenarioNamespace('restart');
    cleanUp(t, namespace);
    const connectorId = `${namespace}.edge`;
    const online = await firstBoot(namespace, 'edge', { connector: config });
    const serial = online.status?.identity?.certificateSerial;
    const claimUID = online.status?.storage?.claimUID;
    t.truthy(serial);
    const baseline = lastSeq(await auditOf(connectorId));
    const eventsBefore = tallyEvents(await connectorEvents(cluster().kc, namespace, 'edge'));
    const phases = recordPhases(t, namespace, 'edge');

    /** Online again after `what` at `at`: a heartbeat after it, with the same certificate, no token anywhere. */
    const backOnline = async (what: string, at: number) => {
      const record = await eventually(
        async () => {
          const r = await env.admin.getConnector(connectorId);
          const beat = r.lastHeartbeatAt ? Date.parse(r.lastHeartbeatAt) : 0;
          return r.state === 'online' && beat > at ? r : undefined;
        },
        { ...LONG, description: `${what}: a heartbeat after it` },
      );
      const c = await waitForStatus(
        namespace,
        'edge',
        `${what}: Online again`,
        (x) => x.status?.phase === 'Online' && x.status.controlPlaneState === 'online',
      );
      t.log(`${what}: Online again ${seconds(Date.now() - at)} after`);
      t.is(record.certificate?.serial, serial, `${what}: the same certificate`);
      t.is(c.status?.identity?.certificateSerial, serial, `${what}: the status shows the same certificate`);
      t.is(record.liveToken, null, `${what}: no live token`);
      t.true(await tokenSecretGone(namespace, 'edge'), `${what}: no token Secret`);
      t.is(c.status?.storage?.claimUID, claimUID, `${what}: the same claim`);
      t.is(c.status?.mode, 'Autonomous');
      return c;
    };

    // a. The pod deleted: the StatefulSet controller recreates it on the same claim.
    const firstPod = await core().readNamespacedPod({ namespace, name: 'edge-0' });
    let at = Date.now();
    await core().deleteNamespacedPod({ namespace, name: 'edge-0' });
    await readyPod(namespace, 'edge-0', 'the recreated pod ready', firstPod.metadata?.uid);
    await backOnline('pod deleted', at);
    const afterDelete = await agentLog(namespace, 'edge-0');
    t.is(afterDelete.count(LOADED), 1, 'the new pod loaded the persisted identity');
    t.is(afterDelete.count(ENROLLING), 0, 'and did not enroll');
    const beforeNode = await agentLog(namespace, 'edge-0', true);

    // b. The whole StatefulSet scaled to zero and back. The operator keeps its StatefulSet at one
    //    replica (drift repair), so the Connector is paused for the maintenance, as a person would.
    await api().patchSpec(namespace, 'edge', { spec: { paused: true } });
    await waitForStatus(
      namespace,
      'edge',
      'pause observed',
      (c) => c.status?.observedGeneration === c.metadata.generation,
    );
    at = Date.now();
    await apps().patchNamespacedStatefulSetScale(
      { namespace, name: 'edge', body: { spec: { replicas: 0 } } },
      MERGE,
    );
    await eventually(() => isGone(() => core().readNamespacedPod({ namespace, name: 'edge-0' })), {
      ...LONG,
      description: 'no pod at zero replicas',
    });
    const down = await waitForStatus(
      namespace,
      'edge',
      'scaled to zero: Offline, a reconnect failure',
      (c) => c.status?.phase === 'Offline' && c.status.diagnosis?.failureClass === 'Reconnect',
    );
    t.log(`scaled to zero: Offline ${seconds(Date.now() - at)} after`);
    t.regex(down.status?.diagnosis?.reason ?? '', /still holds its identity/);
    t.like(condition(down, 'DurableStorage'), { status: 'True', reason: 'ClaimBound' });
    t.like(condition(down, 'Healthy'), { status: 'False', reason: 'HeartbeatMissed' });
    t.is(down.status?.mode, 'Autonomous');
    await apps().patchNamespacedStatefulSetScale(
      { namespace, name: 'edge', body: { spec: { replicas: 1 } } },
      MERGE,
    );
    await readyPod(namespace, 'edge-0', 'the pod back at one replica');
    await backOnline('StatefulSet scaled to zero and back', at);
    await api().patchSpec(namespace, 'edge', { spec: { paused: false } });
    await waitForStatus(
      namespace,
      'edge',
      'unpaused',
      (c) => c.status?.observedGeneration === c.metadata.generation && c.status?.phase === 'Online',
    );
    const afterScale = await agentLog(namespace, 'edge-0');
    t.is(afterScale.count(LOADED), 1);
    t.is(afterScale.count(ENROLLING), 0);

    // c. The node restarted: the pod runner stops (every agent process with it; the pod stays in the
    //    API), the control plane notices the silence (Offline), and a new pod runner on the same root
    //    starts the pod's container again.
    const podBefore = await core().readNamespacedPod({ namespace, name: 'edge-0' });
    at = Date.now();
    await system().restartRunner(async () => {
      const offline = await waitForStatus(
        namespace,
        'edge',
        'node down: Offline, a reconnect failure',
        (c) => c.status?.phase === 'Offline' && c.status.diagnosis?.failureClass === 'Reconnect',
      );
      t.log(`node down: Offline ${seconds(Date.now() - at)} after the pod runner stopped`);
      t.is(offline.status?.enrollment?.tokenSecretName, undefined);
    });
    const podAfter = await readyPod(namespace, 'edge-0', 'the pod running again on the restarted node');
    t.is(podAfter.metadata?.uid, podBefore.metadata?.uid, 'the same pod, its container started afresh');
    await backOnline('node restarted', at);
    const afterNode = await agentLog(namespace, 'edge-0');
    t.is(afterNode.count(LOADED), 2, 'the pod loaded the persisted identity again after the node restart');
    t.is(afterNode.count(ENROLLING), 0);

    const seen = await phases.stop();
    t.log(`phases seen: ${seen.join(' -> ')}`);
    t.false(seen.includes('NeedsRecovery'), 'never NeedsRecovery');
    t.false(seen.includes('Recovering'), 'never Recovering');
    t.true(seen.includes('Offline'));

    // No token minted, no pairing, no recovery in the control plane since the first boot.
    const audit = await auditOf(connectorId);
    for (const type of ['token.minted', 'endpoint.enrolled', 'recovery.started', 'gateway.enrollment_failed'])
      t.deepEqual(entries(audit, type, baseline), [], `no ${type} after the first boot`);
    const states = entries(audit, 'endpoint.state_changed', baseline).map((e) => e.details.to);
    t.true(states.includes('offline') && states.at(-1) === 'online', states.join(','));

    const final = await waitForStatus(namespace, 'edge', 'Online', (c) => c.status?.phase === 'Online');
    t.is(final.status?.enrollment?.mintCount, 1, 'no token counted');
    t.is(final.status?.enrollment?.retired, true);
    t.is(final.status?.diagnosis, undefined);
    t.like(condition(final, 'Enrolled'), { status: 'True', reason: 'BootstrapRetired' });
    const { counts } = await eventsWith(namespace, 'edge', ['PhaseOffline', 'PhaseOnline'], eventsBefore);
    t.log(`Events since the first boot: ${JSON.stringify(counts)}`);
    for (const reason of [
      'TokenMinted',
      'PhaseNeedsRecovery',
      'DiagnosedIdentityLoss',
      'RecoveryRequested',
      'RecoveryFailed',
      'RecoverySucceeded',
    ])
      t.is(counts[reason], undefined, `no ${reason}`);
    // Only the first pod ever enrolled; every later start loaded the identity.
    t.is(beforeNode.count(ENROLLED), 1);
    t.log(`scenario 2 took ${seconds(Date.now() - startedAt)}`);
  },
);

// ---------------------------------------------------------------------------------------------
// Scenario 3

/** The agent's first fail-closed line in a pod's current instance, with its time. */
async function failClosedLine(namespace: string, pod: string) {
  return eventually(
    async () => (await agentLog(namespace, pod)).lines.find((l) => l.msg?.startsWith('fail closed:')),
    { ...LONG, description: `the agent in ${pod} failed closed` },
  );
}

test.serial(
  'Restart on emptyDir under recovery policy Manual: Needs recovery with the IdentityLoss diagnosis as soon as the agent fails closed, Stalled RecoveryRequired, no token retried; a requestId re-pairs exactly once',
  async (t) => {
    t.timeout(300_000);
    const startedAt = Date.now();
    const { env, waitForStatus } = system();
    const namespace = await scenarioNamespace('ephemeral');
    cleanUp(t, namespace);
    const connectorId = `${namespace}.lab`;
    const online = await firstBoot(namespace, 'lab', {
      connector: config,
      storage: { ephemeral: true },
      recovery: { policy: 'Manual' },
    });
    // Guided recovery by choice: the connector works, on a volume that does not survive a restart.
    t.is(online.status?.mode, 'GuidedRecovery');
    t.like(condition(online, 'DurableStorage'), { status: 'False', reason: 'EphemeralByChoice' });
    t.like(online.status?.storage, { source: 'EmptyDir', podName: 'lab-0' });
    const ready = await waitForStatus(
      namespace,
      'lab',
      'Ready',
      (c) => condition(c, 'Ready')?.status === 'True',
    );
    t.is(condition(ready, 'Ready')?.reason, 'Ready', 'EphemeralByChoice does not hold Ready back');
    const serial = online.status?.identity?.certificateSerial;
    const baseline = lastSeq(await auditOf(connectorId));
    const eventsBefore = tallyEvents(await connectorEvents(cluster().kc, namespace, 'lab'));
    const recoveredBefore = await recoveriesSucceeded();
    const lastBeat = (await env.admin.getConnector(connectorId)).lastHeartbeatAt;

    // The pod restarts: its emptyDir goes with it, and its token Secret went at retirement.
    const phases = recordPhases(t, namespace, 'lab');
    const restartedAt = Date.now();
    await core().deleteNamespacedPod({ namespace, name: 'lab-0' });
    const lost = await waitForStatus(
      namespace,
      'lab',
      'NeedsRecovery with the IdentityLoss diagnosis',
      (c) => c.status?.phase === 'NeedsRecovery' && c.status.diagnosis?.failureClass === 'IdentityLoss',
    );
    const diagnosedAt = Date.now();
    const failed = await failClosedLine(namespace, 'lab-0');
    const failedAt = Date.parse(failed.time ?? '');
    const timeoutAt = Date.parse(lastBeat ?? '') + 3_000;
    t.log(
      `diagnosed ${seconds(diagnosedAt - restartedAt)} after the pod was deleted, ${seconds(diagnosedAt - failedAt)} after the agent failed closed (${failed.code}); the control plane's heartbeat timeout (3 intervals without a heartbeat) could fire no earlier than ${seconds(timeoutAt - restartedAt)} after the deletion; control-plane state when diagnosed: ${lost.status?.controlPlaneState}`,
    );
    // The diagnosis comes from the agent failing closed, not from the control plane, which never
    // learns of the loss (the agent has no token to try) and at most times the heartbeats out.
    t.true(
      ['online', 'offline'].includes(lost.status?.controlPlaneState ?? ''),
      lost.status?.controlPlaneState,
    );
    t.is(failed.code, 'ENROLLMENT_TOKEN_MISSING');
    const diagnosis = lost.status?.diagnosis;
    t.regex(
      diagnosis?.reason ?? '',
      /paired before, but its agent found no usable identity .* failed closed/,
    );
    t.true(
      (diagnosis?.evidence ?? []).some((e) =>
        /pod lab-0: agent exited 11 .*ENROLLMENT_TOKEN_MISSING/.test(e),
      ),
      JSON.stringify(diagnosis?.evidence),
    );
    t.regex(
      diagnosis?.nextStep ?? '',
      /^set spec\.recovery\.requestId to a new value to run a guided recovery/,
    );
    t.truthy(diagnosis?.since);
    t.is(lost.status?.mode, 'GuidedRecovery');
    t.is(lost.status?.recovery, undefined, 'nothing started without a person');
    t.like(condition(lost, 'Stalled'), { status: 'True', reason: 'RecoveryRequired' });
    t.is(condition(lost, 'Stalled')?.message, diagnosis?.nextStep);
    t.like(condition(lost, 'Enrolled'), { status: 'False', reason: 'NeedsRecovery' });
    t.like(condition(lost, 'Healthy'), { status: 'False', reason: 'NeedsRecovery' });
    t.like(condition(lost, 'Ready'), { status: 'False', reason: 'RecoveryRequired' });
    t.like(condition(lost, 'DurableStorage'), { status: 'False', reason: 'EphemeralByChoice' });
    t.is(condition(lost, 'Reconciling'), undefined, 'waiting for a person is not progress');

    // No token retried: the agent keeps failing closed (restarted with backoff) and the control
    // plane times the heartbeats out, yet nothing is minted and the phase stays NeedsRecovery.
    const failClosedCount = async () =>
      (await agentLog(namespace, 'lab-0')).lines.filter(
        (l) => l.code === 'ENROLLMENT_TOKEN_MISSING' && l.msg?.startsWith('fail closed'),
      ).length;
    await eventually(async () => (await failClosedCount()) >= 3, {
      ...LONG,
      description: 'the agent failed closed three times',
    });
    const waiting = await waitForStatus(
      namespace,
      'lab',
      'still NeedsRecovery once the control plane says offline',
      (c) => c.status?.controlPlaneState === 'offline',
    );
    t.is(waiting.status?.phase, 'NeedsRecovery', 'not Offline: the identity is gone, not the network');
    t.is(waiting.status?.diagnosis?.since, diagnosis?.since);
    t.is(waiting.status?.enrollment?.tokenSecretName, undefined);
    t.true(await tokenSecretGone(namespace, 'lab'), 'no token Secret');
    t.is((await env.admin.getConnector(connectorId)).liveToken, null, 'no live token');
    let audit = await auditOf(connectorId);
    for (const type of ['token.minted', 'endpoint.enrolled', 'gateway.enrollment_failed', 'recovery.started'])
      t.deepEqual(entries(audit, type, baseline), [], `no ${type} while waiting for a person`);
    const stuckLog = await agentLog(namespace, 'lab-0');
    t.is(stuckLog.count(ENROLLING), 0, 'the agent never tried a token');
    t.is(
      agentStatus(await core().readNamespacedPod({ namespace, name: 'lab-0' }))?.lastState?.terminated
        ?.exitCode,
      11,
    );
    const { events: lossEvents } = await eventsWith(namespace, 'lab', ['PhaseNeedsRecovery'], eventsBefore);
    const lossEvent = lossEvents.find((e) => e.reason === 'PhaseNeedsRecovery');
    t.is(lossEvent?.type, 'Warning');
    // From Online, or from Offline when the control plane timed the heartbeats out (3 s after the
    // last) before the new pod's agent started and failed closed, as the state accepted above says.
    // On a loaded machine it does: in a run that failed here, the agent failed closed 3.3 s after
    // the deletion, and the timeout could fire from 2.7 s on.
    t.regex(
      lossEvent?.note ?? '',
      /^phase (Online|Offline) -> NeedsRecovery: .*failed closed; next step: set spec\.recovery\.requestId/,
    );

    // A person asks for a guided recovery: one token, one pairing.
    const requestId = 'lab-incident-1';
    const requestedAt = Date.now();
    await api().patchSpec(namespace, 'lab', { spec: { recovery: { requestId } } });
    const done = await system().waitForStatus(
      namespace,
      'lab',
      'the recovery ends',
      (c) => c.status?.recovery?.step === 'Completed' || c.status?.recovery?.step === 'Failed',
    );
    t.log(`recovery ${requestId} ended ${seconds(Date.now() - requestedAt)} after it was requested`);
    const recovery = done.status?.recovery;
    t.is(recovery?.outcome, 'Succeeded', recovery?.reason);
    t.is(recovery?.requestId, requestId);
    t.is(recovery?.attempts, 1);
    t.like(recovery?.evidence, {
      phaseBefore: 'NeedsRecovery',
      controlPlaneStateBefore: 'offline',
      phaseAfter: 'Online',
      controlPlaneStateAfter: 'online',
    });
    t.regex(
      recovery?.evidence?.proof ?? '',
      /paired with the recovery token .*restart validation skipped: spec\.storage\.ephemeral is true/,
    );
    const evidenceTypes = (recovery?.evidence?.auditEntries ?? []).map((e) => e.type);
    t.true(evidenceTypes.includes('recovery.started') && evidenceTypes.includes('endpoint.enrolled'));
    t.truthy(recovery?.evidence?.windowStart);
    t.truthy(recovery?.evidence?.windowEnd);

    const back = await waitForStatus(
      namespace,
      'lab',
      'Online, no longer stalled',
      (c) =>
        c.status?.phase === 'Online' && !condition(c, 'Stalled') && condition(c, 'Ready')?.status === 'True',
    );
    t.is(back.status?.diagnosis, undefined);
    t.is(back.status?.enrollment?.retired, true);
    t.is(back.status?.enrollment?.tokenSecretName, undefined);
    t.like(condition(back, 'Enrolled'), { status: 'True', reason: 'BootstrapRetired' });
    const newSerial = back.status?.identity?.certificateSerial;
    t.not(newSerial, serial, 'a new identity');
    t.true(await tokenSecretGone(namespace, 'lab'), 'the spent token Secret deleted');

    audit = await auditOf(connectorId);
    assertOnePairing(t, audit, baseline, requestId, newSerial);
    t.is(entries(audit, 'recovery.started', baseline)[0]?.details.revokedSerial, serial);
    t.is((await recoveriesSucceeded()) - recoveredBefore, 1, 'the operator counted one recovery');
    const log = await agentLog(namespace, 'lab-0');
    t.is(log.count(ENROLLING), 1, 'the recovery pod paired once');
    t.is(log.count(LOADED), 0);

    const { counts } = await eventsWith(
      namespace,
      'lab',
      ['RecoveryRequested', 'RecoverySucceeded', 'PhaseRecovering', 'PhaseOnline'],
      eventsBefore,
    );
    t.log(`Events since the first boot: ${JSON.stringify(counts)}`);
    t.like(counts, {
      PhaseNeedsRecovery: 1,
      RecoveryRequested: 1,
      PhaseRecovering: 1,
      RecoverySucceeded: 1,
      PhaseOnline: 1,
    });
    t.is(counts.RecoveryFailed, undefined);
    t.is(counts.TokenMinted, undefined, 'no enrollment token: the recovery minted its one token');
    const seen = await phases.stop();
    t.log(`phases seen: ${seen.join(' -> ')}`);
    t.deepEqual(seen.slice(seen.indexOf('NeedsRecovery')), ['NeedsRecovery', 'Recovering', 'Online']);
    t.log(`scenario 3 took ${seconds(Date.now() - startedAt)}`);
  },
);

// ---------------------------------------------------------------------------------------------
// Scenario 4

/** Whether the pod's agent last stopped failing closed for want of identity and token. */
function failedClosedWithoutToken(pod: V1Pod): boolean {
  const status = agentStatus(pod);
  const terminated = status?.state?.terminated ?? status?.lastState?.terminated;
  return terminated?.exitCode === 11 && (terminated.message ?? '').includes('ENROLLMENT_TOKEN_MISSING');
}

/**
 * Makes the agent flap during an incident: each time the agent of pod `pod` has failed closed
 * (besides the kubelet's own restarts), its pod is deleted and recreated, up to 3 times, until the
 * recovery for the incident (a request other than `previousRequestId`) scales the workload down. Only a pod whose agent failed closed
 * without a token is deleted (by UID), never the recovery's own pod. Returns how many were deleted.
 */
async function flap(namespace: string, name: string, pod: string, previousRequestId: string | undefined) {
  let deleted = 0;
  const deadline = Date.now() + 60_000;
  while (deleted < 3 && Date.now() < deadline) {
    const c = await api().get(namespace, name);
    const step = c.status?.recovery?.requestId !== previousRequestId ? c.status?.recovery?.step : undefined;
    if (step !== undefined && step !== 'Requested' && step !== 'Checking') break;
    const current = await core()
      .readNamespacedPod({ namespace, name: pod })
      .catch(() => undefined);
    const uid = current?.metadata?.uid;
    if (current && uid && !current.metadata?.deletionTimestamp && failedClosedWithoutToken(current)) {
      const gone = await core()
        .deleteNamespacedPod({ namespace, name: pod, body: { preconditions: { uid } } })
        .then(
          () => true,
          () => false,
        );
      if (gone) deleted += 1;
    }
    await sleep(100);
  }
  return deleted;
}

test.serial(
  'Recovery policy Automatic: the same without a person, exactly once per incident; a second loss is a new incident; a flapping agent causes no more than one recovery per incident',
  async (t) => {
    t.timeout(400_000);
    const startedAt = Date.now();
    const { waitForStatus } = system();
    const namespace = await scenarioNamespace('automatic');
    cleanUp(t, namespace);
    const connectorId = `${namespace}.lab`;
    await firstBoot(namespace, 'lab', {
      connector: config,
      storage: { ephemeral: true },
      recovery: { policy: 'Automatic' },
    });
    // Every fail-closed exit of every agent instance, counted from the pod runner's logs.
    let exitsSeen = 0;
    const failClosedExits = async () => {
      const log = await agentLog(namespace, 'lab-0', true);
      return log.lines.filter(
        (l) => l.code === 'ENROLLMENT_TOKEN_MISSING' && l.msg?.startsWith('fail closed'),
      ).length;
    };

    /** One incident: the pod restarts on emptyDir; one automatic recovery must follow, and only one. */
    const incident = async (label: string, flapping: boolean) => {
      const before = await api().get(namespace, 'lab');
      const previousId = before.status?.recovery?.requestId;
      const serial = before.status?.identity?.certificateSerial;
      const baseline = lastSeq(await auditOf(connectorId));
      const eventsBefore = tallyEvents(await connectorEvents(cluster().kc, namespace, 'lab'));
      const recoveredBefore = await recoveriesSucceeded();
      const exitsBefore = await failClosedExits();
      const at = Date.now();
      await core().deleteNamespacedPod({ namespace, name: 'lab-0' });
      const deleted = flapping ? await flap(namespace, 'lab', 'lab-0', previousId) : 0;
      const done = await waitForStatus(
        namespace,
        'lab',
        `${label}: the automatic recovery ends`,
        (c) =>
          c.status?.recovery?.requestId !== previousId &&
          (c.status?.recovery?.step === 'Completed' || c.status?.recovery?.step === 'Failed'),
      );
      const recovery = done.status?.recovery;
      t.log(
        `${label}: recovery ${recovery?.requestId} ended ${seconds(Date.now() - at)} after the pod restart`,
      );
      t.is(recovery?.outcome, 'Succeeded', `${label}: ${recovery?.reason}`);
      const requestId = recovery?.requestId ?? '';
      t.regex(requestId, /^auto-[0-9a-f]{16}$/, 'started by the operator itself');
      t.like(recovery?.evidence, {
        phaseBefore: 'NeedsRecovery',
        phaseAfter: 'Online',
        controlPlaneStateAfter: 'online',
      });
      t.regex(
        recovery?.evidence?.proof ?? '',
        /restart validation skipped: spec\.storage\.ephemeral is true/,
      );
      const back = await waitForStatus(
        namespace,
        'lab',
        `${label}: Online`,
        (c) => c.status?.phase === 'Online' && c.status.enrollment?.retired === true,
      );
      t.not(back.status?.identity?.certificateSerial, serial, `${label}: a new identity`);
      t.is(condition(back, 'Stalled'), undefined, `${label}: Automatic never waits for a person`);
      t.is(back.spec.recovery?.requestId, undefined, 'the operator never writes spec');

      // Several more passes happen meanwhile (the agent's heartbeats, the pod's status, the control
      // plane's changes); none starts another recovery for this incident.
      await sleep(SETTLE_MS);
      const settled = await api().get(namespace, 'lab');
      t.is(settled.status?.recovery?.requestId, requestId, `${label}: no second recovery`);
      t.is(settled.status?.phase, 'Online');
      const audit = await auditOf(connectorId);
      assertOnePairing(t, audit, baseline, requestId, back.status?.identity?.certificateSerial);
      t.true(await tokenSecretGone(namespace, 'lab'), `${label}: the spent token Secret deleted`);
      t.is((await recoveriesSucceeded()) - recoveredBefore, 1, `${label}: one recovery counted`);
      const { counts } = await eventsWith(
        namespace,
        'lab',
        ['RecoveryRequested', 'RecoverySucceeded'],
        eventsBefore,
      );
      t.is(counts.RecoveryRequested, 1, `${label}: ${JSON.stringify(counts)}`);
      t.is(counts.RecoverySucceeded, 1);
      t.is(counts.RecoveryFailed, undefined);
      t.is(counts.PhaseRecovering, 1);
      t.is(counts.PhaseOnline, 1);
      const exits = (await failClosedExits()) - exitsBefore;
      exitsSeen += exits;
      t.log(
        `${label}: the agent failed closed ${exits} time(s) (${deleted} pod deletion(s)); Events: ${JSON.stringify(counts)}`,
      );
      return { requestId, exits, deleted };
    };

    const first = await incident('first loss', false);
    const second = await incident('second loss', false);
    t.not(second.requestId, first.requestId, 'a second loss is a new incident');
    const third = await incident('a flapping agent', true);
    // The flap that broke it: the agent failed closed, its pod was recreated, and the new agent (not
    // stopped yet) showed no termination while the control plane still said online. At least one
    // such restart happens before the heartbeat timeout lets the recovery scale down (usually 2-3).
    t.true(third.deleted >= 1 && third.exits >= third.deleted, JSON.stringify(third));
    t.not(third.requestId, second.requestId);

    // Three incidents, three recoveries in all, each begun once in the control plane.
    const audit = await auditOf(connectorId);
    const begun = entries(audit, 'recovery.started').map((e) => e.details.requestId);
    t.deepEqual(begun, [first.requestId, second.requestId, third.requestId]);
    // Each RecoveryRequested Event written on its own (the rate limit may fold some) names one of them.
    const notes = (await connectorEvents(cluster().kc, namespace, 'lab'))
      .filter((e) => e.reason === 'RecoveryRequested')
      .map((e) => e.note ?? '');
    t.true(notes.length >= 1);
    for (const note of notes)
      t.regex(note, new RegExp(`^guided recovery (${begun.join('|')}) requested$`), note);
    t.log(`fail-closed exits over the three incidents: ${exitsSeen}`);
    t.log(`scenario 4 took ${seconds(Date.now() - startedAt)}`);
  },
);

// ---------------------------------------------------------------------------------------------
// Scenario 5 (test/e2e/guided-recovery.test.ts runs the same loss with an operator restart in the
// middle of the recovery; this one reads the whole trail: status, Events, audit, Secret, claims)

test.serial(
  'The claim deleted and recreated empty: identity loss diagnosed, a guided recovery pairs exactly once on the new claim and a validation restart proves the identity persists',
  async (t) => {
    t.timeout(300_000);
    const startedAt = Date.now();
    const { env, root, waitForStatus } = system();
    const namespace = await scenarioNamespace('claim');
    cleanUp(t, namespace);
    const connectorId = `${namespace}.edge`;
    const online = await firstBoot(namespace, 'edge', { connector: config });
    const serial = online.status?.identity?.certificateSerial;
    const oldClaim = online.status?.storage?.claimUID;
    t.truthy(oldClaim);
    const baseline = lastSeq(await auditOf(connectorId));
    const eventsBefore = tallyEvents(await connectorEvents(cluster().kc, namespace, 'edge'));
    const recoveredBefore = await recoveriesSucceeded();
    const phases = recordPhases(t, namespace, 'edge');

    // The claim is deleted (kept until its pod goes) and the pod with it: the StatefulSet controller
    // recreates both, the claim empty under the same name.
    const lostAt = Date.now();
    await core().deleteNamespacedPersistentVolumeClaim({ namespace, name: 'data-edge-0' });
    await core().deleteNamespacedPod({ namespace, name: 'edge-0' });
    const lost = await waitForStatus(
      namespace,
      'edge',
      'NeedsRecovery: the claim was replaced',
      (c) =>
        c.status?.phase === 'NeedsRecovery' &&
        c.status.diagnosis?.failureClass === 'IdentityLoss' &&
        condition(c, 'DurableStorage')?.reason === 'ClaimReplaced',
    );
    t.log(`diagnosed ${seconds(Date.now() - lostAt)} after the claim and pod were deleted`);
    const newClaim = await core().readNamespacedPersistentVolumeClaim({ namespace, name: 'data-edge-0' });
    const newClaimUID = newClaim.metadata?.uid;
    t.not(newClaimUID, oldClaim, 'a new claim under the same name');
    t.is(lost.status?.mode, 'GuidedRecovery');
    t.is(lost.status?.storage?.claimUID, oldClaim, 'the status remembers the claim the identity was on');
    t.is(lost.status?.storage?.claimName, 'data-edge-0');
    t.like(condition(lost, 'DurableStorage'), { status: 'False', reason: 'ClaimReplaced' });
    t.regex(
      lost.status?.diagnosis?.nextStep ?? '',
      /^reattach the original volume if it still exists \(delete the Connector that had the identity with spec\.deletionPolicy: Retain .*\); if it is gone, set spec\.recovery\.requestId/,
    );
    t.like(condition(lost, 'Stalled'), { status: 'True', reason: 'RecoveryRequired' });
    t.like(condition(lost, 'Enrolled'), { status: 'False', reason: 'NeedsRecovery' });
    t.like(condition(lost, 'Healthy'), { status: 'False', reason: 'NeedsRecovery' });
    t.like(condition(lost, 'Ready'), { status: 'False', reason: 'RecoveryRequired' });
    t.is(lost.status?.recovery, undefined);
    // The new pod's agent finds the empty claim and no token: it fails closed, nothing is minted.
    await failClosedLine(namespace, 'edge-0');
    t.true(await tokenSecretGone(namespace, 'edge'));
    let audit = await auditOf(connectorId);
    for (const type of ['token.minted', 'endpoint.enrolled', 'gateway.enrollment_failed', 'recovery.started'])
      t.deepEqual(entries(audit, type, baseline), [], `no ${type} before a person asks`);
    const loss = await eventsWith(
      namespace,
      'edge',
      ['StorageClaimReplaced', 'PhaseNeedsRecovery'],
      eventsBefore,
    );
    const storageWarning = loss.events.find((e) => e.reason === 'StorageClaimReplaced');
    if (storageWarning) {
      t.is(storageWarning.type, 'Warning');
      t.regex(storageWarning.note ?? '', /data-edge-0/);
    }
    const phaseWarning = loss.events.find((e) => e.reason === 'PhaseNeedsRecovery');
    t.is(phaseWarning?.type, 'Warning');
    t.regex(
      phaseWarning?.note ?? '',
      /-> NeedsRecovery: .*next step: reattach the original volume if it still exists/,
    );

    // A guided recovery: scale to zero, begin it in the control plane, mint one token, pair once on
    // the new claim, then restart once more and reconnect without a token.
    const requestId = 'claim-replaced-1';
    const requestedAt = Date.now();
    await api().patchSpec(namespace, 'edge', { spec: { recovery: { requestId } } });
    const done = await waitForStatus(
      namespace,
      'edge',
      'the recovery ends',
      (c) => c.status?.recovery?.step === 'Completed' || c.status?.recovery?.step === 'Failed',
    );
    t.log(`recovery ${requestId} ended ${seconds(Date.now() - requestedAt)} after it was requested`);
    const recovery = done.status?.recovery;
    t.is(recovery?.outcome, 'Succeeded', recovery?.reason);
    t.like(recovery?.evidence, {
      phaseBefore: 'NeedsRecovery',
      phaseAfter: 'Online',
      controlPlaneStateAfter: 'online',
      replicasBefore: 1,
    });
    t.regex(
      recovery?.evidence?.proof ?? '',
      /^after the validation restart, pod edge-0 \(started .*\) reconnected with the persisted identity \(certificate [0-9a-f]+\) and heartbeat at .*; no token was mounted$/,
    );
    const evidenceTypes = (recovery?.evidence?.auditEntries ?? []).map((e) => e.type);
    for (const type of ['recovery.started', 'endpoint.enrolled'])
      t.true(evidenceTypes.includes(type), `${type} in the evidence: ${evidenceTypes.join(', ')}`);

    const back = await waitForStatus(
      namespace,
      'edge',
      'Online in Autonomous mode on the new claim',
      (c) =>
        c.status?.phase === 'Online' &&
        c.status.mode === 'Autonomous' &&
        condition(c, 'Ready')?.status === 'True' &&
        !condition(c, 'Stalled'),
    );
    const newSerial = back.status?.identity?.certificateSerial;
    t.not(newSerial, serial);
    t.is(back.status?.storage?.claimUID, newClaimUID, 'the identity now lives on the new claim');
    t.like(condition(back, 'DurableStorage'), { status: 'True', reason: 'ClaimBound' });
    t.like(condition(back, 'Enrolled'), { status: 'True', reason: 'BootstrapRetired' });
    t.is(back.status?.diagnosis, undefined);
    t.true(await tokenSecretGone(namespace, 'edge'), 'the spent token Secret deleted');
    const pod = await core().readNamespacedPod({ namespace, name: 'edge-0' });
    t.is(
      pod.metadata?.annotations?.['vaultpam.io/restarted-for'],
      validationRestartMark(requestId, newSerial ?? ''),
      'the pod of the validation restart, marked for this pairing',
    );
    const validated = await agentLog(namespace, 'edge-0');
    t.is(validated.count(LOADED), 1, 'the validation restart loaded the persisted identity');
    t.is(validated.count(ENROLLING), 0, 'and used no token');
    const all = await agentLog(namespace, 'edge-0', true);
    t.is(all.count(ENROLLED), 2, 'two pairings in the connector life: the first boot and the recovery');
    t.is(
      all.count(LOADED),
      1,
      'no agent ever ran on the deleted claim: only the validation restart loaded one',
    );
    const files = await readdir(join(claimDirectory(root, newClaimUID ?? ''), 'identity'));
    t.true(files.includes('cert.pem') && files.includes('key.pem'), 'the identity is on the new claim');

    audit = await auditOf(connectorId);
    assertOnePairing(t, audit, baseline, requestId, newSerial);
    t.is(entries(audit, 'recovery.started', baseline)[0]?.details.revokedSerial, serial);
    // Nothing after the pairing asked for a token: the validation restart reconnected with the identity.
    const pairedAt = entries(audit, 'endpoint.enrolled', baseline)[0]?.seq ?? 0;
    t.deepEqual(entries(audit, 'token.minted', pairedAt), []);
    t.deepEqual(entries(audit, 'endpoint.enrolled', pairedAt), []);
    t.is((await recoveriesSucceeded()) - recoveredBefore, 1);
    t.is((await env.admin.getConnector(connectorId)).certificate?.serial, newSerial);

    const { counts } = await eventsWith(
      namespace,
      'edge',
      ['StorageClaimReplaced', 'RecoveryRequested', 'RecoverySucceeded', 'PhaseRecovering', 'PhaseOnline'],
      eventsBefore,
    );
    t.log(`Events since the first boot: ${JSON.stringify(counts)}`);
    t.like(counts, {
      PhaseNeedsRecovery: 1,
      RecoveryRequested: 1,
      PhaseRecovering: 1,
      RecoverySucceeded: 1,
      PhaseOnline: 1,
    });
    // The claim went False (being deleted), then replaced: one Warning per reason it went False for
    // (ClaimLost may show twice, when the pod was recreated on the claim still being deleted).
    t.true((counts.StorageClaimReplaced ?? 0) >= 1);
    t.true((counts.StorageClaimLost ?? 0) >= 1);
    // The way back to Autonomous is a ModeAutonomous step Event; it comes after the recovery's steps
    // have used the per-Connector burst, so the rate limit may still hold it (folded, published with
    // the next Event): at most one, and the status says it.
    t.true((counts.ModeAutonomous ?? 0) <= 1);
    t.is(back.status?.mode, 'Autonomous');
    t.true((counts.RecoveryStep ?? 0) >= 7, 'each step recorded (or folded into a summary)');
    for (const reason of [
      'RecoveryFailed',
      'TokenMinted',
      'DiagnosedReconnect',
      'DiagnosedFirstBootBootstrap',
    ])
      t.is(counts[reason], undefined, `no ${reason}`);
    const seen = await phases.stop();
    t.log(`phases seen: ${seen.join(' -> ')}`);
    t.deepEqual(seen.slice(seen.indexOf('NeedsRecovery')), ['NeedsRecovery', 'Recovering', 'Online']);
    t.log(`scenario 5 took ${seconds(Date.now() - startedAt)}`);
  },
);

// ---------------------------------------------------------------------------------------------
// Scenario 13: adopted workloads. Their pods run the real agent through the pod runner because they
// follow the agent's container contract, as a workload written for the operator's ConfigMap and
// token Secret would: the label app.kubernetes.io/name=vaultpam-connector (the pods the runner
// takes), a vaultpam-connector image (what it runs the agent for), the connector id and control
// plane URL from <connector>-config, the CA file from it, the token file from the optional
// <connector>-enrollment-token Secret, and the health port declared (so it gets its own port).

const ADOPTED = 'legacy-connector';
const LEGACY_DATA = '/var/lib/vaultpam';

function agentContainer(connector: string): V1Container {
  const configMap = `${connector}-config`;
  return {
    name: 'connector',
    image: 'registry.example.com/vaultpam-connector:legacy',
    env: [
      { name: 'PAM_AGENT_DATA_DIR', value: LEGACY_DATA },
      {
        name: 'VAULTPAM_CONNECTOR_ID',
        valueFrom: { configMapKeyRef: { name: configMap, key: 'connector-id' } },
      },
      {
        name: 'VAULTPAM_CONTROL_PLANE_URL',
        valueFrom: { configMapKeyRef: { name: configMap, key: 'control-plane-url' } },
      },
      { name: 'VAULTPAM_CA_FILE', value: '/etc/vaultpam/config/ca.crt' },
      { name: 'VAULTPAM_TOKEN_FILE', value: '/var/run/vaultpam/enrollment/token' },
      { name: 'VAULTPAM_HEALTH_LISTEN', value: '0.0.0.0:8081' },
    ],
    ports: [{ name: 'health', containerPort: 8081 }],
    readinessProbe: { httpGet: { path: '/readyz', port: 'health' }, periodSeconds: 5, failureThreshold: 2 },
    volumeMounts: [
      { name: 'state', mountPath: LEGACY_DATA },
      { name: 'config', mountPath: '/etc/vaultpam/config', readOnly: true },
      { name: 'enrollment-token', mountPath: '/var/run/vaultpam/enrollment', readOnly: true },
    ],
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

function adoptedPodTemplate(connector: string, state: object | undefined) {
  const labels = { app: ADOPTED, 'app.kubernetes.io/name': 'vaultpam-connector' };
  return {
    metadata: { labels },
    spec: {
      containers: [agentContainer(connector)],
      volumes: [
        ...(state ? [{ name: 'state', ...state }] : []),
        { name: 'config', configMap: { name: `${connector}-config` } },
        { name: 'enrollment-token', secret: { secretName: `${connector}-enrollment-token`, optional: true } },
      ],
    },
  };
}

const consent = (connector: string) => ({ 'vaultpam.io/adopted-by': connector });

/** Whether the operator's ServiceAccount may take each verb on apps/<resource>[/<subresource>]. */
async function operatorMay(namespace: string, verbs: string[], resource: string, subresource?: string) {
  const authz = cluster().kc.makeApiClient(AuthorizationV1Api);
  const user = `system:serviceaccount:${OPERATOR_NAMESPACE}:${OPERATOR_SERVICE_ACCOUNT}`;
  return Promise.all(
    verbs.map(async (verb) => {
      const review = await authz.createSubjectAccessReview({
        body: {
          spec: {
            user,
            groups: ['system:serviceaccounts', `system:serviceaccounts:${OPERATOR_NAMESPACE}`],
            resourceAttributes: {
              namespace,
              verb,
              group: 'apps',
              resource,
              ...(subresource ? { subresource } : {}),
            },
          },
        },
      });
      return review.status?.allowed === true;
    }),
  );
}

test.serial(
  'An adopted Deployment on emptyDir: identity loss diagnosed, scaled to zero through its scale subresource, recovered, restart validation skipped and recorded as skipped',
  async (t) => {
    t.timeout(300_000);
    const startedAt = Date.now();
    const { env, waitForStatus } = system();
    const namespace = await scenarioNamespace('adopt-deploy');
    cleanUp(t, namespace);
    const connectorId = `${namespace}.legacy`;
    const deployment: V1Deployment = {
      metadata: { name: ADOPTED, labels: consent('legacy') },
      spec: {
        replicas: 1,
        strategy: { type: 'Recreate' },
        selector: { matchLabels: { app: ADOPTED } },
        template: adoptedPodTemplate('legacy', { emptyDir: {} }),
      },
    };
    await apps().createNamespacedDeployment({ namespace, body: deployment });
    const online = await firstBoot(namespace, 'legacy', {
      connector: config,
      workloadRef: { kind: 'Deployment', name: ADOPTED },
      recovery: { policy: 'Manual' },
    });
    const serial = online.status?.identity?.certificateSerial;
    const firstPod = online.status?.storage?.podName ?? '';
    t.regex(firstPod, /^legacy-connector-/);
    t.is(online.status?.mode, 'GuidedRecovery');
    t.like(online.status?.storage, { source: 'EmptyDir', volumeName: 'state' });
    t.like(condition(online, 'DurableStorage'), { status: 'False', reason: 'EmptyDir' });
    t.like(condition(online, 'Ready'), { status: 'False', reason: 'EmptyDir' }, 'not chosen: it holds Ready');
    t.true(
      await isGone(() => apps().readNamespacedStatefulSet({ namespace, name: 'legacy' })),
      'adopted: the operator builds no StatefulSet',
    );
    let audit = await auditOf(connectorId);
    t.is(entries(audit, 'token.minted').length, 1);
    t.is(entries(audit, 'endpoint.enrolled').length, 1);
    const baseline = lastSeq(audit);
    const eventsBefore = tallyEvents(await connectorEvents(cluster().kc, namespace, 'legacy'));
    const generationBefore = (await apps().readNamespacedDeployment({ namespace, name: ADOPTED })).metadata
      ?.generation;

    // The pod restarts (the ReplicaSet replaces it): its emptyDir, and the identity, are gone.
    await core().deleteNamespacedPod({ namespace, name: firstPod });
    const lost = await waitForStatus(
      namespace,
      'legacy',
      'NeedsRecovery with the IdentityLoss diagnosis',
      (c) =>
        c.status?.phase === 'NeedsRecovery' &&
        c.status.diagnosis?.failureClass === 'IdentityLoss' &&
        c.status.storage?.podName !== firstPod,
    );
    const lostPod = lost.status?.storage?.podName ?? '';
    t.true(
      (lost.status?.diagnosis?.evidence ?? []).some((e) => e.startsWith(`pod ${lostPod}: agent exited 11`)),
      JSON.stringify(lost.status?.diagnosis?.evidence),
    );
    t.like(condition(lost, 'Stalled'), { status: 'True', reason: 'RecoveryRequired' });
    t.like(condition(lost, 'Enrolled'), { status: 'False', reason: 'NeedsRecovery' });
    t.true(await tokenSecretGone(namespace, 'legacy'));
    const deploymentBefore = await apps().readNamespacedDeployment({ namespace, name: ADOPTED });
    t.is(deploymentBefore.metadata?.generation, generationBefore, 'not scaled before a person asks');

    // The recovery scales the Deployment through its scale subresource (the operator may patch
    // deployments/scale only, not deployments), to zero, to one to pair, and leaves it at the one
    // replica it had; it does not restart an adopted workload to validate.
    const replicas = await watchReplicas(`/apis/apps/v1/namespaces/${namespace}/deployments`, ADOPTED);
    t.teardown(() => replicas.stop());
    const requestId = 'legacy-incident-1';
    const requestedAt = Date.now();
    await api().patchSpec(namespace, 'legacy', { spec: { recovery: { requestId } } });
    const done = await waitForStatus(
      namespace,
      'legacy',
      'the recovery ends',
      (c) => c.status?.recovery?.step === 'Completed' || c.status?.recovery?.step === 'Failed',
    );
    t.log(`recovery ${requestId} ended ${seconds(Date.now() - requestedAt)} after it was requested`);
    replicas.stop();
    const recovery = done.status?.recovery;
    t.is(recovery?.outcome, 'Succeeded', recovery?.reason);
    t.like(recovery?.evidence, { phaseBefore: 'NeedsRecovery', phaseAfter: 'Online', replicasBefore: 1 });
    t.regex(
      recovery?.evidence?.proof ?? '',
      /^connector paired with the recovery token and is online \(certificate [0-9a-f]+\); restart validation skipped: the workload is adopted, so the operator does not restart it$/,
    );
    t.log(`the Deployment's replicas, as its watch saw them: ${replicas.values.join(' -> ')}`);
    t.deepEqual(replicas.values, [1, 0, 1], 'scaled to zero, then to the one replica to pair');
    const after = await apps().readNamespacedDeployment({ namespace, name: ADOPTED });
    t.is(after.spec?.replicas, 1);
    t.true((after.metadata?.generation ?? 0) > (generationBefore ?? 0));
    // Nothing else wrote the Deployment, and the operator's ServiceAccount may write it only through
    // its scale subresource: the replicas above were set through deployments/scale.
    t.deepEqual(await operatorMay(namespace, ['patch', 'update'], 'deployments'), [false, false]);
    t.deepEqual(await operatorMay(namespace, ['patch'], 'deployments', 'scale'), [true]);

    const back = await waitForStatus(
      namespace,
      'legacy',
      'Online, not stalled',
      (c) => c.status?.phase === 'Online' && !condition(c, 'Stalled'),
    );
    const newSerial = back.status?.identity?.certificateSerial;
    t.not(newSerial, serial);
    t.true(await tokenSecretGone(namespace, 'legacy'));
    // Validation skipped: the pod that paired is the one that runs, never restarted by the operator.
    const pairedPod = back.status?.storage?.podName ?? '';
    const pod = await core().readNamespacedPod({ namespace, name: pairedPod });
    t.is(agentStatus(pod)?.restartCount, 0);
    t.is(pod.metadata?.annotations?.['vaultpam.io/restarted-for'], undefined);
    const log = await agentLog(namespace, pairedPod);
    t.is(log.count(ENROLLED), 1);

    audit = await auditOf(connectorId);
    assertOnePairing(t, audit, baseline, requestId, newSerial);
    const { counts } = await eventsWith(
      namespace,
      'legacy',
      ['RecoverySucceeded', 'PhaseOnline'],
      eventsBefore,
    );
    t.log(`Events since the first boot: ${JSON.stringify(counts)}`);
    t.like(counts, { PhaseNeedsRecovery: 1, RecoveryRequested: 1, RecoverySucceeded: 1, PhaseOnline: 1 });
    t.is(counts.RecoveryFailed, undefined);
    t.is((await env.admin.getConnector(connectorId)).liveToken, null);
    t.log(`scenario 13 (Deployment) took ${seconds(Date.now() - startedAt)}`);
  },
);

test.serial(
  'An adopted StatefulSet on a claim restarts without a token: back Online with its persisted identity',
  async (t) => {
    const startedAt = Date.now();
    const { env, waitForStatus } = system();
    const namespace = await scenarioNamespace('adopt-sts');
    cleanUp(t, namespace);
    const connectorId = `${namespace}.legacy`;
    const statefulSet: V1StatefulSet = {
      metadata: { name: ADOPTED, labels: consent('legacy') },
      spec: {
        replicas: 1,
        serviceName: ADOPTED,
        selector: { matchLabels: { app: ADOPTED } },
        template: adoptedPodTemplate('legacy', undefined),
        volumeClaimTemplates: [
          {
            metadata: { name: 'state' },
            spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
          },
        ],
      },
    };
    await apps().createNamespacedStatefulSet({ namespace, body: statefulSet });
    const online = await firstBoot(namespace, 'legacy', {
      connector: config,
      workloadRef: { kind: 'StatefulSet', name: ADOPTED },
    });
    const serial = online.status?.identity?.certificateSerial;
    t.is(online.status?.mode, 'Autonomous');
    t.like(online.status?.storage, {
      source: 'PersistentVolumeClaim',
      claimName: 'state-legacy-connector-0',
      podName: 'legacy-connector-0',
    });
    t.like(condition(online, 'DurableStorage'), { status: 'True', reason: 'ClaimBound' });
    const baseline = lastSeq(await auditOf(connectorId));
    const eventsBefore = tallyEvents(await connectorEvents(cluster().kc, namespace, 'legacy'));

    const before = await core().readNamespacedPod({ namespace, name: 'legacy-connector-0' });
    const at = Date.now();
    await core().deleteNamespacedPod({ namespace, name: 'legacy-connector-0' });
    await readyPod(namespace, 'legacy-connector-0', 'the recreated pod ready', before.metadata?.uid);
    await eventually(
      async () => {
        const r = await env.admin.getConnector(connectorId);
        return r.state === 'online' && Date.parse(r.lastHeartbeatAt ?? '') > at;
      },
      { ...LONG, description: 'a heartbeat from the recreated pod' },
    );
    const back = await waitForStatus(namespace, 'legacy', 'Online', (c) => c.status?.phase === 'Online');
    t.log(`Online again ${seconds(Date.now() - at)} after the pod was deleted`);
    t.is(back.status?.identity?.certificateSerial, serial, 'the same certificate');
    t.is(back.status?.storage?.claimUID, online.status?.storage?.claimUID, 'the same claim');
    t.is(back.status?.diagnosis, undefined);
    t.true(await tokenSecretGone(namespace, 'legacy'));
    const log = await agentLog(namespace, 'legacy-connector-0');
    t.is(log.count(LOADED), 1, 'the new pod loaded the persisted identity');
    t.is(log.count(ENROLLING), 0);
    const audit = await auditOf(connectorId);
    for (const type of ['token.minted', 'endpoint.enrolled', 'recovery.started', 'gateway.enrollment_failed'])
      t.deepEqual(entries(audit, type, baseline), [], `no ${type} after the restart`);
    await sleep(1_000);
    const counts = since(tallyEvents(await connectorEvents(cluster().kc, namespace, 'legacy')), eventsBefore);
    t.log(`Events since the first boot: ${JSON.stringify(counts)}`);
    for (const reason of ['TokenMinted', 'PhaseNeedsRecovery', 'RecoveryRequested', 'DiagnosedIdentityLoss'])
      t.is(counts[reason], undefined, `no ${reason}`);
    t.log(`scenario 13 (StatefulSet) took ${seconds(Date.now() - startedAt)}`);
  },
);

// ---------------------------------------------------------------------------------------------
// Scenario 14

/** What the agent's persisted identity on a claim says: its identity.json and its certificate's names. */
async function persistedIdentity(root: string, claimUID: string) {
  const dir = join(claimDirectory(root, claimUID), 'identity');
  const metadata = JSON.parse(await readFile(join(dir, 'identity.json'), 'utf8')) as {
    connectorId: string;
    controlPlaneUrl: string;
    serial: string;
  };
  const certificate = new X509Certificate(await readFile(join(dir, 'cert.pem')));
  return {
    connectorId: metadata.connectorId,
    controlPlaneUrl: metadata.controlPlaneUrl,
    serial: metadata.serial,
    subject: certificate.subject,
    subjectAltName: certificate.subjectAltName,
  };
}

test.serial(
  'Configuration survives the loss of /data: the ConfigMap is intact and the re-paired connector serves the same endpoint and networks',
  async (t) => {
    t.timeout(300_000);
    const startedAt = Date.now();
    const { env, root, waitForStatus } = system();
    const namespace = await scenarioNamespace('config');
    cleanUp(t, namespace);
    const connectorId = `${namespace}.cfg`;
    const configured = {
      org: 'acme-emea',
      endpointId: 'db-fleet-eu-1',
      allowedNetworks: ['10.20.0.0/16', '192.168.8.0/24', 'fd00:1::/64'],
    };
    const online = await firstBoot(namespace, 'cfg', { connector: configured });
    const claimUID = online.status?.storage?.claimUID ?? '';
    const serial = online.status?.identity?.certificateSerial;

    // Before: the configuration as deployed (ConfigMap), registered (control plane) and used (agent).
    const configMapBefore = await core().readNamespacedConfigMap({ namespace, name: 'cfg-config' });
    t.deepEqual(configMapBefore.data, {
      'connector-id': connectorId,
      org: 'acme-emea',
      'endpoint-id': 'db-fleet-eu-1',
      'allowed-networks': '10.20.0.0/16,192.168.8.0/24,fd00:1::/64',
      'control-plane-url': env.controlPlane.url,
      'ca.crt': env.controlPlane.caPem,
    });
    const recordBefore = await env.admin.getConnector(connectorId);
    t.like(recordBefore, configured);
    const identityBefore = await persistedIdentity(root, claimUID);
    t.like(identityBefore, { connectorId, controlPlaneUrl: env.controlPlane.url, serial });
    const hashBefore = (await apps().readNamespacedStatefulSet({ namespace, name: 'cfg' })).spec?.template
      ?.metadata?.annotations?.['vaultpam.io/config-hash'];
    t.truthy(hashBefore);
    const baseline = lastSeq(await auditOf(connectorId));

    // /data is lost: the data directory on the claim is wiped under the running agent, which notices
    // before its next heartbeat and fails closed; restarted, it finds nothing and no token.
    const lostAt = Date.now();
    await rm(join(claimDirectory(root, claimUID), 'identity'), { recursive: true, force: true });
    const lost = await waitForStatus(
      namespace,
      'cfg',
      'NeedsRecovery with the IdentityLoss diagnosis',
      (c) => c.status?.phase === 'NeedsRecovery' && c.status.diagnosis?.failureClass === 'IdentityLoss',
    );
    t.log(`diagnosed ${seconds(Date.now() - lostAt)} after the data directory was wiped`);
    t.like(
      condition(lost, 'DurableStorage'),
      { status: 'True', reason: 'ClaimBound' },
      'the claim itself is fine',
    );
    t.like(condition(lost, 'Stalled'), { status: 'True', reason: 'RecoveryRequired' });
    const wiped = await agentLog(namespace, 'cfg-0');
    t.true(
      wiped.lines.some((l) => l.code === 'IDENTITY_LOST'),
      'the running agent noticed: IDENTITY_LOST',
    );
    // While the identity is gone the configuration is not: ConfigMap and record untouched.
    const configMapDuring = await core().readNamespacedConfigMap({ namespace, name: 'cfg-config' });
    t.is(configMapDuring.metadata?.resourceVersion, configMapBefore.metadata?.resourceVersion);
    t.like(await env.admin.getConnector(connectorId), configured);

    const requestId = 'data-lost-1';
    await api().patchSpec(namespace, 'cfg', { spec: { recovery: { requestId } } });
    const done = await waitForStatus(
      namespace,
      'cfg',
      'the recovery ends',
      (c) => c.status?.recovery?.step === 'Completed' || c.status?.recovery?.step === 'Failed',
    );
    t.is(done.status?.recovery?.outcome, 'Succeeded', done.status?.recovery?.reason);
    t.regex(done.status?.recovery?.evidence?.proof ?? '', /^after the validation restart/);
    const back = await waitForStatus(
      namespace,
      'cfg',
      'Online, not stalled',
      (c) => c.status?.phase === 'Online' && !condition(c, 'Stalled'),
    );
    const newSerial = back.status?.identity?.certificateSerial;
    t.not(newSerial, serial);

    // After: the ConfigMap is the same object with the same contents, never rewritten.
    const configMapAfter = await core().readNamespacedConfigMap({ namespace, name: 'cfg-config' });
    t.is(configMapAfter.metadata?.uid, configMapBefore.metadata?.uid);
    t.is(
      configMapAfter.metadata?.resourceVersion,
      configMapBefore.metadata?.resourceVersion,
      'never rewritten',
    );
    t.deepEqual(configMapAfter.data, configMapBefore.data);
    const hashAfter = (await apps().readNamespacedStatefulSet({ namespace, name: 'cfg' })).spec?.template
      ?.metadata?.annotations?.['vaultpam.io/config-hash'];
    t.is(hashAfter, hashBefore, 'the pod gets the same configuration');
    // The control plane serves the same endpoint and networks for the re-paired connector.
    const recordAfter = await env.admin.getConnector(connectorId);
    t.like(recordAfter, { ...configured, state: 'online', ownerUid: recordBefore.ownerUid });
    t.is(recordAfter.certificate?.serial, newSerial);
    const audit = await auditOf(connectorId);
    t.deepEqual(entries(audit, 'connector.updated'), [], 'the configuration was never changed');
    t.is(entries(audit, 'connector.created').length, 1);
    assertOnePairing(t, audit, baseline, requestId, newSerial);
    // The agent's new identity names the same connector and control plane.
    const identityAfter = await persistedIdentity(root, claimUID);
    t.like(identityAfter, { connectorId, controlPlaneUrl: env.controlPlane.url, serial: newSerial });
    t.is(identityAfter.subject, identityBefore.subject);
    t.is(identityAfter.subjectAltName, identityBefore.subjectAltName);
    t.regex(
      identityAfter.subjectAltName ?? '',
      new RegExp(`URI:spiffe://vaultpam.local/connector/${connectorId.replace(/\./g, '\\.')}`),
    );
    const all = await agentLog(namespace, 'cfg-0', true);
    const enrolledIds = all.lines.filter((l) => l.msg?.startsWith(ENROLLED)).map((l) => l.connectorId);
    t.deepEqual(enrolledIds, [connectorId, connectorId], 'both pairings as the same connector');
    t.log(`scenario 14 took ${seconds(Date.now() - startedAt)}`);
  },
);

/** Every file under `dir` whose name passes `keep`, recursively (a missing directory holds none). */
async function filesUnder(dir: string, keep: (name: string) => boolean): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const found: string[] = [];
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await filesUnder(path, keep)));
    else if (keep(entry.name)) found.push(path);
  }
  return found;
}

test.serial(
  'After all of the above: no token, credential or private key in any object, Event, status, log line or termination message',
  async (t) => {
    const { kc } = cluster();
    const { env, root } = system();
    // The secrets: every token the operator stored in this run, every connector key the scenarios'
    // agents wrote (kept or moved aside, on claims and emptyDirs), and the control plane's admin
    // credential.
    await collectKeys();
    const keys = [...keysSeen];
    const secrets = [...tokensSeen, ...keys, usableAdminCredential(env.controlPlane)];
    t.true(tokensSeen.size >= 8, `tokens collected from the scenarios: ${tokensSeen.size}`);
    t.true(keys.length >= 2, `connector keys found on claims: ${keys.length}`);

    // Every log line of every agent container that ran (pod directories outlive their pods) and
    // of the operator.
    const agentLogs = await filesUnder(join(root, 'pods'), (name) => name.endsWith('.log'));
    t.true(agentLogs.length >= 10, `agent logs found: ${agentLogs.length}`);
    for (const path of agentLogs) assertNoSecrets(t, path, await readFile(path, 'utf8'), secrets);
    t.true(operatorLogs.lines().length > 100, 'the operator logged');
    assertNoSecrets(t, 'the operator log', operatorLogs.text(), secrets);

    // Every object that can carry what the operator or an agent said: Connectors (status),
    // ConfigMaps, Events, Pods (termination messages), in every namespace still there.
    const core = kc.makeApiClient(CoreV1Api);
    const everywhere = {
      connectors: await kc
        .makeApiClient(CustomObjectsApi)
        .listClusterCustomObject({ group: 'vaultpam.io', version: 'v1alpha1', plural: 'connectors' }),
      configMaps: await core.listConfigMapForAllNamespaces(),
      events: await kc.makeApiClient(EventsV1Api).listEventForAllNamespaces(),
      pods: await core.listPodForAllNamespaces(),
    };
    for (const [kind, list] of Object.entries(everywhere))
      assertNoSecrets(t, `the ${kind} of the cluster`, JSON.stringify(list), secrets);
    // The control plane's audit of every connector.
    assertNoSecrets(t, 'the audit log', JSON.stringify(await env.admin.audit({})), secrets);
  },
);
