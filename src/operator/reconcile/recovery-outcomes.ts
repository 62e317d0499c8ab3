// How a pass ends for an attempt under way: its step advances (the next one recorded before it is
// taken), stays (doing what the step asks again), fails or completes. An attempt that ends after
// scaling the workload down gives back the replicas recorded with the request; each outcome
// carries its Events, and the ends carry the evidence.
import type { RecoveryStatus, RecoveryStep } from '../api/types.ts';
import { statusTime } from '../conditions.ts';
import type { PlannedEvent } from './plan-types.ts';
import { closingEvidence } from './recovery-evidence.ts';
import { replicasDuring, restoredReplicas, restoredReplicasOf, scaledUp } from './recovery-stages.ts';
import type { RecoveryDecision, RecoveryInput } from './recovery-types.ts';

/** How soon a step that waits for the world (pods, the control plane) looks again. */
export const RECOVERY_POLL_MS = 2_000;

/** No attempt under way, none to start: the record stays as it is and nothing is asked. */
export function idle(input: RecoveryInput): RecoveryDecision {
  return { status: input.previous, inProgress: false, controlPlane: [], deleteSecret: false, events: [] };
}

export interface StepOutcomes {
  /** The step's outcome is observed: record the next step, to be taken from the next pass on. */
  advance(step: RecoveryStep, extra?: Partial<RecoveryStatus>, why?: string): RecoveryDecision;
  /** Not there yet: the step is kept, with what it asks of this pass (replicas, calls, a mint). */
  stay(decision: Partial<RecoveryDecision>): RecoveryDecision;
  /** The attempt ends Failed with the reason, and gives back what it scaled down. */
  fail(reason: string): RecoveryDecision;
  /**
   * The attempt ends without running, as none was needed (outcome NotNeeded, at step Failed: the
   * recovery did not happen): nothing holds the Connector back for it. `reason` says why.
   */
  notNeeded(reason: string): RecoveryDecision;
  /** The attempt ends Succeeded, with the proof that the connector paired (and kept its identity). */
  complete(proof: string): RecoveryDecision;
}

/** The outcomes open to the attempt recorded in status, in this pass. */
export function outcomesOf(input: RecoveryInput, status: RecoveryStatus): StepOutcomes {
  const { now } = input;
  const requestId = status.requestId ?? '';
  // An attempt that scaled the workload down gives back what it found when it ends.
  const restore = restoredReplicas(status);
  /** The attempt ends at step Failed (it did not recover the connector) with `outcome`. */
  const ended = (outcome: 'Failed' | 'NotNeeded', reason: string, event: PlannedEvent): RecoveryDecision => ({
    ...(restore !== undefined ? { replicas: restore } : {}),
    status: {
      ...status,
      step: 'Failed',
      outcome,
      reason,
      finishedAt: statusTime(now),
      evidence: closingEvidence(input, status),
    },
    inProgress: false,
    controlPlane: [],
    deleteSecret: false,
    events: [event],
  });
  return {
    advance(step, extra = {}, why = '') {
      const replicas = replicasDuring(step);
      return {
        status: { ...status, ...extra, step },
        inProgress: true,
        controlPlane: [],
        deleteSecret: false,
        events: [
          {
            type: 'Normal',
            reason: 'RecoveryStep',
            message: `recovery ${requestId}: ${status.step} done, now ${step}${why ? ` (${why})` : ''}`,
          },
        ],
        requeueAfterMs: 0,
        ...(replicas !== undefined ? { replicas } : {}),
      };
    },
    stay(decision) {
      return {
        status,
        inProgress: true,
        controlPlane: [],
        deleteSecret: false,
        events: [],
        requeueAfterMs: RECOVERY_POLL_MS,
        ...decision,
      };
    },
    fail(reason) {
      return ended('Failed', reason, {
        type: 'Warning',
        reason: 'RecoveryFailed',
        message: `recovery ${requestId} failed: ${reason}`,
        priority: 'always',
      });
    },
    notNeeded(reason) {
      return ended('NotNeeded', reason, {
        type: 'Normal',
        reason: 'RecoveryNotNeeded',
        message: `recovery ${requestId} not needed: ${reason}`,
        priority: 'always',
      });
    },
    complete(proof) {
      return {
        status: {
          ...status,
          step: 'Completed',
          outcome: 'Succeeded',
          finishedAt: statusTime(now),
          evidence: closingEvidence(input, status, {
            phaseAfter: input.record?.state === 'degraded' ? 'Degraded' : 'Online',
            proof,
          }),
        },
        inProgress: false,
        controlPlane: [],
        deleteSecret: false,
        events: [
          {
            type: 'Normal',
            reason: 'RecoverySucceeded',
            message: `recovery ${status.requestId} completed: the connector is ${input.record?.state}`,
            priority: 'always',
          },
        ],
        // Paired: the workload runs as it did before the recovery (an adopted one with its replicas).
        ...(scaledUp(status.step) ? { replicas: restoredReplicasOf(status) } : {}),
      };
    },
  };
}
