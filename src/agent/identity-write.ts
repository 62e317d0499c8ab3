// Writing the identity bundle. Every file is replaced atomically (src/lib/write-file-atomic.ts:
// temporary file, fsync, rename, fsync of the directory), so a crash leaves either the old or the
// new file, never half of one, and in an order that lets loading vouch for what a crash left.
import { mkdir, open, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fsErrorCode } from '../lib/errors.ts';
import { TEMP_MARKER, temporaryPathFor, writeFileAtomic } from '../lib/write-file-atomic.ts';
import {
  DIRECTORY_MODE,
  type IdentityMetadata,
  type IdentityPaths,
  identityPaths,
  KEY_FILE_MODE,
  PUBLIC_FILE_MODE,
} from './identity-files.ts';

/** Like writeFileAtomic, but leaves the file (its inode, its times) alone when it already holds `data`. */
async function writeFileIfChanged(path: string, data: string, mode: number): Promise<void> {
  const current = await readFile(path, 'utf8').catch(() => undefined);
  if (current !== data) await writeFileAtomic(path, data, { mode });
}

export interface WriteProblem {
  /** The file that could not be created or written. */
  path: string;
  /** The errno code (EACCES, EROFS, ENOSPC, EPERM, ...). */
  code: string;
}

/**
 * Whether the identity directory takes a write of `bytes` bytes right now: a temporary file named
 * the way writeFileAtomic names them is created, written, fsynced and removed. Asked before a
 * renewal, because the control plane accepts only the newest certificate: one it issues that cannot
 * be saved is lost with the process, and the identity with it.
 */
export async function identityDirectoryWriteProblem(
  dataDir: string,
  bytes: number,
): Promise<WriteProblem | undefined> {
  const temporary = temporaryPathFor(identityPaths(dataDir).cert);
  try {
    const handle = await open(temporary, 'wx', 0o600);
    try {
      await handle.writeFile(Buffer.alloc(bytes, 0x20));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await unlink(temporary);
    return undefined;
  } catch (error) {
    await unlink(temporary).catch(() => {});
    return { path: temporary, code: fsErrorCode(error) };
  }
}

/** Removes temporary files a crash left behind between write and rename. Returns their names. */
export async function removeStrayTempFiles(dataDir: string): Promise<string[]> {
  const { dir } = identityPaths(dataDir);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const strays = entries.filter((name) => name.includes(TEMP_MARKER));
  for (const name of strays) await unlink(join(dir, name));
  return strays;
}

async function ensureIdentityDirectory(dataDir: string): Promise<IdentityPaths> {
  const paths = identityPaths(dataDir);
  await mkdir(paths.dir, { recursive: true, mode: DIRECTORY_MODE });
  return paths;
}

/** Persists a freshly generated key before it is used in an enrollment request. */
export async function savePendingKey(dataDir: string, keyPem: string): Promise<void> {
  const paths = await ensureIdentityDirectory(dataDir);
  await writeFileAtomic(paths.key, keyPem, { mode: KEY_FILE_MODE });
}

export interface IdentityToSave {
  keyPem: string;
  certPem: string;
  /** undefined leaves ca.pem as it is (only an identity loaded without ca.pem lacks it). */
  caPem: string | undefined;
  metadata: IdentityMetadata;
}

/**
 * Persists an enrolled identity, in the order key, ca.pem, cert.pem, identity.json: a certificate on
 * disk implies its key and CA were written before it, and a crash before identity.json leaves a key
 * and certificate that loading can still vouch for (it rebuilds identity.json from them). The key
 * written before the enrollment request is not written again.
 */
export async function saveIdentity(dataDir: string, identity: IdentityToSave): Promise<void> {
  const paths = await ensureIdentityDirectory(dataDir);
  await writeFileIfChanged(paths.key, identity.keyPem, KEY_FILE_MODE);
  await saveCertificate(dataDir, identity);
}

/**
 * Persists a certificate for the key already on disk (a renewal, or the current certificate written
 * back over an older one): ca.pem only when its content changed, then cert.pem, then identity.json.
 * key.pem is never touched, so a crash cannot pair a key with the wrong certificate.
 */
export async function saveCertificate(
  dataDir: string,
  identity: Omit<IdentityToSave, 'keyPem'>,
): Promise<void> {
  const paths = identityPaths(dataDir);
  if (identity.caPem !== undefined) await writeFileIfChanged(paths.ca, identity.caPem, PUBLIC_FILE_MODE);
  await writeFileIfChanged(paths.cert, identity.certPem, PUBLIC_FILE_MODE);
  await writeMetadata(paths, identity.metadata);
}

export async function writeMetadata(paths: IdentityPaths, metadata: IdentityMetadata): Promise<void> {
  const ordered: IdentityMetadata = {
    connectorId: metadata.connectorId,
    serial: metadata.serial,
    notAfter: metadata.notAfter,
    enrolledAt: metadata.enrolledAt,
    controlPlaneUrl: metadata.controlPlaneUrl,
  };
  await writeFileAtomic(paths.metadata, `${JSON.stringify(ordered, null, 2)}\n`, { mode: PUBLIC_FILE_MODE });
}
