import { readFile } from 'node:fs/promises';
import test from 'ava';
import { FakeClock } from '../../src/lib/clock.ts';
import { isCodedError } from '../../src/lib/errors.ts';
import type { Condition } from '../../src/operator/api/types.ts';
import {
  CONDITION_TYPES,
  clearReconciling,
  clearStalled,
  DurableStorageReasons,
  deriveReady,
  EnrolledReasons,
  findCondition,
  HealthyReasons,
  isConditionTrue,
  markReconciling,
  markStalled,
  ReadyReasons,
  ReconcilingReasons,
  removeCondition,
  StalledReasons,
  setCondition,
  statusTime,
  withReady,
} from '../../src/operator/conditions.ts';

const T0 = '2026-01-01T00:00:00Z';

test('a new condition gets now (whole seconds) as its transition time and the given fields', (t) => {
  const clock = new FakeClock('2026-01-01T00:00:00.750Z');
  const conditions = setCondition(
    undefined,
    { type: 'Healthy', status: 'True', reason: 'HeartbeatOk', message: 'ok', observedGeneration: 2 },
    clock.now(),
  );
  t.deepEqual(conditions, [
    {
      type: 'Healthy',
      status: 'True',
      lastTransitionTime: T0,
      reason: 'HeartbeatOk',
      message: 'ok',
      observedGeneration: 2,
    },
  ]);
});

test('lastTransitionTime stays while the status stays, even when reason and message change', (t) => {
  const clock = new FakeClock(T0);
  let conditions = setCondition(
    [],
    { type: 'Healthy', status: 'False', reason: 'PathUnhealthy', message: 'a' },
    clock.now(),
  );
  clock.advance(60_000);
  conditions = setCondition(
    conditions,
    { type: 'Healthy', status: 'False', reason: 'HeartbeatMissed', message: 'b', observedGeneration: 4 },
    clock.now(),
  );
  t.like(findCondition(conditions, 'Healthy'), {
    lastTransitionTime: T0,
    reason: 'HeartbeatMissed',
    message: 'b',
    observedGeneration: 4,
  });
});

test('lastTransitionTime moves when the status flips', (t) => {
  const clock = new FakeClock(T0);
  let conditions = setCondition(
    [],
    { type: 'Healthy', status: 'False', reason: 'HeartbeatMissed', message: '' },
    clock.now(),
  );
  clock.advance(30_000);
  conditions = setCondition(
    conditions,
    { type: 'Healthy', status: 'True', reason: 'HeartbeatOk', message: '' },
    clock.now(),
  );
  t.is(findCondition(conditions, 'Healthy')?.lastTransitionTime, '2026-01-01T00:00:30Z');
  clock.advance(30_000);
  conditions = setCondition(
    conditions,
    { type: 'Healthy', status: 'Unknown', reason: 'NeverConnected', message: '' },
    clock.now(),
  );
  t.is(findCondition(conditions, 'Healthy')?.lastTransitionTime, '2026-01-01T00:01:00Z');
});

test('setCondition does not modify its input and keeps one entry per type in a fixed order', (t) => {
  const now = new Date(T0);
  const before: Condition[] = [
    { type: 'Healthy', status: 'True', lastTransitionTime: T0, reason: 'HeartbeatOk', message: '' },
    { type: 'Custom', status: 'True', lastTransitionTime: T0, reason: 'Fine', message: '' },
  ];
  const snapshot = structuredClone(before);
  let after = setCondition(before, { type: 'Ready', status: 'True', reason: 'Ready', message: '' }, now);
  after = setCondition(
    after,
    { type: 'DurableStorage', status: 'True', reason: 'ClaimBound', message: '' },
    now,
  );
  after = setCondition(
    after,
    { type: 'Healthy', status: 'True', reason: 'HeartbeatOk', message: 'again' },
    now,
  );
  t.deepEqual(before, snapshot);
  t.deepEqual(
    after.map((c) => c.type),
    ['Ready', 'DurableStorage', 'Healthy', 'Custom'],
  );
  // The same facts in another order give the same list, so the status writer sees no change.
  let other = setCondition(
    [],
    { type: 'Healthy', status: 'True', reason: 'HeartbeatOk', message: 'again' },
    now,
  );
  other = setCondition(other, { type: 'Custom', status: 'True', reason: 'Fine', message: '' }, now);
  other = setCondition(
    other,
    { type: 'DurableStorage', status: 'True', reason: 'ClaimBound', message: '' },
    now,
  );
  other = setCondition(other, { type: 'Ready', status: 'True', reason: 'Ready', message: '' }, now);
  t.deepEqual(other, after);
});

test('a reason that is not CamelCase is a programming error, refused with its type named', (t) => {
  const error = t.throws(() =>
    setCondition([], { type: 'Healthy', status: 'True', reason: 'heartbeat ok', message: '' }, new Date(T0)),
  );
  t.true(isCodedError(error, 'INVALID_CONDITION'));
  t.regex(error?.message ?? '', /condition Healthy: reason "heartbeat ok"/);
});

test('very long messages are cut to the API limit', (t) => {
  const conditions = setCondition(
    [],
    { type: 'Healthy', status: 'False', reason: 'PathUnhealthy', message: 'x'.repeat(40_000) },
    new Date(T0),
  );
  t.is(findCondition(conditions, 'Healthy')?.message.length, 32768);
});

test('Reconciling and Stalled are present only while they hold (kstatus)', (t) => {
  const clock = new FakeClock(T0);
  let conditions = markReconciling(
    [],
    { reason: ReconcilingReasons.Enrolling, message: 'waiting', observedGeneration: 1 },
    clock.now(),
  );
  conditions = markStalled(
    conditions,
    { reason: StalledReasons.RecoveryRequired, message: 'set requestId' },
    clock.now(),
  );
  t.true(isConditionTrue(conditions, 'Reconciling'));
  t.true(isConditionTrue(conditions, 'Stalled'));
  t.is(findCondition(conditions, 'Reconciling')?.observedGeneration, 1);
  clock.advance(1000);
  const again = markReconciling(
    conditions,
    { reason: ReconcilingReasons.Recovering, message: 'step 2' },
    clock.now(),
  );
  t.is(findCondition(again, 'Reconciling')?.lastTransitionTime, T0);
  t.deepEqual(
    clearStalled(clearReconciling(again)).map((c) => c.type),
    [],
  );
  t.deepEqual(removeCondition(undefined, 'Stalled'), []);
  t.false(isConditionTrue(undefined, 'Stalled'));
});

function healthyWorld(
  storageReason: string = DurableStorageReasons.ClaimBound,
  storageStatus: 'True' | 'False' = 'True',
): Condition[] {
  const now = new Date(T0);
  let c = setCondition(
    [],
    { type: 'Healthy', status: 'True', reason: HealthyReasons.HeartbeatOk, message: 'ok' },
    now,
  );
  c = setCondition(
    c,
    { type: 'Enrolled', status: 'True', reason: EnrolledReasons.BootstrapRetired, message: 'retired' },
    now,
  );
  return setCondition(
    c,
    { type: 'DurableStorage', status: storageStatus, reason: storageReason, message: 'm' },
    now,
  );
}

test('Ready is True when healthy, enrolled and durable', (t) => {
  t.deepEqual(deriveReady(healthyWorld(), 7), {
    type: 'Ready',
    status: 'True',
    reason: ReadyReasons.Ready,
    message: 'healthy, enrolled, and its identity is on durable storage',
    observedGeneration: 7,
  });
});

test('Ready stays True when running without durable storage was chosen, and says so', (t) => {
  const ready = deriveReady(healthyWorld(DurableStorageReasons.EphemeralByChoice, 'False'));
  t.is(ready.status, 'True');
  t.regex(ready.message, /without durable storage by choice/);
  t.is(ready.observedGeneration, undefined);
});

test('Ready is False with the reason of the first blocking condition, Healthy first', (t) => {
  const now = new Date(T0);
  let c = healthyWorld(DurableStorageReasons.EmptyDir, 'False');
  t.like(deriveReady(c), { status: 'False', reason: 'EmptyDir', message: 'DurableStorage: m' });
  c = setCondition(
    c,
    { type: 'Healthy', status: 'False', reason: HealthyReasons.HeartbeatMissed, message: '40 s' },
    now,
  );
  t.like(deriveReady(c), { status: 'False', reason: 'HeartbeatMissed', message: 'Healthy: 40 s' });
  c = setCondition(
    c,
    { type: 'Healthy', status: 'Unknown', reason: HealthyReasons.NeverConnected, message: 'new' },
    now,
  );
  // A False further down outranks an Unknown earlier in the list.
  t.like(deriveReady(c), { status: 'False', reason: 'EmptyDir' });
});

test('Ready is Unknown while a dependency is Unknown or not yet observed', (t) => {
  const now = new Date(T0);
  let c = healthyWorld();
  c = setCondition(
    c,
    {
      type: 'DurableStorage',
      status: 'Unknown',
      reason: DurableStorageReasons.NoRunningPod,
      message: 'scaled to 0',
    },
    now,
  );
  t.like(deriveReady(c), {
    status: 'Unknown',
    reason: 'NoRunningPod',
    message: 'DurableStorage: scaled to 0',
  });
  t.like(deriveReady(removeCondition(healthyWorld(), 'Enrolled')), {
    status: 'Unknown',
    reason: ReadyReasons.NotObserved,
    message: 'Enrolled has not been observed yet',
  });
  t.like(deriveReady([]), {
    status: 'Unknown',
    reason: 'NotObserved',
    message: 'Healthy has not been observed yet',
  });
});

test('Stalled makes Ready False with the stall reason; Reconciling leaves Ready alone', (t) => {
  const now = new Date(T0);
  const reconciling = markReconciling(healthyWorld(), { reason: 'RollingOut', message: 'new image' }, now);
  t.is(deriveReady(reconciling).status, 'True');
  const stalled = markStalled(reconciling, { reason: StalledReasons.InvalidSpec, message: 'bad ttl' }, now);
  t.like(deriveReady(stalled), { status: 'False', reason: 'InvalidSpec', message: 'Stalled: bad ttl' });
  // A temporary error met while Stalled holds (no Reconciling then) follows the stall's words.
  t.like(deriveReady(stalled, 1, 'CONTROL_PLANE_UNREACHABLE: refused'), {
    status: 'False',
    reason: 'InvalidSpec',
    message:
      'Stalled: bad ttl; meanwhile a temporary error is retried with backoff: CONTROL_PLANE_UNREACHABLE: refused',
  });
  t.like(deriveReady(reconciling, 1, 'ignored: Reconciling says it'), { status: 'True' });
});

test('withReady writes Ready into the list and keeps its transition time while it holds', (t) => {
  const clock = new FakeClock(T0);
  let c = withReady(healthyWorld(), 3, clock.now());
  t.like(findCondition(c, CONDITION_TYPES.Ready), {
    status: 'True',
    observedGeneration: 3,
    lastTransitionTime: T0,
  });
  clock.advance(5000);
  c = withReady(c, 4, clock.now());
  t.like(findCondition(c, 'Ready'), { observedGeneration: 4, lastTransitionTime: T0 });
  c = setCondition(
    c,
    { type: 'Healthy', status: 'False', reason: 'PathUnhealthy', message: 'db path' },
    clock.now(),
  );
  c = withReady(c, 4, clock.now());
  t.like(findCondition(c, 'Ready'), {
    status: 'False',
    reason: 'PathUnhealthy',
    lastTransitionTime: '2026-01-01T00:00:05Z',
  });
});

test('every exported reason is a valid, CamelCase condition reason, documented', async (t) => {
  const module = await import('../../src/operator/conditions.ts');
  const doc = await readFile(new URL('../../docs/connector-resource.md', import.meta.url), 'utf8');
  const groups = Object.entries(module).filter(([name]) => name.endsWith('Reasons'));
  t.true(groups.length >= 6);
  for (const [group, reasons] of groups) {
    for (const [key, value] of Object.entries(reasons as Record<string, string>)) {
      t.is(key, value, `${group}.${key}`);
      t.regex(value, /^[A-Z][A-Za-z0-9]*$/, `${group}.${key}`);
      t.true(doc.includes(`\`${value}\``), `${group}.${key} is not in docs/connector-resource.md`);
    }
  }
  t.is(statusTime(new Date('2026-03-04T05:06:07.999Z')), '2026-03-04T05:06:07Z');
});
