// The fleet of the scale benchmark (bench/scale.ts), one process: N simulated agents and one node.
//
// Agents: each connector's enrollment-token Secret (read with the admin kubeconfig, as a pod mounts
// it) is watched; for each token the agent makes a key and CSR, enrolls over HTTPS with the real
// agent client (src/agent/control-plane-client.ts), then heartbeats over mTLS with the issued
// certificate at the interval the control plane answers (10 s in the benchmark). On the parent's
// {type: 'silence', ids} message those agents stop heartbeating (the control plane then marks them
// offline). Nothing renews: a benchmark run is far shorter than a certificate's lifetime.
//
// Node: a Node object with its Lease kept fresh (dev/local-cluster/node-agent.ts), and every pod of
// the benchmark namespace bound to it and marked Running and Ready as the local pod runner writes
// it (dev/local-cluster/pod-status.ts), without starting a process. A deleted pod is removed at
// once, as a kubelet does after its containers stopped.
//
// Traffic goes to loopback only (the local API server and the control plane). Started by
// bench/scale.ts with fork(): configuration in BENCH_FLEET (JSON), stats to the parent over IPC.
// It exits when the parent says stop, disconnects, or dies.
import { readFileSync } from 'node:fs';
import {
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
  type V1Secret,
  Watch,
} from '@kubernetes/client-node';
import { NodeAgent } from '../dev/local-cluster/node-agent.ts';
import { buildPodStatus, isoSeconds, type PodView } from '../dev/local-cluster/pod-status.ts';
import { ControlPlaneClient } from '../src/agent/control-plane-client.ts';
import { systemClock } from '../src/lib/clock.ts';
import { errorMessage } from '../src/lib/errors.ts';
import { silentLogger } from '../src/lib/logger.ts';
import { createCsrPem, generateKeyPairPem } from '../src/lib/pki.ts';

export interface FleetConfig {
  kubeconfig: string;
  namespace: string;
  controlPlaneUrl: string;
  caFile: string;
  nodeName: string;
  /** Enrollments (key generation + request) at once. */
  enrollConcurrency: number;
}

export type FleetCommand = { type: 'silence'; ids: string[] } | { type: 'stop' };

export interface FleetStats {
  type: 'stats';
  enrolled: number;
  enrollFailures: number;
  heartbeats: number;
  heartbeatFailures: number;
  silenced: number;
  podsBound: number;
  podsMarkedReady: number;
  lastError?: string;
}

const CONNECTOR_ID_ANNOTATION = 'vaultpam.io/connector-id';
const config = JSON.parse(process.env.BENCH_FLEET ?? '') as FleetConfig;
const caPem = readFileSync(config.caFile, 'utf8');
const kc = new KubeConfig();
kc.loadFromFile(config.kubeconfig);
const core = kc.makeApiClient(CoreV1Api);
const stats: FleetStats = {
  type: 'stats',
  enrolled: 0,
  enrollFailures: 0,
  heartbeats: 0,
  heartbeatFailures: 0,
  silenced: 0,
  podsBound: 0,
  podsMarkedReady: 0,
};
let stopping = false;

interface SimAgent {
  id: string;
  token: string;
  client?: ControlPlaneClient;
  timer?: NodeJS.Timeout;
  silent: boolean;
  enrolling: boolean;
}
const agents = new Map<string, SimAgent>();

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

function failed(counter: 'enrollFailures' | 'heartbeatFailures', error: unknown) {
  stats[counter] += 1;
  stats.lastError = errorMessage(error);
}

async function enroll(agent: SimAgent): Promise<void> {
  agent.enrolling = true;
  const token = agent.token;
  try {
    await slot(async () => {
      const { privateKeyPem } = await generateKeyPairPem('ec-p256');
      const client = new ControlPlaneClient({
        baseUrl: config.controlPlaneUrl,
        caPem,
        caFile: config.caFile,
        requestTimeoutMs: 30_000,
        clock: systemClock,
      });
      const answer = await client
        .enroll({ connectorId: agent.id, token, csrPem: createCsrPem(privateKeyPem, agent.id) })
        .catch((error: unknown) => {
          client.close();
          throw error;
        });
      client.setIdentity({ keyPem: privateKeyPem, certPem: answer.certificatePem });
      agent.client?.close();
      agent.client = client;
      stats.enrolled += 1;
      beat(agent, answer.heartbeatIntervalSeconds * 1000);
    });
  } catch (error) {
    // A token that was re-minted meanwhile arrives as a new Secret event and is tried then.
    failed('enrollFailures', error);
  } finally {
    agent.enrolling = false;
  }
}

function beat(agent: SimAgent, intervalMs: number): void {
  if (stopping || agent.silent || !agent.client) return;
  const client = agent.client;
  client.heartbeat({ paths: [], agentVersion: 'bench-fleet' }).then(
    (answer) => {
      stats.heartbeats += 1;
      schedule(agent, answer.heartbeatIntervalSeconds * 1000);
    },
    (error: unknown) => {
      failed('heartbeatFailures', error);
      schedule(agent, intervalMs);
    },
  );
}

function schedule(agent: SimAgent, intervalMs: number): void {
  if (stopping || agent.silent) return;
  agent.timer = setTimeout(() => beat(agent, intervalMs), intervalMs);
}

function onSecret(secret: V1Secret): void {
  const id = secret.metadata?.annotations?.[CONNECTOR_ID_ANNOTATION];
  const encoded = secret.data?.token;
  if (!id || !encoded) return;
  const token = Buffer.from(encoded, 'base64').toString('utf8').trim();
  const agent = agents.get(id) ?? { id, token, silent: false, enrolling: false };
  agents.set(id, agent);
  // A pod that already holds an identity ignores a new token, as the agent does.
  if (agent.client || agent.enrolling || agent.silent) return;
  agent.token = token;
  void enroll(agent);
}

// The node: bind each new pod, then report it Running and Ready as a kubelet would.
const marked = new Set<string>();
async function onPod(type: string, pod: V1Pod): Promise<void> {
  const name = pod.metadata?.name ?? '';
  const uid = pod.metadata?.uid ?? '';
  if (type === 'DELETED') {
    marked.delete(uid);
    return;
  }
  if (pod.metadata?.deletionTimestamp) {
    await core
      .deleteNamespacedPod({
        name,
        namespace: config.namespace,
        gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid } },
      })
      .catch(() => {});
    return;
  }
  if (!pod.spec?.nodeName) {
    await core.createNamespacedPodBinding({
      name,
      namespace: config.namespace,
      body: {
        metadata: { name, namespace: config.namespace },
        target: { apiVersion: 'v1', kind: 'Node', name: config.nodeName },
      },
    });
    stats.podsBound += 1;
    return; // the binding's own MODIFIED event brings the pod back with its node
  }
  if (pod.spec.nodeName !== config.nodeName || marked.has(uid)) return;
  marked.add(uid);
  const now = systemClock.now();
  const startedAt = isoSeconds(now);
  const view: PodView = {
    volumes: { ready: true },
    containers: (pod.spec.containers ?? []).map((container) => ({
      name: container.name,
      image: container.image ?? '',
      containerID: `bench://${uid}/${container.name}`,
      state: { running: { startedAt } },
      restartCount: 0,
      ready: true,
      started: true,
    })),
    startTime: startedAt,
  };
  await core.patchNamespacedPodStatus(
    {
      name,
      namespace: config.namespace,
      body: { metadata: { uid }, status: buildPodStatus(pod, view, now) },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  stats.podsMarkedReady += 1;
}

/** A watch that starts again (with a fresh list of ADDED events) whenever it ends. */
async function keepWatching(path: string, handle: (type: string, object: never) => void | Promise<void>) {
  const watch = new Watch(kc);
  const start = async (): Promise<void> => {
    if (stopping) return;
    await watch
      .watch(
        path,
        {},
        (type, object) => {
          Promise.resolve(handle(type, object as never)).catch((error: unknown) => {
            stats.lastError = errorMessage(error);
          });
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

function stop(): never {
  stopping = true;
  for (const agent of agents.values()) {
    clearTimeout(agent.timer);
    agent.client?.close();
  }
  process.exit(0);
}

process.on('message', (message: FleetCommand) => {
  if (message.type === 'stop') stop();
  if (message.type === 'silence') {
    for (const id of message.ids) {
      const agent = agents.get(id) ?? { id, token: '', silent: true, enrolling: false };
      agents.set(id, agent);
      agent.silent = true;
      clearTimeout(agent.timer);
      agent.client?.close();
      stats.silenced += 1;
    }
    process.send?.({ type: 'silenced', ids: message.ids, at: Date.now() });
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
await keepWatching(`/api/v1/namespaces/${config.namespace}/secrets`, (type, secret: V1Secret) => {
  if (type !== 'DELETED') onSecret(secret);
});
await keepWatching(`/api/v1/namespaces/${config.namespace}/pods`, (type, pod: V1Pod) => onPod(type, pod));
setInterval(() => process.send?.(stats), 1_000);
process.send?.({ type: 'ready' });
