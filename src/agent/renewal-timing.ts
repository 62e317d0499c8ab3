// When the agent renews its certificate: the control plane's renewAfter when it gave a usable one,
// otherwise a fraction of the lifetime counted from when the certificate was received.

export interface RenewalHints {
  /**
   * When this agent received the certificate (enrolled or renewed in this process): its issuance, as
   * near as the agent can tell. notBefore is no substitute: control planes back-date it against
   * clock skew (the reference one by 5 minutes), and a fraction of a back-dated window falls at or
   * before issuance for short lifetimes, which renewed at every heartbeat.
   */
  receivedAt?: Date;
  /** The control plane's renewAfter for this certificate, from its heartbeat answer. */
  renewAfter?: Date;
}

/**
 * When a certificate should be renewed. All times are on one clock, this node's (the agent converts
 * the control plane's renewAfter and the certificate's dates with the measured clock offset first).
 * The control plane's renewAfter when it gave one: it issued the certificate, knows the lifetime it
 * granted and its renewal budget, and may want a renewal sooner (say before its CA changes). A
 * renewAfter at or before the certificate was received would renew it at every heartbeat and is not
 * followed, wherever the receipt falls. Otherwise after `fraction` of the lifetime, counted from when
 * the certificate was received (or from notBefore for one loaded from disk). A receipt outside the
 * validity means the clocks still disagree by more than the lifetime: the fraction of the lifetime
 * then counts from the receipt, never from before it (which renewed at every heartbeat).
 */
export function renewalDueAt(
  notBefore: Date,
  notAfter: Date,
  fraction: number,
  hints: RenewalHints = {},
): Date {
  const received = hints.receivedAt?.getTime();
  const start = notBefore.getTime();
  const end = notAfter.getTime();
  if (hints.renewAfter && hints.renewAfter.getTime() > (received ?? start)) return hints.renewAfter;
  if (received === undefined) return new Date(start + (end - start) * fraction);
  if (received > start && received < end) return new Date(received + (end - received) * fraction);
  return new Date(received + (end - start) * fraction);
}
