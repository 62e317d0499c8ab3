// The agent run as another user (a pod whose runAsUser changed) must reach its program: the checkout
// and its node may sit under a directory only its owner can enter (`mktemp -d` makes 0700 ones, and
// a fresh clone can be in one). Then the program's files are hard-linked (the same files and modes,
// nothing copied; a copy where links cannot cross file systems) into a tree under the system's
// temporary directory that every user can enter.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { promisify } from 'node:util';

/** Where to start the project's programs for another user, and how to remove it. */
export interface ProgramTree {
  cwd: string;
  node: string;
  remove(): Promise<void>;
}

/** True when every directory from `path` up to / lets other users through (o+x). */
async function enterableByAll(path: string): Promise<boolean> {
  for (let dir = path; ; dir = dirname(dir)) {
    if (((await stat(dir)).mode & 0o001) === 0) return false;
    if (dirname(dir) === dir) return true;
  }
}

export async function programTreeForOtherUsers(repoRoot: string): Promise<ProgramTree> {
  if ((await enterableByAll(repoRoot)) && (await enterableByAll(dirname(process.execPath))))
    return { cwd: repoRoot, node: process.execPath, remove: async () => {} };
  const tree = await mkdtemp(join(tmpdir(), 'vaultpam-program-'));
  await chmod(tree, 0o755);
  const parts = ['src', 'node_modules', 'package.json'];
  await promisify(execFile)('cp', ['-al', ...parts, tree], { cwd: repoRoot }).catch(() =>
    promisify(execFile)('cp', ['-a', ...parts, tree], { cwd: repoRoot }),
  );
  const nodeInRepo = relative(repoRoot, process.execPath);
  const node =
    !nodeInRepo.startsWith('..') && !isAbsolute(nodeInRepo) ? join(tree, nodeInRepo) : process.execPath;
  return { cwd: tree, node, remove: () => rm(tree, { recursive: true, force: true }) };
}
