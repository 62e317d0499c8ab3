// Container probes run the way the kubelet runs them: httpGet and tcpSocket against the pod's
// address (loopback here, on the host port that stands in for the container port), exec as a
// local command with the container's mapped environment, each on its own period with success and
// failure thresholds. gRPC probes are not implemented and report failure with a message saying so.
import { execFile } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import type { V1Container, V1Probe } from '@kubernetes/client-node';
import { LOCAL_POD_IP } from './container-spec.ts';

export type ProbeKind = 'startup' | 'readiness' | 'liveness';

export interface ProbeOutcome {
  ok: boolean;
  message: string;
}

export interface ProbeTarget {
  /** Host port that answers for a container port (the port itself when it was not remapped). */
  hostPort(containerPort: number): number;
  /** How an exec probe runs: command mapped like the container's own, with its environment. */
  exec(command: string[], timeoutMs: number): Promise<ProbeOutcome>;
}

/** Resolves a probe's port, which may name one of the container's ports. */
export function probePort(container: V1Container, port: number | string): number | undefined {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  return container.ports?.find((candidate) => candidate.name === port)?.containerPort;
}

function httpProbe(probe: NonNullable<V1Probe['httpGet']>, port: number, timeoutMs: number) {
  return new Promise<ProbeOutcome>((resolve) => {
    const scheme = (probe.scheme ?? 'HTTP').toUpperCase();
    const headers: Record<string, string> = { 'User-Agent': 'kube-probe/local-pod-runner' };
    for (const header of probe.httpHeaders ?? []) headers[header.name] = header.value;
    const options = { host: LOCAL_POD_IP, port, path: probe.path ?? '/', timeout: timeoutMs, headers };
    const onResponse = (res: import('node:http').IncomingMessage) => {
      res.resume();
      const status = res.statusCode ?? 0;
      resolve(
        status >= 200 && status < 400
          ? { ok: true, message: `HTTP probe answered ${status}` }
          : { ok: false, message: `HTTP probe failed with statuscode: ${status}` },
      );
    };
    const req =
      scheme === 'HTTPS'
        ? httpsRequest({ ...options, rejectUnauthorized: false }, onResponse)
        : httpRequest(options, onResponse);
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', (error) =>
      resolve({
        ok: false,
        message: `Get "${scheme.toLowerCase()}://${LOCAL_POD_IP}:${port}${options.path}": ${error.message}`,
      }),
    );
    req.end();
  });
}

function tcpProbe(port: number, timeoutMs: number) {
  return new Promise<ProbeOutcome>((resolve) => {
    const socket = connect({ host: LOCAL_POD_IP, port, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve({ ok: true, message: 'TCP connect succeeded' });
    });
    socket.once('timeout', () => socket.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    socket.once('error', (error) =>
      resolve({ ok: false, message: `dial tcp ${LOCAL_POD_IP}:${port}: ${error.message}` }),
    );
  });
}

/** Runs one probe once. */
export async function runProbe(
  probe: V1Probe,
  container: V1Container,
  target: ProbeTarget,
): Promise<ProbeOutcome> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  const portOf = (port: number | string) => {
    const containerPort = probePort(container, port);
    return containerPort === undefined ? undefined : target.hostPort(containerPort);
  };
  if (probe.httpGet) {
    const port = portOf(probe.httpGet.port);
    if (port === undefined)
      return { ok: false, message: `probe port "${probe.httpGet.port}" is not a container port` };
    return httpProbe(probe.httpGet, port, timeoutMs);
  }
  if (probe.tcpSocket) {
    const port = portOf(probe.tcpSocket.port);
    if (port === undefined)
      return { ok: false, message: `probe port "${probe.tcpSocket.port}" is not a container port` };
    return tcpProbe(port, timeoutMs);
  }
  if (probe.exec) return target.exec(probe.exec.command ?? [], timeoutMs);
  return { ok: false, message: 'this probe handler (grpc) is not supported by the local pod runner' };
}

/** Runs an exec probe command locally; exit 0 is success. */
export function execProbe(
  command: string[],
  env: Record<string, string>,
  cwd: string,
  timeoutMs: number,
): Promise<ProbeOutcome> {
  const [file, ...args] = command;
  if (!file) return Promise.resolve({ ok: false, message: 'exec probe has an empty command' });
  return new Promise((resolve) => {
    execFile(file, args, { env, cwd, timeout: timeoutMs }, (error, stdout, stderr) => {
      const output = `${stdout}${stderr}`.trim().slice(0, 1024);
      resolve(error ? { ok: false, message: output || error.message } : { ok: true, message: output });
    });
  });
}

export interface ProbeTiming {
  periodMs: number;
  initialDelayMs: number;
}

/**
 * The probe's period and initial delay. `periodOverrideMs` (tests) replaces periodSeconds only:
 * the initial delay is kept, because it is what protects a slow-starting process from its
 * liveness probe.
 */
export function probeTiming(probe: V1Probe, periodOverrideMs: number | undefined): ProbeTiming {
  const periodMs = periodOverrideMs ?? (probe.periodSeconds ?? 10) * 1000;
  return { periodMs, initialDelayMs: (probe.initialDelaySeconds ?? 0) * 1000 };
}

/**
 * One probe of one running container instance: runs on its period and reports a result each time
 * the thresholds flip it (successThreshold consecutive successes, failureThreshold consecutive
 * failures), starting from `initial`.
 */
export interface ProbeWorkerOptions {
  kind: ProbeKind;
  probe: V1Probe;
  container: V1Container;
  target: ProbeTarget;
  timing: ProbeTiming;
  initial: boolean;
  /** Whether to probe now (a liveness/readiness probe waits for the startup probe). */
  active: () => boolean;
  onResult: (kind: ProbeKind, ok: boolean, outcome: ProbeOutcome) => void;
}

export class ProbeWorker {
  private readonly options: ProbeWorkerOptions;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private successes = 0;
  private failures = 0;
  private result: boolean;

  constructor(options: ProbeWorkerOptions) {
    this.options = options;
    this.result = options.initial;
  }

  get current(): boolean {
    return this.result;
  }

  start(): void {
    this.schedule(this.options.timing.initialDelayMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.tick().then(
        () => this.schedule(this.options.timing.periodMs),
        () => this.schedule(this.options.timing.periodMs),
      );
    }, delayMs);
  }

  private async tick(): Promise<void> {
    if (!this.options.active()) return;
    const { probe } = this.options;
    const outcome = await runProbe(probe, this.options.container, this.options.target);
    if (this.stopped) return;
    if (outcome.ok) {
      this.successes += 1;
      this.failures = 0;
    } else {
      this.failures += 1;
      this.successes = 0;
    }
    const successThreshold = probe.successThreshold ?? 1;
    const failureThreshold = probe.failureThreshold ?? 3;
    const next = outcome.ok
      ? this.successes >= successThreshold
        ? true
        : this.result
      : this.failures >= failureThreshold
        ? false
        : this.result;
    if (next !== this.result) {
      this.result = next;
      this.options.onResult(this.options.kind, next, outcome);
    }
  }
}
