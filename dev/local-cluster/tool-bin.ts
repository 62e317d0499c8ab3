// The bin directory of a local run: the kubectl built to match the cluster (a link to the cache)
// and the `kubectl-vaultpam` plugin, so one `PATH=<dir>:$PATH` makes `kubectl get connectors` and
// `kubectl vaultpam status` work whatever kubectl the machine has, or none. The plugin is a small
// shell script that runs src/bin/kubectl-vaultpam.ts with the Node that runs this process (the
// project's pinned Node 26: the machine's own may be too old to run TypeScript), the way kubectl
// finds plugins: an executable named kubectl-<name> on the PATH.
import { chmod, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot } from './install.ts';

export const PLUGIN_NAME = 'kubectl-vaultpam';
export const PLUGIN_SOURCE = join(repoRoot, 'src', 'bin', 'kubectl-vaultpam.ts');

/** A word safe to paste into sh: single-quoted unless it is plainly safe. */
export function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The plugin's wrapper script. */
export function pluginScript(node: string, source = PLUGIN_SOURCE): string {
  return [
    '#!/bin/sh',
    "# kubectl plugin (kubectl vaultpam ...), written by `npm start`: runs the project's plugin with its",
    '# pinned Node. KUBECONFIG and the flags kubectl passes on (--kubeconfig, --context, -n) apply.',
    `exec ${shellWord(node)} ${shellWord(source)} "$@"`,
    '',
  ].join('\n');
}

/** Creates (or replaces) `dir` with `kubectl` and `kubectl-vaultpam` in it; returns their paths. */
export async function writeToolBin(
  dir: string,
  options: { kubectl: string; node?: string },
): Promise<{ kubectl: string; plugin: string }> {
  await mkdir(dir, { recursive: true });
  const kubectl = join(dir, 'kubectl');
  const plugin = join(dir, PLUGIN_NAME);
  await rm(kubectl, { force: true });
  await symlink(options.kubectl, kubectl);
  await writeFile(plugin, pluginScript(options.node ?? process.execPath), 'utf8');
  await chmod(plugin, 0o755);
  return { kubectl, plugin };
}
