// The fleet of the scale benchmark (bench/scale.ts), one process: a node and the connector agents
// its pods run, without a process per pod.
//
// Node: a Node object with its Lease kept fresh (dev/local-cluster/node-agent.ts); every pod of the
// benchmark namespace is bound to it once its claims are Bound (a Pending claim gets a pre-bound
// volume from the local provisioner, as under the local pod runner) and run as a simulated pod
// (bench/fleet-pod.ts): its agent container starts when the pod is bound, follows the pod (deleted: the agent stops; a new pod, as
// the StatefulSet controller makes after a scale-up or a rolling restart: a new agent starts and
// reads the token Secret as it stands then), is probed for readiness, and is restarted with the
// kubelet's backoff when it fails closed, with its exit code and termination message in the pod's
// status. Data volumes (claims) outlive pods, so a restarted agent finds its identity.
//
// Agents (bench/fleet-agent.ts): the reference agent's rules in memory: pair once with the mounted
// token, heartbeat over mTLS at the interval the control plane answers, renew the certificate when
// it falls due, reconnect with a persisted identity, fail closed when it is lost.
//
// Commands from the parent (IPC): `silence` / `resume` (a network partition of those connectors:
// no heartbeat reaches the control plane until resumed), `fail-path` / `heal-path` (their heartbeats
// report one unhealthy path, as an agent that cannot reach a target does, until healed),
// `lose-identity` (the key and certificate
// vanish from their data volumes, identity.json stays: the agent fails closed at its next heartbeat
// and needs a guided recovery), `stop`. Stats go to the parent every second.
//
// Traffic goes to loopback only (the local API server and the control plane). Started by
// bench/scale.ts with fork(): configuration in BENCH_FLEET (JSON). It exits when the parent says
// stop, disconnects, or dies.
import { readFileSync } from 'node:fs';
import {
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  type V1ConfigMap,
  type V1PersistentVolumeClaim,
  type V1Pod,
  type V1Secret,
  Watch,
} from '@kubernetes/client-node';
import { LocalProvisioner } from '../dev/local-cluster/local-provisioner.ts';
import { NodeAgent } from '../dev/local-cluster/node-agent.ts';
import { reuseConnections } from '../src/lib/client-node-connections.ts';
import { systemClock } from '../src/lib/clock.ts';
import { errorMessage } from '../src/lib/errors.ts';
import { silentLogger } from '../src/lib/logger.ts';
import type { AgentCounters, Disk } from './fleet-agent.ts';
import { type NodeContext, type PodCounters, PodSim } from './fleet-pod.ts';

export interface FleetConfig {
  kubeconfig: string;
  namespace: string;
  caFile: string;
  nodeName: string;
  /** Where the provisioned volumes say they live (hostPath; nothing is written there). */
  volumeRoot: string;
  /** Enrollments (key generation + request) at once. */
  enrollConcurrency: number;
}

export type FleetCommand =
  | { type: 'silence'; ids: string[] }
  | { type: 'resume'; ids: string[] }
  | { type: 'fail-path'; ids: string[] }
  | { type: 'heal-path'; ids: string[] }
  | { type: 'lose-identity'; ids: string[] }
  | { type: 'stop' };

export interface FleetStats extends AgentCounters, PodCounters {
  type: 'stats';
  silenced: number;
  resumed: number;
  pathsFailed: number;
  pathsHealed: number;
  identitiesLost: number;
  /** Pods whose agent container runs now, and of them those the node reports Ready. */
  podsRunning: number;
  podsReady: number;
}

const config = JSON.parse(process.env.BENCH_FLEET ?? '') as FleetConfig;
const caPem = readFileSync(config.caFile, 'utf8');
const kc = new KubeConfig();
kc.loadFromFile(config.kubeconfig);
// A kubelet keeps its connection to the API server; without this, every pod status and lease
// renewal of the simulated node made a TLS handshake (docs/performance.md).
reuseConnections(kc);
const core = kc.makeApiClient(CoreV1Api);
const stats: FleetStats = {
  type: 'stats',
  enrolled: 0,
  enrollFailures: 0,
  heartbeats: 0,
  heartbeatFailures: 0,
  heartbeatsHeld: 0,
  renewals: 0,
  renewalFailures: 0,
  silenced: 0,
  resumed: 0,
  pathsFailed: 0,
  pathsHealed: 0,
  identitiesLost: 0,
  podsBound: 0,
  agentsStarted: 0,
  agentsStopped: 0,
  containerRestarts: 0,
  exits: {},
  podStatusWrites: 0,
  podsWaitedForClaims: 0,
  claimWaitMaxMs: 0,
  claimWaitTotalMs: 0,
  podsRunning: 0,
  podsReady: 0,
};
let stopping = false;

// Enrollment slots: key generation and the enroll request are the costly part of a cold fleet.
let running = 0;
const waiting: Array<() => void> = [];
async function slot<T>(work: () => Promise<T>): Promise<T> {
  if (running >= config.enrollConcurrency) await new Promise<void>((go) => waiting.push(go));
  running += 1;
  try {
    return await work();
  } finally {
    running -= 1;
    waiting.shift()?.();
  }
}

// The Secrets and ConfigMaps of the namespace, as their watches show them (the kubelet's watch-based
// object manager); one the watch has not shown yet is read from the API.
const secrets = new Map<string, V1Secret>();
const configMaps = new Map<string, V1ConfigMap>();
const claims = new Map<string, V1PersistentVolumeClaim>();
const provisioner = new LocalProvisioner({ core, root: config.volumeRoot, logger: silentLogger() });
const provisioned = new Set<string>();
// Pods waiting for a claim to bind, by claim (namespace/name): retried at its next change.
const claimWaiters = new Map<string, Array<() => void>>();
async function cachedOrRead<T>(cache: Map<string, T>, name: string, read: () => Promise<T>) {
  const cached = cache.get(name);
  if (cached) return cached;
  try {
    return await read();
  } catch (error) {
    if ((error as { code?: number }).code === 404) return undefined;
    throw error;
  }
}

const silent = new Set<string>();
const failingPaths = new Set<string>();
const disks = new Map<string, Disk>();
const diskOfConnector = new Map<string, string>();
const pods = new Map<string, PodSim>();
const context: NodeContext = {
  core,
  nodeName: config.nodeName,
  caPem,
  secret: (namespace, name) =>
    cachedOrRead(secrets, name, () => core.readNamespacedSecret({ namespace, name })),
  configMap: (namespace, name) =>
    cachedOrRead(configMaps, name, () => core.readNamespacedConfigMap({ namespace, name })),
  claim: (namespace, name) =>
    cachedOrRead(claims, name, () => core.readNamespacedPersistentVolumeClaim({ namespace, name })),
  async provision(claim) {
    const uid = claim.metadata?.uid ?? '';
    if (provisioned.has(uid)) return;
    provisioned.add(uid);
    await provisioner.provision(claim).catch((error: unknown) => {
      provisioned.delete(uid);
      throw error;
    });
  },
  onClaimChange(keys, retry) {
    // A claim that bound while the pod was looking (its event already handled) retries now.
    const bound = keys.some((key) => claims.get(key.split('/')[1] ?? '')?.status?.phase === 'Bound');
    if (bound) {
      setImmediate(retry);
      return;
    }
    for (const key of keys) claimWaiters.set(key, [...(claimWaiters.get(key) ?? []), retry]);
  },
  disks,
  diskOfConnector,
  silent: (id) => silent.has(id),
  pathFailing: (id) => failingPaths.has(id),
  slot,
  stats,
};

function onPod(type: string, pod: V1Pod): void {
  const uid = pod.metadata?.uid ?? '';
  if (type === 'DELETED') {
    pods.get(uid)?.gone();
    pods.delete(uid);
    return;
  }
  let sim = pods.get(uid);
  if (!sim) {
    sim = new PodSim(context, pod);
    pods.set(uid, sim);
  }
  sim.update(pod);
}

/** A watch that starts again (with a fresh list of ADDED events) whenever it ends. */
async function keepWatching(path: string, handle: (type: string, object: never) => void) {
  const watch = new Watch(kc);
  const start = async (): Promise<void> => {
    if (stopping) return;
    await watch
      .watch(
        path,
        {},
        (type, object) => {
          try {
            handle(type, object as never);
          } catch (error) {
            stats.lastError = errorMessage(error);
          }
        },
        () => {
          if (!stopping) setTimeout(start, 500);
        },
      )
      .catch(() => {
        if (!stopping) setTimeout(start, 1_000);
      });
  };
  await start();
}

function cacheEvents<T extends V1Secret | V1ConfigMap | V1PersistentVolumeClaim>(
  cache: Map<string, T>,
  changed?: (name: string) => void,
) {
  return (type: string, object: T) => {
    const name = object.metadata?.name ?? '';
    if (type === 'DELETED') cache.delete(name);
    else cache.set(name, object);
    changed?.(name);
  };
}

function claimChanged(name: string): void {
  const key = `${config.namespace}/${name}`;
  const waiters = claimWaiters.get(key);
  if (!waiters) return;
  claimWaiters.delete(key);
  for (const retry of waiters) retry();
}

function stop(): never {
  stopping = true;
  for (const sim of pods.values()) sim.gone();
  process.exit(0);
}

process.on('message', (message: FleetCommand) => {
  if (message.type === 'stop') stop();
  if (message.type === 'silence') {
    for (const id of message.ids) silent.add(id);
    stats.silenced += message.ids.length;
  }
  if (message.type === 'resume') {
    for (const id of message.ids) silent.delete(id);
    stats.resumed += message.ids.length;
  }
  if (message.type === 'fail-path') {
    for (const id of message.ids) failingPaths.add(id);
    stats.pathsFailed += message.ids.length;
  }
  if (message.type === 'heal-path') {
    for (const id of message.ids) failingPaths.delete(id);
    stats.pathsHealed += message.ids.length;
  }
  if (message.type === 'lose-identity') {
    // The key and certificate vanish from the data volume; identity.json (the serial) stays.
    for (const id of message.ids) {
      const disk = disks.get(diskOfConnector.get(id) ?? '');
      if (!disk?.keyPem) continue;
      delete disk.keyPem;
      delete disk.certPem;
      stats.identitiesLost += 1;
    }
  }
});
process.on('disconnect', stop);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

const node = new NodeAgent({
  core,
  coordination: kc.makeApiClient(CoordinationV1Api),
  nodeName: config.nodeName,
  clock: systemClock,
  logger: silentLogger(),
  version: 'v0.0.0-bench',
});
await node.start();
await keepWatching(`/api/v1/namespaces/${config.namespace}/secrets`, cacheEvents(secrets));
await keepWatching(`/api/v1/namespaces/${config.namespace}/configmaps`, cacheEvents(configMaps));
await keepWatching(
  `/api/v1/namespaces/${config.namespace}/persistentvolumeclaims`,
  cacheEvents(claims, claimChanged),
);
await keepWatching(`/api/v1/namespaces/${config.namespace}/pods`, onPod);
setInterval(() => {
  let runningNow = 0;
  let readyNow = 0;
  for (const sim of pods.values()) {
    if (sim.running) runningNow += 1;
    if (sim.ready) readyNow += 1;
  }
  stats.podsRunning = runningNow;
  stats.podsReady = readyNow;
  process.send?.(stats);
}, 1_000);
process.send?.({ type: 'ready' });
