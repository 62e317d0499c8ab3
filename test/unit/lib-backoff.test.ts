// The one exponential backoff (src/lib/backoff.ts) that the agent, the work queue, the informers, the
// change-stream follower and the local pod runner's crash loop wait with.
import test from 'ava';
import fc from 'fast-check';
import { backoffDelay, checkBackoffPolicy, jitteredPeriod } from '../../src/lib/backoff.ts';
import { isCodedError } from '../../src/lib/errors.ts';

test('without jitter: base, then doubling, capped; any attempt count stays at the cap', (t) => {
  const policy = { baseMs: 1000, capMs: 300_000 };
  t.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => backoffDelay(n, policy)),
    [1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000],
  );
  t.is(backoffDelay(10_000, policy), 300_000, 'a huge exponent is the cap, not Infinity or NaN');
  t.is(backoffDelay(0, policy), 1000, 'attempt 0 reads as the first');
});

test('the factor is an option', (t) => {
  const policy = { baseMs: 100, capMs: 10_000, factor: 3 };
  t.deepEqual(
    [1, 2, 3, 4, 5].map((n) => backoffDelay(n, policy)),
    [100, 300, 900, 2700, 8100],
  );
  t.is(backoffDelay(6, policy), 10_000);
  t.is(backoffDelay(3, { baseMs: 100, capMs: 10_000, factor: 1 }), 100, 'factor 1 is a constant delay');
});

test('equal jitter: between half and the whole delay, deterministic for a given random source', (t) => {
  const at = (attempt: number, draw: number) =>
    backoffDelay(attempt, { baseMs: 1000, capMs: 60_000, jitter: 'equal', random: () => draw });
  t.is(at(1, 0), 500);
  t.is(at(1, 0.999_999), 1000);
  t.is(at(2, 0), 1000);
  t.is(at(3, 0), 2000);
  t.is(at(6, 0), 16_000);
  t.is(at(7, 0), 30_000, 'capped at capMs (64 s would exceed 60 s)');
  t.is(at(100, 0.999_999), 60_000);
  t.deepEqual(
    [0, 0.25, 0.5, 0.75].map((draw) => at(4, draw)),
    [4000, 5000, 6000, 7000],
    'different random draws spread the fleet',
  );
});

test('a policy that cannot back off is refused, naming its owner', (t) => {
  for (const policy of [
    { baseMs: 0, capMs: 10 },
    { baseMs: 10, capMs: 5 },
    { baseMs: Number.NaN, capMs: 5 },
    { baseMs: 1, capMs: 5, factor: 0.5 },
  ]) {
    const error = t.throws(() => checkBackoffPolicy('work queue backoff', policy));
    t.true(isCodedError(error, 'INVALID_ARGUMENT'));
    t.regex(
      error?.message ?? '',
      /^work queue backoff needs 0 < baseMs <= capMs and factor >= 1, got baseMs /,
    );
  }
  t.is(
    (t.throws(() => checkBackoffPolicy('follower', { baseMs: 10, capMs: 5 })) as Error).message,
    'follower needs 0 < baseMs <= capMs and factor >= 1, got baseMs 10 and capMs 5',
  );
  t.regex(
    (t.throws(() => checkBackoffPolicy('x', { baseMs: 1, capMs: 5, factor: 0 })) as Error).message,
    /got baseMs 1 and capMs 5 \(factor 0\)$/,
  );
  t.notThrows(() => checkBackoffPolicy('x', { baseMs: 5, capMs: 5 }));
});

test('a jittered period is never shorter than the period and at most maxFactor longer', (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 24 * 3_600_000 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (periodMs, maxFactor, draw) => {
        const delay = jitteredPeriod(periodMs, maxFactor, () => draw);
        return delay >= periodMs && delay <= Math.round(periodMs * (1 + maxFactor));
      },
    ),
  );
  t.is(
    jitteredPeriod(600_000, 0.1, () => 0),
    600_000,
  );
  t.is(
    jitteredPeriod(600_000, 0.1, () => 0.5),
    630_000,
  );
});

test('work done together and repeated on a jittered period does not come back together', (t) => {
  // 10,000 keys passed in the same second (an operator's start), each then looked at again every
  // 10 minutes with 10 % spread: the busiest second of the next looks holds a small share of them,
  // where an unjittered period brings all 10,000 back in one second, every period.
  let seed = 42;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const busiestSecond = (at: number[]) => {
    const perSecond = new Map<number, number>();
    for (const ms of at)
      perSecond.set(Math.floor(ms / 1000), (perSecond.get(Math.floor(ms / 1000)) ?? 0) + 1);
    return Math.max(...perSecond.values());
  };
  let next = Array.from({ length: 10_000 }, () => 0);
  for (let period = 1; period <= 3; period++) {
    next = next.map((at) => at + jitteredPeriod(600_000, 0.1, random));
    t.true(busiestSecond(next) < 400, `period ${period}: at most ${busiestSecond(next)} in one second`);
  }
});
