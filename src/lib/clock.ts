// Time is injected everywhere so pure logic is tested with a fake clock.

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock that only moves when told to, for table tests. */
export class FakeClock implements Clock {
  private current: number;

  constructor(start: Date | string | number = '2026-01-01T00:00:00Z') {
    this.current = new Date(start).getTime();
  }

  now(): Date {
    return new Date(this.current);
  }

  advance(milliseconds: number): Date {
    this.current += milliseconds;
    return this.now();
  }

  set(at: Date | string | number): void {
    this.current = new Date(at).getTime();
  }
}
