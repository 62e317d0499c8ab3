// promtool and the two checkers beside it (promql-metrics, monitoring-objects), built from the pinned
// modules in tools/promtool by its build script, which is instant when its cache is warm and prints
// the directory that holds them.
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const buildScript = fileURLToPath(new URL('../../tools/promtool/build.sh', import.meta.url));

let built: Promise<string> | undefined;

/** The directory holding promtool and the checkers (built once per process if the cache is cold). */
export function promtoolBinaries(): Promise<string> {
  built ??= promisify(execFile)('bash', [buildScript], {
    env: { ...process.env, PATH: [process.env.PATH ?? '', '/usr/local/go/bin'].filter(Boolean).join(':') },
    maxBuffer: 16 * 1024 * 1024,
  }).then(({ stdout }) => {
    const dir = stdout.trim().split('\n').at(-1) ?? '';
    if (!dir) throw new Error(`${buildScript} printed no directory`);
    return dir;
  });
  return built;
}

export interface ProgramResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs promtool with these arguments (and this standard input); the exit code is returned, not thrown. */
export async function promtool(args: string[], cwd?: string, input?: string): Promise<ProgramResult> {
  return run(`${await promtoolBinaries()}/promtool`, args, input, cwd);
}

export interface NamedQuery {
  id: string;
  expr: string;
}

export interface LabelMatcher {
  name: string;
  /** =, !=, =~ or !~ */
  type: string;
  value: string;
}

export interface QueryMetrics {
  id: string;
  /** The metric names the expression reads. */
  metrics?: string[];
  /** Each vector selector: its metric and its label matchers (__name__ aside). */
  selectors?: Array<{ metric: string; matchers: LabelMatcher[] }>;
  /** Why the expression could not be read. */
  error?: string;
}

/** The metrics and selectors of each PromQL expression, by Prometheus's own parser. */
export async function metricsOfQueries(queries: NamedQuery[]): Promise<QueryMetrics[]> {
  const result = await run(`${await promtoolBinaries()}/promql-metrics`, [], JSON.stringify(queries));
  if (result.code !== 0) throw new Error(`promql-metrics exited ${result.code}: ${result.stderr}`);
  return result.stdout
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as QueryMetrics);
}

function run(
  command: string,
  args: string[],
  input: string | undefined,
  cwd?: string,
): Promise<ProgramResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      ...(cwd ? { cwd } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    if (input !== undefined && child.stdin) {
      // A program that exits early is reported by its exit code, not by a broken pipe.
      child.stdin.on('error', () => {});
      child.stdin.end(input);
    }
  });
}

export interface ObjectVerdict {
  kind: string;
  namespace?: string;
  name: string;
  /** Why the object does not decode strictly into the Prometheus Operator's type. */
  error?: string;
}

/**
 * Each ServiceMonitor and PrometheusRule among these objects (multi-document YAML), decoded strictly
 * into the Prometheus Operator's own Go types: a misspelled field or a wrong type is an error.
 */
export async function prometheusOperatorVerdicts(objectsYaml: string): Promise<ObjectVerdict[]> {
  const result = await run(`${await promtoolBinaries()}/monitoring-objects`, [], objectsYaml);
  if (result.code !== 0) throw new Error(`monitoring-objects exited ${result.code}: ${result.stderr}`);
  return result.stdout
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as ObjectVerdict);
}
