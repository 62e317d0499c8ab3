// How far the control plane's clock is from this node's, measured from the HTTP Date header of its
// answers (the reference control plane writes its own clock there). The control plane's renewAfter
// and the certificate's dates are times on its clock: compared with this node's clock as they are,
// an agent ahead renewed at every heartbeat and one behind never renewed. The agent converts them to
// its own clock with this offset instead.
import { describeDuration } from '../lib/duration.ts';

/**
 * Below this the difference cannot be told from the Date header's whole seconds and the network
 * delay, and is taken as none.
 */
export const MEASURABLE_OFFSET_MS = 2_000;

/** A difference this large is logged (once): it affects renewal and TLS checks on both sides. */
export const SKEW_WARNING_MS = 30_000;

export class ControlPlaneClockOffset {
  /** The control plane's clock minus this node's, in milliseconds; 0 until measured. */
  private offsetMs = 0;
  private warned = false;

  get milliseconds(): number {
    return this.offsetMs;
  }

  /**
   * Notes the Date of an answer received at `receivedAt` (this node's clock). Returns the warning to
   * log the first time the clocks are found further apart than SKEW_WARNING_MS, else undefined.
   */
  observe(serverDate: Date | undefined, receivedAt: Date): string | undefined {
    if (!serverDate) return undefined;
    // The header is truncated to the second: the middle of that second is the best estimate.
    const measured = serverDate.getTime() + 500 - receivedAt.getTime();
    this.offsetMs = Math.abs(measured) < MEASURABLE_OFFSET_MS ? 0 : measured;
    if (this.warned || Math.abs(this.offsetMs) < SKEW_WARNING_MS) return undefined;
    this.warned = true;
    return skewWarning(this.offsetMs);
  }

  /** A time on the control plane's clock (renewAfter, notBefore, notAfter) as this node's clock shows it. */
  toLocal(controlPlaneTime: Date): Date {
    return new Date(controlPlaneTime.getTime() - this.offsetMs);
  }
}

function skewWarning(offsetMs: number): string {
  const way = offsetMs < 0 ? 'ahead of' : 'behind';
  return (
    `clock skew: this node's clock is ${describeDuration(offsetMs)} ${way} the control plane's (by the Date ` +
    "of its answers): the certificate is renewed by the control plane's clock (its renewAfter, converted), " +
    'but certificate checks on either side may fail; fix time sync (timedatectl status, NTP) on whichever ' +
    'is wrong'
  );
}
