// The scale benchmark (issue 11): the operator measured as it runs in production, beside the
// machine's own write floor. One command: `npx node bench/scale.ts --connectors 100`.
//
// Separate processes: the local Kubernetes control plane (etcd, kube-apiserver,
// kube-controller-manager with its client rate limits raised), the reference control plane
// (src/bin/control-plane.ts), the operator (src/bin/operator.ts, with its ServiceAccount's
// kubeconfig, so its RSS and CPU are its own; both compiled and started as their images start them,
// tools/image-layout.ts) and the fleet simulator (bench/fleet-simulator.ts: a
// node whose pods run simulated agents over real mTLS). This process orchestrates, runs the floor
// and watches Connectors; the later phases are modules of their own (scale-flapping.ts,
// scale-recovery.ts, scale-restart.ts), each skippable (--skip-*). Figures go to
// bench/results/scale-<N>.json and .md; nothing is asserted on time. Every process it started is
// stopped on exit, on failure and on Ctrl-C. Traffic goes to loopback only, and every wait is bounded.
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { CoreV1Api, CustomObjectsApi, EventsV1Api, VersionApi } from '@kubernetes/client-node';
import { type LocalCluster, startLocalCluster } from '../dev/local-cluster/cluster.ts';
import { installCrds, installOperatorAccess } from '../dev/local-cluster/install.ts';
import { LocalProvisioner } from '../dev/local-cluster/local-provisioner.ts';
import { metricsTokenSource } from '../dev/local-cluster/metrics-reader.ts';
import { signalAllManaged } from '../dev/local-cluster/processes.ts';
import { parseDurationMs } from '../src/lib/duration.ts';
import { silentLogger } from '../src/lib/logger.ts';
import { ControlPlaneAdminClient } from '../src/operator/control-plane/admin-client.ts';
import { DEFAULT_MAX_CONCURRENCY } from '../src/operator/runtime/adaptive-limit.ts';
import { imageEntrypoint } from '../tools/image-layout.ts';
import { type ApiServerLoad, apiServerLoad, apiServerMetrics } from './api-server-metrics.ts';
import { benchArgs, positiveFlag, usageError } from './bench-args.ts';
import { type ControlPlaneProcess, post, startControlPlaneProcess } from './control-plane-common.ts';
import { startFleetProcess } from './fleet-process.ts';
import type { FleetConfig } from './fleet-simulator.ts';
import {
  type ComponentProcesses,
  type CpuBreakdown,
  cpuBetween,
  cpuSnapshot,
  processUsage,
} from './process-usage.ts';
import type { PhaseContext } from './scale-context.ts';
import { runFlapping } from './scale-flapping.ts';
import {
  BASIC_MIX,
  BENCH_IMAGE,
  type ClusterFloorResult,
  connectorRef,
  type FloorResult,
  mixOf,
  runClusterFloor,
  runFloor,
} from './scale-floors.ts';
import { ConnectorObserver, statusDiff } from './scale-observer.ts';
import { type OperatorProcess, startOperatorProcess } from './scale-operator.ts';
import { runRecoveries } from './scale-recovery.ts';
import { runRestart } from './scale-restart.ts';
import {
  counterSum,
  countersByLabels,
  diffRequests,
  diffWrites,
  latencySummary,
  nonLeaseWrites,
  percentile,
  pool,
  readsPerConnector,
  round,
  say,
  sleep,
  until,
  waitForQuiet,
  writeResult,
} from './scale-util.ts';

const PROGRAM = 'bench/scale.ts';
const RECONCILES = 'vaultpam_operator_reconcile_duration_seconds_count';
const { values: args } = benchArgs(PROGRAM, {
  options: {
    connectors: { type: 'string', default: '100' },
    'steady-seconds': { type: 'string', default: '60' },
    'heartbeat-seconds': { type: 'string', default: '10' },
    'offline-fraction': { type: 'string', default: '0.1' },
    'flap-fraction': { type: 'string', default: '0.01' },
    'flap-cycles': { type: 'string', default: '3' },
    'recoveries-one-at-a-time': { type: 'string', default: '10' },
    'recoveries-at-once': { type: 'string', default: '100' },
    'cert-lifetime': { type: 'string' },
    'skip-burst': { type: 'boolean', default: false },
    'skip-flapping': { type: 'boolean', default: false },
    'skip-degraded': { type: 'boolean', default: false },
    'skip-recovery': { type: 'boolean', default: false },
    'skip-restart': { type: 'boolean', default: false },
    restarts: { type: 'string', default: '1' },
    'skip-mix-floor': { type: 'boolean', default: false },
    'skip-cluster-floor': { type: 'boolean', default: false },
    'floor-concurrency': { type: 'string', default: '16' },
    'apply-concurrency': { type: 'string', default: '32' },
    'operator-concurrency': { type: 'string', default: String(DEFAULT_MAX_CONCURRENCY) },
    'operator-node-options': { type: 'string', default: '' },
    'kcm-qps': { type: 'string', default: '200' },
    'kcm-burst': { type: 'string', default: '300' },
    'api-server-arg': { type: 'string', multiple: true, default: [] },
    'timeout-seconds': { type: 'string', default: '900' },
    out: { type: 'string', default: join(import.meta.dirname, 'results') },
    'heap-snapshots': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  process.stdout.write(`Usage: npx node bench/scale.ts [options]

The operator at scale, in separate processes, beside the machine's own write floor.
Figures go to <out>/scale-<N>.json and .md; nothing is asserted on time. docs/performance.md
explains every figure.

  --connectors N                 connectors and simulated agents (default 100)
  --steady-seconds S             how long steady state is watched (default 60)
  --heartbeat-seconds S          the control plane's heartbeat interval (default 10, as the issue
                                 asks; offline after 3 intervals)
  --offline-fraction F           the burst: this fraction goes Offline at once (default 0.1)
  --flap-fraction F              the fraction of the fleet that flaps (default 0.01)
  --flap-cycles N                fault/back cycles per flapping agent (default 3): silent for
                                 figure 4b, a failed path for 4c (Degraded)
  --recoveries-one-at-a-time N   guided recoveries timed one by one (default 10)
  --recoveries-at-once N         guided recoveries requested together (default 100, at most N/2)
  --restarts N                   operator restarts one after another (default 1): the first is
                                 figure 6, the others show how much it varies
  --cert-lifetime D              short client certificates (e.g. 5m) to measure renewals
  --skip-burst, --skip-flapping, --skip-degraded, --skip-recovery, --skip-restart
                                 leave a scenario out
  --skip-mix-floor               leave out the second floor (the operator's write mix), which
                                 takes about 2.5x the first
  --skip-cluster-floor           leave out the floor through the cluster (the plain floor's
                                 writes with real tokens, until every agent has beaten)
  --floor-concurrency N          the floor's concurrent writers (default 16)
  --apply-concurrency N          concurrent Connector creates, as a GitOps sync (default 32)
  --operator-concurrency N       the operator's --concurrency, the most reconciles at once
                                 (default ${DEFAULT_MAX_CONCURRENCY}, the operator's own)
  --operator-node-options="..."  more options for the operator's node, after those of its image
                                 (the Dockerfile's ENTRYPOINT), e.g. "--max-old-space-size=256"
  --kcm-qps Q, --kcm-burst B     kube-controller-manager client limits (default 200/300)
  --api-server-arg A             one more kube-apiserver flag, repeatable (a later flag wins), e.g.
                                 --api-server-arg=--profiling=true to take its CPU profile
                                 (docs/performance.md, "Where the API server's time goes")
  --timeout-seconds S            the bound on every wait (default 900)
  --out DIR                      where the results go (default bench/results)
  --heap-snapshots DIR           write operator heap snapshots there
  -h, --help                     this text
`);
  process.exit(0);
}
const positive = (name: Exclude<keyof typeof args, `skip-${string}`>) =>
  positiveFlag(PROGRAM, name, args[name]);
const N = Math.floor(positive('connectors'));
const steadySeconds = positive('steady-seconds');
const offlineFraction = positive('offline-fraction');
const floorConcurrency = positive('floor-concurrency');
const applyConcurrency = positive('apply-concurrency');
const operatorConcurrency = positive('operator-concurrency');
const kcmQps = positive('kcm-qps');
const kcmBurst = positive('kcm-burst');
const timeoutMs = positive('timeout-seconds') * 1000;
const flapFraction = positive('flap-fraction');
const flapCycles = Math.floor(positive('flap-cycles'));
const recoveriesOneAtATime = Math.floor(positive('recoveries-one-at-a-time'));
const recoveriesAtOnceAsked = Math.floor(positive('recoveries-at-once'));
const restarts = Math.floor(positive('restarts'));
const certLifetime = args['cert-lifetime'];
if (certLifetime !== undefined && !(Number(parseDurationMs(certLifetime)) > 0))
  usageError(PROGRAM, `--cert-lifetime must be a duration such as 5m or 300s, got ${certLifetime}`);
const skip = {
  burst: args['skip-burst'] === true,
  flapping: args['skip-flapping'] === true,
  degraded: args['skip-degraded'] === true,
  recovery: args['skip-recovery'] === true,
  restart: args['skip-restart'] === true,
  mixFloor: args['skip-mix-floor'] === true,
  clusterFloor: args['skip-cluster-floor'] === true,
};

const NAMESPACE = 'bench';
const FLOOR_NAMESPACE = 'bench-floor';
const MIX_FLOOR_NAMESPACE = 'bench-floor-mix';
const CLUSTER_FLOOR_NAMESPACE = 'bench-floor-cluster';
/** The floor through the cluster's writes: the plain floor's, and the token Secret deleted once paired. */
const CLUSTER_FLOOR_MIX = { ...BASIC_MIX, secretDelete: true };

const OPERATOR_NAMESPACE = 'vaultpam-system';
const CREDENTIAL_SECRET = 'vaultpam-operator-credential';
const HEARTBEAT_SECONDS = Math.floor(positive('heartbeat-seconds'));
/** The control plane's default: offline after 3 missed heartbeat intervals. */
const OFFLINE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS;

// ---- processes, and stopping every one of them ------------------------------------------------

const work = await mkdtemp(join(tmpdir(), 'vaultpam-scale-'));
let cluster: LocalCluster | undefined;
let controlPlane: ControlPlaneProcess | undefined;
const children: ChildProcess[] = [];
let cleaning: Promise<void> | undefined;

async function stopChild(child: ChildProcess, graceMs = 5_000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all(children.map((child) => stopChild(child)));
    if (controlPlane) await Promise.race([controlPlane.stop(), sleep(8_000)]);
    if (cluster) await cluster.stop({ graceMs: 3_000 }).catch(() => {});
    signalAllManaged('SIGKILL');
    await rm(work, { recursive: true, force: true });
  })();
  return cleaning;
}
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) {
      signalAllManaged('SIGKILL');
      for (const child of children) child.kill('SIGKILL');
      controlPlane?.child.kill('SIGKILL');
      process.exit(130);
    }
    interrupted = true;
    say(`\n${signal}: stopping every process this benchmark started (again to kill at once)…`);
    void cleanup().then(() => process.exit(130));
  });
}

try {
  const started = Date.now();
  say(`scale benchmark: ${N} connectors, ${cpus().length} cores; work dir ${work}`);
  say(
    '1/11 local Kubernetes control plane (a cold first run builds its binaries from Go modules, about 12 min)',
  );
  cluster = await startLocalCluster({
    workDir: join(work, 'cluster'),
    removeOnStop: false,
    controllerManagerArgs: [`--kube-api-qps=${kcmQps}`, `--kube-api-burst=${kcmBurst}`],
    apiServerArgs: args['api-server-arg'],
  });
  const admin = cluster.adminKubeConfig();
  await installCrds(admin);
  await installOperatorAccess(admin);
  const core = admin.makeApiClient(CoreV1Api);
  const objects = admin.makeApiClient(CustomObjectsApi);
  const kubeVersion = (await admin.makeApiClient(VersionApi).getCode()).gitVersion;

  say(
    `2/11 reference control plane (its own process, heartbeat interval ${HEARTBEAT_SECONDS} s${certLifetime ? `, certificate lifetime ${certLifetime}` : ''})`,
  );
  controlPlane = await startControlPlaneProcess([
    '--heartbeat-interval',
    `${HEARTBEAT_SECONDS}s`,
    ...(certLifetime ? ['--cert-lifetime', certLifetime] : []),
  ]);
  const cp = controlPlane;
  const caFile = join(work, 'control-plane-ca.pem');
  await writeFile(caFile, cp.caPem);
  const clusterOfRun = cluster;
  const fleetConfigFor = (namespace: string): FleetConfig => ({
    kubeconfig: clusterOfRun.kubeconfigPath,
    namespace,
    caFile,
    nodeName: 'bench-node',
    volumeRoot: join(work, 'volumes', namespace),
    enrollConcurrency: 8,
  });
  await core.createNamespacedSecret({
    namespace: OPERATOR_NAMESPACE,
    body: { metadata: { name: CREDENTIAL_SECRET }, stringData: { credential: cp.credential } },
  });
  for (const name of [NAMESPACE, FLOOR_NAMESPACE])
    await core.createNamespace({ body: { metadata: { name } } });

  // ---- the floor: the operator's writes for N connectors, no operator logic ----------------------
  say(`3/11 floor: the objects the operator writes for ${N} connectors, ${floorConcurrency} at a time`);
  const floorOptions = { kc: admin, cp, connectors: N, concurrency: floorConcurrency };
  const floor = await runFloor({ ...floorOptions, namespace: FLOOR_NAMESPACE, mix: BASIC_MIX });
  say(`    ${floor.seconds} s (${floor.writes} writes, ${round(floor.writes / floor.seconds)} writes/s)`);
  await deleteNamespace(core, FLOOR_NAMESPACE);

  // ---- the floor through the cluster: those writes with real tokens, until every agent beats -----
  let clusterFloor: ClusterFloorResult | undefined;
  if (!skip.clusterFloor) {
    say(
      `    floor through the cluster: the same writes with a real record and token each, a fleet of its own, until all ${N} agents beat`,
    );
    await core.createNamespace({ body: { metadata: { name: CLUSTER_FLOOR_NAMESPACE } } });
    const floorFleet = await startFleetProcess(
      { ...fleetConfigFor(CLUSTER_FLOOR_NAMESPACE), nodeName: 'bench-floor-node' },
      (child) => children.push(child),
    );
    clusterFloor = await runClusterFloor({
      ...floorOptions,
      namespace: CLUSTER_FLOOR_NAMESPACE,
      mix: CLUSTER_FLOOR_MIX,
      timeoutMs,
    });
    say(
      `    ${clusterFloor.seconds} s (writes done in ${clusterFloor.writtenSeconds} s; pods waited for their claims mean ${round((floorFleet.stats()?.claimWaitTotalMs ?? 0) / N, 0)} ms)`,
    );
    // Its fleet confirms the pods' deletion (as a kubelet would) until the namespace is gone, its
    // volumes are reclaimed and its records leave the control plane, so nothing of it is left for
    // the operator's figures.
    await deleteNamespace(core, CLUSTER_FLOOR_NAMESPACE);
    await reclaimVolumes(core, fleetConfigFor(CLUSTER_FLOOR_NAMESPACE).volumeRoot);
    await stopChild(floorFleet.child);
    await forgetRecords(cp, CLUSTER_FLOOR_NAMESPACE);
  }

  // ---- the operator, as its ServiceAccount, in its own process ----------------------------------
  say('4/11 operator (its own process, its ServiceAccount kubeconfig, leader election on)');
  const operatorKubeconfig = join(work, 'operator.kubeconfig');
  const operatorKc = await cluster.serviceAccountKubeConfig(
    OPERATOR_NAMESPACE,
    'vaultpam-connector-operator',
    24 * 3600,
  );
  await writeFile(operatorKubeconfig, operatorKc.exportConfig(), { mode: 0o600 });
  // --heap-snapshots <dir>: the operator writes a heap snapshot there on SIGUSR2, which this sends
  // when it is ready with no Connector and after the steady-state window (after its figures).
  const heapSnapshots = args['heap-snapshots'];
  if (heapSnapshots) await mkdir(heapSnapshots, { recursive: true });
  // The benchmark reads the operator's metrics as an installed Prometheus does: HTTPS, with a token
  // of a ServiceAccount bound to the metrics-reader ClusterRole, so the operator measured reviews
  // tokens as in production. The token is renewed before it expires: a run at 10,000 Connectors
  // lasts longer than its hour.
  const metricsToken = metricsTokenSource(admin, 'monitoring', 'bench-prometheus', { reader: true });
  await metricsToken();
  const startOperator = () =>
    startOperatorProcess({
      metricsToken,
      nodeArgs: [
        ...(heapSnapshots ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${heapSnapshots}`] : []),
        ...(args['operator-node-options'] ?? '').split(/\s+/).filter(Boolean),
      ],
      args: [
        `--control-plane-url=${cp.url}`,
        `--control-plane-ca-file=${caFile}`,
        `--credential-secret=${OPERATOR_NAMESPACE}/${CREDENTIAL_SECRET}`,
        `--connector-image=${BENCH_IMAGE}`,
        `--leader-election-namespace=${OPERATOR_NAMESPACE}`,
        `--concurrency=${operatorConcurrency}`,
        '--log-level=warn',
      ],
      env: { ...process.env, KUBECONFIG: operatorKubeconfig, POD_NAMESPACE: OPERATOR_NAMESPACE },
      logFile: join(work, 'operator.log'),
      // A restarted leader is ready once its informers have listed the whole fleet: at 10,000 on a
      // busy machine that is not bounded by a minute.
      readyWithinMs: timeoutMs,
      register: (child) => children.push(child),
    });
  // Replaced by the restart of figure 6; every figure before it reads this one.
  let operator: OperatorProcess = await startOperator();
  const operatorPid = operator.pid;
  const operatorMetrics = () => operator.metrics();

  const usageAtReady = processUsage(operatorPid);
  const heapSnapshot = async (when: string) => {
    if (!heapSnapshots) return;
    const before = (await readdir(heapSnapshots)).length;
    operator.child.kill('SIGUSR2');
    await until(`the operator's heap snapshot (${when})`, 120_000, async () => {
      const files = await readdir(heapSnapshots);
      // Written under its final name as it goes: wait until its size stops changing.
      if (files.length <= before) return false;
      const newest = files.sort().at(-1) ?? '';
      const size = (await stat(join(heapSnapshots, newest))).size;
      await sleep(1_000);
      return size > 0 && size === (await stat(join(heapSnapshots, newest))).size;
    });
    say(`    heap snapshot (${when}) written to ${heapSnapshots}`);
  };
  await heapSnapshot('ready, no Connector');

  // ---- the fleet: N agents over mTLS and a node ------------------------------------------------
  say('5/11 fleet simulator (its own process: a node whose pods run simulated agents over mTLS)');
  const fleet = await startFleetProcess(fleetConfigFor(NAMESPACE), (child) => children.push(child));
  const command = fleet.command;

  // The run's processes by component, for figure 1's CPU breakdown (the fleet is forked, so it
  // shares the benchmark's process group: both are counted by pid).
  const clusterGroups = cluster.processGroups();
  const apiServerMetricsText = await apiServerMetrics(admin);
  const runComponents = (): Record<string, ComponentProcesses> => ({
    ...Object.fromEntries(
      Object.entries(clusterGroups).map(([name, group]) => [name, { processGroup: group }]),
    ),
    operator: { pid: operator.pid },
    'control plane': { pid: cp.child.pid ?? 0 },
    'fleet simulator': { pid: fleet.child.pid ?? 0 },
    benchmark: { pid: process.pid },
  });

  // ---- the observer: a watch on the Connectors (when each shows each phase, every status change) --
  const observer = new ConnectorObserver(admin, NAMESPACE);
  const { seen, phaseNow } = observer;
  // Every status the watch shows, per Connector, until it first shows Online: how many status
  // writes the way to Online took, and what each changed (the fields, the conditions' reasons).
  const statusHistory = new Map<string, Array<{ at: number; changed: string[] }>>();
  observer.onStatus((name, before, object) => {
    if (seen.get(name)?.has('Online')) return;
    const history = statusHistory.get(name) ?? [];
    history.push({ at: Date.now(), changed: statusDiff(before, object.status) });
    statusHistory.set(name, history);
  });
  await observer.start();

  // ---- (1) apply N Connectors at once -> all Online ---------------------------------------------
  say(
    `6/11 applying ${N} Connectors at once (${applyConcurrency} requests in flight), waiting for all Online`,
  );
  const names = Array.from({ length: N }, (_, i) => `c${String(i).padStart(5, '0')}`);
  const metricsBeforeApply = await operatorMetrics();
  const cpuBeforeApply = processUsage(operatorPid);
  const machineBeforeApply = cpuSnapshot();
  const apiServerBeforeApply = await apiServerMetricsText();
  const applyStarted = Date.now();
  await pool(names, applyConcurrency, async (name) => {
    await objects.createNamespacedCustomObject({
      ...connectorRef(NAMESPACE),
      body: {
        apiVersion: 'vaultpam.io/v1alpha1',
        kind: 'Connector',
        metadata: { name, namespace: NAMESPACE },
        spec: { connector: { org: 'acme', endpointId: name } },
      },
    });
  });
  const appliedSeconds = (Date.now() - applyStarted) / 1000;
  let lastReport = Date.now();
  // The operator's work queue, sampled every second on the way to Online: [seconds, depth, in flight].
  const queueDepthSamples: Array<[number, number, number]> = [];
  const sampler = setInterval(() => {
    void operatorMetrics()
      .then((text) =>
        queueDepthSamples.push([
          round((Date.now() - applyStarted) / 1000),
          counterSum(text, 'vaultpam_operator_work_queue_depth'),
          counterSum(text, 'vaultpam_operator_work_queue_in_flight'),
        ]),
      )
      .catch(() => {});
  }, 1_000);
  await until('every Connector to go Online', timeoutMs, () => {
    const online = names.filter((n) => seen.get(n)?.has('Online')).length;
    if (Date.now() - lastReport > 15_000 && !interrupted) {
      lastReport = Date.now();
      say(
        `    ${online}/${N} Online after ${round((Date.now() - applyStarted) / 1000)} s; fleet ${JSON.stringify(fleet.stats())}`,
      );
    }
    return online === N;
  });
  clearInterval(sampler);
  const onlineSeconds =
    (Math.max(...names.map((n) => seen.get(n)?.get('Online') ?? 0)) - applyStarted) / 1000;
  const metricsAtOnline = await operatorMetrics();
  const cpuAtOnline = processUsage(operatorPid);
  // Where the machine's time went on the way: every process of the run, by component.
  const machineCpu = cpuBetween(machineBeforeApply, cpuSnapshot(), runComponents());
  const apiServer = apiServerLoad(apiServerBeforeApply, await apiServerMetricsText());
  // The cluster's own part of the way: pods wait for kube-controller-manager's volume binder.
  const fleetAtOnline = fleet.stats();
  const convergenceWrites = diffWrites(metricsBeforeApply, metricsAtOnline);
  const convergenceRequests = diffRequests(metricsBeforeApply, metricsAtOnline);
  // The Events of the way to Online, by reason; the status writes, and what they changed.
  const eventReasons: Record<string, number> = {};
  {
    const events = await admin.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace: NAMESPACE });
    for (const event of events.items)
      if (event.regarding?.kind === 'Connector')
        eventReasons[event.reason ?? ''] = (eventReasons[event.reason ?? ''] ?? 0) + 1;
  }
  const statusWritesToOnline = names.map((n) => statusHistory.get(n)?.length ?? 0);
  const statusChanges: Record<string, number> = {};
  for (const history of statusHistory.values())
    for (const entry of history) {
      const what = entry.changed.join(' + ');
      statusChanges[what] = (statusChanges[what] ?? 0) + 1;
    }
  // The control plane's transition to online -> the Connector's status Online, per connector: how
  // long a connector whose record changed waited for its pass.
  const recordToOnline: number[] = [];
  {
    const reader = new ControlPlaneAdminClient({ url: cp.url, caPem: cp.caPem, credential: cp.credential });
    try {
      await pool(names, 8, async (name) => {
        const record = await reader.getConnector(`${NAMESPACE}.${name}`);
        if (record.state === 'online')
          recordToOnline.push(
            (seen.get(name)?.get('Online') ?? Number.NaN) - new Date(record.stateChangedAt).getTime(),
          );
      });
    } finally {
      reader.close();
    }
  }
  const statusPath = {
    statusWritesPerConnector: {
      mean: round(statusWritesToOnline.reduce((a, b) => a + b, 0) / N, 2),
      min: Math.min(...statusWritesToOnline),
      max: Math.max(...statusWritesToOnline),
    },
    statusChanges,
    eventReasons,
    firstConnector: statusHistory.get(names[0] ?? '')?.map((e) => ({
      afterApplyMs: e.at - applyStarted,
      changed: e.changed,
    })),
    // When the watch first showed each phase, seconds after the apply, across the Connectors: whether
    // connectors move through the phases one after another or all together.
    phaseShownSeconds: Object.fromEntries(
      ['Pending', 'Enrolling', 'Online'].map((phase) => {
        const at = names.flatMap((n) => {
          const shown = seen.get(n)?.get(phase);
          return shown === undefined ? [] : [(shown - applyStarted) / 1000];
        });
        return [
          phase,
          {
            count: at.length,
            p10: round(percentile(at, 10)),
            p50: round(percentile(at, 50)),
            p90: round(percentile(at, 90)),
            max: round(Math.max(...at)),
          },
        ];
      }),
    ),
    recordOnlineToStatusOnlineMs: {
      count: recordToOnline.length,
      p50: percentile(recordToOnline, 50),
      p99: percentile(recordToOnline, 99),
      max: Math.max(...recordToOnline),
    },
    reconciles: {
      count:
        counterSum(metricsAtOnline, 'vaultpam_operator_reconcile_duration_seconds_count') -
        counterSum(metricsBeforeApply, 'vaultpam_operator_reconcile_duration_seconds_count'),
      meanSeconds: round(
        (counterSum(metricsAtOnline, 'vaultpam_operator_reconcile_duration_seconds_sum') -
          counterSum(metricsBeforeApply, 'vaultpam_operator_reconcile_duration_seconds_sum')) /
          Math.max(
            1,
            counterSum(metricsAtOnline, 'vaultpam_operator_reconcile_duration_seconds_count') -
              counterSum(metricsBeforeApply, 'vaultpam_operator_reconcile_duration_seconds_count'),
          ),
        3,
      ),
    },
    queueDepthSamples,
  };
  say(`    status path: ${JSON.stringify(statusPath)}`);
  say(`    all Online in ${round(onlineSeconds)} s (${round(onlineSeconds / floor.seconds)}x the floor)`);

  // ---- (2), (3) steady state -------------------------------------------------------------------
  // The world settles first: every pod Ready, then no operator write for 10 s (at most 3 min).
  await until('every connector pod to be Ready', timeoutMs, () => (fleet.stats()?.podsReady ?? 0) >= N);
  await waitForQuiet(operatorMetrics, 10_000, 180_000);
  say(
    `7/11 steady state: measuring ${steadySeconds} s with ${N} connectors heartbeating every ${HEARTBEAT_SECONDS} s`,
  );
  const cpMetrics = async () => (await post(cp, '/metrics', undefined, { method: 'GET' })).body;
  const steadyBefore = {
    operator: await operatorMetrics(),
    cp: await cpMetrics(),
    usage: processUsage(operatorPid),
    heartbeats: fleet.stats()?.heartbeats ?? 0,
    at: Date.now(),
  };
  // RSS across the window too: V8 gives memory back some time after the work stops, so one
  // reading at the end may catch it before or after that; the range says which.
  const rssInWindow: number[] = [];
  const rssSampler = setInterval(() => rssInWindow.push(processUsage(operatorPid).rssMiB), 1_000);
  // The operator's passes every 10 s (one scrape each): whether its periodic looks come spread or
  // in bursts (a resync of every Connector at once).
  const passesAt: number[] = [counterSum(steadyBefore.operator, RECONCILES)];
  const passSampler = setInterval(() => {
    void operatorMetrics()
      .then((text) => passesAt.push(counterSum(text, RECONCILES)))
      .catch(() => {});
  }, 10_000);
  await sleep(steadySeconds * 1000);
  clearInterval(rssSampler);
  clearInterval(passSampler);
  const steadyAfter = {
    operator: await operatorMetrics(),
    cp: await cpMetrics(),
    usage: processUsage(operatorPid),
    heartbeats: fleet.stats()?.heartbeats ?? 0,
    at: Date.now(),
  };
  const minutes = (steadyAfter.at - steadyBefore.at) / 60_000;
  const steadyWrites = diffWrites(steadyBefore.operator, steadyAfter.operator);
  const steadyNonLease = nonLeaseWrites(steadyWrites);
  const cpRequests = (text: string, keep: (labels: string) => boolean) =>
    counterSum(text, 'cp_http_request_duration_seconds_count', keep);
  const agentRoute = (labels: string) => /route="\/v1\/(heartbeat|enroll|renew)"/.test(labels);
  const isMetrics = (labels: string) => labels.includes('route="/metrics"');
  const cpAll =
    cpRequests(steadyAfter.cp, (l) => !isMetrics(l)) - cpRequests(steadyBefore.cp, (l) => !isMetrics(l));
  const notAgents = (l: string) => !isMetrics(l) && !agentRoute(l);
  const cpOperator = cpRequests(steadyAfter.cp, notAgents) - cpRequests(steadyBefore.cp, notAgents);
  const passesPer10s = passesAt.slice(1).map((count, i) => count - (passesAt[i] ?? count));
  const counterDelta = (name: string) =>
    counterSum(steadyAfter.operator, name) - counterSum(steadyBefore.operator, name);
  const steady = {
    seconds: round((steadyAfter.at - steadyBefore.at) / 1000),
    operatorRssMiB: round(steadyAfter.usage.rssMiB),
    operatorRssAtStartMiB: round(usageAtReady.rssMiB),
    operatorPeakRssMiB: round(steadyAfter.usage.hwmMiB),
    operatorRssAnonMiB: round(steadyAfter.usage.rssAnonMiB),
    operatorRssFileMiB: round(steadyAfter.usage.rssFileMiB),
    operatorRssInWindowMiB: {
      min: round(Math.min(steadyAfter.usage.rssMiB, ...rssInWindow)),
      max: round(Math.max(steadyAfter.usage.rssMiB, ...rssInWindow)),
    },
    operatorCpuPercentOfCore: round(
      ((steadyAfter.usage.cpuSeconds - steadyBefore.usage.cpuSeconds) * 100) /
        ((steadyAfter.at - steadyBefore.at) / 1000),
      2,
    ),
    // Where the CPU went: the operator's passes (their wall time, an upper bound of their CPU).
    reconcilePasses: counterDelta(RECONCILES),
    reconcilePassesPer10s: {
      median: percentile(passesPer10s, 50),
      max: Math.max(0, ...passesPer10s),
    },
    reconcileSeconds: round(counterDelta('vaultpam_operator_reconcile_duration_seconds_sum'), 2),
    apiWritesPerMinute: round(steadyNonLease / minutes, 2),
    leaseWritesPerMinute: round(
      Object.entries(steadyWrites)
        .filter(([labels]) => labels.includes('kind=Lease'))
        .reduce((sum, [, value]) => sum + value, 0) / minutes,
      2,
    ),
    writesByKind: steadyWrites,
    heartbeatsPerMinute: round((steadyAfter.heartbeats - steadyBefore.heartbeats) / minutes),
    controlPlaneRequestsPerMinute: round(cpAll / minutes),
    controlPlaneRequestsFromOperatorPerMinute: round(cpOperator / minutes, 2),
  };
  say(`    ${JSON.stringify(steady)}`);
  await heapSnapshot(`steady state, ${N} Connectors`);

  // The control plane's records (figures 4 to 5 read stateChangedAt), over one kept-alive client.
  const adminClient = new ControlPlaneAdminClient({
    url: cp.url,
    caPem: cp.caPem,
    credential: cp.credential,
  });
  const context: PhaseContext = {
    namespace: NAMESPACE,
    names,
    observer,
    command,
    fleet: fleet.stats,
    record: (id) => adminClient.getConnector(id),
    operatorMetrics,
    controlPlaneOperatorRequests: async () => cpRequests(await cpMetrics(), notAgents),
    objects,
    events: admin.makeApiClient(EventsV1Api),
    timeoutMs,
  };
  const laterPhases = !skip.flapping || !skip.degraded || !skip.recovery || !skip.restart;

  // ---- (4) a burst: 10 % of the fleet goes silent at once -> Offline ------------------------------
  let burst: Burst | undefined;
  if (!skip.burst) {
    const silentCount = Math.max(1, Math.ceil(N * offlineFraction));
    const silent = names.slice(0, silentCount);
    const ids = silent.map((n) => `${NAMESPACE}.${n}`);
    say(
      `    burst: ${silentCount} agents go silent at once; the control plane marks them offline after ${OFFLINE_AFTER_SECONDS} s`,
    );
    const metricsBeforeBurst = await operatorMetrics();
    const queue = sampleQueue(operatorMetrics, metricsBeforeBurst);
    command({ type: 'silence', ids });
    const silencedAt = Date.now();
    // The machine's CPU is taken from when the first offline flip can come (an agent silenced just
    // before its heartbeat was due), not over the silent wait before it.
    let machineAtFirstFlip: ReturnType<typeof cpuSnapshot> | undefined;
    const firstFlipAfterMs = (OFFLINE_AFTER_SECONDS - HEARTBEAT_SECONDS) * 1000;
    await until(`${silentCount} Connectors to show Offline`, OFFLINE_AFTER_SECONDS * 1000 + timeoutMs, () => {
      if (machineAtFirstFlip === undefined && Date.now() - silencedAt >= firstFlipAfterMs)
        machineAtFirstFlip = cpuSnapshot();
      return silent.every((n) => observer.phaseSince(n, 'Offline', silencedAt) !== undefined);
    });
    const burstCpu = machineAtFirstFlip && cpuBetween(machineAtFirstFlip, cpuSnapshot(), runComponents());
    const { summary: burstQueue, after: metricsAfterBurst } = await queue.stop();
    const burstWrites = diffWrites(metricsBeforeBurst, metricsAfterBurst);
    const transitions = async (phase: string, since: number) => {
      const latencies: number[] = [];
      const changedAt: number[] = [];
      for (const name of silent) {
        const record = await adminClient.getConnector(`${NAMESPACE}.${name}`);
        const at = new Date(record.stateChangedAt).getTime();
        changedAt.push(at);
        latencies.push((observer.phaseSince(name, phase, since) ?? NaN) - at);
      }
      return { latencies, changedAt };
    };
    const transitionLatencies = async (phase: string, since: number) =>
      (await transitions(phase, since)).latencies;
    const { latencies, changedAt } = await transitions('Offline', silencedAt);
    const stillOnline = names.slice(silentCount).filter((n) => phaseNow.get(n) !== 'Online').length;
    const offline = latencySummary(latencies);
    burst = {
      silent: silentCount,
      p50Ms: offline.p50Ms,
      p99Ms: offline.p99Ms,
      maxMs: offline.maxMs,
      othersNotOnline: stillOnline,
      controlPlaneFlips: flipSpread(changedAt),
      operatorQueue: burstQueue,
      operatorWrites: burstWrites,
      ...(burstCpu ? { machineCpu: burstCpu } : {}),
    };
    say(`    control plane offline -> status Offline: ${JSON.stringify(burst)}`);
    if (laterPhases) {
      // The later phases start from a whole fleet: the silent agents beat again (and are measured).
      const resumedAt = Date.now();
      command({ type: 'resume', ids });
      await until(`${silentCount} Connectors to show Online again`, timeoutMs, () =>
        silent.every((n) => observer.phaseSince(n, 'Online', resumedAt) !== undefined),
      );
      burst.backOnline = latencySummary(await transitionLatencies('Online', resumedAt));
      say(`    they beat again: control plane online -> status Online: ${JSON.stringify(burst.backOnline)}`);
    }
  }

  // ---- (4b) 1 % of the fleet flapping, (4c) 1 % failing a path (Degraded) --------------------
  // 4c takes others than 4b's, so a Connector still settling from 4b does not blur 4c.
  const flapCount = Math.max(1, Math.ceil(N * flapFraction));
  const flapShare = `${flapCount} agent(s) (${round(flapFraction * 100, 2)} %)`;
  const flapPhase = async (fault: 'silence' | 'path', flappers: string[], announce: string) => {
    say(`${announce}, ${flapCycles} cycles, while the rest beat`);
    await waitForQuiet(operatorMetrics, 10_000, 120_000);
    return runFlapping(context, {
      flapping: flappers,
      fault,
      cycles: flapCycles,
      heartbeatSeconds: HEARTBEAT_SECONDS,
      offlineAfterSeconds: OFFLINE_AFTER_SECONDS,
    });
  };
  const flapping = skip.flapping
    ? undefined
    : await flapPhase(
        'silence',
        names.slice(N - flapCount),
        `8/11 flapping: ${flapShare} alternate silent/beating`,
      );
  const degraded = skip.degraded
    ? undefined
    : await flapPhase(
        'path',
        names.slice(N - 2 * flapCount, N - flapCount),
        `9/11 a failed path: ${flapShare} report an unhealthy path, then a healthy one`,
      );

  // ---- (5) guided recovery ---------------------------------------------------------------------
  let recovery: Awaited<ReturnType<typeof runRecoveries>> | undefined;
  if (!skip.recovery) {
    const oneAtATime = Math.min(recoveriesOneAtATime, N);
    const atOnce = Math.max(1, Math.min(recoveriesAtOnceAsked, Math.floor(N / 2)));
    const rule =
      atOnce === recoveriesAtOnceAsked
        ? `${atOnce} (--recoveries-at-once)`
        : `min(${recoveriesAtOnceAsked}, N/2) = ${atOnce}, since N = ${N}`;
    say(`10/11 guided recovery: ${oneAtATime} one after another, then ${rule} at once`);
    await waitForQuiet(operatorMetrics, 10_000, 120_000);
    recovery = await runRecoveries(context, {
      sequential: names.slice(N - oneAtATime),
      atOnce: names.slice(0, atOnce),
      atOnceRule: rule,
      offlineAfterSeconds: OFFLINE_AFTER_SECONDS,
    });
  }

  // ---- (6) operator restart --------------------------------------------------------------------
  let restart: RestartFigures | undefined;
  if (!skip.restart) {
    say('11/11 operator restart: SIGTERM, a new process, until every Connector is reconciled again');
    // Each restart with where the machine's time went from SIGTERM to every Connector reconciled:
    // the time varies from run to run at 10,000 (7 to 17 s), and the CPU of each process says
    // what it waited for.
    const cpuSince = () => {
      const before = cpuSnapshot();
      return (pid: number) => cpuBetween(before, cpuSnapshot(), { ...runComponents(), operator: { pid } });
    };
    const samples: RestartFigures[] = [];
    for (let i = 0; i < restarts; i += 1) {
      const restarted = await runRestart(context, operator, startOperator, N, cpuSince);
      operator = restarted.operator;
      samples.push(restarted.result);
    }
    const [first, ...again] = samples;
    if (first) restart = { ...first, ...(again.length > 0 ? { again } : {}) };
  }
  adminClient.close();
  observer.stop();
  command({ type: 'stop' });

  // ---- the second floor: the operator's own write mix, once the operator and fleet are stopped ---
  await Promise.all(children.map((child) => stopChild(child)));
  const mix = mixOf(convergenceWrites, N);
  let mixFloor: FloorResult | undefined;
  if (!skip.mixFloor) {
    say(`    floor with the operator's write mix (${JSON.stringify(mix)}), after stopping the operator`);
    await core.createNamespace({ body: { metadata: { name: MIX_FLOOR_NAMESPACE } } });
    mixFloor = await runFloor({ ...floorOptions, namespace: MIX_FLOOR_NAMESPACE, mix });
    say(
      `    ${mixFloor.seconds} s (${mixFloor.writes} writes, ${round(mixFloor.writes / mixFloor.seconds)} writes/s)`,
    );
  }

  // ---- results ---------------------------------------------------------------------------------
  const result = {
    benchmark: 'bench/scale.ts',
    date: new Date().toISOString(),
    connectors: N,
    machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown' },
    versions: { node: process.version, kubernetes: kubeVersion },
    settings: {
      heartbeatSeconds: HEARTBEAT_SECONDS,
      offlineAfterSeconds: OFFLINE_AFTER_SECONDS,
      operatorConcurrency,
      operatorNodeOptions: [
        ...imageEntrypoint('operator').nodeOptions,
        ...(args['operator-node-options'] ?? '').split(/\s+/),
      ]
        .filter(Boolean)
        .join(' '),
      // The image's ENV the operator ran with (this run's own environment overrides it).
      operatorEnv: Object.entries(imageEntrypoint('operator').env)
        .map(([key, value]) => `${key}=${process.env[key] ?? value}`)
        .join(' '),
      floorConcurrency,
      applyConcurrency,
      controllerManager: { kubeApiQps: kcmQps, kubeApiBurst: kcmBurst, defaults: { qps: 20, burst: 30 } },
      flapFraction,
      flapCycles,
      certificateLifetime: certLifetime ?? null,
      skipped: Object.entries(skip)
        .filter(([, skipped]) => skipped)
        .map(([phase]) => phase),
    },
    floor,
    mixFloor: mixFloor ?? 'skipped (--skip-mix-floor)',
    clusterFloor: clusterFloor ?? 'skipped (--skip-cluster-floor)',
    convergence: {
      applySeconds: round(appliedSeconds, 2),
      allOnlineSeconds: round(onlineSeconds, 2),
      ratioToFloor: round(onlineSeconds / floor.seconds, 2),
      ratioToMixFloor: mixFloor ? round(onlineSeconds / mixFloor.seconds, 2) : null,
      ratioToClusterFloor: clusterFloor ? round(onlineSeconds / clusterFloor.seconds, 2) : null,
      podsWaitedForClaims: {
        pods: fleetAtOnline?.podsWaitedForClaims ?? 0,
        meanMs: round(
          (fleetAtOnline?.claimWaitTotalMs ?? 0) / Math.max(1, fleetAtOnline?.podsWaitedForClaims ?? 0),
          0,
        ),
        maxMs: fleetAtOnline?.claimWaitMaxMs ?? 0,
      },
      operatorCpuSeconds: round(cpuAtOnline.cpuSeconds - cpuBeforeApply.cpuSeconds, 2),
      machineCpu,
      apiServer,
      operatorWrites: convergenceWrites,
      operatorWritesPerConnector: round(nonLeaseWrites(convergenceWrites) / N, 2),
      operatorRequests: convergenceRequests,
      operatorReadsPerConnector: readsPerConnector(convergenceRequests, N),
    },
    statusPath,
    steady,
    burst: burst ?? 'skipped (--skip-burst)',
    flapping: flapping ?? 'skipped (--skip-flapping)',
    degraded: degraded ?? 'skipped (--skip-degraded)',
    recovery: recovery ?? 'skipped (--skip-recovery)',
    restart: restart ?? 'skipped (--skip-restart)',
    renewals: {
      certificateLifetime: certLifetime ?? 'the control plane default (24h): none expected',
      renewals: fleet.stats()?.renewals ?? 0,
      renewalFailures: fleet.stats()?.renewalFailures ?? 0,
    },
    enrollments: enrollmentFigures(await cpMetrics()),
    fleet: fleet.stats(),
    // Figure 7 (the control plane alone at 10,000 agents) is bench/control-plane-scale.ts.
    measuredApart: ['(7) the control plane at 10,000 agents: bench/control-plane-scale.ts'],
    totalSeconds: round((Date.now() - started) / 1000),
  };
  await writeResult(args.out ?? '', `scale-${N}`, result, markdown(result));
} catch (error) {
  // After Ctrl-C, a request to a component that is stopping fails: that is no failure of the run.
  if (interrupted) await new Promise(() => {});
  // inspect prints the cause chain too: fetch's own message ("fetch failed") says nothing else.
  process.stderr.write(`scale benchmark failed: ${inspect(error)}\n`);
  process.exitCode = 1;
}
await cleanup();
process.exit(process.exitCode ?? 0);

/** What one connector's share of a floor writes, by kind (each status patch and Event differs). */
/** Deletes from the control plane every record of Connectors in `namespace` (a floor's). */
async function forgetRecords(cp: ControlPlaneProcess, namespace: string) {
  const admin = new ControlPlaneAdminClient({ url: cp.url, caPem: cp.caPem, credential: cp.credential });
  try {
    const { connectors } = await admin.listConnectors();
    const ids = connectors.map((c) => c.connectorId).filter((id) => id.startsWith(`${namespace}.`));
    await pool(ids, 16, (id) => admin.deleteConnector(id));
  } finally {
    admin.close();
  }
}

/**
 * Deletes the volumes provisioned under `root` once kube-controller-manager has marked them Released
 * (their reclaimPolicy Delete, kept as the provisioner does), and waits until they are gone. Left
 * behind, they weigh on the next phase: kube-controller-manager's volume worker, one for the whole
 * cluster, resyncs every volume every 15 s, and turning N Bound volumes Released is N writes ahead
 * of the new volumes. At 10,000 no Connector of the operator's phase was Online after 300 s (300
 * were at 46 s in a run without the floor before it), and claims bound at 5 a second.
 */
async function reclaimVolumes(core: CoreV1Api, root: string) {
  const provisioner = new LocalProvisioner({ core, root, logger: silentLogger() });
  const started = Date.now();
  // Each round lists every volume of the cluster: every 2 s, not every 100 ms.
  await until(
    'the floor through the cluster to have its volumes reclaimed',
    timeoutMs,
    async () => (await provisioner.reclaimReleased()) === 0,
    2_000,
  );
  say(`    its volumes reclaimed in ${round((Date.now() - started) / 1000, 1)} s`);
}

/** Deletes a namespace and waits until it is gone. */
async function deleteNamespace(core: CoreV1Api, name: string) {
  await core.deleteNamespace({ name });
  await until(`namespace ${name} to be gone`, timeoutMs, async () => {
    try {
      await core.readNamespace({ name });
      return false;
    } catch {
      return true;
    }
  });
}

/** Figure 6: a restart (the first), where the machine's time went meanwhile, and the ones after it. */
type RestartFigures = Awaited<ReturnType<typeof runRestart>>['result'] & { again?: RestartFigures[] };

interface ResultForTable {
  date: string;
  connectors: number;
  machine: { cores: number; cpu: string };
  versions: { node: string; kubernetes: string };
  settings: {
    operatorConcurrency: number;
    operatorNodeOptions: string;
    operatorEnv: string;
    heartbeatSeconds: number;
    floorConcurrency: number;
    controllerManager: { kubeApiQps: number; kubeApiBurst: number };
  };
  floor: { seconds: number; writes: number };
  mixFloor: { seconds: number; writes: number } | string;
  clusterFloor: ClusterFloorResult | string;
  convergence: {
    allOnlineSeconds: number;
    ratioToFloor: number;
    ratioToMixFloor: number | null;
    ratioToClusterFloor: number | null;
    podsWaitedForClaims: { pods: number; meanMs: number; maxMs: number };
    operatorWritesPerConnector: number;
    operatorRequests: Record<string, number>;
    operatorReadsPerConnector: number;
    machineCpu: CpuBreakdown;
    apiServer: ApiServerLoad;
  };
  steady: {
    seconds: number;
    operatorRssMiB: number;
    operatorRssAtStartMiB: number;
    operatorRssAnonMiB: number;
    operatorRssFileMiB: number;
    operatorRssInWindowMiB: { min: number; max: number };
    operatorPeakRssMiB: number;
    operatorCpuPercentOfCore: number;
    reconcilePasses: number;
    reconcilePassesPer10s: { median: number; max: number };
    reconcileSeconds: number;
    apiWritesPerMinute: number;
    leaseWritesPerMinute: number;
    heartbeatsPerMinute: number;
    controlPlaneRequestsPerMinute: number;
    controlPlaneRequestsFromOperatorPerMinute: number;
  };
  burst: Burst | string;
  flapping: Awaited<ReturnType<typeof runFlapping>> | string;
  degraded: Awaited<ReturnType<typeof runFlapping>> | string;
  recovery: Awaited<ReturnType<typeof runRecoveries>> | string;
  restart: RestartFigures | string;
  renewals: { certificateLifetime: string; renewals: number; renewalFailures: number };
  enrollments: EnrollmentFigures;
  measuredApart: string[];
}

interface Burst {
  silent: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  othersNotOnline: number;
  /** When the silent agents beat again (before the later phases): control plane online -> status Online. */
  backOnline?: ReturnType<typeof latencySummary>;
  /** How the control plane's offline flips spread in time: first to last, and the most in one second. */
  controlPlaneFlips: ReturnType<typeof flipSpread>;
  /** The operator's work queue over the burst, and the passes that ran. */
  operatorQueue: QueueSummary;
  /** The operator's writes from the silence to the last status Offline, by kind and verb. */
  operatorWrites: Record<string, number>;
  /** The machine's CPU from when the first offline flip can come to the last status Offline. */
  machineCpu?: CpuBreakdown;
}

/** The spread of transition times (ms since the epoch): how long from first to last, the densest second. */
function flipSpread(times: number[]) {
  const perSecond = new Map<number, number>();
  for (const t of times) perSecond.set(Math.floor(t / 1000), (perSecond.get(Math.floor(t / 1000)) ?? 0) + 1);
  return {
    firstToLastMs: times.length > 0 ? Math.max(...times) - Math.min(...times) : 0,
    mostInOneSecond: Math.max(0, ...perSecond.values()),
  };
}

interface QueueSummary {
  samples: number;
  maxDepth: number;
  maxInFlight: number;
  minConcurrencyLimit: number;
  /** Passes that ended meanwhile, and their mean duration (exact: the duration histogram's sum and count). */
  passes: number;
  meanPassMs: number;
}

/**
 * The operator's work queue from `before` (a scrape of its metrics) until `stop`, which returns the
 * last scrape too. Sampled every 250 ms: how deep it got, how many passes ran
 * at once, and the lowest concurrency limit (which APF's 429s lower). Samples can miss short clumps
 * of passes (the control plane's offline sweep runs once a second, in step with a 250 ms timer), so
 * how many passes ran and how long they took come from the duration histogram instead.
 */
function sampleQueue(metrics: () => Promise<string>, before: string) {
  // Declared here, not beside the function: this script's main flow runs at the top level, before
  // a module-level constant further down is initialised.
  const PASS_SECONDS = 'vaultpam_operator_reconcile_duration_seconds';
  const depth: number[] = [];
  const inFlight: number[] = [];
  const limit: number[] = [];
  const timer = setInterval(() => {
    void metrics()
      .then((text) => {
        depth.push(counterSum(text, 'vaultpam_operator_work_queue_depth'));
        inFlight.push(counterSum(text, 'vaultpam_operator_work_queue_in_flight'));
        limit.push(counterSum(text, 'vaultpam_operator_work_queue_concurrency_limit'));
      })
      .catch(() => {});
  }, 250);
  return {
    async stop(): Promise<{ summary: QueueSummary; after: string }> {
      clearInterval(timer);
      const after = await metrics();
      const passes = counterSum(after, `${PASS_SECONDS}_count`) - counterSum(before, `${PASS_SECONDS}_count`);
      const passSeconds =
        counterSum(after, `${PASS_SECONDS}_sum`) - counterSum(before, `${PASS_SECONDS}_sum`);
      const summary = {
        samples: depth.length,
        maxDepth: Math.max(0, ...depth),
        maxInFlight: Math.max(0, ...inFlight),
        minConcurrencyLimit: limit.length > 0 ? Math.min(...limit) : NaN,
        passes,
        meanPassMs: passes > 0 ? round((passSeconds * 1000) / passes) : NaN,
      };
      return { summary, after };
    },
  };
}

function seconds(ms: number) {
  return `${round(ms / 1000, 2)} s`;
}

/** Where a burst's time went: how the flips came, the operator's queue and writes, the machine's CPU. */
function burstWhere(b: Burst) {
  const q = b.operatorQueue;
  const writes = Object.entries(b.operatorWrites)
    .filter(([labels]) => !labels.includes('kind=Lease'))
    .map(([labels, n]) => `${labels.replace('kind=', '').replace(',verb=', ' ')} ${n}`)
    .join(', ');
  const cpu = b.machineCpu
    ? `; from the first flip, ${b.machineCpu.machineBusyCores} cores busy (CPU s: ${Object.entries(
        b.machineCpu.components,
      )
        .map(([name, s]) => `${name} ${s}`)
        .join(', ')})`
    : '';
  return (
    `the control plane's flips came over ${seconds(b.controlPlaneFlips.firstToLastMs)}, at most ${b.controlPlaneFlips.mostInOneSecond} in one second; ` +
    `operator: ${q.passes} passes of ${q.meanPassMs} ms on average; sampled, at most ${q.maxDepth} waiting and ${q.maxInFlight} running, limit at least ${q.minConcurrencyLimit}; writes ${writes}${cpu}`
  );
}

/** The table rows of the figures after the steady state (a skipped phase says so). */
function laterRows(r: ResultForTable): Array<[string, string, string]> {
  const rows: Array<[string, string, string]> = [];
  const b = r.burst;
  if (typeof b === 'string') rows.push(['(4) burst of silent agents -> status Offline', 'skipped', b]);
  else
    rows.push([
      `(4) burst: ${b.silent} agents (${round((b.silent / r.connectors) * 100)} %) silent -> status Offline`,
      `p50 ${b.p50Ms} ms, p99 ${b.p99Ms} ms`,
      `max ${b.maxMs} ms, from the control plane's stateChangedAt${b.backOnline ? `; beating again -> Online p50 ${b.backOnline.p50Ms} ms, p99 ${b.backOnline.p99Ms} ms` : ''}; ${burstWhere(b)}`,
    ]);
  for (const [figure, f, what] of [
    ['(4b)', r.flapping, 'flapping'],
    ['(4c)', r.degraded, 'failing a path'],
  ] as const) {
    if (typeof f === 'string') rows.push([`${figure} 1 % of the fleet ${what}`, 'skipped', f]);
    else
      rows.push([
        `${figure} ${f.flapping} agent(s) (${round((f.flapping / r.connectors) * 100, 2)} %) ${what}, ${f.cycles} cycles -> status ${f.faultPhase} / Online`,
        `${f.faultPhase} p50 ${f.toFault.p50Ms} ms, p99 ${f.toFault.p99Ms} ms; Online p50 ${f.toOnline.p50Ms} ms, p99 ${f.toOnline.p99Ms} ms`,
        `max ${f.toFault.maxMs} / ${f.toOnline.maxMs} ms over ${f.toFault.count + f.toOnline.count} transitions; operator writes meanwhile ${f.operatorWrites} (Lease aside): ${f.statusWritesToFlapping} status writes and ${f.eventsOnFlapping} Events on them; other Connectors written: ${f.otherConnectorsWithStatusWrites} status, ${f.otherConnectorsWithEvents} Events`,
      ]);
  }
  const v = r.recovery;
  if (typeof v === 'string') rows.push(['(5) guided recovery', 'skipped', v]);
  else {
    const one = v.oneAtATime;
    const all = v.atOnce;
    rows.push([
      `(5) guided recovery, ${one.recoveries} one after another: request -> Online`,
      `median ${seconds(one.medianRequestToOnlineMs)}`,
      `min ${seconds(one.minRequestToOnlineMs)}, max ${seconds(one.maxRequestToOnlineMs)}; requested once the control plane had marked them offline; pairings ${one.pairings}`,
    ]);
    rows.push([
      `(5) guided recovery, ${all.recoveries} at once: request -> Online`,
      `p50 ${seconds(all.requestToOnline.p50Ms)}, p99 ${seconds(all.requestToOnline.p99Ms)}`,
      `max ${seconds(all.requestToOnline.maxMs)}; all Online ${all.firstRequestToLastOnlineSeconds} s after the first request; ${all.rule}; operator writes/recovery ${all.operatorWritesPerRecovery} (Lease aside); pairings ${all.pairings}`,
    ]);
  }
  const s = r.restart;
  if (typeof s === 'string') rows.push(['(6) operator restart', 'skipped', s]);
  else
    rows.push([
      `(6) operator restart (SIGTERM, new process) -> every Connector reconciled again`,
      `${s.sigtermToAllReconciledSeconds} s`,
      `from the new process's start ${s.startToAllReconciledSeconds} s (ready ${s.startToReadySeconds} s, leader ${s.startToLeaderSeconds} s); operator writes ${s.writesToAllReconciled} (Lease aside), ${s.writesUntilQuiet} until quiet; Connectors whose status changed: ${s.connectorsWithStatusWrites}; ${s.machineCpu.machineBusyCores} cores busy (CPU s: ${counts(s.machineCpu.components)})${(s.again ?? []).map((a, i) => `; restart ${i + 2}: ${a.sigtermToAllReconciledSeconds} s, ${a.writesToAllReconciled} writes, ${a.machineCpu.machineBusyCores} cores busy (CPU s: ${counts(a.machineCpu.components)})`).join('')}`,
    ]);
  rows.push([
    'enrollments (the control plane, whole run)',
    `${r.enrollments.paired}`,
    `answered again after a lost answer ${r.enrollments.answeredAgain}; refused ${JSON.stringify(r.enrollments.refusedByReason)}`,
  ]);
  rows.push([
    'fleet certificate renewals',
    `${r.renewals.renewals}`,
    `certificate lifetime ${r.renewals.certificateLifetime}; ${r.renewals.renewalFailures} failed`,
  ]);
  return rows;
}

/** "a 3, b 2, c 1": a count's entries, the most first. */
function counts(byName: Record<string, number>): string {
  return Object.entries(byName)
    .sort(([, a], [, b]) => b - a)
    .map(([name, n]) => `${name} ${n}`)
    .join(', ');
}

interface EnrollmentFigures {
  paired: number;
  answeredAgain: number;
  refusedByReason: Record<string, number>;
}

/**
 * The control plane's enrollment counters: pairings, enrollments answered again because their answer
 * was lost (under load, the agent's request timed out after the token was spent), and refusals.
 */
function enrollmentFigures(metricsText: string): EnrollmentFigures {
  return {
    paired: counterSum(metricsText, 'cp_enrollments_total'),
    answeredAgain: counterSum(metricsText, 'cp_enrollments_answered_again_total'),
    refusedByReason: countersByLabels(metricsText, 'cp_enrollment_failures_total'),
  };
}

function markdown(r: ResultForTable): string {
  const rows: Array<[string, string, string]> = [
    [
      `(1) apply ${r.connectors} Connectors at once -> all Online`,
      `${r.convergence.allOnlineSeconds} s`,
      `floor ${r.floor.seconds} s (${r.floor.writes} writes): ${r.convergence.ratioToFloor}x; ${typeof r.mixFloor === 'string' ? `floor with the operator's write mix ${r.mixFloor}` : `floor with the operator's write mix ${r.mixFloor.seconds} s (${r.mixFloor.writes} writes): ${r.convergence.ratioToMixFloor}x`}; ${typeof r.clusterFloor === 'string' ? `floor through the cluster ${r.clusterFloor}` : `floor through the cluster (the plain floor's writes with a real token each, and its Secret deleted, until every agent has beaten) ${r.clusterFloor.seconds} s: ${r.convergence.ratioToClusterFloor}x`}; operator writes/connector ${r.convergence.operatorWritesPerConnector} (Lease aside); pods waited for their claims to bind (kube-controller-manager) mean ${r.convergence.podsWaitedForClaims.meanMs} ms, max ${r.convergence.podsWaitedForClaims.maxMs} ms`,
    ],
    [
      "(1) where the machine's time went, apply -> all Online",
      `${r.convergence.machineCpu.machineBusyCores} of ${r.machine.cores} cores busy`,
      `CPU seconds: ${counts(r.convergence.machineCpu.components)}`,
    ],
    [
      '(1) what the API server served, apply -> all Online',
      `${Object.values(r.convergence.apiServer.requests).reduce((sum, n) => sum + n, 0)} requests`,
      `${counts(r.convergence.apiServer.requests)}; watch events sent: ${counts(r.convergence.apiServer.watchEventsSent)}`,
    ],
    [
      "(1) the operator's requests, apply -> all Online",
      `${r.convergence.operatorReadsPerConnector} reads/connector`,
      `by verb, resource and answer: ${counts(r.convergence.operatorRequests)}`,
    ],
    [
      '(2) operator RSS at steady state',
      `${r.steady.operatorRssMiB} MiB`,
      `anonymous ${r.steady.operatorRssAnonMiB} MiB (heaps), file-backed ${r.steady.operatorRssFileMiB} MiB (mostly node's code, shared); ${r.steady.operatorRssInWindowMiB.min} to ${r.steady.operatorRssInWindowMiB.max} MiB over the ${r.steady.seconds} s window; peak ${r.steady.operatorPeakRssMiB} MiB; ${r.steady.operatorRssAtStartMiB} MiB when ready with no Connector`,
    ],
    [
      '(2) operator CPU at steady state',
      `${r.steady.operatorCpuPercentOfCore} % of a core`,
      `over ${r.steady.seconds} s: ${r.steady.reconcilePasses} passes taking ${r.steady.reconcileSeconds} s (wall; every 10 s a median of ${r.steady.reconcilePassesPer10s.median}, at most ${r.steady.reconcilePassesPer10s.max})`,
    ],
    [
      '(3) operator API writes at steady state',
      `${r.steady.apiWritesPerMinute} /min`,
      `Lease renewals aside (${r.steady.leaseWritesPerMinute} /min); ${r.steady.heartbeatsPerMinute} heartbeats/min`,
    ],
    [
      '(3) control-plane requests at steady state',
      `${r.steady.controlPlaneRequestsPerMinute} /min`,
      `of which from the operator: ${r.steady.controlPlaneRequestsFromOperatorPerMinute} /min`,
    ],
    ...laterRows(r),
  ];
  return [
    `# Scale benchmark, ${r.connectors} connectors`,
    '',
    `${r.date}; ${r.machine.cores} cores (${r.machine.cpu}); Node ${r.versions.node}; Kubernetes ${r.versions.kubernetes};`,
    `operator --concurrency ${r.settings.operatorConcurrency}${r.settings.operatorNodeOptions ? ` (node ${r.settings.operatorNodeOptions})` : ''}${r.settings.operatorEnv ? ` (env ${r.settings.operatorEnv})` : ''}; floor ${r.settings.floorConcurrency} at a time; heartbeat every ${r.settings.heartbeatSeconds} s;`,
    `kube-controller-manager --kube-api-qps ${r.settings.controllerManager.kubeApiQps} --kube-api-burst ${r.settings.controllerManager.kubeApiBurst} (defaults 20/30).`,
    '',
    '| figure | value | beside it |',
    '| --- | --- | --- |',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
    '',
    'Measured apart:',
    ...r.measuredApart.map((item) => `- ${item}`),
    '',
  ].join('\n');
}
