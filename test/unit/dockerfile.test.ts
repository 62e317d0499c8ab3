// There is no container engine on the build machines, so the Dockerfile cannot be built in the test
// suite. These tests read it instead and hold it to the facts that matter for running it: pinned base
// images that match the project's Node, production-only dependencies, the programs compiled from the
// whole of src/, one target per program with the right entry point, a non-root user in every target, OCI labels, and a build context that ships
// only what the images need.
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, posix, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { imageEntrypoint } from '../../tools/image-layout.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  name: string | undefined;
  /** The FROM argument with build arguments resolved: an image or an earlier stage's name. */
  from: string;
  instructions: Instruction[];
}

/** Splits a Dockerfile into instructions: joins `\` continuations, drops comments and blank lines. */
function parseInstructions(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) return;
    if (pending === '') startLine = index + 1;
    if (line.startsWith('#')) return;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const [keyword = '', ...rest] = full.split(/\s+/);
    instructions.push({ keyword: keyword.toUpperCase(), args: rest.join(' '), line: startLine });
  });
  return instructions;
}

/** ARG defaults declared before the first FROM are the only ones FROM lines may use. */
function substitute(value: string, args: Map<string, string>): string {
  return value.replace(
    /\$\{(\w+)\}|\$(\w+)/g,
    (_whole, braced: string | undefined, bare: string | undefined) => {
      const name = braced ?? bare ?? '';
      const resolved = args.get(name);
      if (resolved === undefined)
        throw new Error(`Dockerfile: FROM uses \${${name}} but no global ARG sets it`);
      return resolved;
    },
  );
}

function parseStages(text: string): Stage[] {
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const instruction of parseInstructions(text)) {
    const current = stages.at(-1);
    if (instruction.keyword === 'FROM') {
      const match = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      if (!match?.[1])
        throw new Error(`Dockerfile line ${instruction.line}: cannot read FROM ${instruction.args}`);
      stages.push({ from: substitute(match[1], globalArgs), name: match[2], instructions: [] });
    } else if (current) {
      current.instructions.push(instruction);
    } else if (instruction.keyword === 'ARG') {
      const [name = '', value = ''] = instruction.args.split('=');
      globalArgs.set(name, value);
    }
  }
  return stages;
}

/** Follows FROM <stage> links so a target sees what it inherits (USER, ENTRYPOINT, LABEL, ENV). */
function lineage(stages: Stage[], stage: Stage): Stage[] {
  const chain = [stage];
  let parent = stages.find((s) => s.name === stage.from);
  while (parent) {
    chain.unshift(parent);
    const from: string = parent.from;
    parent = stages.find((s) => s.name === from);
  }
  return chain;
}

function lastValue(chain: Stage[], keyword: string): string | undefined {
  return chain
    .flatMap((s) => s.instructions)
    .filter((i) => i.keyword === keyword)
    .at(-1)?.args;
}

function labelsOf(chain: Stage[]): Map<string, string> {
  const labels = new Map<string, string>();
  for (const instruction of chain.flatMap((s) => s.instructions)) {
    if (instruction.keyword !== 'LABEL') continue;
    for (const match of instruction.args.matchAll(/([\w.-]+)="([^"]*)"/g))
      labels.set(match[1] ?? '', match[2] ?? '');
  }
  return labels;
}

const dockerfile = await readFile(join(repoRoot, 'Dockerfile'), 'utf8');
const stages = parseStages(dockerfile);
const packageJson = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as {
  bin: Record<string, string>;
};
const lock = JSON.parse(await readFile(join(repoRoot, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { version?: string }>;
};
const TARGETS = {
  operator: 'vaultpam-operator',
  connector: 'vaultpam-connector',
  'control-plane': 'vaultpam-control-plane',
} as const;

function target(t: { fail: (message: string) => void }, name: string): Stage[] {
  const stage = stages.find((s) => s.name === name);
  if (!stage) {
    t.fail(`Dockerfile has no stage named ${name} (docker build --target ${name})`);
    return [];
  }
  return lineage(stages, stage);
}

test('every base image is pinned to the Node version the project locks, never a floating tag', (t) => {
  const nodeVersion = lock.packages['node_modules/node']?.version;
  t.truthy(nodeVersion, 'package-lock.json locks the node devDependency');
  const images = stages.map((s) => s.from).filter((from) => !stages.some((s) => s.name === from));
  t.true(images.length > 0, 'the Dockerfile starts from at least one image');
  for (const image of images) {
    const [reference = '', digest] = image.split('@');
    const tag = /:([^/:]+)$/.exec(reference)?.[1];
    t.truthy(tag, `${image} has an explicit tag`);
    t.not(tag, 'latest', `${image} does not use the latest tag`);
    t.true(reference.startsWith('node:'), `${image} is the official Node image`);
    t.true(
      tag?.startsWith(`${nodeVersion}-`),
      `${image} is Node ${nodeVersion}, the version package-lock.json pins for development and CI`,
    );
    if (digest !== undefined) t.regex(digest, /^sha256:[0-9a-f]{64}$/, `${image} has a well-formed digest`);
  }
});

test('dependencies are installed from the lock file without devDependencies or install scripts', (t) => {
  const copied = target(t, 'runtime')
    .flatMap((s) => s.instructions)
    .find((i) => i.keyword === 'COPY' && /\bnode_modules\b/.test(i.args));
  const from = /^--from=(\S+)/.exec(copied?.args ?? '')?.[1];
  t.truthy(from, 'the images take node_modules from an install stage');
  const install = stages
    .find((s) => s.name === from)
    ?.instructions.find((i) => i.keyword === 'RUN' && /\bnpm\b/.test(i.args));
  t.truthy(install, 'a RUN installs the npm dependencies');
  t.regex(install?.args ?? '', /\bnpm ci\b/, 'npm ci installs exactly what package-lock.json says');
  t.regex(
    install?.args ?? '',
    /--omit=dev\b/,
    'devDependencies (compilers, test runner, Node itself) stay out',
  );
  t.regex(install?.args ?? '', /--ignore-scripts\b/, 'no dependency install script runs in the build');
});

for (const [name, bin] of Object.entries(TARGETS)) {
  test(`target ${name} runs ${bin} as a non-root user`, (t) => {
    const chain = target(t, name);
    if (chain.length === 0) return;
    const entrypoint = lastValue(chain, 'ENTRYPOINT');
    t.truthy(entrypoint, `target ${name} has an ENTRYPOINT`);
    const argv = JSON.parse(entrypoint ?? '[]') as string[];
    const source = packageJson.bin[bin]?.replace(/^\.\//, '');
    t.truthy(source, `package.json names a script for ${bin}`);
    // The image runs that script as compiled by tsconfig.build.json (src/ -> dist/, .ts -> .js).
    const script = source?.replace(/^src\//, 'dist/').replace(/\.ts$/, '.js');
    // node's own options (those starting with --) may come between node and the script.
    t.deepEqual(
      argv.filter((arg) => !arg.startsWith('--')),
      ['node', script],
      `target ${name} execs node on ${script} (exec form, so signals reach Node)`,
    );
    t.is(argv.at(-1), script, "the script is the last argument: every option before it is node's");

    const user = lastValue(chain, 'USER');
    t.truthy(user, `target ${name} sets USER`);
    const [uid = '', gid = ''] = (user ?? '').split(':');
    t.regex(uid, /^\d+$/, 'USER is numeric, so runAsNonRoot can verify it without a passwd lookup');
    t.not(uid, '0', `target ${name} does not run as root`);
    t.is(uid, '65532', `target ${name} runs as uid 65532, like the manifests' runAsUser`);
    t.not(gid, '0', `target ${name} does not run with group root`);

    const labels = labelsOf(chain);
    for (const key of ['title', 'description', 'source', 'licenses', 'version', 'revision']) {
      t.truthy(
        labels.get(`org.opencontainers.image.${key}`),
        `target ${name} has label org.opencontainers.image.${key}`,
      );
    }
    t.is(
      labels.get('org.opencontainers.image.title'),
      name === 'operator' ? 'vaultpam-connector-operator' : bin,
    );
  });
}

test('the operator is the default target (last stage) and copies what the programs read at run time', (t) => {
  t.is(stages.at(-1)?.name, 'operator', 'a plain `docker build .` builds the operator');
  const runtime = target(t, 'operator');
  const copied = runtime
    .flatMap((s) => s.instructions)
    .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from='))
    .map((i) => i.args.split(/\s+/)[0] ?? '');
  for (const path of ['package.json', 'crds']) {
    t.true(copied.includes(path), `the image copies ${path}`);
    t.true(existsSync(join(repoRoot, path)), `${path} exists in the repository`);
  }
  const fromBuild = runtime
    .flatMap((s) => s.instructions)
    .find((i) => i.keyword === 'COPY' && i.args.startsWith('--from=build'));
  t.is(fromBuild?.args, '--from=build /app/dist ./dist', 'the compiled programs come from the build stage');
  const fromDependencies = runtime
    .flatMap((s) => s.instructions)
    .find((i) => i.keyword === 'COPY' && i.args.startsWith('--from=dependencies'));
  t.regex(fromDependencies?.args ?? '', /node_modules/, 'node_modules comes from the dependency stage');
});

test("the operator's node runs with a bounded young generation and few malloc arenas, and the scale benchmark runs it so too", (t) => {
  const entrypoint = JSON.parse(lastValue(target(t, 'operator'), 'ENTRYPOINT') ?? '[]') as string[];
  t.is(entrypoint[0], 'node');
  const options = entrypoint.slice(1, -1);
  t.true(
    options.some((o) => /^--max-semi-space-size=\d+$/.test(o)),
    `a semi-space bound in ${entrypoint.join(' ')}`,
  );
  const env = Object.fromEntries(
    target(t, 'operator')
      .flatMap((s) => s.instructions)
      .filter((i) => i.keyword === 'ENV')
      .flatMap((i) => i.args.split(/\s+/).map((pair) => pair.split('=', 2) as [string, string])),
  );
  t.is(env.MALLOC_ARENA_MAX, '2', "glibc's malloc keeps at most two arenas");
  t.deepEqual(
    imageEntrypoint('operator', dockerfile),
    { nodeOptions: options, script: entrypoint.at(-1), env },
    'tools/image-layout.ts (which the scale benchmark starts the operator with) reads the same command and environment',
  );
});

test('the build stage compiles the whole of src/ into dist/, keeping its layout, with the checked settings', async (t) => {
  const build = target(t, 'build');
  const runs = build.flatMap((s) => s.instructions);
  t.true(
    runs.some((i) => i.keyword === 'COPY' && i.args === 'src ./src'),
    'the build stage copies src/ whole',
  );
  t.true(
    runs.some((i) => i.keyword === 'RUN' && /\btsc -p tsconfig\.build\.json$/.test(i.args)),
    'the build stage runs tsc with tsconfig.build.json',
  );
  const config = JSON.parse(await readFile(join(repoRoot, 'tsconfig.build.json'), 'utf8')) as {
    extends: string;
    compilerOptions: Record<string, unknown>;
    include: string[];
  };
  // The same strict settings the sources are checked with, so the image is built from code that
  // passed `npm run typecheck`.
  t.is(config.extends, './tsconfig.json');
  t.deepEqual(config.include, ['src/**/*.ts']);
  // dist/ mirrors src/ at the same depth, so paths relative to a module (the operator's
  // `../../../crds`, the agent's `../../package.json`) resolve the same compiled or not.
  t.like(config.compilerOptions, { noEmit: false, rootDir: 'src', outDir: 'dist' });
  t.is(config.compilerOptions.rewriteRelativeImportExtensions, true, "imports of './x.ts' become './x.js'");
});

test('the connector image keeps its identity in a /data volume owned by its user', (t) => {
  const chain = target(t, 'connector');
  if (chain.length === 0) return;
  const own = chain.at(-1)?.instructions ?? [];
  t.true(
    own.some((i) => i.keyword === 'VOLUME' && JSON.parse(i.args).includes('/data')),
    'VOLUME /data',
  );
  t.true(own.some((i) => i.keyword === 'ENV' && /\bPAM_AGENT_DATA_DIR=\/data\b/.test(i.args)));
  t.true(own.some((i) => i.keyword === 'RUN' && /chown 65532:65532 \/data/.test(i.args)));
});

test('.dockerignore sends only the sources, their compiler settings, the CRDs and the package manifests', async (t) => {
  const lines = (await readFile(join(repoRoot, '.dockerignore'), 'utf8'))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  t.is(lines[0], '*', 'an allow-list: everything is excluded first');
  const allowed = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
  t.deepEqual(allowed.sort(), [
    'crds',
    'package-lock.json',
    'package.json',
    'src',
    'tsconfig.build.json',
    'tsconfig.json',
  ]);
  const copiedFromContext = stages
    .flatMap((s) => s.instructions)
    .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from='))
    .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
  for (const path of copiedFromContext) {
    t.true(allowed.includes(path), `${path} is copied, so .dockerignore must let it through`);
  }
});

/** Every .ts file under src/, the whole of what the images ship of the code. */
async function shippedSources(): Promise<string[]> {
  return (await readdir(join(repoRoot, 'src'), { recursive: true }))
    .map((p) => `src/${p.split(sep).join('/')}`)
    .filter((p) => p.endsWith('.ts'));
}

test('the images ship src/ whole, and nothing in src/ imports a file outside it', async (t) => {
  const ignored = (await readFile(join(repoRoot, '.dockerignore'), 'utf8'))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('!') && l !== '*');
  t.deepEqual(ignored, [], 'no exceptions inside the allowed folders: the layout says what ships');
  const shipped = await shippedSources();
  t.true(shipped.includes('src/bin/connector.ts'), 'the agent entry point is shipped');
  const broken: string[] = [];
  for (const file of shipped) {
    const source = await readFile(join(repoRoot, file), 'utf8');
    for (const match of source.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = posix.normalize(posix.join(posix.dirname(file), match[1] ?? ''));
      // package.json is shipped beside src/ (the version the programs report comes from it).
      const shippedTarget = target.startsWith('src/') || target === 'package.json';
      if (!shippedTarget || !existsSync(join(repoRoot, target))) broken.push(`${file} imports ${target}`);
    }
  }
  t.deepEqual(broken, [], 'every relative import of a shipped file is shipped too');
});

test('the production dependencies are exactly the packages the programs in src/ load', async (t) => {
  const manifest = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  const loaded = new Set<string>();
  for (const file of await shippedSources()) {
    const source = await readFile(join(repoRoot, file), 'utf8');
    for (const match of source.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+'([^.'][^']*)'/gm)) {
      const specifier = match[1] ?? '';
      if (specifier.startsWith('node:')) continue;
      const parts = specifier.split('/');
      loaded.add(specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? ''));
    }
  }
  t.deepEqual([...loaded].sort(), Object.keys(manifest.dependencies).sort());
});

test("a stage's environment is its ENV and its bases', a later value winning, continuations joined", (t) => {
  const dockerfile = [
    'FROM node:26 AS runtime',
    'ENV NODE_ENV=production \\',
    '    SHARED=base',
    'FROM runtime AS operator',
    'ENV SHARED=operator MALLOC_ARENA_MAX="2"',
    'ENTRYPOINT ["node", "--max-semi-space-size=4", "dist/bin/operator.js"]',
    'FROM node:26 AS connector',
    'ENV ONLY_CONNECTOR=1',
    'ENTRYPOINT ["node", "dist/bin/connector.js"]',
  ].join('\n');
  t.deepEqual(imageEntrypoint('operator', dockerfile), {
    nodeOptions: ['--max-semi-space-size=4'],
    script: 'dist/bin/operator.js',
    env: { NODE_ENV: 'production', SHARED: 'operator', MALLOC_ARENA_MAX: '2' },
  });
  t.deepEqual(
    imageEntrypoint('connector', dockerfile).env,
    { ONLY_CONNECTOR: '1' },
    'an image base is not a stage',
  );
  const legacyForm = dockerfile.replace('ENV ONLY_CONNECTOR=1', 'ENV ONLY_CONNECTOR 1');
  t.throws(() => imageEntrypoint('connector', legacyForm), {
    message: /stage connector has an ENV not of the form KEY=VALUE: ONLY_CONNECTOR/,
  });
});
