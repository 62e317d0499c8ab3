// The benchmarks' command lines: node:util's parseArgs, with a mistake answered the way the
// programs in src/bin answer it (src/lib/cli.ts): one line that names the flag and points to
// --help, exit 2, instead of Node's stack trace.
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { commandLineProblem } from '../src/lib/cli.ts';

/** Exit status for a bad command line, as the programs in src/bin use. */
export const USAGE_EXIT = 2;

/** Prints `program: problem; run with --help to list the flags` and exits 2. */
export function usageError(program: string, problem: string): never {
  process.stderr.write(`${program}: ${problem}; run with --help to list the flags\n`);
  process.exit(USAGE_EXIT);
}

/** parseArgs, strict, whose refusal is one line and exit 2 rather than a stack trace. */
export function benchArgs<T extends ParseArgsConfig>(
  program: string,
  config: T,
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs<T>({ strict: true, ...config });
  } catch (error) {
    return usageError(program, commandLineProblem(error));
  }
}

/** A flag that must be a positive number, or a usage error naming it and what was given. */
export function positiveFlag(program: string, name: string, raw: unknown): number {
  const value = Number(raw);
  if (!(value > 0)) usageError(program, `--${name} must be a positive number, got ${String(raw)}`);
  return value;
}
