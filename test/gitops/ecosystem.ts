// The GitOps ecosystem checkers, built from tools/ecosystem (Go: Argo CD's Lua interpreter and the
// kstatus library) by its build script, which is instant when its cache is warm and prints the
// directory that holds them.
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const buildScript = fileURLToPath(new URL('../../tools/ecosystem/build.sh', import.meta.url));

let built: Promise<string> | undefined;

/** The directory holding lua-health and kstatus (built once per process if the cache is cold). */
export function ecosystemBinaries(): Promise<string> {
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
  const { stdout } = await run(`${dir}/lua-health`, [...args, ...inputs], undefined, options.cwd);
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
  const { stdout } = await run(`${dir}/kstatus`, [], JSON.stringify(objects));
  return lines(stdout) as KstatusResult[];
}

const lines = (text: string) =>
  text
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as unknown);

function run(
  command: string,
  args: string[],
  input: string | undefined,
  cwd?: string,
): Promise<{ stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      // No input: no pipe, so a program that exits before reading cannot break it (EPIPE).
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
    child.on('close', (code) =>
      code === 0 ? resolve({ stdout }) : reject(new Error(`${command} exited ${code}: ${stderr}`)),
    );
    if (input !== undefined && child.stdin) {
      // A program that exits early is reported by its exit code above, not by a broken pipe.
      child.stdin.on('error', () => {});
      child.stdin.end(input);
    }
  });
}
