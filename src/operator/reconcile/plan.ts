// plan(observed, now): the one pure decision of a reconcile pass. It reads what is (observe.ts),
// decides what should be, and returns it as ordered steps (plan-types.ts) for the act layer.
// Observed facts in the status are rebuilt from the world on every pass; the only things carried
// over from the previous status are the recovery procedure's progress record and the enrollment
// counters, which is what makes both crash-safe.
//
// It gates before it decides: the gates (gates.ts) are read first and handed to every phase, and a
// held phase returns no action and no Event that announces one. The phases, in the order their
// steps run:
//   report      storage posture, assessment (phase, diagnosis) and conditions: the first step,
//               written whatever happens to the others (with it the record of a recovery this
//               pass opens, which takes no action yet);
//   precheck    dry runs of the ConfigMap and StatefulSet, when a token is about to be minted;
//   register    the control-plane record (ensureConnector);
//   tokens      the recovery's when one is in progress, else the enrollment's: revoke, delete the
//               token Secret, mint;
//   workload    the ConfigMap, the StatefulSet, the claim's growth;
//   record      where the recovery is (with the scaling of an adopted workload it asks for);
//   notices     Events that report a blocker or the claim's growth.
import type { ConnectorStatus, DefaultedSpec, EnrollmentStatus, RecoveryStatus } from '../api/types.ts';
import {
  clearReconciling,
  markStalled,
  observedGenerationOf,
  StalledReasons,
  withReady,
} from '../conditions.ts';
import { diagnose, isIdentityLoss, refusedIdentityOfNeverPaired } from './assessment.ts';
import { childNames } from './desired-objects.ts';
import {
  type EnrollmentDecision,
  type EnrollmentInput,
  enrollmentSteps,
  MINT_PASS_SLACK_MS,
  pairingLost,
  planEnrollment,
  secretHoldsLiveToken,
} from './enrollment.ts';
import { connectorIdConflict, type Gates, gatesOf, held, heldBecause } from './gates.ts';
import type { ControlPlaneConnector, Observed, TokenSecretFacts } from './observed.ts';
import { stalledAlready } from './pass-status.ts';
import type { Plan, PlannedEvent, PlanStep } from './plan-types.ts';
import { agentPodFacts } from './pod-facts.ts';
import { recoveryPhase } from './recovery.ts';
import { recoverySteps } from './recovery-plan-steps.ts';
import { failedAutomaticRecovery, isRecoveryMintKey, pairedByFailedRecovery } from './recovery-requests.ts';
import { recoveryUnderway } from './recovery-stages.ts';
import type { RecoveryDecision } from './recovery-types.ts';
import { postureFor, reportPhase } from './report.ts';
import { currentPod } from './storage-posture.ts';
import { untrustedRecord } from './untrusted-text.ts';
import { workloadPhase } from './workload.ts';

/** Look again this often while something the operator does not watch blocks the Connector. */
export const BLOCKED_RECHECK_MS = 15_000;

export function plan(observed: Observed, now: Date): Plan {
  const connector = observed.connector;
  const previous: ConnectorStatus = connector.status ?? {};
  const generation = connector.metadata.generation;
  if (!observed.spec.ok) return invalidSpecPlan(previous, generation, observed.spec.error.message, now);
  const spec = observed.spec.value;
  const names = childNames(spec.name);
  const gates = gatesOf(observed, spec);
  // The record's free text (path details, the last enrollment failure) is the server's words. A
  // record this Connector may not claim (another Connector's, or one kept for another namespace) is
  // not its to show: planned as if there were none, its state, heartbeats, identity and path details
  // stay out of this Connector's status and Events, which its namespace's readers see.
  const othersRecord = connectorIdConflict(observed, spec) !== undefined;
  const record =
    observed.controlPlane.reachable && !othersRecord
      ? untrustedRecord(observed.controlPlane.record)
      : undefined;
  const pod = currentPod(observed.pods);
  const agent = pod ? agentPodFacts(pod) : undefined;
  const posture = postureFor(observed, spec, pod);
  const retired = record?.bootstrapRetired ?? previous.enrollment?.retired ?? false;
  const identityRefused = refusedIdentityOfNeverPaired(record, agent);
  const lostPairing = pairingLost(record, agent);
  const registration = registrationSteps(record, spec, gates);

  const enrollmentInput: EnrollmentInput = {
    connectorUID: connector.metadata.uid ?? '',
    record:
      record ??
      (registration.length > 0 && pod === undefined
        ? recordThisPassRegisters(observed, spec, now)
        : undefined),
    tokenSecret: observed.tokenSecret,
    previous: previous.enrollment,
    now,
    tokenSecretName: names.tokenSecret,
    held: held(gates) || !gates.controlPlaneReachable,
    identityRefused,
    pairingLost: lostPairing,
    ttlSeconds: spec.tokenTTLSeconds,
  };
  const planned = planEnrollment(enrollmentInput);
  const rawDiagnosis = diagnose({
    record,
    agent,
    posture,
    unpairedMints: retired ? 0 : (previous.enrollment?.mintCount ?? 0),
    recoveryPolicy: spec.recovery.policy,
    tokenExpiredUnused: planned.expiredUnused,
    held: heldBecause(gates),
    automaticRecoveryFailed: failedAutomaticRecovery(spec.connector.id, record, previous.recovery)?.requestId,
    recoveryFailedAfterPairing: pairedByFailedRecovery(record, previous.recovery),
  });
  const recovery = recoveryPhase(
    {
      connectorId: spec.connector.id,
      policy: spec.recovery.policy,
      requestedId: spec.recovery.requestId,
      validateRestart: spec.recovery.validateRestart,
      storage: spec.storage,
      previous: previous.recovery,
      record,
      identityLoss: isIdentityLoss(rawDiagnosis),
      identityRefused,
      phaseBefore: previous.phase,
      workload: observed.workload,
      pods: observed.pods,
      tokenSecret: observed.tokenSecret,
      claims: observed.claims,
      audit: observed.audit,
      check: observed.recoveryCheck,
      consumedMintKey: previous.enrollment?.consumedMintKey,
      now,
    },
    gates,
  );
  // A recovery's one token outlives no attempt: once none is under way (this pass ended it, or an
  // earlier one did and its revoke did not get through), the Secret's token is revoked and deleted.
  // The revoke does not depend on the Secret: deleted by hand before the attempt ended, its token
  // stays in the volume of a running pod (the kubelet does not empty it at once), and a restarted
  // container would pair with it outside any attempt.
  const endedRecovery =
    !recovery.inProgress &&
    (isRecoveryMintKey(observed.tokenSecret?.mintKey) ||
      endedRecoveryTokenLive(
        recovery.status,
        enrollmentInput.record,
        observed.tokenSecret,
        previous.enrollment,
        spec.tokenTTLSeconds,
        now,
      ));
  const enrollment = endedRecovery
    ? planEnrollment({ ...enrollmentInput, endedRecoveryToken: true })
    : planned;
  const workload = workloadPhase(observed, spec, gates, recovery);
  const recoveryPlan = recoverySteps({
    decision: recovery,
    previous: previous.recovery,
    connectorId: spec.connector.id,
    ttlSeconds: spec.tokenTTLSeconds,
    tokenSecretName: names.tokenSecret,
    enrollment: enrollment.status,
    adopted:
      spec.workloadRef && observed.workload && !held(gates)
        ? { kind: spec.workloadRef.kind, name: spec.workloadRef.name, replicas: observed.workload.replicas }
        : undefined,
  });
  // A recovery in progress mints its own one token (recovery-<requestId>): the enrollment's steps
  // give way to it, and its counters stay as they were.
  const tokenSteps = recovery.inProgress
    ? recoveryPlan.tokens
    : enrollmentSteps({
        decision: enrollment,
        connectorId: spec.connector.id,
        ttlSeconds: spec.tokenTTLSeconds,
        tokenSecretName: names.tokenSecret,
        retired,
        paired: Boolean(record?.certificate),
        pairingLost: lostPairing,
      });

  const { status: report, transitions } = reportPhase({
    observed,
    spec,
    gates,
    record,
    agent,
    pod,
    posture,
    retired,
    lostPairing,
    // A recovery in progress takes the token steps: the enrollment's restore (a mint) does not run,
    // so neither the Enrolled condition nor an Event may say the token is stored again.
    enrollment: recovery.inProgress ? withoutRestore(enrollment) : enrollment,
    diagnosis: rawDiagnosis,
    recovery,
    expansion: workload.expansion,
    now,
  });

  const mints = tokenSteps.some((step) => step.action?.kind === 'mintToken');
  // A blocker's Warning goes out when it is found or changes, not at every look while it holds.
  const newBlocker = stalledAlready(previous.conditions, gates.blocker) ? undefined : gates.blocker;
  const notices: PlannedEvent[] = [
    ...(newBlocker ? [{ type: 'Warning' as const, ...newBlocker }] : []),
    ...workload.expansion.notices,
  ];
  // No side effect before its precondition: a token is minted only for a workload Kubernetes will
  // accept. The ConfigMap (no token, no identity in it) is applied ahead of the mint, and the
  // StatefulSet that starts the agent is dry-run there and applied once the token is stored.
  const ahead = (step: PlanStep) => mints && step.action?.kind === 'applyConfigMap';
  // A new recovery record (a request at Requested, or a request id handled before, answered
  // without running) takes no action in this pass, and the report already speaks of it: phase
  // Recovering, Healthy "guided recovery r1 is in progress", their transition Events. So it is
  // written with the report, before anything else is taken: a pass that fails after the report
  // would otherwise write all that without the record, which is then not there to resume from.
  const opening = opensRecord(previous, recovery, recoveryPlan.record);
  const steps: PlanStep[] = [
    opening
      ? { status: { ...report, ...opening.status }, ...(opening.events ? { events: opening.events } : {}) }
      : { status: report },
    ...workload.steps.filter(ahead),
    ...(mints ? workload.dryRuns : []),
    ...registration,
    ...tokenSteps,
    ...workload.steps.filter((step) => !ahead(step)),
    ...(opening ? [] : recoveryPlan.record),
    ...(notices.length > 0 ? [{ events: notices }] : []),
  ];
  const requeues = [
    // What blocks the pass (a user's object, a missing workload or claim) may change without any
    // event the operator watches (it only watches its own labelled objects): look again soon.
    gates.blocker ? BLOCKED_RECHECK_MS : undefined,
    enrollment.requeueAfterMs,
    recovery.inProgress ? recovery.requeueAfterMs : undefined,
  ].filter((r): r is number => r !== undefined);
  // Nothing timed: the reconciler's periodic look (every Connector's, reconciler.ts) is the next one.
  return { steps, transitions, ...(requeues.length > 0 ? { requeueAfterMs: Math.min(...requeues) } : {}) };
}

/**
 * Whether the control plane's live token is the one token of a recovery attempt that is no longer
 * under way, with no Secret holding it (deleted by hand before the pass that ended the attempt).
 * The record does not say which key minted its live token, so it is recognised by what must have
 * happened: the attempt recorded reached TokenMinted (its mintKey is recorded only once its
 * revoke was seen done), and its mint revokes every other token; the enrollment mints nothing while
 * an attempt is under way, and each of its mints is recorded with its time (tokenMintedAt). So a
 * live token, with the enrollment's last mint from before the attempt began, is the attempt's. A
 * Secret holding the live token under an enrollment key (minted after the attempt by a pass that
 * died before its status write) says otherwise. The one mistake left is such a mint whose pass
 * died before storing the token too: revoked here, its key is then refused as consumed and the
 * next mint counts on from it (one token more; no token is left live that nobody holds).
 */
function endedRecoveryTokenLive(
  attempt: RecoveryStatus | undefined,
  record: ControlPlaneConnector | undefined,
  tokenSecret: TokenSecretFacts | undefined,
  enrollment: EnrollmentStatus | undefined,
  ttlSeconds: number,
  now: Date,
): boolean {
  if (!record?.liveToken || !isRecoveryMintKey(attempt?.mintKey)) return false;
  if (
    tokenSecret &&
    !isRecoveryMintKey(tokenSecret.mintKey) &&
    secretHoldsLiveToken(tokenSecret, record, now)
  )
    return false;
  // Minted before the attempt ended, the attempt's token expires within a TTL of that end. A token
  // that lives longer was minted after it, by someone the operator does not hear from (the plugin's
  // `token` mints the enrollment's next key for an adopted workload and records nothing): not the
  // attempt's, and not the operator's to revoke.
  const ended = attempt?.finishedAt ? Date.parse(attempt.finishedAt) : now.getTime();
  if (Date.parse(record.liveToken.expiresAt) > ended + ttlSeconds * 1000 + MINT_PASS_SLACK_MS) return false;
  const began = attempt?.startedAt ? Date.parse(attempt.startedAt) : Number.NaN;
  const lastMint = enrollment?.tokenMintedAt ? Date.parse(enrollment.tokenMintedAt) : Number.NaN;
  if (Number.isNaN(lastMint)) return true;
  return !Number.isNaN(began) && lastMint <= began;
}

/** The decision without its restore, for a pass whose enrollment steps do not run. */
function withoutRestore(decision: EnrollmentDecision): EnrollmentDecision {
  const { restoresSecret: _restore, ...rest } = decision;
  return rest;
}

/**
 * The record step of a recovery that this pass opens (no attempt was under way, and the decision
 * records another request id), when that step takes no action: its status and Events, to be
 * written with the report. Advancing, staying and ending keep their place, last in the pass: an
 * end is recorded only once what it gives back (replicas) was given.
 */
function opensRecord(
  previous: ConnectorStatus,
  recovery: RecoveryDecision,
  record: readonly PlanStep[],
): PlanStep | undefined {
  const opened = recovery.status;
  if (!opened || recoveryUnderway(previous.recovery?.step)) return undefined;
  if (opened.requestId === previous.recovery?.requestId) return undefined;
  const [step, ...rest] = record;
  if (!step || rest.length > 0 || step.action) return undefined;
  return step;
}

/** A spec the operator cannot use: say so, and decide nothing. */
function invalidSpecPlan(
  previous: ConnectorStatus,
  generation: number | undefined,
  message: string,
  now: Date,
): Plan {
  const stalled = markStalled(
    previous.conditions,
    {
      reason: StalledReasons.InvalidSpec,
      message,
      ...observedGenerationOf(generation),
    },
    now,
  );
  const conditions = withReady(clearReconciling(stalled), generation, now);
  const said = stalledAlready(previous.conditions, { reason: StalledReasons.InvalidSpec, message });
  return {
    steps: [
      {
        status: { ...previous, observedGeneration: generation ?? 0, conditions },
        ...(said ? {} : { events: [{ type: 'Warning' as const, reason: 'InvalidSpec', message }] }),
      },
    ],
    transitions: [],
  };
}

/**
 * The record this pass's registration creates (called only when this pass registers one and no pod
 * exists), for the enrollment to plan against: a Connector that has no record yet and no pod gets its first token in the pass that registers it. The token Secret
 * is then written before the StatefulSet (plan step order), so the agent's first start finds its
 * token; planned a pass later, the pod often started first, exited ENROLLMENT_TOKEN_MISSING and
 * waited out the kubelet's restart backoff (the tail of the 10,000-connector benchmark), and every
 * Connector took one more pass. The control plane creates a record pending, without token or
 * certificate; if it had one after all (the follower not yet told), the mint is refused there
 * (the act stops, nothing is applied) and the next pass plans against the real record. A pod, or
 * a bootstrap the status says retired (the record was lost in the control plane), leaves the
 * decision to the pass that sees the record.
 */
function recordThisPassRegisters(
  observed: Observed,
  spec: DefaultedSpec,
  now: Date,
): ControlPlaneConnector | undefined {
  if (observed.connector.status?.enrollment?.retired) return undefined;
  return {
    connectorId: spec.connector.id,
    org: spec.connector.org,
    endpointId: spec.connector.endpointId,
    allowedNetworks: spec.connector.allowedNetworks,
    state: 'pending',
    bootstrapRetired: false,
    lastHeartbeatAt: null,
    stateChangedAt: now.toISOString(),
    enrolledAt: null,
    paths: [],
    certificate: null,
    liveToken: null,
    recovery: null,
    lastEnrollmentFailure: null,
    ownerUid: observed.connector.metadata.uid ?? null,
    handoverNamespace: null,
    revision: 0,
  };
}

/**
 * The control-plane record: registered, or its configuration brought back, by one idempotent PUT.
 * An unowned record (retained by a deleted Connector, or from before ownership) is claimed by it.
 */
function registrationSteps(
  record: ControlPlaneConnector | undefined,
  spec: DefaultedSpec,
  gates: Gates,
): PlanStep[] {
  if (held(gates) || !gates.controlPlaneReachable) return [];
  const unowned = record !== undefined && record.ownerUid === null;
  if (record && !unowned && sameConfig(record, spec)) return [];
  return [
    {
      action: {
        kind: 'ensureConnector',
        connectorId: spec.connector.id,
        config: {
          org: spec.connector.org,
          endpointId: spec.connector.endpointId,
          allowedNetworks: spec.connector.allowedNetworks,
        },
      },
    },
  ];
}

function sameConfig(record: ControlPlaneConnector, spec: DefaultedSpec): boolean {
  return (
    record.org === spec.connector.org &&
    record.endpointId === spec.connector.endpointId &&
    JSON.stringify(record.allowedNetworks) === JSON.stringify(spec.connector.allowedNetworks)
  );
}
