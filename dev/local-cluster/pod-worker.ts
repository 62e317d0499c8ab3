// The life of one Pod on the local node, one sync at a time (the kubelet's pod worker): bind it,
// set up its volumes, start and restart its containers, report its status, and when it is
// deleted stop its processes within the grace period, tear down its volumes and confirm the
// deletion with gracePeriodSeconds=0 and a UID precondition.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1Container,
  type V1Pod,
} from '@kubernetes/client-node';
import type { Clock } from '../../src/lib/clock.ts';
import { errorMessage } from '../../src/lib/errors.ts';
import type { Logger } from '../../src/lib/logger.ts';
import { ContainerRuntime, type EventType } from './container-runtime.ts';
import {
  buildLaunch,
  type EnvSources,
  type HostMount,
  mapPath,
  type ResolveCommand,
  resolveEnvironment,
} from './container-spec.ts';
import type { CrashBackoffPolicy } from './crash-backoff.ts';
import {
  buildPodStatus,
  isoSeconds,
  type PodStatusBody,
  type PodView,
  podPhase,
  terminalPhaseOf,
} from './pod-status.ts';
import { freePort } from './ports.ts';
import { probePort } from './probes.ts';
import { PodVolumes, type ProvisionClaim, podDirectory, type VolumeSources } from './volumes.ts';

export interface PodWorkerContext {
  core: CoreV1Api;
  nodeName: string;
  root: string;
  clock: Clock;
  logger: Logger;
  sources: VolumeSources & EnvSources;
  provision: ProvisionClaim | undefined;
  resolveCommand: ResolveCommand;
  backoff: CrashBackoffPolicy;
  probePeriodMs: number | undefined;
  /** Environment every process starts from (PATH and the like); the pod's env is added on top. */
  baseEnv: Record<string, string>;
  recordEvent: (pod: V1Pod, type: EventType, reason: string, message: string) => void;
  /** Called once the pod is gone from the API and nothing of it runs any more. */
  retired: (uid: string) => void;
}

function statusCode(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

/** Seconds the pod's processes get between SIGTERM and SIGKILL. */
export function gracePeriodSeconds(pod: V1Pod): number {
  return pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
}

export class PodWorker {
  readonly uid: string;
  private readonly ctx: PodWorkerContext;
  private pod: V1Pod;
  private readonly volumes: PodVolumes;
  private readonly runtimes = new Map<string, ContainerRuntime>();
  private readonly podDir: string;
  private ports: Map<number, number> | undefined;
  private volumeState: PodView['volumes'] = { ready: false, message: 'volumes are being set up' };
  private mountedVolumes = new Map<string, string>();
  private terminalPhase: PodView['terminalPhase'];
  private readonly startTime: string;
  private lastWritten: PodStatusBody | undefined;
  private lastWrittenFor: string | undefined;
  private lastMountMessage: string | undefined;
  private dirty = false;
  private running: Promise<void> | undefined;
  private removed = false;
  private deleted = false;
  private shutDown = false;
  private retiredAlready = false;

  constructor(ctx: PodWorkerContext, pod: V1Pod) {
    this.ctx = ctx;
    this.pod = pod;
    this.uid = pod.metadata?.uid ?? '';
    this.podDir = podDirectory(ctx.root, this.uid);
    this.startTime = isoSeconds(ctx.clock.now());
    this.volumes = new PodVolumes({
      root: ctx.root,
      pod: () => this.pod,
      sources: ctx.sources,
      ...(ctx.provision ? { provision: ctx.provision } : {}),
    });
    const phase = pod.status?.phase;
    // A pod that already finished (before this runner started) is never run again.
    if (phase === 'Succeeded' || phase === 'Failed') this.terminalPhase = phase;
  }

  get namespace(): string {
    return this.pod.metadata?.namespace ?? 'default';
  }

  get name(): string {
    return this.pod.metadata?.name ?? '';
  }

  /** Host directories of the pod's volumes, ports mapped for its containers, live process ids. */
  describe() {
    return {
      uid: this.uid,
      namespace: this.namespace,
      name: this.name,
      directory: this.podDir,
      volumes: Object.fromEntries(this.mountedVolumes),
      ports: Object.fromEntries(this.ports ?? []),
      pids: [...this.runtimes.values()].flatMap((runtime) =>
        runtime.pid === undefined ? [] : [runtime.pid],
      ),
      logFiles: Object.fromEntries(
        [...this.runtimes.values()].map((runtime) => [runtime.name, runtime.logFile]),
      ),
    };
  }

  logFile(container: string): string {
    return join(this.podDir, `${container}.log`);
  }

  update(pod: V1Pod): void {
    if (pod.metadata?.resourceVersion === this.pod.metadata?.resourceVersion && !this.removed) return;
    this.pod = pod;
    this.requestSync();
  }

  /** The pod is no longer in the API (deleted, or force-deleted): stop it and clean up. */
  gone(): void {
    this.removed = true;
    this.requestSync();
  }

  requestSync(): void {
    if (this.shutDown) return;
    this.dirty = true;
    if (this.running) return;
    this.running = (async () => {
      while (this.dirty && !this.shutDown) {
        this.dirty = false;
        try {
          await this.sync();
        } catch (error) {
          // The periodic resync tries again; the error is reported, not dropped.
          this.ctx.logger.error(
            { pod: `${this.namespace}/${this.name}`, err: errorMessage(error) },
            'pod sync failed; retrying on the next resync',
          );
        }
      }
      this.running = undefined;
    })();
  }

  /** The runner stops: processes are stopped within min(grace, capMs); the API is not touched. */
  async shutdown(capMs: number): Promise<void> {
    this.shutDown = true;
    await this.running;
    const graceMs = Math.min(gracePeriodSeconds(this.pod) * 1000, capMs);
    await Promise.all([...this.runtimes.values()].map((runtime) => runtime.halt(graceMs)));
  }

  private event(type: EventType, reason: string, message: string): void {
    this.ctx.recordEvent(this.pod, type, reason, message);
  }

  private async sync(): Promise<void> {
    if (this.removed) {
      await this.stopEverything(gracePeriodSeconds(this.pod) * 1000);
      await this.volumes.tearDown();
      if (!this.retiredAlready) {
        this.retiredAlready = true;
        this.ctx.retired(this.uid);
      }
      return;
    }
    if (this.deleted) return;
    const pod = this.pod;
    if (!pod.spec?.nodeName) {
      await this.bind();
      return;
    }
    if (pod.spec.nodeName !== this.ctx.nodeName) return;
    if (pod.metadata?.deletionTimestamp) {
      await this.terminate();
      return;
    }
    if (this.terminalPhase) {
      await this.writeStatus();
      return;
    }
    const setup = await this.volumes.setUp();
    if (!setup.ok) {
      this.volumeState = { ready: false, message: setup.message };
      if (this.lastMountMessage !== setup.message) {
        this.lastMountMessage = setup.message;
        this.event('Warning', 'FailedMount', `MountVolume.SetUp failed for ${setup.message}`);
      }
      await this.writeStatus();
      return;
    }
    this.volumeState = { ready: true };
    this.lastMountMessage = undefined;
    this.mountedVolumes = setup.volumes;
    await mkdir(this.podDir, { recursive: true });
    const ports = await this.allocatePorts();
    const now = this.ctx.clock.now();
    for (const container of pod.spec.containers) {
      const runtime = this.runtime(container);
      if (runtime.decide(now) !== 'start') continue;
      await this.startContainer(pod, container, runtime, setup.volumes, ports);
    }
    const view = this.view();
    const phase = podPhase(pod.spec.restartPolicy ?? 'Always', view);
    if (phase === 'Succeeded' || phase === 'Failed') this.terminalPhase = phase;
    await this.writeStatus();
  }

  private runtime(container: V1Container): ContainerRuntime {
    let runtime = this.runtimes.get(container.name);
    if (!runtime) {
      const reported = this.pod.status?.containerStatuses?.find((status) => status.name === container.name);
      runtime = new ContainerRuntime({
        pod: () => this.pod,
        container,
        podDir: this.podDir,
        backoff: this.ctx.backoff,
        probePeriodMs: this.ctx.probePeriodMs,
        clock: this.ctx.clock,
        logger: this.ctx.logger,
        initialRestartCount: reported?.restartCount ?? 0,
        onChange: () => this.requestSync(),
        onEvent: (type, reason, message) => this.event(type, reason, message),
      });
      this.runtimes.set(container.name, runtime);
    }
    return runtime;
  }

  private async startContainer(
    pod: V1Pod,
    container: V1Container,
    runtime: ContainerRuntime,
    volumes: Map<string, string>,
    ports: Map<number, number>,
  ): Promise<void> {
    if ((pod.spec?.initContainers ?? []).length > 0) {
      runtime.setWaiting(
        'CreateContainerConfigError',
        'init containers are not supported by the local pod runner; remove them from the pod template',
      );
      return;
    }
    const local = this.ctx.resolveCommand(container, pod);
    if (!local) {
      runtime.setWaiting(
        'ImageNotRunnableLocally',
        `image "${container.image}" has no local command: the local pod runner cannot run it ` +
          '(give the runner a resolveCommand that maps it)',
      );
      return;
    }
    const { env, problems } = resolveEnvironment(pod, container, this.ctx.sources);
    if (problems.length > 0) {
      runtime.setWaiting('CreateContainerConfigError', problems.join('; '));
      return;
    }
    let mounts: HostMount[];
    try {
      mounts = await this.volumes.mountsFor(container.name, volumes);
    } catch (error) {
      runtime.setWaiting('CreateContainerConfigError', errorMessage(error));
      return;
    }
    mounts.push({
      mountPath: container.terminationMessagePath ?? '/dev/termination-log',
      hostPath: runtime.terminationFile,
    });
    const launch = buildLaunch({ local, env, mounts, ports });
    launch.env = { ...this.ctx.baseEnv, HOSTNAME: this.name, ...launch.env };
    // A workingDir inside a volume is honoured; elsewhere the container's private directory is used.
    if (container.workingDir) {
      const workingDir = mapPath(container.workingDir, mounts);
      if (workingDir !== container.workingDir) launch.cwd = workingDir;
    }
    const mapped = new Set(launch.mappedPorts);
    await runtime.start(launch, mounts, (port) => (mapped.has(port) ? (ports.get(port) ?? port) : port));
  }

  /** One loopback port per container port and probe port, stable for the pod's lifetime. */
  private async allocatePorts(): Promise<Map<number, number>> {
    if (this.ports) return this.ports;
    const wanted = new Set<number>();
    for (const container of this.pod.spec?.containers ?? []) {
      for (const port of container.ports ?? []) wanted.add(port.containerPort);
      for (const probe of [container.readinessProbe, container.livenessProbe, container.startupProbe]) {
        const port = probe?.httpGet?.port ?? probe?.tcpSocket?.port;
        const number = port === undefined ? undefined : probePort(container, port);
        if (number !== undefined) wanted.add(number);
      }
    }
    const ports = new Map<number, number>();
    for (const port of wanted) ports.set(port, await freePort());
    this.ports = ports;
    return ports;
  }

  private view(): PodView {
    return {
      volumes: this.volumeState,
      containers: (this.pod.spec?.containers ?? []).map((container) =>
        this.runtime(container).view(container.image ?? ''),
      ),
      startTime: this.startTime,
      ...(this.terminalPhase ? { terminalPhase: this.terminalPhase } : {}),
    };
  }

  private async bind(): Promise<void> {
    try {
      await this.ctx.core.createNamespacedPodBinding({
        name: this.name,
        namespace: this.namespace,
        body: {
          metadata: { name: this.name, namespace: this.namespace },
          target: { apiVersion: 'v1', kind: 'Node', name: this.ctx.nodeName },
        },
      });
      this.ctx.logger.info({ pod: `${this.namespace}/${this.name}`, node: this.ctx.nodeName }, 'bound pod');
      this.event(
        'Normal',
        'Scheduled',
        `Successfully assigned ${this.namespace}/${this.name} to ${this.ctx.nodeName}`,
      );
    } catch (error) {
      // 409: bound meanwhile (by another runner); 404: deleted meanwhile. The watch tells the rest.
      if (statusCode(error) !== 409 && statusCode(error) !== 404) throw error;
    }
  }

  private async stopEverything(graceMs: number): Promise<void> {
    await Promise.all([...this.runtimes.values()].map((runtime) => runtime.halt(graceMs)));
  }

  private async terminate(): Promise<void> {
    const graceMs = gracePeriodSeconds(this.pod) * 1000;
    if ([...this.runtimes.values()].some((runtime) => runtime.pid !== undefined)) {
      this.event('Normal', 'Killing', `Stopping pod containers (grace period ${graceMs / 1000}s)`);
    }
    await this.stopEverything(graceMs);
    this.terminalPhase ??= terminalPhaseOf(this.view());
    await this.writeStatus();
    await this.volumes.tearDown();
    try {
      await this.ctx.core.deleteNamespacedPod({
        name: this.name,
        namespace: this.namespace,
        gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid: this.uid } },
      });
    } catch (error) {
      // 404: already gone; 409: the name now belongs to a new pod (UID precondition).
      if (statusCode(error) !== 404 && statusCode(error) !== 409) throw error;
    }
    this.deleted = true;
    this.ctx.logger.info({ pod: `${this.namespace}/${this.name}`, uid: this.uid }, 'pod stopped and deleted');
  }

  private async writeStatus(): Promise<void> {
    const body = buildPodStatus(this.pod, this.view(), this.ctx.clock.now(), this.lastWritten);
    const text = JSON.stringify(body);
    if (text === this.lastWrittenFor) return;
    try {
      await this.ctx.core.patchNamespacedPodStatus(
        // The UID in the patch is the precondition (as the kubelet's): a new pod that took this
        // name is refused instead of getting this pod's status.
        { name: this.name, namespace: this.namespace, body: { metadata: { uid: this.uid }, status: body } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (error) {
      const code = statusCode(error);
      if (code === 404 || code === 409 || code === 422) return;
      throw error;
    }
    this.lastWritten = body;
    this.lastWrittenFor = text;
  }
}
