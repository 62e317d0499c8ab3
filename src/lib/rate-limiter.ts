// A token bucket per key with an injected clock, bounded in the keys it remembers (least recently
// used go first). Used wherever untrusted or bursty input could otherwise turn into unbounded
// writes: operator Events per object, control-plane audit entries per connector.
import type { Clock } from './clock.ts';

/** A token bucket per key, driven by an injected clock. */
export class PerKeyRateLimiter {
  private readonly burst: number;
  private readonly refillEveryMs: number;
  private readonly clock: Clock;
  private readonly maxKeys: number;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(options: { burst: number; refillEveryMs: number; clock: Clock; maxKeys: number }) {
    this.burst = options.burst;
    this.refillEveryMs = options.refillEveryMs;
    this.clock = options.clock;
    this.maxKeys = options.maxKeys;
  }

  /** Takes one token for `key`; false when the bucket is empty. */
  tryTake(key: string): boolean {
    const now = this.clock.now().getTime();
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    const refilled = Math.min(this.burst, bucket.tokens + Math.max(0, now - bucket.at) / this.refillEveryMs);
    const allowed = refilled >= 1;
    // Re-insert so Map order is least-recently-used first.
    this.buckets.delete(key);
    this.buckets.set(key, { tokens: allowed ? refilled - 1 : refilled, at: now });
    evictOldest(this.buckets, this.maxKeys);
    return allowed;
  }
}

export function evictOldest<V>(map: Map<string, V>, max: number): void {
  while (map.size > max) {
    const oldest = map.keys().next();
    if (oldest.done) return;
    map.delete(oldest.value);
  }
}
