// The reconcile concurrency limit under a FakeClock: a 429 halves it once per cooldown, answers
// served without a 429 grow it by one a window, and it never leaves [1, max], whatever the order of
// answers and time steps.
import test from 'ava';
import fc from 'fast-check';
import { FakeClock } from '../../src/lib/clock.ts';
import { isCodedError } from '../../src/lib/errors.ts';
import {
  AdaptiveLimit,
  DEFAULT_MAX_CONCURRENCY,
  DEFAULT_WINDOW_MS,
  MAX_COOLDOWN_MS,
} from '../../src/operator/runtime/adaptive-limit.ts';

function setup(max = 16) {
  const clock = new FakeClock(0);
  const limit = new AdaptiveLimit({ max, clock });
  const changes: Array<[number, number]> = [];
  limit.onChange((current, previous) => changes.push([previous, current]));
  return { clock, limit, changes };
}

test('it starts at the maximum', (t) => {
  t.is(setup(16).limit.current, 16);
  t.is(new AdaptiveLimit({ max: DEFAULT_MAX_CONCURRENCY }).current, DEFAULT_MAX_CONCURRENCY);
});

test('a 429 halves the limit, rounding down, never below 1', (t) => {
  const { clock, limit, changes } = setup(11);
  const seen: number[] = [];
  for (let i = 0; i < 5; i += 1) {
    limit.throttled();
    seen.push(limit.current);
    clock.advance(DEFAULT_WINDOW_MS);
  }
  t.deepEqual(seen, [5, 2, 1, 1, 1]);
  t.deepEqual(
    changes,
    [
      [11, 5],
      [5, 2],
      [2, 1],
    ],
    'a halving at 1 changes nothing and tells nobody',
  );
});

test('a burst of 429s within the cooldown is one halving; the next one after it halves again', (t) => {
  const { clock, limit } = setup(16);
  for (let i = 0; i < 20; i += 1) limit.throttled();
  t.is(limit.current, 8, 'twenty rejections at once: one halving');
  clock.advance(DEFAULT_WINDOW_MS - 1);
  limit.throttled();
  t.is(limit.current, 8, 'still within the 1 s cooldown');
  clock.advance(1);
  limit.throttled();
  t.is(limit.current, 4, 'the cooldown over: the next 429 halves again');
});

test("the cooldown is the server's Retry-After when longer than a window, and at most a minute", (t) => {
  const { clock, limit } = setup(16);
  limit.throttled(5000);
  clock.advance(4999);
  limit.throttled();
  t.is(limit.current, 8, 'Retry-After 5 s: no second halving within it');
  clock.advance(1);
  limit.throttled(3_600_000);
  t.is(limit.current, 4);
  clock.advance(MAX_COOLDOWN_MS);
  limit.throttled();
  t.is(limit.current, 2, 'an hour asked for is a minute of cooldown');
});

test('answers served grow the limit by one a window without a 429, up to the maximum', (t) => {
  const { clock, limit } = setup(8);
  limit.throttled();
  t.is(limit.current, 4);
  limit.served();
  t.is(limit.current, 4, 'no growth within the cooldown');
  clock.advance(DEFAULT_WINDOW_MS);
  limit.served();
  limit.served();
  t.is(limit.current, 5, 'one step per window, however many answers');
  clock.advance(DEFAULT_WINDOW_MS - 1);
  limit.served();
  t.is(limit.current, 5);
  clock.advance(1);
  limit.served();
  t.is(limit.current, 6);
  for (let i = 0; i < 10; i += 1) {
    clock.advance(DEFAULT_WINDOW_MS);
    limit.served();
  }
  t.is(limit.current, 8, 'never above the maximum');
});

test('without answers the limit does not grow: quiet time alone is no evidence', (t) => {
  const { clock, limit } = setup(8);
  limit.throttled();
  clock.advance(60_000);
  t.is(limit.current, 4);
  limit.served();
  t.is(limit.current, 5);
});

test('a 429 within the cooldown postpones growth by a whole window', (t) => {
  const { clock, limit } = setup(8);
  limit.throttled();
  clock.advance(900);
  limit.throttled();
  t.is(limit.current, 4, 'within the cooldown: no second halving');
  clock.advance(100);
  limit.served();
  t.is(limit.current, 4, 'the cooldown is over, but a 429 came 100 ms ago');
  clock.advance(900);
  limit.served();
  t.is(limit.current, 5);
});

test('a listener that unsubscribes hears nothing more', (t) => {
  const { limit } = setup(8);
  const heard: number[] = [];
  const stop = limit.onChange((current) => heard.push(current));
  limit.throttled();
  stop();
  limit.throttled();
  t.deepEqual(heard, [4]);
});

test('a bad maximum or window is refused by name', (t) => {
  for (const max of [0, -1, 2.5, Number.NaN]) {
    const error = t.throws(() => new AdaptiveLimit({ max }));
    t.true(isCodedError(error, 'INVALID_ARGUMENT'));
    t.regex(error?.message ?? '', /concurrency maximum must be a whole number >= 1/);
  }
  t.throws(() => new AdaptiveLimit({ max: 4, windowMs: 0 }), {
    message: /concurrency window must be > 0 ms/,
  });
});

type Step =
  | { kind: 'throttled'; retryAfterMs: number | undefined }
  | { kind: 'served' }
  | { kind: 'advance'; ms: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('throttled' as const),
    retryAfterMs: fc.option(fc.oneof(fc.nat(120_000), fc.constant(Number.NaN), fc.constant(-5)), {
      nil: undefined,
    }),
  }),
  fc.record({ kind: fc.constant('served' as const) }),
  fc.record({ kind: fc.constant('advance' as const), ms: fc.nat(5000) }),
);

test('property: the limit stays a whole number within [1, max], and each change is a halving or one step', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 64 }), fc.array(step, { maxLength: 200 }), (max, steps) => {
      const { clock, limit } = setup(max);
      let bad: string | undefined;
      limit.onChange((current, previous) => {
        if (current !== Math.max(1, Math.floor(previous / 2)) && current !== previous + 1) {
          bad = `${previous} -> ${current}`;
        }
      });
      for (const s of steps) {
        if (s.kind === 'throttled') limit.throttled(s.retryAfterMs);
        else if (s.kind === 'served') limit.served();
        else clock.advance(s.ms);
        const n = limit.current;
        if (!Number.isInteger(n) || n < 1 || n > max) return false;
      }
      return bad === undefined;
    }),
  );
  t.pass();
});

test('property: after a 429, the limit is back at the maximum only after a window per step of growth', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 64 }), fc.nat(10_000), (max, retryAfterMs) => {
      const { clock, limit } = setup(max);
      limit.throttled(retryAfterMs);
      const low = limit.current;
      let elapsed = 0;
      while (limit.current < max) {
        clock.advance(100);
        elapsed += 100;
        limit.served();
        if (elapsed > 10 * 60_000) return false;
      }
      const cooldown = Math.min(MAX_COOLDOWN_MS, Math.max(DEFAULT_WINDOW_MS, retryAfterMs));
      // The first step comes once the cooldown is over, each further one a window later.
      return elapsed >= Math.max(cooldown, DEFAULT_WINDOW_MS) + (max - low - 1) * DEFAULT_WINDOW_MS;
    }),
  );
  t.pass();
});
