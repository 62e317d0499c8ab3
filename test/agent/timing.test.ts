import test from 'ava';
import { readinessAt } from '../../src/agent/readiness.ts';
import { renewalDueAt } from '../../src/agent/renewal-timing.ts';
import { FakeClock } from '../../src/lib/clock.ts';

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
