// The connector's identity bundle on durable storage (PAM_AGENT_DATA_DIR/identity): key.pem (0600),
// cert.pem, ca.pem and identity.json. Every file is replaced atomically (temporary file, fsync,
// rename, fsync of the directory), so a crash leaves either the old or the new file, never half of
// one. Loading classifies what it finds the way the runbook does: nothing (first boot), a usable
// identity, a lost identity (enrolled before, files gone) or an unusable one (unreadable, damaged,
// mismatched, another connector's). It never falls back to enrolling by itself. An identity the
// control plane refused is remembered (rejection.json, with fingerprints of the tokens mounted at
// each refusal) and, when a guided recovery mounts a new token, moved aside whole, never deleted.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../lib/errors.ts';
import { type CertificateFacts, keyMatchesCertificate, parseCertificateFacts } from '../lib/pki.ts';
import { validityMessage } from './connection-errors.ts';
import { type AgentFailure, identityLostFailure, identityUnusableFailure } from './failure.ts';

export const KEY_FILE_MODE = 0o600;
const DIRECTORY_MODE = 0o700;
const TEMP_MARKER = '.tmp-';

export interface IdentityPaths {
  dir: string;
  key: string;
  cert: string;
  ca: string;
  metadata: string;
  /** Written when the control plane refuses this identity (see recordRejection). */
  rejection: string;
}

export function identityPaths(dataDir: string): IdentityPaths {
  const dir = join(dataDir, 'identity');
  return {
    dir,
    key: join(dir, 'key.pem'),
    cert: join(dir, 'cert.pem'),
    ca: join(dir, 'ca.pem'),
    metadata: join(dir, 'identity.json'),
    rejection: join(dir, 'rejection.json'),
  };
}

/** identity.json, as the process contract defines it. Public facts only. */
export interface IdentityMetadata {
  connectorId: string;
  serial: string;
  notAfter: string;
  enrolledAt: string;
  controlPlaneUrl: string;
}

export interface LoadedIdentity {
  /** A secret: never log it. */
  keyPem: string;
  certPem: string;
  caPem: string;
  metadata: IdentityMetadata;
  facts: CertificateFacts;
}

export type IdentityLoadResult =
  | {
      kind: 'absent';
      /** A key generated before an enrollment that did not finish; reused so no key is wasted. */
      pendingKeyPem: string | undefined;
    }
  | {
      kind: 'present';
      identity: LoadedIdentity;
      /** Notes on what loading fixed or noticed (repaired identity.json, clock skew), for a log line. */
      notes: string[];
    };

export interface IdentityExpectations {
  connectorId: string;
  sanUriPrefix: string;
  controlPlaneUrl: string;
  now: Date;
}

/** Writes `data` to `path` so that readers see the old content or the new, never a mix. */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const directory = join(path, '..');
  const temporary = `${path}${TEMP_MARKER}${process.pid}-${randomBytes(4).toString('hex')}`;
  const handle = await open(temporary, 'wx', mode);
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    // open() honours the umask; the key file must be exactly 0600 whatever the umask is.
    await chmod(temporary, mode);
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => {});
    throw error;
  }
  const directoryHandle = await open(directory, 'r');
  try {
    await directoryHandle.sync();
  } finally {
    await directoryHandle.close();
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
  await writeFileAtomic(paths.key, keyPem, KEY_FILE_MODE);
}

export interface IdentityToSave {
  keyPem: string;
  certPem: string;
  caPem: string;
  metadata: IdentityMetadata;
}

/**
 * Persists an enrolled or renewed identity. identity.json is written last: a crash before it leaves
 * a key and certificate that loading can still vouch for (it rebuilds identity.json from them).
 */
export async function saveIdentity(dataDir: string, identity: IdentityToSave): Promise<void> {
  const paths = await ensureIdentityDirectory(dataDir);
  await writeFileAtomic(paths.key, identity.keyPem, KEY_FILE_MODE);
  await writeFileAtomic(paths.cert, identity.certPem, 0o644);
  await writeFileAtomic(paths.ca, identity.caPem, 0o644);
  await writeMetadata(paths, identity.metadata);
}

async function writeMetadata(paths: IdentityPaths, metadata: IdentityMetadata): Promise<void> {
  const ordered: IdentityMetadata = {
    connectorId: metadata.connectorId,
    serial: metadata.serial,
    notAfter: metadata.notAfter,
    enrolledAt: metadata.enrolledAt,
    controlPlaneUrl: metadata.controlPlaneUrl,
  };
  await writeFileAtomic(paths.metadata, `${JSON.stringify(ordered, null, 2)}\n`, 0o644);
}

type ReadOutcome = { kind: 'ok'; text: string } | { kind: 'missing' };

/** Reads one identity file; missing is an answer, any other error is a named, unusable identity. */
async function readIdentityFile(path: string, what: string): Promise<ReadOutcome> {
  try {
    return { kind: 'ok', text: await readFile(path, 'utf8') };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'missing' };
    if (code === 'EACCES' || code === 'EPERM') {
      throw identityUnusableFailure(
        what === 'private key' ? 'IDENTITY_KEY_UNREADABLE' : 'IDENTITY_FILE_UNREADABLE',
        `permission denied reading ${path} (${what}): the connector user must be able to read it ` +
          `(for the key: owner-only, mode 0600)`,
        error,
      );
    }
    throw identityUnusableFailure(
      'IDENTITY_FILE_UNREADABLE',
      `cannot read ${path} (${what}): ${code ?? errorMessage(error)}`,
      error,
    );
  }
}

function damaged(path: string, what: string, cause?: unknown): AgentFailure {
  return identityUnusableFailure('IDENTITY_DAMAGED', `${path} is damaged: ${what}`, cause);
}

function parseMetadata(text: string, path: string): IdentityMetadata {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw damaged(path, 'it is not valid JSON', error);
  }
  if (typeof value !== 'object' || value === null) throw damaged(path, 'it is not a JSON object');
  const record = value as Record<string, unknown>;
  for (const field of ['connectorId', 'serial', 'notAfter', 'enrolledAt', 'controlPlaneUrl'] as const) {
    if (typeof record[field] !== 'string' || record[field] === '') {
      throw damaged(path, `field "${field}" is missing or not a string`);
    }
  }
  return record as unknown as IdentityMetadata;
}

function validatePrivateKey(keyPem: string, path: string): void {
  if (!/-----BEGIN (EC |RSA |)PRIVATE KEY-----/.test(keyPem)) {
    throw damaged(path, 'it does not hold a PEM private key');
  }
}

/** Checks that the certificate names this connector: CN and the SAN URI the control plane issues. */
export function certificateIdentityProblem(
  facts: CertificateFacts,
  connectorId: string,
  sanUriPrefix: string,
): string | undefined {
  const expectedUri = `${sanUriPrefix}${connectorId}`;
  if (!facts.sanUris.includes(expectedUri)) {
    const found = facts.sanUris.length > 0 ? facts.sanUris.join(', ') : 'no URI SAN';
    return `certificate SAN does not match expected pattern: expected URI ${expectedUri}, the certificate has ${found}`;
  }
  if (facts.subjectCommonName !== connectorId) {
    return `certificate subject CN is "${facts.subjectCommonName ?? ''}", expected "${connectorId}"`;
  }
  return undefined;
}

/**
 * Loads and validates the identity bundle. Returns `absent` when the disk shows no enrollment, or the
 * usable identity; throws an AgentFailure (exit 10 lost, exit 13 unusable) for anything else.
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

  let metadata: IdentityMetadata | undefined;
  if (metadataRead.kind === 'ok') {
    metadata = parseMetadata(metadataRead.text, paths.metadata);
    if (metadata.connectorId !== expect.connectorId) {
      throw identityUnusableFailure(
        'IDENTITY_FOREIGN',
        `${paths.metadata} belongs to connector "${metadata.connectorId}", but this agent is "${expect.connectorId}": ` +
          'the data directory was mounted on the wrong connector',
      );
    }
    const missing = [
      keyRead.kind === 'missing' ? paths.key : undefined,
      certRead.kind === 'missing' ? paths.cert : undefined,
      caRead.kind === 'missing' ? paths.ca : undefined,
    ].filter((p): p is string => p !== undefined);
    if (missing.length > 0) {
      throw identityLostFailure(
        `no such file: ${missing.join(', ')}: this connector enrolled before (${paths.metadata} exists), so ` +
          'its identity is lost and the agent will not re-enroll',
      );
    }
  } else if (certRead.kind === 'missing' || keyRead.kind === 'missing' || caRead.kind === 'missing') {
    // No record of an enrollment. A lone key is one generated for an enrollment that did not finish.
    if (keyRead.kind === 'ok') {
      validatePrivateKey(keyRead.text, paths.key);
      return { kind: 'absent', pendingKeyPem: keyRead.text };
    }
    return { kind: 'absent', pendingKeyPem: undefined };
  }

  // Key, certificate and CA are all present from here on.
  const keyPem = (keyRead as { text: string }).text;
  const certPem = (certRead as { text: string }).text;
  const caPem = (caRead as { text: string }).text;
  validatePrivateKey(keyPem, paths.key);
  let facts: CertificateFacts;
  try {
    facts = parseCertificateFacts(certPem);
  } catch (error) {
    throw damaged(paths.cert, 'it does not hold a PEM X.509 certificate', error);
  }
  if (!caPem.includes('-----BEGIN CERTIFICATE-----'))
    throw damaged(paths.ca, 'it does not hold a PEM certificate');
  if (!keyMatchesCertificate(keyPem, certPem)) {
    throw identityUnusableFailure(
      'IDENTITY_KEY_MISMATCH',
      `private key does not match certificate: ${paths.key} is not the key ${paths.cert} was issued for`,
    );
  }
  const identityProblem = certificateIdentityProblem(facts, expect.connectorId, expect.sanUriPrefix);
  if (identityProblem) {
    throw identityUnusableFailure('IDENTITY_FOREIGN', `${paths.cert}: ${identityProblem}`);
  }
  if (expect.now.getTime() > facts.notAfter.getTime()) {
    throw identityUnusableFailure(
      'IDENTITY_EXPIRED',
      `${validityMessage(`this connector's certificate ${paths.cert}`, facts, expect.now)}; an expired ` +
        'certificate cannot be renewed over mTLS',
    );
  }
  if (expect.now.getTime() < facts.notBefore.getTime()) {
    notes.push(validityMessage(`this connector's certificate ${paths.cert}`, facts, expect.now));
  }

  if (!metadata || metadata.serial !== facts.serial || metadata.notAfter !== facts.notAfter.toISOString()) {
    // A crash between writing cert.pem and identity.json: the certificate is the truth.
    metadata = {
      connectorId: expect.connectorId,
      serial: facts.serial,
      notAfter: facts.notAfter.toISOString(),
      enrolledAt: metadata?.enrolledAt ?? facts.notBefore.toISOString(),
      controlPlaneUrl: metadata?.controlPlaneUrl ?? expect.controlPlaneUrl,
    };
    await writeMetadata(paths, metadata);
    notes.push(`rebuilt ${paths.metadata} from ${paths.cert} (serial ${facts.serial})`);
  }
  return { kind: 'present', identity: { keyPem, certPem, caPem, metadata, facts }, notes };
}

// -------------------------------------------------------------------------------------------------
// An identity the control plane refused

/**
 * identity/rejection.json: the control plane refused the identity with this serial. Public facts
 * only; a token is recorded as a salted, truncated SHA-256 fingerprint, never as itself.
 */
export interface IdentityRejection {
  serial: string;
  firstRejectedAt: string;
  lastRejectedAt: string;
  /** The control plane's error code and message of the last refusal. */
  code: string;
  message: string;
  /** Fingerprints of the enrollment tokens that were mounted when the identity was refused. */
  tokensSeen: string[];
}

const MAX_TOKENS_SEEN = 16;

/** A fingerprint that tells one token from another without revealing it (salted with the serial). */
export function tokenFingerprint(serial: string, token: string): string {
  return `sha256:${createHash('sha256').update(`${serial}\n${token}`).digest('hex').slice(0, 16)}`;
}

/** The recorded refusal of the identity with `serial`, if any (a damaged or other serial's record counts as none). */
export async function readRejection(dataDir: string, serial: string): Promise<IdentityRejection | undefined> {
  let text: string;
  try {
    text = await readFile(identityPaths(dataDir).rejection, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const value = JSON.parse(text) as Partial<IdentityRejection>;
    if (value.serial !== serial || !Array.isArray(value.tokensSeen)) return undefined;
    return {
      serial,
      firstRejectedAt: String(value.firstRejectedAt ?? ''),
      lastRejectedAt: String(value.lastRejectedAt ?? ''),
      code: String(value.code ?? ''),
      message: String(value.message ?? ''),
      tokensSeen: value.tokensSeen.filter((t): t is string => typeof t === 'string'),
    };
  } catch {
    return undefined;
  }
}

/** Records (or adds to) the refusal of the identity with `serial`; `token` is the fingerprint mounted now. */
export async function recordRejection(
  dataDir: string,
  refusal: { serial: string; code: string; message: string; token: string | undefined; now: Date },
): Promise<IdentityRejection> {
  const previous = await readRejection(dataDir, refusal.serial);
  const at = refusal.now.toISOString();
  const tokensSeen = [...(previous?.tokensSeen ?? [])];
  if (refusal.token && !tokensSeen.includes(refusal.token)) tokensSeen.push(refusal.token);
  const rejection: IdentityRejection = {
    serial: refusal.serial,
    firstRejectedAt: previous?.firstRejectedAt || at,
    lastRejectedAt: at,
    code: refusal.code,
    message: refusal.message,
    tokensSeen: tokensSeen.slice(-MAX_TOKENS_SEEN),
  };
  await writeFileAtomic(identityPaths(dataDir).rejection, `${JSON.stringify(rejection, null, 2)}\n`, 0o644);
  return rejection;
}

/**
 * Moves the whole identity directory to `identity.rejected-<time>` next to it (a rename: files,
 * modes and the rejection record go with it; nothing is deleted) and returns the new path.
 */
export async function setAsideIdentity(dataDir: string, now: Date): Promise<string> {
  const { dir } = identityPaths(dataDir);
  const stamp = now.toISOString().replace(/[-:]/g, '');
  let target = join(dataDir, `identity.rejected-${stamp}`);
  try {
    await rename(dir, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw error;
    target = `${target}-${randomBytes(3).toString('hex')}`;
    await rename(dir, target);
  }
  const directoryHandle = await open(dataDir, 'r');
  try {
    await directoryHandle.sync();
  } finally {
    await directoryHandle.close();
  }
  return target;
}
