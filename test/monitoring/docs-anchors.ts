// Which runbook links resolve: a runbook_url must point at a file of this repository's docs and at
// a heading in it, by the anchor GitHub gives that heading.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPOSITORY_URL = 'https://github.com/vaultpam/vaultpam-connector-operator';
/** Where runbook links point: the docs of the main branch, as GitHub shows them. */
export const DOCS_URL_PREFIX = `${REPOSITORY_URL}/blob/main/`;

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens, repeats numbered. */
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const heading = fenced ? undefined : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const base = heading
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** Why a runbook URL does not resolve in this repository, or undefined when it does. */
export async function runbookUrlProblem(url: string): Promise<string | undefined> {
  if (!url.startsWith(DOCS_URL_PREFIX)) return `${url} does not start with ${DOCS_URL_PREFIX}`;
  const [path = '', anchor] = url.slice(DOCS_URL_PREFIX.length).split('#');
  if (!path.startsWith('docs/') || !path.endsWith('.md')) return `${url} does not point at a docs/*.md file`;
  if (!anchor) return `${url} names no section (#anchor)`;
  let markdown: string;
  try {
    markdown = await readFile(join(repoRoot, path), 'utf8');
  } catch {
    return `${url}: ${path} does not exist`;
  }
  return headingAnchors(markdown).has(anchor)
    ? undefined
    : `${url}: ${path} has no heading with anchor #${anchor}`;
}
