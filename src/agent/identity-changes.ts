// Noticing changes made to the identity files by others while the agent runs: a cheap look (four
// stats) before each use of the identity, compared with the look taken when the agent last loaded
// or wrote them. Only a change makes the agent verify the bundle again.
import { stat } from 'node:fs/promises';
import { fsErrorCode } from '../lib/errors.ts';
import { identityPaths } from './identity-files.ts';

/** What identifies each identity file's current version: device, inode, size, times and mode. */
export type IdentityFileStamps = Record<'key' | 'cert' | 'ca' | 'metadata', string>;

async function stampOf(path: string): Promise<string> {
  try {
    const s = await stat(path);
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}:${s.mode}`;
  } catch (error) {
    return `error:${fsErrorCode(error)}`;
  }
}

/** A cheap look (four stats) at the identity files, to compare with the one taken when they were used. */
export async function stampIdentityFiles(dataDir: string): Promise<IdentityFileStamps> {
  const paths = identityPaths(dataDir);
  return {
    key: await stampOf(paths.key),
    cert: await stampOf(paths.cert),
    ca: await stampOf(paths.ca),
    metadata: await stampOf(paths.metadata),
  };
}

/** The paths whose stamp differs. */
export function changedIdentityFiles(
  dataDir: string,
  before: IdentityFileStamps,
  after: IdentityFileStamps,
): string[] {
  const paths = identityPaths(dataDir);
  return (['key', 'cert', 'ca', 'metadata'] as const)
    .filter((file) => before[file] !== after[file])
    .map((file) => paths[file]);
}
