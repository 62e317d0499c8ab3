import test from 'ava';
import {
  type ConnectorRecord,
  healthState,
  isBootstrapClosed,
  isOverdue,
  onHeartbeat,
  recoveryDecision,
  renewAfter,
} from '../../src/controlplane/state.ts';
import { FakeClock } from '../../src/lib/clock.ts';

const clock = new FakeClock('2026-03-01T00:00:00Z');
const T0 = clock.now().getTime();

function record(overrides: Partial<ConnectorRecord> = {}): ConnectorRecord {
  return {
    connectorId: 'ns.a',
    org: 'acme',
    endpointId: 'ep',
    allowedNetworks: [],
    state: 'online',
    bootstrapRetired: true,
    lastHeartbeatAt: T0,
    stateChangedAt: T0,
    enrolledAt: T0,
    paths: [{ name: 'tunnel', healthy: true, detail: '' }],
    certificate: { serial: 'aa', notBefore: T0, notAfter: T0 + 3_000, fingerprintSha256: 'ff' },
    liveToken: null,
    recovery: null,
    lastEnrollmentFailure: null,
    ownerUid: null,
    revision: 1,
    createdAt: T0,
    ...overrides,
  };
}

const healthy = [{ name: 'tunnel', healthy: true, detail: '' }];
const unhealthy = [
  { name: 'tunnel', healthy: true, detail: '' },
  { name: 'db', healthy: false, detail: 'refused' },
];

test('one unhealthy path means degraded; none (or no paths) means online', (t) => {
  t.is(healthState(healthy), 'online');
  t.is(healthState(unhealthy), 'degraded');
  t.is(healthState([]), 'online');
});

test('heartbeat outcomes, case by case', (t) => {
  const cases: Array<
    [string, Partial<ConnectorRecord>, typeof healthy, Partial<ReturnType<typeof onHeartbeat>>]
  > = [
    [
      'first beat after enrollment retires',
      { state: 'enrolling', bootstrapRetired: false, paths: [] },
      healthy,
      { state: 'online', retire: true, completeRecovery: false, significant: true },
    ],
    [
      'first beat after a recovery pairing completes it',
      {
        state: 'enrolling',
        bootstrapRetired: true,
        paths: [],
        recovery: { requestId: 'r', startedAt: T0, completedAt: null },
      },
      healthy,
      { state: 'online', retire: false, completeRecovery: true, significant: true },
    ],
    ['routine beat is not significant', {}, healthy, { state: 'online', significant: false }],
    [
      'detail-only change is not significant',
      {},
      [{ name: 'tunnel', healthy: true, detail: 'rtt 3ms' }],
      { significant: false },
    ],
    ['unhealthy path degrades', {}, unhealthy, { state: 'degraded', significant: true }],
    [
      'healthy again',
      { state: 'degraded', paths: unhealthy },
      healthy,
      { state: 'online', significant: true },
    ],
    ['offline comes back', { state: 'offline' }, healthy, { state: 'online', significant: true }],
    [
      'needs_recovery stays',
      { state: 'needs_recovery' },
      healthy,
      { state: 'needs_recovery', significant: false },
    ],
  ];
  for (const [name, overrides, paths, expected] of cases) {
    t.like(onHeartbeat(record(overrides), paths), expected, name);
  }
});

test('offline sweep decision follows the injected clock and the restart grace', (t) => {
  const offlineAfter = 30_000;
  const r = record({ lastHeartbeatAt: T0 });
  t.false(isOverdue(r, T0 + 29_999, offlineAfter));
  t.true(isOverdue(r, T0 + 30_000, offlineAfter));
  t.true(isOverdue(record({ state: 'degraded' }), T0 + 30_000, offlineAfter));
  for (const state of ['pending', 'enrolling', 'offline', 'needs_recovery', 'recovering'] as const) {
    t.false(isOverdue(record({ state }), T0 + 300_000, offlineAfter), state);
  }
  // A control plane restarted at T0+100s gives everyone a fresh period.
  t.false(isOverdue(r, T0 + 120_000, offlineAfter, T0 + 100_000));
  t.true(isOverdue(r, T0 + 130_000, offlineAfter, T0 + 100_000));
});

test('bootstrap is closed after retirement except inside a recovery', (t) => {
  t.false(isBootstrapClosed(record({ state: 'pending', bootstrapRetired: false })));
  t.false(isBootstrapClosed(record({ state: 'enrolling', bootstrapRetired: false })));
  t.true(isBootstrapClosed(record({ state: 'online' })));
  t.true(isBootstrapClosed(record({ state: 'needs_recovery' })));
  t.false(isBootstrapClosed(record({ state: 'recovering' })));
});

test('recovery decisions', (t) => {
  t.is(recoveryDecision(record({ state: 'needs_recovery' }), 'r1'), 'begin');
  t.is(recoveryDecision(record({ state: 'offline' }), 'r1'), 'begin');
  t.is(recoveryDecision(record({ state: 'online' }), 'r1'), 'not_needed');
  t.is(recoveryDecision(record({ state: 'degraded' }), 'r1'), 'not_needed');
  t.is(recoveryDecision(record({ state: 'pending', bootstrapRetired: false }), 'r1'), 'not_needed');
  t.is(recoveryDecision(record({ state: 'enrolling', bootstrapRetired: false }), 'r1'), 'not_needed');
  const recovering = record({
    state: 'recovering',
    recovery: { requestId: 'r1', startedAt: T0, completedAt: null },
  });
  t.is(recoveryDecision(recovering, 'r1'), 'same_request');
  t.is(recoveryDecision(recovering, 'r2'), 'begin');
  const done = record({ state: 'online', recovery: { requestId: 'r1', startedAt: T0, completedAt: T0 } });
  t.is(recoveryDecision(done, 'r1'), 'same_request');
});

test('renewal is due two thirds into the lifetime', (t) => {
  t.is(renewAfter({ serial: 'a', notBefore: 0, notAfter: 3_000, fingerprintSha256: '' }), 2_000);
});
