// Planner table tests for "the operator is nobody's deputy": a workload is adopted only with its
// consent (vaultpam.io/adopted-by), a recovery asks the control plane before it scales anything,
// and what a recovery scales down it gives back when the attempt fails or is abandoned.
import test from 'ava';
import type { ConnectorStatus, RecoveryStatus } from '../../src/operator/api/types.ts';
import type { WorkloadFacts } from '../../src/operator/reconcile/observed.ts';
import { BLOCKED_RECHECK_MS } from '../../src/operator/reconcile/plan.ts';
import {
  ONLINE_GRACE_MS,
  planRecovery,
  validationRestartMark,
} from '../../src/operator/reconcile/recovery-machine.ts';
import { RECOVERY_POLL_MS } from '../../src/operator/reconcile/recovery-outcomes.ts';
import { automaticRequestId, recoveryMintKey } from '../../src/operator/reconcile/recovery-requests.ts';
import {
  connector,
  observed,
  pendingRecord,
  pod,
  record,
  tokenSecret,
  validatingRestartStatus,
} from '../helpers/observed-builder.ts';
import { planView } from '../helpers/plan-view.ts';

const NOW = new Date('2026-01-01T00:00:10Z');
const condition = (status: ConnectorStatus, type: string) => status.conditions?.find((c) => c.type === type);
const workloadRef = { kind: 'Deployment' as const, name: 'legacy' };
const consented: Partial<WorkloadFacts> = {
  kind: 'Deployment',
  name: 'legacy',
  replicas: 3,
  consented: true,
  adoptedBy: 'edge',
};
const notConsented: Partial<WorkloadFacts> = {
  kind: 'Deployment',
  name: 'legacy',
  replicas: 3,
  consented: false,
};
const recovering = (step: RecoveryStatus['step'], extra: Partial<RecoveryStatus> = {}): ConnectorStatus => ({
  recovery: {
    requestId: 'r1',
    step,
    attempts: 1,
    startedAt: '2026-01-01T00:00:00Z',
    evidence: { replicasBefore: 3 },
    ...extra,
  },
});

// ---- adoption needs the workload's consent ----

test('the reproduction: an adopted Deployment without consent and a recovery request: Stalled, nothing planned', (t) => {
  for (const cp of [undefined, pendingRecord(), record({ state: 'needs_recovery' })]) {
    const result = planView(
      observed({
        connector: connector({ spec: { workloadRef, recovery: { requestId: 'r1' } } }),
        record: cp,
        pods: [],
        workload: notConsented,
      }),
      NOW,
    );
    const what = `record ${cp?.state ?? 'absent'}`;
    t.deepEqual(result.controlPlane, [], `${what}: no record ensured, no token, no recovery begun`);
    t.is(result.scaleAdopted, undefined, `${what}: never scaled`);
    t.is(result.statefulSet, undefined);
    t.is(result.configMap, undefined);
    t.is(result.deleteTokenSecret, undefined);
    t.is(result.status.recovery, undefined, `${what}: no recovery started`);
    t.is(result.status.enrollment?.mintCount ?? 0, 0);
    const stalled = condition(result.status, 'Stalled');
    t.is(stalled?.reason, 'AdoptionNotConsented', what);
    t.regex(
      stalled?.message ?? '',
      /^spec\.workloadRef: Deployment prod\/legacy has no label vaultpam\.io\/adopted-by/,
    );
    t.true(
      stalled?.message.endsWith('kubectl -n prod label deployment legacy vaultpam.io/adopted-by=edge'),
      stalled?.message,
    );
    t.is(condition(result.status, 'Ready')?.reason, 'AdoptionNotConsented');
    t.deepEqual(
      result.events.map((e) => [e.type, e.reason]),
      [['Warning', 'AdoptionNotConsented']],
      'no Event announces an action',
    );
    t.is(result.requeueAfterMs, BLOCKED_RECHECK_MS);
  }
});

test('a consent label naming another Connector is no consent, and the message says so', (t) => {
  const result = planView(
    observed({
      connector: connector({ spec: { workloadRef } }),
      workload: { ...notConsented, adoptedBy: 'other-connector' },
    }),
    NOW,
  );
  const message = condition(result.status, 'Stalled')?.message ?? '';
  t.regex(message, /has vaultpam\.io\/adopted-by=other-connector, which names another Connector/);
  t.true(message.endsWith('vaultpam.io/adopted-by=edge --overwrite'), message);
  t.deepEqual(result.controlPlane, []);
});

test('with consent the same Connector is planned as any other: record, token, recovery', (t) => {
  const fresh = planView(
    observed({ connector: connector({ spec: { workloadRef } }), record: undefined, workload: consented }),
    NOW,
  );
  t.deepEqual(
    fresh.controlPlane.map((a) => a.kind),
    ['ensureConnector'],
  );
  t.is(condition(fresh.status, 'Stalled'), undefined);
  const pending = planView(
    observed({
      connector: connector({ spec: { workloadRef } }),
      record: pendingRecord(),
      workload: consented,
    }),
    NOW,
  );
  t.true(pending.controlPlane.some((a) => a.kind === 'mintToken'));
});

test('consent withdrawn during a recovery: the recovery holds its step and the workload is not touched', (t) => {
  const result = planView(
    observed({
      connector: connector({
        spec: { workloadRef, recovery: { requestId: 'r1' } },
        status: recovering('ScalingDown'),
      }),
      record: record({ state: 'needs_recovery' }),
      workload: { ...notConsented, replicas: 3 },
    }),
    NOW,
  );
  t.is(result.scaleAdopted, undefined);
  t.is(result.status.recovery?.step, 'ScalingDown');
  t.is(condition(result.status, 'Stalled')?.reason, 'AdoptionNotConsented');
});

// ---- no side effect before its precondition: the Checking step ----

test('a new recovery records the replicas it found and asks before scaling: Requested and Checking scale nothing', (t) => {
  const spec = { workloadRef, recovery: { requestId: 'r1' } };
  let status: ConnectorStatus = {};
  const pass = (extra: Parameters<typeof observed>[0] = {}) => {
    const result = planView(
      observed({
        connector: connector({ spec, status }),
        record: record({ state: 'needs_recovery' }),
        workload: consented,
        ...extra,
      }),
      NOW,
    );
    status = result.status;
    return result;
  };
  let r = pass();
  t.is(r.status.recovery?.step, 'Requested');
  t.is(r.status.recovery?.evidence?.replicasBefore, 3);
  t.is(r.scaleAdopted, undefined, 'the request scales nothing');
  r = pass();
  t.is(r.status.recovery?.step, 'Checking');
  t.is(r.scaleAdopted, undefined, 'recording the check scales nothing');
  r = pass();
  t.is(r.status.recovery?.step, 'Checking', 'no answer yet: it waits');
  t.is(r.scaleAdopted, undefined);
  t.is(r.requeueAfterMs, RECOVERY_POLL_MS);
  r = pass({ recoveryCheck: { requestId: 'other', allowed: true } });
  t.is(r.status.recovery?.step, 'Checking', "another request's answer does not count");
  r = pass({ recoveryCheck: { requestId: 'r1', allowed: true } });
  t.is(r.status.recovery?.step, 'ScalingDown');
  t.deepEqual(r.scaleAdopted, { kind: 'Deployment', name: 'legacy', replicas: 0 });
  t.is(r.status.recovery?.evidence?.replicasBefore, 3, 'the record survives the steps');
});

test('a refusal by the control plane ends the recovery before anything is scaled, with its reason', (t) => {
  const spec = { workloadRef, recovery: { requestId: 'r1' } };
  const result = planView(
    observed({
      connector: connector({ spec, status: recovering('Checking') }),
      record: pendingRecord(),
      workload: consented,
      recoveryCheck: {
        requestId: 'r1',
        allowed: false,
        code: 'RECOVERY_NOT_NEEDED',
        message: 'a connector in state pending needs no recovery; mint a token instead',
      },
    }),
    NOW,
  );
  // Not needed, and nothing says otherwise: recorded as such, holding nothing back
  // (operator-recovery-not-needed.test.ts).
  t.is(result.status.recovery?.step, 'Failed');
  t.is(result.status.recovery?.outcome, 'NotNeeded');
  t.regex(
    result.status.recovery?.reason ?? '',
    /^the control plane refused it, so nothing was done: RECOVERY_NOT_NEEDED: a connector in state pending needs no recovery; mint a token instead; /,
  );
  t.is(result.scaleAdopted, undefined, 'never scaled: not down, not "back"');
  t.is(condition(result.status, 'Stalled'), undefined);
  t.true(result.events.some((e) => e.reason === 'RecoveryNotNeeded' && e.priority === 'always'));
  // The operator's own StatefulSet keeps its replica too.
  const own = planView(
    observed({
      connector: connector({ spec: { recovery: { requestId: 'r1' } }, status: recovering('Checking') }),
      record: record({ state: 'online' }),
      recoveryCheck: { requestId: 'r1', allowed: false, code: 'RECOVERY_NOT_NEEDED', message: 'online' },
    }),
    NOW,
  );
  t.is(own.status.recovery?.step, 'Failed');
  t.is(own.statefulSet?.spec?.replicas, 1);
});

test('still online while the agent has failed closed: Checking waits for the control plane to notice, touching nothing', (t) => {
  const input = (now: Date) => ({
    connectorId: 'prod.edge',
    policy: 'Manual' as const,
    requestedId: 'r1',
    validateRestart: true,
    storage: { kind: 'Adopted' as const },
    previous: recovering('Checking').recovery,
    record: record({ state: 'online' }),
    identityLoss: true,
    phaseBefore: 'NeedsRecovery',
    workload: undefined,
    pods: [],
    tokenSecret: undefined,
    claims: new Map(),
    audit: undefined,
    check: { requestId: 'r1', allowed: false as const, code: 'RECOVERY_NOT_NEEDED', message: 'online' },
    now,
  });
  const waiting = planRecovery(input(NOW));
  t.is(waiting.status?.step, 'Checking');
  t.is(waiting.replicas, undefined);
  const late = planRecovery(input(new Date(Date.parse('2026-01-01T00:00:00Z') + ONLINE_GRACE_MS + 1_000)));
  t.is(late.status?.step, 'Failed');
  t.is(late.status?.outcome, 'Failed', 'the loss is proven: the refusal is a failure');
  t.regex(
    late.status?.reason ?? '',
    /^the control plane refused the recovery, so nothing was scaled: RECOVERY_NOT_NEEDED/,
  );
  t.true(late.events.some((e) => e.reason === 'RecoveryFailed'));
  t.is(late.replicas, undefined, 'nothing to give back: nothing was scaled');
  // Without proof of a lost identity, "online" is the answer: no waiting.
  const healthy = planRecovery({ ...input(NOW), identityLoss: false });
  t.is(healthy.status?.step, 'Failed');
  t.is(healthy.status?.outcome, 'NotNeeded');
});

// ---- what a recovery scales down it gives back ----

test('an attempt that fails after scaling down gives the adopted workload back the replicas it had', (t) => {
  const spec = { workloadRef, recovery: { requestId: 'r1' } };
  const expired = tokenSecret({ mintKey: recoveryMintKey('r1'), expiresAt: '2026-01-01T00:00:05.000Z' });
  const result = planView(
    observed({
      connector: connector({
        spec,
        status: recovering('AwaitingOnline', { mintKey: recoveryMintKey('r1') }),
      }),
      record: record({ state: 'recovering', bootstrapRetired: false }),
      workload: { ...consented, replicas: 1 },
      tokenSecret: expired,
    }),
    NOW,
  );
  t.is(result.status.recovery?.step, 'Failed');
  t.regex(result.status.recovery?.reason ?? '', /expired/);
  t.deepEqual(result.scaleAdopted, { kind: 'Deployment', name: 'legacy', replicas: 3 });
  // The next pass (Failed recorded) leaves the workload as it is.
  const next = planView(
    observed({
      connector: connector({ spec, status: result.status }),
      record: record({ state: 'recovering', bootstrapRetired: false }),
      workload: { ...consented, replicas: 3 },
    }),
    NOW,
  );
  t.is(next.scaleAdopted, undefined);
});

test('a failure while scaled down gives back the recorded replicas; the operator StatefulSet gets its one', (t) => {
  const spec = { workloadRef, recovery: { requestId: 'r1' } };
  const cp = record({ state: 'pending', bootstrapRetired: false, certificate: null });
  const adopted = planView(
    observed({
      connector: connector({ spec, status: recovering('TokensRevoked') }),
      record: cp,
      pods: [],
      workload: { ...consented, replicas: 0 },
    }),
    NOW,
  );
  t.is(adopted.status.recovery?.step, 'Failed');
  t.regex(adopted.status.recovery?.reason ?? '', /never paired/);
  t.deepEqual(adopted.scaleAdopted, { kind: 'Deployment', name: 'legacy', replicas: 3 });
  const own = planView(
    observed({
      connector: connector({
        spec: { storage: { existingClaim: 'original-data' }, recovery: { requestId: 'r1' } },
        status: recovering('StorageReady', { evidence: { replicasBefore: 1 } }),
      }),
      record: record({ state: 'needs_recovery' }),
      claims: [],
      pods: [],
      workloadReplicas: 0,
    }),
    NOW,
  );
  t.is(own.status.recovery?.step, 'Failed');
  t.is(own.statefulSet?.spec?.replicas, 1);
  // A recovery recorded before replicasBefore existed gives back one replica.
  const old = planView(
    observed({
      connector: connector({ spec, status: recovering('TokensRevoked', { evidence: {} }) }),
      record: cp,
      pods: [],
      workload: { ...consented, replicas: 0 },
    }),
    NOW,
  );
  t.deepEqual(old.scaleAdopted, { kind: 'Deployment', name: 'legacy', replicas: 1 });
});

test('a completed recovery of an adopted workload runs it with the replicas it had', (t) => {
  const spec = { workloadRef, recovery: { requestId: 'r1' } };
  const result = planView(
    observed({
      connector: connector({ spec, status: recovering('AwaitingOnline') }),
      record: record({ state: 'online' }),
      workload: { ...consented, replicas: 1 },
    }),
    NOW,
  );
  t.is(result.status.recovery?.step, 'Completed');
  t.deepEqual(result.scaleAdopted, { kind: 'Deployment', name: 'legacy', replicas: 3 });
});

test('a request withdrawn or replaced before the control plane began it is abandoned, the workload given back', (t) => {
  const base = { workloadRef };
  const withdrawn = planView(
    observed({
      connector: connector({ spec: base, status: recovering('ScalingDown') }),
      record: record({ state: 'needs_recovery' }),
      workload: { ...consented, replicas: 0 },
      pods: [],
    }),
    NOW,
  );
  t.is(withdrawn.status.recovery?.step, 'Failed');
  t.regex(
    withdrawn.status.recovery?.reason ?? '',
    /abandoned .*spec\.recovery\.requestId was removed.*back to 3/,
  );
  t.deepEqual(withdrawn.scaleAdopted, { kind: 'Deployment', name: 'legacy', replicas: 3 });
  t.is(
    condition(withdrawn.status, 'Stalled')?.reason,
    'RecoveryRequired',
    'not RecoveryFailed: the connector still waits for a request',
  );

  const spec = { ...base, recovery: { requestId: 'r2' } };
  const replaced = planView(
    observed({
      connector: connector({ spec, status: recovering('StorageReady') }),
      record: record({ state: 'needs_recovery' }),
      workload: { ...consented, replicas: 0 },
      pods: [],
    }),
    NOW,
  );
  t.is(replaced.status.recovery?.step, 'Failed');
  t.regex(replaced.status.recovery?.reason ?? '', /replaced by r2/);
  t.deepEqual(replaced.scaleAdopted, { kind: 'Deployment', name: 'legacy', replicas: 3 });
  const next = planView(
    observed({
      connector: connector({ spec, status: replaced.status }),
      record: record({ state: 'needs_recovery' }),
      workload: consented,
    }),
    NOW,
  );
  t.is(next.status.recovery?.requestId, 'r2', 'the new request starts');
  t.is(next.status.recovery?.step, 'Requested');

  // Before scaling: abandoned, nothing to give back.
  const early = planView(
    observed({
      connector: connector({ spec: base, status: recovering('Checking') }),
      record: record({ state: 'needs_recovery' }),
      workload: consented,
    }),
    NOW,
  );
  t.is(early.status.recovery?.step, 'Failed');
  t.is(early.scaleAdopted, undefined);

  // Once the control plane may have revoked the identity, only the recovery's pairing restores it.
  const begun = planView(
    observed({
      connector: connector({
        spec: base,
        status: recovering('TokenMinted', { mintKey: recoveryMintKey('r1') }),
      }),
      record: record({ state: 'recovering', bootstrapRetired: false }),
      workload: { ...consented, replicas: 0 },
      pods: [],
    }),
    NOW,
  );
  t.is(begun.status.recovery?.step, 'TokenMinted', 'runs on');
  // A recovery the operator started by itself is not the spec's to withdraw.
  const auto = automaticRequestId('prod.edge', '2025-12-31T23:00:00.000Z');
  const automatic = planView(
    observed({
      connector: connector({
        spec: { ...base, recovery: { policy: 'Automatic' } },
        status: recovering('ScalingDown', { requestId: auto }),
      }),
      record: record({ state: 'needs_recovery' }),
      workload: { ...consented, replicas: 0 },
      pods: [],
    }),
    NOW,
  );
  t.is(automatic.status.recovery?.step, 'StorageReady');
});

// Found by the deputy review: the operator marks the pods of a validation restart with the pod
// annotation vaultpam.io/restarted-for=<request id> and counted any running pod with that mark as
// restarted. spec.podAnnotations could set the same key to a request id its author would ask for
// later (they choose it), so the pod that paired in the recovery carried the mark from its start, the
// template never changed at ValidatingRestart (no roll), and the recovery ended Succeeded with an
// evidence.proof that a validation restart had shown the identity survives: the operator's word for a
// restart that never happened.
const validating = (): ConnectorStatus => {
  const status = validatingRestartStatus();
  return { ...status, recovery: { ...status.recovery, evidence: { phaseBefore: 'NeedsRecovery' } } };
};
const pairedInR1 = () =>
  record({
    enrolledAt: '2026-01-01T00:00:30.000Z',
    lastHeartbeatAt: '2026-01-01T00:01:05.000Z',
    recovery: {
      requestId: 'r1',
      startedAt: '2026-01-01T00:00:00.000Z',
      completedAt: '2026-01-01T00:00:30.000Z',
    },
  });

test("the review's reproduction: a restart marker the author set in spec.podAnnotations is no validation restart", (t) => {
  const marker = { 'vaultpam.io/restarted-for': 'r1' };
  const result = planView(
    observed({
      connector: connector({
        spec: {
          recovery: { policy: 'Manual', requestId: 'r1', validateRestart: true },
          podAnnotations: marker,
        },
        status: validating(),
      }),
      record: pairedInR1(),
      // The pod that paired in this recovery, started before the pairing, marked from its template.
      pods: [pod({ name: 'edge-0', annotations: marker, startTime: '2026-01-01T00:00:20Z' })],
      templateAnnotations: marker,
    }),
    new Date('2026-01-01T00:01:10Z'),
  );
  t.is(result.status.recovery?.step, 'ValidatingRestart', 'no restart happened, so none is proven');
  t.is(result.status.recovery?.outcome, undefined);
  t.is(result.status.recovery?.evidence?.proof, undefined);
  t.false(result.events.some((e) => e.reason === 'RecoverySucceeded'));
});

test("a pod with the operator's marker for this pairing is the validation restart, even one started in the second of the pairing", (t) => {
  // The marker names the certificate the recovery's pairing was issued, which nobody knows before it.
  // The start time alone could not tell: Kubernetes records it in whole seconds, and a restart in the
  // second of the pairing (00:00:30.5) read as 00:00:30, before it (the e2e recovery caught it).
  const paired = { ...pairedInR1(), enrolledAt: '2026-01-01T00:00:30.500Z' };
  const marker = {
    'vaultpam.io/restarted-for': validationRestartMark('r1', paired.certificate?.serial ?? ''),
  };
  for (const startTime of ['2026-01-01T00:01:00Z', '2026-01-01T00:00:30Z']) {
    const result = planView(
      observed({
        connector: connector({
          spec: { recovery: { policy: 'Manual', requestId: 'r1', validateRestart: true } },
          status: validating(),
        }),
        record: paired,
        pods: [pod({ name: 'edge-0', uid: 'pod-2', annotations: marker, startTime })],
        templateAnnotations: marker,
      }),
      new Date('2026-01-01T00:01:10Z'),
    );
    t.is(result.status.recovery?.step, 'Completed', `started ${startTime}`);
    t.is(result.status.recovery?.outcome, 'Succeeded');
    t.regex(result.status.recovery?.evidence?.proof ?? '', /after the validation restart, pod edge-0/);
  }
  // The pod that paired, with a mark naming only the request id (set in the template beforehand),
  // is not it: the template is rolled to the operator's mark instead.
  const before = planView(
    observed({
      connector: connector({
        spec: { recovery: { policy: 'Manual', requestId: 'r1', validateRestart: true } },
        status: validating(),
      }),
      record: paired,
      pods: [pod({ name: 'edge-0', annotations: { 'vaultpam.io/restarted-for': 'r1' } })],
      templateAnnotations: { 'vaultpam.io/restarted-for': 'r1' },
    }),
    new Date('2026-01-01T00:01:10Z'),
  );
  t.is(before.status.recovery?.step, 'ValidatingRestart');
  t.is(
    before.statefulSet?.spec?.template?.metadata?.annotations?.['vaultpam.io/restarted-for'],
    marker['vaultpam.io/restarted-for'],
  );
});

test('spec.podAnnotations never sets the annotations the operator keeps on its pods, nor its security profiles', (t) => {
  const result = planView(
    observed({
      connector: connector({
        spec: {
          podAnnotations: {
            'vaultpam.io/restarted-for': 'r9',
            'vaultpam.io/config-hash': 'mine',
            'Container.AppArmor.Security.Beta.Kubernetes.io/connector': 'unconfined',
            'seccomp.security.alpha.kubernetes.io/pod': 'unconfined',
            'example.com/team': 'edge',
          },
        },
      }),
    }),
    NOW,
  );
  const annotations = result.statefulSet?.spec?.template?.metadata?.annotations ?? {};
  t.is(annotations['vaultpam.io/restarted-for'], undefined, 'only the operator marks a restart');
  t.not(annotations['vaultpam.io/config-hash'], 'mine');
  t.deepEqual(
    Object.keys(annotations).filter((key) => /apparmor|seccomp/i.test(key)),
    [],
    "the pod's security profiles are the operator's",
  );
  t.is(annotations['example.com/team'], 'edge', 'other annotations pass as they are');
});
