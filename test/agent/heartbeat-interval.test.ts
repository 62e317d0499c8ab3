// How often the agent beats (src/agent/heartbeat-interval.ts): never less often than the control
// plane asks (an override of 6 s against a control plane's 1 s left the connector offline on the
// control plane between heartbeats while /readyz said ready and online), and never more than once a
// second on the control plane's word (an answer of 0.0001 s made 1,342 heartbeats in 2 s).
import test from 'ava';
import { heartbeatIntervalFor, MIN_ASKED_HEARTBEAT_INTERVAL_MS } from '../../src/agent/heartbeat-interval.ts';
import { enrolledConnector, recordsMatching, runAgent, startTestControlPlane, waitFor } from './harness.ts';

test('the interval: the control plane’s, or a shorter override; never a longer one, never under a second from the control plane', (t) => {
  t.deepEqual(heartbeatIntervalFor(10, undefined), { ms: 10_000 });
  t.deepEqual(heartbeatIntervalFor(10, 250), { ms: 250 }, 'an override may beat more often');
  t.deepEqual(heartbeatIntervalFor(10, 10_000), { ms: 10_000 });
  const longer = heartbeatIntervalFor(1, 6_000);
  t.is(longer.ms, 1_000, 'an override may not beat less often than the control plane asks');
  t.regex(longer.note ?? '', /--heartbeat-interval 6 s is longer than the control plane's interval \(1 s\)/);
  const flood = heartbeatIntervalFor(0.0001, undefined);
  t.is(flood.ms, MIN_ASKED_HEARTBEAT_INTERVAL_MS);
  t.regex(flood.note ?? '', /asked for a heartbeat every 0.1 ms; the agent beats at most once every 1 s/);
  t.deepEqual(heartbeatIntervalFor(0.0001, 100), { ms: 100 }, 'the agent’s own flag is the agent’s choice');
});

test('an override longer than the control plane’s interval: the agent beats at the control plane’s, stays online there, and says why once', async (t) => {
  const control = await startTestControlPlane(t, { heartbeatIntervalSeconds: 1 });
  const id = 'team-a.slow-override';
  const connector = await enrolledConnector(t, control, id);
  const running = runAgent(t, { ...connector.config, heartbeatIntervalMs: 6_000 });
  await waitFor('four heartbeats', () => running.counts.heartbeat >= 4);
  t.is((await control.admin.getConnector(id)).state, 'online');
  t.is(
    recordsMatching(running.logs, /--heartbeat-interval 6 s is longer/).length,
    1,
    'said once, not every beat',
  );
});
