// One pod on the scale benchmark's simulated node (bench/fleet-simulator.ts): what the scheduler and
// a kubelet do with a connector pod, without a process. It binds the pod to the node once its
// claims are Bound (as the scheduler's volume binding waits for them; a Pending claim is given a
// volume by the local provisioner, dev/local-cluster/local-provisioner.ts, as the local pod runner
// does); starts the agent's
// container as a simulated agent (bench/fleet-agent.ts) with the environment the kubelet would give
// it (dev/local-cluster/container-spec.ts resolves it from the ConfigMaps and Secrets, and the
// agent's own parser reads it), the token file from the Secret volume as it stands at the start,
// and the data volume's content, which outlives the pod when it is a claim; probes readiness with
// the pod's readinessProbe period and failure threshold against the agent's own readiness rule;
// when the agent exits, reports the container terminated with its exit code and termination
// message (the operator reads them) and restarts it after the kubelet's CrashLoopBackOff delay
// (dev/local-cluster/crash-backoff.ts); and when the pod is deleted, stops the agent and removes
// the pod at once, as a kubelet does once its containers stopped. Status is written the way the
// local pod runner writes it (dev/local-cluster/pod-status.ts), one write at a time, only changes.
//
// Simplified, and said so: a container starts at once (no image pull, no startup probe wait), its
// first readiness probe runs at the start and then every period; the data directory is the volume
// mounted at the agent's --data-dir (a claim by namespace/name; anything else dies with the pod).
import { basename, dirname } from 'node:path';
import {
  type CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
  type V1Container,
  type V1PersistentVolumeClaim,
  type V1Pod,
  type V1Secret,
} from '@kubernetes/client-node';
import { resolveEnvironment } from '../dev/local-cluster/container-spec.ts';
import {
  type BackoffStreak,
  KUBELET_CRASH_BACKOFF,
  nextRestartDelay,
} from '../dev/local-cluster/crash-backoff.ts';
import {
  buildPodStatus,
  isoSeconds,
  type PodStatusBody,
  type PodView,
  type TerminatedInfo,
} from '../dev/local-cluster/pod-status.ts';
import { type AgentConfig, parseAgentCommandLine } from '../src/agent/config.ts';
import { type AgentFailure, formatTerminationMessage, isAgentFailure } from '../src/agent/failure.ts';
import { errorMessage } from '../src/lib/errors.ts';
import { type AgentCounters, type AgentExit, type Disk, SimAgent } from './fleet-agent.ts';

/** What the node's pods share: the API, the object caches, the volumes, the fleet's switches. */
export interface NodeContext {
  core: CoreV1Api;
  nodeName: string;
  caPem: string;
  /** The Secret or ConfigMap as the watch last showed it; read from the API when the watch has not. */
  secret(namespace: string, name: string): Promise<V1Secret | undefined>;
  configMap(namespace: string, name: string): Promise<V1ConfigMap | undefined>;
  claim(namespace: string, name: string): Promise<V1PersistentVolumeClaim | undefined>;
  /** Gives a Pending claim a volume (once per claim), for the PersistentVolume controller to bind. */
  provision(claim: V1PersistentVolumeClaim): Promise<void>;
  /** Calls `retry` at the next change of any of the claims (namespace/name). */
  onClaimChange(claims: string[], retry: () => void): void;
  /** Data volumes by claim (namespace/name) or, for a volume that dies with the pod, pod UID/volume. */
  disks: Map<string, Disk>;
  /** The data volume each connector id's agent last started with. */
  diskOfConnector: Map<string, string>;
  silent(connectorId: string): boolean;
  pathFailing(connectorId: string): boolean;
  slot: <T>(work: () => Promise<T>) => Promise<T>;
  stats: PodCounters & AgentCounters;
}

export interface PodCounters {
  podsBound: number;
  agentsStarted: number;
  agentsStopped: number;
  containerRestarts: number;
  /** Agent exits by code (the failure's code, or the exit code without one). */
  exits: Record<string, number>;
  podStatusWrites: number;
  /** Pods that waited for a claim to bind before the node took them, and the longest and total wait. */
  podsWaitedForClaims: number;
  claimWaitMaxMs: number;
  claimWaitTotalMs: number;
}

interface ContainerNow {
  name: string;
  image: string;
  state: PodView['containers'][number]['state'];
  lastTerminated?: TerminatedInfo;
  restartCount: number;
  ready: boolean;
  startedAt: Date;
}

function statusCode(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

export class PodSim {
  private pod: V1Pod;
  private readonly ctx: NodeContext;
  private readonly uid: string;
  private container: ContainerNow | undefined;
  private agent: SimAgent | undefined;
  private probe: NodeJS.Timeout | undefined;
  private restart: NodeJS.Timeout | undefined;
  private probeFailures = 0;
  private streak: BackoffStreak = { restarts: 0 };
  private startTime: string | undefined;
  private binding = false;
  private scheduling = false;
  private waitingSince: number | undefined;
  private starting = false;
  private terminating = false;
  private removed = false;
  private writing: Promise<void> | undefined;
  private dirty = false;
  private lastWritten: PodStatusBody | undefined;
  private lastWrittenText: string | undefined;

  constructor(ctx: NodeContext, pod: V1Pod) {
    this.ctx = ctx;
    this.pod = pod;
    this.uid = pod.metadata?.uid ?? '';
  }

  get running(): boolean {
    return this.container !== undefined && 'running' in this.container.state;
  }

  get ready(): boolean {
    return this.container?.ready === true;
  }

  /** A watch event for this pod (same UID). */
  update(pod: V1Pod): void {
    this.pod = pod;
    if (this.removed || this.terminating) return;
    if (!pod.spec?.nodeName) {
      if (!this.binding && !this.scheduling) void this.schedule();
      return;
    }
    if (pod.spec.nodeName !== this.ctx.nodeName) return;
    if (pod.metadata?.deletionTimestamp) {
      void this.terminate();
      return;
    }
    if (!this.startTime && !this.starting) {
      this.startTime = isoSeconds(new Date());
      void this.startContainer();
    }
  }

  /** The pod is gone from the API. */
  gone(): void {
    this.removed = true;
    this.stopAgent();
  }

  /** Binds the pod once every claim it mounts is Bound; until then waits for the claims to change. */
  private async schedule(): Promise<void> {
    this.scheduling = true;
    try {
      const namespace = this.pod.metadata?.namespace ?? '';
      const unbound: string[] = [];
      for (const volume of this.pod.spec?.volumes ?? []) {
        const name = volume.persistentVolumeClaim?.claimName;
        if (!name) continue;
        const claim = await this.ctx.claim(namespace, name);
        if (claim?.status?.phase === 'Bound') continue;
        unbound.push(`${namespace}/${name}`);
        if (claim && !claim.spec?.volumeName) await this.ctx.provision(claim);
      }
      if (unbound.length > 0) {
        this.waitingSince ??= Date.now();
        this.ctx.onClaimChange(unbound, () => this.update(this.pod));
        return;
      }
      if (this.waitingSince !== undefined) {
        const waited = Date.now() - this.waitingSince;
        this.waitingSince = undefined;
        this.ctx.stats.podsWaitedForClaims += 1;
        this.ctx.stats.claimWaitTotalMs += waited;
        this.ctx.stats.claimWaitMaxMs = Math.max(this.ctx.stats.claimWaitMaxMs, waited);
      }
      await this.bind();
    } catch (error) {
      this.ctx.stats.lastError = `schedule ${this.pod.metadata?.name}: ${errorMessage(error)}`;
      setTimeout(() => this.update(this.pod), 1_000);
    } finally {
      this.scheduling = false;
    }
  }

  private async bind(): Promise<void> {
    this.binding = true;
    const name = this.pod.metadata?.name ?? '';
    const namespace = this.pod.metadata?.namespace ?? '';
    try {
      await this.ctx.core.createNamespacedPodBinding({
        name,
        namespace,
        body: {
          metadata: { name, namespace },
          target: { apiVersion: 'v1', kind: 'Node', name: this.ctx.nodeName },
        },
      });
      this.ctx.stats.podsBound += 1;
    } catch (error) {
      // 409: bound meanwhile; 404: deleted meanwhile. The watch brings the rest.
      if (statusCode(error) !== 409 && statusCode(error) !== 404) {
        this.ctx.stats.lastError = `bind ${name}: ${errorMessage(error)}`;
        this.binding = false;
      }
    }
  }

  private agentContainer(): V1Container | undefined {
    return this.pod.spec?.containers?.[0];
  }

  /** Starts (or restarts) the agent container; a start that cannot be made is retried in a second. */
  private async startContainer(): Promise<void> {
    const container = this.agentContainer();
    if (!container || this.removed || this.terminating) return;
    this.starting = true;
    try {
      const started = await this.prepare(container);
      if (this.removed || this.terminating) return;
      const restartCount = this.container
        ? this.container.restartCount + (this.container.lastTerminated ? 1 : 0)
        : 0;
      this.container = {
        name: container.name,
        image: container.image ?? '',
        state: { running: { startedAt: isoSeconds(new Date()) } },
        ...(this.container?.lastTerminated ? { lastTerminated: this.container.lastTerminated } : {}),
        restartCount,
        ready: false,
        startedAt: new Date(),
      };
      if (restartCount > 0) this.ctx.stats.containerRestarts += 1;
      if ('failure' in started) {
        // The agent refused its configuration (exit 12, with its termination message).
        this.exited({ exitCode: started.failure.exitCode, failure: started.failure });
        return;
      }
      this.ctx.stats.agentsStarted += 1;
      this.agent = new SimAgent({
        config: started.config,
        caPem: this.ctx.caPem,
        disk: started.disk,
        token: started.token,
        silent: () => this.ctx.silent(started.config.connectorId),
        pathFailing: () => this.ctx.pathFailing(started.config.connectorId),
        slot: this.ctx.slot,
        counters: this.ctx.stats,
        onExit: (exit) => this.exited(exit),
      });
      this.startProbe(container);
      this.writeStatus();
    } catch (error) {
      this.ctx.stats.lastError = `start ${this.pod.metadata?.name}: ${errorMessage(error)}`;
      this.restart = setTimeout(() => void this.startContainer(), 1_000);
    } finally {
      this.starting = false;
    }
  }

  /** The container's configuration, token and data volume, as the kubelet and the agent see them. */
  private async prepare(
    container: V1Container,
  ): Promise<{ config: AgentConfig; token: string | undefined; disk: Disk } | { failure: AgentFailure }> {
    const namespace = this.pod.metadata?.namespace ?? '';
    // Objects the environment refers to, read into the caches resolveEnvironment reads from.
    const configMaps = new Map<string, V1ConfigMap | undefined>();
    const secrets = new Map<string, V1Secret | undefined>();
    for (const entry of container.env ?? []) {
      const cm = entry.valueFrom?.configMapKeyRef?.name;
      if (cm && !configMaps.has(cm)) configMaps.set(cm, await this.ctx.configMap(namespace, cm));
      const secret = entry.valueFrom?.secretKeyRef?.name;
      if (secret && !secrets.has(secret)) secrets.set(secret, await this.ctx.secret(namespace, secret));
    }
    const { env, problems } = resolveEnvironment(this.pod, container, {
      configMap: (_ns, name) => configMaps.get(name),
      secret: (_ns, name) => secrets.get(name),
    });
    if (problems.length > 0) throw new Error(`CreateContainerConfigError: ${problems.join('; ')}`);
    let config: AgentConfig;
    try {
      const parsed = parseAgentCommandLine([], env);
      if (parsed.help) throw new Error('the agent was asked for --help');
      config = parsed.config;
    } catch (error) {
      if (isAgentFailure(error)) return { failure: error };
      throw error;
    }
    const volumeAt = (path: string | undefined) => {
      if (!path) return undefined;
      const mount = (container.volumeMounts ?? [])
        .filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`))
        .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
      return this.pod.spec?.volumes?.find((v) => v.name === mount?.name);
    };
    let token: string | undefined;
    const tokenVolume = volumeAt(config.tokenFile && dirname(config.tokenFile));
    const tokenSecret = tokenVolume?.secret?.secretName;
    if (config.tokenFile && tokenSecret) {
      const secret = await this.ctx.secret(namespace, tokenSecret);
      const encoded = secret?.data?.[basename(config.tokenFile)];
      const text = encoded === undefined ? '' : Buffer.from(encoded, 'base64').toString('utf8').trim();
      token = text.length > 0 ? text : undefined;
    }
    const dataVolume = volumeAt(config.dataDir);
    const diskKey = dataVolume?.persistentVolumeClaim?.claimName
      ? `${namespace}/${dataVolume.persistentVolumeClaim.claimName}`
      : `${this.uid}/${dataVolume?.name ?? '(container filesystem)'}`;
    let disk = this.ctx.disks.get(diskKey);
    if (!disk) {
      disk = {};
      this.ctx.disks.set(diskKey, disk);
    }
    this.ctx.diskOfConnector.set(config.connectorId, diskKey);
    return { config, token, disk };
  }

  /** The agent exited: terminated with its code and message, then CrashLoopBackOff and a restart. */
  private exited(exit: AgentExit): void {
    this.stopProbe();
    this.agent = undefined;
    const container = this.container;
    if (!container || this.removed || this.terminating) return;
    const { failure, exitCode } = exit;
    const key = failure?.code ?? `exit ${exitCode}`;
    this.ctx.stats.exits[key] = (this.ctx.stats.exits[key] ?? 0) + 1;
    const now = new Date();
    const { delayMs, streak } = nextRestartDelay(
      KUBELET_CRASH_BACKOFF,
      this.streak,
      now.getTime() - container.startedAt.getTime(),
    );
    this.streak = streak;
    container.lastTerminated = {
      exitCode,
      reason: 'Error',
      ...(failure ? { message: formatTerminationMessage(failure) } : {}),
      startedAt: isoSeconds(container.startedAt),
      finishedAt: isoSeconds(now),
      containerID: `bench://${this.uid}/${container.name}/${container.restartCount}`,
    };
    container.state = {
      waiting: {
        reason: 'CrashLoopBackOff',
        message: `back-off ${Math.round(delayMs / 1000)}s restarting failed container=${container.name} pod=${this.pod.metadata?.name}_${this.pod.metadata?.namespace}(${this.uid})`,
      },
    };
    container.ready = false;
    this.writeStatus();
    this.restart = setTimeout(() => void this.startContainer(), delayMs);
  }

  private startProbe(container: V1Container): void {
    const periodMs = (container.readinessProbe?.periodSeconds ?? 10) * 1000;
    const threshold = container.readinessProbe?.failureThreshold ?? 3;
    this.probeFailures = 0;
    const tick = () => {
      const agent = this.agent;
      const current = this.container;
      if (!agent || !current) return;
      if (agent.ready(new Date())) {
        this.probeFailures = 0;
        if (!current.ready) {
          current.ready = true;
          this.writeStatus();
        }
        return;
      }
      this.probeFailures += 1;
      if (current.ready && this.probeFailures >= threshold) {
        current.ready = false;
        this.writeStatus();
      }
    };
    this.probe = setInterval(tick, periodMs);
  }

  private stopProbe(): void {
    clearInterval(this.probe);
    this.probe = undefined;
  }

  private stopAgent(): void {
    this.stopProbe();
    clearTimeout(this.restart);
    if (this.agent) {
      this.agent.stop();
      this.agent = undefined;
      this.ctx.stats.agentsStopped += 1;
    }
  }

  /** Deleted: the agent stops, then the pod goes at once (grace 0, this UID only). */
  private async terminate(): Promise<void> {
    this.terminating = true;
    this.stopAgent();
    await this.ctx.core
      .deleteNamespacedPod({
        name: this.pod.metadata?.name ?? '',
        namespace: this.pod.metadata?.namespace ?? '',
        gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid: this.uid } },
      })
      .catch(() => {});
  }

  private view(): PodView {
    const c = this.container;
    return {
      volumes: { ready: true },
      containers: c
        ? [
            {
              name: c.name,
              image: c.image,
              containerID: `bench://${this.uid}/${c.name}/${c.restartCount}`,
              state: c.state,
              ...(c.lastTerminated ? { lastTerminated: c.lastTerminated } : {}),
              restartCount: c.restartCount,
              ready: c.ready,
              started: 'running' in c.state,
            },
          ]
        : [],
      startTime: this.startTime ?? isoSeconds(new Date()),
    };
  }

  /** Writes the status when it changed; one write at a time, the newest state last. */
  private writeStatus(): void {
    this.dirty = true;
    if (this.writing) return;
    this.writing = (async () => {
      while (this.dirty && !this.removed && !this.terminating) {
        this.dirty = false;
        const body = buildPodStatus(this.pod, this.view(), new Date(), this.lastWritten);
        const text = JSON.stringify(body);
        if (text === this.lastWrittenText) continue;
        try {
          await this.ctx.core.patchNamespacedPodStatus(
            {
              name: this.pod.metadata?.name ?? '',
              namespace: this.pod.metadata?.namespace ?? '',
              body: { metadata: { uid: this.uid }, status: body },
            },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          );
          this.ctx.stats.podStatusWrites += 1;
          this.lastWritten = body;
          this.lastWrittenText = text;
        } catch (error) {
          const code = statusCode(error);
          if (code !== 404 && code !== 409 && code !== 422)
            this.ctx.stats.lastError = `pod status ${this.pod.metadata?.name}: ${errorMessage(error)}`;
        }
      }
      this.writing = undefined;
    })();
  }
}
