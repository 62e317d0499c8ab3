// What a guided recovery in progress is doing and waiting for, in words for the conditions (and
// through them Ready, kubectl get, kstatus, Argo CD and Flux). "In progress" alone hid the one wait
// that has no bound: an agent that paired with the recovery's token but never beats (the control
// plane unreachable from the pod, clocks that disagree) keeps the recovery at AwaitingOnline for as
// long as that lasts, and only the agent's pod said why.
//
// Two texts. Reconciling names the step the pass moves to and what it does there; a pass that fails
// on the way replaces Reconciling with the error (pass-status.ts), so it never names a step that
// status.recovery does not reach. Healthy says only what holds whatever the step: whether the
// agent paired with this recovery's token, and what its pod said since the recovery began.
import type { RecoveryStatus, RecoveryStep } from '../api/types.ts';
import type { ControlPlaneConnector, TokenSecretFacts } from './observed.ts';
import type { AgentPodFacts } from './pod-facts.ts';
import { recoveryMintKey } from './recovery-requests.ts';

export interface RecoveryProgressInput {
  /** The recovery as this pass leaves it (its step after this pass's decision). */
  status: RecoveryStatus | undefined;
  /** Whether the control plane answered this pass (without it, `record` says nothing). */
  reachable: boolean;
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

/** Reconciling's text: `guided recovery <id> at step <step>: <what it does or waits for>[; the agent]`. */
export function recoveryProgress(input: RecoveryProgressInput): string {
  const step = input.status?.step;
  const head = recoveryName(input.status);
  if (!step) return `${head} is in progress`;
  const doing = step === 'AwaitingOnline' ? awaitingOnline(input) : (DOING[step] ?? 'in progress');
  const agent = step === 'AwaitingOnline' || step === 'ValidatingRestart' ? agentSince(input) : '';
  return `${head} at step ${step}: ${doing}${agent}`;
}

/**
 * Healthy's text while a recovery runs: no heartbeat is judged, and what is known of the agent
 * whatever the step (none of its pods runs before the recovery scales it up).
 */
export function recoveryHeartbeat(input: RecoveryProgressInput): string {
  const { record, status } = input;
  const paired =
    input.reachable && record && pairedInRecovery(record, status?.requestId ?? '') && !beats(record)
      ? `; the agent paired at ${record.enrolledAt} with its token and has not beaten since`
      : '';
  return `${recoveryName(status)} is in progress${paired}${agentSince(input)}`;
}

const recoveryName = (status: RecoveryStatus | undefined) =>
  status?.requestId ? `guided recovery ${status.requestId}` : 'a guided recovery';

const beats = (record: ControlPlaneConnector) => record.state === 'online' || record.state === 'degraded';

function awaitingOnline({ status, reachable, record, tokenSecret }: RecoveryProgressInput): string {
  if (!reachable) return 'the control plane does not answer, so whether the agent paired is not known';
  if (record && beats(record)) return 'the agent beats; the spent token Secret is deleted';
  if (record && pairedInRecovery(record, status?.requestId ?? '')) {
    return `the agent paired at ${record.enrolledAt} with the recovery's token; waiting for its first heartbeat`;
  }
  // Named only when it is this recovery's token (its mint key) and not on its way out.
  const ours =
    tokenSecret && !tokenSecret.deleting && tokenSecret.mintKey === recoveryMintKey(status?.requestId ?? '');
  const until = ours && tokenSecret.expiresAt ? ` (valid until ${tokenSecret.expiresAt})` : '';
  return ours
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
