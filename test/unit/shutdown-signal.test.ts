// onShutdownSignal: one Ctrl-C under `npm start` arrives twice (the terminal's and npm's forwarded
// copy). The duplicate must neither end the process by the signal's default action (which skips
// the 'exit' handlers that kill child process groups) nor cut the stop short; a later repeat is
// the user insisting, and goes to onRepeat.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';

function start() {
  const child = spawn(process.execPath, [join(import.meta.dirname, '..', 'fixtures', 'shutdown-signal.ts')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  const ready = new Promise<void>((resolve) =>
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('ready')) resolve();
    }),
  );
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return { child, ready, closed, output: () => output };
}

/** Starts the fixture, sends SIGINT, then again `gapMs` later, and returns how it ended. */
async function interruptTwice(t: ExecutionContext, gapMs: number) {
  const run = start();
  t.teardown(() => run.child.kill('SIGKILL'));
  await run.ready;
  run.child.kill('SIGINT');
  await new Promise((resolve) => setTimeout(resolve, gapMs));
  run.child.kill('SIGINT');
  return { ...(await run.closed), output: run.output() };
}

test('a SIGINT delivered twice at once runs the stop to its end and exits 130', async (t) => {
  const { code, signal, output } = await interruptTwice(t, 20);
  t.deepEqual({ code, signal }, { code: 130, signal: null }, output);
  t.regex(output, /stopped/);
  t.notRegex(output, /repeat/);
});

test('a second SIGINT a second later goes to onRepeat', async (t) => {
  const { code, signal, output } = await interruptTwice(t, 1_100);
  t.deepEqual({ code, signal }, { code: 137, signal: null }, output);
  t.regex(output, /repeat/);
  t.notRegex(output, /stopped/);
});
