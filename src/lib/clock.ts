// The one time abstraction: what time it is and timers, injected everywhere so logic that waits or
// reads the time is tested with a FakeClock instead of sleeping. It replaced three: a `now()`-only
// Clock, the work queue's Scheduler (timers and milliseconds) and the agent's Timers.

/** A timer as `setTimeout` returned it; only ever handed back to `clearTimeout`. */
export type TimerHandle = unknown;

export interface Clock {
  now(): Date;
  setTimeout(callback: () => void, milliseconds: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/**
 * The longest wait a Node timer holds (2^31 - 1 ms, about 24.8 days). Node runs a longer one after
 * 1 ms instead, so a 30-day period set by a flag would fire a thousand times a second. Flags that set
 * a period refuse more (duration.ts, `timer`); the real clocks wait at most this long.
 */
export const LONGEST_TIMER_MS = 2 ** 31 - 1;

function realClock({ keepsProcessAlive }: { keepsProcessAlive: boolean }): Clock {
  return {
    now: () => new Date(),
    setTimeout: (callback, milliseconds) => {
      // Longer is woken early, never at once: whoever waits looks at the time again when it fires.
      const timer = setTimeout(callback, Math.min(milliseconds, LONGEST_TIMER_MS));
      return keepsProcessAlive ? timer : timer.unref();
    },
    clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  };
}

/**
 * The real clock; a pending timer keeps the process alive, as Node's setTimeout does. For a program
 * whose waits are its work: the agent between heartbeats and retries.
 */
export const systemClock: Clock = realClock({ keepsProcessAlive: true });

/**
 * The real clock for background timers (requeues, restarts, resyncs, periodic checks): a pending
 * timer alone does not keep the process alive; what the process exists for (a server, a watch, a
 * child process) does, and a stopped component's late timer never holds a process open.
 */
export const backgroundClock: Clock = realClock({ keepsProcessAlive: false });

interface FakeTimer {
  at: number;
  callback: () => void;
}

/**
 * A clock that moves only when told to. `advance(ms)` fires every timer that falls due, in due
 * order, with `now()` at each timer's due time (timers set while firing fire too if due).
 */
export class FakeClock implements Clock {
  private current: number;
  private nextId = 1;
  private readonly timers = new Map<number, FakeTimer>();

  constructor(start: Date | string | number = '2026-01-01T00:00:00Z') {
    this.current = new Date(start).getTime();
  }

  now(): Date {
    return new Date(this.current);
  }

  setTimeout(callback: () => void, milliseconds: number): number {
    const id = this.nextId++;
    this.timers.set(id, { at: this.current + Math.max(0, milliseconds), callback });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle as number);
  }

  /** Timers not yet fired or cleared. */
  get pendingTimers(): number {
    return this.timers.size;
  }

  /** Milliseconds until the next timer is due, or undefined when none is pending. */
  nextDueIn(): number | undefined {
    let earliest: number | undefined;
    for (const { at } of this.timers.values())
      earliest = earliest === undefined ? at : Math.min(earliest, at);
    return earliest === undefined ? undefined : earliest - this.current;
  }

  /** Moves time forward, firing the timers that fall due on the way; returns the new time. */
  advance(milliseconds: number): Date {
    const end = this.current + milliseconds;
    for (;;) {
      let due: [number, FakeTimer] | undefined;
      for (const entry of this.timers) {
        // Map order is insertion order, so equal due times fire in the order they were set.
        if (entry[1].at <= end && (due === undefined || entry[1].at < due[1].at)) due = entry;
      }
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.current = Math.max(this.current, due[1].at);
      due[1].callback();
    }
    this.current = end;
    return this.now();
  }

  /** Jumps to `at` (a clock set back or forward, as an administrator would); fires no timer. */
  set(at: Date | string | number): void {
    this.current = new Date(at).getTime();
  }
}

/**
 * A real clock shifted by an adjustable offset, with the real clock's timers: ages tokens and
 * certificates in tests without touching what TLS checks against the real time.
 */
export class ShiftedClock implements Clock {
  offsetMs: number;
  private readonly real: Clock;

  constructor(offsetMs = 0, real: Clock = systemClock) {
    this.offsetMs = offsetMs;
    this.real = real;
  }

  now(): Date {
    return new Date(this.real.now().getTime() + this.offsetMs);
  }

  setTimeout(callback: () => void, milliseconds: number): TimerHandle {
    return this.real.setTimeout(callback, milliseconds);
  }

  clearTimeout(handle: TimerHandle): void {
    this.real.clearTimeout(handle);
  }
}
