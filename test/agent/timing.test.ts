import test from 'ava';
import { backoffDelay, renewalDueAt } from '../../src/agent/backoff.ts';
import { readinessAt } from '../../src/agent/health-server.ts';
import { FakeClock } from '../../src/lib/clock.ts';

const policy = { initialMs: 1000, maxMs: 60_000 };

test('backoff doubles per attempt, is capped, and the jitter stays within half to full', (t) => {
  t.is(
    backoffDelay(1, policy, () => 0),
    500,
  );
  t.is(
    backoffDelay(1, policy, () => 0.999_999),
    1000,
  );
  t.is(
    backoffDelay(2, policy, () => 0),
    1000,
  );
  t.is(
    backoffDelay(3, policy, () => 0),
    2000,
  );
  t.is(
    backoffDelay(6, policy, () => 0),
    16_000,
  );
  t.is(
    backoffDelay(7, policy, () => 0),
    30_000,
    'capped at maxMs (64 s would exceed 60 s)',
  );
  t.is(
    backoffDelay(100, policy, () => 0.999_999),
    60_000,
  );
  const delays = [0, 0.25, 0.5, 0.75].map((r) => backoffDelay(4, policy, () => r));
  t.deepEqual(delays, [4000, 5000, 6000, 7000], 'different random draws spread the fleet');
});

test('renewal is due at the configured fraction of the lifetime', (t) => {
  const notBefore = new Date('2026-01-01T00:00:00Z');
  const notAfter = new Date('2026-01-02T00:00:00Z');
  t.is(renewalDueAt(notBefore, notAfter, 0.5).toISOString(), '2026-01-01T12:00:00.000Z');
  t.is(renewalDueAt(notBefore, notAfter, 0.75).toISOString(), '2026-01-01T18:00:00.000Z');
});

test('ready while the last accepted heartbeat is within three intervals', (t) => {
  const clock = new FakeClock('2026-01-01T00:00:00Z');
  t.false(readinessAt(undefined, 10_000, clock.now(), undefined).ready);
  const accepted = clock.now();
  t.true(readinessAt(accepted, 10_000, clock.advance(30_000), 'online').ready);
  const late = readinessAt(accepted, 10_000, clock.advance(1), 'online');
  t.false(late.ready);
  t.regex(late.detail, /more than 3 intervals/);
  t.is(late.lastHeartbeatAt, '2026-01-01T00:00:00.000Z');
  t.is(late.state, 'not ready (online as of the last accepted heartbeat, 2026-01-01T00:00:00.000Z)');
  t.is(late.lastReportedState, 'online');
});
