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

/** Runs `stop` once on the first SIGTERM or SIGINT, then exits with `code`. */
export function onShutdownSignal(
  stop: () => Promise<void>,
  exit: (code: number) => void = process.exit,
): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    stop().then(
      () => exit(signal === 'SIGINT' ? 130 : 0),
      () => exit(1),
    );
  };
  process.once('SIGTERM', handler);
  process.once('SIGINT', handler);
}
