// The guided recovery's parts one at a time (recovery.ts puts them together, and the planner tables
// and the property tests hold the whole to the runbook): what each recorded step means, which
// request runs and what the handled-id memory keeps, what the spec may withdraw, the evidence of
// the window, and what an ending attempt gives back.

import test from 'ava';
import { EXIT_CODES } from '../../src/contract/agent-process.ts';
import { RECOVERY_STEPS, type RecoveryStatus, type RecoveryStep } from '../../src/operator/api/types.ts';
import type { AuditEntry } from '../../src/operator/control-plane/admin-client.ts';
import { withLiveToken } from '../../src/operator/reconcile/live-token.ts';
import {
  auditRefs,
  closingEvidence,
  failedClosedSince,
  openingEvidence,
} from '../../src/operator/reconcile/recovery-evidence.ts';
import { planRecovery } from '../../src/operator/reconcile/recovery-machine.ts';
import { outcomesOf } from '../../src/operator/reconcile/recovery-outcomes.ts';
import { recoverySteps } from '../../src/operator/reconcile/recovery-plan-steps.ts';
import {
  abandonment,
  automaticRequestId,
  HANDLED_REQUEST_IDS_KEPT,
  recoveryMintKey,
  startRecovery,
} from '../../src/operator/reconcile/recovery-requests.ts';
import {
  abandonable,
  recoveryUnderway,
  replicasDuring,
  restoredReplicas,
} from '../../src/operator/reconcile/recovery-stages.ts';
import type { RecoveryInput } from '../../src/operator/reconcile/recovery-types.ts';
import { tokenSecretFacts } from '../../src/operator/reconcile/token-secret.ts';
import { pod, record, tokenSecret } from '../helpers/observed-builder.ts';

const NOW = new Date('2026-01-01T00:10:00Z');
const STARTED = '2026-01-01T00:00:00Z';

function input(overrides: Partial<RecoveryInput> = {}): RecoveryInput {
  return {
    connectorId: 'prod.edge',
    policy: 'Manual',
    requestedId: undefined,
    validateRestart: true,
    storage: { kind: 'OperatorClaim', size: '1Gi' },
    previous: undefined,
    record: record({ state: 'needs_recovery' }),
    identityLoss: true,
    phaseBefore: 'NeedsRecovery',
    workload: undefined,
    pods: [],
    tokenSecret: undefined,
    claims: new Map(),
    audit: undefined,
    now: NOW,
    ...overrides,
  };
}

function at(step: RecoveryStep, overrides: Partial<RecoveryStatus> = {}): RecoveryStatus {
  return {
    requestId: 'r1',
    step,
    attempts: 1,
    startedAt: STARTED,
    evidence: { phaseBefore: 'NeedsRecovery', replicasBefore: 3, windowStart: STARTED },
    ...overrides,
  };
}

// ---- stages ----

/** Each step: under way, the replicas it holds the workload at, withdrawable by the spec, given back at an end. */
const STAGES: Record<RecoveryStep, [boolean, number | undefined, boolean, number | undefined]> = {
  Requested: [true, undefined, true, undefined],
  Checking: [true, undefined, true, undefined],
  ScalingDown: [true, 0, true, 3],
  StorageReady: [true, 0, true, 3],
  TokensRevoked: [true, 0, false, 3],
  TokenMinted: [true, 0, false, 3],
  ScalingUp: [true, 1, false, 3],
  AwaitingOnline: [true, 1, false, 3],
  ValidatingRestart: [true, 1, false, 3],
  Completed: [false, undefined, false, undefined],
  Failed: [false, undefined, false, undefined],
};

test('stages: every step the CRD allows says whether it is under way, what it holds, whether the spec can withdraw it, what an end gives back', (t) => {
  t.deepEqual(Object.keys(STAGES), [...RECOVERY_STEPS], 'a step the CRD gains must be placed here');
  for (const step of RECOVERY_STEPS) {
    const [underway, held, withdrawable, givenBack] = STAGES[step];
    t.is(recoveryUnderway(step), underway, `${step}: under way`);
    t.is(replicasDuring(step), held, `${step}: replicas held`);
    t.is(abandonable(step), withdrawable, `${step}: withdrawable`);
    t.is(restoredReplicas(at(step)), givenBack, `${step}: replicas given back`);
  }
  t.false(recoveryUnderway(undefined), 'no record: nothing under way');
  t.is(restoredReplicas(at('TokenMinted', { evidence: {} })), 1, 'none recorded: the one replica');
});

// ---- requests and the handled-id memory ----

test(`requests: a new record remembers the newest ${HANDLED_REQUEST_IDS_KEPT} ids handled before, and the newest one the spec asked for however many automatic ones followed`, (t) => {
  const automatic = Array.from({ length: HANDLED_REQUEST_IDS_KEPT }, (_, i) =>
    automaticRequestId('prod.edge', `2025-12-${String(i + 10).padStart(2, '0')}T00:00:00Z`),
  );
  const previous: RecoveryStatus = {
    ...at('Failed'),
    requestId: automatic.at(-1) ?? '',
    handledRequestIds: ['asked-1', ...automatic.slice(0, -1)],
  };
  const started = startRecovery(input({ previous, requestedId: 'asked-2' }));
  t.is(started.status?.requestId, 'asked-2');
  t.is(started.status?.step, 'Requested');
  t.deepEqual(started.status?.handledRequestIds, ['asked-1', ...automatic.slice(1)]);

  const plain = Array.from({ length: HANDLED_REQUEST_IDS_KEPT + 1 }, (_, i) => `asked-${i}`);
  const withoutAutomatic = startRecovery(
    input({
      previous: { ...at('Failed'), requestId: plain.at(-1) ?? '', handledRequestIds: plain.slice(0, -1) },
      requestedId: 'asked-new',
    }),
  );
  t.deepEqual(withoutAutomatic.status?.handledRequestIds, plain.slice(-HANDLED_REQUEST_IDS_KEPT));
});

test('requests: the spec set back to an id handled before runs nothing and says so; the newest asked id left in the spec stays quiet', (t) => {
  const auto = automaticRequestId('prod.edge', '2025-12-31T23:00:00.000Z');
  const previous: RecoveryStatus = { ...at('Completed'), requestId: auto, handledRequestIds: ['r1', 'r2'] };
  const setBack = startRecovery(input({ previous, requestedId: 'r1' }));
  t.like(setBack.status, { requestId: 'r1', step: 'Failed', outcome: 'Failed', attempts: 0 });
  t.deepEqual(setBack.status?.handledRequestIds, ['r2', auto]);
  t.deepEqual(
    setBack.events.map((e) => e.reason),
    ['RecoveryFailed'],
  );
  t.false(setBack.inProgress);
  t.is(setBack.replicas, undefined, 'nothing is scaled');
  t.deepEqual(setBack.controlPlane, []);

  const quiet = startRecovery(input({ previous, requestedId: 'r2' }));
  t.is(quiet.status, previous, 'the same request, answered already');
  t.deepEqual(quiet.events, []);
});

test('requests: the spec withdraws only a request it asked for, and only before the control plane began it', (t) => {
  t.is(
    abandonment(input({ requestedId: undefined }), at('StorageReady')),
    'spec.recovery.requestId was removed',
  );
  t.is(
    abandonment(input({ requestedId: 'r2' }), at('Checking')),
    'spec.recovery.requestId was replaced by r2',
  );
  t.is(abandonment(input({ requestedId: 'r1' }), at('ScalingDown')), undefined, 'still asked for');
  t.is(
    abandonment(input({ requestedId: undefined }), at('TokensRevoked')),
    undefined,
    'begun: runs to its end',
  );
  const auto = automaticRequestId('prod.edge', '2025-12-31T23:00:00.000Z');
  t.is(
    abandonment(input({ requestedId: undefined }), at('Requested', { requestId: auto })),
    undefined,
    'an automatic recovery was not the spec’s to withdraw',
  );
});

// ---- evidence ----

function entry(seq: number, type: string, at: string): AuditEntry {
  return { seq, type, at, connectorId: 'prod.edge', details: {} };
}

test('evidence: the audit of the window is the recovery’s own entries since it started, the newest 20', (t) => {
  const during = Array.from({ length: 25 }, (_, i) =>
    entry(i + 2, 'endpoint.enrolled', new Date(Date.parse(STARTED) + (i + 1) * 1_000).toISOString()),
  );
  const audit = [
    entry(1, 'endpoint.enrolled', '2025-12-31T23:59:59Z'),
    ...during.slice(0, 10),
    entry(100, 'endpoint.state_changed', '2026-01-01T00:00:11Z'),
    entry(101, 'token.minted', '2026-01-01T00:00:11Z'),
    ...during.slice(10),
  ];
  t.deepEqual(
    auditRefs(audit, STARTED).map((e) => e.seq),
    during.slice(-20).map((e) => e.seq),
  );
  t.deepEqual(auditRefs(audit, undefined), [], 'no start, no window');
  t.deepEqual(auditRefs(undefined, STARTED), [], 'no audit read');
});

test('evidence: only an agent that failed closed after the attempt started ends it', (t) => {
  const after = '2026-01-01T00:05:00Z';
  const stopped = (exitCode: number, finishedAt = after) => [pod({ terminated: { exitCode, finishedAt } })];
  t.like(failedClosedSince(stopped(EXIT_CODES.identityLoss), STARTED), { pod: 'edge-0' });
  t.like(failedClosedSince(stopped(EXIT_CODES.identityUnusable), STARTED), {
    termination: { exitCode: EXIT_CODES.identityUnusable },
  });
  t.is(
    failedClosedSince(stopped(EXIT_CODES.identityLoss, '2025-12-31T23:00:00Z'), STARTED),
    undefined,
    'before it',
  );
  t.is(failedClosedSince(stopped(143), STARTED), undefined, 'killed: Kubernetes restarts it');
  t.is(
    failedClosedSince(stopped(EXIT_CODES.controlPlaneUnreachable), STARTED),
    undefined,
    'unreachable or clock skew: may still pair',
  );
  t.is(failedClosedSince(stopped(EXIT_CODES.identityLoss), undefined), undefined, 'no start recorded');
});

test('evidence: the request records what was before, the end what is after and the window', (t) => {
  const opening = openingEvidence(
    input({
      identityLoss: true,
      phaseBefore: 'Offline',
      workload: { kind: 'Deployment', name: 'edge', replicas: 2, readyReplicas: 2, templateAnnotations: {} },
    }),
  );
  t.deepEqual(opening, {
    phaseBefore: 'NeedsRecovery',
    controlPlaneStateBefore: 'needs_recovery',
    replicasBefore: 2,
    windowStart: '2026-01-01T00:10:00Z',
  });
  t.deepEqual(openingEvidence(input({ identityLoss: false, phaseBefore: 'Offline', record: undefined })), {
    phaseBefore: 'Offline',
    windowStart: '2026-01-01T00:10:00Z',
  });
  const closing = closingEvidence(input({ record: record({ state: 'online' }) }), at('AwaitingOnline'), {
    phaseAfter: 'Online',
    proof: 'paired',
  });
  t.like(closing, {
    phaseBefore: 'NeedsRecovery',
    replicasBefore: 3,
    windowStart: STARTED,
    phaseAfter: 'Online',
    controlPlaneStateAfter: 'online',
    proof: 'paired',
    windowEnd: '2026-01-01T00:10:00Z',
  });
});

// ---- outcomes ----

test('outcomes: an attempt gives back the replicas recorded with the request only once it scaled the workload', (t) => {
  const beforeScaling = outcomesOf(input(), at('Checking')).fail('refused');
  t.is(beforeScaling.replicas, undefined, 'nothing was scaled, nothing is given back');
  t.like(beforeScaling.status, { step: 'Failed', outcome: 'Failed', reason: 'refused' });
  t.false(beforeScaling.inProgress);
  t.is(outcomesOf(input(), at('TokenMinted')).fail('expired').replicas, 3);
  const paired = outcomesOf(input({ record: record({ state: 'degraded' }) }), at('AwaitingOnline')).complete(
    'p',
  );
  t.is(paired.replicas, 3);
  t.like(paired.status, { step: 'Completed', outcome: 'Succeeded', evidence: { phaseAfter: 'Degraded' } });
  t.deepEqual(
    [...beforeScaling.events, ...paired.events].map((e) => [e.reason, e.priority]),
    [
      ['RecoveryFailed', 'always'],
      ['RecoverySucceeded', 'always'],
    ],
    'an outcome Event is never held back',
  );
  const advanced = outcomesOf(input(), at('Checking')).advance('ScalingDown');
  t.like(advanced, { replicas: 0, inProgress: true, requeueAfterMs: 0, status: { step: 'ScalingDown' } });
});

// ---- the token Secret deleted by hand before the agent paired ----

const TOKEN_EXPIRY = '2026-01-01T04:00:00.000Z';
/** The control plane during attempt r1: it began it, its one token is live, the agent has not paired. */
const recovering = (overrides: Parameters<typeof record>[0] = {}) =>
  record({
    state: 'recovering',
    bootstrapRetired: false,
    recovery: { requestId: 'r1', startedAt: '2026-01-01T00:00:30.000Z', completedAt: null },
    liveToken: { tokenId: 'tR', expiresAt: TOKEN_EXPIRY },
    ...overrides,
  });
const afterMint = (step: RecoveryStep, overrides: Partial<RecoveryStatus> = {}) =>
  at(step, { mintKey: recoveryMintKey('r1'), tokenExpiresAt: TOKEN_EXPIRY, ...overrides });
const ownSecret = tokenSecret({ mintKey: recoveryMintKey('r1'), expiresAt: TOKEN_EXPIRY });
const tokenMissingExit = pod({
  terminated: {
    exitCode: EXIT_CODES.firstBootBootstrap,
    finishedAt: '2026-01-01T00:05:00Z',
    message: JSON.stringify({
      failureClass: 'FirstBootBootstrap',
      code: 'ENROLLMENT_TOKEN_MISSING',
      reason: 'no token',
    }),
  },
});

test('recovery token: the expiry of its one token is recorded when its Secret shows it', (t) => {
  const d = planRecovery(
    input({
      record: recovering(),
      previous: at('TokenMinted', { mintKey: recoveryMintKey('r1') }),
      tokenSecret: ownSecret,
    }),
  );
  t.like(d.status, { step: 'ScalingUp', tokenExpiresAt: TOKEN_EXPIRY });
});

test('recovery token: when it was stored is recorded with its expiry (the Secret creation), for its lifetime', (t) => {
  // Without a mint time, the token gauges had an expiry and no minted series for a recovery's token,
  // and VaultpamConnectorTokenExpiringUnused (a quarter of the lifetime left) could not fire for it.
  const d = planRecovery(
    input({
      record: recovering(),
      previous: at('TokenMinted', { mintKey: recoveryMintKey('r1') }),
      tokenSecret: { ...ownSecret, createdAt: '2026-01-01T00:03:00.000Z' },
    }),
  );
  t.like(d.status, {
    step: 'ScalingUp',
    tokenExpiresAt: TOKEN_EXPIRY,
    tokenMintedAt: '2026-01-01T00:03:00.000Z',
  });
  const connectorStatus = withLiveToken({
    enrollment: { retired: true, tokenSecretName: 'edge-enrollment-token' },
    recovery: d.status,
  });
  t.deepEqual(connectorStatus.liveToken, {
    expiresAt: TOKEN_EXPIRY,
    mintedAt: '2026-01-01T00:03:00.000Z',
    mintedFor: 'Recovery',
  });
});

for (const step of ['ScalingUp', 'AwaitingOnline'] as const) {
  test(`recovery token: its Secret deleted at ${step} before the agent paired is stored again with the same key, no new token`, (t) => {
    const d = planRecovery(input({ record: recovering(), previous: afterMint(step) }));
    t.like(d, {
      inProgress: true,
      replicas: 1,
      mintKey: recoveryMintKey('r1'),
      restoresSecret: { expiresAt: TOKEN_EXPIRY },
      status: { step },
    });
    const steps = recoverySteps({
      decision: d,
      previous: afterMint(step),
      connectorId: 'prod.edge',
      ttlSeconds: 14_400,
      tokenSecretName: 'edge-enrollment-token',
      enrollment: {},
    });
    t.deepEqual(
      steps.tokens.map((s) => [s.action?.kind, s.events?.map((e) => e.reason)]),
      [['mintToken', ['TokenSecretRestored']]],
    );
    t.regex(
      steps.tokens[0]?.events?.[0]?.message ?? '',
      /while the one token of recovery r1 was live and unused: .*mint key recovery-r1 .*live until 2026-01-01T04:00:00.000Z\); no new token was minted$/,
    );
  });
}

test('recovery token: an attempt recorded without the expiry learns it from the restore', (t) => {
  const d = planRecovery(
    input({ record: recovering(), previous: at('AwaitingOnline', { mintKey: recoveryMintKey('r1') }) }),
  );
  t.like(d, { restoresSecret: { expiresAt: TOKEN_EXPIRY }, status: { tokenExpiresAt: TOKEN_EXPIRY } });
});

test('recovery token: a Secret gone after the agent paired with the token is not stored again (a spent token is never asked for)', (t) => {
  const paired = recovering({ liveToken: null, enrolledAt: '2026-01-01T00:06:00.000Z' });
  const d = planRecovery(input({ record: paired, previous: afterMint('AwaitingOnline') }));
  t.like(d, { inProgress: true, status: { step: 'AwaitingOnline' } });
  t.is(d.mintKey, undefined);
  // Even were the record's token still shown live (a record a moment behind), the pairing decides.
  const behind = planRecovery(
    input({
      record: recovering({ enrolledAt: '2026-01-01T00:06:00.000Z' }),
      previous: afterMint('AwaitingOnline'),
    }),
  );
  t.is(behind.mintKey, undefined);
});

const NO_LONGER_LIVE =
  /^its token Secret was deleted by hand before the connector paired, and the recovery's one token is no longer live to store again: /;
const CASES: [string, Partial<RecoveryInput>, RegExp][] = [
  ['revoked (no live token)', { record: recovering({ liveToken: null }) }, /reports no live token of it/],
  [
    'replaced by a token minted by hand (another expiry)',
    { record: recovering({ liveToken: { tokenId: 'tX', expiresAt: '2026-01-01T04:05:00.000Z' } }) },
    /reports no live token of it \(it was revoked, or replaced by a token minted by hand\)/,
  ],
  [
    'refused as consumed when asked again',
    { record: recovering(), consumedMintKey: recoveryMintKey('r1') },
    /refuses its mint key recovery-r1 as consumed/,
  ],
];
for (const [title, overrides, why] of CASES) {
  test(`recovery token: its Secret deleted and the token ${title}: the attempt fails, says so, and mints nothing`, (t) => {
    const d = planRecovery(input({ previous: afterMint('AwaitingOnline'), ...overrides }));
    t.is(d.status?.step, 'Failed');
    t.regex(d.status?.reason ?? '', NO_LONGER_LIVE);
    t.regex(d.status?.reason ?? '', why);
    t.regex(d.status?.reason ?? '', /set a new spec\.recovery\.requestId/);
    t.is(d.mintKey, undefined);
  });
}

test('recovery token: its Secret deleted and its recorded expiry passed: the attempt fails at that expiry, not waiting for good', (t) => {
  const later = new Date('2026-01-01T04:00:01Z');
  const d = planRecovery(input({ record: recovering(), previous: afterMint('AwaitingOnline'), now: later }));
  t.is(
    d.status?.reason,
    'the recovery token expired at 2026-01-01T04:00:00.000Z before the connector paired; set a new spec.recovery.requestId to try again',
  );
});

test('recovery token: an agent that started while the Secret was gone (ENROLLMENT_TOKEN_MISSING) does not end the attempt while its token is live', (t) => {
  const restored = planRecovery(
    input({ record: recovering(), previous: afterMint('AwaitingOnline'), pods: [tokenMissingExit] }),
  );
  t.like(restored, {
    inProgress: true,
    mintKey: recoveryMintKey('r1'),
    restoresSecret: { expiresAt: TOKEN_EXPIRY },
  });
  const waits = planRecovery(
    input({
      record: recovering(),
      previous: afterMint('AwaitingOnline'),
      pods: [tokenMissingExit],
      tokenSecret: ownSecret,
    }),
  );
  t.like(waits, { inProgress: true, status: { step: 'AwaitingOnline' } });
  // Its token no longer live: the exit ends the attempt as before.
  const gone = planRecovery(
    input({
      record: recovering({ liveToken: null }),
      previous: afterMint('AwaitingOnline'),
      pods: [tokenMissingExit],
    }),
  );
  t.regex(gone.status?.reason ?? '', /stopped with exit code 11 .*ENROLLMENT_TOKEN_MISSING/);
});

test('found, fixed: an agent that finds no token although its Secret held it since long before (a workload that does not deliver the token) ends the attempt, not waiting out the token', (t) => {
  // A review's reproduction: the exemption for ENROLLMENT_TOKEN_MISSING (a pod started while the
  // Secret was gone, or before the kubelet had the token) held whatever the Secret: an adopted
  // workload that never mounts the token, its agent restarting and saying so, kept the attempt at
  // AwaitingOnline until the token expired (up to 4 h), where it had failed at once before.
  const since = (createdAt: string) =>
    planRecovery(
      input({
        record: recovering(),
        previous: afterMint('AwaitingOnline'),
        pods: [tokenMissingExit],
        tokenSecret: tokenSecret({ ...ownSecret, createdAt }),
      }),
    );
  // In the Secret 4 minutes before the agent stopped: the kubelet had long put it in a mounted volume.
  const undelivered = since('2026-01-01T00:01:00Z');
  t.is(undelivered.status?.step, 'Failed');
  t.regex(undelivered.status?.reason ?? '', /stopped with exit code 11 .*ENROLLMENT_TOKEN_MISSING/);
  t.is(undelivered.mintKey, undefined);
  // Stored (again) just before, or after, the agent stopped: the kubelet may not have had it yet.
  t.like(since('2026-01-01T00:04:30Z'), { inProgress: true, status: { step: 'AwaitingOnline' } });
  t.like(since('2026-01-01T00:06:00Z'), { inProgress: true, status: { step: 'AwaitingOnline' } });
  // The creation time is the Secret object's own, as the API client hands it over (a Date).
  const facts = tokenSecretFacts({
    metadata: { name: 'edge-enrollment-token', creationTimestamp: new Date('2026-01-01T00:01:00Z') },
  });
  t.is(facts?.createdAt, '2026-01-01T00:01:00.000Z');
});

test('recovery token: an agent that paired with it and could not save the certificate ended the attempt saying it paired, the token is spent, and what to do', (t) => {
  // The control plane recorded the pairing (enrolling, a certificate issued since the recovery began);
  // the agent's data directory did not take the certificate, so it stopped with exit 12.
  const paired = record({
    state: 'enrolling',
    lastHeartbeatAt: null,
    stateChangedAt: '2026-01-01T00:02:00.000Z',
    enrolledAt: '2026-01-01T00:02:00.000Z',
    recovery: { requestId: 'r1', startedAt: '2026-01-01T00:00:30.000Z', completedAt: null },
  });
  const unsaved = pod({
    terminated: {
      exitCode: EXIT_CODES.configuration,
      finishedAt: '2026-01-01T00:02:01Z',
      message: JSON.stringify({
        failureClass: 'Configuration',
        code: 'IDENTITY_PERSIST_FAILED',
        reason:
          'the certificate the control plane issued could not be saved: ENOSPC writing /data/identity/cert.pem',
      }),
    },
  });
  const d = planRecovery(
    input({ record: paired, previous: afterMint('AwaitingOnline'), pods: [unsaved], tokenSecret: ownSecret }),
  );
  t.is(d.status?.step, 'Failed');
  const reason = d.status?.reason ?? '';
  t.notRegex(reason, /instead of pairing/, 'it did pair');
  t.regex(
    reason,
    /^the agent in pod edge-0 paired with this recovery's token at 2026-01-01T00:02:00\.000Z \(certificate serial ab12\), then stopped with exit code 12 \((?:Configuration: )?IDENTITY_PERSIST_FAILED: .*ENOSPC writing \/data\/identity\/cert\.pem\) before its first heartbeat/,
  );
  t.regex(reason, /the token is spent/);
  t.regex(reason, /Make the data directory writable/);
  t.regex(reason, /set a new spec\.recovery\.requestId/);
  t.like(d.events[0], { reason: 'RecoveryFailed' });
});

test('requests: under policy Automatic, no recovery starts by itself after one that paired the connector and ended Failed (the pairing changed the record, not the cause)', (t) => {
  const pairedByR1 = record({
    state: 'enrolling',
    lastHeartbeatAt: null,
    stateChangedAt: '2026-01-01T00:02:00.000Z',
    enrolledAt: '2026-01-01T00:02:00.000Z',
    recovery: { requestId: 'r1', startedAt: '2026-01-01T00:00:30.000Z', completedAt: null },
  });
  const failedR1 = at('Failed', { outcome: 'Failed', reason: 'IDENTITY_PERSIST_FAILED after pairing' });
  const d = startRecovery(
    input({ policy: 'Automatic', record: pairedByR1, previous: failedR1, identityLoss: true }),
  );
  t.false(d.inProgress, 'none starts: it would pair again on the same data directory');
  t.is(d.status, failedR1);
  // A person's request still starts one.
  t.like(
    startRecovery(input({ policy: 'Automatic', record: pairedByR1, previous: failedR1, requestedId: 'r2' })),
    {
      inProgress: true,
      status: { requestId: 'r2', step: 'Requested' },
    },
  );
  // Once the record moved on (offline after beating, needs_recovery), a new incident may start one.
  t.true(
    startRecovery(
      input({
        policy: 'Automatic',
        record: record({ state: 'needs_recovery' }),
        previous: failedR1,
        identityLoss: true,
      }),
    ).inProgress,
  );
});
