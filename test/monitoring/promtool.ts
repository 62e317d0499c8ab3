// promtool and the two checkers beside it (promql-metrics, monitoring-objects), built from the pinned
// modules in tools/promtool by its build script, which is instant when its cache is warm and prints
// the directory that holds them.
import { fileURLToPath } from 'node:url';
import { builtToolDirectory, type ProgramResult, runProgram } from '../helpers/go-tools.ts';

const buildScript = fileURLToPath(new URL('../../tools/promtool/build.sh', import.meta.url));

/** The directory holding promtool and the checkers (built once per process if the cache is cold). */
export function promtoolBinaries(): Promise<string> {
  return builtToolDirectory(buildScript);
}

export type { ProgramResult };

/** Runs promtool with these arguments (and this standard input); the exit code is returned, not thrown. */
export async function promtool(args: string[], cwd?: string, input?: string): Promise<ProgramResult> {
  return runProgram(`${await promtoolBinaries()}/promtool`, args, { input, cwd });
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
  const result = await runProgram(`${await promtoolBinaries()}/promql-metrics`, [], {
    input: JSON.stringify(queries),
  });
  if (result.code !== 0) throw new Error(`promql-metrics exited ${result.code}: ${result.stderr}`);
  return result.stdout
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as QueryMetrics);
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
  const result = await runProgram(`${await promtoolBinaries()}/monitoring-objects`, [], {
    input: objectsYaml,
  });
  if (result.code !== 0) throw new Error(`monitoring-objects exited ${result.code}: ${result.stderr}`);
  return result.stdout
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as ObjectVerdict);
}
