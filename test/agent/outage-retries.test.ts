// The agent's retries while the control plane is unreachable (src/agent/outage-retries.ts), on a
// FakeClock: the jittered backoff, --give-up-after counted from the start of the first failed try,
// the last wait cut to the deadline, a success that starts the next outage afresh, and
// --give-up-on-refusal-after for an unbroken run of certificate refusals by TLS alert.
import test from 'ava';
import { isAgentFailure, NEXT_STEPS } from '../../src/agent/failure.ts';
import { OutageRetries } from '../../src/agent/outage-retries.ts';
import { FakeClock } from '../../src/lib/clock.ts';
import { CodedError } from '../../src/lib/errors.ts';

const refused = new CodedError('CONNECTION_REFUSED', 'connection refused to cp.example:8443', {
  temporary: true,
});

const certificateRefused = new CodedError(
  'TLS_CLIENT_CERTIFICATE_REJECTED',
  'client certificate rejected: certificate signed by unknown authority: ... with alert 48 (unknown ca) ...',
  { temporary: true },
);

function retries(
  clock: FakeClock,
  giveUpAfterMs: number,
  paired = true,
  giveUpOnRefusalAfterMs = 0,
): OutageRetries {
  return new OutageRetries({
    config: { retryInitialMs: 1_000, retryMaxMs: 8_000, giveUpAfterMs, giveUpOnRefusalAfterMs },
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
    config: { retryInitialMs: 1_000, retryMaxMs: 8_000, giveUpAfterMs: 0, giveUpOnRefusalAfterMs: 0 },
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

// Under the operator there is no --give-up-after (0): a server answering only with a TLS alert about
// the client certificate was retried for ever, so the pod's termination message, all the operator
// reads, never named it. --give-up-on-refusal-after ends such a run; plain unreachability does not.
test('--give-up-on-refusal-after ends an unbroken run of certificate refusals with exit 14 TLS_CLIENT_CERTIFICATE_REJECTED, without --give-up-after', (t) => {
  const clock = new FakeClock();
  const outage = retries(clock, 0, true, 5_000);
  const firstTry = clock.now();
  clock.advance(3_000);
  t.is(outage.failed(firstTry, certificateRefused), 1_000);
  clock.advance(1_000);
  t.is(outage.failed(clock.now(), certificateRefused), 1_000, 'the 2 s backoff is cut to the 1 s left');
  clock.advance(1_000);
  const failure = t.throws(() => outage.failed(clock.now(), certificateRefused));
  t.true(isAgentFailure(failure));
  if (!isAgentFailure(failure)) return;
  t.is(failure.code, 'TLS_CLIENT_CERTIFICATE_REJECTED');
  t.is(failure.exitCode, 14);
  t.is(failure.failureClass, 'Reconnect');
  t.regex(
    failure.message,
    /^gave up after 5 s: the control plane's address was reached, and client certificate rejected: /,
  );
});

test('--give-up-on-refusal-after never ends plain unreachability, and an unreachable try starts the refusal run over', (t) => {
  const clock = new FakeClock();
  const outage = retries(clock, 0, true, 5_000);
  for (let i = 0; i < 20; i += 1) {
    t.notThrows(() => outage.failed(clock.now(), refused), 'unreachable: retried for ever');
    clock.advance(3_600_000);
  }
  t.notThrows(() => outage.failed(clock.now(), certificateRefused));
  clock.advance(4_000);
  t.notThrows(() => outage.failed(clock.now(), refused), 'a try that reached nothing breaks the run');
  clock.advance(1_000);
  t.notThrows(() => outage.failed(clock.now(), certificateRefused), 'a new run: 0 s of refusals, not 5');
  clock.advance(4_000);
  t.notThrows(() => outage.failed(clock.now(), certificateRefused));
  clock.advance(1_000);
  t.throws(() => outage.failed(clock.now(), certificateRefused), undefined, '5 s of nothing but refusals');
});

test('--give-up-on-refusal-after 0 retries refusals for ever; before pairing, giving up on one is a first-boot failure with its own next step', (t) => {
  const clock = new FakeClock();
  const forever = retries(clock, 0, true, 0);
  for (let i = 0; i < 20; i += 1) {
    t.notThrows(() => forever.failed(clock.now(), certificateRefused));
    clock.advance(3_600_000);
  }
  const pairing = retries(clock, 0, false, 1_000);
  pairing.failed(clock.now(), certificateRefused);
  clock.advance(1_000);
  const failure = t.throws(() => pairing.failed(clock.now(), certificateRefused));
  t.true(isAgentFailure(failure));
  if (!isAgentFailure(failure)) return;
  t.is(failure.failureClass, 'FirstBootBootstrap');
  t.is(failure.code, 'TLS_CLIENT_CERTIFICATE_REJECTED');
  t.is(failure.nextStep, NEXT_STEPS.handshakeRefusedWhilePairing);
});
