// When the agent renews its certificate: the control plane's renewAfter when it gave a usable one,
// otherwise a fraction of the lifetime counted from when the certificate was received. The rule is
// renewalDueAt; RenewalSchedule keeps what it needs while the agent runs (the renewAfter of the last
// heartbeat answer, when the certificate was received, the control plane's clock offset).
import type { Clock } from '../lib/clock.ts';
import type { Logger } from '../lib/logger.ts';
import type { CertificateFacts } from '../lib/pki.ts';
import { ControlPlaneClockOffset } from './clock-offset.ts';

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

export class RenewalSchedule {
  private readonly fraction: number;
  private readonly clock: Clock;
  private readonly logger: Logger;
  /** How far the control plane's clock is from this node's: its renewAfter and dates are on its clock. */
  private readonly controlPlaneClock = new ControlPlaneClockOffset();
  /** The control plane's renewAfter from the last heartbeat answer, for the certificate of that serial. */
  private renewAfter: { serial: string; at: Date } | undefined;
  /** When this process received its current certificate (enrolled or renewed), for that serial. */
  private certificateReceived: { serial: string; at: Date } | undefined;

  constructor(fraction: number, clock: Clock, logger: Logger) {
    this.fraction = fraction;
    this.clock = clock;
    this.logger = logger;
  }

  /** Measures the control plane's clock from an answer's Date; warns once when it is far from this node's. */
  noteControlPlaneClock(serverDate: Date | undefined): void {
    const warning = this.controlPlaneClock.observe(serverDate, this.clock.now());
    if (warning) this.logger.warn({ offsetMs: this.controlPlaneClock.milliseconds }, warning);
  }

  /** Remembers the control plane's renewAfter for the certificate (of `serial`) it just accepted. */
  noteRenewAfter(renewAfter: string | undefined, serial: string | undefined): void {
    const at = renewAfter === undefined ? undefined : new Date(renewAfter);
    this.renewAfter = at && serial !== undefined && !Number.isNaN(at.getTime()) ? { serial, at } : undefined;
  }

  noteCertificateReceived(serial: string): void {
    this.certificateReceived = { serial, at: this.clock.now() };
  }

  /** A time on the control plane's clock (renewAfter, notBefore, notAfter) as this node's clock shows it. */
  toLocal(controlPlaneTime: Date): Date {
    return this.controlPlaneClock.toLocal(controlPlaneTime);
  }

  /** When the certificate is due for renewal, on this node's clock. */
  dueAt(certificate: CertificateFacts): Date {
    const { serial } = certificate;
    // renewAfter and the certificate's dates are on the control plane's clock: on this node's, with a
    // skewed clock, they fell due at once (node ahead: renewal at every heartbeat) or never (behind).
    const local = (time: Date) => this.toLocal(time);
    return renewalDueAt(local(certificate.notBefore), local(certificate.notAfter), this.fraction, {
      ...(this.certificateReceived?.serial === serial ? { receivedAt: this.certificateReceived.at } : {}),
      ...(this.renewAfter?.serial === serial ? { renewAfter: local(this.renewAfter.at) } : {}),
    });
  }
}
