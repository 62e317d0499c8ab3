// Facts about the agent's container in a pod: whether it runs and is ready, how often it
// restarted, and what it said when it last stopped (the agent writes a JSON termination message:
// failure class, code, reason, next step; see docs/control-plane-contract.md).
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import type { TerminationMessage } from '../../contract/agent-process.ts';
import type { FailureClass } from '../api/types.ts';
import { FAILURE_CLASSES } from '../api/types.ts';
import { AGENT_CONTAINER_NAME } from './storage-posture.ts';
import { untrustedCode, untrustedText } from './untrusted-text.ts';

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

/**
 * Whether the termination ended before `at` (a time of the control plane's, to the millisecond).
 * Kubernetes keeps finishedAt in whole seconds, so an exit in the second of `at` may be either side
 * of it: `sameSecond` says which way such an exit is read. 'before' fits an exit that precedes what
 * it is compared with (a first start that found no token yet, then paired); 'after' fits one that
 * can only follow it: the agent whose data directory does not take the certificate it was just
 * issued exits milliseconds after the pairing, and its "...:04Z" read as before a pairing at
 * "...:04.615Z" hid it from the diagnosis.
 */
export function endedBefore(t: AgentTermination, at: string, sameSecond: 'before' | 'after'): boolean {
  if (!t.finishedAt) return false;
  const atMs = new Date(at).getTime();
  return new Date(t.finishedAt).getTime() < (sameSecond === 'after' ? Math.floor(atMs / 1000) * 1000 : atMs);
}

function containerStatus(pod: V1Pod): V1ContainerStatus | undefined {
  const statuses = pod.status?.containerStatuses ?? [];
  return (
    statuses.find((s) => s.name === AGENT_CONTAINER_NAME) ?? (statuses.length === 1 ? statuses[0] : undefined)
  );
}

// A termination message is written by whatever runs in the container (an adopted workload's pod is
// anyone's), and it reaches the diagnosis, conditions and Events: it is cleaned like any text from
// elsewhere (bounded, one printable line, secrets redacted).
const MAX_REASON = 300;
const MAX_NEXT_STEP = 600;

/**
 * The fields of the agent's termination message (the contract's TerminationMessage, so a field the
 * contract renames stops compiling here), plus `msg`: a log line's text under FallbackToLogsOnError.
 */
type TerminationFields = Partial<Record<keyof TerminationMessage | 'msg', unknown>>;

function fromAgentJson(parsed: TerminationFields): Omit<AgentTermination, 'exitCode'> {
  const result: Omit<AgentTermination, 'exitCode'> = {};
  if (
    typeof parsed.failureClass === 'string' &&
    (FAILURE_CLASSES as readonly string[]).includes(parsed.failureClass)
  ) {
    result.failureClass = parsed.failureClass as FailureClass;
  }
  if (typeof parsed.code === 'string') result.code = untrustedCode(parsed.code);
  const reason =
    typeof parsed.reason === 'string'
      ? parsed.reason
      : typeof parsed.msg === 'string'
        ? parsed.msg
        : undefined;
  if (reason) result.reason = untrustedText(reason, MAX_REASON);
  if (typeof parsed.nextStep === 'string') result.nextStep = untrustedText(parsed.nextStep, MAX_NEXT_STEP);
  return result;
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Parses the agent's termination message. With terminationMessagePolicy FallbackToLogsOnError the
 * message may instead be the tail of the log, whose last JSON line with a failure class is the
 * agent's fail-closed line; anything else is kept, shortened, as the reason.
 */
export function parseTerminationMessage(message: string | undefined): Omit<AgentTermination, 'exitCode'> {
  if (!message) return {};
  const whole = parseObject(message);
  if (whole) return fromAgentJson(whole);
  const lines = message
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .reverse();
  for (const line of lines) {
    const parsed = parseObject(line);
    if (parsed && (typeof parsed.failureClass === 'string' || typeof parsed.code === 'string'))
      return fromAgentJson(parsed);
  }
  return { reason: untrustedText(lines[0] ?? message, MAX_REASON) };
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
