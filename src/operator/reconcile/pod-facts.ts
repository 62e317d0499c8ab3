// Facts about the agent's container in a pod: whether it runs and is ready, how often it
// restarted, and what it said when it last stopped (the agent writes a JSON termination message:
// failure class, code, reason, next step; see docs/control-plane-contract.md).
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import type { FailureClass } from '../api/types.ts';
import { FAILURE_CLASSES } from '../api/types.ts';
import { AGENT_CONTAINER_NAME } from './storage-posture.ts';

export interface AgentTermination {
  exitCode: number;
  finishedAt?: string;
  failureClass?: FailureClass;
  code?: string;
  reason?: string;
  nextStep?: string;
}

export interface AgentPodFacts {
  podName: string;
  podUID: string;
  running: boolean;
  ready: boolean;
  restartCount: number;
  /** The current or last termination of the agent container, if any. */
  termination?: AgentTermination;
}

function containerStatus(pod: V1Pod): V1ContainerStatus | undefined {
  const statuses = pod.status?.containerStatuses ?? [];
  return (
    statuses.find((s) => s.name === AGENT_CONTAINER_NAME) ?? (statuses.length === 1 ? statuses[0] : undefined)
  );
}

/** Parses the agent's termination message; anything that is not the agent's JSON is kept as the reason. */
export function parseTerminationMessage(message: string | undefined): Omit<AgentTermination, 'exitCode'> {
  if (!message) return {};
  try {
    const parsed = JSON.parse(message) as Record<string, unknown>;
    const result: Omit<AgentTermination, 'exitCode'> = {};
    if (
      typeof parsed.failureClass === 'string' &&
      (FAILURE_CLASSES as readonly string[]).includes(parsed.failureClass)
    ) {
      result.failureClass = parsed.failureClass as FailureClass;
    }
    if (typeof parsed.code === 'string') result.code = parsed.code;
    if (typeof parsed.reason === 'string') result.reason = parsed.reason;
    if (typeof parsed.nextStep === 'string') result.nextStep = parsed.nextStep;
    return result;
  } catch {
    return { reason: message.slice(0, 512) };
  }
}

export function agentPodFacts(pod: V1Pod): AgentPodFacts {
  const status = containerStatus(pod);
  const terminated = status?.state?.terminated ?? status?.lastState?.terminated;
  const facts: AgentPodFacts = {
    podName: pod.metadata?.name ?? '',
    podUID: pod.metadata?.uid ?? '',
    running: status?.state?.running !== undefined,
    ready: status?.ready === true,
    restartCount: status?.restartCount ?? 0,
  };
  if (terminated) {
    facts.termination = {
      exitCode: terminated.exitCode,
      ...(terminated.finishedAt ? { finishedAt: new Date(terminated.finishedAt).toISOString() } : {}),
      ...parseTerminationMessage(terminated.message),
    };
  }
  return facts;
}
