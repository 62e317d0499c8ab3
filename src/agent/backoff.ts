// Capped exponential backoff with jitter for reconnect attempts. Equal jitter: half the delay is
// fixed and half is random, so a fleet that lost the control plane at once does not come back in
// lockstep, and no attempt is ever immediate.

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

/** Delay before retry number `attempt` (1 for the first retry). `random` returns [0, 1). */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number): number {
  const exponent = Math.max(0, Math.min(attempt - 1, 30));
  const ceiling = Math.min(policy.maxMs, policy.initialMs * 2 ** exponent);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** When a certificate should be renewed: after `fraction` of its lifetime. */
export function renewalDueAt(notBefore: Date, notAfter: Date, fraction: number): Date {
  const lifetime = notAfter.getTime() - notBefore.getTime();
  return new Date(notBefore.getTime() + lifetime * fraction);
}
