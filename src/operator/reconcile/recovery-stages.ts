// What each recorded recovery step means outside the step machine: whether the attempt is still
// under way, the replicas it holds the workload at, what an attempt that ends gives back, and
// until when the spec can withdraw it. The gates, the token Secret read and the observation ask
// only this, so they do not depend on the machine (and the machine not on them).
import type { RecoveryStatus, RecoveryStep } from '../api/types.ts';

const TERMINAL: readonly RecoveryStep[] = ['Completed', 'Failed'];
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

/** Whether a recorded recovery step is one of an attempt still under way (not Completed or Failed). */
export function recoveryUnderway(step: RecoveryStep | undefined): boolean {
  return step !== undefined && !TERMINAL.includes(step);
}

/** Whether the recorded step is one an attempt can be abandoned at (see ABANDONABLE). */
export function abandonable(step: RecoveryStep | undefined): boolean {
  return step !== undefined && ABANDONABLE.includes(step);
}

/** The replicas a step holds the workload at, if it asks for any (Requested and Checking do not). */
export function replicasDuring(step: RecoveryStep): number | undefined {
  if (SCALED_DOWN.includes(step)) return 0;
  if (SCALED_UP.includes(step)) return 1;
  return undefined;
}

/** Whether the recorded step runs the one pod that pairs: a completion there gives the workload back. */
export function scaledUp(step: RecoveryStep | undefined): boolean {
  return step !== undefined && SCALED_UP.includes(step);
}

/** What the workload is given back: the replicas recorded with the request (1 when none were). */
export function restoredReplicasOf(status: RecoveryStatus): number {
  return status.evidence?.replicasBefore ?? 1;
}

/** The replicas to give back if the attempt ends now: only once it has scaled the workload. */
export function restoredReplicas(status: RecoveryStatus): number | undefined {
  const step = status.step;
  const scaled = step !== undefined && (SCALED_DOWN.includes(step) || SCALED_UP.includes(step));
  return scaled ? restoredReplicasOf(status) : undefined;
}
