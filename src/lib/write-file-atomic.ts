// The one way a file is replaced: write a temporary file next to it, fsync it, set its mode, rename it
// over the file, fsync the directory. A reader (or a process started after a crash or a power loss)
// sees the old content or the new, never a mix, and a mode that is exactly `mode` whatever the umask.
// Used for the agent's identity, the control plane's CA, token key and admin credential files.
import { randomBytes } from 'node:crypto';
import { chmod, open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

/** What a temporary file's name has after the name of the file it replaces. */
export const TEMP_MARKER = '.tmp-';

/** The temporary file a write of `path` goes through; a crash can leave it behind. */
export function temporaryPathFor(path: string): string {
  return `${path}${TEMP_MARKER}${process.pid}-${randomBytes(4).toString('hex')}`;
}

const TEMPORARY_SUFFIX = new RegExp(`${TEMP_MARKER.replaceAll('.', '\\.')}\\d+-[0-9a-f]{8}$`);

/**
 * The file a temporary file of temporaryPathFor() stands for (what a failed write is reported as
 * writing); any other path as it is.
 */
export function fileReplacedBy(path: string): string {
  return path.replace(TEMPORARY_SUFFIX, '');
}

export interface WriteFileAtomicOptions {
  /** Permission bits of the file, e.g. 0o600 for a private key. */
  mode: number;
}

/** Writes `data` to `path` so that readers see the old content or the new, never a mix. */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  { mode }: WriteFileAtomicOptions,
): Promise<void> {
  const temporary = temporaryPathFor(path);
  const handle = await open(temporary, 'wx', mode);
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    // open() honours the umask; a key file must be exactly 0600 whatever the umask is.
    await chmod(temporary, mode);
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => {});
    throw error;
  }
  await syncDirectory(dirname(path));
}

/** Makes the directory's entries (a rename, a new or removed file) durable. */
export async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
