// docs/gitops.md, read by the tests that keep it true: its table of what Argo CD and kstatus (Flux)
// show in each situation, each row naming the health-check test case it describes.
import { readFile } from 'node:fs/promises';

export function gitopsDoc(): Promise<string> {
  return readFile(new URL('../../docs/gitops.md', import.meta.url), 'utf8');
}

export interface DocRow {
  phase: string;
  argocd: string;
  kstatus: string;
  testCase: string;
}

/**
 * The rows of the table under "## What each tool shows": | situation | phase | Argo CD | kstatus
 * (Flux) | test case |, with backticks removed.
 */
export function docTable(doc: string): DocRow[] {
  const start = doc.indexOf('## What each tool shows');
  if (start < 0) return [];
  const end = doc.indexOf('\n## ', start + 1);
  const section = doc.slice(start, end < 0 ? undefined : end);
  const rows: DocRow[] = [];
  for (const line of section.split('\n')) {
    if (!line.startsWith('|')) continue;
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim().replaceAll('`', ''));
    if (cells.length < 5 || cells[0] === 'situation' || /^-+$/.test(cells[0] ?? '')) continue;
    rows.push({
      phase: cells[1] ?? '',
      argocd: cells[2] ?? '',
      kstatus: cells[3] ?? '',
      testCase: cells[4] ?? '',
    });
  }
  return rows;
}
