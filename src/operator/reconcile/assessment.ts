// Reading the control plane's record and the pod into the runbook's words: the phase, and the
// failure class with its evidence and next step. Each diagnosis rule is a small check; the first
// that matches wins (cert-manager's trigger policies are the model), and the table tests walk
// through the runbook's situations one by one.
import type { ConnectorPhase, Diagnosis, FailureClass, RecoveryPolicy } from '../api/types.ts';
import { DurableStorageReasons } from '../conditions.ts';
import type { ControlPlaneConnector } from './observed.ts';
import type { AgentPodFacts } from './pod-facts.ts';
import type { StoragePosture } from './storage-posture.ts';

const PHASE_OF_STATE: Record<string, ConnectorPhase> = {
  pending: 'Pending',
  enrolling: 'Enrolling',
  online: 'Online',
  degraded: 'Degraded',
  offline: 'Offline',
  needs_recovery: 'NeedsRecovery',
  recovering: 'Recovering',
};

/** The phase the control plane's state means; a guided recovery in progress shows as Recovering. */
export function phaseOf(
  record: ControlPlaneConnector | undefined,
  recoveryInProgress: boolean,
): ConnectorPhase {
  if (recoveryInProgress) return 'Recovering';
  if (!record) return 'Pending';
  return PHASE_OF_STATE[record.state] ?? 'Pending';
}

export interface DiagnosisInput {
  record: ControlPlaneConnector | undefined;
  agent: AgentPodFacts | undefined;
  posture: StoragePosture;
  /** How many tokens were minted while the connector never paired. */
  unpairedMints: number;
  recoveryPolicy: RecoveryPolicy;
  tokenExpiredUnused: boolean;
}

type Rule = (input: DiagnosisInput) => Omit<Diagnosis, 'since'> | undefined;

const RECOVERY_STEPS =
  'scale to zero, reattach the original durable storage or provision a new claim, revoke the stale token, mint one fresh single-use token, pair once, then validate a restart without a token';

function recoveryNextStep(policy: RecoveryPolicy): string {
  return policy === 'Automatic'
    ? `a guided recovery starts automatically (once for this incident): ${RECOVERY_STEPS}`
    : `set spec.recovery.requestId to a new value to run a guided recovery: ${RECOVERY_STEPS}`;
}

function agentEvidence(agent: AgentPodFacts | undefined): string[] {
  const t = agent?.termination;
  if (!agent || !t) return [];
  const said = [t.failureClass, t.code, t.reason].filter(Boolean).join(': ');
  return [
    `pod ${agent.podName}: agent exited ${t.exitCode}${said ? ` (${said})` : ''}, restarts ${agent.restartCount}`,
  ];
}

function storageEvidence(posture: StoragePosture): string[] {
  return posture.status === 'True' ? [] : [`storage: ${posture.message}`];
}

const retired = (input: DiagnosisInput) => input.record?.bootstrapRetired === true;

/** Runbook branch 3: the control plane says the connector needs recovery. */
const controlPlaneNeedsRecovery: Rule = (input) => {
  if (input.record?.state !== 'needs_recovery') return undefined;
  const failure = input.record.lastEnrollmentFailure;
  return {
    failureClass: 'IdentityLoss',
    reason: failure
      ? `the connector paired before, then tried to enroll again (${failure.code} at ${failure.at}): its persisted identity is gone`
      : 'the control plane marked the connector needs_recovery',
    evidence: [
      ...(failure ? [`control plane: 401 ${failure.code} after a previous pairing at ${failure.at}`] : []),
      ...agentEvidence(input.agent),
      ...storageEvidence(input.posture),
    ],
    nextStep: recoveryNextStep(input.recoveryPolicy),
  };
};

/** The claim behind the data directory was recreated after pairing: the identity went with the old one. */
const claimReplaced: Rule = (input) => {
  if (!retired(input) || input.posture.reason !== DurableStorageReasons.ClaimReplaced) return undefined;
  return {
    failureClass: 'IdentityLoss',
    reason: input.posture.message,
    evidence: [...storageEvidence(input.posture), ...agentEvidence(input.agent)],
    nextStep: `try to reattach the original volume first; if it is gone, ${recoveryNextStep(input.recoveryPolicy)}`,
  };
};

/** A paired connector's agent started without its identity and stopped (it fails closed). */
const agentLostIdentity: Rule = (input) => {
  const t = input.agent?.termination;
  if (!retired(input) || !t) return undefined;
  const lost =
    t.failureClass === 'IdentityLoss' ||
    t.code === 'ENROLLMENT_TOKEN_MISSING' ||
    t.failureClass === 'FirstBootBootstrap';
  if (!lost) return undefined;
  return {
    failureClass: 'IdentityLoss',
    reason:
      'the connector paired before, but its agent found no usable identity in the data directory and failed closed',
    evidence: [...agentEvidence(input.agent), ...storageEvidence(input.posture)],
    nextStep: recoveryNextStep(input.recoveryPolicy),
  };
};

/**
 * A connector that never paired (its record is pending) whose agent found an identity in the data
 * directory and stopped because the control plane refused it (IDENTITY_REJECTED, exit 13): the
 * identity belongs to no enrolled connector, typically because the claim is that of a Connector
 * deleted with deletionPolicy Release (which deleted the record and its certificate) and this one
 * reuses it. The agent does not use a token while that identity is there, so an enrollment token
 * cannot help; a guided recovery (whose token the agent pairs with, moving the refused identity
 * aside) does.
 */
export function refusedIdentityOfNeverPaired(
  record: ControlPlaneConnector | undefined,
  agent: AgentPodFacts | undefined,
): boolean {
  const t = agent?.termination;
  if (!t || !record || record.bootstrapRetired || record.state !== 'pending') return false;
  return (
    t.code === 'IDENTITY_REJECTED' && (t.failureClass === undefined || t.failureClass === 'IdentityLoss')
  );
}

const refusedIdentity: Rule = (input) => {
  if (!refusedIdentityOfNeverPaired(input.record, input.agent)) return undefined;
  return {
    failureClass: 'IdentityLoss',
    reason:
      'the data directory holds an identity the control plane does not accept (its certificate belongs to no enrolled connector), typically the claim of a Connector deleted with deletionPolicy Release; the agent does not replace it with a bootstrap token, so no token is held for it',
    evidence: [
      ...agentEvidence(input.agent),
      `control plane: ${input.record?.connectorId} is ${input.record?.state} and has no certificate since ${input.record?.stateChangedAt}`,
      ...storageEvidence(input.posture),
    ],
    nextStep: `${recoveryNextStep(input.recoveryPolicy)}; the agent moves the refused identity aside (identity.rejected-<time> in the data directory) and pairs once with the recovery's token`,
  };
};

/** Runbook branch 2: paired before, identity intact, heartbeats stopped. */
const reconnectFailure: Rule = (input) => {
  if (!retired(input) || input.record?.state !== 'offline') return undefined;
  const last = input.record.lastHeartbeatAt;
  return {
    failureClass: 'Reconnect',
    reason: `no heartbeat since ${last ?? 'the first pairing'}; the connector still holds its identity and should reconnect on its own`,
    evidence: [
      `control plane: offline since ${input.record.stateChangedAt}`,
      ...agentEvidence(input.agent),
      ...storageEvidence(input.posture),
    ],
    nextStep:
      'restore outbound HTTPS from the pod to the control plane, confirm the claim still holds the identity, restart the pod once, and check it returns Online without a new token',
  };
};

/** Runbook branch 1: never paired; the token, trust or network is the problem. */
const firstBootFailure: Rule = (input) => {
  if (retired(input) || input.record?.state === 'enrolling') return undefined;
  const t = input.agent?.termination;
  const failure = input.record?.lastEnrollmentFailure;
  const agentSaysBootstrap =
    t?.failureClass === 'FirstBootBootstrap' && t.code !== 'ENROLLMENT_TOKEN_MISSING';
  // One expired token is routine (it is re-minted at once); a second one means pairing keeps failing.
  const keepsExpiring = input.unpairedMints >= 2 && input.tokenExpiredUnused;
  if (!agentSaysBootstrap && !failure && !keepsExpiring) return undefined;
  const reasons: string[] = [];
  if (agentSaysBootstrap)
    reasons.push(`the agent's enrollment failed: ${t?.code ?? ''} ${t?.reason ?? ''}`.trim());
  if (failure) reasons.push(`the control plane refused an enrollment with ${failure.code} at ${failure.at}`);
  if (keepsExpiring) {
    reasons.push(`enrollment tokens expired unused (${Math.max(input.unpairedMints - 1, 1)} so far)`);
  }
  return {
    failureClass: 'FirstBootBootstrap',
    reason: `the connector never paired: ${reasons.join('; ')}`,
    evidence: [...agentEvidence(input.agent), ...storageEvidence(input.posture)],
    nextStep:
      'fix the trust (CA bundle), network or token problem the evidence names; the operator mints a fresh token when one expires or is revoked, and the agent retries pairing on its next start',
  };
};

const RULES: readonly Rule[] = [
  controlPlaneNeedsRecovery,
  claimReplaced,
  agentLostIdentity,
  refusedIdentity,
  reconnectFailure,
  firstBootFailure,
];

/**
 * Heartbeats arrive and the agent runs ready: the connector is well, whatever its container said
 * when it last stopped (a pod's lastState outlives the incident it describes), so no diagnosis.
 */
function connectorWell(input: DiagnosisInput): boolean {
  const state = input.record?.state;
  return (state === 'online' || state === 'degraded') && input.agent?.ready === true;
}

/** The runbook's failure class for what is observed, or undefined when nothing is wrong. */
export function diagnose(input: DiagnosisInput): Omit<Diagnosis, 'since'> | undefined {
  if (connectorWell(input)) return undefined;
  for (const rule of RULES) {
    const diagnosis = rule(input);
    if (diagnosis) return diagnosis;
  }
  return undefined;
}

/** Keeps `since` of an ongoing diagnosis of the same class, so the status does not churn. */
export function withSince(
  diagnosis: Omit<Diagnosis, 'since'> | undefined,
  previous: Diagnosis | undefined,
  now: Date,
): Diagnosis | undefined {
  if (!diagnosis) return undefined;
  const since =
    previous?.failureClass === diagnosis.failureClass && previous?.since
      ? previous.since
      : `${now.toISOString().slice(0, 19)}Z`;
  return { ...diagnosis, since };
}

export function isIdentityLoss(diagnosis: Omit<Diagnosis, 'since'> | undefined): boolean {
  return diagnosis?.failureClass === ('IdentityLoss' satisfies FailureClass);
}
