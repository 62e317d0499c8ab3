import test from 'ava';
import {
  type CertificateVerdict,
  type ConnectorRecord,
  healthState,
  isBootstrapClosed,
  isOverdue,
  judgeCertificate,
  onHeartbeat,
  REVOKED_CERTIFICATES_KEPT,
  recoveryDecision,
  rememberRevoked,
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
    certificate: { serial: 'aa', notBefore: T0, notAfter: T0 + 3_000, fingerprintSha256: 'ff', issuedAt: T0 },
    revokedCertificates: [],
    liveToken: null,
    recovery: null,
    lastEnrollmentFailure: null,
    ownerUid: null,
    handoverNamespace: null,
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

test('renewal is due two thirds into the granted lifetime, counted from issuance, not the back-dated notBefore', (t) => {
  const backdate = 5 * 60_000;
  const certificate = (lifetimeMs: number) => ({
    serial: 'a',
    notBefore: T0 - backdate,
    notAfter: T0 + lifetimeMs,
    fingerprintSha256: '',
    issuedAt: T0,
  });
  t.is(renewAfter(certificate(3_000)), T0 + 2_000, 'a 3-second certificate: 2 s after issuance, not at once');
  t.is(renewAfter(certificate(300_000)), T0 + 200_000);
  t.is(renewAfter(certificate(86_400_000)), T0 + 57_600_000);
});

test('a certificate is judged by its record: revoked, unknown, superseded, then its dates by the given clock', (t) => {
  const peer = (serial: string, notBefore = T0 - 1_000, notAfter = T0 + 3_000) => ({
    serial,
    notBefore,
    notAfter,
  });
  const revoked = { serial: 'old', revokedAt: T0 - 500, requestId: 'rq-1' };
  const recovered = record({ revokedCertificates: [revoked] });
  const cases: Array<[string, Parameters<typeof judgeCertificate>, CertificateVerdict['verdict']]> = [
    ['the current certificate', [record(), peer('aa'), T0], 'current'],
    ['a revoked serial, with a newer certificate on record', [recovered, peer('old'), T0], 'revoked'],
    [
      'a revoked serial while the recovery has no certificate yet',
      [record({ certificate: null, revokedCertificates: [revoked] }), peer('old'), T0],
      'revoked',
    ],
    ['no record', [undefined, peer('aa'), T0], 'unknown'],
    ['a record without a certificate', [record({ certificate: null }), peer('aa'), T0], 'unknown'],
    ['another serial than the current one', [record(), peer('bb'), T0], 'superseded'],
    ['revoked wins over expired', [recovered, peer('old', T0 - 9_000, T0 - 1), T0], 'revoked'],
    ['before notBefore', [record(), peer('aa', T0 + 1, T0 + 3_000), T0], 'not_yet_valid'],
    ['at notAfter', [record(), peer('aa'), T0 + 3_000], 'expired'],
  ];
  for (const [name, args, verdict] of cases) t.is(judgeCertificate(...args).verdict, verdict, name);
  t.deepEqual(judgeCertificate(recovered, peer('old'), T0), { verdict: 'revoked', revocation: revoked });
});

test('revoked certificates are remembered up to a bound, newest kept', (t) => {
  let remembered: ReturnType<typeof rememberRevoked> = [];
  for (let i = 0; i < REVOKED_CERTIFICATES_KEPT + 3; i++)
    remembered = rememberRevoked(remembered, { serial: `s${i}`, revokedAt: T0 + i, requestId: `rq-${i}` });
  t.is(remembered.length, REVOKED_CERTIFICATES_KEPT);
  t.is(remembered[0]?.serial, 's3');
  t.is(remembered.at(-1)?.serial, `s${REVOKED_CERTIFICATES_KEPT + 2}`);
});
