// One container of a local pod across its restarts: starts its process, runs its probes, records
// how each instance ended (exit code, reason, termination message) and decides, from the pod's
// restartPolicy and the crash backoff, whether and when it runs again.
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { V1Container, V1Pod, V1Probe } from '@kubernetes/client-node';
import type { Clock, TimerHandle } from '../../src/lib/clock.ts';
import type { Logger } from '../../src/lib/logger.ts';
import { type HostMount, mapArgument, type ProcessLaunch } from './container-spec.ts';
import { type BackoffStreak, type CrashBackoffPolicy, nextRestartDelay } from './crash-backoff.ts';
import { type ContainerView, isoSeconds, type TerminatedInfo } from './pod-status.ts';
import { execProbe, type ProbeKind, type ProbeOutcome, ProbeWorker, probeTiming } from './probes.ts';
import { ManagedProcess, type ProcessExit } from './processes.ts';

/** The kubelet's limit on a termination message. */
export const TERMINATION_MESSAGE_LIMIT = 4096;
const FALLBACK_LOG_LINES = 80;
const FALLBACK_LOG_BYTES = 2048;

export type EventType = 'Normal' | 'Warning';

export interface ContainerRuntimeOptions {
  pod: () => V1Pod;
  container: V1Container;
  /** <root>/pods/<pod UID>: the log file and the container's private files live here. */
  podDir: string;
  backoff: CrashBackoffPolicy;
  probePeriodMs: number | undefined;
  clock: Clock;
  logger: Logger;
  /** Restarts already reported for this container (a runner restarted under a running pod). */
  initialRestartCount: number;
  /** Something changed that the pod's status or next sync must see. */
  onChange: () => void;
  onEvent: (type: EventType, reason: string, message: string) => void;
}

interface Instance {
  process: ManagedProcess;
  id: string;
  startedAt: Date;
  launch: ProcessLaunch;
  probes: Map<ProbeKind, ProbeWorker>;
  started: boolean;
  ready: boolean;
  /** Settles once the exit has been recorded. */
  handled?: Promise<void>;
}

function exitCodeOf(exit: ProcessExit): number {
  if (exit.code !== null) return exit.code;
  const number = exit.signal ? constants.signals[exit.signal] : undefined;
  return 128 + (number ?? 9);
}

export type StartDecision = 'start' | 'backoff' | 'running' | 'done';

export class ContainerRuntime {
  readonly name: string;
  private readonly options: ContainerRuntimeOptions;
  private instance: Instance | undefined;
  private waiting: { reason: string; message?: string } = { reason: 'ContainerCreating' };
  /** Set when the container stopped for good (no restart under the pod's policy). */
  private final: TerminatedInfo | undefined;
  private lastTerminated: TerminatedInfo | undefined;
  private restartCount: number;
  private everStarted = false;
  private backoffUntil = 0;
  private backoffTimer: TimerHandle | undefined;
  private streak: BackoffStreak = { restarts: 0 };
  private halted = false;

  constructor(options: ContainerRuntimeOptions) {
    this.options = options;
    this.name = options.container.name;
    this.restartCount = options.initialRestartCount;
    this.everStarted = options.initialRestartCount > 0;
  }

  get logFile(): string {
    return join(this.options.podDir, `${this.name}.log`);
  }

  /** Host file that stands for the container's terminationMessagePath. */
  get terminationFile(): string {
    return join(this.options.podDir, 'containers', this.name, 'termination-log');
  }

  /** The container's private working directory (its "root filesystem" on this machine). */
  get workDir(): string {
    return join(this.options.podDir, 'containers', this.name, 'rootfs');
  }

  get pid(): number | undefined {
    return this.instance && !this.instance.process.exit ? this.instance.process.pid : undefined;
  }

  decide(now: Date): StartDecision {
    if (this.halted || this.final) return 'done';
    if (this.instance) return 'running';
    if (this.backoffUntil > now.getTime()) return 'backoff';
    return 'start';
  }

  /** Reports why the container cannot start yet (image not runnable, config error, ...). */
  setWaiting(reason: string, message: string): void {
    if (this.waiting.reason !== reason || this.waiting.message !== message) {
      this.options.onEvent('Warning', reason === 'ImageNotRunnableLocally' ? 'Failed' : reason, message);
    }
    this.waiting = { reason, message };
  }

  async start(launch: ProcessLaunch, mounts: readonly HostMount[], hostPort: (port: number) => number) {
    if (this.halted || this.instance || this.final) return;
    await mkdir(join(this.options.podDir, 'containers', this.name), { recursive: true });
    await mkdir(this.workDir, { recursive: true });
    // Every instance starts with an empty termination message, as with a new container.
    await writeFile(this.terminationFile, '');
    if (this.halted) return;
    if (this.everStarted) this.restartCount += 1;
    this.everStarted = true;
    const pod = this.options.pod();
    const id = `local://${pod.metadata?.uid}/${this.name}/${this.restartCount}`;
    const process = new ManagedProcess({
      name: `${pod.metadata?.namespace}/${pod.metadata?.name}/${this.name}`,
      command: launch.command,
      args: launch.args,
      env: launch.env,
      cwd: launch.cwd ?? this.workDir,
      logFile: this.logFile,
    });
    const instance: Instance = {
      process,
      id,
      startedAt: this.options.clock.now(),
      launch,
      probes: new Map(),
      started: this.options.container.startupProbe === undefined,
      ready: false,
    };
    this.instance = instance;
    this.waiting = { reason: 'ContainerCreating' };
    this.options.logger.info(
      { pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`, container: this.name, pid: process.pid },
      'started container process',
    );
    this.options.onEvent('Normal', 'Started', `Started container ${this.name}`);
    this.startProbes(instance, mounts, hostPort);
    instance.handled = process.whenExited
      .then((exit) => this.onExit(instance, exit))
      .catch((error: unknown) =>
        this.options.logger.error(
          { container: this.name, err: String(error) },
          'recording a container exit failed',
        ),
      );
  }

  private startProbes(instance: Instance, mounts: readonly HostMount[], hostPort: (port: number) => number) {
    const { container } = this.options;
    const target = {
      hostPort,
      exec: (command: string[], timeoutMs: number) =>
        execProbe(
          command.map((arg) => mapArgument(arg, mounts)),
          instance.launch.env,
          this.workDir,
          timeoutMs,
        ),
    };
    const add = (kind: ProbeKind, probe: V1Probe | undefined, initial: boolean) => {
      if (!probe) return;
      const worker = new ProbeWorker({
        kind,
        probe,
        container,
        target,
        timing: probeTiming(probe, this.options.probePeriodMs),
        initial,
        active: () =>
          this.instance === instance && (kind === 'startup' ? !instance.started : instance.started),
        onResult: (which, ok, outcome) => this.onProbe(instance, which, ok, outcome),
      });
      instance.probes.set(kind, worker);
      worker.start();
    };
    add('startup', container.startupProbe, false);
    add('readiness', container.readinessProbe, false);
    add('liveness', container.livenessProbe, true);
    instance.ready = instance.started && !container.readinessProbe;
  }

  private onProbe(instance: Instance, kind: ProbeKind, ok: boolean, outcome: ProbeOutcome): void {
    if (this.instance !== instance) return;
    if (kind === 'readiness') {
      instance.ready = ok && instance.started;
      if (!ok) this.options.onEvent('Warning', 'Unhealthy', `Readiness probe failed: ${outcome.message}`);
    } else if (kind === 'startup' && ok) {
      instance.started = true;
      instance.ready = !this.options.container.readinessProbe;
    } else if (!ok) {
      const probeName = kind === 'startup' ? 'Startup' : 'Liveness';
      this.options.onEvent('Warning', 'Unhealthy', `${probeName} probe failed: ${outcome.message}`);
      this.options.onEvent(
        'Normal',
        'Killing',
        `Container ${this.name} failed ${kind} probe, will be restarted`,
      );
      const probe =
        kind === 'startup' ? this.options.container.startupProbe : this.options.container.livenessProbe;
      const seconds =
        probe?.terminationGracePeriodSeconds ?? this.options.pod().spec?.terminationGracePeriodSeconds ?? 30;
      void instance.process.stop(seconds * 1000);
    }
    this.options.onChange();
  }

  private async terminationMessage(exitCode: number): Promise<string | undefined> {
    const text = await readCapped(this.terminationFile, TERMINATION_MESSAGE_LIMIT);
    if (text) return text;
    if (exitCode !== 0 && this.options.container.terminationMessagePolicy === 'FallbackToLogsOnError') {
      const log = await readFile(this.logFile, 'utf8').catch(() => '');
      const lines = log.split('\n');
      if (lines.at(-1) === '') lines.pop();
      const tail = lines.slice(-FALLBACK_LOG_LINES).join('\n');
      return Buffer.from(tail).subarray(-FALLBACK_LOG_BYTES).toString('utf8') || undefined;
    }
    return undefined;
  }

  private async onExit(instance: Instance, exit: ProcessExit): Promise<void> {
    for (const probe of instance.probes.values()) probe.stop();
    // Nothing of the container outlives its main process, and its output is in the log file.
    await instance.process.stop(0);
    const exitCode = exitCodeOf(exit);
    const finishedAt = this.options.clock.now();
    const message = await this.terminationMessage(exitCode);
    const info: TerminatedInfo = {
      exitCode,
      ...(exit.signal ? { signal: constants.signals[exit.signal] } : {}),
      reason: exitCode === 0 ? 'Completed' : 'Error',
      ...(message ? { message } : {}),
      startedAt: isoSeconds(instance.startedAt),
      finishedAt: isoSeconds(finishedAt),
      containerID: instance.id,
    };
    if (this.instance === instance) this.instance = undefined;
    const pod = this.options.pod();
    this.options.logger.info(
      { pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`, container: this.name, exitCode },
      'container process exited',
    );
    const policy = pod.spec?.restartPolicy ?? 'Always';
    const restarts = !this.halted && (policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0));
    if (!restarts) {
      this.final = info;
    } else {
      this.lastTerminated = info;
      const { delayMs, streak } = nextRestartDelay(
        this.options.backoff,
        this.streak,
        finishedAt.getTime() - instance.startedAt.getTime(),
      );
      this.streak = streak;
      this.backoffUntil = finishedAt.getTime() + delayMs;
      const backoffText = delayMs >= 1000 ? `${Math.round(delayMs / 1000)}s` : `${delayMs}ms`;
      this.waiting = {
        reason: 'CrashLoopBackOff',
        message: `back-off ${backoffText} restarting failed container=${this.name} pod=${pod.metadata?.name}_${pod.metadata?.namespace}(${pod.metadata?.uid})`,
      };
      this.options.onEvent('Warning', 'BackOff', 'Back-off restarting failed container');
      if (this.backoffTimer !== undefined) this.options.clock.clearTimeout(this.backoffTimer);
      this.backoffTimer = this.options.clock.setTimeout(() => this.options.onChange(), delayMs);
    }
    this.options.onChange();
  }

  /**
   * Stops the container for good: SIGTERM to its process group, SIGKILL after `graceMs`, and no
   * restart afterwards. Resolves when the process and its exit bookkeeping are done.
   */
  async halt(graceMs: number): Promise<void> {
    this.halted = true;
    if (this.backoffTimer !== undefined) this.options.clock.clearTimeout(this.backoffTimer);
    const instance = this.instance;
    if (!instance) return;
    for (const probe of instance.probes.values()) probe.stop();
    await instance.process.stop(graceMs);
    // The exit handler records the final state before the caller reads the view.
    await instance.handled;
  }

  view(image: string): ContainerView {
    const instance = this.instance;
    const state: ContainerView['state'] = instance
      ? { running: { startedAt: isoSeconds(instance.startedAt) } }
      : this.final
        ? { terminated: this.final }
        : { waiting: this.waiting };
    return {
      name: this.name,
      image,
      ...(instance
        ? { containerID: instance.id }
        : this.final
          ? { containerID: this.final.containerID }
          : {}),
      state,
      ...(this.lastTerminated ? { lastTerminated: this.lastTerminated } : {}),
      restartCount: this.restartCount,
      ready: instance?.ready ?? false,
      started: instance?.started ?? false,
    };
  }
}

/** Reads at most `limit` bytes of a file; an absent file reads as empty. */
async function readCapped(path: string, limit: number): Promise<string> {
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return '';
  try {
    const buffer = Buffer.alloc(limit);
    const { bytesRead } = await handle.read(buffer, 0, limit, 0);
    return buffer.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
}
