// What a pass writes and records once act.ts ran its steps: the status changes and Events of the
// steps that ran, in their order, and, when a step failed (or the control plane could not be
// asked), the error in a condition. A step that did not run changes nothing: the progress records
// it would have advanced (mint counter, recovery step) stay as the stored status had them.
import type { CodedError } from '../../lib/errors.ts';
import type { Condition, ConnectorStatus } from '../api/types.ts';
import {
  CONDITION_TYPES,
  clearReconciling,
  findCondition,
  isConditionTrue,
  markReconciling,
  markStalled,
  observedGenerationOf,
  ReconcilingReasons,
  StalledReasons,
  withReady,
} from '../conditions.ts';
import { withLiveToken } from './live-token.ts';
import type { Plan, PlannedEvent, PlanStep } from './plan-types.ts';
import { errorMessageText, errorText } from './untrusted-text.ts';

/** How far a pass got: the steps that ran (a prefix of the plan's), and what stopped it. */
export interface PassOutcome {
  ran: number;
  error?: CodedError;
}

/** Control-plane answers that no retry can fix: stall with the reason until the spec or credential changes. */
const STALLING_CODES: Record<string, string> = {
  UNAUTHORIZED: StalledReasons.ControlPlaneUnauthorized,
  TTL_TOO_LONG: StalledReasons.ControlPlaneRejected,
  INVALID_REQUEST: StalledReasons.ControlPlaneRejected,
  RECOVERY_REQUIRED: StalledReasons.ControlPlaneRejected,
  [StalledReasons.ControlPlaneConfigInvalid]: StalledReasons.ControlPlaneConfigInvalid,
  // Kubernetes refused an object built from the spec: the spec must change (spec-fields.ts).
  [StalledReasons.InvalidSpec]: StalledReasons.InvalidSpec,
  // Another Connector owns the control-plane record of this connector id.
  CONNECTOR_ID_CONFLICT: StalledReasons.ConnectorIdConflict,
};

/**
 * Whether `conditions` (the stored status's) already say Stalled for this very cause, reason and
 * message. A stalled Connector is passed over again (its periodic look, a change of its own
 * children, another Connector's control plane checked), and each pass meets the same cause: its
 * Event and error log are for a change of cause, not for every pass that meets it again.
 */
export function stalledAlready(
  conditions: readonly Condition[] | undefined,
  stall: { reason: string; message: string } | undefined,
): boolean {
  const stored = findCondition(conditions, CONDITION_TYPES.Stalled);
  if (stall === undefined || stored?.status !== 'True') return false;
  if (stored.reason === stall.reason && stored.message === stall.message) return true;
  // Said as the stall a permanent error displaced (withError): the cause is in the status already.
  return stored.reason !== stall.reason && stored.message.endsWith(displacedText(stall));
}

/**
 * How a Stalled condition's message keeps the stall a permanent error took its place from (a
 * blocker, a recovery that needs a person): both hold, and each is fixed on its own, so the status
 * names both, and a later pass that meets the same two knows both were said (stalledAlready).
 */
function displacedText(stall: { reason: string; message: string }): string {
  return `; besides, Stalled ${stall.reason}: ${stall.message}`;
}

/** The status the first `ran` steps leave: their changes, each field as the last of them set it. */
export function statusOfSteps(steps: readonly PlanStep[], ran = steps.length): ConnectorStatus {
  let status: ConnectorStatus = {};
  for (const step of steps.slice(0, ran)) if (step.status) status = { ...status, ...step.status };
  return status;
}

/** The Events of the first `ran` steps, in order. */
export function eventsOfSteps(steps: readonly PlanStep[], ran = steps.length): PlannedEvent[] {
  return steps.slice(0, ran).flatMap((step) => step.events ?? []);
}

/** The status a pass writes: that of the steps that ran, and the error that stopped the rest. */
export function statusOfPass(
  plan: Plan,
  outcome: PassOutcome,
  now: Date,
  generation: number | undefined,
): ConnectorStatus {
  // status.liveToken is rebuilt from the records the steps left, as any observed fact is.
  const status = withLiveToken(statusOfSteps(plan.steps, outcome.ran));
  if (!outcome.error) return status;
  // A mint refused because its key is spent: an earlier pass minted with it and stopped before
  // storing the token. Remembered, so the next enrollment mint counts on from it, and a recovery
  // ends instead of asking for it for good.
  const failed = plan.steps[outcome.ran]?.action;
  if (outcome.error.code === 'IDEMPOTENCY_KEY_CONSUMED' && failed?.kind === 'mintToken' && status.enrollment)
    status.enrollment = { ...status.enrollment, consumedMintKey: failed.idempotencyKey };
  return withError(status, outcome.error, now, generation);
}

/**
 * The error in a condition: Stalled when no retry can fix it, else Reconciling RetryingAfterError;
 * but not Reconciling while the steps that ran left the Connector Stalled (a blocker, a failed or
 * required recovery, a storage that cannot grow): a stalled Connector waits for a person whatever
 * else fails, and kstatus reads Reconciling before Stalled, so both True would show InProgress
 * instead of Failed. The temporary error is then said in Ready's message after the stall's (and in
 * the pass's ReconcileError Event); the pass is retried with backoff as any other.
 */
export function withError(
  status: ConnectorStatus,
  error: CodedError,
  now: Date,
  generation: number | undefined,
): ConnectorStatus {
  const g = observedGenerationOf(generation);
  let conditions: Condition[] = status.conditions ?? [];
  // The code is looked up as data (a code such as "__proto__" finds nothing), and the message goes
  // into the condition bounded, on one line and redacted: the control plane chose its words.
  const stall = Object.hasOwn(STALLING_CODES, error.code) ? STALLING_CODES[error.code] : undefined;
  const message = errorText(error);
  if (stall || !error.temporary) {
    const reason = stall ?? StalledReasons.ControlPlaneRejected;
    // A code that is the condition's reason (ControlPlaneConfigInvalid, InvalidSpec) is not said
    // twice: `kubectl describe` and the plugin print the reason beside the message.
    const said = reason === error.code ? errorMessageText(error) : message;
    // The steps that ran may have left another stall (a blocker: no step ran for it either). Its
    // place is the error's now, and its words stay: without them the status would not say it, and
    // each pass would announce the blocker again as new (plan.ts, stalledAlready).
    const before = findCondition(conditions, CONDITION_TYPES.Stalled);
    const displaced =
      before?.status === 'True' && before.reason !== reason
        ? displacedText({ reason: before.reason, message: before.message })
        : '';
    conditions = markStalled(
      clearReconciling(conditions),
      { reason, message: `${said}${displaced}`, ...g },
      now,
    );
  } else if (isConditionTrue(conditions, CONDITION_TYPES.Stalled)) {
    return { ...status, conditions: withReady(conditions, generation, now, message) };
  } else {
    conditions = markReconciling(
      conditions,
      { reason: ReconcilingReasons.RetryingAfterError, message, ...g },
      now,
    );
  }
  return { ...status, conditions: withReady(conditions, generation, now) };
}
