// The runbook's guided recovery survives crashes of what runs it (issue 8, scenarios 11 and 12), end
// to end with real processes: the real API server, etcd and controller-manager, the reference
// control plane, connector pods running the real agent through the local pod runner, and the
// operator as its own process (src/bin/operator.ts, as its ServiceAccount, electing a leader on the
// shipped Lease), so it can die the way a process dies: SIGKILL, no clean stop, no lease released.
//
// 11. For each step of a guided recovery in turn, the operator is killed the moment the Connector's
//     status shows that step (a watch on the Connector, the kill sent from its callback), and a new
//     operator process is started; the recovery must still end Completed/Succeeded, Online, with
//     exactly one pairing and one token minted for the request ("pair exactly once with the new
//     token"). A step is recorded before it is taken, so the kill lands just after the pass that
//     recorded it, before or while the next pass takes it. A step shorter than the watch's round
//     trip would be passed before the kill lands; each test logs the step it caught, the step the
//     killed process left in the status, and what the control plane had recorded before the kill.
// 12. kube-apiserver and etcd are restarted (same ports, same data) while a recovery is at a middle
//     step: the operator's watches and lease recover, the pod runner keeps running the pods, and the
//     recovery completes exactly once.
//
// One cluster, one control plane and one pod runner serve every test, each test in its own
// namespace. No operator runs in-process here (env.startOperator is never called): the operator
// processes share the Lease, and each test stops its last one with SIGTERM (the lease released).
// Times are measured and logged, never asserted.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinationV1Api, CoreV1Api, Watch } from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import { repoRoot } from '../../dev/local-cluster/install.ts';
import { usableAdminCredential } from '../../src/controlplane/server.ts';
import { type Connector, RECOVERY_STEPS, type RecoveryStep } from '../../src/operator/api/types.ts';
import type { AuditEntry } from '../../src/operator/control-plane/admin-client.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { connectorEvents, tallyEvents } from '../helpers/connector-events.ts';
import { eventually, isGone } from '../helpers/eventually.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';
import { CREDENTIAL_SECRET, connectors, LEASE_NAME, OPERATOR_NAMESPACE } from '../helpers/operator-env.ts';
import { type RunningProgram, runProgram } from '../helpers/program.ts';
import { useRunningPods } from '../helpers/running-pods.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';

const cluster = useCluster(test);
const system = useRunningPods(test, cluster);

let fileStartedAt = 0;
let workDir = '';
let kubeconfigFile = '';
let caFile = '';

test.serial.before(async () => {
  fileStartedAt = Date.now();
  const { env } = system();
  workDir = await mkdtemp(join(tmpdir(), 'vaultpam-crashes-'));
  // The operator's ServiceAccount (a TokenRequest token) and the control plane's CA, as files: what
  // a pod of the operator's Deployment has mounted.
  kubeconfigFile = join(workDir, 'operator.kubeconfig');
  await writeFile(kubeconfigFile, env.operatorKubeConfig.exportConfig(), { mode: 0o600 });
  caFile = join(workDir, 'control-plane-ca.pem');
  await writeFile(caFile, env.controlPlane.caPem);
});
test.after.always(async (t) => {
  t.log(`runbook-crashes: all scenarios took ${seconds(Date.now() - fileStartedAt)} in total`);
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

const spec = { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] } };
const NAME = 'edge';
/** The steps of a guided recovery before Completed and Failed, in order (docs/connector-resource.md). */
const STEPS: readonly RecoveryStep[] = RECOVERY_STEPS.filter(
  (step) => step !== 'Completed' && step !== 'Failed',
);
const TOKEN_PATTERN = /vpe_[0-9a-f]{16}_/;

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const api = () => connectors(cluster().kc);
const core = () => cluster().kc.makeApiClient(CoreV1Api);
const condition = (c: Connector, type: string) => c.status?.conditions?.find((x) => x.type === type);

// ---------------------------------------------------------------------------------------------
// The operator as a process.

interface OperatorProcess {
  /** POD_NAME: the Lease holder identity is this plus a random suffix. */
  podName: string;
  program: RunningProgram;
  /** Where /healthz and /readyz listen (plain HTTP). */
  base: string;
  /** Where /metrics listens: HTTPS, a self-signed certificate, read with Prometheus' token. */
  metricsUrl: string;
}

/** Starts src/bin/operator.ts as a child process with the flags a Deployment would give it. */
async function startOperatorProcess(t: ExecutionContext, podName: string): Promise<OperatorProcess> {
  const { env } = system();
  const program = runProgram(
    t,
    join(repoRoot, 'src', 'bin', 'operator.ts'),
    [
      `--control-plane-url=${env.controlPlane.url}`,
      `--control-plane-ca-file=${caFile}`,
      `--credential-secret=${OPERATOR_NAMESPACE}/${CREDENTIAL_SECRET}/credential`,
      `--cluster-resource-namespace=${OPERATOR_NAMESPACE}`,
      `--leader-election-namespace=${OPERATOR_NAMESPACE}`,
      `--lease-name=${LEASE_NAME}`,
      '--connector-image=vaultpam-connector:test',
      // A dead leader's Lease is taken over after 5 s rather than the default 15 s.
      '--leader-election-lease-duration=5s',
      '--leader-election-renew-deadline=4s',
      '--leader-election-retry-period=1s',
      '--listen=127.0.0.1:0',
      '--metrics-listen=127.0.0.1:0',
    ],
    {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', KUBECONFIG: kubeconfigFile, POD_NAME: podName },
      // A test that fails half way still hands the lease over at once to the next test's operator.
      killWith: 'SIGTERM',
    },
  );
  const started = await eventually(
    () => {
      if (program.child.exitCode !== null || program.child.signalCode !== null) {
        throw new Error(`operator ${podName} exited early:\n${program.output().slice(-3000)}`);
      }
      const line = program
        .output()
        .split('\n')
        .find((l) => l.includes('"operator started"'));
      return line
        ? (JSON.parse(line) as { listen: { host: string; port: number }; metrics: string })
        : undefined;
    },
    { timeoutMs: 30_000, description: `operator ${podName} started` },
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}\n${program.output().slice(-3000)}`);
  });
  return {
    podName,
    program,
    base: `http://${started.listen.host}:${started.listen.port}`,
    metricsUrl: started.metrics,
  };
}

/** The Lease's holder now (an identity is POD_NAME and a random suffix). */
async function leaseHolder(): Promise<string> {
  const lease = await cluster()
    .kc.makeApiClient(CoordinationV1Api)
    .readNamespacedLease({ namespace: OPERATOR_NAMESPACE, name: LEASE_NAME });
  return lease.spec?.holderIdentity ?? '';
}

/** Waits until `operator` holds the Lease; resolves with how long that took. */
async function leads(operator: OperatorProcess, timeoutMs = 60_000): Promise<number> {
  const from = Date.now();
  await eventually(async () => (await leaseHolder()).startsWith(`${operator.podName}_`), {
    timeoutMs,
    intervalMs: 100,
    description: `operator ${operator.podName} holds the Lease`,
  });
  return Date.now() - from;
}

/** SIGTERM, and waits for the exit (the operator releases its lease and exits 0). */
async function stopOperator(operator: OperatorProcess): Promise<number | null> {
  const { child } = operator.program;
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  child.kill('SIGTERM');
  return operator.program.closed;
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

/** A process's /metrics as Prometheus reads it (HTTPS, its ServiceAccount token); throws unless 200. */
async function scrape(operator: OperatorProcess): Promise<{ body: string }> {
  const token = await system().env.metricsReaderToken();
  const answer = await scrapeMetrics({ url: operator.metricsUrl }, { token });
  if (answer.status !== 200) throw new Error(`${operator.podName}'s /metrics answered ${answer.status}`);
  return { body: answer.text };
}

/** The value of one Prometheus sample of a process's /metrics (0 when absent). */
async function metric(operator: OperatorProcess, sample: string): Promise<number> {
  const { body } = await scrape(operator);
  const line = body.split('\n').find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

/** Sum of every sample of a metric family (all label sets). */
async function metricSum(operator: OperatorProcess, family: string): Promise<number> {
  const { body } = await scrape(operator);
  return body
    .split('\n')
    .filter((l) => l.startsWith(`${family}{`) || l.startsWith(`${family} `))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/** Log lines of a process that say something about leadership, recovery or a failure, for the record. */
function notableLines(output: string): string {
  return output
    .split('\n')
    .filter((l) => /"level":(40|50|60)|leader|lease|recover/i.test(l))
    .slice(-40)
    .join('\n');
}

/**
 * The warnings and leadership lines of a process's JSON log, seconds from `since`, with consecutive
 * repeats of one message folded into one line with a count.
 */
function timeline(output: string, since: number): string {
  const lines: Array<{ text: string; count: number }> = [];
  for (const line of output.split('\n')) {
    if (!/leader|lease|"level":(40|50|60)/i.test(line)) continue;
    let entry: { time?: string | number; msg?: string; reason?: string; err?: string };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    const detail = (entry.reason ?? entry.err ?? '').slice(0, 100);
    const text = `${entry.msg ?? ''}${detail ? `: ${detail}` : ''}`;
    const last = lines.at(-1);
    if (last?.text.endsWith(text)) last.count += 1;
    else {
      const at = entry.time === undefined ? Number.NaN : new Date(entry.time).getTime() - since;
      lines.push({ text: `${(at / 1000).toFixed(1)} ${text}`, count: 1 });
    }
  }
  return lines.map((l) => (l.count > 1 ? `${l.text} (x${l.count})` : l.text)).join('\n');
}

// ---------------------------------------------------------------------------------------------
// What a test reads: the Connector's steps as they are written, audit, Events, the token Secret.

interface SeenStep {
  step: RecoveryStep;
  at: number;
}

/**
 * Follows the Connector's status.recovery.step through a watch (every status write is one watch
 * event, so no step is missed) and calls `onStep` synchronously for each new step seen.
 */
async function followSteps(namespace: string, name: string, onStep: (step: RecoveryStep) => void) {
  const seen: SeenStep[] = [];
  let ended: string | undefined;
  let stopped = false;
  const controller = await new Watch(cluster().kc).watch(
    `/apis/vaultpam.io/v1alpha1/namespaces/${namespace}/connectors`,
    { fieldSelector: `metadata.name=${name}` },
    (_type: string, object: Connector) => {
      const step = object.status?.recovery?.step;
      if (step && seen.at(-1)?.step !== step) {
        seen.push({ step, at: Date.now() });
        onStep(step);
      }
    },
    (error: unknown) => {
      if (!stopped)
        ended = `the watch of the Connector ended: ${(error as Error | null)?.message ?? 'closed'}`;
    },
  );
  return {
    seen,
    ended: () => ended,
    stop() {
      stopped = true;
      controller.abort();
    },
  };
}

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

const describeAudit = (audit: AuditEntry[]) =>
  audit.map((e) => `${e.seq} ${e.at} ${e.type} ${JSON.stringify(e.details)}`).join('\n');

// ---------------------------------------------------------------------------------------------
// The story every test shares: a connector pairs on its claim, loses the claim, is diagnosed.

interface Incident {
  namespace: string;
  connectorId: string;
  firstSerial: string;
  /** Audit sequence number before the recovery was requested: the recovery's window starts after it. */
  beforeSeq: number;
  /** enrollment.mintCount before the recovery: a recovery's token is not counted there. */
  mintCount: number;
  timings: Record<string, number>;
}

/** Creates the Connector, waits for its first pairing, replaces its claim, waits for the diagnosis. */
async function identityLost(t: ExecutionContext, prefix: string): Promise<Incident> {
  const { waitForStatus } = system();
  const namespace = await createTestNamespace(cluster().kc, prefix);
  const connectorId = `${namespace}.${NAME}`;
  const timings: Record<string, number> = {};
  let from = Date.now();
  await api().create(namespace, { metadata: { name: NAME, namespace }, spec });
  const online = await waitForStatus(
    namespace,
    NAME,
    'first pairing: Online, Autonomous, bootstrap retired, token Secret gone',
    (c) =>
      c.status?.phase === 'Online' &&
      c.status.mode === 'Autonomous' &&
      c.status.enrollment?.retired === true &&
      !c.status.enrollment.tokenSecretName,
  );
  timings.firstPairing = Date.now() - from;
  const firstSerial = online.status?.identity?.certificateSerial ?? '';
  t.truthy(firstSerial, 'the first pairing issued a certificate');

  // "the durable storage mount was replaced ... or recreated empty": the claim deleted with its pod,
  // the StatefulSet controller creates both again, the new claim empty.
  from = Date.now();
  await core().deleteNamespacedPersistentVolumeClaim({ namespace, name: `data-${NAME}-0` });
  await core().deleteNamespacedPod({ namespace, name: `${NAME}-0` });
  const lost = await waitForStatus(
    namespace,
    NAME,
    'identity loss diagnosed: NeedsRecovery, Stalled/RecoveryRequired',
    (c) =>
      c.status?.phase === 'NeedsRecovery' &&
      c.status.diagnosis?.failureClass === 'IdentityLoss' &&
      condition(c, 'Stalled')?.reason === 'RecoveryRequired',
  );
  timings.diagnosis = Date.now() - from;
  t.is(lost.status?.mode, 'GuidedRecovery');
  t.regex(lost.status?.diagnosis?.nextStep ?? '', /spec\.recovery\.requestId/);
  const audit = await auditOf(connectorId);
  return {
    namespace,
    connectorId,
    firstSerial,
    beforeSeq: audit.at(-1)?.seq ?? 0,
    mintCount: lost.status?.enrollment?.mintCount ?? 0,
    timings,
  };
}

/**
 * What a completed guided recovery must look like: Completed/Succeeded and Online on a new identity,
 * exactly one pairing and one token (with the request's key) in the recovery's audit window, no
 * enrollment mint, the token Secret gone, one RecoverySucceeded Event and no RecoveryFailed. Reads
 * everything first; when an assertion fails (ava's assertions throw), `evidence` and what was read
 * are logged before the failure is passed on.
 */
async function assertRecoveredOnce(
  t: ExecutionContext,
  incident: Incident,
  requestId: string,
  done: Connector,
  evidence: () => string,
): Promise<void> {
  const { namespace, connectorId } = incident;
  const audit = await auditOf(connectorId);
  const window = audit.filter((e) => e.seq > incident.beforeSeq);
  const secretGone = await isGone(() =>
    core().readNamespacedSecret({ namespace, name: `${NAME}-enrollment-token` }),
  );
  // Events are written without holding up a pass: wait for the outcome's, then count.
  const counts = await eventually(
    async () => {
      const c = tallyEvents(await connectorEvents(cluster().kc, namespace, NAME));
      return (c.RecoverySucceeded ?? 0) > 0 ? c : undefined;
    },
    { timeoutMs: 20_000, description: 'a RecoverySucceeded Event' },
  ).catch(async () => tallyEvents(await connectorEvents(cluster().kc, namespace, NAME)));
  const now = await api().get(namespace, NAME);
  try {
    const recovery = done.status?.recovery;
    t.is(recovery?.step, 'Completed', recovery?.reason);
    t.is(recovery?.outcome, 'Succeeded', recovery?.reason);
    t.is(recovery?.requestId, requestId);
    t.is(recovery?.mintKey, `recovery-${requestId}`);
    t.is(recovery?.evidence?.phaseBefore, 'NeedsRecovery');
    t.is(recovery?.evidence?.phaseAfter, 'Online');
    t.regex(recovery?.evidence?.proof ?? '', /validation restart/);
    t.true((recovery?.evidence?.auditEntries ?? []).some((e) => e.type === 'endpoint.enrolled'));

    // "Confirm the connector reaches Online": on a new identity, its claim durable again.
    t.is(done.status?.phase, 'Online');
    t.is(done.status?.mode, 'Autonomous');
    t.falsy(done.status?.diagnosis?.failureClass, 'no diagnosis left');
    t.is(condition(done, 'Ready')?.status, 'True');
    t.is(condition(done, 'Enrolled')?.status, 'True');
    t.is(condition(done, 'DurableStorage')?.reason, 'ClaimBound');
    t.is(condition(done, 'Stalled'), undefined, 'not stalled');
    t.true(done.status?.enrollment?.retired === true, 'bootstrap retired again');
    t.is(done.status?.enrollment?.mintCount ?? 0, incident.mintCount, 'no enrollment token counted');
    const serial = done.status?.identity?.certificateSerial;
    t.truthy(serial);
    t.not(serial, incident.firstSerial, 'a new identity was issued by the re-pairing');

    // "pair exactly once with the new token": the control plane's audit of the recovery's window.
    const of = (type: string) => window.filter((e) => e.type === type);
    const key = `recovery-${requestId}`;
    const forRequest = audit.filter((e) => e.type === 'token.minted' && e.details.idempotencyKey === key);
    t.true(forRequest.length <= 1, 'at most one token minted for the request');
    t.is(forRequest.length, 1, 'the request minted its one token');
    t.is(of('token.minted').length, 1, 'no other token minted in the recovery window');
    t.is(of('endpoint.enrolled').length, 1, 'exactly one pairing');
    t.is(of('recovery.started').length, 1, 'the control plane began the recovery once');
    t.deepEqual(
      of('recovery.started').map((e) => e.details.requestId),
      [requestId],
    );
    t.is(of('recovery.completed').length, 1, 'and completed it once');
    t.is(of('gateway.enrollment_failed').length, 0, 'no pairing attempt refused');

    // The token is spent: its Secret is gone.
    t.true(secretGone, 'token Secret deleted');
    // The outcome is never held back by the Event rate limit, and there is one.
    t.is(counts.RecoverySucceeded ?? 0, 1, 'one RecoverySucceeded Event');
    t.is(counts.RecoveryFailed ?? 0, 0, 'no RecoveryFailed Event');
    t.true((counts.RecoveryRequested ?? 0) <= 1, 'the request announced at most once');
  } catch (error) {
    t.log(`status when the recovery ended: ${JSON.stringify(done.status)}`);
    t.log(`status now: ${JSON.stringify(now.status)}`);
    t.log(`audit after seq ${incident.beforeSeq}:\n${describeAudit(window)}`);
    t.log(`Events: ${JSON.stringify(counts)}`);
    t.log(evidence());
    throw error;
  }
}

/** No token, admin credential or private key in an operator process's output. */
function assertQuietLogs(t: ExecutionContext, operators: OperatorProcess[]): void {
  const credential = usableAdminCredential(system().env.controlPlane);
  for (const operator of operators) {
    const output = operator.program.output();
    t.notRegex(output, TOKEN_PATTERN, `no enrollment token in the log of ${operator.podName}`);
    t.notRegex(output, /PRIVATE KEY/, `no private key in the log of ${operator.podName}`);
    assertNoSecrets(t, `the log of ${operator.podName}`, output, [credential]);
  }
}

// ---------------------------------------------------------------------------------------------
// 11. The operator killed at every step of a guided recovery in turn.

for (const target of STEPS) {
  test.serial(
    `guided recovery with the operator killed (SIGKILL) at ${target}: a new operator finishes it, the connector pairs exactly once with one fresh token and is Online`,
    async (t) => {
      const started = Date.now();
      const round = target.toLowerCase();
      const first = await startOperatorProcess(t, `${round}-a`);
      await leads(first);
      const incident = await identityLost(t, `kill-${round}`);
      const { namespace } = incident;
      const requestId = `incident-${round}`;

      // Kill the leader the moment the status shows the target step (or, if the step came and went
      // between two watch events, the first one after it): no clean stop, the lease not released.
      let killedOn: RecoveryStep | undefined;
      let killedAt = 0;
      const steps = await followSteps(namespace, NAME, (step) => {
        if (killedOn === undefined && STEPS.indexOf(step) >= STEPS.indexOf(target)) {
          first.program.child.kill('SIGKILL');
          killedOn = step;
          killedAt = Date.now();
        }
      });
      t.teardown(() => steps.stop());
      const requestedAt = Date.now();
      await api().patchSpec(namespace, NAME, { spec: { recovery: { requestId } } });
      await eventually(
        () => {
          const ended = steps.ended();
          if (ended) throw new Error(ended);
          return killedOn !== undefined;
        },
        { timeoutMs: 90_000, description: `the recovery reaches ${target}` },
      ).catch(async (error: unknown) => {
        const c = await api().get(namespace, NAME);
        throw new Error(
          `${(error as Error).message}; steps seen: ${steps.seen.map((s) => s.step).join(' > ')}; status: ${JSON.stringify(c.status)}\noperator log:\n${notableLines(first.program.output())}`,
        );
      });
      await first.program.closed;
      t.is(first.program.child.signalCode, 'SIGKILL', 'the operator died of SIGKILL');

      // A new operator process (a restarted pod) takes the lease once the dead one's expires.
      const second = await startOperatorProcess(t, `${round}-b`);
      // The dead process wrote nothing after its death, and the new one cannot act before it holds
      // the lease: this is the step the crash left the recovery in.
      const leftOn = steps.seen.at(-1)?.step;
      const tookOverIn = await leads(second);
      const takenOverAt = Date.now();

      const { waitForStatus } = system();
      let done: Connector;
      try {
        done = await waitForStatus(
          namespace,
          NAME,
          `recovery ${requestId} ended after the operator was killed at ${killedOn}`,
          (c) =>
            c.status?.recovery?.requestId === requestId &&
            (c.status.recovery.step === 'Completed' || c.status.recovery.step === 'Failed'),
        );
      } catch (error) {
        throw new Error(
          `${(error as Error).message}\nsteps seen: ${steps.seen.map((s) => s.step).join(' > ')}\nkilled operator:\n${notableLines(first.program.output())}\nnew operator:\n${notableLines(second.program.output())}`,
        );
      }
      const completedAt = Date.now();
      steps.stop();

      const caught = killedOn === target ? 'caught' : `passed too fast; killed at ${killedOn}`;
      t.log(
        `step ${target}: ${caught}; the status showed ${leftOn} when the process died; steps seen: ${steps.seen
          .map((s) => `${s.step} +${seconds(s.at - requestedAt)}`)
          .join(' > ')}`,
      );
      t.log(
        `times: first pairing ${seconds(incident.timings.firstPairing ?? 0)}, diagnosis ${seconds(incident.timings.diagnosis ?? 0)}, request to kill ${seconds(killedAt - requestedAt)}, new operator leading ${seconds(tookOverIn)} after it started (${seconds(takenOverAt - killedAt)} after the kill), then completed in ${seconds(completedAt - takenOverAt)}`,
      );
      // What the dead process had got done in the control plane before it died.
      const doneBeforeKill = (await auditOf(incident.connectorId))
        .filter((e) => e.seq > incident.beforeSeq && new Date(e.at).getTime() <= killedAt)
        .filter((e) => e.type !== 'endpoint.state_changed')
        .map((e) => e.type);
      t.log(`in the control plane before the kill: ${doneBeforeKill.join(', ') || 'nothing'}`);
      await assertRecoveredOnce(
        t,
        incident,
        requestId,
        done,
        () =>
          `killed operator:\n${notableLines(first.program.output())}\nnew operator:\n${notableLines(second.program.output())}`,
      );
      // The process that finished the recovery counted it, once.
      t.is(await metric(second, 'vaultpam_operator_recoveries_total{outcome="succeeded"}'), 1);
      t.is(await metric(second, 'vaultpam_operator_recoveries_total{outcome="failed"}'), 0);
      // The operator's process metrics are exported (VaultpamOperatorEventLoopBlocked reads the lag).
      t.true((await metric(second, 'process_resident_memory_bytes')) > 0);
      t.true((await scrape(second)).body.includes('\nnodejs_eventloop_lag_p99_seconds '));
      assertQuietLogs(t, [first, second]);
      t.is(await stopOperator(second), 0, 'the new operator stops cleanly on SIGTERM');
      // Nothing of this namespace needs to run any more: its pod stops, its Connector is released by
      // the next test's operator.
      await core().deleteNamespace({ name: namespace });
      t.log(`test ${seconds(Date.now() - started)}`);
    },
  );
}

// ---------------------------------------------------------------------------------------------
// 12. The Kubernetes API server and etcd restarted during a guided recovery.

test.serial(
  'guided recovery with the Kubernetes API server and etcd restarted half way: the watches recover, the pods keep running, and the recovery completes exactly once',
  async (t) => {
    const started = Date.now();
    const { cluster: local } = cluster();
    const operator = await startOperatorProcess(t, 'apiserver-restart');
    await leads(operator);
    const incident = await identityLost(t, 'apiserver');
    const { namespace } = incident;
    const requestId = 'incident-apiserver';
    const middle = STEPS.indexOf('TokenMinted');

    // Restart kube-apiserver and etcd (same ports, same data; kube-controller-manager stays up) the
    // moment the recovery has minted its token: the pod must still be scaled up, pair, and be rolled
    // for the validation restart after the API comes back.
    let restartedOn: RecoveryStep | undefined;
    let restarting: Promise<void> | undefined;
    let restartAt = 0;
    const steps = await followSteps(namespace, NAME, (step) => {
      if (restarting === undefined && STEPS.indexOf(step) >= middle) {
        restartedOn = step;
        restartAt = Date.now();
        restarting = local.restartApiServer({ downMs: 3_000 });
      }
    });
    t.teardown(() => steps.stop());
    const requestedAt = Date.now();
    await api().patchSpec(namespace, NAME, { spec: { recovery: { requestId } } });
    await eventually(() => restarting !== undefined, {
      timeoutMs: 90_000,
      description: 'the recovery reaches TokenMinted',
    });
    await restarting;
    const backAt = Date.now();
    // The watch of this test ended with the API server: what it saw before is what the recovery had
    // done before the outage.
    const beforeOutage = steps.seen.map((s) => s.step);
    steps.stop();
    t.false(
      beforeOutage.includes('Completed'),
      'the recovery was still under way when the API server went down',
    );

    const { waitForStatus } = system();
    let done: Connector;
    try {
      done = await waitForStatus(
        namespace,
        NAME,
        `recovery ${requestId} ended after the API server restart`,
        (c) =>
          c.status?.recovery?.requestId === requestId &&
          (c.status.recovery.step === 'Completed' || c.status.recovery.step === 'Failed'),
      );
    } catch (error) {
      throw new Error(
        `${(error as Error).message}\nsteps seen before the outage: ${beforeOutage.join(' > ')}\noperator:\n${notableLines(operator.program.output())}`,
      );
    }
    const completedAt = Date.now();
    const output = () => operator.program.output();
    const informerRestarts = await metricSum(operator, 'vaultpam_operator_informer_restarts_total');
    t.log(
      `restart began at ${restartedOn} (+${seconds(restartAt - requestedAt)} after the request); steps seen before the outage: ${beforeOutage.join(' > ')}`,
    );
    t.log(
      `times: first pairing ${seconds(incident.timings.firstPairing ?? 0)}, diagnosis ${seconds(incident.timings.diagnosis ?? 0)}, API server and etcd down and back in ${seconds(backAt - restartAt)} (3 s down), recovery completed ${seconds(completedAt - backAt)} after the API server was back; informer restarts ${informerRestarts}, leadership lost ${(output().match(/leadership lost;/g) ?? []).length}x`,
    );
    // What the operator went through, in its own words (leadership, failed renewals and watches).
    t.log(`operator around the outage (seconds from the restart):\n${timeline(output(), restartAt)}`);
    await assertRecoveredOnce(t, incident, requestId, done, () => `operator:\n${notableLines(output())}`);

    // The same operator process finished it: it survived the outage, its informers restarted their
    // watches (readiness needs every informer synced), and it counted the recovery once.
    t.is(operator.program.child.exitCode, null, 'the operator process is still running');
    t.is(operator.program.child.signalCode, null);
    t.is((await httpGet(`${operator.base}/readyz`)).status, 200, 'the operator is ready again');
    t.is(await metric(operator, 'vaultpam_operator_recoveries_total{outcome="succeeded"}'), 1);
    t.is(await metric(operator, 'vaultpam_operator_recoveries_total{outcome="failed"}'), 0);
    t.true(informerRestarts > 0, 'the informers restarted their watches');
    await leads(operator);

    // The pod runner survived too: it ran the recovery's pod and its validation restart (the
    // recovery completed), its pod is Running and ready, and it renews its node's Lease again.
    const pod = await core().readNamespacedPod({ namespace, name: `${NAME}-0` });
    t.is(pod.status?.phase, 'Running');
    t.true(pod.status?.containerStatuses?.[0]?.ready === true, 'the agent is ready');
    // The pod of the validation restart was created after the API server came back (timestamps
    // have whole seconds): the runner's watch of pods resumed and it ran the new pod.
    const podCreated = new Date(pod.metadata?.creationTimestamp ?? 0).getTime();
    t.true(
      podCreated >= Math.floor(restartAt / 1000) * 1000,
      'the running pod was created after the restart',
    );
    await eventually(
      async () => {
        const lease = await cluster()
          .kc.makeApiClient(CoordinationV1Api)
          .readNamespacedLease({ namespace: 'kube-node-lease', name: pod.spec?.nodeName ?? '' });
        const renewed = lease.spec?.renewTime ? new Date(lease.spec.renewTime).getTime() : 0;
        return renewed > backAt;
      },
      { timeoutMs: 30_000, description: "the pod runner renews its node's Lease after the restart" },
    );
    assertQuietLogs(t, [operator]);
    t.is(await stopOperator(operator), 0, 'the operator stops cleanly on SIGTERM');
    await core().deleteNamespace({ name: namespace });
    t.log(`test ${seconds(Date.now() - started)}`);
  },
);
