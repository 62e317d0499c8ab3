// The agent's retries while the control plane is unreachable (src/agent/outage-retries.ts), on a
// FakeClock: the jittered backoff, --give-up-after counted from the start of the first failed try,
// the last wait cut to the deadline, and a success that starts the next outage afresh.
import test from 'ava';
import { isAgentFailure } from '../../src/agent/failure.ts';
import { OutageRetries } from '../../src/agent/outage-retries.ts';
import { FakeClock } from '../../src/lib/clock.ts';
import { CodedError } from '../../src/lib/errors.ts';

const refused = new CodedError('CONNECTION_REFUSED', 'connection refused to cp.example:8443', {
  temporary: true,
});

function retries(clock: FakeClock, giveUpAfterMs: number, paired = true): OutageRetries {
  return new OutageRetries({
    config: { retryInitialMs: 1_000, retryMaxMs: 8_000, giveUpAfterMs },
    clock,
    // The top of the jitter range: the full delay, so the doubling and the cap are exact.
    random: () => 0.999_999_999,
    paired,
  });
}

test('the wait doubles from --retry-initial up to --retry-max, half of it jitter', (t) => {
  const clock = new FakeClock();
  const outage = retries(clock, 0);
  const delays = [1, 2, 3, 4, 5].map(() => outage.failed(clock.now(), refused));
  t.deepEqual(delays, [1_000, 2_000, 4_000, 8_000, 8_000]);
  t.is(outage.attempts, 5);
  const low = new OutageRetries({
    config: { retryInitialMs: 1_000, retryMaxMs: 8_000, giveUpAfterMs: 0 },
    clock,
    random: () => 0,
    paired: true,
  });
  t.is(low.failed(clock.now(), refused), 500, 'equal jitter: never less than half the delay');
});

test('without --give-up-after the agent never gives up', (t) => {
  const clock = new FakeClock();
  const outage = retries(clock, 0);
  for (let i = 0; i < 50; i += 1) {
    t.notThrows(() => outage.failed(clock.now(), refused));
    clock.advance(3_600_000);
  }
});

test('--give-up-after counts from the start of the first failed try, and the last wait ends at the deadline', (t) => {
  const clock = new FakeClock();
  const outage = retries(clock, 5_000);
  const firstTry = clock.now();
  // The first try hung for 3 s before it failed: those seconds count.
  clock.advance(3_000);
  t.is(outage.failed(firstTry, refused), 1_000);
  clock.advance(1_000);
  t.is(outage.failed(clock.now(), refused), 1_000, 'the 2 s backoff is cut to the 1 s left');
  clock.advance(1_000);
  const failure = t.throws(() => outage.failed(clock.now(), refused));
  t.true(isAgentFailure(failure));
  if (!isAgentFailure(failure)) return;
  t.is(failure.code, 'CONTROL_PLANE_UNREACHABLE');
  t.is(failure.exitCode, 14);
  t.is(failure.failureClass, 'Reconnect');
  t.regex(
    failure.message,
    /^gave up after 5 s without reaching the control plane; last error CONNECTION_REFUSED: /,
  );
});

test('an agent that never paired gives up as a first-boot failure', (t) => {
  const clock = new FakeClock();
  const outage = retries(clock, 1_000, false);
  outage.failed(clock.now(), refused);
  clock.advance(1_000);
  const failure = t.throws(() => outage.failed(clock.now(), refused));
  t.true(isAgentFailure(failure) && failure.failureClass === 'FirstBootBootstrap');
});

test('a success starts the next outage afresh: its count and its give-up deadline', (t) => {
  const clock = new FakeClock();
  const outage = retries(clock, 5_000);
  outage.failed(clock.now(), refused);
  clock.advance(4_000);
  outage.failed(clock.now(), refused);
  outage.succeeded();
  t.is(outage.attempts, 0);
  clock.advance(4_000);
  t.is(outage.failed(clock.now(), refused), 1_000, 'the first retry of a new outage waits --retry-initial');
  clock.advance(4_000);
  t.notThrows(() => outage.failed(clock.now(), refused), '4 s into the new outage, not 12 s');
});
