// What a guided recovery in progress is doing and waiting for, in words, for the Reconciling and
// Healthy conditions (and through them Ready, kubectl get, kstatus, Argo CD and Flux). "In progress"
// alone hid the one wait that has no bound: an agent that paired with the recovery's token but
// never beats (the control plane unreachable from the pod, clocks that disagree) keeps the recovery
// at AwaitingOnline for as long as that lasts, and only the agent's pod said why.
import type { RecoveryStatus, RecoveryStep } from '../api/types.ts';
import type { ControlPlaneConnector, TokenSecretFacts } from './observed.ts';
import type { AgentPodFacts } from './pod-facts.ts';

export interface RecoveryProgressInput {
  /** The recovery as this pass leaves it (its step after this pass's decision). */
  status: RecoveryStatus | undefined;
  record: ControlPlaneConnector | undefined;
  agent: AgentPodFacts | undefined;
  tokenSecret: TokenSecretFacts | undefined;
}

/** What each step does while it is the current one (the steps that wait on the agent say more). */
const DOING: Partial<Record<RecoveryStep, string>> = {
  Requested: "recording the workload's replicas",
  Checking: "waiting for the control plane's dry run of beginning the recovery",
  ScalingDown: 'the workload is scaled to zero; waiting until no pod of it runs',
  StorageReady: 'checking the claim for the data directory',
  TokensRevoked: 'the control plane begins the recovery: the stale token and certificate are revoked',
  TokenMinted: 'minting its one single-use token',
  ScalingUp: 'starting one replica',
  ValidatingRestart:
    'the pod is restarted once; waiting for the restarted agent to reconnect with the persisted identity and no token',
};

/** `guided recovery <id> at step <step>: <what it does or waits for>[; what the agent said since]`. */
export function recoveryProgress(input: RecoveryProgressInput): string {
  const { status } = input;
  const id = status?.requestId;
  const step = status?.step;
  const head = id ? `guided recovery ${id}` : 'a guided recovery';
  if (!step) return `${head} is in progress`;
  const doing = step === 'AwaitingOnline' ? awaitingOnline(input) : (DOING[step] ?? 'in progress');
  const agent = step === 'AwaitingOnline' || step === 'ValidatingRestart' ? agentSince(input) : '';
  return `${head} at step ${step}: ${doing}${agent}`;
}

function awaitingOnline({ status, record, tokenSecret }: RecoveryProgressInput): string {
  if (record?.state === 'online' || record?.state === 'degraded')
    return 'the agent beats; the spent token Secret is deleted';
  if (record && pairedInRecovery(record, status?.requestId ?? '')) {
    return `the agent paired at ${record.enrolledAt} with the recovery's token; waiting for its first heartbeat`;
  }
  const until = tokenSecret?.expiresAt ? ` (valid until ${tokenSecret.expiresAt})` : '';
  return tokenSecret
    ? `waiting for the agent to pair once with the token in Secret ${tokenSecret.name}${until}`
    : 'waiting for the agent to pair once with the recovery token';
}

/**
 * The agent's pod, when it is not running ready: its exit since the recovery began (an older one
 * describes the incident the recovery is for), else that it is not ready yet.
 */
function agentSince({ agent, status }: RecoveryProgressInput): string {
  if (!agent || agent.ready) return '';
  const t = agent.termination;
  const began = status?.startedAt ? new Date(status.startedAt).getTime() : Number.NaN;
  if (t?.finishedAt && new Date(t.finishedAt).getTime() >= began) {
    const said = [t.failureClass, t.code, t.reason].filter(Boolean).join(': ');
    return `; pod ${agent.podName}: the agent exited ${t.exitCode}${said ? ` (${said})` : ''} at ${t.finishedAt}, restarts ${agent.restartCount}`;
  }
  return `; pod ${agent.podName} is not ready (restarts ${agent.restartCount})`;
}

/**
 * The agent paired with recovery `requestId`'s token: the record holds a certificate issued since
 * the control plane began that recovery (both times the control plane's own clock).
 */
export function pairedInRecovery(record: ControlPlaneConnector | undefined, requestId: string): boolean {
  const begun = record?.recovery?.requestId === requestId ? record.recovery.startedAt : undefined;
  if (!record?.certificate || !record.enrolledAt || !begun) return false;
  return new Date(record.enrolledAt).getTime() >= new Date(begun).getTime();
}
