// Small shared helpers for the CLI entry points in src/bin: parse flags, fall back to environment
// variables, and install one SIGTERM/SIGINT handler.
//
// Flags are parsed with node:util's parseArgs rather than a library (commander, yargs): it is part of
// Node, so the three programs gain no dependency, and it already does what they need: strict
// checking of unknown flags, `--flag value` and `--flag=value`, and repeated flags (`multiple`).
// What it lacks, environment fallback and messages that name the flag and its variable, is the
// little code below. docs/architecture.md ("src/lib: the kernel") records the choice.
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { CodedError } from './errors.ts';

export interface FlagSpec {
  /** Environment variable that supplies the value when the flag is absent. */
  env?: string;
  default?: string;
  description: string;
  boolean?: boolean;
  /**
   * The flag may be given more than once; each occurrence, the environment variable and the default
   * may also be a comma-separated list. Its values are in `lists`.
   */
  multiple?: boolean;
  /** A one-letter alias (`-n` for `--namespace`), as kubectl and its plugins spell their common flags. */
  short?: string;
}

export type FlagSpecs = Record<string, FlagSpec>;

export interface ParsedFlags {
  values: Record<string, string | undefined>;
  /** The values of `multiple` flags, trimmed, without empty entries. */
  lists: Record<string, string[]>;
  booleans: Record<string, boolean>;
  help: boolean;
  /** The arguments that are not flags, in order (only with `allowPositionals`). */
  positionals: string[];
}

export interface ParseFlagsOptions {
  /**
   * Take arguments that are not flags (a command and its object, `status NAME`) instead of refusing
   * them, and `-h` as well as `--help`: a command-line tool's shape rather than a daemon's.
   */
  allowPositionals?: boolean;
}

/** A bad flag value: the programs exit 2 (the agent: 12, its configuration exit) on it. */
export function flagError(message: string): CodedError {
  return new CodedError('INVALID_FLAGS', message);
}

/** `--name (env VARIABLE)`, how a message names a flag that has an environment variable. */
export function flagName(specs: FlagSpecs, name: string): string {
  const env = specs[name]?.env;
  return env ? `--${name} (env ${env})` : `--${name}`;
}

/** A flag's value as a whole number at least `min`, or the flag error that says so. */
export function wholeNumberFlag(value: string | undefined, flag: string, min: number): number {
  const number = Number(value);
  if (value === undefined || value.trim() === '' || !Number.isSafeInteger(number) || number < min)
    throw flagError(`--${flag}: "${value ?? ''}" must be a whole number >= ${min}`);
  return number;
}

export function helpText(program: string, summary: string, specs: FlagSpecs): string {
  const lines = [`Usage: ${program} [flags]`, '', summary, '', 'Flags:'];
  for (const [name, spec] of Object.entries(specs)) {
    const env = spec.env ? ` (env ${spec.env})` : '';
    const def = spec.default !== undefined ? ` [default: ${spec.default}]` : '';
    const short = spec.short ? `-${spec.short}, ` : '';
    lines.push(`  ${short}--${name}${spec.boolean ? '' : ' <value>'}\n      ${spec.description}${env}${def}`);
  }
  lines.push('  --help\n      Print this help and exit.');
  return lines.join('\n');
}

function optionsOf(specs: FlagSpecs, shortHelp = false): ParseArgsOptionsConfig {
  const options: ParseArgsOptionsConfig = {
    help: shortHelp ? { type: 'boolean', short: 'h' } : { type: 'boolean' },
  };
  for (const [name, spec] of Object.entries(specs)) {
    const short = spec.short ? { short: spec.short } : {};
    options[name] = spec.boolean
      ? { type: 'boolean', ...short }
      : { type: 'string', multiple: spec.multiple === true, ...short };
  }
  return options;
}

/**
 * parseArgs' complaint as one line naming the flag and its variable: its own text spans several lines
 * and talks about "options". The benchmarks (bench/bench-args.ts) use it too.
 */
export function commandLineProblem(error: unknown, specs: FlagSpecs = {}): string {
  const { code, message } = error as { code?: string; message?: string };
  const text = String(message ?? error);
  // parseArgs quotes a flag with an alias as '-n, --namespace <value>': name the long spelling.
  const quoted = /'(-[^']*)'/.exec(text)?.[1] ?? '';
  const spellings = quoted.split(/[ ,]+/).filter((word) => word.startsWith('-'));
  const flag = spellings.find((word) => word.startsWith('--')) ?? spellings[0];
  const named = flag?.startsWith('--') && specs[flag.slice(2)] ? flagName(specs, flag.slice(2)) : flag;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && named) {
    if (/ambiguous/.test(text)) {
      return (
        `${named} has no value: the argument after it begins with "-" and reads as a flag (a duration or ` +
        `number cannot be negative; a value that really begins with "-" is written ${flag}=<value>)`
      );
    }
    if (/does not take an argument/.test(text)) return `${named} takes no value`;
    return `${named} has no value`;
  }
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag) return `unknown flag ${flag}`;
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    return `unexpected argument ${/'([^']*)'/.exec(text)?.[0] ?? ''}: only flags are taken`;
  }
  return text.split('\n')[0] ?? text;
}

/**
 * `-n=team-a` as kubectl reads it (pflag: the value after a one-letter flag's '='), written the long
 * way for parseArgs, which would read `-n=team-a` as the value "=team-a". Arguments after `--` are
 * left alone: they are not flags.
 */
function withShortValues(argv: readonly string[], specs: FlagSpecs): string[] {
  const longOf = new Map(
    Object.entries(specs).flatMap(([name, spec]) => (spec.short ? [[spec.short, name] as const] : [])),
  );
  const end = argv.indexOf('--');
  return argv.map((arg, index) => {
    const short = /^-([A-Za-z])=/.exec(arg)?.[1];
    const name = short === undefined || (end !== -1 && index > end) ? undefined : longOf.get(short);
    return name === undefined ? arg : `--${name}${arg.slice(2)}`;
  });
}

function commaList(values: readonly string[]): string[] {
  return values
    .flatMap((value) => value.split(','))
    .map((value) => value.trim())
    .filter((value) => value.length > 0);
}

/**
 * Parses argv against specs. Flags win over environment variables, which win over defaults. A bad
 * command line (an unknown flag, a flag without its value) is INVALID_FLAGS, one line naming the flag.
 * A one-letter alias takes its value as kubectl's do: `-n team-a`, `-nteam-a` or `-n=team-a`.
 */
export function parseFlags(
  argv: string[],
  specs: FlagSpecs,
  env: NodeJS.ProcessEnv,
  options: ParseFlagsOptions = {},
): ParsedFlags {
  const allowPositionals = options.allowPositionals === true;
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: withShortValues(argv, specs),
      options: optionsOf(specs, allowPositionals),
      strict: true,
      allowPositionals,
    });
  } catch (error) {
    throw flagError(`${commandLineProblem(error, specs)}; run with --help to list the flags`);
  }
  const values: Record<string, string | undefined> = {};
  const lists: Record<string, string[]> = {};
  const booleans: Record<string, boolean> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const raw = parsed.values[name];
    const fromEnv = spec.env ? env[spec.env] : undefined;
    if (spec.boolean) {
      booleans[name] = raw === true || (raw === undefined && (fromEnv === 'true' || fromEnv === '1'));
    } else if (spec.multiple) {
      const given = (raw as string[] | undefined) ?? [fromEnv ?? spec.default].filter((v) => v !== undefined);
      lists[name] = commaList(given);
    } else {
      values[name] = (raw as string | undefined) ?? fromEnv ?? spec.default;
    }
  }
  return { values, lists, booleans, help: parsed.values.help === true, positionals: parsed.positionals };
}

/**
 * One flag's value as far as it can be read from a command line that may be invalid (unknown flags,
 * missing values elsewhere): the agent needs its termination log path to report exactly that.
 */
export function bestEffortFlagValue(
  argv: string[],
  specs: FlagSpecs,
  name: string,
  env: NodeJS.ProcessEnv,
): string | undefined {
  const { values } = parseArgs({
    args: withShortValues(argv, specs),
    options: optionsOf(specs),
    strict: false,
    allowPositionals: true,
  });
  const raw = values[name];
  const spec = specs[name];
  const given = typeof raw === 'string' && raw !== '' ? raw : undefined;
  return given ?? (spec?.env ? env[spec.env] || undefined : undefined) ?? spec?.default;
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
