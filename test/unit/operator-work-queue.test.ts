// The work queue under a FakeClock: time moves only when a test advances it, and reconciles
// finish only when a test resolves them, so every ordering below is deterministic.
import test from 'ava';
import { FakeClock } from '../../src/lib/clock.ts';
import { CodedError, isCodedError } from '../../src/lib/errors.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { AdaptiveLimit } from '../../src/operator/runtime/adaptive-limit.ts';
import {
  alreadyReported,
  objectKey,
  type ReconcileResult,
  splitKey,
  WorkQueue,
  type WorkQueueOptions,
} from '../../src/operator/runtime/work-queue.ts';
import { captureLogs } from '../helpers/log-capture.ts';

/** Lets pending promise callbacks run until `condition` holds; fails rather than waiting forever. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let turn = 0; turn < 1000; turn++) {
    if (condition()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`never happened: ${what}`);
}

interface Run {
  key: string;
  at: number;
  finish(result?: ReconcileResult): void;
  fail(error: unknown): void;
}

/** A handler whose runs the test finishes by hand, recording when each started. */
function controlledHandler(clock: FakeClock) {
  const runs: Run[] = [];
  const active = new Map<string, number>();
  let maxActive = 0;
  let maxActivePerKey = 0;
  const handler = (key: string) =>
    new Promise<ReconcileResult | undefined>((resolve, reject) => {
      const perKey = (active.get(key) ?? 0) + 1;
      active.set(key, perKey);
      maxActivePerKey = Math.max(maxActivePerKey, perKey);
      maxActive = Math.max(
        maxActive,
        [...active.values()].reduce((a, b) => a + b, 0),
      );
      const done = () => active.set(key, (active.get(key) ?? 1) - 1);
      runs.push({
        key,
        at: clock.now().getTime(),
        finish: (result) => {
          done();
          resolve(result);
        },
        fail: (error) => {
          done();
          reject(error);
        },
      });
    });
  return {
    handler,
    runs,
    started: (key?: string) => runs.filter((r) => key === undefined || r.key === key).length,
    last: (key: string) => runs.filter((r) => r.key === key).at(-1) as Run,
    maxActive: () => maxActive,
    maxActivePerKey: () => maxActivePerKey,
  };
}

function setup(options: Partial<WorkQueueOptions> = {}) {
  const clock = new FakeClock(0);
  const control = controlledHandler(clock);
  const queue = new WorkQueue({
    handler: control.handler,
    logger: silentLogger(),
    clock,
    concurrency: 1,
    backoff: { baseMs: 100, capMs: 800 },
    ...options,
  });
  return { clock, queue, ...control };
}

const temporary = () => new CodedError('CONTROL_PLANE_UNAVAILABLE', 'down', { temporary: true });

test('a key added many times while it waits runs once', async (t) => {
  const { queue, runs, started, last } = setup();
  queue.add('ns/blocker');
  queue.add('ns/a');
  queue.add('ns/a');
  queue.add('ns/a');
  t.is(queue.depth, 1);
  await until(() => started('ns/blocker') === 1, 'blocker starts');
  last('ns/blocker').finish();
  await until(() => started('ns/a') === 1, 'a starts');
  last('ns/a').finish();
  await queue.whenIdle();
  t.deepEqual(
    runs.map((r) => r.key),
    ['ns/blocker', 'ns/a'],
  );
});

test('a key never runs twice at once; adds during a run give exactly one more run', async (t) => {
  const { queue, started, last, maxActivePerKey } = setup({ concurrency: 4 });
  queue.add('ns/a');
  await until(() => started('ns/a') === 1, 'first run');
  queue.add('ns/a');
  queue.add('ns/a');
  queue.add('ns/a');
  t.is(queue.inFlight, 1);
  t.is(queue.depth, 0, 'the dirty key is not queued beside its own run');
  last('ns/a').finish();
  await until(() => started('ns/a') === 2, 'dirty re-run');
  last('ns/a').finish();
  await queue.whenIdle();
  t.is(started('ns/a'), 2);
  t.is(maxActivePerKey(), 1);
});

test('a run that asks to requeue at once while an event arrived starts one more run, not two at once', async (t) => {
  // Found by a flaky adoption test: a recovery step returns requeueAfterMs 0 and, under load, an
  // event for the same Connector arrives during the pass. The requeue started the next run, and the
  // event's re-run was queued beside it: two passes of one Connector at once, undoing each other.
  const { queue, started, last, maxActivePerKey } = setup({ concurrency: 4 });
  queue.add('ns/a');
  await until(() => started('ns/a') === 1, 'first run');
  queue.add('ns/a');
  last('ns/a').finish({ requeueAfterMs: 0 });
  await until(() => started('ns/a') >= 2, 'the next run');
  t.is(queue.inFlight, 1, 'one run of the key at a time');
  last('ns/a').finish();
  await queue.whenIdle();
  t.is(maxActivePerKey(), 1);
  t.is(started('ns/a'), 2, 'the requeue and the event share one run, which began after both');
});

test('an urgent key runs before every normal key, however long they waited; a waiting key moves up', async (t) => {
  // The scale benchmark (docs/performance.md, "The queue"): with one FIFO, a Connector whose
  // control-plane record had just changed waited behind every other Connector's echo passes.
  const { queue, runs, started, last } = setup();
  queue.add('ns/blocker');
  await until(() => started('ns/blocker') === 1, 'blocker starts');
  for (const name of ['a', 'b', 'c']) queue.add(objectKey('ns', name));
  queue.add('ns/d', 'urgent');
  queue.add('ns/c', 'urgent');
  queue.add('ns/c');
  t.is(queue.depth, 4, 'both lanes count, and a key waits once');
  last('ns/blocker').finish();
  for (const key of ['ns/d', 'ns/c', 'ns/a', 'ns/b']) {
    await until(() => started(key) === 1, `${key} starts`);
    last(key).finish();
  }
  await queue.whenIdle();
  t.deepEqual(
    runs.map((r) => r.key),
    ['ns/blocker', 'ns/d', 'ns/c', 'ns/a', 'ns/b'],
  );
});

test('an urgent add during a run gives one more run, ahead of the normal keys', async (t) => {
  const { queue, runs, started, last, maxActivePerKey } = setup();
  queue.add('ns/x');
  await until(() => started('ns/x') === 1, 'x starts');
  queue.add('ns/a');
  queue.add('ns/x', 'urgent');
  queue.add('ns/x');
  t.is(queue.depth, 1, 'the dirty key is not queued beside its own run');
  last('ns/x').finish();
  await until(() => started('ns/x') === 2, 'x runs again');
  last('ns/x').finish();
  await until(() => started('ns/a') === 1, 'a starts');
  last('ns/a').finish();
  await queue.whenIdle();
  t.deepEqual(
    runs.map((r) => r.key),
    ['ns/x', 'ns/x', 'ns/a'],
  );
  t.is(maxActivePerKey(), 1);
});

test('forget and shutdown without drain empty the urgent lane too', async (t) => {
  const { queue, started, last } = setup();
  queue.add('ns/blocker');
  await until(() => started('ns/blocker') === 1, 'blocker starts');
  queue.add('ns/a', 'urgent');
  queue.add('ns/b', 'urgent');
  queue.forget('ns/a');
  t.is(queue.depth, 1);
  const stopped = queue.shutdown({ drain: false });
  t.is(queue.depth, 0);
  last('ns/blocker').finish();
  await stopped;
  t.is(started('ns/a') + started('ns/b'), 0);
  t.false(queue.add('ns/c', 'urgent'));
});

test('concurrency bounds the reconciles running across keys', async (t) => {
  const { queue, started, last, maxActive } = setup({ concurrency: 2 });
  for (const name of ['a', 'b', 'c', 'd', 'e']) queue.add(objectKey('ns', name));
  await until(() => started() === 2, 'two start');
  t.deepEqual(queue.stats(), { depth: 3, inFlight: 2, delayed: 0, failing: 0 });
  last('ns/a').finish();
  await until(() => started() === 3, 'third starts after one ends');
  t.is(last('ns/c').key, 'ns/c');
  for (const name of ['b', 'c']) last(`ns/${name}`).finish();
  await until(() => started() === 5, 'all started');
  for (const name of ['d', 'e']) last(`ns/${name}`).finish();
  await queue.whenIdle();
  t.is(maxActive(), 2);
});

test('a lowered limit lets running reconciles finish and starts fewer; a raised one starts more at once', async (t) => {
  const clock = new FakeClock(0);
  const limit = new AdaptiveLimit({ max: 4, clock });
  const control = controlledHandler(clock);
  const queue = new WorkQueue({
    handler: control.handler,
    logger: silentLogger(),
    clock,
    concurrency: limit,
  });
  const { started, last } = control;
  const keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'].map((name) => objectKey('ns', name));
  for (const key of keys) queue.add(key);
  await until(() => started() === 4, 'four start at the maximum');
  t.is(queue.limit, 4);

  // The API server answers 429: the limit halves to 2. The four running are not stopped.
  limit.throttled();
  t.is(queue.limit, 2);
  t.deepEqual(queue.stats(), { depth: 6, inFlight: 4, delayed: 0, failing: 0 });
  last('ns/a').finish();
  last('ns/b').finish();
  await until(() => queue.inFlight === 2, 'two finished');
  await new Promise((resolve) => setImmediate(resolve));
  t.is(started(), 4, 'two still run, which is the limit: nothing new starts');
  last('ns/c').finish();
  await until(() => started() === 5, 'one ends, one starts');
  t.is(queue.inFlight, 2);

  // Quiet for longer than the cooldown and an answer served: the limit grows by one, and one more
  // reconcile starts at once, without waiting for a running one to end.
  clock.advance(1000);
  limit.served();
  t.is(queue.limit, 3);
  await until(() => started() === 6, 'a raised limit starts one more at once');
  t.is(queue.inFlight, 3);
  t.is(control.maxActive(), 4);

  // The rest run, three at a time.
  const finished = new Set(['ns/a', 'ns/b', 'ns/c']);
  while (finished.size < keys.length) {
    const running = control.runs.filter((r) => !finished.has(r.key));
    t.true(running.length <= 3, `${running.length} run at once with the limit at 3`);
    for (const run of running) {
      finished.add(run.key);
      run.finish();
    }
    await until(
      () => started() === Math.min(keys.length, finished.size + 3) || started() === keys.length,
      'more start',
    );
  }
  await queue.whenIdle();
  t.is(control.maxActivePerKey(), 1);
});

test("the limit outlives a queue: the next leadership term's queue starts at its value and follows it", async (t) => {
  const clock = new FakeClock(0);
  const limit = new AdaptiveLimit({ max: 2, clock });
  const first = controlledHandler(clock);
  const old = new WorkQueue({ handler: first.handler, logger: silentLogger(), clock, concurrency: limit });
  limit.throttled();
  old.add('ns/a');
  old.add('ns/b');
  await until(() => first.started() === 1, 'one runs at limit 1');
  const stopped = old.shutdown({ drain: false });
  first.last('ns/a').finish();
  await stopped;

  const second = controlledHandler(clock);
  const next = new WorkQueue({ handler: second.handler, logger: silentLogger(), clock, concurrency: limit });
  t.is(next.limit, 1, 'what the API server said in the last term still holds');
  next.add('ns/a');
  next.add('ns/b');
  await until(() => second.started() === 1, 'one runs');
  await new Promise((resolve) => setImmediate(resolve));
  t.is(second.started(), 1);
  clock.advance(1000);
  limit.served();
  await until(() => second.started() === 2, 'the raised limit starts the other at once');
  for (const key of ['ns/a', 'ns/b']) second.last(key).finish();
  await next.whenIdle();
  t.is(first.started(), 1, 'the stopped queue started nothing more');
});

test('temporary failures back off exponentially per key up to the cap', async (t) => {
  const { queue, clock, started, last } = setup();
  queue.add('ns/a');
  const delays: number[] = [];
  for (let attempt = 1; attempt <= 6; attempt++) {
    await until(() => started('ns/a') === attempt, `attempt ${attempt}`);
    last('ns/a').fail(temporary());
    await until(() => queue.delayed === 1, 'backoff scheduled');
    t.is(queue.failureCount('ns/a'), attempt);
    const due = clock.nextDueIn() as number;
    delays.push(due);
    clock.advance(due - 1);
    t.is(started('ns/a'), attempt, 'not before the backoff has passed');
    clock.advance(1);
  }
  t.deepEqual(delays, [100, 200, 400, 800, 800, 800]);
});

test('a success resets the backoff; another key keeps its own', async (t) => {
  const { queue, clock, started, last } = setup({ concurrency: 2 });
  queue.add('ns/a');
  queue.add('ns/b');
  await until(() => started() === 2, 'both run');
  last('ns/a').fail(temporary());
  last('ns/b').fail(temporary());
  await until(() => queue.delayed === 2, 'both back off');
  clock.advance(100);
  await until(() => started() === 4, 'both retry');
  last('ns/a').fail(temporary());
  last('ns/b').finish();
  await until(() => queue.delayed === 1, 'a backs off again');
  t.is(queue.failureCount('ns/a'), 2);
  t.is(queue.failureCount('ns/b'), 0);
  t.is(clock.nextDueIn(), 200);
  clock.advance(200);
  await until(() => started('ns/a') === 3, 'a retries');
  last('ns/a').finish();
  await queue.whenIdle();
  t.is(queue.failureCount('ns/a'), 0);
  queue.add('ns/a');
  await until(() => started('ns/a') === 4, 'a runs on a new event');
  last('ns/a').fail(temporary());
  await until(() => queue.delayed === 1, 'a backs off from the start');
  t.is(clock.nextDueIn(), 100);
});

test('an error marked permanent is not retried until the next add', async (t) => {
  const logs = captureLogs('queue', 'debug');
  const { queue, clock, started, last } = setup({ logger: logs.logger });
  queue.add('ns/a');
  await until(() => started('ns/a') === 1, 'runs');
  last('ns/a').fail(new CodedError('INVALID_SPEC', 'spec.storage: bad', { temporary: false }));
  await queue.whenIdle();
  t.is(queue.delayed, 0);
  t.is(clock.pendingTimers, 0);
  t.is(queue.failureCount('ns/a'), 0);
  clock.advance(1_000_000);
  t.is(started('ns/a'), 1);
  const record = logs
    .records()
    .find((r) => r.msg === 'reconcile failed permanently; not retried until the object changes');
  t.like(record, { object: 'ns/a', code: 'INVALID_SPEC', err: 'spec.storage: bad' });
  queue.add('ns/a');
  await until(() => started('ns/a') === 2, 'runs again on the next event');
  last('ns/a').finish();
  await queue.whenIdle();
});

test('with a periodic look, an error marked permanent is looked at again after it, not with backoff', async (t) => {
  const logs = captureLogs('queue', 'debug');
  const { queue, clock, started, last } = setup({ logger: logs.logger, periodicLookMs: () => 600_000 });
  queue.add('ns/a');
  await until(() => started('ns/a') === 1, 'runs');
  last('ns/a').fail(new CodedError('INVALID_SPEC', 'spec.storage: bad', { temporary: false }));
  await until(() => queue.delayed === 1, 'waits for the periodic look');
  t.is(queue.failureCount('ns/a'), 0, 'no backoff streak');
  t.is(clock.nextDueIn(), 600_000);
  t.like(
    logs.records().find((r) => r.code === 'INVALID_SPEC'),
    { object: 'ns/a', lookAgainInMs: 600_000, level: 50 },
  );
  clock.advance(599_999);
  t.is(started('ns/a'), 1);
  clock.advance(1);
  await until(() => started('ns/a') === 2, 'looked at again at the periodic look');
  last('ns/a').finish();
  await queue.whenIdle();
});

test('a permanent error the handler already reported is logged at debug, and looked at again as any other', async (t) => {
  const logs = captureLogs('queue', 'debug');
  const { queue, clock, started, last } = setup({ logger: logs.logger, periodicLookMs: () => 600_000 });
  queue.add('ns/a');
  await until(() => started('ns/a') === 1, 'runs');
  last('ns/a').fail(
    alreadyReported(new CodedError('INVALID_SPEC', 'spec.storage: bad', { temporary: false })),
  );
  await until(() => queue.delayed === 1, 'waits for the periodic look');
  t.is(clock.nextDueIn(), 600_000);
  const record = logs.records().find((r) => r.code === 'INVALID_SPEC');
  t.like(record, { object: 'ns/a', level: 20 }, 'debug, not error');
  t.false(
    logs.records().some((r) => Number(r.level) >= 40),
    'nothing at warn or above',
  );
});

test('an error that does not say it is permanent is retried, whatever was thrown', async (t) => {
  const logs = captureLogs('queue', 'debug');
  const { queue, started, last } = setup({ logger: logs.logger });
  queue.add('ns/a');
  await until(() => started('ns/a') === 1, 'runs');
  last('ns/a').fail('a bare string');
  await until(() => queue.delayed === 1, 'retry scheduled');
  t.like(
    logs.records().find((r) => r.msg === 'reconcile failed; retrying with backoff'),
    { object: 'ns/a', attempt: 1, retryInMs: 100, err: 'a bare string' },
  );
});

test('a handler that throws synchronously is contained and retried', async (t) => {
  const clock = new FakeClock(0);
  let calls = 0;
  const queue = new WorkQueue({
    handler: () => {
      calls++;
      if (calls === 1) throw new Error('boom');
      return undefined;
    },
    logger: silentLogger(),
    clock,
    backoff: { baseMs: 50, capMs: 50 },
  });
  queue.add('ns/a');
  await until(() => queue.delayed === 1, 'retry scheduled');
  clock.advance(50);
  await queue.whenIdle();
  t.is(calls, 2);
  t.is(queue.failureCount('ns/a'), 0);
});

test('requeueAfterMs brings the key back after that long', async (t) => {
  const { queue, clock, started, last } = setup();
  queue.add('ns/a');
  await until(() => started('ns/a') === 1, 'runs');
  last('ns/a').finish({ requeueAfterMs: 30_000 });
  await until(() => queue.delayed === 1, 'requeue scheduled');
  clock.advance(29_999);
  t.is(started('ns/a'), 1);
  clock.advance(1);
  await until(() => started('ns/a') === 2, 'runs again');
  t.is(last('ns/a').at, 30_000);
  last('ns/a').finish({ requeueAfterMs: Number.NaN });
  await queue.whenIdle();
  t.is(queue.delayed, 0, 'an invalid delay is ignored, not turned into a tight loop');
});

test('addAfter keeps the earliest deadline', async (t) => {
  const { queue, clock, started, last } = setup();
  queue.addAfter('ns/a', 1000);
  queue.addAfter('ns/a', 500);
  queue.addAfter('ns/a', 900);
  t.is(queue.delayed, 1);
  t.is(clock.nextDueIn(), 500);
  clock.advance(500);
  await until(() => started('ns/a') === 1, 'runs at the earliest deadline');
  last('ns/a').finish();
  await queue.whenIdle();
  clock.advance(10_000);
  t.is(started('ns/a'), 1, 'the later deadlines were dropped');
});

test('add makes a delayed key due now and drops its delay', async (t) => {
  const { queue, clock, started, last } = setup();
  queue.addAfter('ns/a', 1000);
  queue.add('ns/a');
  await until(() => started('ns/a') === 1, 'runs now');
  t.is(queue.delayed, 0);
  queue.addAfter('ns/a', 0);
  t.is(queue.depth, 0, 'a zero delay while running marks the key dirty');
  last('ns/a').finish();
  await until(() => started('ns/a') === 2, 'dirty re-run');
  last('ns/a').finish();
  await queue.whenIdle();
  clock.advance(5000);
  t.is(started('ns/a'), 2);
});

test('addAfter on a running key schedules a run after it', async (t) => {
  const { queue, clock, started, last } = setup();
  queue.add('ns/a');
  await until(() => started('ns/a') === 1, 'runs');
  queue.addAfter('ns/a', 300);
  last('ns/a').finish();
  await queue.whenIdle();
  t.is(queue.delayed, 1);
  clock.advance(300);
  await until(() => started('ns/a') === 2, 'runs after the delay');
  last('ns/a').finish();
  await queue.whenIdle();
});

test('forget drops a key wherever it waits', async (t) => {
  const { queue, clock, started, last } = setup();
  queue.add('ns/blocker');
  queue.add('ns/a');
  queue.addAfter('ns/b', 100);
  queue.forget('ns/a');
  queue.forget('ns/b');
  t.deepEqual(queue.stats(), { depth: 0, inFlight: 1, delayed: 0, failing: 0 });
  await until(() => started('ns/blocker') === 1, 'blocker runs');
  last('ns/blocker').finish();
  await queue.whenIdle();
  clock.advance(1000);
  t.is(started(), 1);
});

test('shutdown drains running and due keys, refuses new adds and drops delayed keys', async (t) => {
  const { queue, clock, started, last } = setup();
  queue.add('ns/a');
  queue.add('ns/b');
  queue.addAfter('ns/c', 100);
  await until(() => started('ns/a') === 1, 'a runs');
  queue.add('ns/a'); // an event during the run, accepted before shutdown
  let done = false;
  const stopped = queue.shutdown().then(() => {
    done = true;
  });
  t.false(queue.add('ns/d'));
  t.false(queue.addAfter('ns/e', 10));
  t.is(queue.delayed, 0);
  last('ns/a').finish({ requeueAfterMs: 10 });
  await until(() => started('ns/b') === 1, 'b drains');
  t.false(done);
  last('ns/b').fail(temporary());
  await until(() => started('ns/a') === 2, 'the dirty a drains');
  last('ns/a').finish();
  await stopped;
  t.true(done);
  clock.advance(10_000);
  t.deepEqual(queue.stats(), { depth: 0, inFlight: 0, delayed: 0, failing: 1 });
  t.is(started(), 3);
});

test('shutdown without drain waits for running reconciles only', async (t) => {
  const { queue, started, last } = setup();
  queue.add('ns/a');
  queue.add('ns/b');
  await until(() => started('ns/a') === 1, 'a runs');
  queue.add('ns/a');
  const stopped = queue.shutdown({ drain: false });
  last('ns/a').finish();
  await stopped;
  t.is(started(), 1);
  t.is(queue.depth, 0);
});

test('the queue refuses nonsense settings and keys with a clear message', (t) => {
  const base = { handler: () => undefined, logger: silentLogger() };
  const bad = (options: Partial<WorkQueueOptions>) => t.throws(() => new WorkQueue({ ...base, ...options }));
  t.regex(bad({ concurrency: 0 })?.message ?? '', /concurrency must be a whole number >= 1, got 0/);
  t.regex(bad({ backoff: { baseMs: 0 } })?.message ?? '', /0 < baseMs <= capMs/);
  t.regex(bad({ backoff: { baseMs: 10, capMs: 5 } })?.message ?? '', /got baseMs 10 and capMs 5/);
  t.deepEqual(splitKey('ns/name'), { namespace: 'ns', name: 'name' });
  for (const key of ['name', '/name', 'ns/', 'a/b/c']) {
    t.true(
      isCodedError(
        t.throws(() => splitKey(key)),
        'INVALID_KEY',
      ),
      key,
    );
  }
});
