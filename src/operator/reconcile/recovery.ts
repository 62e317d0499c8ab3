// Guided recovery, the runbook's branch 3, as a crash-safe state machine. The step in
// status.recovery is the step being taken: it is written before its side effects happen, every
// side effect is idempotent (scale to N, begin recovery by request id, mint by an idempotency key
// derived from the request id), and a step advances only when its outcome is observed. A restarted
// operator therefore resumes where it was and never repeats an effect twice: one request mints at
// most one token, and that token pairs at most once. A failed pairing ends the attempt as Failed;
// it does not loop.
//
// No side effect before its precondition: the first step, Checking, asks the control plane whether
// it would begin this recovery (a dry run, recovery-check.ts) and a refusal ends the attempt before
// anything is scaled. What a recovery scales it gives back: the replicas the workload had are
// recorded with the request, and an attempt that fails or is abandoned after scaling down scales
// the workload back to them (the operator's own StatefulSet to its one replica).
//
// Gated before it decides: while the pass is held (paused, blocked) or the control plane cannot be
// asked, a recovery under way holds its step and none starts (recoveryPhase). recoverySteps turns a
// decision into the steps act.ts runs.
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import { isFailClosedExit } from '../../contract/agent-process.ts';
import { ANNOTATIONS } from '../api/constants.ts';
import type {
  AuditEntryRef,
  EnrollmentStatus,
  RecoveryPolicy,
  RecoveryStatus,
  RecoveryStep,
  StoragePlan,
} from '../api/types.ts';
import type { AuditEntry } from '../control-plane/admin-client.ts';
import { deleteTokenSecretStep } from './enrollment.ts';
import { type Gates, held } from './gates.ts';
import type {
  ClaimFacts,
  ControlPlaneConnector,
  RecoveryCheck,
  TokenSecretFacts,
  WorkloadFacts,
} from './observed.ts';
import type { ControlPlaneAction, PlannedEvent, PlanStep } from './plan-types.ts';
import { agentPodFacts } from './pod-facts.ts';
import { untrustedCode, untrustedText } from './untrusted-text.ts';

export const RECOVERY_POLL_MS = 2_000;
/** How long a scaled-down connector may still look online before a recovery calls itself not needed. */
export const ONLINE_GRACE_MS = 5 * 60_000;
const TERMINAL: readonly RecoveryStep[] = ['Completed', 'Failed'];

/** Whether a recorded recovery step is one of an attempt still under way (not Completed or Failed). */
export function recoveryUnderway(step: RecoveryStep | undefined): boolean {
  return step !== undefined && !TERMINAL.includes(step);
}
/** Steps that hold the workload at zero replicas (recorded before they are taken). */
const SCALED_DOWN: readonly RecoveryStep[] = ['ScalingDown', 'StorageReady', 'TokensRevoked', 'TokenMinted'];
/** Steps that run the one pod that pairs (and, after pairing, proves the identity persists). */
const SCALED_UP: readonly RecoveryStep[] = ['ScalingUp', 'AwaitingOnline', 'ValidatingRestart'];
/**
 * Steps before the control plane is asked to begin the recovery: a request withdrawn or replaced
 * now is abandoned. From TokensRevoked on the control plane may have revoked the identity, and only
 * the recovery's pairing gives the connector one again, so the attempt runs to its end.
 */
const ABANDONABLE: readonly RecoveryStep[] = ['Requested', 'Checking', 'ScalingDown', 'StorageReady'];
/** Ids of recoveries the operator started by itself (policy Automatic), as automaticRequestId makes them. */
const AUTOMATIC_ID = /^auto-[0-9a-f]{16}$/;
const EVIDENCE_TYPES = new Set([
  'endpoint.enrolled',
  'endpoint.bootstrap_retired',
  'gateway.enrollment_failed',
  'endpoint.cert_renewed',
  'recovery.started',
  'recovery.completed',
]);

export interface RecoveryInput {
  connectorId: string;
  policy: RecoveryPolicy;
  requestedId: string | undefined;
  validateRestart: boolean;
  storage: StoragePlan;
  previous: RecoveryStatus | undefined;
  record: ControlPlaneConnector | undefined;
  /** The current diagnosis says the identity is lost (for the Automatic policy). */
  identityLoss: boolean;
  /**
   * The agent of a connector that never paired stopped because the control plane refused the
   * identity in its data directory (assessment.ts, refusedIdentityOfNeverPaired): a recovery is
   * what fixes it, although the record is pending.
   */
  identityRefused?: boolean;
  phaseBefore: string | undefined;
  workload: WorkloadFacts | undefined;
  pods: V1Pod[];
  tokenSecret: TokenSecretFacts | undefined;
  claims: Map<string, ClaimFacts>;
  audit: AuditEntry[] | undefined;
  /** The control plane's dry-run answer while the recorded step is Checking (recovery-check.ts). */
  check?: RecoveryCheck | undefined;
  /**
   * A mint key the control plane refused as consumed in the last pass (status.enrollment
   * consumedMintKey): at TokenMinted, this recovery's token was minted and is spent unstored.
   */
  consumedMintKey?: string | undefined;
  now: Date;
}

export interface RecoveryDecision {
  status: RecoveryStatus | undefined;
  inProgress: boolean;
  /**
   * Replicas the workload must have now: 0 while scaled down, 1 to pair, and back to the replicas it
   * had when an attempt that scaled it down ends. Undefined: the recovery asks nothing of the
   * workload (an adopted one is left as it is; the operator's own StatefulSet keeps its replica).
   */
  replicas?: number;
  /** Restart marker for the pod template (validation restart). */
  restartFor?: string;
  controlPlane: ControlPlaneAction[];
  deleteSecret: boolean;
  mintKey?: string;
  events: PlannedEvent[];
  requeueAfterMs?: number;
}

const stamp = (now: Date) => `${now.toISOString().slice(0, 19)}Z`;

export function recoveryMintKey(requestId: string): string {
  return `recovery-${requestId}`;
}

/** One automatic recovery per incident: the incident is the control plane's state change that started it. */
export function automaticRequestId(connectorId: string, incidentAt: string): string {
  return `auto-${createHash('sha256').update(`${connectorId}|${incidentAt}`).digest('hex').slice(0, 16)}`;
}

/**
 * The automatic recovery of the current incident, when it ended Failed: it runs once per incident,
 * so until someone asks for a guided recovery nothing more happens, and status must say so.
 */
export function failedAutomaticRecovery(
  connectorId: string,
  record: { stateChangedAt: string } | undefined,
  recovery: RecoveryStatus | undefined,
): RecoveryStatus | undefined {
  if (!record || recovery?.step !== 'Failed') return undefined;
  return recovery.requestId === automaticRequestId(connectorId, record.stateChangedAt) ? recovery : undefined;
}

/** How many request ids handled before the current one a recovery record remembers. */
export const HANDLED_REQUEST_IDS_KEPT = 16;

/**
 * The request ids this Connector handled, oldest first: those the recovery record remembers, then
 * its own. A request id runs once, ever: none of these starts a recovery again.
 */
function handledRequestIds(previous: RecoveryStatus | undefined): string[] {
  return [...(previous?.handledRequestIds ?? []), ...(previous?.requestId ? [previous.requestId] : [])];
}

/**
 * What a new recovery record remembers: the ids handled before it (without its own), the newest
 * HANDLED_REQUEST_IDS_KEPT. The newest id the spec asked for is kept however many automatic
 * recoveries came after it: it may still be in the spec, and must not run again when it would fall out.
 */
function rememberedIds(handled: readonly string[], requestId: string): { handledRequestIds?: string[] } {
  const ids = handled.filter((id) => id !== requestId);
  let kept = ids.slice(-HANDLED_REQUEST_IDS_KEPT);
  const lastAsked = ids.findLast((id) => !AUTOMATIC_ID.test(id));
  if (lastAsked !== undefined && !kept.includes(lastAsked)) kept = [lastAsked, ...kept.slice(1)];
  return kept.length > 0 ? { handledRequestIds: kept } : {};
}

type NewRequest =
  | { kind: 'run'; requestId: string }
  /** spec.recovery.requestId went back to an id handled before: reported, not run again. */
  | { kind: 'handledBefore'; requestId: string };

function newRequest(input: RecoveryInput, handled: readonly string[]): NewRequest | undefined {
  const previousId = input.previous?.requestId;
  const asked = input.requestedId;
  if (asked && asked !== previousId) {
    if (!handled.includes(asked)) return { kind: 'run', requestId: asked };
    // The newest id the spec asked for, still in the spec after automatic recoveries replaced its
    // record, is the same request, answered already: nothing to say again. An older one is the spec
    // set back to it, which the status answers (it is not run again).
    const lastAsked = handled.findLast((id) => !AUTOMATIC_ID.test(id));
    if (asked !== lastAsked) return { kind: 'handledBefore', requestId: asked };
  }
  if (input.policy !== 'Automatic' || !input.record) return undefined;
  const incident =
    input.record.state === 'needs_recovery' ||
    (input.identityLoss && (input.record.bootstrapRetired || input.identityRefused === true));
  if (!incident) return undefined;
  // A pending record does not change state while its agent is refused, so this id is stable for the
  // incident, and a failed attempt is not repeated.
  const id = automaticRequestId(input.connectorId, input.record.stateChangedAt);
  return handled.includes(id) ? undefined : { kind: 'run', requestId: id };
}

/**
 * The record of a request id the spec set back to after it was handled: it ends Failed at once,
 * without running (no step, no scaling, no control-plane call), and says why.
 */
function notRunAgain(input: RecoveryInput, requestId: string, handled: readonly string[]): RecoveryDecision {
  const began =
    input.record?.recovery?.requestId === requestId
      ? `; the control plane already began recovery ${requestId} at ${untrustedText(input.record.recovery.startedAt, 64)}`
      : '';
  const reason = `request id ${requestId} was handled before${began}: a request id runs once per Connector, so it was not run again`;
  return {
    status: {
      requestId,
      step: 'Failed',
      attempts: 0,
      outcome: 'Failed',
      reason,
      finishedAt: stamp(input.now),
      ...rememberedIds(handled, requestId),
    },
    inProgress: false,
    controlPlane: [],
    deleteSecret: false,
    events: [
      {
        type: 'Warning',
        reason: 'RecoveryFailed',
        message: `recovery ${requestId} not run: ${reason}`,
        priority: 'always',
      },
    ],
  };
}

function podsOf(pods: V1Pod[]) {
  return pods.filter(
    (p) => p.metadata?.deletionTimestamp === undefined || p.metadata?.deletionTimestamp === null,
  );
}

const online = (record: ControlPlaneConnector | undefined) =>
  record !== undefined &&
  (record.state === 'online' || record.state === 'degraded') &&
  record.bootstrapRetired;

function auditRefs(audit: AuditEntry[] | undefined, since: string | undefined): AuditEntryRef[] {
  if (!audit || !since) return [];
  const from = new Date(since).getTime();
  return audit
    .filter((e) => EVIDENCE_TYPES.has(e.type) && new Date(e.at).getTime() >= from)
    .map((e) => ({ type: e.type, at: e.at, seq: e.seq }))
    .slice(-20);
}

function terminatedSince(pods: V1Pod[], since: string | undefined) {
  if (!since) return undefined;
  const from = new Date(since).getTime();
  for (const pod of pods) {
    const t = agentPodFacts(pod).termination;
    // Only a fail-closed exit (10-13: the agent refused to go on) ends a recovery; a pod killed by a
    // signal or a probe (143, 137) is restarted by Kubernetes and may still pair, and so may an agent
    // that exits 14 (the control plane unreachable, or CLOCK_SKEW: the identity is intact and a
    // restart once the clocks agree brings it online; the token's expiry bounds the wait).
    const failedClosed = t !== undefined && isFailClosedExit(t.exitCode);
    if (t?.finishedAt && failedClosed && new Date(t.finishedAt).getTime() >= from) {
      return { pod: pod.metadata?.name ?? '', termination: t };
    }
  }
  return undefined;
}

/**
 * The recovery of this pass under its gates. Held (paused, blocked) or without an answer from the
 * control plane, a recovery under way keeps its step and the replicas that step holds the workload
 * at, and none starts: no step is taken, no Event announces one.
 */
export function recoveryPhase(input: RecoveryInput, gates: Gates): RecoveryDecision {
  if (!held(gates) && gates.controlPlaneReachable) return planRecovery(input);
  const step = input.previous?.step;
  const underway = recoveryUnderway(step);
  const replicas = underway && step ? replicasDuring(step) : undefined;
  return {
    status: input.previous,
    inProgress: underway,
    controlPlane: [],
    deleteSecret: false,
    events: [],
    ...(replicas !== undefined ? { replicas } : {}),
  };
}

export interface RecoveryStepsInput {
  decision: RecoveryDecision;
  /** The recovery record as the stored status has it. */
  previous: RecoveryStatus | undefined;
  connectorId: string;
  ttlSeconds: number;
  tokenSecretName: string;
  /** The enrollment status as it stands (the token Secret a delete removes from it). */
  enrollment: EnrollmentStatus;
  /** The adopted workload, when there is one that consented: scaled when the recovery asks. */
  adopted?: { kind: 'StatefulSet' | 'Deployment'; name: string; replicas: number } | undefined;
}

export interface RecoverySteps {
  /** The token's steps, in act order: begin the recovery, revoke, delete the Secret, mint. */
  tokens: PlanStep[];
  /**
   * Last in the pass, after the workload is applied: the recovery record and its Events (with the
   * scaling of an adopted workload it asks for), so a step is recorded only once every effect of
   * the pass that took it happened (the replicas given back when an attempt ends among them).
   */
  record: PlanStep[];
}

/** The token steps of a recovery in progress, and the step that records where it is. */
export function recoverySteps(input: RecoveryStepsInput): RecoverySteps {
  const { decision, connectorId } = input;
  const tokens: PlanStep[] = [];
  if (decision.inProgress) {
    for (const call of decision.controlPlane) tokens.push({ action: call });
    if (decision.deleteSecret) tokens.push(deleteTokenSecretStep(input.tokenSecretName, input.enrollment));
    if (decision.mintKey) {
      tokens.push({
        action: {
          kind: 'mintToken',
          connectorId,
          idempotencyKey: decision.mintKey,
          ttlSeconds: input.ttlSeconds,
        },
      });
    }
  }
  // An adopted workload is scaled only when a recovery asks for a number: down, up to pair, or back
  // to the replicas it had when an attempt that scaled it ends. Otherwise it is the user's.
  const adopted = input.adopted;
  const wanted = decision.replicas;
  const scale =
    adopted && wanted !== undefined && adopted.replicas !== wanted
      ? {
          action: {
            kind: 'scaleAdopted' as const,
            workloadKind: adopted.kind,
            name: adopted.name,
            replicas: wanted,
          },
        }
      : {};
  const changed = !isDeepStrictEqual(decision.status, input.previous);
  const record: PlanStep[] =
    changed || decision.events.length > 0 || 'action' in scale
      ? [
          {
            ...scale,
            ...(changed && decision.status ? { status: { recovery: decision.status } } : {}),
            events: decision.events,
          },
        ]
      : [];
  return { tokens, record };
}

export function planRecovery(input: RecoveryInput): RecoveryDecision {
  const { now } = input;
  const idle: RecoveryDecision = {
    status: input.previous,
    inProgress: false,
    controlPlane: [],
    deleteSecret: false,
    events: [],
  };
  let status = input.previous;
  const events: PlannedEvent[] = [];

  if (!status || TERMINAL.includes(status.step ?? 'Completed')) {
    const handled = handledRequestIds(input.previous);
    const request = newRequest(input, handled);
    if (!request) return idle;
    if (request.kind === 'handledBefore') return notRunAgain(input, request.requestId, handled);
    const { requestId } = request;
    status = {
      requestId,
      step: 'Requested',
      attempts: 1,
      startedAt: stamp(now),
      evidence: {
        // The status shows NeedsRecovery whenever the diagnosis is identity loss (plan.ts), even
        // when the previous status, written before the diagnosis, did not yet.
        ...(input.identityLoss
          ? { phaseBefore: 'NeedsRecovery' }
          : input.phaseBefore
            ? { phaseBefore: input.phaseBefore }
            : {}),
        ...(input.record ? { controlPlaneStateBefore: input.record.state } : {}),
        // What a failed or abandoned attempt scales the workload back to. Recorded with the
        // request, in a pass that scales nothing, so a replayed pass cannot record the zero it set.
        ...(input.workload ? { replicasBefore: input.workload.replicas } : {}),
        windowStart: stamp(now),
      },
      ...rememberedIds(handled, requestId),
    };
    events.push({
      type: 'Normal',
      reason: 'RecoveryRequested',
      message: `guided recovery ${requestId} requested`,
    });
    return { status, inProgress: true, controlPlane: [], deleteSecret: false, events, requeueAfterMs: 0 };
  }

  const requestId = status.requestId ?? '';
  // An attempt that scaled the workload down gives back what it found when it ends.
  const restore = restoredReplicas(status);
  const advance = (step: RecoveryStep, extra: Partial<RecoveryStatus> = {}, why = ''): RecoveryDecision => {
    events.push({
      type: 'Normal',
      reason: 'RecoveryStep',
      message: `recovery ${requestId}: ${status?.step} done, now ${step}${why ? ` (${why})` : ''}`,
    });
    const replicas = replicasDuring(step);
    return {
      status: { ...status, ...extra, step },
      inProgress: true,
      controlPlane: [],
      deleteSecret: false,
      events,
      requeueAfterMs: 0,
      ...(replicas !== undefined ? { replicas } : {}),
    };
  };
  const fail = (reason: string): RecoveryDecision => {
    events.push({
      type: 'Warning',
      reason: 'RecoveryFailed',
      message: `recovery ${requestId} failed: ${reason}`,
      priority: 'always',
    });
    return {
      ...(restore !== undefined ? { replicas: restore } : {}),
      status: {
        ...status,
        step: 'Failed',
        outcome: 'Failed',
        reason,
        finishedAt: stamp(now),
        evidence: {
          ...status?.evidence,
          ...(input.record ? { controlPlaneStateAfter: input.record.state } : {}),
          auditEntries: auditRefs(input.audit, status?.startedAt),
          windowEnd: stamp(now),
        },
      },
      inProgress: false,
      controlPlane: [],
      deleteSecret: false,
      events,
    };
  };
  const stay = (decision: Partial<RecoveryDecision>): RecoveryDecision => ({
    status,
    inProgress: true,
    controlPlane: [],
    deleteSecret: false,
    events,
    requeueAfterMs: RECOVERY_POLL_MS,
    ...decision,
  });
  const live = podsOf(input.pods);

  const abandoned = abandonment(input, status);
  if (abandoned) {
    const back = restore !== undefined ? `; the workload is scaled back to ${restore} replica(s)` : '';
    return fail(`abandoned before the control plane began it: ${abandoned}${back}`);
  }

  switch (status.step) {
    case 'Requested':
      return advance('Checking');
    case 'Checking': {
      const record = input.record;
      // The control plane keeps the id of the last recovery it began, and treats that id as the same
      // request forever after (dry run allowed, beginRecovery a no-op, its token key spent). This
      // attempt has not begun it yet, so that id is an earlier attempt's: running it again would
      // scale the connector down and wait at TokensRevoked (or TokenMinted) for good.
      if (record?.recovery?.requestId === requestId) {
        return fail(
          `the control plane already began recovery ${requestId} at ${untrustedText(record.recovery.startedAt, 64)}, so this request id is spent; set a new spec.recovery.requestId`,
        );
      }
      // The control plane begins recoveries of paired connectors only, and answers
      // RECOVERY_NOT_NEEDED for a pending record. The recovery of an identity it refused on a
      // never-paired connector asks it for nothing of the kind (no beginRecovery: revoke, mint, pair
      // once), so its precondition is the refusal itself, which the agent reported: no dry run.
      if (record?.state === 'pending' && refusedIdentityRecovery(input, status)) {
        return advance(
          'ScalingDown',
          {},
          'no dry run: the agent of this never-paired connector stopped on an identity the control plane refuses, and this recovery only revokes, mints and pairs once',
        );
      }
      const check = input.check?.requestId === requestId ? input.check : undefined;
      if (!check) return stay({});
      if (check.allowed) return advance('ScalingDown');
      const stillOnline = record?.state === 'online' || record?.state === 'degraded';
      // Requested on a proven identity loss, and no agent runs ready since: a pass between two pod
      // instances of an agent that keeps failing closed (its pod recreated, the new agent not
      // stopped yet) has no termination to show, but the loss has not gone away. Only an agent
      // that runs ready again (heartbeats, the identity intact after all) makes it "not needed".
      const lossStands =
        status.evidence?.phaseBefore === 'NeedsRecovery' && !live.some((p) => agentPodFacts(p).ready);
      if (check.code === 'RECOVERY_NOT_NEEDED' && stillOnline && (input.identityLoss || lossStands)) {
        // The agent failed closed (or its claim was replaced), so it sends no heartbeat; the control
        // plane marks it offline after a few missed ones. Wait for that without touching the workload.
        const since = new Date(status.startedAt ?? now).getTime();
        if (now.getTime() - since < ONLINE_GRACE_MS) return stay({});
      }
      return fail(
        `the control plane refused the recovery, so nothing was scaled: ${check.code}: ${check.message}`,
      );
    }
    case 'ScalingDown': {
      const scaledDown =
        input.pods.length === 0 && (input.workload === undefined || input.workload.replicas === 0);
      return scaledDown ? advance('StorageReady') : stay({ replicas: 0 });
    }
    case 'StorageReady': {
      if (input.storage.kind === 'ExistingClaim') {
        const claim = input.claims.get(input.storage.claimName);
        if (!claim || claim.deleting) {
          return fail(
            `spec.storage.existingClaim ${input.storage.claimName} does not exist: reattach the original durable storage (recreate the claim bound to the original volume), then set a new spec.recovery.requestId`,
          );
        }
      }
      return advance('TokensRevoked');
    }
    case 'TokensRevoked': {
      const record = input.record;
      if (record && record.state !== 'recovering') {
        if (record.state === 'online' || record.state === 'degraded') {
          // No pod runs now, so "online" is either the control plane not having noticed yet (it
          // marks a silent connector offline after a few missed heartbeats) or a connector alive
          // elsewhere with its identity. Wait out the first; only the second means "not needed".
          const since = new Date(status.startedAt ?? now).getTime();
          if (now.getTime() - since < ONLINE_GRACE_MS) return stay({ replicas: 0 });
          return fail(
            `not needed: the control plane still reports the connector ${record.state} ${Math.round(ONLINE_GRACE_MS / 60_000)} minutes after its pod stopped, so its identity is intact (is another copy of it running?)`,
          );
        }
        if (!record.bootstrapRetired && (record.state === 'pending' || record.state === 'enrolling')) {
          if (record.state === 'pending' && refusedIdentityRecovery(input, status)) {
            // The control plane begins recoveries of paired connectors only (a pending record has
            // no certificate to revoke): revoke the live token, delete its Secret, then mint.
            if (record.liveToken === null && input.tokenSecret === undefined)
              return advance('TokenMinted', { mintKey: recoveryMintKey(requestId) });
            return stay({
              replicas: 0,
              controlPlane: [{ kind: 'revokeTokens', connectorId: input.connectorId }],
              deleteSecret: input.tokenSecret !== undefined && !input.tokenSecret.deleting,
            });
          }
          return fail(
            'not needed: the connector never paired, so normal enrollment applies (the operator mints a token)',
          );
        }
      }
      const revoked =
        record?.state === 'recovering' &&
        record.recovery?.requestId === requestId &&
        input.tokenSecret === undefined;
      if (revoked) return advance('TokenMinted', { mintKey: recoveryMintKey(requestId) });
      return stay({
        replicas: 0,
        controlPlane: [
          { kind: 'beginRecovery', connectorId: input.connectorId, requestId },
          { kind: 'revokeTokens', connectorId: input.connectorId },
        ],
        deleteSecret: input.tokenSecret !== undefined && !input.tokenSecret.deleting,
      });
    }
    case 'TokenMinted': {
      const key = recoveryMintKey(requestId);
      if (input.tokenSecret?.mintKey === key) return advance('ScalingUp');
      // A pass minted the one token and stopped before storing it; by now it is revoked or expired,
      // and the control plane refuses its key for good. One request mints one token: end here.
      if (input.consumedMintKey === key) {
        return fail(
          'its one token was minted by a pass that stopped before storing it in the token Secret, and the control plane now refuses its key as consumed (the token was revoked or expired unused)',
        );
      }
      return stay({ replicas: 0, mintKey: key, requeueAfterMs: 0 });
    }
    case 'ScalingUp':
      return input.workload === undefined || input.workload.replicas >= 1
        ? advance('AwaitingOnline')
        : stay({ replicas: 1 });
    case 'AwaitingOnline': {
      const record = input.record;
      if (record?.state === 'needs_recovery') {
        const failure = record.lastEnrollmentFailure;
        return fail(
          `pairing was refused${failure ? ` (${untrustedCode(failure.code)} at ${untrustedText(failure.at, 64)})` : ''}; the connector needs recovery again`,
        );
      }
      const stopped = terminatedSince(live, status.startedAt);
      if (stopped && !online(record)) {
        const t = stopped.termination;
        return fail(
          // The termination message is whatever the container wrote (an adopted image is anyone's).
          `the agent in pod ${stopped.pod} stopped with exit code ${t.exitCode} (${untrustedText([t.failureClass, t.code, t.reason].filter(Boolean).join(': '))}) instead of pairing`,
        );
      }
      const expiresAt = input.tokenSecret?.expiresAt;
      if (!online(record) && expiresAt && new Date(expiresAt).getTime() <= now.getTime()) {
        return fail(
          `the recovery token expired at ${expiresAt} before the connector paired; set a new spec.recovery.requestId to try again`,
        );
      }
      if (!online(record)) return stay({ replicas: 1 });
      // Retired: the token is spent; its Secret goes before the validation restart proves it is not needed.
      if (input.tokenSecret !== undefined)
        return stay({ replicas: 1, deleteSecret: !input.tokenSecret.deleting, requeueAfterMs: 500 });
      const canValidate =
        input.validateRestart && input.storage.kind !== 'EmptyDir' && input.storage.kind !== 'Adopted';
      return canValidate
        ? advance('ValidatingRestart')
        : complete(input, status, events, skippedValidation(input));
    }
    case 'ValidatingRestart': {
      const record = input.record;
      if (record?.state === 'needs_recovery') {
        return fail(
          'the connector asked for a token again after the validation restart: its identity did not survive on the data volume',
        );
      }
      const restarted = live.find((p) => p.metadata?.annotations?.[ANNOTATIONS.restartedFor] === requestId);
      const facts = restarted ? agentPodFacts(restarted) : undefined;
      // An agent that starts with an empty data directory and no token (its Secret went when the
      // connector paired) says ENROLLMENT_TOKEN_MISSING: the identity did not persist either.
      const t = facts?.termination;
      if (facts && t && (t.failureClass === 'IdentityLoss' || t.code === 'ENROLLMENT_TOKEN_MISSING')) {
        return fail(
          `after the validation restart the agent in pod ${facts.podName} found no identity: ${t.reason ?? t.code ?? ''}`,
        );
      }
      const startedAt = restarted?.status?.startTime
        ? new Date(restarted.status.startTime).getTime()
        : undefined;
      const beatAfterRestart =
        startedAt !== undefined &&
        record?.lastHeartbeatAt !== null &&
        record?.lastHeartbeatAt !== undefined &&
        new Date(record.lastHeartbeatAt).getTime() > startedAt;
      if (restarted && facts?.ready && online(record) && beatAfterRestart) {
        const proof = `after the validation restart, pod ${facts.podName} (started ${new Date(startedAt ?? 0).toISOString()}) reconnected with the persisted identity (certificate ${record?.certificate?.serial ?? 'unknown'}) and heartbeat at ${record?.lastHeartbeatAt}; no token was mounted`;
        return complete(input, status, events, proof);
      }
      return stay({ replicas: 1, restartFor: requestId });
    }
    default:
      return idle;
  }
}

/**
 * Whether this recovery of a never-paired connector is for an identity the control plane refused:
 * the agent says so now, or (its pod is scaled away by now) the recovery was requested while the
 * status showed NeedsRecovery for the pending record, which only that diagnosis does.
 */
function refusedIdentityRecovery(input: RecoveryInput, status: RecoveryStatus): boolean {
  if (input.identityRefused) return true;
  return (
    status.evidence?.phaseBefore === 'NeedsRecovery' && status.evidence.controlPlaneStateBefore === 'pending'
  );
}

function skippedValidation(input: RecoveryInput): string {
  const why =
    input.storage.kind === 'EmptyDir'
      ? 'spec.storage.ephemeral is true, so a restart would lose the identity by design'
      : input.storage.kind === 'Adopted'
        ? 'the workload is adopted, so the operator does not restart it'
        : 'spec.recovery.validateRestart is false';
  return `connector paired with the recovery token and is ${input.record?.state} (certificate ${input.record?.certificate?.serial ?? 'unknown'}); restart validation skipped: ${why}`;
}

function complete(
  input: RecoveryInput,
  status: RecoveryStatus,
  events: PlannedEvent[],
  proof: string | undefined,
): RecoveryDecision {
  events.push({
    type: 'Normal',
    reason: 'RecoverySucceeded',
    message: `recovery ${status.requestId} completed: the connector is ${input.record?.state}`,
    priority: 'always',
  });
  return {
    status: {
      ...status,
      step: 'Completed',
      outcome: 'Succeeded',
      finishedAt: stamp(input.now),
      evidence: {
        ...status.evidence,
        phaseAfter: input.record?.state === 'degraded' ? 'Degraded' : 'Online',
        ...(input.record ? { controlPlaneStateAfter: input.record.state } : {}),
        ...(proof ? { proof } : {}),
        auditEntries: auditRefs(input.audit, status.startedAt),
        windowEnd: stamp(input.now),
      },
    },
    inProgress: false,
    controlPlane: [],
    deleteSecret: false,
    events,
    // Paired: the workload runs as it did before the recovery (an adopted one with its replicas).
    ...(status.step !== undefined && SCALED_UP.includes(status.step)
      ? { replicas: restoredReplicasOf(status) }
      : {}),
  };
}

/** The replicas a step holds the workload at, if it asks for any (Requested and Checking do not). */
function replicasDuring(step: RecoveryStep): number | undefined {
  if (SCALED_DOWN.includes(step)) return 0;
  if (SCALED_UP.includes(step)) return 1;
  return undefined;
}

/** What the workload is given back: the replicas recorded with the request (1 when none were). */
function restoredReplicasOf(status: RecoveryStatus): number {
  return status.evidence?.replicasBefore ?? 1;
}

/** The replicas to give back if the attempt ends now: only once it has scaled the workload. */
function restoredReplicas(status: RecoveryStatus): number | undefined {
  const step = status.step;
  const scaled = step !== undefined && (SCALED_DOWN.includes(step) || SCALED_UP.includes(step));
  return scaled ? restoredReplicasOf(status) : undefined;
}

/**
 * Why a recovery the spec asked for is abandoned, if it is: spec.recovery.requestId removed or
 * set to another request before the control plane began this one. A recovery the operator
 * started by itself (policy Automatic) was not asked by the spec, so the spec cannot withdraw it.
 */
function abandonment(input: RecoveryInput, status: RecoveryStatus): string | undefined {
  const step = status.step;
  const id = status.requestId ?? '';
  if (step === undefined || !ABANDONABLE.includes(step) || AUTOMATIC_ID.test(id)) return undefined;
  if (input.requestedId === undefined) return 'spec.recovery.requestId was removed';
  if (input.requestedId !== id) return `spec.recovery.requestId was replaced by ${input.requestedId}`;
  return undefined;
}
