// A recovery request for a connector that needs none. A GitOps manifest that still carries an old
// spec.recovery.requestId recreates a Connector with it: the control plane refuses the recovery as
// RECOVERY_NOT_NEEDED, and the operator made the healthy connector Stalled/RecoveryFailed (Ready
// False), told to set a new request id, which was refused the same way; only removing the field
// cleared it, and nothing said so. Found by an outsider review.
import test from 'ava';
import type { ConnectorSpec, ConnectorStatus, RecoveryStatus } from '../../src/operator/api/types.ts';
import type { RecoveryCheck } from '../../src/operator/reconcile/observed.ts';
import { automaticRequestId } from '../../src/operator/reconcile/recovery-requests.ts';
import { connector, observed, pendingRecord, pod, record } from '../helpers/observed-builder.ts';
import { planView } from '../helpers/plan-view.ts';

const NOW = new Date('2026-01-01T00:00:10Z');
const condition = (status: ConnectorStatus, type: string) => status.conditions?.find((c) => c.type === type);

const checking = (requestId: string): RecoveryStatus => ({
  requestId,
  step: 'Checking',
  attempts: 1,
  startedAt: '2026-01-01T00:00:00Z',
  evidence: { replicasBefore: 1 },
});

const notNeeded = (requestId: string, state: string, advice = ''): RecoveryCheck => ({
  requestId,
  allowed: false,
  code: 'RECOVERY_NOT_NEEDED',
  message: `a connector in state ${state} needs no recovery${advice}`,
});

/** One pass over an Online connector (heartbeats, paired, a bound claim) with this spec and status. */
const onlinePass = (spec: Partial<ConnectorSpec>, status: ConnectorStatus, check?: RecoveryCheck) =>
  planView(
    observed({
      connector: connector({ spec, status }),
      record: record({ state: 'online' }),
      ...(check ? { recoveryCheck: check } : {}),
    }),
    NOW,
  );

/** The pass that hears the control plane refuse request A_b.c (in the spec) as not needed. */
const refusedFirst = () =>
  onlinePass(
    { recovery: { requestId: 'A_b.c' } },
    { recovery: checking('A_b.c') },
    notNeeded('A_b.c', 'online'),
  );

test('refused as not needed on an Online connector: recorded as such, and the connector is Ready, not Stalled', (t) => {
  const spec = { recovery: { requestId: 'A_b.c' } };
  const refused = refusedFirst();
  const recovery = refused.status.recovery;
  t.is(recovery?.step, 'Failed', 'the recovery did not happen');
  t.is(recovery?.outcome, 'NotNeeded');
  t.regex(recovery?.reason ?? '', /RECOVERY_NOT_NEEDED: a connector in state online needs no recovery/);
  t.regex(recovery?.reason ?? '', /spec\.recovery\.requestId can be removed/);
  t.regex(recovery?.reason ?? '', /set a new one only once the connector needs recovery/);
  t.is(condition(refused.status, 'Stalled'), undefined);
  t.is(condition(refused.status, 'Ready')?.status, 'True');
  t.is(refused.scaleAdopted, undefined);
  t.deepEqual(
    refused.events.filter((e) => e.reason.startsWith('Recovery')).map((e) => [e.type, e.reason]),
    [['Normal', 'RecoveryNotNeeded']],
  );

  // The id stays in the spec: the next passes are quiet and the connector stays Ready.
  const after = onlinePass(spec, refused.status);
  t.deepEqual(after.status.recovery, recovery);
  t.is(condition(after.status, 'Stalled'), undefined);
  t.is(condition(after.status, 'Ready')?.status, 'True');
  t.deepEqual(
    after.events.filter((e) => e.reason.startsWith('Recovery')),
    [],
  );
});

test('a new request id while none is needed ends the same way, without a stall', (t) => {
  const first = refusedFirst().status;
  const spec = { recovery: { requestId: 'incident-2' } };
  const requested = onlinePass(spec, first);
  t.is(requested.status.recovery?.step, 'Requested');
  t.deepEqual(requested.status.recovery?.handledRequestIds, ['A_b.c']);
  const refused = onlinePass(
    spec,
    { ...requested.status, recovery: { ...requested.status.recovery, step: 'Checking' } },
    notNeeded('incident-2', 'online'),
  );
  t.is(refused.status.recovery?.outcome, 'NotNeeded');
  t.is(condition(refused.status, 'Stalled'), undefined);
  t.is(condition(refused.status, 'Ready')?.status, 'True');
});

test('once the connector needs recovery, the request refused before asks for a new one: RecoveryRequired, not RecoveryFailed', (t) => {
  const refused = refusedFirst().status;
  const lost = planView(
    observed({
      connector: connector({ spec: { recovery: { requestId: 'A_b.c' } }, status: refused }),
      record: record({ state: 'needs_recovery' }),
    }),
    NOW,
  );
  t.is(lost.status.recovery?.requestId, 'A_b.c', 'the id is handled: it never runs again');
  t.is(condition(lost.status, 'Stalled')?.reason, 'RecoveryRequired');
  t.regex(condition(lost.status, 'Stalled')?.message ?? '', /set spec\.recovery\.requestId to a new value/);
});

test('a connector that never paired: the request is not needed either, and normal enrollment goes on', (t) => {
  // The adoption test's never-paired Deployment: the control plane says "mint a token instead", and
  // the operator does (Enrolled says so); nothing is stalled for the request.
  const result = planView(
    observed({
      connector: connector({ spec: { recovery: { requestId: 'r1' } }, status: { recovery: checking('r1') } }),
      record: pendingRecord(),
      pods: [],
      recoveryCheck: notNeeded('r1', 'pending', '; mint a token instead'),
    }),
    NOW,
  );
  t.is(result.status.recovery?.outcome, 'NotNeeded');
  t.is(condition(result.status, 'Stalled'), undefined);
  t.is(condition(result.status, 'Enrolled')?.status, 'False');
  t.true(
    result.controlPlane.some((a) => a.kind === 'mintToken'),
    'the first pairing gets its token',
  );
});

test('an automatic recovery refused as not needed, then the identity lost in the same incident: the Stalled message says so, not that no loss is seen', (t) => {
  const online = record({ state: 'online' });
  const id = automaticRequestId('prod.edge', online.stateChangedAt);
  const result = planView(
    observed({
      connector: connector({
        spec: { recovery: { policy: 'Automatic' } } as Partial<ConnectorSpec>,
        status: {
          recovery: {
            requestId: id,
            step: 'Failed',
            outcome: 'NotNeeded',
            attempts: 1,
            startedAt: '2026-01-01T00:00:00Z',
            finishedAt: '2026-01-01T00:01:00Z',
            reason: 'the control plane refused it, so nothing was done: RECOVERY_NOT_NEEDED: no',
          } as RecoveryStatus,
        } as Partial<ConnectorStatus>,
      }),
      record: online,
      pods: [
        pod({
          terminated: {
            exitCode: 13,
            finishedAt: '2026-01-01T00:00:09Z',
            message: JSON.stringify({ failureClass: 'IdentityLoss', code: 'IDENTITY_DAMAGED' }),
          },
        }),
      ],
    }),
    new Date('2026-01-01T00:00:10Z'),
  );
  const stalled = result.status.conditions?.find((c) => c.type === 'Stalled');
  t.is(stalled?.reason, 'RecoveryFailed');
  t.regex(
    stalled?.message ?? '',
    /refused as not needed, before the loss of the identity the operator sees now/,
  );
  t.notRegex(stalled?.message ?? '', /sees no loss|can be removed/);
});
