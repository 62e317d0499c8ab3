// A recovery asked for on an identity loss waits at Checking for the control plane's heartbeat
// timeout while the agent keeps failing closed, also in a pass that falls between two pod instances
// (the pod recreated, its new agent not stopped yet), which shows no termination. Found end to end
// (test/e2e/runbook-identity.test.ts, scenario 4): under policy Automatic such a pass ended the
// attempt Failed with RECOVERY_NOT_NEEDED, and the control plane's offline state then started a
// second automatic recovery for the same incident.
import type { V1Pod } from '@kubernetes/client-node';
import test from 'ava';
import type { RecoveryStatus } from '../../src/operator/api/types.ts';
import { ONLINE_GRACE_MS, planRecovery } from '../../src/operator/reconcile/recovery-machine.ts';
import type { RecoveryInput } from '../../src/operator/reconcile/recovery-types.ts';
import { record } from '../helpers/observed-builder.ts';

const STARTED = '2026-01-01T00:00:00Z';
const NOW = new Date('2026-01-01T00:00:02Z');

const checking = (phaseBefore: string | undefined): RecoveryStatus => ({
  requestId: 'auto-0123456789abcdef',
  step: 'Checking',
  attempts: 1,
  startedAt: STARTED,
  evidence: { ...(phaseBefore ? { phaseBefore } : {}), controlPlaneStateBefore: 'online', replicasBefore: 1 },
});

const agentPod = (ready: boolean): V1Pod => ({
  metadata: { name: 'lab-0', uid: 'pod-2' },
  status: {
    containerStatuses: [
      {
        name: 'connector',
        image: 'vaultpam-connector:test',
        imageID: '',
        ready,
        restartCount: 0,
        ...(ready ? { state: { running: {} } } : { state: { waiting: { reason: 'ContainerCreating' } } }),
      },
    ],
  },
});

const input = (overrides: Partial<RecoveryInput>): RecoveryInput => ({
  connectorId: 'ns.lab',
  policy: 'Automatic',
  requestedId: undefined,
  validateRestart: true,
  storage: { kind: 'EmptyDir' } as RecoveryInput['storage'],
  previous: checking('NeedsRecovery'),
  record: record({ state: 'online' }),
  // The pass between two pod instances: the new agent has not failed closed yet.
  identityLoss: false,
  phaseBefore: 'Recovering',
  workload: undefined,
  pods: [agentPod(false)],
  tokenSecret: undefined,
  claims: new Map(),
  audit: undefined,
  check: {
    requestId: 'auto-0123456789abcdef',
    allowed: false,
    code: 'RECOVERY_NOT_NEEDED',
    message: 'a connector in state online needs no recovery',
  },
  now: NOW,
  ...overrides,
});

test('requested on an identity loss, no agent ready: Checking keeps waiting for the heartbeat timeout', (t) => {
  const between = planRecovery(input({}));
  t.is(between.status?.step, 'Checking', between.status?.reason);
  t.true(between.inProgress);
  t.deepEqual(between.events, [], 'no RecoveryFailed');
  // No pod at all (the old one gone, the new one not created yet): the same.
  t.is(planRecovery(input({ pods: [] })).status?.step, 'Checking');
  // Still bounded: past the grace period "online" is the answer.
  const late = planRecovery(input({ now: new Date(Date.parse(STARTED) + ONLINE_GRACE_MS + 1_000) }));
  t.is(late.status?.step, 'Failed');
  t.is(late.status?.outcome, 'Failed', 'the loss stands: a failure, not "not needed"');
});

test('an agent that runs ready again, or a request without a proven loss, is not needed as before', (t) => {
  const back = planRecovery(input({ pods: [agentPod(true)] }));
  t.is(back.status?.step, 'Failed');
  t.is(back.status?.outcome, 'NotNeeded');
  t.regex(back.status?.reason ?? '', /RECOVERY_NOT_NEEDED/);
  const unproven = planRecovery(input({ previous: checking('Online') }));
  t.is(unproven.status?.step, 'Failed');
  t.is(unproven.status?.outcome, 'NotNeeded');
});
