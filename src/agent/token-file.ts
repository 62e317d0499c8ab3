// The enrollment token file: read only to pair (or to fingerprint it, never to log it), otherwise
// only looked at (is one mounted?) without reading it.
import { readFile, stat } from 'node:fs/promises';
import { CodedError, errorMessage } from '../lib/errors.ts';

/** Reads the enrollment token; absent or empty file means no token. Never logs or echoes it. */
export async function readTokenFile(tokenFile: string | undefined): Promise<string | undefined> {
  if (!tokenFile) return undefined;
  let text: string;
  try {
    text = await readFile(tokenFile, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new CodedError(
      'ENROLLMENT_TOKEN_UNREADABLE',
      `cannot read the token file ${tokenFile}: ${code === 'EACCES' ? 'permission denied' : (code ?? errorMessage(error))}`,
    );
  }
  const token = text.trim();
  return token.length > 0 ? token : undefined;
}

/**
 * True when a non-empty token file exists; only its size is looked at, never its content. Asked
 * only for a note by an agent that has its identity and needs no token: a path that cannot be
 * looked at (a symlink loop, a directory in its way, no permission) is no token mounted, never a
 * reason to stop a paired connector.
 */
export async function tokenFilePresent(tokenFile: string | undefined): Promise<boolean> {
  if (!tokenFile) return false;
  try {
    return (await stat(tokenFile)).size > 0;
  } catch {
    return false;
  }
}
