// Repairs of the identity bundle that loading makes once the rest of it verifies, and setting files
// aside. What is set aside is renamed next to where it was, never deleted: a damaged or replaced
// ca.pem (restored from the control plane), a damaged identity.json (rebuilt from the certificate),
// and the whole identity directory when a recovery's token replaces a refused or lost identity.
import { randomBytes } from 'node:crypto';
import { rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fsErrorCode } from '../lib/errors.ts';
import type { CertificateFacts } from '../lib/pki.ts';
import { syncDirectory } from '../lib/write-file-atomic.ts';
import { configurationFailure } from './failure.ts';
import {
  type IdentityExpectations,
  type IdentityMetadata,
  type IdentityPaths,
  identityPaths,
} from './identity-files.ts';
import type { CaBundleVerdict } from './identity-verify.ts';
import { writeMetadata } from './identity-write.ts';

/**
 * Renames `path` (a file or a directory) to `<path>.<label>-<time>` next to it, never over another
 * file, and returns the new path.
 */
async function setAside(path: string, label: string, now: Date): Promise<string> {
  const stamp = now.toISOString().replace(/[-:]/g, '');
  let target = `${path}.${label}-${stamp}`;
  if (
    await stat(target).then(
      () => true,
      () => false,
    )
  )
    target = `${target}-${randomBytes(3).toString('hex')}`;
  await rename(path, target);
  await syncDirectory(join(path, '..'));
  return target;
}

/**
 * Moves the whole identity directory to `identity.rejected-<time>` next to it (a rename: files,
 * modes and the rejection record go with it; nothing is deleted) and returns the new path.
 */
export async function setAsideIdentity(dataDir: string, now: Date): Promise<string> {
  return setAside(identityPaths(dataDir).dir, 'rejected', now);
}

/** Moves an identity file aside; one that cannot be moved means the data directory is not writable. */
async function setAsideOrFail(path: string, label: string, now: Date): Promise<string> {
  try {
    return await setAside(path, label, now);
  } catch (error) {
    throw configurationFailure(
      `cannot move ${path} aside: ${fsErrorCode(error)}; the identity ` +
        'directory must be writable by the connector user: mount a writable durable volume there',
    );
  }
}

/**
 * ca.pem as the identity uses it: a damaged or replaced one is moved aside (kept, never deleted) and,
 * like a missing one, restored from the control plane by the agent; undefined until then.
 */
export async function settleCaBundle(
  paths: IdentityPaths,
  verdict: CaBundleVerdict,
  caText: string | undefined,
  now: Date,
  notes: string[],
): Promise<string | undefined> {
  if (verdict.kind === 'verified') return caText;
  if (verdict.kind === 'missing') return undefined;
  const aside = await setAsideOrFail(paths.ca, verdict.kind, now);
  notes.push(
    `${verdict.finding}: moved it to ${aside}; it is restored from the control plane like a missing one ` +
      '(the CA bundle is not identity: the control plane gives it again with every certificate)',
  );
  return undefined;
}

/** A damaged identity.json is moved aside (kept) and rebuilt from the certificate, as a missing one is. */
export async function setAsideDamagedMetadata(
  paths: IdentityPaths,
  what: string,
  now: Date,
  notes: string[],
): Promise<void> {
  const aside = await setAsideOrFail(paths.metadata, 'damaged', now);
  notes.push(`${paths.metadata} is damaged: ${what}: moved it to ${aside}; it is rebuilt from ${paths.cert}`);
}

/**
 * identity.json for the certificate that loaded. After a crash between cert.pem and identity.json
 * the certificate is the truth, but it is written from only when the certificate verified against
 * ca.pem, and never when the certificate is older than the one identity.json records (a backup
 * copied back over a renewed certificate: the record is all that tells a newer one existed).
 */
export async function settleMetadata(
  paths: IdentityPaths,
  found: {
    recorded: IdentityMetadata | undefined;
    facts: CertificateFacts;
    chainVerified: boolean;
    expect: IdentityExpectations;
  },
  notes: string[],
): Promise<IdentityMetadata> {
  const { recorded, facts } = found;
  const notAfter = facts.notAfter.toISOString();
  if (recorded && recorded.serial === facts.serial && recorded.notAfter === notAfter) return recorded;
  const fromCertificate: IdentityMetadata = {
    connectorId: found.expect.connectorId,
    serial: facts.serial,
    notAfter,
    enrolledAt: recorded?.enrolledAt ?? facts.notBefore.toISOString(),
    controlPlaneUrl: recorded?.controlPlaneUrl ?? found.expect.controlPlaneUrl,
  };
  if (recorded && facts.notAfter.getTime() < new Date(recorded.notAfter).getTime()) {
    notes.push(
      `${paths.cert} holds serial ${facts.serial} (valid until ${notAfter}), older than serial ${recorded.serial} ` +
        `(valid until ${recorded.notAfter}) that ${paths.metadata} records: ${paths.metadata} is kept, not ` +
        'rebuilt from an older certificate (a backup copied back over a renewed one?); the control plane ' +
        'accepts only the newest certificate of a connector',
    );
    return fromCertificate;
  }
  if (found.chainVerified) {
    await writeMetadata(paths, fromCertificate);
    notes.push(`rebuilt ${paths.metadata} from ${paths.cert} (serial ${facts.serial})`);
  } else if (!recorded) {
    notes.push(
      `${paths.metadata} is missing: ${paths.key} and ${paths.cert} match each other and name this connector ` +
        `(serial ${facts.serial}), so they are its identity and no enrollment token is used; ${paths.metadata} is ` +
        `rebuilt once ${paths.ca} is restored from the control plane`,
    );
  } else {
    // Without ca.pem the chain is unverified: nothing is written until the control plane's answer.
    notes.push(
      `${paths.metadata} does not match ${paths.cert} (serial ${facts.serial}); it is rewritten once ` +
        `${paths.ca} is restored`,
    );
  }
  return fromCertificate;
}
