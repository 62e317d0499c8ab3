// Loading the identity bundle: read each file, verify the bundle as a whole (identity-verify.ts)
// and classify what is found the way the runbook does: nothing (first boot), a usable identity, a
// lost identity (enrolled before, key or certificate gone) or an unusable one (unreadable, damaged,
// untrusted, mismatched, another connector's). A missing, damaged or replaced ca.pem alone is not
// a loss: the control plane gives it again; a damaged identity.json is rebuilt from a certificate
// that verifies (identity-repair.ts). It never falls back to enrolling by itself.
import { readFile } from 'node:fs/promises';
import { errorMessage } from '../lib/errors.ts';
import { identityFilesInaccessibleFailure, identityLostFailure, identityUnusableFailure } from './failure.ts';
import {
  type IdentityExpectations,
  type IdentityLoadResult,
  type IdentityMetadata,
  identityPaths,
} from './identity-files.ts';
import { setAsideDamagedMetadata, settleCaBundle, settleMetadata } from './identity-repair.ts';
import { localValidityWarning, validatePrivateKey, verifyBundle } from './identity-verify.ts';

type ReadOutcome = { kind: 'ok'; text: string } | { kind: 'missing' };

/**
 * Reads one identity file; missing is an answer, permission denied is exit 12 (ownership and mode are
 * the fix, the files are intact), any other error is a named, unusable identity.
 */
async function readIdentityFile(path: string, what: string): Promise<ReadOutcome> {
  try {
    return { kind: 'ok', text: await readFile(path, 'utf8') };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'missing' };
    if (code === 'EACCES' || code === 'EPERM') {
      const isKey = what === 'private key';
      throw identityFilesInaccessibleFailure(
        isKey ? 'IDENTITY_KEY_UNREADABLE' : 'IDENTITY_FILE_UNREADABLE',
        `permission denied reading ${path} (${what}): the connector user must be able to read it ` +
          (isKey ? '(its owner, mode 0600: readable by the owner only)' : '(its owner, mode 0644)'),
        error,
      );
    }
    // Not a permission (a directory in the file's place, an I/O error): its own code, so that the
    // permission codes above mean exactly that to whoever reads them (the operator does).
    throw identityUnusableFailure(
      'IDENTITY_FILE_READ_FAILED',
      `cannot read ${path} (${what}): ${code ?? errorMessage(error)}`,
      error,
    );
  }
}

type MetadataRead = { kind: 'ok'; metadata: IdentityMetadata } | { kind: 'damaged'; what: string };

/** identity.json parsed, or what is wrong with it (a damaged one is rebuilt, not fatal: see loadIdentity). */
function parseMetadata(text: string): MetadataRead {
  if (text.trim() === '') return { kind: 'damaged', what: 'it is empty' };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: 'damaged', what: 'it is not valid JSON' };
  }
  if (typeof value !== 'object' || value === null)
    return { kind: 'damaged', what: 'it is not a JSON object' };
  const record = value as Record<string, unknown>;
  for (const field of ['connectorId', 'serial', 'notAfter', 'enrolledAt', 'controlPlaneUrl'] as const) {
    if (typeof record[field] !== 'string' || record[field] === '') {
      return { kind: 'damaged', what: `field "${field}" is missing or not a string` };
    }
  }
  return { kind: 'ok', metadata: record as unknown as IdentityMetadata };
}

/**
 * Loads and verifies the identity bundle. Returns `absent` when the disk shows no enrollment, or the
 * usable identity; throws an AgentFailure (exit 10 lost, exit 13 unusable, exit 12 for a file the
 * connector user may not read or a --san-uri-prefix that disagrees with the certificate) for anything
 * else. A key and a certificate that match are an identity (never a first boot), whatever else is missing. A damaged or replaced
 * ca.pem and a damaged identity.json are set aside (renamed, kept) once the rest verifies.
 * identity.json is only ever rewritten from a certificate that verified against ca.pem and is not
 * older than the one it records.
 */
export async function loadIdentity(
  dataDir: string,
  expect: IdentityExpectations,
): Promise<IdentityLoadResult> {
  const paths = identityPaths(dataDir);
  const notes: string[] = [];
  const metadataRead = await readIdentityFile(paths.metadata, 'identity metadata');
  const keyRead = await readIdentityFile(paths.key, 'private key');
  const certRead = await readIdentityFile(paths.cert, 'certificate');
  const caRead = await readIdentityFile(paths.ca, 'CA bundle');

  const recorded = metadataRead.kind === 'ok' ? parseMetadata(metadataRead.text) : undefined;
  const metadata = recorded?.kind === 'ok' ? recorded.metadata : undefined;
  if (metadata && metadata.connectorId !== expect.connectorId) {
    throw identityUnusableFailure(
      'IDENTITY_FOREIGN',
      `${paths.metadata} belongs to connector "${metadata.connectorId}", but this agent is "${expect.connectorId}": ` +
        'the data directory was mounted on the wrong connector',
    );
  }
  if (keyRead.kind === 'missing' || certRead.kind === 'missing') {
    // ca.pem alone is not identity: the control plane gives it again with every certificate.
    if (metadataRead.kind === 'ok') {
      const missing = [
        keyRead.kind === 'missing' ? paths.key : undefined,
        certRead.kind === 'missing' ? paths.cert : undefined,
      ];
      throw identityLostFailure(
        `no such file: ${missing.filter((p) => p !== undefined).join(', ')}: this connector enrolled before ` +
          `(${paths.metadata} exists), so its identity is lost and the agent will not re-enroll`,
      );
    }
    // No record of an enrollment. A lone key is one generated for an enrollment that did not finish.
    if (keyRead.kind === 'ok') {
      validatePrivateKey(keyRead.text, paths.key);
      return { kind: 'absent', pendingKeyPem: keyRead.text };
    }
    return { kind: 'absent', pendingKeyPem: undefined };
  }

  // Key and certificate are present from here on: an enrollment finished (cert.pem is written after
  // the token was spent), so they are this connector's identity even without ca.pem and identity.json.
  const keyPem = keyRead.text;
  const certPem = certRead.text;
  const caText = caRead.kind === 'ok' ? caRead.text : undefined;
  const { facts, ca } = verifyBundle(paths, { keyPem, certPem, caPem: caText }, expect, metadata?.serial);
  const skew = localValidityWarning(paths.cert, facts, expect.now);
  if (skew) notes.push(skew);
  const caPem = await settleCaBundle(paths, ca, caText, expect.now, notes);
  if (recorded?.kind === 'damaged') await setAsideDamagedMetadata(paths, recorded.what, expect.now, notes);
  const current = await settleMetadata(
    paths,
    { recorded: metadata, facts, chainVerified: caPem !== undefined, expect },
    notes,
  );
  return { kind: 'present', identity: { keyPem, certPem, caPem, metadata: current, facts }, notes };
}
