// The local pod runner against a real control plane, with real processes: a StatefulSet's pod is
// bound, runs and becomes Ready; claim data survives pod recreation and a recreated claim is
// empty; emptyDir data does not survive; an optional Secret appears, changes and disappears in the
// process's view; crash loops report exit code, termination message, restarts and backoff; scale
// to zero stops the process with SIGTERM; stop() leaves no process. Pure parts are tested first.
import { access, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Container,
  type V1Pod,
  type V1PodSpec,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import test from 'ava';
import type { LocalCluster } from '../../dev/local-cluster/cluster.ts';
import {
  buildLaunch,
  expandVariables,
  mapArgument,
  resolveConnectorCommand,
  resolveEnvironment,
  rewritePorts,
} from '../../dev/local-cluster/container-spec.ts';
import {
  crashBackoffFrom,
  KUBELET_CRASH_BACKOFF,
  nextRestartDelay,
} from '../../dev/local-cluster/crash-backoff.ts';
import { LocalProvisioner } from '../../dev/local-cluster/local-provisioner.ts';
import { PodRunner } from '../../dev/local-cluster/pod-runner.ts';
import { buildPodStatus, type PodView, podPhase } from '../../dev/local-cluster/pod-status.ts';
import { claimDirectory } from '../../dev/local-cluster/volumes.ts';
import { FakeClock } from '../../src/lib/clock.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { startTestCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';

const FIXTURE = resolve(import.meta.dirname, '..', 'fixtures', 'pod-fixture.ts');
const FIXTURE_IMAGE = 'local.test/pod-fixture:1';
const CONNECTOR_LABELS = { 'app.kubernetes.io/name': 'vaultpam-connector' };
const NODE = 'vaultpam-local-node';

const resolveFixture = (container: V1Container) =>
  container.image === FIXTURE_IMAGE
    ? { command: process.execPath, args: [FIXTURE, ...(container.args ?? [])] }
    : undefined;

// ---------------------------------------------------------------------------------------------
// Pure parts

test('crash backoff doubles from the initial delay up to the ceiling and resets after a long run', (t) => {
  const policy = KUBELET_CRASH_BACKOFF;
  let streak = { restarts: 0 };
  const delays: number[] = [];
  for (let i = 0; i < 7; i += 1) {
    const next = nextRestartDelay(policy, streak, 1_000);
    delays.push(next.delayMs);
    streak = next.streak;
  }
  t.deepEqual(delays, [10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);
  t.is(nextRestartDelay(policy, streak, 600_000).delayMs, 10_000, 'a 10 min run resets the backoff');
  t.deepEqual(crashBackoffFrom(200), { initialMs: 200, maxMs: 6_000, resetAfterMs: 12_000 });
  t.throws(() => crashBackoffFrom(0), { instanceOf: RangeError });
});

test('paths under a mount are mapped in arguments (also --flag=value) and env; others are kept', (t) => {
  const mounts = [
    { mountPath: '/data', hostPath: '/host/claims/u1' },
    { mountPath: '/data/cache', hostPath: '/host/pods/p/volumes/cache' },
    { mountPath: '/dev/termination-log', hostPath: '/host/pods/p/containers/c/termination-log' },
  ];
  t.is(mapArgument('/data', mounts), '/host/claims/u1');
  t.is(mapArgument('--data-dir=/data/identity', mounts), '--data-dir=/host/claims/u1/identity');
  t.is(mapArgument('/data/cache/x', mounts), '/host/pods/p/volumes/cache/x', 'the deeper mount wins');
  t.is(mapArgument('/database', mounts), '/database', 'a sibling with the same prefix is not a mount');
  t.is(
    mapArgument('--termination-log=/dev/termination-log', mounts),
    '--termination-log=/host/pods/p/containers/c/termination-log',
  );
  t.is(mapArgument('--name=data', mounts), '--name=data');
  const launch = buildLaunch({
    local: { command: '/bin/agent', args: ['--data-dir=$(DIR)', '--health-listen=0.0.0.0:8081'] },
    env: { DIR: '/data', LISTEN: ':8081', OTHER: '/etc/x' },
    mounts,
    ports: new Map([[8081, 40001]]),
  });
  t.deepEqual(launch.args, ['--data-dir=/host/claims/u1', '--health-listen=127.0.0.1:40001']);
  t.deepEqual(launch.env, { DIR: '/host/claims/u1', LISTEN: '127.0.0.1:40001', OTHER: '/etc/x' });
  t.deepEqual(launch.mappedPorts, [8081]);
  // Found in CI: a checkout under /tmp put the agent's own script path "inside" the pod's /tmp mount.
  const fromTmp = buildLaunch({
    local: {
      command: '/usr/bin/node',
      hostArgs: ['/tmp/checkout/src/bin/connector.ts'],
      args: ['--cache=/tmp/x'],
    },
    env: {},
    mounts: [{ mountPath: '/tmp', hostPath: '/host/pods/p/volumes/tmp' }],
    ports: new Map(),
  });
  t.deepEqual(fromTmp.args, ['/tmp/checkout/src/bin/connector.ts', '--cache=/host/pods/p/volumes/tmp/x']);
});

test('listen ports are rewritten only as whole ports in listen addresses', (t) => {
  const ports = new Map([[8081, 40001]]);
  t.is(rewritePorts('--listen=:8081', ports).value, '--listen=127.0.0.1:40001');
  t.is(rewritePorts('[::]:8081', ports).value, '127.0.0.1:40001');
  t.is(rewritePorts('0.0.0.0:80810', ports).value, '0.0.0.0:80810');
  t.is(
    rewritePorts('https://cp.example:8081', ports).value,
    'https://cp.example:8081',
    'a remote URL is kept',
  );
  t.deepEqual(rewritePorts('--x=1', ports).rewritten, []);
  t.is(expandVariables('$(A)-$$(A)-$(MISSING)', { A: 'a' }), 'a-$(A)-$(MISSING)');
});

test('the environment is built like the kubelet builds it, and a missing Secret is a config error', (t) => {
  const pod: V1Pod = {
    metadata: { name: 'p', namespace: 'ns', uid: 'u', labels: { app: 'x' } },
    spec: { containers: [] },
  };
  const container: V1Container = {
    name: 'c',
    envFrom: [{ configMapRef: { name: 'cfg' }, prefix: 'CFG_' }],
    env: [
      { name: 'CFG_A', value: 'overridden' },
      { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
      { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'tok', key: 'token' } } },
      { name: 'GREETING', value: 'hi $(POD)' },
    ],
  };
  const sources = {
    secret: (_ns: string, name: string) =>
      name === 'tok' ? { data: { token: Buffer.from('s3cr3t-value').toString('base64') } } : undefined,
    configMap: (_ns: string, name: string) => (name === 'cfg' ? { data: { A: 'a', B: 'b' } } : undefined),
  };
  const resolved = resolveEnvironment(pod, container, sources);
  t.deepEqual(resolved.problems, []);
  t.deepEqual(resolved.env, {
    CFG_A: 'overridden',
    CFG_B: 'b',
    POD: 'p',
    IP: '127.0.0.1',
    APP: 'x',
    TOKEN: 's3cr3t-value',
    GREETING: 'hi p',
  });
  const missing = resolveEnvironment(pod, container, { ...sources, secret: () => undefined });
  t.deepEqual(missing.problems, ['secret "tok" not found (env TOKEN)']);
});

test('connector images run the agent with its container-path defaults made explicit', (t) => {
  const pod: V1Pod = { metadata: { name: 'c-0' }, spec: { containers: [] } };
  const explicit = resolveConnectorCommand(
    {
      name: 'agent',
      image: 'ghcr.io/x/vaultpam-connector:1.0',
      args: ['--connector-id=c1', '--data-dir=/var/pam'],
    },
    pod,
  );
  t.is(explicit?.command, process.execPath);
  t.regex(explicit?.hostArgs?.[0] ?? '', /src\/bin\/connector\.ts$/);
  t.deepEqual(explicit?.args, [
    '--connector-id=c1',
    '--data-dir=/var/pam',
    '--termination-log=/dev/termination-log',
    '--health-listen=0.0.0.0:8081',
  ]);
  t.is(resolveConnectorCommand({ name: 'x', image: 'nginx:1' }, pod), undefined);
});

test('phase and conditions follow the kubelet rules; transition times stay while nothing flips', (t) => {
  const clock = new FakeClock('2026-01-01T00:00:00Z');
  const pod: V1Pod = { metadata: { name: 'p' }, spec: { containers: [], restartPolicy: 'Always' } };
  const running: PodView = {
    volumes: { ready: true },
    startTime: '2026-01-01T00:00:00Z',
    containers: [
      {
        name: 'c',
        image: 'i',
        state: { running: { startedAt: '2026-01-01T00:00:00Z' } },
        restartCount: 0,
        ready: true,
        started: true,
      },
    ],
  };
  const first = buildPodStatus(pod, running, clock.now());
  t.is(first.phase, 'Running');
  t.is(first.podIP, '127.0.0.1');
  t.deepEqual(
    first.conditions.map((c) => [c.type, c.status]),
    [
      ['PodReadyToStartContainers', 'True'],
      ['Initialized', 'True'],
      ['ContainersReady', 'True'],
      ['Ready', 'True'],
    ],
  );
  clock.advance(60_000);
  const crashed: PodView = {
    ...running,
    containers: [
      {
        name: 'c',
        image: 'i',
        state: { waiting: { reason: 'CrashLoopBackOff' } },
        lastTerminated: {
          exitCode: 10,
          reason: 'Error',
          startedAt: '2026-01-01T00:00:00Z',
          finishedAt: '2026-01-01T00:01:00Z',
          containerID: 'local://x',
        },
        restartCount: 1,
        ready: false,
        started: false,
      },
    ],
  };
  const second = buildPodStatus(pod, crashed, clock.now(), first);
  t.is(second.phase, 'Running', 'restartPolicy Always keeps a crash-looping pod Running');
  const ready = second.conditions.find((c) => c.type === 'Ready');
  t.is(ready?.status, 'False');
  t.is(ready?.lastTransitionTime, '2026-01-01T00:01:00Z');
  t.is(second.conditions.find((c) => c.type === 'Initialized')?.lastTransitionTime, '2026-01-01T00:00:00Z');
  t.is(
    podPhase('Never', {
      ...crashed,
      containers: [
        { ...crashed.containers[0], state: { terminated: crashed.containers[0]?.lastTerminated } } as never,
      ],
    }),
    'Failed',
  );
  t.is(podPhase('Always', { ...running, volumes: { ready: false, message: 'claim pending' } }), 'Pending');
});

// ---------------------------------------------------------------------------------------------
// Against a real control plane

interface Context {
  cluster: LocalCluster;
  kc: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  runner: PodRunner;
  root: string;
  logs: ReturnType<typeof captureLogs>;
}
let context: Context | undefined;
const ctx = () => {
  if (!context) throw new Error('the cluster and the pod runner did not start (see test.before)');
  return context;
};

test.before(async () => {
  const cluster = await startTestCluster();
  const kc = cluster.adminKubeConfig();
  const root = await mkdtemp(join(tmpdir(), 'pod-runner-'));
  const logs = captureLogs('pod-runner', 'info');
  const runner = new PodRunner({
    kubeConfig: kc,
    rootDir: root,
    logger: logs.logger,
    resolveCommand: resolveFixture,
    crashBackoff: crashBackoffFrom(300, 3_000),
    probePeriodMs: 300,
    resyncPeriodMs: 2_000,
    leaseRenewMs: 2_000,
  });
  context = {
    cluster,
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    runner,
    root,
    logs,
  };
  try {
    await runner.start();
  } catch (error) {
    await runner.stop();
    throw error;
  }
});

test.after.always(async () => {
  await context?.runner.stop();
  await context?.cluster.stop();
  if (context) await rm(context.root, { recursive: true, force: true });
});

let namespaces = 0;
async function namespace(prefix: string): Promise<string> {
  namespaces += 1;
  const name = `${prefix}-${process.pid}-${namespaces}`;
  const { core } = ctx();
  await core.createNamespace({ body: { metadata: { name } } });
  // Pods are admitted only once the namespace's default ServiceAccount exists.
  await eventually(() => core.readNamespacedServiceAccount({ namespace: name, name: 'default' }), {
    description: `default ServiceAccount in ${name}`,
  });
  return name;
}

function fixtureContainer(overrides: Partial<V1Container> = {}): V1Container {
  return {
    name: 'agent',
    image: FIXTURE_IMAGE,
    args: ['--data-dir=/data', '--listen=0.0.0.0:8081', '--termination-log=/dev/termination-log'],
    ports: [{ name: 'health', containerPort: 8081 }],
    readinessProbe: { httpGet: { path: '/readyz', port: 'health' }, periodSeconds: 10 },
    // The initial delay protects the starting process from its liveness probe, as on a real cluster.
    livenessProbe: { httpGet: { path: '/healthz', port: 8081 }, periodSeconds: 10, initialDelaySeconds: 3 },
    volumeMounts: [{ name: 'data', mountPath: '/data' }],
    ...overrides,
  };
}

function statefulSet(name: string, spec: Partial<V1PodSpec>, withClaim: boolean): V1StatefulSet {
  return {
    metadata: { name },
    spec: {
      replicas: 1,
      serviceName: name,
      selector: { matchLabels: { ...CONNECTOR_LABELS, instance: name } },
      template: {
        metadata: { labels: { ...CONNECTOR_LABELS, instance: name } },
        spec: { terminationGracePeriodSeconds: 5, containers: [fixtureContainer()], ...spec },
      },
      ...(withClaim
        ? {
            volumeClaimTemplates: [
              {
                metadata: { name: 'data' },
                spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
              },
            ],
          }
        : {}),
    },
  };
}

function statusOf(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

async function readyPod(ns: string, name: string, notUid?: string): Promise<V1Pod> {
  const { core } = ctx();
  return eventually(
    async () => {
      const pod = await core.readNamespacedPod({ namespace: ns, name });
      const ready = pod.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
      return ready && pod.metadata?.uid !== notUid && pod;
    },
    { description: `pod ${ns}/${name} Ready`, timeoutMs: 60_000 },
  );
}

async function podGone(ns: string, name: string, uid: string): Promise<void> {
  const { core } = ctx();
  await eventually(
    async () => {
      try {
        const pod = await core.readNamespacedPod({ namespace: ns, name });
        return pod.metadata?.uid !== uid;
      } catch (error) {
        return statusOf(error) === 404;
      }
    },
    { description: `pod ${ns}/${name} (${uid}) gone`, timeoutMs: 60_000 },
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 2_000 }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      res.on('end', () => done({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', fail);
    req.end();
  });
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

test('the runner registers a Ready node and keeps its Lease renewed', async (t) => {
  const { kc, core } = ctx();
  const node = await core.readNode({ name: NODE });
  t.is(node.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
  t.deepEqual(node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address, '127.0.0.1');
  const leases = kc.makeApiClient(CoordinationV1Api);
  const first = await leases.readNamespacedLease({ namespace: 'kube-node-lease', name: NODE });
  const renewed = await eventually(
    async () => {
      const lease = await leases.readNamespacedLease({ namespace: 'kube-node-lease', name: NODE });
      return (
        new Date(lease.spec?.renewTime ?? 0).getTime() > new Date(first.spec?.renewTime ?? 0).getTime() &&
        lease
      );
    },
    { description: 'lease renewed', timeoutMs: 15_000 },
  );
  t.is(renewed.spec?.holderIdentity, NODE);
  t.falsy(
    (await core.readNode({ name: NODE })).spec?.taints?.some((taint) => taint.effect === 'NoExecute'),
    'the node lifecycle controller does not taint the node for eviction',
  );
});

test('a StatefulSet pod runs Ready on a claim that survives pod recreation; scale to 0 stops it with SIGTERM; a recreated claim is empty', async (t) => {
  const { core, apps, runner, root } = ctx();
  const ns = await namespace('sts');
  await apps.createNamespacedStatefulSet({ namespace: ns, body: statefulSet('conn', {}, true) });

  const pod = await readyPod(ns, 'conn-0');
  t.is(pod.spec?.nodeName, NODE);
  t.is(pod.status?.phase, 'Running');
  t.is(pod.status?.podIP, '127.0.0.1');
  t.is(pod.status?.hostIP, '127.0.0.1');
  const status = pod.status?.containerStatuses?.[0];
  t.true(status?.ready);
  t.true(status?.started);
  t.truthy(status?.state?.running?.startedAt);
  for (const type of ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready']) {
    t.is(pod.status?.conditions?.find((c) => c.type === type)?.status, 'True', type);
  }

  const claim = await core.readNamespacedPersistentVolumeClaim({ namespace: ns, name: 'data-conn-0' });
  t.is(claim.status?.phase, 'Bound', 'the local provisioner made a volume and the PV controller bound it');
  const claimDir = join(root, 'claims', claim.metadata?.uid ?? '');
  const first = runner.describePod(ns, 'conn-0');
  t.is(first?.volumes.data, claimDir);
  t.is(await readFile(join(claimDir, 'boots'), 'utf8'), '1');
  const hostPort = first?.ports['8081'] ?? 0;
  t.not(hostPort, 8081, 'the listen port was moved to a free loopback port');
  t.is((await httpGet(hostPort, '/healthz')).status, 200);

  // Delete the pod: the StatefulSet controller recreates it, on the same claim.
  const firstPid = first?.pids[0] ?? 0;
  await core.deleteNamespacedPod({ namespace: ns, name: 'conn-0' });
  const second = await readyPod(ns, 'conn-0', pod.metadata?.uid);
  t.false(alive(firstPid), 'the first process is gone');
  t.is(await readFile(join(claimDir, 'boots'), 'utf8'), '2', 'the claim kept the data');
  const history = await runner.getLogs(ns, 'conn-0', { allInstances: true });
  t.regex(history, /"msg":"received SIGTERM"/);
  t.regex(history, /"boots":2/);

  // Scale to zero: SIGTERM, the process ends, the pod object goes away.
  const secondPid = runner.describePod(ns, 'conn-0')?.pids[0] ?? 0;
  t.true(alive(secondPid));
  await apps.patchNamespacedStatefulSetScale(
    { namespace: ns, name: 'conn', body: { spec: { replicas: 0 } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  await podGone(ns, 'conn-0', second.metadata?.uid ?? '');
  t.false(alive(secondPid));
  t.regex(await runner.getLogs(ns, 'conn-0'), /"msg":"received SIGTERM"/);

  // Delete the claim and scale up: a new claim (new UID) is a new, empty directory.
  await core.deleteNamespacedPersistentVolumeClaim({ namespace: ns, name: 'data-conn-0' });
  await eventually(
    async () => {
      try {
        await core.readNamespacedPersistentVolumeClaim({ namespace: ns, name: 'data-conn-0' });
        return false;
      } catch (error) {
        return statusOf(error) === 404;
      }
    },
    { description: 'claim deleted', timeoutMs: 30_000 },
  );
  await apps.patchNamespacedStatefulSetScale(
    { namespace: ns, name: 'conn', body: { spec: { replicas: 1 } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  await readyPod(ns, 'conn-0', second.metadata?.uid);
  const newClaim = await core.readNamespacedPersistentVolumeClaim({ namespace: ns, name: 'data-conn-0' });
  t.not(newClaim.metadata?.uid, claim.metadata?.uid);
  const newDir = join(root, 'claims', newClaim.metadata?.uid ?? '');
  t.is(runner.describePod(ns, 'conn-0')?.volumes.data, newDir);
  t.is(await readFile(join(newDir, 'boots'), 'utf8'), '1', 'identity loss: the new claim started empty');
  await eventually(async () => !(await exists(claimDir)), {
    description: 'the released volume of the deleted claim reclaimed',
    timeoutMs: 30_000,
  });
});

test('a provisioner reclaims only the Released volumes under its root, and counts its volumes left', async (t) => {
  // The scale benchmark waits on that count before its next phase (bench/scale.ts, reclaimVolumes).
  const { core } = ctx();
  const ns = await namespace('reclaim');
  const roots = [await mkdtemp(join(tmpdir(), 'reclaim-a-')), await mkdtemp(join(tmpdir(), 'reclaim-b-'))];
  t.teardown(() => Promise.all(roots.map((root) => rm(root, { recursive: true, force: true }))));
  const [mine, theirs] = roots.map((root) => new LocalProvisioner({ core, root, logger: silentLogger() }));
  const claims = await Promise.all(
    ['data-a', 'data-b'].map((name) =>
      core.createNamespacedPersistentVolumeClaim({
        namespace: ns,
        body: {
          metadata: { name },
          spec: {
            accessModes: ['ReadWriteOnce'],
            storageClassName: '',
            resources: { requests: { storage: '1Gi' } },
          },
        },
      }),
    ),
  );
  const [a, b] = claims;
  if (!mine || !theirs || !a || !b) throw new Error('two provisioners and two claims expected');
  await mine.provision(a);
  await theirs.provision(b);
  const dirOfA = claimDirectory(roots[0] ?? '', a.metadata?.uid ?? '');
  await mkdir(dirOfA, { recursive: true });
  await eventually(
    async () => {
      const phases = await Promise.all(
        ['data-a', 'data-b'].map((name) =>
          core.readNamespacedPersistentVolumeClaim({ namespace: ns, name }).then((c) => c.status?.phase),
        ),
      );
      return phases.every((phase) => phase === 'Bound');
    },
    { description: 'both claims bound by the PersistentVolume controller', timeoutMs: 30_000 },
  );
  t.is(await mine.reclaimReleased(), 1, 'a bound volume is left, not reclaimed');

  await core.deleteNamespacedPersistentVolumeClaim({ namespace: ns, name: 'data-a' });
  await eventually(async () => (await mine.reclaimReleased()) === 0, {
    description: 'the released volume reclaimed and gone',
    timeoutMs: 30_000,
  });
  t.false(await exists(dirOfA), 'its directory was removed');
  const gone = await core
    .readPersistentVolume({ name: `pvc-${a.metadata?.uid}` })
    .catch((error: unknown) => error);
  t.is(statusOf(gone), 404);
  t.is(await theirs.reclaimReleased(), 1, "another root's bound volume is still there");
  const other = await core.readPersistentVolume({ name: `pvc-${b.metadata?.uid}` });
  t.is(other.status?.phase, 'Bound');

  await core.deleteNamespacedPersistentVolumeClaim({ namespace: ns, name: 'data-b' });
  await eventually(async () => (await theirs.reclaimReleased()) === 0, {
    description: "the other root's volume reclaimed once released",
    timeoutMs: 30_000,
  });
});

test('emptyDir data does not survive the pod, and its directory is removed', async (t) => {
  const { core, apps, runner } = ctx();
  const ns = await namespace('empty');
  await apps.createNamespacedStatefulSet({
    namespace: ns,
    body: statefulSet('scratch', { volumes: [{ name: 'data', emptyDir: {} }] }, false),
  });
  const pod = await readyPod(ns, 'scratch-0');
  const dir = runner.describePod(ns, 'scratch-0')?.volumes.data ?? '';
  t.true(dir.includes(join('pods', pod.metadata?.uid ?? '', 'volumes', 'data')));
  t.is(await readFile(join(dir, 'boots'), 'utf8'), '1');
  await core.deleteNamespacedPod({ namespace: ns, name: 'scratch-0' });
  await readyPod(ns, 'scratch-0', pod.metadata?.uid);
  const newDir = runner.describePod(ns, 'scratch-0')?.volumes.data ?? '';
  t.not(newDir, dir);
  t.is(await readFile(join(newDir, 'boots'), 'utf8'), '1', 'a new pod starts with an empty emptyDir');
  t.false(await exists(dir), "the deleted pod's emptyDir was removed");
});

test('an optional Secret volume appears, changes and disappears in the process view, promptly', async (t) => {
  const { core, runner, logs } = ctx();
  const ns = await namespace('secret');
  const tokens = ['first-token-value-1f0c9a', 'second-token-value-77ab2e'];
  await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: 'tok', labels: CONNECTOR_LABELS },
      spec: {
        terminationGracePeriodSeconds: 5,
        containers: [
          fixtureContainer({
            args: ['--token-file=/var/run/enroll/token', '--listen=:8081'],
            volumeMounts: [{ name: 'enroll', mountPath: '/var/run/enroll', readOnly: true }],
          }),
        ],
        volumes: [{ name: 'enroll', secret: { secretName: 'enroll', optional: true, defaultMode: 0o400 } }],
      },
    },
  });
  await readyPod(ns, 'tok');
  const port = runner.describePod(ns, 'tok')?.ports['8081'] ?? 0;
  t.is((await httpGet(port, '/token')).status, 404, 'an absent optional Secret is an empty directory');

  await core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'enroll' }, stringData: { token: tokens[0] ?? '' } },
  });
  await eventually(async () => (await httpGet(port, '/token')).body === tokens[0], {
    description: 'the token appears',
    timeoutMs: 10_000,
  });
  await core.replaceNamespacedSecret({
    namespace: ns,
    name: 'enroll',
    body: { metadata: { name: 'enroll' }, stringData: { token: tokens[1] ?? '' } },
  });
  await eventually(async () => (await httpGet(port, '/token')).body === tokens[1], {
    description: 'the token changes',
    timeoutMs: 10_000,
  });
  await core.deleteNamespacedSecret({ namespace: ns, name: 'enroll' });
  await eventually(async () => (await httpGet(port, '/token')).status === 404, {
    description: 'the token disappears',
    timeoutMs: 10_000,
  });
  const volume = runner.describePod(ns, 'tok')?.volumes.enroll ?? '';
  t.true(volume.length > 0);
  assertNoSecrets(t, 'pod runner logs', logs.text(), tokens);
  assertNoSecrets(t, 'pod log', await runner.getLogs(ns, 'tok'), tokens);
});

test('a container exiting 10 reports exit code and termination message, restarts with CrashLoopBackOff; with restartPolicy Never the pod fails', async (t) => {
  const { core } = ctx();
  const ns = await namespace('crash');
  const message = JSON.stringify({
    failureClass: 'IdentityLoss',
    code: 'IDENTITY_LOST',
    reason: 'enrolled before, no identity now',
    nextStep: 'guided recovery',
  });
  const crashing = (name: string, restartPolicy: string): V1Pod => ({
    metadata: { name, labels: CONNECTOR_LABELS },
    spec: {
      restartPolicy,
      terminationGracePeriodSeconds: 5,
      containers: [
        fixtureContainer({
          readinessProbe: undefined,
          livenessProbe: undefined,
          env: [
            { name: 'EXIT_CODE', value: '10' },
            { name: 'TERMINATION_MESSAGE', value: message },
          ],
        }),
      ],
      volumes: [{ name: 'data', emptyDir: {} }],
    },
  });
  await core.createNamespacedPod({ namespace: ns, body: crashing('loop', 'Always') });
  await core.createNamespacedPod({ namespace: ns, body: crashing('once', 'Never') });

  const backingOffPod = await eventually(
    async () => {
      const pod = await core.readNamespacedPod({ namespace: ns, name: 'loop' });
      const status = pod.status?.containerStatuses?.[0];
      return status?.state?.waiting?.reason === 'CrashLoopBackOff' && pod;
    },
    { description: 'waiting reason CrashLoopBackOff', timeoutMs: 30_000 },
  );
  const backingOff = backingOffPod.status?.containerStatuses?.[0];
  t.regex(
    backingOff?.state?.waiting?.message ?? '',
    /^back-off \d+m?s restarting failed container=agent pod=loop_/,
  );
  t.is(backingOffPod.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'False');
  t.is(backingOff?.lastState?.terminated?.exitCode, 10);
  t.is(backingOff?.lastState?.terminated?.message, message);
  t.is(backingOff?.lastState?.terminated?.reason, 'Error');
  t.false(backingOff?.ready);
  const restarted = await eventually(
    async () => {
      const pod = await core.readNamespacedPod({ namespace: ns, name: 'loop' });
      const status = pod.status?.containerStatuses?.[0];
      return (status?.restartCount ?? 0) >= 2 && pod;
    },
    { description: 'restartCount grows', timeoutMs: 30_000 },
  );
  t.is(restarted.status?.phase, 'Running', 'restartPolicy Always keeps the pod Running');

  const failed = await eventually(
    async () => {
      const pod = await core.readNamespacedPod({ namespace: ns, name: 'once' });
      return pod.status?.phase === 'Failed' && pod;
    },
    { description: 'restartPolicy Never: phase Failed', timeoutMs: 30_000 },
  );
  const terminated = failed.status?.containerStatuses?.[0]?.state?.terminated;
  t.is(terminated?.exitCode, 10);
  t.is(terminated?.message, message);
  t.is(failed.status?.containerStatuses?.[0]?.restartCount, 0);

  const events = await core.listNamespacedEvent({ namespace: ns });
  t.true(
    events.items.some((event) => event.reason === 'BackOff' && event.involvedObject.name === 'loop'),
    'a BackOff event is recorded',
  );
});

test('an image with no local command waits with ImageNotRunnableLocally naming the image', async (t) => {
  const { core } = ctx();
  const ns = await namespace('image');
  await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: 'web', labels: CONNECTOR_LABELS },
      spec: { containers: [{ name: 'web', image: 'registry.invalid/web:2' }] },
    },
  });
  const status = await eventually(
    async () => {
      const pod = await core.readNamespacedPod({ namespace: ns, name: 'web' });
      const container = pod.status?.containerStatuses?.[0];
      return container?.state?.waiting?.reason === 'ImageNotRunnableLocally' && pod.status;
    },
    { description: 'ImageNotRunnableLocally', timeoutMs: 20_000 },
  );
  t.is(status.phase, 'Pending');
  t.regex(status.containerStatuses?.[0]?.state?.waiting?.message ?? '', /registry\.invalid\/web:2/);
});

test('a second runner: a Pending claim without provisioning and a hostPath outside the root fail to mount clearly; stop() leaves no process', async (t) => {
  const { kc, core } = ctx();
  const ns = await namespace('own');
  const root = await mkdtemp(join(tmpdir(), 'pod-runner-b-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const selector = { 'app.kubernetes.io/name': 'second-runner' };
  const runner = new PodRunner({
    kubeConfig: kc,
    rootDir: root,
    logger: captureLogs('pod-runner-b', 'warn').logger,
    nodeName: 'vaultpam-local-node-b',
    namespace: ns,
    labelSelector: 'app.kubernetes.io/name=second-runner',
    resolveCommand: resolveFixture,
    provisionClaims: false,
    probePeriodMs: 200,
  });
  t.teardown(() => runner.stop());
  await runner.start();

  await core.createNamespacedPersistentVolumeClaim({
    namespace: ns,
    body: {
      metadata: { name: 'pending' },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    },
  });
  const pod = (name: string, volume: V1PodSpec['volumes']): V1Pod => ({
    metadata: { name, labels: selector },
    spec: { terminationGracePeriodSeconds: 5, containers: [fixtureContainer()], volumes: volume },
  });
  await core.createNamespacedPod({
    namespace: ns,
    body: pod('waits', [{ name: 'data', persistentVolumeClaim: { claimName: 'pending' } }]),
  });
  await core.createNamespacedPod({
    namespace: ns,
    body: pod('escapes', [{ name: 'data', hostPath: { path: '/etc' } }]),
  });
  await core.createNamespacedPod({ namespace: ns, body: pod('runs', [{ name: 'data', emptyDir: {} }]) });

  const mountFailure = async (name: string) =>
    eventually(
      async () => {
        const current = await core.readNamespacedPod({ namespace: ns, name });
        const condition = current.status?.conditions?.find((c) => c.type === 'PodReadyToStartContainers');
        return condition?.reason === 'FailedMount' && current;
      },
      { description: `${name}: FailedMount`, timeoutMs: 20_000 },
    );
  const waits = await mountFailure('waits');
  t.is(waits.spec?.nodeName, 'vaultpam-local-node-b');
  t.is(waits.status?.phase, 'Pending');
  t.regex(
    waits.status?.conditions?.find((c) => c.type === 'PodReadyToStartContainers')?.message ?? '',
    /persistentvolumeclaim "pending" is Pending, not Bound/,
  );
  const escapes = await mountFailure('escapes');
  t.regex(
    escapes.status?.conditions?.find((c) => c.type === 'PodReadyToStartContainers')?.message ?? '',
    /hostPath \/etc is outside the local pod runner's root/,
  );
  const events = await core.listNamespacedEvent({ namespace: ns });
  t.true(
    events.items.some((event) => event.reason === 'FailedMount' && event.involvedObject.name === 'waits'),
  );

  await readyPod(ns, 'runs');
  const pids = runner.pids();
  t.is(pids.length, 1, 'only the pod with its volumes set up runs a process');
  t.true(pids.every(alive));
  await runner.stop();
  t.deepEqual(pids.filter(alive), [], 'stop() leaves no process behind');
  t.deepEqual(runner.pids(), []);
  // The pod itself stays in the API, as with a stopped kubelet.
  t.truthy(await core.readNamespacedPod({ namespace: ns, name: 'runs' }));
});
