// The programs as the container images run them (Dockerfile): compiled to JavaScript by
// tsconfig.build.json into dist/, beside package.json, crds/ and node_modules, as in /app, and started
// with the node options of their target's ENTRYPOINT. The scale benchmark and the image test run them
// this way, so what they measure and check is what ships, not the TypeScript the tests import.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const REPO_ROOT = join(import.meta.dirname, '..');

/** The images' targets, each running one program of src/bin. */
export type ImageTarget = 'operator' | 'connector' | 'control-plane';

export interface ImageEntrypoint {
  /** node's own options, between `node` and the script. */
  nodeOptions: string[];
  /** The script, relative to the image's working directory (dist/bin/<program>.js). */
  script: string;
  /**
   * The stage's ENV and that of the stages it is built FROM, a later value winning as in docker:
   * settings of the process itself (NODE_ENV, glibc's malloc), which the scale benchmark gives the
   * operator it starts (the image test passes each program its own environment instead).
   */
  env: Record<string, string>;
}

/** One stage of the Dockerfile: the stage it is built FROM (if one of this file's) and its lines. */
interface Stage {
  base: string | undefined;
  lines: string[];
}

/** The Dockerfile's stages by name, each instruction on one line (continuations joined). */
function dockerfileStages(dockerfile: string): Map<string, Stage> {
  const stages = new Map<string, Stage>();
  let current: Stage | undefined;
  for (const raw of dockerfile.replace(/\\\n/g, ' ').split('\n')) {
    const line = raw.trim();
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i.exec(line);
    if (from) {
      current = { base: stages.has(from[1] ?? '') ? from[1] : undefined, lines: [] };
      if (from[2]) stages.set(from[2], current);
    } else current?.lines.push(line);
  }
  return stages;
}

/** `ENV KEY=VALUE ...` pairs (the form this Dockerfile uses); throws on any other form. */
function envPairs(target: string, args: string): Array<[string, string]> {
  return args
    .trim()
    .split(/\s+/)
    .map((pair) => {
      const match = /^([A-Za-z_][A-Za-z0-9_]*)=("?)([^"]*)\2$/.exec(pair);
      if (!match?.[1])
        throw new Error(`Dockerfile: stage ${target} has an ENV not of the form KEY=VALUE: ${pair}`);
      return [match[1], match[3] ?? ''];
    });
}

/**
 * The ENTRYPOINT of a Dockerfile stage, read as the exec form ["node", ...options, script], with the
 * stage's environment. Throws, naming the stage, when there is none or it is not of that form.
 */
export function imageEntrypoint(
  target: ImageTarget,
  dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8'),
): ImageEntrypoint {
  const stages = dockerfileStages(dockerfile);
  let entrypoint: string | undefined;
  for (const line of stages.get(target)?.lines ?? []) {
    const match = /^ENTRYPOINT\s+(\[.*\])$/.exec(line);
    if (match?.[1]) entrypoint = match[1];
  }
  if (!entrypoint) throw new Error(`Dockerfile: stage ${target} has no ENTRYPOINT in exec form`);
  const argv = JSON.parse(entrypoint) as string[];
  const script = argv.at(-1);
  if (argv[0] !== 'node' || !script || script.startsWith('--'))
    throw new Error(`Dockerfile: stage ${target}'s ENTRYPOINT is not ["node", ...options, script]`);
  // The chain of stages from the first base to the target, so a stage's ENV overrides its base's.
  const chain: Stage[] = [];
  for (let stage = stages.get(target); stage; stage = stage.base ? stages.get(stage.base) : undefined)
    chain.unshift(stage);
  const env: Record<string, string> = {};
  for (const stage of chain)
    for (const line of stage.lines) {
      const match = /^ENV\s+(.*)$/.exec(line);
      if (match?.[1]) for (const [key, value] of envPairs(target, match[1])) env[key] = value;
    }
  return { nodeOptions: argv.slice(1, -1), script, env };
}

/**
 * Compiles src/ into `<dir>/dist` with tsconfig.build.json. Unless `dir` is the repository itself,
 * links package.json (the package type and the version the programs report), crds/ (read by the
 * operator) and node_modules beside it, so `<dir>` is laid out as the image's /app. Returns `dir`.
 */
export async function buildImageLayout(dir: string = REPO_ROOT): Promise<string> {
  const outDir = join(dir, 'dist');
  // A file left from a source since deleted must not ship: the output starts empty.
  await rm(outDir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const tsc = join(REPO_ROOT, 'node_modules', '.bin', 'tsc');
  await promisify(execFile)(tsc, ['-p', join(REPO_ROOT, 'tsconfig.build.json'), '--outDir', outDir], {
    cwd: REPO_ROOT,
  }).catch((error: { stdout?: string; message: string }) => {
    throw new Error(`tsc -p tsconfig.build.json failed: ${error.stdout || error.message}`);
  });
  if (dir !== REPO_ROOT)
    for (const entry of ['package.json', 'crds', 'node_modules'])
      await symlink(join(REPO_ROOT, entry), join(dir, entry));
  return dir;
}

let repositoryLayout: Promise<string> | undefined;

/**
 * node's arguments to run `target` as its image does: the ENTRYPOINT's node options, then `nodeArgs`,
 * then the compiled script (an absolute path). The repository's dist/ is built on the first call of
 * a process, so every program a benchmark starts runs the code of this checkout.
 */
export async function imageCommand(target: ImageTarget, nodeArgs: string[] = []): Promise<string[]> {
  repositoryLayout ??= buildImageLayout();
  const root = await repositoryLayout;
  const { nodeOptions, script } = imageEntrypoint(target);
  return [...nodeOptions, ...nodeArgs, join(root, script)];
}
