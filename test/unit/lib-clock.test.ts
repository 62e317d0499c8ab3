// The one time abstraction (src/lib/clock.ts): the system clock, the FakeClock that every unit test of
// the agent's, the work queue's, the informers' and the registry's timing drives, and the ShiftedClock.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import {
  backgroundClock,
  FakeClock,
  LONGEST_TIMER_MS,
  ShiftedClock,
  systemClock,
} from '../../src/lib/clock.ts';

test('the fake clock fires due timers in order, with now() at each due time, including ones set while firing', (t) => {
  const clock = new FakeClock(1000);
  const fired: string[] = [];
  const at = () => clock.now().getTime();
  clock.setTimeout(() => fired.push(`b@${at()}`), 20);
  clock.setTimeout(() => {
    fired.push(`a@${at()}`);
    clock.setTimeout(() => fired.push(`c@${at()}`), 5);
  }, 10);
  const cleared = clock.setTimeout(() => fired.push('never'), 15);
  clock.clearTimeout(cleared);
  t.is(clock.pendingTimers, 2);
  t.is(clock.nextDueIn(), 10);
  t.is(clock.advance(30).getTime(), 1030);
  t.deepEqual(fired, ['a@1010', 'c@1015', 'b@1020']);
  t.is(clock.nextDueIn(), undefined);
  t.is(clock.pendingTimers, 0);
});

test('the fake clock fires timers of equal due time in the order they were set, and a negative delay at once', (t) => {
  const clock = new FakeClock('2026-01-01T00:00:00Z');
  const fired: number[] = [];
  for (const n of [1, 2, 3]) clock.setTimeout(() => fired.push(n), 100);
  clock.setTimeout(() => fired.push(0), -5);
  clock.advance(0);
  t.deepEqual(fired, [0]);
  clock.advance(99);
  t.deepEqual(fired, [0]);
  clock.advance(1);
  t.deepEqual(fired, [0, 1, 2, 3]);
});

test('setting the fake clock jumps without firing timers', (t) => {
  const clock = new FakeClock('2026-01-01T00:00:00Z');
  let fired = false;
  clock.setTimeout(() => {
    fired = true;
  }, 1000);
  clock.set('2026-01-01T01:00:00Z');
  t.false(fired);
  t.is(clock.now().toISOString(), '2026-01-01T01:00:00.000Z');
  clock.advance(0);
  t.true(fired, 'the overdue timer fires on the next advance');
});

test('the shifted clock reads the system time plus its offset', (t) => {
  const clock = new ShiftedClock(2 * 86_400_000);
  const before = Date.now();
  const read = clock.now().getTime();
  t.true(read >= before + 2 * 86_400_000 && read <= Date.now() + 2 * 86_400_000);
  clock.offsetMs = 0;
  t.true(Math.abs(clock.now().getTime() - Date.now()) < 60_000);
});

test('system clock timers fire and can be cleared', async (t) => {
  const fired: string[] = [];
  const cleared = systemClock.setTimeout(() => fired.push('cleared'), 1);
  systemClock.clearTimeout(cleared);
  await new Promise<void>((resolve) => systemClock.setTimeout(resolve, 5));
  await new Promise<void>((resolve) => new ShiftedClock(1000).setTimeout(resolve, 1));
  // Background timers are unref'd: the test's own ref'd timer keeps this worker alive meanwhile.
  const keepAlive = setTimeout(() => {}, 60_000);
  try {
    await new Promise<void>((resolve) => backgroundClock.setTimeout(resolve, 1));
  } finally {
    clearTimeout(keepAlive);
  }
  t.deepEqual(fired, []);
});

test('a wait longer than a timer holds is not run at once (Node would run it after 1 ms)', async (t) => {
  const fired: string[] = [];
  const handles = [systemClock, backgroundClock].map((clock) =>
    clock.setTimeout(() => fired.push('fired'), 30 * 86_400_000),
  );
  const edge = systemClock.setTimeout(() => fired.push('fired'), LONGEST_TIMER_MS + 1);
  await new Promise((resolve) => setTimeout(resolve, 50));
  for (const handle of [...handles, edge]) systemClock.clearTimeout(handle);
  t.deepEqual(fired, []);
});

/** Runs `body` in a fresh Node process with the clocks imported; returns its exit status and output. */
function runWithClocks(body: string) {
  const clock = fileURLToPath(new URL('../../src/lib/clock.ts', import.meta.url));
  const script = `import { backgroundClock, systemClock } from ${JSON.stringify(clock)};\n${body}\n`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
  });
}

test('a pending background timer alone does not keep a process alive', (t) => {
  const result = runWithClocks("backgroundClock.setTimeout(() => console.log('fired'), 600_000);");
  t.is(result.status, 0, result.stderr);
  t.false(result.stdout.includes('fired'));
});

test('a pending system clock timer keeps the process alive until it fires, as setTimeout does', (t) => {
  const result = runWithClocks("systemClock.setTimeout(() => console.log('fired'), 20);");
  t.is(result.status, 0, result.stderr);
  t.true(result.stdout.includes('fired'));
});
