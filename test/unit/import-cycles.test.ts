// Nothing in src/ loads itself round a cycle: in a cycle, which module's bindings exist when another
// runs depends on which was loaded first, so a refactor that changes an entry point can break a
// module it never touched. The planner's gates and recovery were the last such pair (the gates ask
// whether a recovery is under way, recovery-stages.ts, not the recovery machine). Type-only imports
// are erased before anything runs, so they are no cycle. The check is biome's own rule
// (suspicious/noImportCycles, with its default of ignoring `import type`), run by the real biome.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;
const biome = join(root, 'node_modules/.bin/biome');

/** The imports biome finds part of a cycle under `dir`, as `path:line`. */
async function cyclicImports(cwd: string, dir: string): Promise<string[]> {
  const { stdout } = await run(
    biome,
    ['lint', '--only=suspicious/noImportCycles', '--reporter=json', '--max-diagnostics=none', dir],
    { cwd, maxBuffer: 16 * 1024 * 1024 },
  );
  const report = JSON.parse(stdout) as {
    diagnostics: { category: string; location: { path: string; start: { line: number } } }[];
  };
  return report.diagnostics
    .filter((d) => d.category === 'lint/suspicious/noImportCycles')
    .map((d) => `${d.location.path}:${d.location.start.line}`)
    .sort();
}

test('the check finds a cycle, and not one that only types close', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'import-cycles-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  copyFileSync(join(root, 'biome.json'), join(work, 'biome.json'));
  writeFileSync(
    join(work, 'gates.ts'),
    "import { underway } from './recovery.ts';\nexport const held = underway;\n",
  );
  writeFileSync(
    join(work, 'recovery.ts'),
    "import { held } from './gates.ts';\nexport const underway = true;\nexport const phase = () => held;\n",
  );
  writeFileSync(
    join(work, 'types.ts'),
    "import type { Phase } from './phase.ts';\nexport interface Decision { phase: Phase }\n",
  );
  writeFileSync(
    join(work, 'phase.ts'),
    "import type { Decision } from './types.ts';\nexport type Phase = string;\nexport const none = (d: Decision) => d.phase;\n",
  );
  await run('git', ['init', '-q'], { cwd: work });
  t.deepEqual(await cyclicImports(work, '.'), ['gates.ts:1', 'recovery.ts:1']);
});

test('nothing in src/ imports itself back through other modules', async (t) => {
  t.deepEqual(await cyclicImports(root, 'src'), []);
});
