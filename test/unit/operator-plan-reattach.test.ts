// Planner table tests for a claim reattached after a deletionPolicy Release delete: the new
// Connector's record is pending, but the data directory holds the old identity, which the control
// plane refuses (the agent exits 13 IDENTITY_REJECTED). The operator diagnoses it, holds no token the
// agent will not use, and a guided recovery (without the control plane's beginRecovery, which is
// for paired connectors) mints the one token that replaces it.
import test from 'ava';
import type { ConnectorStatus } from '../../src/operator/api/types.ts';
import { refusedIdentityOfNeverPaired } from '../../src/operator/reconcile/assessment.ts';
import { planEnrollment } from '../../src/operator/reconcile/enrollment.ts';
import { agentPodFacts } from '../../src/operator/reconcile/pod-facts.ts';
import { planRecovery } from '../../src/operator/reconcile/recovery-machine.ts';
import { automaticRequestId, recoveryMintKey } from '../../src/operator/reconcile/recovery-requests.ts';
import {
  connector,
  observed,
  pendingRecord,
  pod,
  record,
  tokenSecret,
  UID,
} from '../helpers/observed-builder.ts';
import { planView } from '../helpers/plan-view.ts';

const NOW = new Date('2026-01-01T00:00:10Z');
const condition = (status: ConnectorStatus, type: string) => status.conditions?.find((c) => c.type === type);

const REFUSED = {
  exitCode: 13,
  message: JSON.stringify({
    failureClass: 'IdentityLoss',
    code: 'IDENTITY_REJECTED',
    reason:
      "the control plane refused this connector's certificate: 401 CLIENT_CERTIFICATE_REJECTED: client certificate rejected: the client certificate belongs to no enrolled connector",
  }),
  finishedAt: '2026-01-01T00:00:05Z',
};
const refusedPod = () => pod({ terminated: REFUSED, restartCount: 2 });
const liveToken = { tokenId: 't1', expiresAt: '2026-01-01T04:00:00.000Z' };
const minted: ConnectorStatus = {
  enrollment: {
    retired: false,
    mintCount: 1,
    lastMintKey: `enroll-${UID}-1`,
    tokenExpiresAt: '2026-01-01T04:00:00.000Z',
  },
};

test('only a pending record whose agent was refused its identity counts', (t) => {
  const refused = agentPodFacts(refusedPod());
  t.true(refusedIdentityOfNeverPaired(pendingRecord(), refused));
  t.false(refusedIdentityOfNeverPaired(record(), refused), 'a paired connector: agentLostIdentity says so');
  t.false(refusedIdentityOfNeverPaired(pendingRecord({ state: 'enrolling' }), refused));
  t.false(refusedIdentityOfNeverPaired(undefined, refused));
  const missing = agentPodFacts(
    pod({
      terminated: {
        exitCode: 11,
        message: JSON.stringify({ failureClass: 'FirstBootBootstrap', code: 'ENROLLMENT_TOKEN_MISSING' }),
      },
    }),
  );
  t.false(refusedIdentityOfNeverPaired(pendingRecord(), missing), 'an empty data directory is a first boot');
  const damaged = agentPodFacts(
    pod({
      terminated: {
        exitCode: 13,
        message: JSON.stringify({ failureClass: 'IdentityLoss', code: 'IDENTITY_DAMAGED' }),
      },
    }),
  );
  t.false(refusedIdentityOfNeverPaired(pendingRecord(), damaged), 'not the control plane refusing it');
});

test('a refused identity on a never-paired connector: NeedsRecovery, IdentityLoss, Stalled, the token revoked and its Secret deleted', (t) => {
  const result = planView(
    observed({
      connector: connector({ status: minted }),
      record: pendingRecord({ liveToken }),
      pods: [refusedPod()],
      tokenSecret: tokenSecret(),
    }),
    NOW,
  );
  t.is(result.status.phase, 'NeedsRecovery');
  const diagnosis = result.status.diagnosis;
  t.is(diagnosis?.failureClass, 'IdentityLoss');
  t.regex(diagnosis?.reason ?? '', /identity the control plane does not accept/);
  t.regex(diagnosis?.reason ?? '', /deletionPolicy Release/);
  t.true((diagnosis?.evidence ?? []).some((e) => /exited 13 \(IdentityLoss: IDENTITY_REJECTED/.test(e)));
  t.regex(diagnosis?.nextStep ?? '', /spec\.recovery\.requestId/);
  t.regex(diagnosis?.nextStep ?? '', /identity\.rejected-/);
  t.is(condition(result.status, 'Enrolled')?.reason, 'NeedsRecovery');
  t.is(condition(result.status, 'Stalled')?.reason, 'RecoveryRequired');
  t.is(condition(result.status, 'Stalled')?.message, diagnosis?.nextStep);
  t.deepEqual(
    result.controlPlane.map((a) => a.kind),
    ['revokeTokens'],
    'the unused token is revoked, no new one minted',
  );
  t.is(result.deleteTokenSecret, 'edge-enrollment-token');
  t.is(result.status.enrollment?.tokenSecretName, undefined);
  t.is(result.status.enrollment?.tokenExpiresAt, undefined, 'no token expiry shown for a revoked token');
  t.is(result.status.enrollment?.mintCount, 1, 'nothing counted');
});

test('once the token is gone nothing more is planned, pass after pass', (t) => {
  let status: ConnectorStatus = minted;
  for (let i = 0; i < 3; i++) {
    const result = planView(
      observed({ connector: connector({ status }), record: pendingRecord(), pods: [refusedPod()] }),
      new Date(NOW.getTime() + i * 3_600_000),
    );
    t.deepEqual(result.controlPlane, [], `pass ${i}: no mint, no revoke`);
    t.is(result.deleteTokenSecret, undefined);
    t.is(result.status.phase, 'NeedsRecovery');
    status = result.status;
  }
});

test('the enrollment plan alone: no mint and the Secret goes while the identity is refused', (t) => {
  const base = {
    connectorUID: UID,
    previous: minted.enrollment,
    now: NOW,
    tokenSecretName: 'edge-enrollment-token',
  };
  const refused = planEnrollment({
    ...base,
    record: pendingRecord({ liveToken }),
    tokenSecret: tokenSecret(),
    identityRefused: true,
  });
  t.is(refused.mint, undefined);
  t.true(refused.deleteSecret);
  t.true(refused.revoke);
  // Held (paused, blocked) decides nothing, refused or not.
  const paused = planEnrollment({
    ...base,
    record: pendingRecord({ liveToken }),
    tokenSecret: tokenSecret(),
    identityRefused: true,
    held: true,
  });
  t.false(paused.deleteSecret);
  t.falsy(paused.revoke);
  // When the agent no longer reports it (the identity directory was cleared), a token is minted at
  // once: the revoked token's expiry was dropped, so no re-mint backoff waits for it.
  const cleared = planEnrollment({
    ...base,
    previous: refused.status,
    record: pendingRecord(),
    tokenSecret: undefined,
  });
  t.truthy(cleared.mint);
});

test('an ordinary first boot on an empty claim still gets its token', (t) => {
  const result = planView(
    observed({
      record: pendingRecord(),
      pods: [
        pod({
          terminated: {
            exitCode: 11,
            message: JSON.stringify({ failureClass: 'FirstBootBootstrap', code: 'ENROLLMENT_TOKEN_MISSING' }),
          },
        }),
      ],
    }),
    NOW,
  );
  t.deepEqual(
    result.controlPlane.map((a) => a.kind),
    ['mintToken'],
  );
  t.not(result.status.phase, 'NeedsRecovery');
});

test('paused: the refusal is reported, nothing revoked or deleted', (t) => {
  const result = planView(
    observed({
      connector: connector({ spec: { paused: true }, status: minted }),
      record: pendingRecord({ liveToken }),
      pods: [refusedPod()],
      tokenSecret: tokenSecret(),
    }),
    NOW,
  );
  t.is(result.status.diagnosis?.failureClass, 'IdentityLoss');
  t.deepEqual(result.controlPlane, []);
  t.is(result.deleteTokenSecret, undefined);
});

test('Automatic: one recovery per incident, its id stable while the record stays pending', (t) => {
  const c = connector({ spec: { recovery: { policy: 'Automatic' } }, status: minted });
  const cp = pendingRecord({ stateChangedAt: '2026-01-01T00:00:00.000Z' });
  const first = planView(observed({ connector: c, record: cp, pods: [refusedPod()] }), NOW);
  const id = automaticRequestId('prod.edge', '2026-01-01T00:00:00.000Z');
  t.is(first.status.recovery?.requestId, id);
  t.is(first.status.recovery?.step, 'Requested');
  t.is(first.status.recovery?.evidence?.phaseBefore, 'NeedsRecovery');
  t.is(first.status.recovery?.evidence?.controlPlaneStateBefore, 'pending');
  t.is(first.status.phase, 'Recovering');
  // The attempt failed: the same incident does not start another one.
  const failed: ConnectorStatus = {
    ...first.status,
    recovery: { ...first.status.recovery, step: 'Failed', outcome: 'Failed' },
  };
  const again = planView(
    observed({ connector: connector({ spec: c.spec, status: failed }), record: cp, pods: [refusedPod()] }),
    NOW,
  );
  t.is(again.status.recovery?.step, 'Failed');
  t.is(again.status.recovery?.requestId, id);
  t.deepEqual(again.controlPlane, [], 'no token either: the recovery is what fixes it');
});

test('a recovery of the refused identity revokes and mints without beginRecovery, then pairs once', (t) => {
  const spec = { recovery: { requestId: 'reattach-1' } };
  let status: ConnectorStatus = { ...minted, phase: 'NeedsRecovery' };
  let cp = pendingRecord({ liveToken });
  let now = NOW;
  const step = (o: Parameters<typeof observed>[0]) => {
    now = new Date(now.getTime() + 1_000);
    const result = planView(observed({ connector: connector({ spec, status }), record: cp, ...o }), now);
    status = result.status;
    return result;
  };
  let r = step({ pods: [refusedPod()], tokenSecret: tokenSecret() });
  t.is(r.status.recovery?.step, 'Requested');
  t.deepEqual(r.controlPlane, [], 'no enrollment decisions while a recovery runs');
  t.is(step({ pods: [refusedPod()] }).status.recovery?.step, 'Checking');
  // The control plane's dry run would answer RECOVERY_NOT_NEEDED for the pending record, and this
  // recovery asks it to begin nothing: the agent's refusal is the precondition, so no dry run.
  r = step({ pods: [refusedPod()] });
  t.is(r.status.recovery?.step, 'ScalingDown');
  t.regex(r.events.find((e) => e.reason === 'RecoveryStep')?.message ?? '', /no dry run/);
  t.is(step({ pods: [], workloadReplicas: 0 }).status.recovery?.step, 'StorageReady');
  t.is(step({ pods: [], workloadReplicas: 0 }).status.recovery?.step, 'TokensRevoked');
  // The pod is gone, so the refusal is known from the evidence recorded when it was requested.
  r = step({ pods: [], workloadReplicas: 0, tokenSecret: tokenSecret() });
  t.deepEqual(
    r.controlPlane.map((a) => a.kind),
    ['revokeTokens'],
  );
  t.is(r.deleteTokenSecret, 'edge-enrollment-token');
  t.is(r.statefulSet?.spec?.replicas, 0);
  t.is(r.status.recovery?.step, 'TokensRevoked');
  cp = pendingRecord();
  r = step({ pods: [], workloadReplicas: 0 });
  t.is(r.status.recovery?.step, 'TokenMinted');
  t.is(r.status.recovery?.mintKey, recoveryMintKey('reattach-1'));
  r = step({ pods: [], workloadReplicas: 0 });
  const mints = r.controlPlane.filter((a) => a.kind === 'mintToken');
  t.deepEqual(
    mints.map((a) => (a.kind === 'mintToken' ? a.idempotencyKey : '')),
    [recoveryMintKey('reattach-1')],
  );
  const secret = tokenSecret({ mintKey: recoveryMintKey('reattach-1') });
  t.is(step({ pods: [], workloadReplicas: 0, tokenSecret: secret }).status.recovery?.step, 'ScalingUp');
  t.is(step({ pods: [], workloadReplicas: 1, tokenSecret: secret }).status.recovery?.step, 'AwaitingOnline');
  // The agent moved the refused identity aside and paired: enrolling, then online and retired.
  cp = pendingRecord({ state: 'enrolling' });
  r = step({ tokenSecret: secret });
  t.is(r.status.recovery?.step, 'AwaitingOnline');
  t.is(r.status.phase, 'Recovering');
  cp = record({
    state: 'online',
    certificate: { serial: 'new1', notBefore: '', notAfter: '', fingerprintSha256: '' },
  });
  r = step({ tokenSecret: secret });
  t.is(r.deleteTokenSecret, 'edge-enrollment-token');
  r = step({});
  t.is(r.status.recovery?.step, 'ValidatingRestart');
  t.false(
    r.controlPlane.some((a) => a.kind === 'beginRecovery'),
    'beginRecovery is never asked of a pending record',
  );
});

test('a recovery asked of a never-paired connector without a refused identity still fails as not needed', (t) => {
  const decision = planRecovery({
    connectorId: 'prod.edge',
    policy: 'Manual',
    requestedId: 'r9',
    validateRestart: true,
    storage: { kind: 'OperatorClaim', size: '1Gi' },
    previous: {
      requestId: 'r9',
      step: 'TokensRevoked',
      attempts: 1,
      startedAt: '2026-01-01T00:00:00Z',
      evidence: { phaseBefore: 'Pending', controlPlaneStateBefore: 'pending' },
    },
    record: pendingRecord(),
    identityLoss: false,
    identityRefused: false,
    phaseBefore: 'Pending',
    workload: undefined,
    pods: [],
    tokenSecret: undefined,
    claims: new Map(),
    audit: undefined,
    now: NOW,
  });
  t.is(decision.status?.step, 'Failed');
  t.regex(decision.status?.reason ?? '', /never paired/);
});

test('a refused identity of a paired connector is still the lost-identity rule (record not pending)', (t) => {
  const result = planView(observed({ record: record({ state: 'offline' }), pods: [refusedPod()] }), NOW);
  t.is(result.status.diagnosis?.failureClass, 'IdentityLoss');
  t.regex(result.status.diagnosis?.reason ?? '', /paired before/);
  t.deepEqual(result.controlPlane, []);
});

test('a Secret proving a mint the status did not count gives its creation as the mint time, never the older mint', (t) => {
  // Found reading the code: the count and key moved on to the Secret's mint while tokenMintedAt kept
  // the previous mint's time, so the new token's lifetime looked longer than it was.
  const previous = {
    retired: false,
    mintCount: 1,
    lastMintKey: `enroll-${UID}-1`,
    tokenMintedAt: '2025-12-31T20:00:00.000Z',
  };
  const base = { connectorUID: UID, previous, now: NOW, tokenSecretName: 'edge-enrollment-token' };
  const proven = planEnrollment({
    ...base,
    record: pendingRecord(),
    tokenSecret: tokenSecret({ mintKey: `enroll-${UID}-2`, createdAt: '2026-01-01T00:00:05.000Z' }),
  });
  t.is(proven.status.mintCount, 2);
  t.is(proven.status.tokenMintedAt, '2026-01-01T00:00:05.000Z');
  const unknown = planEnrollment({
    ...base,
    record: pendingRecord(),
    tokenSecret: tokenSecret({ mintKey: `enroll-${UID}-2` }),
  });
  t.is(unknown.status.mintCount, 2);
  t.is(unknown.status.tokenMintedAt, undefined, 'no time rather than the older mint');
});
