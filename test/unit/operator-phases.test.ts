// The planner's phases one at a time, each with the gates as an input (plan.ts puts them together):
// the gates themselves, enrollment, recovery, workload, conditions and the report, then the order
// the plan gives their steps and what a pass writes when a step fails (pass-status.ts). Storage
// posture has its own table (operator-storage-posture.test.ts), the failure-class chain its own
// (operator-assessment-rules.test.ts).
import test from 'ava';
import { CodedError } from '../../src/lib/errors.ts';
import type { ConnectorStatus, RecoveryStatus } from '../../src/operator/api/types.ts';
import {
  type ConditionsInput,
  connectorConditions,
} from '../../src/operator/reconcile/connector-conditions.ts';
import {
  type EnrollmentDecision,
  enrollmentMintKey,
  enrollmentSteps,
  planEnrollment,
} from '../../src/operator/reconcile/enrollment.ts';
import { type Gates, gatesOf } from '../../src/operator/reconcile/gates.ts';
import type { Observed } from '../../src/operator/reconcile/observed.ts';
import { eventsOfSteps, statusOfPass } from '../../src/operator/reconcile/pass-status.ts';
import { plan } from '../../src/operator/reconcile/plan.ts';
import type { PlannedAction } from '../../src/operator/reconcile/plan-types.ts';
import { recoveryPhase } from '../../src/operator/reconcile/recovery.ts';
import { recoverySteps } from '../../src/operator/reconcile/recovery-plan-steps.ts';
import { automaticRequestId, recoveryMintKey } from '../../src/operator/reconcile/recovery-requests.ts';
import type { RecoveryDecision, RecoveryInput } from '../../src/operator/reconcile/recovery-types.ts';
import { postureFor, reportPhase } from '../../src/operator/reconcile/report.ts';
import { unresolvedHold, workloadPhase } from '../../src/operator/reconcile/workload.ts';
import {
  claim,
  connector,
  observed,
  pendingRecord,
  pod,
  record,
  tokenSecret,
  UID,
} from '../helpers/observed-builder.ts';
import { viewOf } from '../helpers/plan-view.ts';

const NOW = new Date('2026-01-01T00:00:10Z');
const OPEN: Gates = { paused: false, controlPlaneReachable: true, controlPlaneResolved: true };
const PAUSED: Gates = { ...OPEN, paused: true };
const BLOCKED: Gates = { ...OPEN, blocker: { reason: 'OwnershipConflict', message: 'not ours' } };
const UNREACHABLE: Gates = { ...OPEN, controlPlaneReachable: false };
const HELD: [string, Gates][] = [
  ['paused', PAUSED],
  ['blocked', BLOCKED],
  ['unreachable', UNREACHABLE],
];

const specOf = (o: Observed) => {
  if (!o.spec.ok) throw new Error('expected a valid spec');
  return o.spec.value;
};
const recovering = (step: RecoveryStatus['step'], extra: Partial<RecoveryStatus> = {}): RecoveryStatus => ({
  requestId: 'r1',
  step,
  attempts: 1,
  startedAt: '2026-01-01T00:00:00Z',
  evidence: { phaseBefore: 'NeedsRecovery', replicasBefore: 2 },
  ...extra,
});

// ---- gates ----

interface GateRow {
  title: string;
  observed: Observed;
  blocker: string | undefined;
  paused?: boolean;
  reachable?: boolean;
}

const adopted = { spec: { workloadRef: { kind: 'Deployment' as const, name: 'legacy' } } };
const GATE_ROWS: GateRow[] = [
  { title: 'nothing holds a plain Connector', observed: observed(), blocker: undefined },
  {
    title: 'spec.paused',
    observed: observed({ connector: connector({ spec: { paused: true } }) }),
    blocker: undefined,
    paused: true,
  },
  {
    title: 'an unreachable control plane is no blocker',
    observed: observed({ record: 'unreachable' }),
    blocker: undefined,
    reachable: false,
  },
  {
    title: 'a child name held by an object that is not ours',
    observed: { ...observed(), foreign: [{ kind: 'ConfigMap', name: 'edge-config' }] },
    blocker: 'OwnershipConflict',
  },
  {
    title: 'a record another Connector owns',
    observed: observed({ record: record({ ownerUid: 'another-uid' }) }),
    blocker: 'ConnectorIdConflict',
  },
  {
    title: 'an adopted workload that does not exist',
    observed: observed({ connector: connector(adopted), noWorkload: true }),
    blocker: 'WorkloadNotFound',
  },
  {
    title: 'an adopted workload without consent',
    observed: observed({ connector: connector(adopted), workload: { kind: 'Deployment', consented: false } }),
    blocker: 'AdoptionNotConsented',
  },
  {
    title: 'an existing claim that does not exist',
    observed: observed({
      connector: connector({ spec: { storage: { existingClaim: 'kept' } } }),
      claims: [],
    }),
    blocker: 'ClaimNotFound',
  },
  {
    title: 'a missing existing claim during a recovery is the recovery’s to report',
    observed: observed({
      connector: connector({
        spec: { storage: { existingClaim: 'kept' } },
        status: { recovery: recovering('StorageReady') },
      }),
      claims: [],
    }),
    blocker: undefined,
  },
  {
    title: 'a PriorityClass the pod names that does not exist',
    observed: {
      ...observed({ connector: connector({ spec: { priorityClassName: 'nope' } }) }),
      podReferences: [
        { field: 'spec.priorityClassName', kind: 'PriorityClass', name: 'nope', state: 'missing' },
      ],
    },
    blocker: 'PriorityClassNotFound',
  },
  {
    title: 'a ServiceAccount the pod names that does not exist',
    observed: {
      ...observed({ connector: connector({ spec: { serviceAccountName: 'runner' } }) }),
      podReferences: [
        { field: 'spec.serviceAccountName', kind: 'ServiceAccount', name: 'runner', state: 'missing' },
      ],
    },
    blocker: 'ServiceAccountNotFound',
  },
  {
    title: 'a PriorityClass the operator may not read is not said to be missing',
    observed: {
      ...observed({ connector: connector({ spec: { priorityClassName: 'high' } }) }),
      podReferences: [
        {
          field: 'spec.priorityClassName',
          kind: 'PriorityClass',
          name: 'high',
          state: 'forbidden',
          refusal: 'priorityclasses.scheduling.k8s.io "high" is forbidden',
        },
      ],
    },
    blocker: 'PodReferenceForbidden',
  },
  {
    title: 'first match wins: a foreign object before a record of another Connector',
    observed: {
      ...observed({ record: record({ ownerUid: 'another-uid' }) }),
      foreign: [{ kind: 'Secret', name: 'edge-enrollment-token' }],
    },
    blocker: 'OwnershipConflict',
  },
];

for (const row of GATE_ROWS) {
  test(`gates: ${row.title}`, (t) => {
    const gates = gatesOf(row.observed, specOf(row.observed));
    t.is(gates.blocker?.reason, row.blocker);
    t.is(gates.paused, row.paused ?? false);
    t.is(gates.controlPlaneReachable, row.reachable ?? true);
  });
}

// ---- enrollment ----

const base = { connectorUID: UID, now: NOW, tokenSecretName: 'edge-enrollment-token' };
const stepsOf = (decision: EnrollmentDecision, extra: { retired?: boolean; paired?: boolean } = {}) =>
  enrollmentSteps({
    decision,
    connectorId: 'prod.edge',
    ttlSeconds: 300,
    tokenSecretName: 'edge-enrollment-token',
    retired: extra.retired ?? false,
    paired: extra.paired ?? false,
    pairingLost: false,
  });

interface EnrollmentRow {
  title: string;
  decision: EnrollmentDecision;
  retired?: boolean;
  paired?: boolean;
  actions: string[];
  events: string[];
}

const ENROLLMENT_ROWS: EnrollmentRow[] = [
  {
    title: 'never paired, no token: one mint, counted by its step',
    decision: planEnrollment({
      ...base,
      record: pendingRecord(),
      tokenSecret: undefined,
      previous: undefined,
    }),
    actions: ['mintToken'],
    events: ['TokenMinted'],
  },
  {
    title: 'a live token waits: nothing to do',
    decision: planEnrollment({
      ...base,
      record: pendingRecord({ liveToken: { tokenId: 't', expiresAt: '2026-01-01T04:00:00.000Z' } }),
      tokenSecret: tokenSecret(),
      previous: { mintCount: 1, lastMintKey: enrollmentMintKey(UID, 1) },
    }),
    actions: [],
    events: [],
  },
  {
    title: 'retired: the spent token’s Secret goes, and the Event says bootstrap retired',
    decision: planEnrollment({
      ...base,
      record: record(),
      tokenSecret: tokenSecret(),
      previous: { mintCount: 1 },
    }),
    retired: true,
    paired: true,
    actions: ['deleteTokenSecret'],
    events: ['BootstrapRetired'],
  },
  {
    title: 'paired, not yet retired: the token was consumed',
    decision: planEnrollment({
      ...base,
      record: record({ state: 'enrolling', bootstrapRetired: false }),
      tokenSecret: tokenSecret(),
      previous: { mintCount: 1 },
    }),
    paired: true,
    actions: ['deleteTokenSecret'],
    events: ['TokenConsumed'],
  },
  {
    title: 'an expired token: its Secret goes first, then the fresh mint',
    decision: planEnrollment({
      ...base,
      record: pendingRecord(),
      tokenSecret: tokenSecret({ expiresAt: '2026-01-01T00:00:00.000Z' }),
      previous: {
        mintCount: 1,
        lastMintKey: enrollmentMintKey(UID, 1),
        tokenExpiresAt: '2026-01-01T00:00:00Z',
      },
    }),
    actions: ['deleteTokenSecret', 'mintToken'],
    events: ['TokenSecretDeleted', 'TokenMinted'],
  },
  {
    title: 'an identity the control plane refuses: revoke and delete, mint none',
    decision: planEnrollment({
      ...base,
      record: pendingRecord({ liveToken: { tokenId: 't', expiresAt: '2026-01-01T04:00:00.000Z' } }),
      tokenSecret: tokenSecret(),
      previous: { mintCount: 1 },
      identityRefused: true,
    }),
    actions: ['revokeTokens', 'deleteTokenSecret'],
    events: ['TokenSecretDeleted'],
  },
];

for (const row of ENROLLMENT_ROWS) {
  test(`enrollment: ${row.title}`, (t) => {
    const steps = stepsOf(row.decision, row);
    t.deepEqual(
      steps.map((s) => s.action?.kind),
      row.actions,
    );
    t.deepEqual(
      eventsOfSteps(steps).map((e) => e.reason),
      row.events,
    );
    t.is(
      row.decision.status.mintCount,
      row.decision.status.mintCount,
      'the report counts no mint of this pass',
    );
    const mint = steps.find((s) => s.action?.kind === 'mintToken');
    if (mint) {
      t.is(mint.status?.enrollment?.mintCount, (row.decision.status.mintCount ?? 0) + 1);
      t.is(mint.status?.enrollment?.lastMintKey, row.decision.mint?.idempotencyKey);
    }
    const deleted = steps.find((s) => s.action?.kind === 'deleteTokenSecret');
    if (deleted) t.is(deleted.status?.enrollment?.tokenSecretName, undefined, 'the Secret is named no more');
  });
}

test('enrollment held: no mint, no delete, no revoke, nothing counted, and the same report', (t) => {
  const situation = {
    ...base,
    record: pendingRecord({ liveToken: null }),
    tokenSecret: tokenSecret({ expiresAt: '2026-01-01T00:00:00.000Z' }),
    previous: { mintCount: 1, lastMintKey: enrollmentMintKey(UID, 1) },
  };
  const open = planEnrollment(situation);
  t.truthy(open.mint, 'open, it would mint');
  const held = planEnrollment({ ...situation, held: true });
  t.deepEqual(stepsOf(held), []);
  t.is(held.status.mintCount, 1);
  t.is(held.status.lastMintKey, enrollmentMintKey(UID, 1));
  t.true(held.expiredUnused, 'what is observed is still said');
});

// status.enrollment.tokenExpiresAt describes the token lastMintKey names. A reviewer's sequence:
// a pass during a recovery of a never-paired connector saw the recovery's Secret live and recorded
// its expiry there, while lastMintKey stayed the enrollment's key; once that Secret was gone, the
// enrollment took the recovery's live token for its own and planned a "restore" with its key,
// which the control plane refuses as consumed.
const RECOVERY_EXPIRY = '2026-01-01T04:00:00.000Z';
const COUNTED = {
  mintCount: 1,
  lastMintKey: enrollmentMintKey(UID, 1),
  tokenMintedAt: '2025-12-31T23:00:00Z',
  tokenExpiresAt: '2026-01-01T03:00:00.000Z',
  retired: false,
};
const recoveryLive = pendingRecord({ liveToken: { tokenId: 'tR', expiresAt: RECOVERY_EXPIRY } });
const recoverySecret = tokenSecret({ mintKey: recoveryMintKey('r1'), expiresAt: RECOVERY_EXPIRY });

test("enrollment: a live recovery token's Secret does not give tokenExpiresAt its expiry (open or held)", (t) => {
  for (const held of [false, true]) {
    const decision = planEnrollment({
      ...base,
      record: recoveryLive,
      tokenSecret: recoverySecret,
      previous: COUNTED,
      ttlSeconds: 14400,
      held,
    });
    t.is(decision.status.lastMintKey, COUNTED.lastMintKey, `held: ${held}`);
    t.is(decision.status.tokenExpiresAt, COUNTED.tokenExpiresAt, `held: ${held}`);
  }
  // The counted key's own Secret still records its expiry.
  const own = planEnrollment({
    ...base,
    record: pendingRecord({ liveToken: { tokenId: 't1', expiresAt: RECOVERY_EXPIRY } }),
    tokenSecret: tokenSecret({ expiresAt: RECOVERY_EXPIRY }),
    previous: { ...COUNTED, tokenExpiresAt: undefined },
    ttlSeconds: 14400,
  });
  t.is(own.status.tokenExpiresAt, RECOVERY_EXPIRY);
});

test("enrollment: once the recovery's Secret is gone, its live token is not restored with the enrollment key", (t) => {
  const during = planEnrollment({
    ...base,
    record: recoveryLive,
    tokenSecret: recoverySecret,
    previous: COUNTED,
    ttlSeconds: 14400,
  });
  const after = planEnrollment({
    ...base,
    record: recoveryLive,
    tokenSecret: undefined,
    previous: during.status,
    ttlSeconds: 14400,
  });
  t.is(after.restoresSecret, undefined);
  t.not(after.mint?.idempotencyKey, COUNTED.lastMintKey, 'the spent key is not asked for again');
});

test('plan: during a recovery, a restore the enrollment would plan is neither done nor said', (t) => {
  // The enrollment's counted token is live and its Secret gone, so planEnrollment plans a restore;
  // the recovery in progress takes the token steps, so that mint does not run.
  const o = observed({
    connector: connector({
      spec: { recovery: { requestId: 'r1' } },
      status: {
        enrollment: { ...COUNTED, tokenExpiresAt: RECOVERY_EXPIRY },
        recovery: { requestId: 'r1', step: 'Checking', attempts: 1, startedAt: '2026-01-01T00:00:00Z' },
      },
    }),
    record: pendingRecord({ liveToken: { tokenId: 't1', expiresAt: RECOVERY_EXPIRY } }),
  });
  const p = plan(o, NOW);
  const status = statusOfPass(p, { ran: p.steps.length }, NOW, 1);
  t.is(status.recovery?.step, 'Checking', 'the recovery is under way');
  const actions = p.steps.flatMap((s) => (s.action ? [s.action] : []));
  t.false(
    actions.some((a) => a.kind === 'mintToken'),
    'no restore mint runs',
  );
  t.false(eventsOfSteps(p.steps).some((e) => e.reason === 'TokenSecretRestored'));
  const enrolled = status.conditions?.find((c) => c.type === 'Enrolled');
  t.notRegex(enrolled?.message ?? '', /stored in it again/);
});

// ---- recovery ----

function recoveryInput(overrides: Partial<RecoveryInput>): RecoveryInput {
  return {
    connectorId: 'prod.edge',
    policy: 'Manual',
    requestedId: 'r1',
    validateRestart: false,
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

for (const [why, gates] of HELD) {
  test(`recovery ${why}: a recovery under way holds its step and its replicas, none starts`, (t) => {
    const atScalingDown = recoveryPhase(recoveryInput({ previous: recovering('ScalingDown') }), gates);
    t.is(atScalingDown.status?.step, 'ScalingDown');
    t.true(atScalingDown.inProgress);
    t.is(atScalingDown.replicas, 0, 'the workload stays scaled down');
    t.deepEqual(atScalingDown.events, []);
    t.deepEqual(atScalingDown.controlPlane, []);
    const asked = recoveryPhase(recoveryInput({}), gates);
    t.is(asked.status, undefined, 'no recovery starts');
    t.false(asked.inProgress);
    t.deepEqual(asked.events, []);
  });
}

test('recovery open: a request starts, and the step records it', (t) => {
  const decision = recoveryPhase(recoveryInput({}), OPEN);
  t.is(decision.status?.step, 'Requested');
  const { tokens, record: last } = recoverySteps({
    decision,
    previous: undefined,
    connectorId: 'prod.edge',
    ttlSeconds: 300,
    tokenSecretName: 'edge-enrollment-token',
    enrollment: { retired: true, mintCount: 1 },
  });
  t.deepEqual(tokens, []);
  t.is(last.length, 1);
  t.is(last[0]?.status?.recovery?.step, 'Requested');
  t.deepEqual(
    last[0]?.events?.map((e) => e.reason),
    ['RecoveryRequested'],
  );
});

interface RecoveryStepsRow {
  title: string;
  decision: Partial<RecoveryDecision>;
  previous: RecoveryStatus | undefined;
  adopted?: { kind: 'StatefulSet' | 'Deployment'; name: string; replicas: number };
  tokens: string[];
  record: { action?: PlannedAction['kind']; step?: RecoveryStatus['step']; events: string[] } | undefined;
}

const revoking = recovering('TokensRevoked');
const RECOVERY_STEPS_ROWS: RecoveryStepsRow[] = [
  {
    title: 'TokensRevoked: begin, revoke, delete the Secret; the record stays',
    decision: {
      status: revoking,
      inProgress: true,
      controlPlane: [
        { kind: 'beginRecovery', connectorId: 'prod.edge', requestId: 'r1' },
        { kind: 'revokeTokens', connectorId: 'prod.edge' },
      ],
      deleteSecret: true,
      replicas: 0,
    },
    previous: revoking,
    tokens: ['beginRecovery', 'revokeTokens', 'deleteTokenSecret'],
    record: undefined,
  },
  {
    title: 'TokenMinted: the one mint of the request',
    decision: {
      status: recovering('TokenMinted'),
      inProgress: true,
      mintKey: recoveryMintKey('r1'),
      replicas: 0,
    },
    previous: recovering('TokenMinted'),
    tokens: ['mintToken'],
    record: undefined,
  },
  {
    title: 'an adopted workload is scaled by the step that records the recovery',
    decision: {
      status: recovering('ScalingDown'),
      inProgress: true,
      replicas: 0,
      events: [{ type: 'Normal', reason: 'RecoveryStep', message: 'Checking done, now ScalingDown' }],
    },
    previous: recovering('Checking'),
    adopted: { kind: 'Deployment', name: 'legacy', replicas: 2 },
    tokens: [],
    record: { action: 'scaleAdopted', step: 'ScalingDown', events: ['RecoveryStep'] },
  },
  {
    title: 'an ended attempt gives the adopted workload back its replicas',
    decision: {
      status: recovering('Failed', { outcome: 'Failed' }),
      inProgress: false,
      replicas: 2,
      events: [{ type: 'Warning', reason: 'RecoveryFailed', message: 'failed' }],
    },
    previous: recovering('AwaitingOnline'),
    adopted: { kind: 'Deployment', name: 'legacy', replicas: 1 },
    tokens: [],
    record: { action: 'scaleAdopted', step: 'Failed', events: ['RecoveryFailed'] },
  },
  {
    title: 'an ended attempt makes no token step, whatever it asked before',
    decision: {
      status: recovering('Completed'),
      inProgress: false,
      deleteSecret: true,
      mintKey: 'stale',
      events: [{ type: 'Normal', reason: 'RecoverySucceeded', message: 'done' }],
    },
    previous: recovering('AwaitingOnline'),
    tokens: [],
    record: { step: 'Completed', events: ['RecoverySucceeded'] },
  },
  {
    title: 'no recovery: nothing',
    decision: { status: undefined, inProgress: false },
    previous: undefined,
    tokens: [],
    record: undefined,
  },
];

for (const row of RECOVERY_STEPS_ROWS) {
  test(`recovery steps: ${row.title}`, (t) => {
    const decision: RecoveryDecision = {
      status: undefined,
      inProgress: false,
      controlPlane: [],
      deleteSecret: false,
      events: [],
      ...row.decision,
    };
    const steps = recoverySteps({
      decision,
      previous: row.previous,
      connectorId: 'prod.edge',
      ttlSeconds: 300,
      tokenSecretName: 'edge-enrollment-token',
      enrollment: { retired: true, mintCount: 1, tokenSecretName: 'edge-enrollment-token' },
      adopted: row.adopted,
    });
    t.deepEqual(
      steps.tokens.map((s) => s.action?.kind),
      row.tokens,
    );
    const last = steps.record[0];
    if (!row.record) {
      t.deepEqual(steps.record, []);
      return;
    }
    t.is(steps.record.length, 1);
    t.is(last?.action?.kind, row.record.action);
    t.is(last?.status?.recovery?.step, row.record.step);
    t.deepEqual(
      last?.events?.map((e) => e.reason),
      row.record.events,
    );
  });
}

// ---- workload ----

test('workload open: the ConfigMap, then the StatefulSet; only the StatefulSet has a dry run', (t) => {
  const o = observed();
  const phase = workloadPhase(o, specOf(o), OPEN, { inProgress: false });
  t.deepEqual(
    phase.steps.map((s) => s.action?.kind),
    ['applyConfigMap', 'applyStatefulSet'],
  );
  // The ConfigMap holds nothing a mint guards: a minting pass applies it ahead of the mint instead.
  t.deepEqual(
    phase.dryRuns.map((s) => (s.action?.kind === 'dryRun' ? s.action.object.kind : undefined)),
    ['StatefulSet'],
  );
});

test('workload: a recovery’s replicas and restart marker reach the StatefulSet; an ended one leaves its one replica', (t) => {
  const o = observed();
  const sts = (recovery: Parameters<typeof workloadPhase>[3]) => {
    const step = workloadPhase(o, specOf(o), OPEN, recovery).steps.find(
      (s) => s.action?.kind === 'applyStatefulSet',
    );
    return step?.action?.kind === 'applyStatefulSet' ? step.action.object : undefined;
  };
  t.is(sts({ inProgress: true, replicas: 0 })?.spec?.replicas, 0);
  t.is(sts({ inProgress: false, replicas: 2 })?.spec?.replicas, 1);
  t.is(
    sts({ inProgress: true, replicas: 1, restartFor: 'r1' })?.spec?.template?.metadata?.annotations?.[
      'vaultpam.io/restarted-for'
    ],
    'r1',
  );
});

test('workload of an adopted workload: the ConfigMap only (the workload is the user’s)', (t) => {
  const o = observed({ connector: connector(adopted), workload: { kind: 'Deployment', consented: true } });
  t.deepEqual(
    workloadPhase(o, specOf(o), OPEN, { inProgress: false }).steps.map((s) => s.action?.kind),
    ['applyConfigMap'],
  );
});

test('workload: a claim to grow is the last step, with the Event that says so', (t) => {
  const o = {
    ...observed({
      connector: connector({ spec: { storage: { size: '2Gi', storageClassName: 'fast' } } }),
      claims: [claim({ requested: '1Gi', capacity: '1Gi', storageClassName: 'fast' })],
    }),
    storageClass: { name: 'fast', allowVolumeExpansion: true },
  };
  const steps = workloadPhase(o, specOf(o), OPEN, { inProgress: false }).steps;
  const last = steps.at(-1);
  t.is(last?.action?.kind, 'expandClaim');
  t.deepEqual(
    last?.events?.map((e) => e.reason),
    ['StorageExpansionRequested'],
  );
  const paused = workloadPhase(o, specOf(o), PAUSED, { inProgress: false });
  t.deepEqual(paused.steps, []);
  t.is(paused.expansion.step, undefined);
  // A claim with the data claim's name that the operator's labels do not name as this Connector's
  // (another owner's, or another Connector's) is never grown.
  for (const labelledFor of [undefined, 'billing']) {
    const theirs = {
      ...o,
      claims: new Map([
        ['data-edge-0', claim({ requested: '1Gi', capacity: '1Gi', storageClassName: 'fast', labelledFor })],
      ]),
    };
    const phase = workloadPhase(theirs, specOf(theirs), OPEN, { inProgress: false });
    t.false(
      phase.steps.some((step) => step.action?.kind === 'expandClaim'),
      String(labelledFor),
    );
  }
});

for (const [why, gates] of HELD.filter(([why]) => why !== 'unreachable')) {
  test(`workload ${why}: nothing is written`, (t) => {
    const o = observed();
    const phase = workloadPhase(o, specOf(o), gates, { inProgress: true, replicas: 0 });
    t.deepEqual(phase.steps, []);
    t.deepEqual(phase.dryRuns, []);
  });
}

test('workload with the control plane unreachable: still applied, at the replicas a held recovery keeps', (t) => {
  const o = observed({ record: 'unreachable' });
  const held = recoveryPhase(recoveryInput({ previous: recovering('TokenMinted') }), UNREACHABLE);
  const sts = workloadPhase(o, specOf(o), UNREACHABLE, held).steps.find(
    (s) => s.action?.kind === 'applyStatefulSet',
  );
  t.is(sts?.action?.kind === 'applyStatefulSet' ? sts.action.object.spec?.replicas : undefined, 0);
});

test('workload without a control plane (spec.controlPlaneRef does not resolve): nothing is written, and the message says what stays', (t) => {
  const resolvedNot = (o: Observed): Observed => ({ ...o, controlPlaneUrl: undefined, caPem: undefined });
  const o = resolvedNot(observed({ record: 'unreachable' }));
  const gates = gatesOf(o, specOf(o));
  t.false(gates.controlPlaneResolved);
  const phase = workloadPhase(o, specOf(o), gates, { inProgress: false });
  t.deepEqual(phase.steps, [], 'no ConfigMap without its URL, no StatefulSet');
  t.deepEqual(phase.dryRuns, []);
  // The whole plan: nothing but the report.
  t.deepEqual(
    plan(o, NOW).steps.flatMap((s) => (s.action ? [s.action.kind] : [])),
    [],
  );
  t.true(gatesOf(observed(), specOf(observed())).controlPlaneResolved);

  t.is(
    unresolvedHold('edge', undefined, undefined),
    'no ConfigMap, StatefulSet, claim or token is created until it resolves',
  );
  const configMap = { data: { 'control-plane-url': 'https://cp.example:8443' } };
  t.is(
    unresolvedHold('edge', configMap, { kind: 'StatefulSet', name: 'edge' }),
    'StatefulSet edge and its ConfigMap edge-config (control-plane URL https://cp.example:8443) are left as they are, and nothing is applied until it resolves',
  );
  t.is(
    unresolvedHold('edge', { data: {} }, { kind: 'StatefulSet', name: 'edge' }),
    'StatefulSet edge and its ConfigMap edge-config (which holds no control-plane URL) are left as they are, and nothing is applied until it resolves',
  );
  t.is(
    unresolvedHold('edge', undefined, { kind: 'Deployment', name: 'legacy' }),
    'Deployment legacy is left as it is, and nothing is applied until it resolves',
  );
  t.is(
    unresolvedHold('edge', configMap, undefined),
    'ConfigMap edge-config (control-plane URL https://cp.example:8443) is left as it is; no StatefulSet, claim or token is created until it resolves',
  );
});

test('a stall whose code is its reason says the reason once; another code is quoted', (t) => {
  const planned = plan(observed({ record: pendingRecord(), pods: [] }), NOW);
  const stalled = (error: CodedError) =>
    statusOfPass(planned, { ran: 1, error }, NOW, 1).conditions?.find((c) => c.type === 'Stalled');
  t.like(stalled(new CodedError('ControlPlaneConfigInvalid', 'spec.controlPlaneRef: gone')), {
    reason: 'ControlPlaneConfigInvalid',
    message: 'spec.controlPlaneRef: gone',
  });
  t.like(stalled(new CodedError('UNAUTHORIZED', 'refused', { httpStatus: 401 })), {
    reason: 'ControlPlaneUnauthorized',
    message: 'UNAUTHORIZED: refused',
  });
});

test('a blocker’s Warning Event is recorded when it is found or changes, not at every pass it holds', (t) => {
  const blocked = { ...observed(), foreign: [{ kind: 'ConfigMap' as const, name: 'edge-config' }] };
  const first = plan(blocked, NOW);
  const reasons = (p: ReturnType<typeof plan>) => eventsOfSteps(p.steps).map((e) => e.reason);
  t.deepEqual(reasons(first), ['OwnershipConflict']);
  const stored = statusOfPass(first, { ran: first.steps.length }, NOW, 1);
  const again = { ...blocked, connector: { ...blocked.connector, status: stored } };
  t.deepEqual(reasons(plan(again, NOW)), [], 'the same blocker: said already');
  const other = { ...again, foreign: [{ kind: 'StatefulSet' as const, name: 'edge' }] };
  t.deepEqual(reasons(plan(other, NOW)), ['OwnershipConflict'], 'another object: said again');
});

// ---- conditions ----

function conditionsOf(overrides: Partial<ConditionsInput>) {
  const o = overrides.observed ?? observed();
  const input: ConditionsInput = {
    observed: o,
    spec: specOf(o),
    gates: OPEN,
    previous: {},
    generation: 1,
    record: o.controlPlane.reachable ? o.controlPlane.record : undefined,
    agent: undefined,
    posture: postureFor(o, specOf(o), o.pods[0]),
    enrollment: { expiredUnused: false },
    identityLost: false,
    lostPairing: false,
    recovery: { inProgress: false, status: undefined },
    nextStep: undefined,
    expansion: {},
    now: NOW,
    ...overrides,
  };
  const conditions = connectorConditions(input);
  return (type: string) => conditions.find((c) => c.type === type);
}

interface ConditionRow {
  title: string;
  input: Partial<ConditionsInput>;
  expect: Record<string, string | undefined>;
}

const needsRecovery = observed({ record: record({ state: 'needs_recovery' }) });
const CONDITION_ROWS: ConditionRow[] = [
  {
    title: 'online and bound: Ready, no Reconciling, no Stalled',
    input: {},
    expect: { Ready: 'Ready', Healthy: 'HeartbeatOk', Enrolled: 'BootstrapRetired', Reconciling: undefined },
  },
  {
    title: 'a blocker stalls first, and Reconciling goes',
    input: { gates: BLOCKED, observed: observed({ record: pendingRecord() }) },
    expect: { Stalled: 'OwnershipConflict', Ready: 'OwnershipConflict', Reconciling: undefined },
  },
  {
    title: 'paused: no Reconciling',
    input: { gates: PAUSED, observed: observed({ record: pendingRecord() }) },
    expect: { Stalled: undefined, Reconciling: undefined },
  },
  {
    title: 'the recovery the spec asked for failed: Stalled RecoveryFailed',
    input: {
      observed: observed({ connector: connector({ spec: { recovery: { requestId: 'r1' } } }) }),
      recovery: { inProgress: false, status: recovering('Failed', { reason: 'refused' }) },
    },
    expect: { Stalled: 'RecoveryFailed' },
  },
  {
    title: 'needs recovery under Manual: Stalled RecoveryRequired, with the next step',
    input: { observed: needsRecovery, nextStep: 'set spec.recovery.requestId' },
    expect: { Stalled: 'RecoveryRequired', Enrolled: 'NeedsRecovery', Healthy: 'NeedsRecovery' },
  },
  {
    title: 'needs recovery under Automatic: no stall, a recovery starts by itself',
    input: {
      observed: observed({
        connector: connector({ spec: { recovery: { policy: 'Automatic' } } }),
        record: record({ state: 'needs_recovery' }),
      }),
    },
    expect: { Stalled: undefined },
  },
  {
    title: 'a recovery in progress: Reconciling Recovering, Healthy Recovering',
    input: { recovery: { inProgress: true, status: recovering('ScalingDown') } },
    expect: { Reconciling: 'Recovering', Healthy: 'Recovering' },
  },
  {
    title: 'the control plane unreachable: Enrolled and Healthy Unknown',
    input: { observed: observed({ record: 'unreachable' }) },
    expect: { Enrolled: 'ControlPlaneUnreachable', Healthy: 'ControlPlaneUnreachable' },
  },
  {
    title: 'a claim that cannot grow stalls only when nothing else does',
    input: { expansion: { stalled: { reason: 'StorageExpansionUnsupported', message: 'no' } } },
    expect: { Stalled: 'StorageExpansionUnsupported' },
  },
];

for (const row of CONDITION_ROWS) {
  test(`conditions: ${row.title}`, (t) => {
    const condition = conditionsOf(row.input);
    for (const [type, reason] of Object.entries(row.expect)) t.is(condition(type)?.reason, reason, type);
  });
}

test('conditions: the automatic recovery of this incident failed: Stalled RecoveryFailed (it runs once), not a silent wait', (t) => {
  const o = observed({
    connector: connector({ spec: { recovery: { policy: 'Automatic' } } }),
    record: record({ state: 'needs_recovery' }),
  });
  const incident = o.controlPlane.reachable ? (o.controlPlane.record?.stateChangedAt ?? '') : '';
  const id = automaticRequestId(specOf(o).connector.id, incident);
  const failed = recovering('Failed', { requestId: id, reason: 'the agent did not pair' });
  const condition = conditionsOf({ observed: o, recovery: { inProgress: false, status: failed } });
  t.is(condition('Stalled')?.reason, 'RecoveryFailed');
  t.regex(
    condition('Stalled')?.message ?? '',
    new RegExp(`automatic recovery ${id} failed: the agent did not pair`),
  );
  t.regex(condition('Stalled')?.message ?? '', /set spec\.recovery\.requestId to a new value/);
  // An automatic recovery of an earlier incident says nothing about this one.
  const earlier = recovering('Failed', {
    requestId: automaticRequestId(specOf(o).connector.id, '2020-01-01T00:00:00Z'),
  });
  t.is(conditionsOf({ observed: o, recovery: { inProgress: false, status: earlier } })('Stalled'), undefined);
});

test("conditions: an automatic recovery whose agent paired and then stopped is still this incident's: Stalled RecoveryFailed", (t) => {
  // Found reading the code: the pairing moved the record's state change, which names the incident,
  // so the failed attempt no longer matched it and the status showed no stall while nothing more
  // happens until someone asks (no automatic recovery starts while the record is where it paired).
  const incident = '2025-12-31T23:00:00.000Z';
  const base = observed({ connector: connector({ spec: { recovery: { policy: 'Automatic' } } }) });
  const id = automaticRequestId(specOf(base).connector.id, incident);
  const o = observed({
    connector: connector({ spec: { recovery: { policy: 'Automatic' } } }),
    record: record({
      state: 'enrolling',
      bootstrapRetired: false,
      stateChangedAt: '2026-01-01T00:00:04.615Z',
      recovery: { requestId: id } as never,
    }),
  });
  const failed = recovering('Failed', { requestId: id, reason: 'the agent paired, then stopped' });
  const condition = conditionsOf({
    observed: o,
    identityLost: true,
    recovery: { inProgress: false, status: failed },
  });
  t.is(condition('Stalled')?.reason, 'RecoveryFailed');
  t.regex(
    condition('Stalled')?.message ?? '',
    new RegExp(`automatic recovery ${id} failed: the agent paired`),
  );
  // An automatic recovery of an earlier incident, which is not the one the record paired under, says
  // nothing about this one.
  const other = recovering('Failed', {
    requestId: automaticRequestId(specOf(o).connector.id, '2020-01-01T00:00:00Z'),
  });
  const otherStalled = conditionsOf({
    observed: o,
    identityLost: true,
    recovery: { inProgress: false, status: other },
  })('Stalled');
  t.not(otherStalled?.reason, 'RecoveryFailed');
});

test('conditions: a stall is never reported beside Reconciling (kstatus would read InProgress, hiding it)', (t) => {
  const condition = conditionsOf({
    expansion: {
      stalled: { reason: 'StorageExpansionUnsupported', message: 'no' },
      reconciling: { reason: 'ExpandingStorage', message: 'growing' },
    },
  });
  t.is(condition('Stalled')?.status, 'True');
  t.is(condition('Reconciling'), undefined);
});

test('conditions: a recovery’s first pass names its request id in Reconciling', (t) => {
  const condition = conditionsOf({
    previous: {},
    recovery: { inProgress: true, status: recovering('Requested', { requestId: 'req-42' }) },
  });
  t.is(
    condition('Reconciling')?.message,
    "guided recovery req-42 at step Requested: recording the workload's replicas",
  );
});

test('conditions: a recovery whose agent paired but does not beat says so, and what the agent said since the recovery began', (t) => {
  // The control plane began r1 at 00:00:01; the agent paired at 00:00:05, then exited 14 (it gave
  // up on an unreachable control plane) at 00:00:08. The exit of 23:59 is the incident's own.
  const paired = record({
    state: 'enrolling',
    enrolledAt: '2026-01-01T00:00:05.000Z',
    lastHeartbeatAt: null,
    recovery: { requestId: 'r1', startedAt: '2026-01-01T00:00:01.000Z', completedAt: null },
  });
  const exited = (finishedAt: string) => ({
    podName: 'edge-0',
    podUID: 'p1',
    running: false,
    ready: false,
    restartCount: 3,
    termination: {
      exitCode: 14,
      finishedAt,
      failureClass: 'Reconnect' as const,
      code: 'CONTROL_PLANE_UNREACHABLE',
      reason: 'no answer from https://cp.example:8443 for 5m',
    },
  });
  const awaiting = { inProgress: true, status: recovering('AwaitingOnline') };
  const now = conditionsOf({
    observed: observed({ record: paired }),
    record: paired,
    agent: exited('2026-01-01T00:00:08Z'),
    recovery: awaiting,
  });
  const said =
    "guided recovery r1 at step AwaitingOnline: the agent paired at 2026-01-01T00:00:05.000Z with the recovery's token; waiting for its first heartbeat; pod edge-0: the agent exited 14 (Reconnect: CONTROL_PLANE_UNREACHABLE: no answer from https://cp.example:8443 for 5m) at 2026-01-01T00:00:08Z, restarts 3";
  t.is(now('Reconciling')?.message, said);
  // Healthy says what holds whatever the step (a failed pass keeps status.recovery where it was).
  const heartbeat =
    'guided recovery r1 is in progress; the agent paired at 2026-01-01T00:00:05.000Z with its token and has not beaten since; pod edge-0: the agent exited 14 (Reconnect: CONTROL_PLANE_UNREACHABLE: no answer from https://cp.example:8443 for 5m) at 2026-01-01T00:00:08Z, restarts 3';
  t.is(now('Healthy')?.reason, 'Recovering');
  t.is(now('Healthy')?.message, heartbeat);
  t.is(now('Ready')?.message, `Healthy: ${heartbeat}`);

  // An exit from before the recovery began is not this recovery's news; the pod is just not ready.
  const before = conditionsOf({
    observed: observed({ record: paired }),
    record: paired,
    agent: exited('2025-12-31T23:59:00Z'),
    recovery: awaiting,
  });
  t.regex(
    before('Reconciling')?.message ?? '',
    /waiting for its first heartbeat; pod edge-0 is not ready \(restarts 3\)$/,
  );

  // Not paired yet: the token it waits to be used, and until when.
  const unpaired = record({
    state: 'recovering',
    recovery: paired.recovery,
    enrolledAt: '2025-12-31T23:00:00.000Z',
  });
  const waiting = conditionsOf({
    observed: observed({ record: unpaired, tokenSecret: tokenSecret({ mintKey: 'recovery-r1' }) }),
    record: unpaired,
    recovery: awaiting,
  });
  t.is(
    waiting('Reconciling')?.message,
    'guided recovery r1 at step AwaitingOnline: waiting for the agent to pair once with the token in Secret edge-enrollment-token (valid until 2026-01-01T04:00:00.000Z)',
  );
  // A Secret that is not this recovery's token, or is on its way out, is not named.
  for (const other of [
    tokenSecret({ mintKey: 'enroll-x-1' }),
    tokenSecret({ mintKey: 'recovery-r1', deleting: true }),
  ]) {
    const message = conditionsOf({
      observed: observed({ record: unpaired, tokenSecret: other }),
      record: unpaired,
      recovery: awaiting,
    })('Reconciling')?.message;
    t.is(
      message,
      'guided recovery r1 at step AwaitingOnline: waiting for the agent to pair once with the recovery token',
    );
  }
  // Without an answer from the control plane, whether the agent paired is not known, and not guessed.
  const unreachable = observed({
    record: 'unreachable',
    tokenSecret: tokenSecret({ mintKey: 'recovery-r1' }),
  });
  const blind = conditionsOf({ observed: unreachable, record: undefined, recovery: awaiting });
  t.is(
    blind('Reconciling')?.message,
    'guided recovery r1 at step AwaitingOnline: the control plane does not answer, so whether the agent paired is not known',
  );
  t.is(blind('Healthy')?.reason, 'ControlPlaneUnreachable');
});

test('a recovery pass that fails on the way names no step that status.recovery does not reach', (t) => {
  // TokensRevoked -> TokenMinted: the record of the new step is last in the pass; the StatefulSet's
  // apply before it fails, so status.recovery stays at TokensRevoked. Reconciling carries the
  // error; Healthy names no step.
  const o = observed({
    connector: connector({
      spec: { recovery: { requestId: 'r1' } },
      status: { phase: 'Recovering', recovery: recovering('TokensRevoked') },
    }),
    record: record({
      state: 'recovering',
      bootstrapRetired: false,
      lastHeartbeatAt: null,
      recovery: { requestId: 'r1', startedAt: '2026-01-01T00:00:01.000Z', completedAt: null },
    }),
    pods: [],
    workloadReplicas: 0,
  });
  const planned = plan(o, NOW);
  const report = statusOfPass(planned, { ran: 1 }, NOW, 1);
  t.regex(
    report.conditions?.find((c) => c.type === 'Reconciling')?.message ?? '',
    /at step TokenMinted/,
    'the pass moves to TokenMinted',
  );
  const sts = planned.steps.findIndex((step) => step.action?.kind === 'applyStatefulSet');
  t.true(sts > 0, 'the pass applies the StatefulSet before it records the step');
  const written = statusOfPass(
    planned,
    {
      ran: sts,
      error: new CodedError('KUBERNETES_UNAVAILABLE', 'the API server timed out', { temporary: true }),
    },
    NOW,
    1,
  );
  t.is(written.recovery?.step, 'TokensRevoked', 'the record step did not run');
  const said = (written.conditions ?? []).map((c) => `${c.type}: ${c.message}`).join('\n');
  t.false(/at step/.test(said), said);
  t.is(written.conditions?.find((c) => c.type === 'Reconciling')?.reason, 'RetryingAfterError');
});

test('conditions: RecoveryFailed says the way on once, whatever the recorded reason already says', (t) => {
  const o = observed({ connector: connector({ spec: { recovery: { requestId: 'r1' } } }) });
  const reason = 'request r1 was handled before; set a new spec.recovery.requestId to try again';
  const message =
    conditionsOf({ observed: o, recovery: { inProgress: false, status: recovering('Failed', { reason }) } })(
      'Stalled',
    )?.message ?? '';
  t.is(message.split('spec.recovery.requestId').length - 1, 1, message);
});

test('conditions held: an expired token says no fresh one is minted while the pass is held', (t) => {
  const expired = {
    observed: observed({
      record: pendingRecord(),
      tokenSecret: tokenSecret({ expiresAt: '2026-01-01T00:00:00Z' }),
    }),
    enrollment: { expiredUnused: true },
  };
  t.is(
    conditionsOf(expired)('Enrolled')?.message,
    'the enrollment token expired before the connector paired; a fresh one is minted',
  );
  t.is(
    conditionsOf({ ...expired, gates: PAUSED })('Enrolled')?.message,
    'the enrollment token expired before the connector paired; no fresh one is minted while spec.paused is true',
  );
  t.regex(
    conditionsOf({ ...expired, gates: BLOCKED })('Enrolled')?.message ?? '',
    /no fresh one is minted while the Connector is Stalled \(OwnershipConflict\)$/,
  );
});

// ---- report ----

test('report: the phase is the previous one while the control plane cannot be asked, else its state, Recovering, or NeedsRecovery', (t) => {
  const phaseOf = (o: Observed, recovery: Partial<RecoveryDecision> = {}, lost = false) => {
    const spec = specOf(o);
    const decision: RecoveryDecision = {
      status: undefined,
      inProgress: false,
      controlPlane: [],
      deleteSecret: false,
      events: [],
      ...recovery,
    };
    return reportPhase({
      observed: o,
      spec,
      gates: gatesOf(o, spec),
      record: o.controlPlane.reachable ? o.controlPlane.record : undefined,
      agent: undefined,
      pod: o.pods[0],
      posture: postureFor(o, spec, o.pods[0]),
      retired: true,
      lostPairing: false,
      enrollment: planEnrollment({ ...base, record: undefined, tokenSecret: undefined, previous: undefined }),
      diagnosis: lost
        ? { failureClass: 'IdentityLoss', reason: 'lost', evidence: [], nextStep: 'recover' }
        : undefined,
      recovery: decision,
      expansion: { notices: [] },
      now: NOW,
    }).status.phase;
  };
  const before: ConnectorStatus = { phase: 'Online' };
  t.is(phaseOf(observed({ connector: connector({ status: before }), record: 'unreachable' })), 'Online');
  t.is(phaseOf(observed({ record: record({ state: 'offline' }) })), 'Offline');
  t.is(phaseOf(observed(), { inProgress: true, status: recovering('ScalingDown') }), 'Recovering');
  t.is(phaseOf(observed(), {}, true), 'NeedsRecovery');
  t.is(phaseOf(observed(), { inProgress: true, status: recovering('ScalingDown') }, true), 'Recovering');
});

// ---- the plan's order, and what a pass writes ----

test('plan order: report, ConfigMap and dry run, record, tokens, workload; no reordering left to act', (t) => {
  const first = plan(observed({ record: pendingRecord({ ownerUid: null }), pods: [] }), NOW);
  t.is(first.steps[0]?.action, undefined, 'the report comes first');
  t.deepEqual(viewOf(first).order, [
    'applyConfigMap',
    'dryRun',
    'ensureConnector',
    'mintToken',
    'applyStatefulSet',
  ]);
  // Retired, the Secret goes: no mint, so no dry run either.
  t.deepEqual(viewOf(plan(observed({ tokenSecret: tokenSecret() }), NOW)).order, [
    'deleteTokenSecret',
    'applyConfigMap',
    'applyStatefulSet',
  ]);
});

test('plan order: a recovery records its step after the workload it scales', (t) => {
  const planned = plan(
    observed({
      connector: connector({
        spec: { recovery: { requestId: 'r1' } },
        status: { recovery: recovering('Checking') },
      }),
      record: record({ state: 'offline' }),
      recoveryCheck: { requestId: 'r1', allowed: true },
    }),
    NOW,
  );
  const kinds = planned.steps.map((s, i) => (i === 0 ? 'report' : (s.action?.kind ?? 'record')));
  t.deepEqual(kinds, ['report', 'applyConfigMap', 'applyStatefulSet', 'record']);
  t.is(planned.steps.at(-1)?.status?.recovery?.step, 'ScalingDown');
});

for (const [why, held] of [
  ['paused', { spec: { paused: true } }],
  ['blocked', { spec: { workloadRef: { kind: 'Deployment' as const, name: 'legacy' } } }],
] as const) {
  test(`plan ${why}: the report and what it notices, no action`, (t) => {
    const planned = plan(
      observed({
        connector: connector({ ...held, status: { recovery: recovering('ScalingDown') } }),
        record: pendingRecord(),
        workload: { kind: 'Deployment', consented: false },
      }),
      NOW,
    );
    t.deepEqual(
      planned.steps.filter((s) => s.action !== undefined),
      [],
    );
    t.false(
      eventsOfSteps(planned.steps).some((e) => /^(Token|Recovery|StorageExpansionRequested)/.test(e.reason)),
    );
    t.is(viewOf(planned).status.recovery?.step, 'ScalingDown', 'the recovery holds its step');
  });
}

test('a pass that fails at its mint writes the report and the key the control plane refused, nothing of the mint', (t) => {
  const planned = plan(observed({ record: pendingRecord(), pods: [] }), NOW);
  const mintAt = planned.steps.findIndex((s) => s.action?.kind === 'mintToken');
  const refused = new CodedError('IDEMPOTENCY_KEY_CONSUMED', 'spent', { httpStatus: 409 });
  const status = statusOfPass(planned, { ran: mintAt, error: refused }, NOW, 1);
  t.is(status.enrollment?.mintCount, 0);
  t.is(status.enrollment?.lastMintKey, undefined);
  t.is(status.enrollment?.consumedMintKey, enrollmentMintKey(UID, 1));
  t.is(status.conditions?.find((c) => c.type === 'Stalled')?.reason, 'ControlPlaneRejected');
  t.deepEqual(eventsOfSteps(planned.steps, mintAt), [], 'no Event of the mint');
  // Another error at the mint records no key.
  const other = statusOfPass(
    planned,
    { ran: mintAt, error: new CodedError('HTTP_503', 'busy', { temporary: true }) },
    NOW,
    1,
  );
  t.is(other.enrollment?.consumedMintKey, undefined);
  t.is(other.conditions?.find((c) => c.type === 'Reconciling')?.reason, 'RetryingAfterError');
});

test('a pass that fails after its mint counts the mint that ran, and records its Event', (t) => {
  const planned = plan(observed({ record: pendingRecord(), pods: [] }), NOW);
  const applyAt = planned.steps.findIndex((s) => s.action?.kind === 'applyStatefulSet');
  const status = statusOfPass(
    planned,
    { ran: applyAt, error: new CodedError('HTTP_503', 'x', { temporary: true }) },
    NOW,
    1,
  );
  t.is(status.enrollment?.mintCount, 1);
  t.is(status.enrollment?.lastMintKey, enrollmentMintKey(UID, 1));
  t.deepEqual(
    eventsOfSteps(planned.steps, applyAt).map((e) => e.reason),
    ['TokenMinted'],
  );
});

test('a pass whose workload apply fails does not record the recovery step it took', (t) => {
  const o = observed({
    connector: connector({
      spec: { recovery: { requestId: 'r1' } },
      status: { recovery: recovering('Checking') },
    }),
    record: record({ state: 'offline' }),
    pods: [pod()],
    recoveryCheck: { requestId: 'r1', allowed: true },
  });
  const planned = plan(o, NOW);
  const applyAt = planned.steps.findIndex((s) => s.action?.kind === 'applyStatefulSet');
  const failed = statusOfPass(
    planned,
    { ran: applyAt, error: new CodedError('HTTP_503', 'x', { temporary: true }) },
    NOW,
    1,
  );
  t.is(failed.recovery?.step, 'Checking');
  t.is(statusOfPass(planned, { ran: planned.steps.length }, NOW, 1).recovery?.step, 'ScalingDown');
});

test("a token minted after a recovery ended (the plugin, for an adopted workload) is not revoked as the attempt's", (t) => {
  // A review of the revoke for an ended attempt's token with its Secret gone: it took any live
  // token for the attempt's while the enrollment's last recorded mint was older than the attempt,
  // and `kubectl vaultpam token` mints the enrollment's next key and records nothing. The attempt's
  // own token expires within a TTL of the attempt's end; this one (minted 20 minutes after, 4h TTL)
  // lives longer, so it is left alone. The attempt's own token is still revoked.
  const now = new Date('2026-01-01T01:00:00Z');
  const failedAt = (liveTokenExpiresAt: string, workloadRef?: { kind: 'Deployment'; name: string }) =>
    plan(
      observed({
        connector: connector({
          spec: { enrollment: { tokenTTL: '4h' }, ...(workloadRef ? { workloadRef } : {}) },
          status: {
            enrollment: {
              mintCount: 1,
              lastMintKey: enrollmentMintKey(UID, 1),
              tokenMintedAt: '2025-12-31T23:00:00Z',
              tokenExpiresAt: '2026-01-01T00:00:05Z',
              retired: false,
            },
            recovery: {
              requestId: 'r1',
              step: 'Failed',
              outcome: 'Failed',
              attempts: 1,
              startedAt: '2026-01-01T00:00:00Z',
              finishedAt: '2026-01-01T00:30:00Z',
              mintKey: recoveryMintKey('r1'),
              reason: 'the agent stopped instead of pairing',
            },
          },
        }),
        ...(workloadRef ? { workload: { kind: 'Deployment', name: workloadRef.name, consented: true } } : {}),
        record: pendingRecord({ liveToken: { tokenId: 't', expiresAt: liveTokenExpiresAt } }),
      }),
      now,
    ).steps.flatMap((step) => (step.action ? [step.action.kind] : []));
  const adopted = { kind: 'Deployment' as const, name: 'legacy' };
  t.false(failedAt('2026-01-01T04:50:00Z', adopted).includes('revokeTokens'), "the plugin's token stays");
  t.false(failedAt('2026-01-01T04:50:00Z').includes('revokeTokens'));
  t.true(failedAt('2026-01-01T04:20:00Z', adopted).includes('revokeTokens'), "the attempt's own token goes");
});
