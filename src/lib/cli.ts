// Small shared helpers for the CLI entry points in src/bin: parse flags with node:util,
// fall back to environment variables, and install one SIGTERM/SIGINT handler.
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { CodedError } from './errors.ts';

export interface FlagSpec {
  /** Environment variable that supplies the value when the flag is absent. */
  env?: string;
  default?: string;
  description: string;
  boolean?: boolean;
}

export type FlagSpecs = Record<string, FlagSpec>;

export function helpText(program: string, summary: string, specs: FlagSpecs): string {
  const lines = [`Usage: ${program} [flags]`, '', summary, '', 'Flags:'];
  for (const [name, spec] of Object.entries(specs)) {
    const env = spec.env ? ` (env ${spec.env})` : '';
    const def = spec.default !== undefined ? ` [default: ${spec.default}]` : '';
    lines.push(`  --${name}${spec.boolean ? '' : ' <value>'}\n      ${spec.description}${env}${def}`);
  }
  lines.push('  --help\n      Print this help and exit.');
  return lines.join('\n');
}

/**
 * Parses argv against specs. Flags win over environment variables, which win over defaults.
 * Unknown flags are an error that names the flag.
 */
export function parseFlags(
  argv: string[],
  specs: FlagSpecs,
  env: NodeJS.ProcessEnv,
): { values: Record<string, string | undefined>; booleans: Record<string, boolean>; help: boolean } {
  const options: ParseArgsOptionsConfig = { help: { type: 'boolean' } };
  for (const [name, spec] of Object.entries(specs)) {
    options[name] = { type: spec.boolean ? 'boolean' : 'string' };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  } catch (error) {
    throw new CodedError('INVALID_FLAGS', `${(error as Error).message}; run with --help to list the flags`);
  }
  const values: Record<string, string | undefined> = {};
  const booleans: Record<string, boolean> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const raw = parsed.values[name];
    if (spec.boolean) {
      const fromEnv = spec.env ? env[spec.env] : undefined;
      booleans[name] = raw === true || (raw === undefined && (fromEnv === 'true' || fromEnv === '1'));
    } else {
      values[name] = (raw as string | undefined) ?? (spec.env ? env[spec.env] : undefined) ?? spec.default;
    }
  }
  return { values, booleans, help: parsed.values.help === true };
}

export interface ShutdownSignalOptions {
  /**
   * Called on a SIGTERM or SIGINT that arrives while `stop` runs (the user insists). Default: exit
   * at once with 130 (SIGINT) or 143, which still runs the 'exit' handlers (ManagedProcess kills
   * its process groups there), unlike the signal's default action.
   */
  onRepeat?: (signal: NodeJS.Signals) => void;
  /**
   * A repeat within this many ms of the first signal is ignored (default 1000): one Ctrl-C under
   * `npm start` arrives twice, from the terminal and forwarded by npm.
   */
  repeatAfterMs?: number;
}

/**
 * Runs `stop` once on the first SIGTERM or SIGINT, then exits with `code`. The handlers stay
 * installed while it runs, so a second signal never takes the default action (which would end
 * this process without its 'exit' handlers); it calls `onRepeat` instead.
 */
export function onShutdownSignal(
  stop: () => Promise<void>,
  exit: (code: number) => void = process.exit,
  options: ShutdownSignalOptions = {},
): void {
  let firstAt: number | undefined;
  const repeatAfterMs = options.repeatAfterMs ?? 1_000;
  const onRepeat = options.onRepeat ?? ((signal) => exit(signal === 'SIGINT' ? 130 : 143));
  const handler = (signal: NodeJS.Signals) => {
    if (firstAt !== undefined) {
      if (performance.now() - firstAt >= repeatAfterMs) onRepeat(signal);
      return;
    }
    firstAt = performance.now();
    stop().then(
      () => exit(signal === 'SIGINT' ? 130 : 0),
      () => exit(1),
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}
