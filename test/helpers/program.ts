// Runs one of the project's programs as a child process for a test: collects stdout and stderr
// together, reports the exit code, and kills the process when the test ends if it is still running.
import { type ChildProcess, spawn } from 'node:child_process';
import type { ExecutionContext } from 'ava';

export interface RunningProgram {
  child: ChildProcess;
  /** stdout and stderr so far, interleaved as they arrived. */
  output(): string;
  /** Resolves with the exit code (null after a signal) once the process has closed its streams. */
  closed: Promise<number | null>;
}

export function runProgram(
  t: ExecutionContext,
  script: string,
  args: string[],
  options: {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    killWith?: NodeJS.Signals;
    /** node's own options, before the script (an image's ENTRYPOINT gives some). */
    nodeOptions?: string[];
  } = {},
): RunningProgram {
  const child = spawn(process.execPath, [...(options.nodeOptions ?? []), script, ...args], {
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.env ? { env: options.env } : {}),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill(options.killWith ?? 'SIGKILL');
  });
  return { child, output: () => output, closed };
}
