// docs/connector-agent.md, "The troubleshooting guide, check by check", is what people read when a
// connector fails: every row must name a test file that exists and a log fragment the agent or the
// control plane really writes, so the table cannot drift from the code.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';

const SECTION = '## The troubleshooting guide, check by check';

async function sourceText(): Promise<string> {
  const texts: string[] = [];
  for (const dir of ['src/agent', 'src/controlplane', 'src/controlplane/http']) {
    for (const file of await readdir(dir)) {
      if (file.endsWith('.ts')) texts.push(await readFile(join(dir, file), 'utf8'));
    }
  }
  // A message split over lines ('a ' +\n 'b') reads as one string.
  return texts.join('\n').replace(/(['`])\s*\+\s*\n\s*(['`])/g, '');
}

interface Row {
  check: string;
  fragment: string;
  tests: string[];
}

async function guideRows(): Promise<Row[]> {
  const doc = await readFile('docs/connector-agent.md', 'utf8');
  const start = doc.indexOf(SECTION);
  const end = doc.indexOf('\n## ', start + SECTION.length);
  const lines = doc.slice(start, end).split('\n');
  return lines
    .filter((line) => line.startsWith('| ') && !line.startsWith('| guide') && !line.startsWith('| ---'))
    .map((line) => {
      const cells = line.slice(2, -2).split(' | ');
      return {
        check: cells[0] ?? '',
        fragment: /`([^`]+)`/.exec(cells[2] ?? '')?.[1] ?? '',
        tests: [...(cells[4] ?? '').matchAll(/`([^`]+\.test\.ts)`/g)].map((m) => m[1] as string),
      };
    });
}

/** The first fixed piece of a fragment: text between placeholders (`<...>`, `...`, `(...)`). */
function fixedPiece(fragment: string): string {
  const pieces = fragment.split(/<[^>]*>|\.\.\.|\(.*$/).map((piece) => piece.replace(/^[:\s]+|[:\s]+$/g, ''));
  return pieces.find((piece) => piece.length >= 8) ?? '';
}

test('every row of the guide table names a real test file and a log fragment the code writes', async (t) => {
  const rows = await guideRows();
  t.true(rows.length >= 25, `the table has ${rows.length} rows`);
  const source = await sourceText();
  for (const row of rows) {
    t.not(row.tests.length, 0, `${row.check}: names no test`);
    for (const name of row.tests) {
      const path = name.startsWith('test/') ? name : join('test/agent', name);
      await t.notThrowsAsync(readFile(path), `${row.check}: ${path} does not exist`);
    }
    const head = fixedPiece(row.fragment);
    t.true(head.length >= 8, `${row.check}: the fragment "${row.fragment}" has no fixed text`);
    t.true(source.includes(head), `${row.check}: no message in src/agent or src/controlplane has "${head}"`);
  }
});

test('the guide table covers each check of the troubleshooting guide', async (t) => {
  const checks = (await guideRows()).map((row) => row.check.toLowerCase());
  for (const check of [
    'connection refused',
    'connection timeout',
    'tls handshake failed',
    'certificate expired',
    'certificate chain incomplete',
    'wrong key for certificate',
    'certificate san mismatch',
    'permission denied',
    'file not found',
    'client certificate required',
    'client certificate rejected',
    'server certificate rejected',
    'rotation not happening',
    'connection drops during rotation',
    'access point logs',
    'system time',
  ]) {
    t.true(
      checks.some((c) => c.includes(check)),
      `no row for the guide's "${check}"`,
    );
  }
});
