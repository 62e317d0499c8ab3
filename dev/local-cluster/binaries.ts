// Finds (or builds, once) the etcd, kube-apiserver, kube-controller-manager and kustomize binaries
// that the pinned wrapper module in tools/cluster describes. The build script owns the cache layout.
import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLUSTER_BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kustomize'] as const;
export type ClusterBinary = (typeof CLUSTER_BINARIES)[number];

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const buildScript = join(repoRoot, 'tools', 'cluster', 'build.sh');

/**
 * Runs tools/cluster/build.sh (instant when the cache is warm) and returns the directory that
 * holds the binaries. The script's progress lines go to `onProgress` (stderr by default).
 */
export async function ensureClusterBinaries(
  onProgress: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<string> {
  // Go's official install puts it in /usr/local/go/bin, which not every shell has on PATH.
  const path = [process.env.PATH ?? '', '/usr/local/go/bin'].filter(Boolean).join(':');
  const child = spawn('bash', [buildScript], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PATH: path },
  });
  let stdout = '';
  let stderrTail = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    stderrTail = (stderrTail + text).slice(-4_000);
    for (const line of text.split('\n')) if (line.trim()) onProgress(line);
  });
  const code = await new Promise<number | null>((done) => child.on('close', done));
  if (code !== 0) {
    throw new Error(
      `building the local cluster binaries failed (${buildScript}, exit ${code}; it needs Go 1.26 or newer and the Go module proxy):\n${stderrTail}`,
    );
  }
  const dir = stdout.trim().split('\n').at(-1) ?? '';
  for (const binary of CLUSTER_BINARIES) {
    await access(join(dir, binary), constants.X_OK).catch(() => {
      throw new Error(`${buildScript} reported ${dir} but ${binary} is not an executable there`);
    });
  }
  return dir;
}
