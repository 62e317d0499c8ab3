// Events for what changed since the stored status: one per change, none when nothing changed.
import test from 'ava';
import type { ConnectorStatus } from '../../src/operator/api/types.ts';
import type { StoragePosture } from '../../src/operator/reconcile/storage-posture.ts';
import { type TransitionInput, transitionEvents } from '../../src/operator/reconcile/transition-events.ts';

const bound: StoragePosture = {
  source: 'PersistentVolumeClaim',
  durable: true,
  status: 'True',
  reason: 'ClaimBound',
  message: '/data is the bound claim data-edge-0',
  claimName: 'data-edge-0',
  podName: 'edge-0',
};
const emptyDir: StoragePosture = {
  source: 'EmptyDir',
  durable: false,
  status: 'False',
  reason: 'EmptyDir',
  message: '/data in pod edge-0 is the emptyDir "data": the identity is lost when the pod goes',
  volumeName: 'data',
  podName: 'edge-0',
};
const replaced: StoragePosture = {
  ...bound,
  status: 'False',
  reason: 'ClaimReplaced',
  message:
    'the claim data-edge-0 was replaced (UID a became b): the identity written to the old claim is gone',
};

const storageCondition = (posture: StoragePosture) => ({
  type: 'DurableStorage',
  status: posture.status,
  reason: posture.reason,
  message: posture.message,
  lastTransitionTime: '2026-01-01T00:00:00Z',
});

function input(overrides: Partial<TransitionInput> & { previous?: ConnectorStatus } = {}): TransitionInput {
  return {
    previous: {},
    phase: 'Pending',
    mode: 'Autonomous',
    posture: bound,
    diagnosis: undefined,
    ...overrides,
  };
}

const reasons = (i: TransitionInput) => transitionEvents(i).map((e) => `${e.type} ${e.reason}`);

test('a first phase other than Pending is an Event; Pending first, or the same phase again, is not', (t) => {
  t.deepEqual(reasons(input()), [], 'every Connector starts Pending: no change, no write');
  t.deepEqual(reasons(input({ phase: 'Online' })), ['Normal PhaseOnline']);
  t.deepEqual(reasons(input({ phase: 'NeedsRecovery' })), ['Warning PhaseNeedsRecovery']);
  t.deepEqual(reasons(input({ previous: { phase: 'Pending', mode: 'Autonomous' } })), []);
  t.deepEqual(
    reasons(input({ previous: { phase: 'Online', mode: 'Autonomous' }, phase: 'Pending' })),
    ['Normal PhasePending'],
    'back to Pending is a change',
  );
});

test('phases a person should look at are Warnings, and the message says from what to what and why', (t) => {
  const events = transitionEvents(
    input({
      previous: { phase: 'Online', mode: 'Autonomous' },
      phase: 'Offline',
      diagnosis: {
        failureClass: 'Reconnect',
        reason: 'no heartbeat for 30 s',
        nextStep: 'restore reachability',
      },
    }),
  );
  t.deepEqual(
    events.map((e) => e.reason),
    ['PhaseOffline'],
    'the diagnosis found with the phase change rides on its Event: one write per transition',
  );
  const phase = events[0];
  t.is(phase?.type, 'Warning');
  t.is(phase?.message, 'phase Online -> Offline: no heartbeat for 30 s; next step: restore reachability');
  for (const quiet of ['Online', 'Enrolling', 'Recovering'] as const) {
    const back = transitionEvents(
      input({ previous: { phase: 'Offline', mode: 'Autonomous' }, phase: quiet }),
    );
    t.is(back[0]?.type, 'Normal', quiet);
  }
  for (const loud of ['Degraded', 'NeedsRecovery'] as const) {
    const to = transitionEvents(input({ previous: { phase: 'Online', mode: 'Autonomous' }, phase: loud }));
    t.is(to[0]?.type, 'Warning', loud);
  }
});

test('a storage posture that is not durable is a Warning naming the pod, once per reason', (t) => {
  const first = transitionEvents(
    input({ previous: { phase: 'Pending' }, posture: emptyDir, mode: 'GuidedRecovery' }),
  );
  t.deepEqual(
    first.map((e) => [e.type, e.reason]),
    [['Warning', 'StorageEmptyDir']],
  );
  t.regex(first[0]?.message ?? '', /edge-0/);
  t.regex(first[0]?.message ?? '', /"data"/);
  const again = input({
    previous: { phase: 'Pending', mode: 'GuidedRecovery', conditions: [storageCondition(emptyDir)] },
    posture: emptyDir,
    mode: 'GuidedRecovery',
  });
  t.deepEqual(reasons(again), [], 'the same posture again is not news');
});

test('a replaced claim keeps its source but is news: one Warning with the mode change, naming the pod', (t) => {
  const events = transitionEvents(
    input({
      previous: { phase: 'Online', mode: 'Autonomous', conditions: [storageCondition(bound)] },
      phase: 'Online',
      posture: replaced,
      mode: 'GuidedRecovery',
    }),
  );
  t.deepEqual(
    events.map((e) => `${e.type} ${e.reason}`),
    ['Warning StorageClaimReplaced'],
  );
  const storage = events[0];
  t.regex(storage?.message ?? '', /^mode Autonomous -> GuidedRecovery: the claim data-edge-0 was replaced/);
  t.regex(
    storage?.message ?? '',
    /\(pod edge-0\)$/,
    'the posture message did not name the pod, so it is added',
  );
});

test('back to durable storage is a Normal mode Event and no storage Warning', (t) => {
  const events = transitionEvents(
    input({
      previous: { phase: 'Online', mode: 'GuidedRecovery', conditions: [storageCondition(emptyDir)] },
      phase: 'Online',
      posture: bound,
      mode: 'Autonomous',
    }),
  );
  t.deepEqual(
    events.map((e) => `${e.type} ${e.reason}`),
    ['Normal ModeAutonomous'],
  );
});

test('a new or changed diagnosis is a Warning with the next step; an unchanged one is not', (t) => {
  const diagnosis = {
    failureClass: 'IdentityLoss' as const,
    reason: 'the control plane says needs_recovery',
    nextStep: 'set spec.recovery.requestId',
  };
  const events = transitionEvents(
    input({ previous: { phase: 'NeedsRecovery', mode: 'Autonomous' }, phase: 'NeedsRecovery', diagnosis }),
  );
  t.deepEqual(
    events.map((e) => [e.type, e.reason, e.message]),
    [
      [
        'Warning',
        'DiagnosedIdentityLoss',
        'the control plane says needs_recovery; next step: set spec.recovery.requestId',
      ],
    ],
  );
  const same = input({
    previous: {
      phase: 'NeedsRecovery',
      mode: 'Autonomous',
      diagnosis: { ...diagnosis, since: '2026-01-01T00:00:00Z' },
    },
    phase: 'NeedsRecovery',
    diagnosis,
  });
  t.deepEqual(reasons(same), []);
  const changed = input({
    previous: { phase: 'NeedsRecovery', mode: 'Autonomous', diagnosis },
    phase: 'NeedsRecovery',
    diagnosis: { ...diagnosis, reason: 'the claim was replaced after pairing' },
  });
  t.deepEqual(reasons(changed), ['Warning DiagnosedIdentityLoss']);
});
