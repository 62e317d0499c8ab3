// Which recovery a pass runs: the request ids (asked for in spec.recovery.requestId, or derived from
// the incident under policy Automatic), the memory of the ids handled before, so that a request id
// runs once, ever, the record a new request starts with, and the spec withdrawing a request before
// the control plane began it.
import { createHash } from 'node:crypto';
import type { RecoveryStatus } from '../api/types.ts';
import { statusTime } from '../conditions.ts';
import { openingEvidence } from './recovery-evidence.ts';
import { idle } from './recovery-outcomes.ts';
import { abandonable } from './recovery-stages.ts';
import type { RecoveryDecision, RecoveryInput } from './recovery-types.ts';
import { untrustedText } from './untrusted-text.ts';

/** Ids of recoveries the operator started by itself (policy Automatic), as automaticRequestId makes them. */
const AUTOMATIC_ID = /^auto-[0-9a-f]{16}$/;

/** How many request ids handled before the current one a recovery record remembers. */
export const HANDLED_REQUEST_IDS_KEPT = 16;

/** The idempotency key of a recovery's one token: one request mints at most one. */
export function recoveryMintKey(requestId: string): string {
  return `recovery-${requestId}`;
}

/** Whether a token was minted by a recovery (its key is a recoveryMintKey), not by enrollment. */
export function isRecoveryMintKey(key: string | undefined): boolean {
  return key?.startsWith('recovery-') === true;
}

/** One automatic recovery per incident: the incident is the control plane's state change that started it. */
/** Whether `requestId` is one the operator made for an automatic recovery (never in a spec). */
export function isAutomaticRequestId(requestId: string): boolean {
  return AUTOMATIC_ID.test(requestId);
}

export function automaticRequestId(connectorId: string, incidentAt: string): string {
  return `auto-${createHash('sha256').update(`${connectorId}|${incidentAt}`).digest('hex').slice(0, 16)}`;
}

/**
 * The automatic recovery of the current incident, when it ended Failed: it runs once per incident,
 * so until someone asks for a guided recovery nothing more happens, and status must say so.
 */
export function failedAutomaticRecovery(
  connectorId: string,
  record: { stateChangedAt: string; state: string; recovery: { requestId: string } | null } | undefined,
  recovery: RecoveryStatus | undefined,
): RecoveryStatus | undefined {
  if (!record || recovery?.step !== 'Failed') return undefined;
  if (recovery.requestId === automaticRequestId(connectorId, record.stateChangedAt)) return recovery;
  // Its agent paired and then stopped (pairedByFailedRecovery): the pairing moved the record's state
  // change, but the incident is still the one that attempt was for, and no other starts for it.
  const pairedThenStopped =
    recovery.requestId !== undefined &&
    isAutomaticRequestId(recovery.requestId) &&
    pairedByFailedRecovery(record, recovery) !== undefined;
  return pairedThenStopped ? recovery : undefined;
}

/**
 * The attempt that ended Failed after its agent paired (a certificate issued for its token: the
 * record still where that pairing left it, enrolling under the recovery the control plane began for
 * it, no heartbeat since), as when the data directory did not take the certificate. Its request id,
 * or undefined. The pairing changed the record's state, which is what tells incidents apart, so
 * without this a new automatic recovery started at once for a "new incident", met the same cause,
 * paired again and failed again, for as long as the cause lasted.
 */
export function pairedByFailedRecovery(
  record: { state: string; recovery: { requestId: string } | null } | undefined,
  recovery: RecoveryStatus | undefined,
): string | undefined {
  if (record?.state !== 'enrolling' || recovery?.step !== 'Failed' || !recovery.requestId) return undefined;
  return record.recovery?.requestId === recovery.requestId ? recovery.requestId : undefined;
}

/**
 * The request ids this Connector handled, oldest first: those the recovery record remembers, then
 * its own. A request id runs once, ever: none of these starts a recovery again.
 */
function handledRequestIds(previous: RecoveryStatus | undefined): string[] {
  return [...(previous?.handledRequestIds ?? []), ...(previous?.requestId ? [previous.requestId] : [])];
}

/** Whether the spec asks for a recovery this Connector has not handled yet (one that would start). */
export function newRequestAsked(
  requestId: string | undefined,
  recovery: RecoveryStatus | undefined,
): boolean {
  return requestId !== undefined && !handledRequestIds(recovery).includes(requestId);
}

/** The newest of these ids that the spec asked for (not one the operator derived by itself). */
function lastAskedId(ids: readonly string[]): string | undefined {
  return ids.findLast((id) => !AUTOMATIC_ID.test(id));
}

/**
 * What a new recovery record remembers: the ids handled before it (without its own), the newest
 * HANDLED_REQUEST_IDS_KEPT. The newest id the spec asked for is kept however many automatic
 * recoveries came after it: it may still be in the spec, and must not run again when it would fall out.
 */
function rememberedIds(handled: readonly string[], requestId: string): { handledRequestIds?: string[] } {
  const ids = handled.filter((id) => id !== requestId);
  let kept = ids.slice(-HANDLED_REQUEST_IDS_KEPT);
  const lastAsked = lastAskedId(ids);
  if (lastAsked !== undefined && !kept.includes(lastAsked)) kept = [lastAsked, ...kept.slice(1)];
  return kept.length > 0 ? { handledRequestIds: kept } : {};
}

type NewRequest =
  | { kind: 'run'; requestId: string }
  /** spec.recovery.requestId went back to an id handled before: reported, not run again. */
  | { kind: 'handledBefore'; requestId: string };

/**
 * A pass with no attempt under way: the request there is starts (its record at Requested), one
 * handled before is answered without running, and without either nothing happens.
 */
export function startRecovery(input: RecoveryInput): RecoveryDecision {
  const handled = handledRequestIds(input.previous);
  const request = newRequest(input, handled);
  if (!request) return idle(input);
  if (request.kind === 'handledBefore') return notRunAgain(input, request.requestId, handled);
  const { requestId } = request;
  return {
    status: {
      requestId,
      step: 'Requested',
      attempts: 1,
      startedAt: statusTime(input.now),
      evidence: openingEvidence(input),
      ...rememberedIds(handled, requestId),
    },
    inProgress: true,
    controlPlane: [],
    deleteSecret: false,
    events: [
      { type: 'Normal', reason: 'RecoveryRequested', message: `guided recovery ${requestId} requested` },
    ],
    requeueAfterMs: 0,
  };
}

/** The request a pass with no attempt under way starts: the spec's, else the incident's. */
function newRequest(input: RecoveryInput, handled: readonly string[]): NewRequest | undefined {
  const previousId = input.previous?.requestId;
  const asked = input.requestedId;
  if (asked && asked !== previousId) {
    if (!handled.includes(asked)) return { kind: 'run', requestId: asked };
    // The newest id the spec asked for, still in the spec after automatic recoveries replaced its
    // record, is the same request, answered already: nothing to say again. An older one is the spec
    // set back to it, which the status answers (it is not run again).
    if (asked !== lastAskedId(handled)) return { kind: 'handledBefore', requestId: asked };
  }
  if (input.policy !== 'Automatic' || !input.record) return undefined;
  // A person fixes what made the last attempt's pairing fail, then asks for the next one.
  if (pairedByFailedRecovery(input.record, input.previous)) return undefined;
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
      finishedAt: statusTime(input.now),
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

/**
 * Why a recovery the spec asked for is abandoned, if it is: spec.recovery.requestId removed or
 * set to another request before the control plane began this one. A recovery the operator
 * started by itself (policy Automatic) was not asked by the spec, so the spec cannot withdraw it.
 */
export function abandonment(input: RecoveryInput, status: RecoveryStatus): string | undefined {
  const id = status.requestId ?? '';
  if (!abandonable(status.step) || AUTOMATIC_ID.test(id)) return undefined;
  if (input.requestedId === undefined) return 'spec.recovery.requestId was removed';
  if (input.requestedId !== id) return `spec.recovery.requestId was replaced by ${input.requestedId}`;
  return undefined;
}
