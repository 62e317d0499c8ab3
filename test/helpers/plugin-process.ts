// The kubectl plugin as a person runs it, for the tests that drive it against a real API server:
// its own process (node src/bin/kubectl-vaultpam.ts) with a kubeconfig, any program run to its end
// (tar, kubectl) with its exit code as an answer, and the files of an extracted bundle.
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

export const PLUGIN = new URL('../../src/bin/kubectl-vaultpam.ts', import.meta.url).pathname;

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end in `cwd`; a non-zero exit is an answer, not an error. */
export function runProcess(file: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env, cwd, maxBuffer: 16 * 1024 * 1024, timeout: 5 * 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (error as { code?: unknown }).code : 0;
        if (typeof code !== 'number') {
          reject(error);
          return;
        }
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/**
 * `kubectl vaultpam ARGS` as its own process in `home` (its working directory and HOME), with the
 * kubeconfig in KUBECONFIG and nothing else of the test's environment but PATH.
 */
export function runPluginProcess(
  args: string[],
  options: { kubeconfig: string; home: string; env?: NodeJS.ProcessEnv; cwd?: string },
): Promise<Run> {
  return runProcess(
    process.execPath,
    [PLUGIN, ...args],
    { PATH: process.env.PATH, HOME: options.home, KUBECONFIG: options.kubeconfig, ...options.env },
    options.cwd ?? options.home,
  );
}

/** The files below `dir`, as paths relative to it. */
export async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const entries = await readdir(join(dir, prefix), { withFileTypes: true }).catch(() => []);
  const files: string[] = [];
  for (const entry of entries) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) files.push(...(await listFiles(dir, path)));
    else if (entry.isFile()) files.push(path);
  }
  return files;
}
