// The conditions phase: what the pass's decisions mean as DurableStorage, Enrolled, Healthy,
// Stalled, Reconciling and Ready, written through conditions.ts (the one owner of
// status.conditions). Held by the gates, no condition says a token is minted or work is under way.
import type { V1StatefulSet } from '@kubernetes/client-node';
import type { Condition, ConnectorStatus, DefaultedSpec, RecoveryStatus } from '../api/types.ts';
import {
  CONDITION_TYPES,
  clearReconciling,
  clearStalled,
  EnrolledReasons,
  HealthyReasons,
  markReconciling,
  markStalled,
  observedGenerationOf,
  ReconcilingReasons,
  StalledReasons,
  setCondition,
  withReady,
} from '../conditions.ts';
import { childNames } from './desired-objects.ts';
import { type EnrollmentDecision, secretHoldsLiveToken } from './enrollment.ts';
import { type Gates, held, heldBecause } from './gates.ts';
import type { ControlPlaneConnector, Observed } from './observed.ts';
import type { AgentPodFacts } from './pod-facts.ts';
import { type RecoveryProgressInput, recoveryHeartbeat, recoveryProgress } from './recovery-progress.ts';
import { failedAutomaticRecovery, newRequestAsked } from './recovery-requests.ts';
import type { ExpansionDecision } from './storage-expansion.ts';
import type { StoragePosture } from './storage-posture.ts';
import { errorMessageText } from './untrusted-text.ts';

export interface ConditionsInput {
  observed: Observed;
  spec: DefaultedSpec;
  gates: Gates;
  /** The stored status: the conditions to update, and the recovery request under way. */
  previous: ConnectorStatus;
  generation: number | undefined;
  record: ControlPlaneConnector | undefined;
  agent: AgentPodFacts | undefined;
  /** The storage shown this pass (after a completed recovery, judged against the claim it paired on). */
  posture: StoragePosture;
  enrollment: Pick<EnrollmentDecision, 'expiredUnused' | 'revokedUnused' | 'restoresSecret'>;
  /** The agent proved the identity lost (assessment.ts), outside a recovery. */
  identityLost: boolean;
  lostPairing: boolean;
  recovery: { inProgress: boolean; status: RecoveryStatus | undefined };
  /** The diagnosis' next step, for RecoveryRequired. */
  nextStep: string | undefined;
  expansion: Pick<ExpansionDecision, 'stalled' | 'reconciling'>;
  now: Date;
}

export function connectorConditions(input: ConditionsInput): Condition[] {
  const { record, observed, now, recovery, gates } = input;
  const g = observedGenerationOf(input.generation);
  let conditions: Condition[] = [...(input.previous.conditions ?? [])];
  conditions = setCondition(
    conditions,
    {
      type: CONDITION_TYPES.DurableStorage,
      status: input.posture.status,
      reason: input.posture.reason,
      message: input.posture.message,
      ...g,
    },
    now,
  );
  conditions = setCondition(
    conditions,
    { type: CONDITION_TYPES.Enrolled, ...enrolledCondition(input), ...g },
    now,
  );
  conditions = setCondition(
    conditions,
    {
      type: CONDITION_TYPES.Healthy,
      ...healthyCondition(
        observed,
        record,
        recovery.inProgress && recoveryHeartbeat(progressInput(input)),
        input.identityLost,
      ),
      ...g,
    },
    now,
  );
  const stalled = stalledCondition(input) ?? input.expansion.stalled;
  // Set over the stored one, not cleared first: a stall that holds keeps its lastTransitionTime
  // (cleared and set again, it took this pass's time, and a status write, at every pass).
  conditions = stalled ? markStalled(conditions, { ...stalled, ...g }, now) : clearStalled(conditions);
  // A stalled Connector waits for a change: no progress to report. kstatus reads Reconciling before
  // Stalled, so both True at once would hide the stall from Flux and kstatus (InProgress, not Failed).
  // NeedsRecovery waits for a person or a recovery: not progress the operator is making either.
  const reconciling = stalled
    ? undefined
    : ((held(gates) || input.identityLost
        ? undefined
        : reconcilingCondition(
            observed,
            record,
            recovery.inProgress && recoveryProgress(progressInput(input)),
          )) ?? input.expansion.reconciling);
  conditions = reconciling
    ? markReconciling(conditions, { ...reconciling, ...g }, now)
    : clearReconciling(conditions);
  return withReady(conditions, input.generation, now);
}

/** What the texts of a recovery in progress are made from (recovery-progress.ts). */
function progressInput(input: ConditionsInput): RecoveryProgressInput {
  return {
    status: input.recovery.status,
    reachable: input.observed.controlPlane.reachable,
    record: input.record,
    agent: input.agent,
    tokenSecret: input.observed.tokenSecret,
  };
}

/** A recovery's failure reason, with the one way on (said once, whatever the reason already says). */
function failedRecoveryMessage(reason: string | undefined, wayOn: string): string {
  const said = reason ?? 'the recovery failed';
  return said.includes('spec.recovery.requestId') ? said : `${said}; ${wayOn}`;
}

/**
 * Stalled, first match wins: a blocker; the recovery the spec asked for failed (not one refused as
 * not needed: nothing holds the connector back for it); the automatic recovery of this incident
 * failed (it runs once per incident); a recovery required.
 */
function stalledCondition(input: ConditionsInput): { reason: string; message: string } | undefined {
  const { gates, recovery, spec, record } = input;
  if (gates.blocker) return gates.blocker;
  if (
    recovery.status?.step === 'Failed' &&
    recovery.status.outcome !== 'NotNeeded' &&
    spec.recovery.requestId === recovery.status.requestId
  ) {
    return {
      reason: StalledReasons.RecoveryFailed,
      message: failedRecoveryMessage(
        recovery.status.reason,
        'set a new spec.recovery.requestId to try again',
      ),
    };
  }
  const needsRecovery = record?.state === 'needs_recovery' || input.identityLost;
  const automatic = failedAutomaticRecovery(spec.connector.id, record, recovery.status);
  if (needsRecovery && automatic && !recovery.inProgress) {
    // Refused as not needed while the connector looked well, and its identity lost since: that
    // refusal's reason (no loss seen) is true of then, not of now.
    const what =
      automatic.outcome === 'NotNeeded'
        ? `the automatic recovery ${automatic.requestId} of this incident was refused as not needed, before the loss of the identity the operator sees now`
        : `the automatic recovery ${automatic.requestId} failed: ${automatic.reason ?? 'no reason recorded'}`;
    return {
      reason: StalledReasons.RecoveryFailed,
      message: failedRecoveryMessage(
        what,
        'it runs once per incident: set spec.recovery.requestId to a new value to run a guided recovery',
      ),
    };
  }
  if (needsRecovery && spec.recovery.policy === 'Manual' && !recovery.inProgress) {
    return {
      reason: StalledReasons.RecoveryRequired,
      message: input.nextStep ?? 'set spec.recovery.requestId to run a guided recovery',
    };
  }
  return lastKnownNeedForAction(input);
}

/**
 * While the control plane cannot be asked, the need for a person's action it last showed (its
 * record said needs_recovery: RecoveryRequired, or the automatic recovery of the incident failed:
 * RecoveryFailed) stays as it stood, as the phase does (report.ts): nothing newer is known, and a
 * person who must act would otherwise see it vanish while the operator can see nothing (Reconciling
 * RetryingAfterError reads as progress in kstatus, Argo CD and Flux). Not once the person acted: a
 * recovery under way, a new spec.recovery.requestId, or (for RecoveryRequired) policy Automatic.
 * Ready's message says the control plane is unreachable after the stall's (pass-status.ts).
 */
function lastKnownNeedForAction(input: ConditionsInput): { reason: string; message: string } | undefined {
  const { observed, recovery, spec, previous } = input;
  if (observed.controlPlane.reachable || recovery.inProgress) return undefined;
  if (newRequestAsked(spec.recovery.requestId, recovery.status)) return undefined;
  const stalled = previous.conditions?.find((c) => c.type === CONDITION_TYPES.Stalled && c.status === 'True');
  const needsPerson =
    stalled?.reason === StalledReasons.RecoveryFailed ||
    (stalled?.reason === StalledReasons.RecoveryRequired && spec.recovery.policy === 'Manual');
  return stalled && needsPerson ? { reason: stalled.reason, message: stalled.message } : undefined;
}

function enrolledCondition(input: ConditionsInput) {
  const { record, observed, enrollment, agent, now } = input;
  // What the operator does next, or that it waits: a held pass mints nothing.
  const hold = heldBecause(input.gates);
  const freshToken = (what: string) =>
    hold ? `no fresh ${what} is minted while ${hold}` : `a fresh ${what} is minted`;
  if (!observed.controlPlane.reachable) {
    return {
      status: 'Unknown' as const,
      reason: HealthyReasons.ControlPlaneUnreachable,
      message: errorMessageText(observed.controlPlane.error),
    };
  }
  if (record?.state === 'needs_recovery' || input.identityLost) {
    return {
      status: 'False' as const,
      reason: EnrolledReasons.NeedsRecovery,
      message: 'the persisted identity is lost; a guided recovery must mint a new token',
    };
  }
  if (record?.bootstrapRetired) {
    return {
      status: 'True' as const,
      reason: EnrolledReasons.BootstrapRetired,
      message: `paired at ${record.enrolledAt}; bootstrap retired, restarts use the persisted identity only`,
    };
  }
  // The token Secret was deleted (by hand) while its token is live and unused: the same token is
  // stored in it again (enrollment.ts restoresSecret), not a fresh one.
  const restored = enrollment.restoresSecret
    ? `the token Secret ${childNames(input.spec.name).tokenSecret} was deleted while its single-use token was live and unused (until ${enrollment.restoresSecret.expiresAt}): that same token is stored in it again (the control plane answers its mint key with it; no new token is minted)`
    : undefined;
  if (record?.state === 'enrolling' && input.lostPairing) {
    // Not retired yet: the control plane mints for the record, and the agent pairs again.
    const waiting = secretHoldsLiveToken(observed.tokenSecret, record, now);
    const lost = `the agent paired at ${record.enrolledAt} but lost that identity before its first heartbeat (bootstrap is not retired, so it pairs again with a fresh token)`;
    return {
      status: 'False' as const,
      reason: waiting || restored ? EnrolledReasons.TokenMinted : EnrolledReasons.AwaitingEnrollment,
      message: waiting
        ? `${lost}; a single-use token waits in Secret ${observed.tokenSecret?.name} until ${observed.tokenSecret?.expiresAt}`
        : `${lost}; ${restored ?? freshToken('token')}`,
    };
  }
  if (record?.state === 'enrolling') {
    return {
      status: 'True' as const,
      reason: EnrolledReasons.Enrolled,
      message: `paired at ${record.enrolledAt}; waiting for the first heartbeat`,
    };
  }
  const refusal = agent?.termination;
  if (refusal?.failureClass === 'FirstBootBootstrap' && refusal.code !== 'ENROLLMENT_TOKEN_MISSING') {
    return {
      status: 'False' as const,
      reason: EnrolledReasons.EnrollmentRejected,
      message: `the agent's enrollment was refused: ${[refusal.code, refusal.reason].filter(Boolean).join(': ')}`,
    };
  }
  if (restored) return { status: 'False' as const, reason: EnrolledReasons.TokenMinted, message: restored };
  if (enrollment.revokedUnused) {
    return {
      status: 'False' as const,
      reason: EnrolledReasons.TokenRevoked,
      message: `the token in Secret ${observed.tokenSecret?.name} was revoked in the control plane before the agent used it; its Secret is deleted and a fresh token is minted`,
    };
  }
  if (secretHoldsLiveToken(observed.tokenSecret, record, now)) {
    return {
      status: 'False' as const,
      reason: EnrolledReasons.TokenMinted,
      message: `a single-use token waits in Secret ${observed.tokenSecret?.name} until ${observed.tokenSecret?.expiresAt}`,
    };
  }
  if (enrollment.expiredUnused) {
    return {
      status: 'False' as const,
      reason: EnrolledReasons.TokenExpired,
      message: `the enrollment token expired before the connector paired; ${freshToken('one')}`,
    };
  }
  return { status: 'False' as const, reason: EnrolledReasons.AwaitingEnrollment, message: 'not paired yet' };
}

function healthyCondition(
  observed: Observed,
  record: ControlPlaneConnector | undefined,
  /** What is known of the agent while a recovery is in progress, if one is. */
  recovering: string | false,
  identityLost: boolean,
) {
  if (!observed.controlPlane.reachable) {
    return {
      status: 'Unknown' as const,
      reason: HealthyReasons.ControlPlaneUnreachable,
      message: errorMessageText(observed.controlPlane.error),
    };
  }
  if (identityLost && record?.state !== 'needs_recovery') {
    return {
      status: 'False' as const,
      reason: HealthyReasons.NeedsRecovery,
      message:
        record?.state === 'pending'
          ? 'the agent failed closed: its data directory holds an identity the control plane does not accept'
          : `the agent failed closed without its identity; the control plane still reports ${record?.state ?? 'no record'} until its heartbeat timeout`,
    };
  }
  if (recovering || record?.state === 'recovering') {
    return {
      status: 'False' as const,
      reason: HealthyReasons.Recovering,
      message: recovering || 'a guided recovery is in progress',
    };
  }
  switch (record?.state) {
    case 'online':
      return {
        status: 'True' as const,
        reason: HealthyReasons.HeartbeatOk,
        message: `heartbeats arrive; every path healthy`,
      };
    case 'degraded': {
      const bad = record.paths
        .filter((p) => !p.healthy)
        .map((p) => (p.detail ? `${p.name} (${p.detail})` : p.name));
      return {
        status: 'False' as const,
        reason: HealthyReasons.PathUnhealthy,
        message: `unhealthy path(s): ${bad.join(', ')}`,
      };
    }
    case 'offline':
      return {
        status: 'False' as const,
        reason: HealthyReasons.HeartbeatMissed,
        message: `no heartbeat since ${record.lastHeartbeatAt ?? 'pairing'}`,
      };
    case 'needs_recovery':
      return {
        status: 'False' as const,
        reason: HealthyReasons.NeedsRecovery,
        message: 'the control plane reports needs_recovery',
      };
    default:
      return {
        status: 'Unknown' as const,
        reason: HealthyReasons.NeverConnected,
        message: 'no heartbeat yet',
      };
  }
}

/**
 * Why a StatefulSet has not finished rolling out, if it has not: its controller has not seen the
 * latest spec, or some replicas still run an older revision (the rule kstatus applies to it).
 */
export function rolloutInProgress(sts: V1StatefulSet | undefined): string | undefined {
  if (!sts) return undefined;
  const generation = sts.metadata?.generation;
  const status = sts.status;
  if (generation !== undefined && (status?.observedGeneration ?? 0) < generation)
    return `the StatefulSet controller has not observed generation ${generation} yet`;
  const replicas = sts.spec?.replicas ?? 1;
  if (replicas > 0 && status?.updateRevision && status.currentRevision !== status.updateRevision)
    return `rolling out revision ${status.updateRevision}: ${status.updatedReplicas ?? 0} of ${replicas} replicas updated`;
  return undefined;
}

function reconcilingCondition(
  observed: Observed,
  record: ControlPlaneConnector | undefined,
  /** What the recovery in progress does and waits for, if one is. */
  recovering: string | false,
) {
  if (recovering) return { reason: ReconcilingReasons.Recovering, message: recovering };
  if (!observed.workload && !observed.connector.spec.workloadRef)
    return { reason: ReconcilingReasons.ApplyingResources, message: 'creating the workload' };
  const rollout = rolloutInProgress(observed.workload?.object);
  if (rollout) return { reason: ReconcilingReasons.RollingOut, message: rollout };
  if (!record || record.state === 'pending' || record.state === 'enrolling') {
    return {
      reason: ReconcilingReasons.Enrolling,
      message: 'waiting for the connector to pair and send its first heartbeat',
    };
  }
  return undefined;
}
