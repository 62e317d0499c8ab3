// Every condition reason docs/connector-resource.md promises is produced by the code: each one has
// a scenario here that makes the operator write it, and the test fails when the docs list a reason
// no scenario produces (a documented reason that is never set misleads whoever alerts on it).
// DurableStorage reasons have their own table in operator-storage-posture.test.ts.
import test from 'ava';
import { CodedError } from '../../src/lib/errors.ts';
import type { Connector, ConnectorStatus } from '../../src/operator/api/types.ts';
import { DurableStorageReasons, withReady } from '../../src/operator/conditions.ts';
import { withError } from '../../src/operator/reconcile/pass-status.ts';
import { finalizerRefusedStatus, finalizingStatus } from '../../src/operator/reconciler.ts';
import { documentedReasons } from '../helpers/documented-reasons.ts';
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
import { planView } from '../helpers/plan-view.ts';

const NOW = new Date('2026-01-01T00:00:10Z');

const connectorOf = (status?: ConnectorStatus, spec: Partial<Connector['spec']> = {}) =>
  connector({ spec, ...(status ? { status } : {}) });
const planned = (options: Parameters<typeof observed>[0]) => planView(observed(options), NOW).status;
const afterError = (code: string, temporary = false) =>
  withError(planned({}), new CodedError(code, 'refused', { temporary }), NOW, 1);
const termination = (failureClass: string, code: string, exitCode: number) => ({
  exitCode,
  message: JSON.stringify({ failureClass, code, reason: 'x' }),
});

/** spec.storage.size grown past the claim's request, its StorageClass able to expand it or not. */
function grownClaim(allowVolumeExpansion: boolean): ConnectorStatus {
  const o = observed({
    connector: connectorOf(undefined, { storage: { size: '2Gi', storageClassName: 'fast' } }),
    claims: [claim({ requested: '1Gi', capacity: '1Gi', storageClassName: 'fast' })],
  });
  return planView({ ...o, storageClass: { name: 'fast', allowVolumeExpansion } }, NOW).status;
}

/** A Connector without a pod whose pod would name a PriorityClass or ServiceAccount that is wrong. */
function podReferenceMissing(kind: 'PriorityClass' | 'ServiceAccount', state: 'missing' | 'forbidden') {
  const field = kind === 'PriorityClass' ? 'spec.priorityClassName' : 'spec.serviceAccountName';
  const o = observed({
    connector: connectorOf(undefined, { [field.slice(5)]: 'named' }),
    record: undefined,
    pods: [],
  });
  return planView({ ...o, podReferences: [{ field, kind, name: 'named', state }] }, NOW).status;
}

/** One scenario per documented reason: the status in which the operator writes it. */
const SCENARIOS: Record<string, () => ConnectorStatus> = {
  'Enrolled/Enrolled': () => planned({ record: pendingRecord({ state: 'enrolling', enrolledAt: 'x' }) }),
  'Enrolled/BootstrapRetired': () => planned({}),
  'Enrolled/AwaitingEnrollment': () => planned({ record: undefined }),
  'Enrolled/TokenMinted': () =>
    planned({
      record: pendingRecord({ liveToken: { tokenId: 't', expiresAt: '2026-01-01T04:00:00.000Z' } }),
      tokenSecret: tokenSecret(),
      connector: connectorOf({ enrollment: { mintCount: 1, lastMintKey: `enroll-${UID}-1` } }),
    }),
  'Enrolled/TokenExpired': () =>
    planned({
      record: pendingRecord(),
      tokenSecret: tokenSecret({ expiresAt: '2026-01-01T00:00:00.000Z' }),
      connector: connectorOf({ enrollment: { mintCount: 1, lastMintKey: `enroll-${UID}-1` } }),
    }),
  'Enrolled/TokenRevoked': () =>
    planned({
      record: pendingRecord(),
      tokenSecret: tokenSecret(),
      connector: connectorOf({ enrollment: { mintCount: 1, lastMintKey: `enroll-${UID}-1` } }),
    }),
  'Enrolled/EnrollmentRejected': () =>
    planned({
      record: pendingRecord(),
      pods: [pod({ terminated: termination('FirstBootBootstrap', 'CA_UNTRUSTED', 11) })],
    }),
  'Enrolled/NeedsRecovery': () => planned({ record: record({ state: 'needs_recovery' }) }),
  'Healthy/HeartbeatOk': () => planned({}),
  'Healthy/PathUnhealthy': () =>
    planned({ record: record({ state: 'degraded', paths: [{ name: 'ssh', healthy: false, detail: '' }] }) }),
  'Healthy/HeartbeatMissed': () => planned({ record: record({ state: 'offline' }) }),
  'Healthy/NeedsRecovery': () => planned({ record: record({ state: 'needs_recovery' }) }),
  'Healthy/Recovering': () => planned({ record: record({ state: 'recovering' }) }),
  'Healthy/NeverConnected': () => planned({ record: pendingRecord() }),
  'Healthy/ControlPlaneUnreachable': () => planned({ record: 'unreachable' }),
  'Enrolled/ControlPlaneUnreachable': () => planned({ record: 'unreachable' }),
  'Reconciling/ApplyingResources': () => planned({ noWorkload: true }),
  'Reconciling/RollingOut': () => {
    const o = observed({});
    const sts = o.workload?.object;
    if (sts) {
      sts.metadata = { ...sts.metadata, generation: 2 };
      sts.status = { replicas: 1, observedGeneration: 1 };
    }
    return planView(o, NOW).status;
  },
  'Reconciling/ExpandingStorage': () => grownClaim(true),
  'Reconciling/Enrolling': () => planned({ record: pendingRecord() }),
  'Reconciling/Recovering': () =>
    planned({
      record: record({ state: 'needs_recovery' }),
      connector: connectorOf(undefined, { recovery: { requestId: 'r1' } }),
    }),
  'Reconciling/RetryingAfterError': () => afterError('CONTROL_PLANE_UNREACHABLE', true),
  'Reconciling/Finalizing': () =>
    finalizingStatus({ ...connectorOf(planned({})), metadata: { ...connector().metadata } }, NOW),
  'Stalled/InvalidSpec': () => afterError('InvalidSpec'),
  'Stalled/RecoveryFailed': () =>
    planned({
      record: record({ state: 'needs_recovery' }),
      connector: connectorOf(
        { recovery: { requestId: 'r1', step: 'Failed', outcome: 'Failed', reason: 'x' } },
        { recovery: { requestId: 'r1' } },
      ),
    }),
  'Stalled/RecoveryRequired': () => planned({ record: record({ state: 'needs_recovery' }) }),
  'Stalled/ControlPlaneConfigInvalid': () => afterError('ControlPlaneConfigInvalid'),
  'Stalled/ControlPlaneUnauthorized': () => afterError('UNAUTHORIZED'),
  'Stalled/ControlPlaneRejected': () => afterError('TTL_TOO_LONG'),
  'Stalled/WorkloadNotFound': () =>
    planned({
      noWorkload: true,
      connector: connectorOf(undefined, { workloadRef: { kind: 'Deployment', name: 'gone' } }),
    }),
  'Stalled/AdoptionNotConsented': () =>
    planned({
      connector: connectorOf(undefined, { workloadRef: { kind: 'Deployment', name: 'legacy' } }),
      workload: { kind: 'Deployment', name: 'legacy', consented: false },
    }),
  'Stalled/OwnershipConflict': () =>
    planView({ ...observed({}), foreign: [{ kind: 'ConfigMap', name: 'edge-config' }] }, NOW).status,
  'Stalled/StorageExpansionUnsupported': () => grownClaim(false),
  'Stalled/ConnectorIdConflict': () => afterError('CONNECTOR_ID_CONFLICT'),
  'Stalled/FinalizerRefused': () =>
    finalizerRefusedStatus(connector(), NOW, 'refused by an admission policy'),
  'Stalled/ClaimNotFound': () =>
    planned({
      claims: [],
      connector: connectorOf(undefined, { storage: { existingClaim: 'original-data' } }),
    }),
  'Stalled/PriorityClassNotFound': () => podReferenceMissing('PriorityClass', 'missing'),
  'Stalled/ServiceAccountNotFound': () => podReferenceMissing('ServiceAccount', 'missing'),
  'Stalled/PodReferenceForbidden': () => podReferenceMissing('PriorityClass', 'forbidden'),
  'Ready/Ready': () => planned({}),
  // Before the first pass has observed Healthy, Enrolled and DurableStorage.
  'Ready/NotObserved': () => ({ conditions: withReady([], 1, NOW) }),
};

test('every documented condition reason (but DurableStorage) has a scenario, and each scenario produces it', (t) => {
  const documented = documentedReasons();
  t.true(documented.size >= 5, 'the Conditions table was found');
  const problems: string[] = [];
  for (const [type, reasons] of documented) {
    if (type === 'DurableStorage') continue;
    for (const reason of reasons) {
      const key = `${type}/${reason}`;
      const scenario = SCENARIOS[key];
      if (!scenario) {
        problems.push(`${key} is documented but no scenario produces it`);
        continue;
      }
      const condition = scenario().conditions?.find((c) => c.type === type);
      if (condition?.reason !== reason)
        problems.push(`${key}: the scenario wrote ${condition?.reason ?? 'no condition'}`);
    }
  }
  t.deepEqual(problems, []);
  const covered = new Set(
    [...documented].flatMap(([type, reasons]) => [...reasons].map((r) => `${type}/${r}`)),
  );
  for (const key of Object.keys(SCENARIOS))
    t.true(covered.has(key), `${key} has a scenario but is not documented`);
});

test('the documented DurableStorage reasons are exactly the exported constants', (t) => {
  const documented = documentedReasons().get('DurableStorage') ?? new Set();
  t.deepEqual([...documented].sort(), Object.values(DurableStorageReasons).sort());
});

test('Finalizing: the status describes the generation the deletion made, at the top as in its conditions', (t) => {
  const base = connector();
  const deleting = {
    ...base,
    metadata: { ...base.metadata, generation: 2 },
    status: { observedGeneration: 1, phase: 'Online' as const },
  };
  const status = finalizingStatus(deleting, NOW);
  t.is(status.observedGeneration, 2);
  t.true((status.conditions ?? []).every((c) => c.observedGeneration === 2));
});
