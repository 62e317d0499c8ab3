// The layering table in docs/architecture.md ("Modules and the imports they may make") is enforced
// by biome.json. This runs the real biome on probe files, one per pair of folders, so the lint rule
// enforces exactly the documented table: every allowed import passes, every other one fails.
import { execFile } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;
const biome = join(root, 'node_modules/.bin/biome');

/** The documented table: folder -> the folders it may import ('anything' for the entry points). */
function documentedTable(): Map<string, string[] | 'anything'> {
  const doc = readFileSync(join(root, 'docs/architecture.md'), 'utf8');
  const section = doc.split('## Modules and the imports they may make')[1]?.split('\n## ')[0] ?? '';
  const table = new Map<string, string[] | 'anything'>();
  for (const [, folder, allowed] of section.matchAll(/^\| `((?:src|dev)\/[a-z-]+)` \| (.+) \|$/gm)) {
    if (!folder || !allowed) continue;
    table.set(
      folder,
      allowed.startsWith('anything')
        ? 'anything'
        : [...allowed.matchAll(/`((?:src|dev)\/[a-z-]+)`/g)].map((m) => m[1] ?? ''),
    );
  }
  return table;
}

/** The path of an import of `to` as written in a file one level inside `from`. */
function specifier(from: string, to: string): string {
  const depth = from.split('/').length;
  return `${'../'.repeat(depth)}${to}/probe-target.ts`;
}

test('the documented table names every folder of src/ and dev/', (t) => {
  const table = documentedTable();
  const folders = ['src', 'dev'].flatMap((top) =>
    readdirSync(join(root, top), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => `${top}/${entry.name}`),
  );
  t.deepEqual([...table.keys()].sort(), folders.sort());
});

test('biome allows exactly the imports the table allows, between every pair of folders', async (t) => {
  const table = documentedTable();
  const folders = [...table.keys()];
  const work = mkdtempSync(join(tmpdir(), 'layering-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  copyFileSync(join(root, 'biome.json'), join(work, 'biome.json'));
  const expected = new Map<string, boolean>();
  for (const from of folders) {
    for (const to of folders) {
      if (from === to) continue;
      const file = join(from, 'nested', `probe-${to.replace('/', '-')}.ts`);
      mkdirSync(join(work, from, 'nested'), { recursive: true });
      writeFileSync(
        join(work, file),
        `import { x } from '${specifier(`${from}/nested`, to)}';\nexport const y = x;\n`,
      );
      const allowed = table.get(from);
      expected.set(file, allowed === 'anything' || (allowed ?? []).includes(to));
    }
  }
  await run('git', ['init', '-q'], { cwd: work });
  const refused = new Set<string>();
  try {
    await run(biome, ['lint', '--max-diagnostics=none', '.'], { cwd: work });
  } catch (error) {
    const output = `${(error as { stdout?: string }).stdout ?? ''}${(error as { stderr?: string }).stderr ?? ''}`;
    for (const [, file] of output.matchAll(
      /^((?:src|dev)\/\S+\.ts):\d+:\d+ lint\/style\/noRestrictedImports/gm,
    )) {
      if (file) refused.add(file);
    }
  }
  const wrong = [...expected].filter(([file, allowed]) => allowed === refused.has(file));
  t.deepEqual(wrong, [], 'files whose import biome judged against the table (file, allowed by the table)');
  t.true(refused.size > 10, 'the probe imports were linted');
});
