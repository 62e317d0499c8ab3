// The test tools built from pinned Go modules (tools/ecosystem, tools/promtool, tools/helm): each
// build script is instant when its cache is warm and prints, last, the directory that holds the
// binaries. One build per script per test process, and one way to run what it built.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const builds = new Map<string, Promise<string>>();

/** The directory `buildScript` prints (built once per process if its cache is cold). */
export function builtToolDirectory(buildScript: string): Promise<string> {
  let built = builds.get(buildScript);
  if (!built) {
    built = promisify(execFile)('bash', [buildScript], {
      env: { ...process.env, PATH: [process.env.PATH ?? '', '/usr/local/go/bin'].filter(Boolean).join(':') },
      maxBuffer: 16 * 1024 * 1024,
    }).then(({ stdout }) => {
      const dir = stdout.trim().split('\n').at(-1) ?? '';
      if (!dir) throw new Error(`${buildScript} printed no directory`);
      return dir;
    });
    builds.set(buildScript, built);
  }
  return built;
}

export interface ProgramResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end; a non-zero exit is returned, not thrown (tests read refusals). */
export function runProgram(
  command: string,
  args: string[],
  options: { input?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<ProgramResult> {
  const { input, cwd, env } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      // No input: no pipe, so a program that exits before reading cannot break it (EPIPE).
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      ...(cwd ? { cwd } : {}),
      ...(env ? { env } : {}),
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
