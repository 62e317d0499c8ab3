// Planner table tests: one case per situation of the runbook, with a fixed clock.
import test from 'ava';
import { CodedError } from '../../src/lib/errors.ts';
import type { Connector, ConnectorStatus } from '../../src/operator/api/types.ts';
import { recoveryMintKey } from '../../src/operator/reconcile/recovery-requests.ts';
import {
  CLAIM_UID,
  claim,
  connector,
  observed,
  pendingRecord,
  pod,
  record,
  tokenSecret,
  UID,
  validatingRestartStatus,
} from '../helpers/observed-builder.ts';
import { planView } from '../helpers/plan-view.ts';

const NOW = new Date('2026-01-01T00:00:10Z');
const condition = (status: ConnectorStatus, type: string) => status.conditions?.find((c) => c.type === type);

test('a new Connector: the record is registered, its first token minted, then the StatefulSet asks for a claim', (t) => {
  const result = planView(observed({ record: undefined, pods: [], claims: [], noWorkload: true }), NOW);
  t.deepEqual(result.controlPlane, [
    {
      kind: 'ensureConnector',
      connectorId: 'prod.edge',
      config: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] },
    },
    { kind: 'mintToken', connectorId: 'prod.edge', idempotencyKey: `enroll-${UID}-1`, ttlSeconds: 14_400 },
  ]);
  // Found at 10,000 connectors: minted a pass later, the token Secret came after the StatefulSet, and
  // agents that started first exited ENROLLMENT_TOKEN_MISSING into the kubelet's restart backoff.
  // The StatefulSet is dry-run before the mint, and applied after the token is stored; the
  // ConfigMap, which holds nothing the mint guards, is applied ahead of the mint (one write, not two).
  t.deepEqual(result.order, ['applyConfigMap', 'dryRun', 'ensureConnector', 'mintToken', 'applyStatefulSet']);
  t.is(result.status.enrollment?.mintCount, 1);
  t.is(result.status.phase, 'Pending');
  t.is(result.statefulSet?.spec?.replicas, 1);
  t.is(result.statefulSet?.spec?.volumeClaimTemplates?.[0]?.metadata?.name, 'data');
  t.deepEqual(result.statefulSet?.spec?.persistentVolumeClaimRetentionPolicy, {
    whenDeleted: 'Retain',
    whenScaled: 'Retain',
  });
  t.is(result.configMap?.data?.['connector-id'], 'prod.edge');
  // Found in CI: before the StatefulSet controller creates the claim, the mode is the template's.
  const beforeClaim = planView(observed({ record: undefined, pods: [], claims: [] }), NOW);
  t.is(beforeClaim.status.mode, 'Autonomous');
  t.is(condition(beforeClaim.status, 'DurableStorage')?.status, 'Unknown');
  t.false(JSON.stringify(result.configMap).includes('token'), 'the ConfigMap holds configuration only');
});

test('no record yet, but a pod or a retired bootstrap: the registering pass mints nothing; the next pass judges the record', (t) => {
  // A pod's agent may hold an identity (the record was lost in the control plane): a token is the
  // decision of a pass that sees the record and the agent together.
  const withPod = planView(observed({ record: undefined, claims: [] }), NOW);
  t.deepEqual(
    withPod.order.filter((kind) => kind !== 'applyConfigMap' && kind !== 'applyStatefulSet'),
    ['ensureConnector'],
  );
  const retired = planView(
    observed({
      connector: connector({ status: { enrollment: { retired: true, mintCount: 1 } } }),
      record: undefined,
      pods: [],
      claims: [],
    }),
    NOW,
  );
  t.false(retired.order.includes('mintToken'));
  t.true(retired.order.includes('ensureConnector'));
  // Unreachable: nothing registered, nothing minted.
  const unreachable = planView(observed({ record: 'unreachable', pods: [], claims: [] }), NOW);
  t.deepEqual(unreachable.controlPlane, []);
});

test('never paired, no token: one token is minted with a key derived from the object and the count', (t) => {
  const result = planView(
    observed({
      record: pendingRecord({}),
    }),
    NOW,
  );
  const mint = result.controlPlane.find((a) => a.kind === 'mintToken');
  t.deepEqual(mint, {
    kind: 'mintToken',
    connectorId: 'prod.edge',
    idempotencyKey: `enroll-${UID}-1`,
    ttlSeconds: 14_400,
  });
  t.is(result.status.enrollment?.mintCount, 1);
  t.true(result.events.some((e) => e.reason === 'TokenMinted'));
});

test('a live token in its Secret: nothing is minted and Enrolled says TokenMinted until expiry', (t) => {
  const expiresAt = '2026-01-01T04:00:00.000Z';
  const result = planView(
    observed({
      connector: connector({ status: { enrollment: { mintCount: 1 } } }),
      record: pendingRecord({ liveToken: { tokenId: 'x', expiresAt } }),
      tokenSecret: tokenSecret({ expiresAt }),
    }),
    NOW,
  );
  t.false(result.controlPlane.some((a) => a.kind === 'mintToken'));
  t.is(result.deleteTokenSecret, undefined);
  t.is(condition(result.status, 'Enrolled')?.reason, 'TokenMinted');
  t.is(result.status.enrollment?.tokenExpiresAt, expiresAt);
  t.true((result.requeueAfterMs ?? 0) <= new Date(expiresAt).getTime() - NOW.getTime());
});

test('a token expired unused: its Secret is deleted and the next one is minted at once', (t) => {
  const expired = '2026-01-01T00:00:00.000Z';
  const result = planView(
    observed({
      connector: connector({ status: { enrollment: { mintCount: 1, tokenExpiresAt: expired } } }),
      record: pendingRecord({ liveToken: null }),
      tokenSecret: tokenSecret({ expiresAt: expired }),
    }),
    NOW,
  );
  t.is(result.deleteTokenSecret, 'edge-enrollment-token');
  t.is(
    result.controlPlane.find((a) => a.kind === 'mintToken')?.kind === 'mintToken'
      ? (result.controlPlane.find((a) => a.kind === 'mintToken') as { idempotencyKey: string }).idempotencyKey
      : undefined,
    `enroll-${UID}-2`,
  );
  t.is(result.status.diagnosis, undefined, 'one expiry is routine');
});

test('tokens keep expiring: the re-mint waits with backoff and the diagnosis is FirstBootBootstrap', (t) => {
  const expired = '2026-01-01T00:00:00.000Z';
  const result = planView(
    observed({
      connector: connector({ status: { enrollment: { mintCount: 2, tokenExpiresAt: expired } } }),
      record: pendingRecord({ liveToken: null }),
      tokenSecret: tokenSecret({ expiresAt: expired, mintKey: `enroll-${UID}-2` }),
    }),
    NOW,
  );
  t.false(
    result.controlPlane.some((a) => a.kind === 'mintToken'),
    'no mint within the backoff window',
  );
  t.is(result.requeueAfterMs, 50_000);
  t.is(result.status.diagnosis?.failureClass, 'FirstBootBootstrap');
  t.regex(result.status.diagnosis?.nextStep ?? '', /trust|network|token/);
});

test('a cached token Secret older than the last recorded mint is left alone until the cache catches up', (t) => {
  // The operator just replaced an expired token (mint #2); the Secret informer still shows #1.
  const expired = '2026-01-01T00:00:00.000Z';
  const result = planView(
    observed({
      connector: connector({
        status: { enrollment: { mintCount: 2, lastMintKey: `enroll-${UID}-2`, tokenExpiresAt: expired } },
      }),
      record: pendingRecord({ liveToken: { tokenId: 'fresh', expiresAt: '2026-01-01T04:00:10.000Z' } }),
      tokenSecret: tokenSecret({ expiresAt: expired, mintKey: `enroll-${UID}-1` }),
    }),
    NOW,
  );
  t.is(result.deleteTokenSecret, undefined, 'the fresh Secret of the same name is not deleted');
  t.false(
    result.controlPlane.some((a) => a.kind === 'mintToken'),
    'and no third token is minted',
  );
  t.is(result.status.enrollment?.mintCount, 2);
  t.is(result.requeueAfterMs, 1_000);
  // Once the cache shows mint #2, the usual rules apply again.
  const caughtUp = planView(
    observed({
      connector: connector({
        status: { enrollment: { mintCount: 2, lastMintKey: `enroll-${UID}-2`, tokenExpiresAt: expired } },
      }),
      record: pendingRecord({ liveToken: { tokenId: 'fresh', expiresAt: '2026-01-01T04:00:10.000Z' } }),
      tokenSecret: tokenSecret({ expiresAt: '2026-01-01T04:00:10.000Z', mintKey: `enroll-${UID}-2` }),
    }),
    NOW,
  );
  t.is(caughtUp.deleteTokenSecret, undefined);
  t.is(caughtUp.status.enrollment?.tokenSecretName, 'edge-enrollment-token', 'the live token is reported');
});

test('why the token Secret goes: spent by the pairing, or no longer live without a pairing', (t) => {
  const paired = planView(
    observed({
      record: record({ state: 'enrolling', bootstrapRetired: false, lastHeartbeatAt: null }),
      tokenSecret: tokenSecret(),
    }),
    NOW,
  );
  t.is(paired.deleteTokenSecret, 'edge-enrollment-token');
  t.deepEqual(
    paired.events.map((e) => e.reason),
    ['TokenConsumed'],
  );
  const revoked = planView(
    observed({
      connector: connector({ status: { enrollment: { mintCount: 1 } } }),
      record: pendingRecord({ liveToken: null }),
      tokenSecret: tokenSecret({ expiresAt: '2026-01-01T04:00:00.000Z' }),
    }),
    NOW,
  );
  t.true(
    revoked.events.some((e) => e.reason === 'TokenSecretDeleted'),
    revoked.events.map((e) => e.reason).join(),
  );
  t.false(revoked.events.some((e) => e.reason === 'TokenConsumed'));
});

test('online and retired: the token Secret is deleted, Ready is True, mode Autonomous', (t) => {
  const result = planView(observed({ tokenSecret: tokenSecret() }), NOW);
  t.is(result.deleteTokenSecret, 'edge-enrollment-token');
  t.true(result.events.some((e) => e.reason === 'BootstrapRetired'));
  t.is(result.status.phase, 'Online');
  t.is(result.status.mode, 'Autonomous');
  t.is(condition(result.status, 'Ready')?.status, 'True');
  t.is(condition(result.status, 'DurableStorage')?.reason, 'ClaimBound');
  t.is(result.status.storage?.claimUID, CLAIM_UID);
  t.is(condition(result.status, 'Reconciling'), undefined);
});

test('a pod on emptyDir: GuidedRecovery mode, DurableStorage False, a Warning names pod and volume', (t) => {
  const result = planView(observed({ pods: [pod({ dataVolume: 'emptyDir' })], claims: [] }), NOW);
  t.is(result.status.mode, 'GuidedRecovery');
  const storage = condition(result.status, 'DurableStorage');
  t.is(storage?.status, 'False');
  t.is(storage?.reason, 'EmptyDir');
  t.is(condition(result.status, 'Ready')?.status, 'False');
  const warning = result.transitions?.find((e) => e.reason === 'StorageEmptyDir');
  t.is(warning?.type, 'Warning');
  t.regex(warning?.message ?? '', /edge-0/);
  t.regex(warning?.message ?? '', /"data"/);
});

test('a replaced claim after pairing is identity loss', (t) => {
  const result = planView(
    observed({
      connector: connector({
        status: { phase: 'Online', storage: { claimUID: 'old-uid' }, enrollment: { retired: true } },
      }),
      record: record({ state: 'offline' }),
      claims: [claim({ uid: 'new-uid' })],
    }),
    NOW,
  );
  t.is(condition(result.status, 'DurableStorage')?.reason, 'ClaimReplaced');
  t.is(result.status.diagnosis?.failureClass, 'IdentityLoss');
  t.is(result.status.mode, 'GuidedRecovery');
  t.is(
    result.status.storage?.claimUID,
    'old-uid',
    'the identity claim is remembered until a recovery moves it',
  );
});

test('the pass that completes a recovery on a replaced claim reports that claim as the durable storage', (t) => {
  // Found end to end (test/e2e/runbook-crashes.test.ts): the status write that said Completed and
  // Online still said the claim was replaced (DurableStorage and Ready False, mode GuidedRecovery),
  // judged against the claim the identity was lost with, until the next pass.
  const spec = { recovery: { policy: 'Manual' as const, requestId: 'r1' } };
  const result = planView(
    observed({
      connector: connector({
        spec,
        status: validatingRestartStatus({ storage: { claimUID: 'old-uid' } }),
      }),
      record: record({
        state: 'online',
        lastHeartbeatAt: '2026-01-01T00:00:08.000Z',
        certificate: { serial: 'cd34', notBefore: '', notAfter: '', fingerprintSha256: '' },
      }),
      pods: [
        pod({
          uid: 'pod-2',
          annotations: { 'vaultpam.io/restarted-for': 'r1/cd34' },
          startTime: '2026-01-01T00:00:05Z',
        }),
      ],
      claims: [claim({ uid: 'new-uid' })],
      templateAnnotations: { 'vaultpam.io/restarted-for': 'r1/cd34' },
    }),
    NOW,
  );
  t.is(result.status.recovery?.step, 'Completed');
  t.is(result.status.phase, 'Online');
  t.is(result.status.storage?.claimUID, 'new-uid', 'the recovery moved the identity to the new claim');
  t.is(result.status.mode, 'Autonomous');
  t.is(condition(result.status, 'DurableStorage')?.reason, 'ClaimBound');
  t.is(condition(result.status, 'Ready')?.status, 'True');
  t.false(result.transitions?.some((e) => e.reason === 'StorageClaimReplaced') ?? false);
});

test('paired, identity intact, heartbeats stopped: Reconnect, no token', (t) => {
  const result = planView(observed({ record: record({ state: 'offline' }) }), NOW);
  t.is(result.status.phase, 'Offline');
  t.is(result.status.diagnosis?.failureClass, 'Reconnect');
  t.false(result.controlPlane.some((a) => a.kind === 'mintToken'));
  t.is(condition(result.status, 'Healthy')?.reason, 'HeartbeatMissed');
});

test('needs_recovery under Manual: NeedsRecovery, Stalled until a request, no token', (t) => {
  const failure = { code: 'ENROLLMENT_TOKEN_INVALID', at: '2026-01-01T00:00:05.000Z' };
  const result = planView(
    observed({ record: record({ state: 'needs_recovery', lastEnrollmentFailure: failure }) }),
    NOW,
  );
  t.is(result.status.phase, 'NeedsRecovery');
  t.is(result.status.diagnosis?.failureClass, 'IdentityLoss');
  t.regex(result.status.diagnosis?.reason ?? '', /ENROLLMENT_TOKEN_INVALID/);
  t.is(condition(result.status, 'Stalled')?.reason, 'RecoveryRequired');
  t.deepEqual(result.controlPlane, []);
});

test('needs_recovery under Automatic: a recovery is requested once for the incident', (t) => {
  const c = connector({ spec: { recovery: { policy: 'Automatic' } } });
  const first = planView(observed({ connector: c, record: record({ state: 'needs_recovery' }) }), NOW);
  t.is(first.status.recovery?.step, 'Requested');
  t.regex(first.status.recovery?.requestId ?? '', /^auto-/);
  t.is(first.status.phase, 'Recovering');
  // The same incident after a failed attempt does not start another one.
  const failed = {
    ...first.status,
    recovery: { ...first.status.recovery, step: 'Failed' as const, outcome: 'Failed' as const },
  };
  const again = planView(
    observed({
      connector: connector({ spec: c.spec, status: failed }),
      record: record({ state: 'needs_recovery' }),
    }),
    NOW,
  );
  t.is(again.status.recovery?.step, 'Failed');
});

test('control plane unreachable: the phase is kept, Healthy Unknown, no control-plane calls', (t) => {
  const result = planView(
    observed({ connector: connector({ status: { phase: 'Online' } }), record: 'unreachable' }),
    NOW,
  );
  t.is(result.status.phase, 'Online');
  t.is(condition(result.status, 'Healthy')?.status, 'Unknown');
  t.is(condition(result.status, 'Healthy')?.reason, 'ControlPlaneUnreachable');
  t.deepEqual(result.controlPlane, []);
});

test('a stall that holds keeps its lastTransitionTime from pass to pass, and so needs no status write', (t) => {
  const stalledRecord = record({ state: 'needs_recovery' });
  const seen = planView(observed({ record: stalledRecord }), NOW).status;
  t.is(condition(seen, 'Stalled')?.reason, 'RecoveryRequired');
  const later = new Date('2026-01-01T00:05:00Z');
  const again = planView(
    observed({ connector: connector({ status: seen }), record: stalledRecord }),
    later,
  ).status;
  t.deepEqual(again.conditions, seen.conditions);
});

test('control plane unreachable: the need for a person to act it last showed stays, until the person acts', (t) => {
  const failure = { code: 'ENROLLMENT_TOKEN_INVALID', at: '2026-01-01T00:00:05.000Z' };
  const seen = planView(
    observed({ record: record({ state: 'needs_recovery', lastEnrollmentFailure: failure }) }),
    NOW,
  ).status;
  const required = condition(seen, 'Stalled');
  t.is(required?.reason, 'RecoveryRequired');
  const later = new Date('2026-01-01T00:05:00Z');
  const unreachable = (spec: Partial<Connector['spec']> = {}) =>
    planView(observed({ connector: connector({ spec, status: seen }), record: 'unreachable' }), later).status;
  const kept = unreachable();
  t.deepEqual(condition(kept, 'Stalled'), required, 'as it stood, its transition time included');
  t.is(condition(kept, 'Reconciling'), undefined);
  t.is(kept.phase, 'NeedsRecovery');
  t.is(condition(kept, 'Healthy')?.reason, 'ControlPlaneUnreachable');
  // The person acted: a request that runs once the control plane answers, or policy Automatic.
  t.is(condition(unreachable({ recovery: { requestId: 'incident-1' } }), 'Stalled'), undefined);
  t.is(condition(unreachable({ recovery: { policy: 'Automatic' } }), 'Stalled'), undefined);
});

test('the control plane not resolved (its ControlPlane not Ready): nothing is written, so the agent keeps the URL and CA it was given and is not rolled', (t) => {
  const o = observed();
  const before = planView(o, NOW);
  const notReady = new CodedError(
    'ControlPlaneConfigInvalid',
    'spec.controlPlaneRef: ControlPlane prod/team is not Ready (Unauthorized)',
  );
  const unresolved = planView(
    {
      ...o,
      controlPlaneUrl: undefined,
      caPem: undefined,
      controlPlane: { reachable: false, error: notReady },
    },
    NOW,
  );
  // Nothing is applied without a control plane (workload.ts): the ConfigMap keeps the URL and CA it
  // has, and the StatefulSet its configuration hash, so the running agent is not rolled.
  t.like(before.configMap?.data, { 'control-plane-url': 'https://cp.example:8443', 'ca.crt': 'CA' });
  t.is(unresolved.configMap, undefined, 'no ConfigMap written');
  t.is(unresolved.statefulSet, undefined, 'no StatefulSet written');
});

test('invalid spec: Stalled with the message, nothing applied', (t) => {
  const o = observed();
  const invalid = {
    ...o,
    spec: {
      ok: false as const,
      error: new (class extends Error {
        code = 'INVALID_SPEC';
        httpStatus = 400;
        temporary = false;
        details = undefined;
        toJSON() {
          return {};
        }
      })('spec.enrollment.tokenTTL: "9h" is outside 5m..4h') as never,
    },
  };
  const result = planView(invalid, NOW);
  t.is(condition(result.status, 'Stalled')?.reason, 'InvalidSpec');
  t.regex(condition(result.status, 'Stalled')?.message ?? '', /tokenTTL/);
  t.is(result.statefulSet, undefined);
  t.deepEqual(result.controlPlane, []);
});

test('steady state: a second pass with the written status plans the same status (no write)', (t) => {
  const first = planView(observed(), NOW);
  const second = planView(
    observed({
      connector: connector({ status: first.status }),
      record: record({ lastHeartbeatAt: '2026-01-01T00:00:20.000Z' }),
    }),
    new Date(NOW.getTime() + 20_000),
  );
  t.deepEqual(second.status, first.status, 'a newer heartbeat within the refresh window changes nothing');
  t.deepEqual(second.events, []);
  t.deepEqual(second.transitions, [], 'nothing changed, so no Event either');
  const later = planView(
    observed({
      connector: connector({ status: first.status }),
      record: record({ lastHeartbeatAt: '2026-01-01T02:06:00.000Z' }),
    }),
    new Date('2026-01-01T02:06:01Z'),
  );
  t.deepEqual(later.status, first.status, 'hours of heartbeats later, still nothing to write');
  t.is(later.status.lastHeartbeatTime, undefined, 'no time is shown while heartbeats arrive');
});

test('degraded: one unhealthy path names itself', (t) => {
  const result = planView(
    observed({
      record: record({
        state: 'degraded',
        paths: [
          { name: 'tunnel', healthy: true, detail: '' },
          { name: 'db', healthy: false, detail: 'connect refused' },
        ],
      }),
    }),
    NOW,
  );
  t.is(result.status.phase, 'Degraded');
  t.regex(condition(result.status, 'Healthy')?.message ?? '', /db \(connect refused\)/);
});

test('guided recovery walks every step, each recorded before it is taken, and mints exactly one token', (t) => {
  const spec = { recovery: { policy: 'Manual' as const, requestId: 'r1' } };
  let status: ConnectorStatus = {
    phase: 'NeedsRecovery',
    enrollment: { retired: true },
    storage: { claimUID: CLAIM_UID },
  };
  let cp = record({ state: 'needs_recovery' });
  let now = NOW;
  const step = (o: Parameters<typeof observed>[0]) => {
    now = new Date(now.getTime() + 1_000);
    const result = planView(observed({ connector: connector({ spec, status }), record: cp, ...o }), now);
    status = result.status;
    return result;
  };

  t.is(step({}).status.recovery?.step, 'Requested');
  let r = step({});
  t.is(r.status.recovery?.step, 'Checking');
  t.is(r.statefulSet?.spec?.replicas, 1, 'nothing is scaled before the control plane is asked');
  r = step({});
  t.is(r.status.recovery?.step, 'Checking', 'waits for the dry run');
  r = step({ recoveryCheck: { requestId: 'r1', allowed: true } });
  t.is(r.status.recovery?.step, 'ScalingDown');
  r = step({});
  t.is(r.statefulSet?.spec?.replicas, 0, 'scaling down');
  t.is(r.status.recovery?.step, 'ScalingDown', 'waits while a pod exists');
  r = step({ pods: [], workloadReplicas: 0 });
  t.is(r.status.recovery?.step, 'StorageReady');
  r = step({ pods: [], workloadReplicas: 0 });
  t.is(r.status.recovery?.step, 'TokensRevoked');
  r = step({ pods: [], workloadReplicas: 0, tokenSecret: tokenSecret() });
  t.deepEqual(
    r.controlPlane.map((a) => a.kind),
    ['beginRecovery', 'revokeTokens'],
  );
  t.is(r.deleteTokenSecret, 'edge-enrollment-token');
  cp = record({
    state: 'recovering',
    bootstrapRetired: false,
    recovery: { requestId: 'r1', startedAt: '2026-01-01T00:00:12.000Z', completedAt: null },
  });
  r = step({ pods: [], workloadReplicas: 0 });
  t.is(r.status.recovery?.step, 'TokenMinted');
  const mints: string[] = [];
  for (let i = 0; i < 2; i++) {
    // A crash-restarted operator replays the step: the same key, so the same token.
    r = planView(
      observed({ connector: connector({ spec, status }), record: cp, pods: [], workloadReplicas: 0 }),
      now,
    );
    for (const a of r.controlPlane) if (a.kind === 'mintToken') mints.push(a.idempotencyKey);
  }
  t.deepEqual(mints, [recoveryMintKey('r1'), recoveryMintKey('r1')]);
  t.is(r.statefulSet?.spec?.replicas, 0, 'the pod stays down until the token is in place');
  const secret = tokenSecret({ mintKey: recoveryMintKey('r1'), expiresAt: '2026-01-01T04:00:00.000Z' });
  r = step({ pods: [], workloadReplicas: 0, tokenSecret: secret });
  t.is(r.status.recovery?.step, 'ScalingUp');
  r = step({ pods: [], workloadReplicas: 0, tokenSecret: secret });
  t.is(r.statefulSet?.spec?.replicas, 1);
  r = step({ pods: [], workloadReplicas: 1, tokenSecret: secret });
  t.is(r.status.recovery?.step, 'AwaitingOnline');
  t.is(r.status.phase, 'Recovering');
  cp = record({
    state: 'online',
    bootstrapRetired: true,
    certificate: { serial: 'cd34', notBefore: '', notAfter: '', fingerprintSha256: '' },
  });
  r = step({ tokenSecret: secret });
  t.is(r.deleteTokenSecret, 'edge-enrollment-token', 'the spent token goes before the validation restart');
  r = step({});
  t.is(r.status.recovery?.step, 'ValidatingRestart');
  r = step({});
  t.is(r.statefulSet?.spec?.template?.metadata?.annotations?.['vaultpam.io/restarted-for'], 'r1/cd34');
  const restarted = pod({
    name: 'edge-0',
    uid: 'pod-2',
    annotations: { 'vaultpam.io/restarted-for': 'r1/cd34' },
    startTime: '2026-01-01T00:01:00Z',
  });
  cp = record({
    state: 'online',
    lastHeartbeatAt: '2026-01-01T00:01:05.000Z',
    certificate: { serial: 'cd34', notBefore: '', notAfter: '', fingerprintSha256: '' },
  });
  r = step({ pods: [restarted], templateAnnotations: { 'vaultpam.io/restarted-for': 'r1/cd34' } });
  t.is(r.status.recovery?.step, 'Completed');
  t.is(r.status.recovery?.outcome, 'Succeeded');
  t.is(
    r.events.find((e) => e.reason === 'RecoverySucceeded')?.priority,
    'always',
    'an outcome passes the Event rate limit',
  );
  t.regex(r.status.recovery?.evidence?.proof ?? '', /cd34/);
  t.is(r.status.recovery?.evidence?.phaseBefore, 'NeedsRecovery');
  t.is(r.status.phase, 'Online');
  t.is(
    r.statefulSet?.spec?.template?.metadata?.annotations?.['vaultpam.io/restarted-for'],
    'r1/cd34',
    'the marker stays, so the pod is not rolled again',
  );
  // The same request id never runs twice.
  r = step({ pods: [restarted], templateAnnotations: { 'vaultpam.io/restarted-for': 'r1/cd34' } });
  t.is(r.status.recovery?.step, 'Completed');
  t.deepEqual(r.controlPlane, []);
});

test('a recovery whose token expires before pairing fails once and does not loop', (t) => {
  const spec = { recovery: { requestId: 'r2' } };
  const status: ConnectorStatus = {
    recovery: {
      requestId: 'r2',
      step: 'AwaitingOnline',
      attempts: 1,
      startedAt: '2026-01-01T00:00:00Z',
      mintKey: recoveryMintKey('r2'),
    },
  };
  const expired = tokenSecret({ mintKey: recoveryMintKey('r2'), expiresAt: '2026-01-01T00:00:05.000Z' });
  const cp = record({ state: 'recovering', bootstrapRetired: false });
  const failed = planView(
    observed({ connector: connector({ spec, status }), record: cp, tokenSecret: expired }),
    NOW,
  );
  t.is(failed.status.recovery?.step, 'Failed');
  t.regex(failed.status.recovery?.reason ?? '', /expired/);
  t.true(failed.events.some((e) => e.type === 'Warning' && e.reason === 'RecoveryFailed'));
  t.is(failed.events.find((e) => e.reason === 'RecoveryFailed')?.priority, 'always');
  t.is(condition(failed.status, 'Stalled')?.reason, 'RecoveryFailed');
  const next = planView(observed({ connector: connector({ spec, status: failed.status }), record: cp }), NOW);
  t.is(next.status.recovery?.step, 'Failed');
  t.false(next.controlPlane.some((a) => a.kind === 'mintToken' || a.kind === 'beginRecovery'));
});

test('a record from the change stream still calls an expired token live: the planner trusts the expiry', (t) => {
  // Found in the cluster test: the follower's copy keeps liveToken until the next change.
  const expired = '2026-01-01T00:00:00.000Z';
  const result = planView(
    observed({
      connector: connector({ status: { enrollment: { mintCount: 1, tokenExpiresAt: expired } } }),
      record: pendingRecord({ liveToken: { tokenId: 'x', expiresAt: expired } }),
      tokenSecret: tokenSecret({ expiresAt: expired }),
    }),
    NOW,
  );
  t.is(result.deleteTokenSecret, 'edge-enrollment-token');
  t.true(result.controlPlane.some((a) => a.kind === 'mintToken' && a.idempotencyKey === `enroll-${UID}-2`));
});

test('a recovery waits while a just-stopped connector still looks online, and fails only if it stays online', (t) => {
  // Found end to end: the control plane marks a silent connector offline only after missed heartbeats.
  const spec = { recovery: { requestId: 'r3' } };
  const status = (startedAt: string): ConnectorStatus => ({
    recovery: { requestId: 'r3', step: 'TokensRevoked', attempts: 1, startedAt },
  });
  const cp = record({ state: 'online' });
  const waiting = planView(
    observed({
      connector: connector({ spec, status: status('2026-01-01T00:00:05Z') }),
      record: cp,
      pods: [],
      workloadReplicas: 0,
    }),
    NOW,
  );
  t.is(waiting.status.recovery?.step, 'TokensRevoked');
  t.deepEqual(waiting.controlPlane, [], 'no recovery is begun while the control plane says online');
  t.is(waiting.statefulSet?.spec?.replicas, 0);
  const late = planView(
    observed({
      connector: connector({ spec, status: status('2025-12-31T23:50:00Z') }),
      record: cp,
      pods: [],
      workloadReplicas: 0,
    }),
    NOW,
  );
  t.is(late.status.recovery?.step, 'Failed');
  t.regex(late.status.recovery?.reason ?? '', /still reports the connector online/);
});

test('a pod killed by a signal or probe during recovery does not fail it; a fail-closed exit does', (t) => {
  const spec = { recovery: { requestId: 'r4' } };
  const status: ConnectorStatus = {
    recovery: { requestId: 'r4', step: 'AwaitingOnline', attempts: 1, startedAt: '2026-01-01T00:00:00Z' },
  };
  const cp = record({ state: 'recovering', bootstrapRetired: false });
  const secret = tokenSecret({ mintKey: recoveryMintKey('r4') });
  const killed = pod({ terminated: { exitCode: 143, finishedAt: '2026-01-01T00:00:05Z' } });
  const waiting = planView(
    observed({ connector: connector({ spec, status }), record: cp, pods: [killed], tokenSecret: secret }),
    NOW,
  );
  t.is(waiting.status.recovery?.step, 'AwaitingOnline');
  const refused = pod({
    terminated: {
      exitCode: 11,
      finishedAt: '2026-01-01T00:00:05Z',
      message: JSON.stringify({
        failureClass: 'FirstBootBootstrap',
        code: 'ENROLLMENT_TOKEN_REVOKED',
        reason: 'revoked',
      }),
    },
  });
  const failed = planView(
    observed({ connector: connector({ spec, status }), record: cp, pods: [refused], tokenSecret: secret }),
    NOW,
  );
  t.is(failed.status.recovery?.step, 'Failed');
  t.regex(failed.status.recovery?.reason ?? '', /ENROLLMENT_TOKEN_REVOKED/);
});

test('an adopted workload is scaled through its scale subresource during a recovery, never rebuilt', (t) => {
  const spec = {
    workloadRef: { kind: 'Deployment' as const, name: 'legacy' },
    recovery: { requestId: 'r5' },
  };
  const status: ConnectorStatus = {
    recovery: { requestId: 'r5', step: 'ScalingDown', attempts: 1, startedAt: '2026-01-01T00:00:00Z' },
  };
  const adopted = { kind: 'Deployment' as const, name: 'legacy', consented: true, adoptedBy: 'edge' };
  const result = planView(
    observed({
      connector: connector({ spec, status }),
      record: record({ state: 'needs_recovery' }),
      workload: adopted,
    }),
    NOW,
  );
  t.deepEqual(result.scaleAdopted, { kind: 'Deployment', name: 'legacy', replicas: 0 });
  t.is(result.statefulSet, undefined, 'the operator builds no workload of its own');
  const idle = planView(
    observed({ connector: connector({ spec: { workloadRef: spec.workloadRef } }), workload: adopted }),
    NOW,
  );
  t.is(idle.scaleAdopted, undefined, 'outside a recovery the adopted workload is left alone');
});

test("an ended attempt's live token is revoked whether or not its Secret is there", (t) => {
  // Kept from a reviewer's reproduction (operator-plan-properties.test.ts has its story): the
  // attempt ended Failed after its mint, and its Secret was deleted by hand before that pass. The
  // kubelet keeps a deleted Secret's content in the volume of a running pod until its next sync,
  // so a restarted container would pair with that token outside any attempt.
  const spec = { recovery: { requestId: 'r6' } };
  const status: ConnectorStatus = {
    recovery: {
      requestId: 'r6',
      step: 'Failed',
      outcome: 'Failed',
      attempts: 1,
      mintKey: recoveryMintKey('r6'),
      startedAt: '2026-01-01T00:00:00Z',
      finishedAt: '2026-01-01T00:00:08Z',
    },
  };
  const cp = record({
    state: 'recovering',
    bootstrapRetired: false,
    recovery: { requestId: 'r6', startedAt: '2026-01-01T00:00:02Z', completedAt: null },
    liveToken: { tokenId: 'tR', expiresAt: '2026-01-01T04:00:04.000Z' },
  });
  const ended = planView(observed({ connector: connector({ spec, status }), record: cp, pods: [] }), NOW);
  t.true(ended.order.includes('revokeTokens'), ended.order.join(', '));
  t.false(ended.order.includes('mintToken'), 'nothing minted, nothing stored again');
});
