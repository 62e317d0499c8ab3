// The Pod status a kubelet would report, computed purely from what the runner observed of the
// pod's volumes and containers, so the phase and condition rules are tested without processes.
import type { V1Pod, V1PodCondition } from '@kubernetes/client-node';
import { LOCAL_POD_IP } from './container-spec.ts';

export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';

export interface TerminatedInfo {
  exitCode: number;
  signal?: number;
  reason: string;
  message?: string;
  startedAt: string;
  finishedAt: string;
  containerID: string;
}

export type ContainerStateView =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | { terminated: TerminatedInfo };

export interface ContainerView {
  name: string;
  image: string;
  containerID?: string;
  state: ContainerStateView;
  lastTerminated?: TerminatedInfo;
  restartCount: number;
  ready: boolean;
  started: boolean;
}

export interface PodView {
  /** Whether every volume is set up; the message says why not (FailedMount). */
  volumes: { ready: true } | { ready: false; message: string };
  containers: ContainerView[];
  startTime: string;
  /** Set once the pod ran to completion (or was stopped for deletion); it never changes after. */
  terminalPhase?: 'Succeeded' | 'Failed';
}

/** Kubernetes times are RFC 3339 with second precision. */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function timeText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  const date = value instanceof Date ? value : new Date(String(value));
  return Number.isNaN(date.getTime()) ? undefined : isoSeconds(date);
}

/**
 * The kubelet's phase rule: a container waiting for its first start keeps the pod Pending; any
 * running (or, under restartPolicy Always, restarting) container makes it Running; when all have
 * stopped for good it is Succeeded if every exit code was 0, else Failed.
 */
export function podPhase(restartPolicy: string, view: PodView): PodPhase {
  if (view.terminalPhase) return view.terminalPhase;
  if (!view.volumes.ready) return 'Pending';
  let waiting = 0;
  let running = 0;
  let stopped = 0;
  let succeeded = 0;
  for (const container of view.containers) {
    const { state } = container;
    if ('running' in state) running += 1;
    else if ('terminated' in state) {
      stopped += 1;
      if (state.terminated.exitCode === 0) succeeded += 1;
    } else if (container.lastTerminated) stopped += 1;
    else waiting += 1;
  }
  if (waiting > 0) return 'Pending';
  if (running > 0) return 'Running';
  if (stopped === 0) return 'Pending';
  if (restartPolicy === 'Always') return 'Running';
  // A container still waiting to restart (OnFailure after a failure) keeps the pod Running.
  if (view.containers.some((container) => 'waiting' in container.state)) return 'Running';
  return stopped === succeeded ? 'Succeeded' : 'Failed';
}

/** The phase a stopped pod ends in: Succeeded only if every container's last exit was 0. */
export function terminalPhaseOf(view: PodView): 'Succeeded' | 'Failed' {
  const allZero = view.containers.every((container) => {
    const last = 'terminated' in container.state ? container.state.terminated : container.lastTerminated;
    return last !== undefined && last.exitCode === 0;
  });
  return allZero ? 'Succeeded' : 'Failed';
}

interface ConditionInput {
  type: string;
  status: 'True' | 'False';
  reason?: string;
  message?: string;
}

/** The status fields the runner owns, in the JSON form sent to pods/status. */
export interface PodStatusBody {
  phase: PodPhase;
  conditions: Array<{
    type: string;
    status: string;
    reason?: string;
    message?: string;
    lastProbeTime: null;
    lastTransitionTime: string;
  }>;
  containerStatuses: Array<Record<string, unknown>>;
  hostIP: string;
  hostIPs: Array<{ ip: string }>;
  podIP: string;
  podIPs: Array<{ ip: string }>;
  startTime: string;
}

const OWNED_CONDITIONS = ['PodReadyToStartContainers', 'Initialized', 'ContainersReady', 'Ready'];

function stateJson(state: ContainerStateView | undefined): Record<string, unknown> {
  if (!state) return {};
  if ('waiting' in state) return { waiting: state.waiting };
  if ('running' in state) return { running: state.running };
  return { terminated: state.terminated };
}

/**
 * The status to write. Conditions keep their lastTransitionTime while their status is unchanged
 * (from the last write, else from the pod as it is), conditions other writers own (PodScheduled, DisruptionTarget,
 * readiness gates) are kept as they are.
 */
export function buildPodStatus(
  pod: V1Pod,
  view: PodView,
  now: Date,
  lastWritten?: PodStatusBody,
): PodStatusBody {
  const phase = podPhase(pod.spec?.restartPolicy ?? 'Always', view);
  const existing = pod.status?.conditions ?? [];
  const transition = (input: ConditionInput) => {
    // What this runner wrote last is newer than a pod object the watch has not delivered yet.
    const previous =
      lastWritten?.conditions.find((condition) => condition.type === input.type) ??
      existing.find((condition) => condition.type === input.type);
    const keep =
      previous && previous.status === input.status ? timeText(previous.lastTransitionTime) : undefined;
    return {
      type: input.type,
      status: input.status,
      ...(input.reason ? { reason: input.reason } : {}),
      ...(input.message ? { message: input.message } : {}),
      lastProbeTime: null,
      lastTransitionTime: keep ?? isoSeconds(now),
    };
  };
  const terminal = phase === 'Succeeded' || phase === 'Failed';
  const unready = view.containers.filter((container) => !container.ready).map((container) => container.name);
  const containersReady: ConditionInput = terminal
    ? { type: 'ContainersReady', status: 'False', reason: 'PodCompleted' }
    : unready.length === 0 && view.volumes.ready
      ? { type: 'ContainersReady', status: 'True' }
      : {
          type: 'ContainersReady',
          status: 'False',
          reason: 'ContainersNotReady',
          message: `containers with unready status: [${unready.join(' ')}]`,
        };
  const gates = (pod.spec?.readinessGates ?? []).map((gate) => gate.conditionType);
  const failedGates = gates.filter(
    (gate) => existing.find((condition) => condition.type === gate)?.status !== 'True',
  );
  const ready: ConditionInput =
    containersReady.status === 'True' && failedGates.length > 0
      ? {
          type: 'Ready',
          status: 'False',
          reason: 'ReadinessGatesNotReady',
          message: `corresponding condition of pod readiness gate "${failedGates[0]}" does not exist or is not True`,
        }
      : { ...containersReady, type: 'Ready' };
  const owned: ConditionInput[] = [
    view.volumes.ready
      ? { type: 'PodReadyToStartContainers', status: terminal ? 'False' : 'True' }
      : {
          type: 'PodReadyToStartContainers',
          status: 'False',
          reason: 'FailedMount',
          message: view.volumes.message,
        },
    { type: 'Initialized', status: 'True' },
    containersReady,
    ready,
  ];
  const foreign = existing
    .filter((condition) => !OWNED_CONDITIONS.includes(condition.type))
    .map((condition: V1PodCondition) => ({
      type: condition.type,
      status: condition.status,
      ...(condition.reason ? { reason: condition.reason } : {}),
      ...(condition.message ? { message: condition.message } : {}),
      lastProbeTime: null,
      lastTransitionTime: timeText(condition.lastTransitionTime) ?? isoSeconds(now),
    }));
  const containerStatuses = view.containers.map((container) => ({
    name: container.name,
    image: container.image,
    imageID: `local://${container.image}`,
    ...(container.containerID ? { containerID: container.containerID } : {}),
    ready: container.ready,
    started: container.started,
    restartCount: container.restartCount,
    state: stateJson(container.state),
    lastState: container.lastTerminated ? { terminated: container.lastTerminated } : {},
  }));
  return {
    phase,
    conditions: [...foreign, ...owned.map(transition)],
    containerStatuses,
    hostIP: LOCAL_POD_IP,
    hostIPs: [{ ip: LOCAL_POD_IP }],
    podIP: LOCAL_POD_IP,
    podIPs: [{ ip: LOCAL_POD_IP }],
    startTime: view.startTime,
  };
}
