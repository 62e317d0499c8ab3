// Finds (or builds, once) the etcd, kube-apiserver, kube-controller-manager and kustomize binaries
// that the pinned wrapper module in tools/cluster describes, and the kubectl of the same version
// (tools/kubectl). The build scripts own the cache layout; this runs them and reads their answer.
import { execFile, spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BuildProgress, listWords } from './build-progress.ts';

export const CLUSTER_BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kustomize'] as const;
export type ClusterBinary = (typeof CLUSTER_BINARIES)[number];

/** What a cold `npm start` builds, in the order the scripts build them. */
export const LOCAL_RUN_BUILD_PLAN = [
  'kustomize',
  'kube-apiserver',
  'kube-controller-manager',
  'etcd',
  'kubectl',
] as const;

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLUSTER_BUILD_SCRIPT = join(repoRoot, 'tools', 'cluster', 'build.sh');
export const KUBECTL_BUILD_SCRIPT = join(repoRoot, 'tools', 'kubectl', 'build.sh');

// Go's official install puts it in /usr/local/go/bin, which not every shell has on PATH.
const pathWithGo = () => [process.env.PATH ?? '', '/usr/local/go/bin'].filter(Boolean).join(':');

export interface BuildScript {
  /** The script; it prints the directory of its binaries on stdout and its progress on stderr. */
  script: string;
  /** The binaries that directory must hold. */
  binaries: readonly string[];
}

export interface RunBuildScriptOptions {
  /** Each line the script writes to stderr. */
  onLine: (line: string) => void;
  /** Run go with -x (every module fetch and compiler run on stderr), for progress reports. */
  traceGo?: boolean;
  /** What the tail of stderr for an error message should be (default: the last 4,000 characters). */
  errorDetail?: () => string;
  env?: NodeJS.ProcessEnv;
}

/** GOFLAGS as go sees it: the variable replaces `go env -w` settings, so -x must be added to those. */
async function goFlagsWithTrace(env: NodeJS.ProcessEnv): Promise<string> {
  const current = await new Promise<string>((done) =>
    execFile('go', ['env', 'GOFLAGS'], { env }, (error, stdout) => done(error ? '' : stdout.trim())),
  );
  return current.split(/\s+/).includes('-x') ? current : `${current} -x`.trim();
}

/** Runs one build script (instant when its cache is warm) and returns the directory it reports. */
export async function runBuildScript(build: BuildScript, options: RunBuildScriptOptions): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env, PATH: pathWithGo() };
  if (options.traceGo) env.GOFLAGS = await goFlagsWithTrace(env);
  const child = spawn('bash', [build.script], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderrTail = '';
  let partial = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString();
    stderrTail = (stderrTail + chunk.toString()).slice(-4_000);
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) options.onLine(line);
  });
  const code = await new Promise<number | null>((done) => child.on('close', done));
  if (partial.trim()) options.onLine(partial);
  if (code !== 0) {
    throw new Error(
      `building with ${build.script} failed (exit ${code}; it needs Go 1.26 or newer and the Go module proxy):\n${options.errorDetail?.() ?? stderrTail}`,
    );
  }
  const dir = stdout.trim().split('\n').at(-1) ?? '';
  for (const binary of build.binaries) {
    await access(join(dir, binary), constants.X_OK).catch(() => {
      throw new Error(`${build.script} reported ${dir} but ${binary} is not an executable there`);
    });
  }
  return dir;
}

/**
 * Runs tools/cluster/build.sh (instant when the cache is warm) and returns the directory that
 * holds the binaries. The script's progress lines go to `onProgress` (stderr by default).
 */
export function ensureClusterBinaries(
  onProgress: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<string> {
  return runBuildScript({ script: CLUSTER_BUILD_SCRIPT, binaries: CLUSTER_BINARIES }, { onLine: onProgress });
}

/** Runs tools/kubectl/build.sh (instant when the cache is warm) and returns the kubectl binary's path. */
export async function ensureKubectl(
  onProgress: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<string> {
  const dir = await runBuildScript(
    { script: KUBECTL_BUILD_SCRIPT, binaries: ['kubectl'] },
    { onLine: onProgress },
  );
  return join(dir, 'kubectl');
}

export interface ReportedBuildOptions {
  /** Where the readable progress lines go. */
  say: (line: string) => void;
  /** Said once, before the first progress line, only when something is actually built. */
  heading?: string;
  /** How often a quiet step says it is still going (default 30 s). */
  heartbeatMs?: number;
  /** The scripts to run, in order (default: the cluster's, then kubectl's). */
  scripts?: readonly BuildScript[];
  plan?: readonly string[];
  /** Added to the scripts' environment. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Builds what `npm start` needs, once, telling a person what happens: each step, its place in the
 * plan, modules downloaded and packages compiled, elapsed time, what remains (BuildProgress). With
 * a warm cache it says nothing and takes a fraction of a second. Resolves with each script's
 * directory, in order.
 */
export async function buildReportingProgress(options: ReportedBuildOptions): Promise<string[]> {
  const scripts = options.scripts ?? [
    { script: CLUSTER_BUILD_SCRIPT, binaries: CLUSTER_BINARIES },
    { script: KUBECTL_BUILD_SCRIPT, binaries: ['kubectl'] },
  ];
  let headed = false;
  const say = (line: string) => {
    if (!headed && options.heading) options.say(options.heading);
    headed = true;
    options.say(`    ${line}`);
  };
  const progress = new BuildProgress({ say, plan: options.plan ?? LOCAL_RUN_BUILD_PLAN });
  const heartbeat = setInterval(() => progress.heartbeat(), options.heartbeatMs ?? 30_000);
  try {
    const dirs: string[] = [];
    for (const build of scripts) {
      dirs.push(
        await runBuildScript(build, {
          onLine: (line) => progress.line(line),
          traceGo: true,
          ...(options.env ? { env: options.env } : {}),
          errorDetail: () => progress.tail(),
        }),
      );
    }
    progress.finished();
    return dirs;
  } finally {
    clearInterval(heartbeat);
  }
}

/** "etcd, kube-apiserver, ... and kubectl": what a cold `npm start` builds, for its heading. */
export const describeLocalRunBuild = () => listWords(LOCAL_RUN_BUILD_PLAN);
