// The one exponential backoff (src/lib/backoff.ts) that the agent, the work queue, the informers, the
// change-stream follower and the local pod runner's crash loop wait with.
import test from 'ava';
import { backoffDelay, checkBackoffPolicy } from '../../src/lib/backoff.ts';
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
