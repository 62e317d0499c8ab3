// The GitOps ecosystem checkers, built from tools/ecosystem (Go: Argo CD's Lua interpreter and the
// kstatus library) by its build script, which is instant when its cache is warm and prints the
// directory that holds them.
import { fileURLToPath } from 'node:url';
import { builtToolDirectory, runProgram } from '../helpers/go-tools.ts';

const buildScript = fileURLToPath(new URL('../../tools/ecosystem/build.sh', import.meta.url));

/** The directory holding lua-health and kstatus (built once per process if the cache is cold). */
export function ecosystemBinaries(): Promise<string> {
  return builtToolDirectory(buildScript);
}

export interface HealthResult {
  input: string;
  status: string;
  message: string;
}

/** Runs health.lua on each object file through lua-health (the way Argo CD runs it). */
export async function luaHealth(
  script: string,
  inputs: string[],
  options: { openLibs?: boolean; resource?: boolean; cwd?: string } = {},
): Promise<HealthResult[]> {
  const dir = await ecosystemBinaries();
  const args = ['-script', script];
  if (options.openLibs) args.push('-open-libs');
  if (options.resource) args.push('-resource');
  const { stdout } = await succeeded(`${dir}/lua-health`, [...args, ...inputs], { cwd: options.cwd });
  return lines(stdout) as HealthResult[];
}

export interface KstatusResult {
  kind: string;
  namespace?: string;
  name: string;
  status: string;
  message: string;
  conditions: { type: string; status: string; reason?: string; message?: string }[];
}

/** What kstatus computes for each object (written to it as JSON). */
export async function kstatus(objects: object[]): Promise<KstatusResult[]> {
  const dir = await ecosystemBinaries();
  const { stdout } = await succeeded(`${dir}/kstatus`, [], { input: JSON.stringify(objects) });
  return lines(stdout) as KstatusResult[];
}

const lines = (text: string) =>
  text
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as unknown);

/** Runs a checker that must succeed: its output, or an error with what it said. */
async function succeeded(
  command: string,
  args: string[],
  options: { input?: string; cwd?: string | undefined },
) {
  const result = await runProgram(command, args, {
    ...(options.input !== undefined ? { input: options.input } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  if (result.code !== 0) throw new Error(`${command} exited ${result.code}: ${result.stderr}`);
  return result;
}
