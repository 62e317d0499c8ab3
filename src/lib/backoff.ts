// The one exponential backoff: the agent's reconnects, the operator's work queue, informer restarts
// and change-stream follower, and the local pod runner's crash loop all wait `base * factor^(n-1)`,
// capped, before retry n. Each caller keeps its own count of failures (per key, per stream, per
// container streak) and its own rule for when the count starts over; only the delay lives here.
import { CodedError } from './errors.ts';

export interface BackoffPolicy {
  /** Delay before the first retry. */
  baseMs: number;
  /** Ceiling of the delay. */
  capMs: number;
  /** Growth per retry. Default 2. */
  factor?: number;
  /**
   * 'equal' (AWS's "equal jitter"): half the delay is fixed, half is random, so a fleet that failed
   * at once does not retry in lockstep and no retry is immediate. Default 'none'.
   */
  jitter?: 'none' | 'equal';
  /** [0, 1) for the jitter; Math.random when omitted, a fixed function in tests. */
  random?: () => number;
}

/** Throws INVALID_ARGUMENT, naming `what`, unless 0 < baseMs <= capMs and factor >= 1. */
export function checkBackoffPolicy(what: string, policy: BackoffPolicy): void {
  const factor = policy.factor ?? 2;
  if (!(policy.baseMs > 0) || !(policy.capMs >= policy.baseMs) || !(factor >= 1)) {
    throw new CodedError(
      'INVALID_ARGUMENT',
      `${what} needs 0 < baseMs <= capMs and factor >= 1, got baseMs ${policy.baseMs} and capMs ${policy.capMs}` +
        (policy.factor === undefined ? '' : ` (factor ${factor})`),
    );
  }
}

/** Delay before retry number `attempt` (1 for the first retry). */
export function backoffDelay(attempt: number, policy: BackoffPolicy): number {
  const factor = policy.factor ?? 2;
  // A power too large for a number is Infinity, which the cap turns back into capMs.
  const ceiling = Math.min(policy.capMs, policy.baseMs * factor ** Math.max(0, attempt - 1));
  if (policy.jitter !== 'equal') return ceiling;
  const random = policy.random ?? Math.random;
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * A periodic delay spread out: `periodMs` plus up to `maxFactor` of it at random (client-go's
 * `wait.Jitter`). Work that was done together and repeats on a period (every Connector passed at
 * an operator's start, then looked at again every 10 minutes) would otherwise come back together
 * at every period, for ever; with this each repetition drifts on its own and the bursts dissolve.
 */
export function jitteredPeriod(
  periodMs: number,
  maxFactor: number,
  random: () => number = Math.random,
): number {
  return Math.round(periodMs + random() * maxFactor * periodMs);
}
