// The operator's process does not load @kubernetes/client-node: its generated API surface was most of
// the operator's memory (docs/performance.md, "Third increment"). Type-only imports vanish when
// Node strips the types; this checks what a real process loads, through a module loading hook that
// sees every module, ESM and CommonJS, before it runs. A kubeconfig that needs client-node (an exec
// plugin, ...) loads it on purpose: test/cluster/kube-client.test.ts covers that path.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { repoRoot } from '../../dev/local-cluster/install.ts';

const HOOK = `
import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
const loaded = new Set();
registerHooks({
  load(url, context, next) {
    loaded.add(url);
    return next(url, context);
  },
});
process.on('exit', () => writeFileSync(process.env.MODULE_LIST, JSON.stringify([...loaded])));
`;

/** The URLs of every module a node process loads with these arguments (run in the repository). */
async function modulesLoaded(t: ExecutionContext, args: string[]): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'module-graph-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const hook = join(dir, 'hook.mjs');
  const list = join(dir, 'modules.json');
  await writeFile(hook, HOOK);
  const run = spawnSync(process.execPath, ['--import', pathToFileURL(hook).href, ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', MODULE_LIST: list, KUBECONFIG: '/nonexistent' },
    timeout: 60_000,
  });
  t.is(run.status, 0, run.stderr);
  return JSON.parse(await readFile(list, 'utf8')) as string[];
}

const fromClientNode = (urls: string[]) =>
  urls.filter((url) => url.includes('/node_modules/@kubernetes/client-node/'));

test('the operator program (src/bin/operator.ts) loads no module of @kubernetes/client-node', async (t) => {
  const loaded = await modulesLoaded(t, [join(repoRoot, 'src/bin/operator.ts'), '--help']);
  t.true(
    loaded.some((url) => url.endsWith('/src/operator/runtime/kube-client.ts')),
    'the hook saw the operator and its client',
  );
  t.true(
    loaded.some((url) => url.includes('/node_modules/pino/')),
    'and its dependencies',
  );
  t.deepEqual(fromClientNode(loaded), []);
});

test('importing src/operator/operator.ts loads no module of @kubernetes/client-node', async (t) => {
  const entry = pathToFileURL(join(repoRoot, 'src/operator/operator.ts')).href;
  const loaded = await modulesLoaded(t, [
    '--input-type=module',
    '-e',
    `await import(${JSON.stringify(entry)});`,
  ]);
  t.true(loaded.includes(entry));
  t.deepEqual(fromClientNode(loaded), []);
});

test('the check sees client-node when it is loaded', async (t) => {
  const loaded = await modulesLoaded(t, [
    '--input-type=module',
    '-e',
    "await import('@kubernetes/client-node');",
  ]);
  t.true(fromClientNode(loaded).length > 100, 'its generated API alone is hundreds of modules');
});
