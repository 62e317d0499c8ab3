// How many reconciles may run at once, set by the API server's answers (AIMD, as TCP sets its
// window): a 429 halves the limit, answers served without one grow it back by one a window, between
// 1 and a maximum (`--concurrency`). A pass spends most of its time waiting on the API server and
// the control plane (docs/performance.md: 0.137 s a pass, about 20 ms of it the operator's CPU), so
// more passes at once is the lever for a fleet applied at once; how many the API server can take is its
// own to say, through API Priority and Fairness (APF): a request its priority level has no seat or
// queue room for is answered 429 with a Retry-After. That is the signal used here, and the only one:
// a 5xx, a timeout or a refused connection says the server or the network is broken, not that this
// client asks too much, and the work queue's per-key backoff already handles those.
//
// One burst of rejections is one halving: passes running at once all see their 429s within moments,
// and halving once per answer would take the limit to 1 for what was one crowded instant. So after a
// halving, further 429s within the cooldown (the server's Retry-After, at least one window) only
// postpone growth. Growth is one step per window in which answers were served and none was a 429, so
// after a halving from 16 the limit is back at 16 in about 8 s of quiet. The time comes from the
// operator's one Clock, so tests drive it without sleeping.
import { backgroundClock, type Clock } from '../../lib/clock.ts';
import { CodedError } from '../../lib/errors.ts';

/**
 * The default maximum (`--concurrency`). With 100 Connectors applied at once the operator ran 515
 * passes of 0.137 s on average and used 10.1 s of CPU doing so (docs/performance.md, "Second
 * increment"): about 20 ms of CPU a pass, so about 7 passes at once keep the operator's one thread
 * busy, and more would mostly wait for its event loop while holding memory. The old fixed default,
 * 4, kept it busy about half the time (10.1 s of CPU in the 17.9 s to all Online). Below the
 * maximum, APF says how many the API server can take.
 */
export const DEFAULT_MAX_CONCURRENCY = 8;
/** The shortest cooldown after a halving, and the growth step's period. */
export const DEFAULT_WINDOW_MS = 1000;
/**
 * The longest cooldown a Retry-After may ask for: an answer from a proxy in front of the API server
 * may say minutes, and growth must not wait that long for one answer.
 */
export const MAX_COOLDOWN_MS = 60_000;

/** What the work queue reads: the limit now, and a call when it changes (to start more at once). */
export interface ConcurrencyLimit {
  readonly current: number;
  /** Calls `listener` after each change with the new and the old limit; returns the unsubscribe. */
  onChange(listener: (current: number, previous: number) => void): () => void;
}

export interface AdaptiveLimitOptions {
  /** The most reconciles at once (`--concurrency`); also where the limit starts. */
  max: number;
  clock?: Clock;
  /** The shortest cooldown and the growth period. Default 1 s. */
  windowMs?: number;
}

export class AdaptiveLimit implements ConcurrencyLimit {
  readonly max: number;
  private readonly clock: Clock;
  private readonly windowMs: number;
  private limit: number;
  /** Until then a 429 does not halve again, and the limit does not grow. */
  private cooldownUntil = Number.NEGATIVE_INFINITY;
  /** The last change or 429: growth waits a whole window after it. */
  private quietSince = Number.NEGATIVE_INFINITY;
  private readonly listeners = new Set<(current: number, previous: number) => void>();

  constructor(options: AdaptiveLimitOptions) {
    const windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
    if (!Number.isInteger(options.max) || options.max < 1) {
      throw new CodedError(
        'INVALID_ARGUMENT',
        `the concurrency maximum must be a whole number >= 1, got ${options.max}`,
      );
    }
    if (!(windowMs > 0) || !Number.isFinite(windowMs)) {
      throw new CodedError('INVALID_ARGUMENT', `the concurrency window must be > 0 ms, got ${windowMs}`);
    }
    this.max = options.max;
    this.limit = options.max;
    this.clock = options.clock ?? backgroundClock;
    this.windowMs = windowMs;
  }

  get current(): number {
    return this.limit;
  }

  onChange(listener: (current: number, previous: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The API server answered 429 (APF rejected the request, or a rate limit), asking for
   * `retryAfterMs` if it said. Halves the limit unless a halving's cooldown is still running.
   */
  throttled(retryAfterMs?: number): void {
    const now = this.clock.now().getTime();
    this.quietSince = now;
    if (now < this.cooldownUntil) return;
    const asked = retryAfterMs !== undefined && Number.isFinite(retryAfterMs) ? retryAfterMs : 0;
    this.cooldownUntil = now + Math.min(MAX_COOLDOWN_MS, Math.max(this.windowMs, asked));
    this.set(Math.max(1, Math.floor(this.limit / 2)));
  }

  /**
   * The API server served a request (an answer other than 429 and 5xx). Grows the limit by one
   * when a whole window has passed since the last change or 429, and no cooldown runs.
   */
  served(): void {
    if (this.limit >= this.max) return;
    const now = this.clock.now().getTime();
    if (now < this.cooldownUntil || now - this.quietSince < this.windowMs) return;
    this.quietSince = now;
    this.set(this.limit + 1);
  }

  private set(next: number): void {
    const previous = this.limit;
    if (next === previous) return;
    this.limit = next;
    for (const listener of [...this.listeners]) listener(next, previous);
  }
}
