// The restart delay of a container that keeps exiting, shaped like the kubelet's CrashLoopBackOff:
// it starts at `initialMs`, doubles with every restart up to `maxMs` (the one exponential backoff of
// src/lib/backoff.ts), and starts over once a container has run for `resetAfterMs` without exiting.
// Pure, so it is tested without waiting.
import { backoffDelay } from '../../src/lib/backoff.ts';

export interface CrashBackoffPolicy {
  /** Delay before the first restart (kubelet: 10 s). */
  initialMs: number;
  /** Ceiling of the delay (kubelet: 5 min). */
  maxMs: number;
  /** A run at least this long resets the delay to `initialMs` (kubelet: twice the ceiling). */
  resetAfterMs: number;
}

export const KUBELET_CRASH_BACKOFF: CrashBackoffPolicy = {
  initialMs: 10_000,
  maxMs: 300_000,
  resetAfterMs: 600_000,
};

/** A policy with the kubelet's shape from a different starting delay (tests use a short one). */
export function crashBackoffFrom(initialMs: number, maxMs = initialMs * 30): CrashBackoffPolicy {
  if (!(initialMs > 0) || !(maxMs >= initialMs)) {
    throw new RangeError(
      `crash backoff: initialMs must be > 0 and maxMs >= initialMs (got ${initialMs}, ${maxMs})`,
    );
  }
  return { initialMs, maxMs, resetAfterMs: maxMs * 2 };
}

export interface BackoffStreak {
  /** Restarts already delayed in the current streak. */
  restarts: number;
}

/**
 * The delay before the next restart and the streak after it. `ranForMs` is how long the instance
 * that just exited had been running.
 */
export function nextRestartDelay(
  policy: CrashBackoffPolicy,
  streak: BackoffStreak,
  ranForMs: number,
): { delayMs: number; streak: BackoffStreak } {
  const restarts = ranForMs >= policy.resetAfterMs ? 0 : streak.restarts;
  const delayMs = backoffDelay(restarts + 1, { baseMs: policy.initialMs, capMs: policy.maxMs });
  return { delayMs, streak: { restarts: restarts + 1 } };
}
