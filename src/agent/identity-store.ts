// The connector's identity bundle on durable storage (PAM_AGENT_DATA_DIR/identity): key.pem (0600),
// cert.pem, ca.pem and identity.json. Every file is replaced atomically (temporary file, fsync,
// rename, fsync of the directory), so a crash leaves either the old or the new file, never half of
// one. Loading verifies the bundle as a whole (the certificate signed by ca.pem, the key its own, the
// names this connector's) and classifies what it finds the way the runbook does: nothing (first
// boot), a usable identity, a lost identity (enrolled before, key or certificate gone) or an unusable
// one (unreadable, damaged, untrusted, mismatched, another connector's). A missing, damaged or
// replaced ca.pem alone is not a loss: the control plane gives it again; a damaged identity.json is
// rebuilt from a certificate that verifies. What is set aside is renamed, never deleted. Loose file
// modes are repaired and reported. It never falls back to enrolling by itself. An identity the
// control plane refused is remembered (rejection.json, with fingerprints of the tokens mounted at
// each refusal) and, when a guided recovery mounts a new token, moved aside whole, never deleted.
import { createHash, createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import type { Stats } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describeDuration } from '../lib/duration.ts';
import { errorMessage } from '../lib/errors.ts';
import {
  type CertificateFacts,
  certificateIssuedBy,
  keyMatchesCertificate,
  parseCertificateFacts,
} from '../lib/pki.ts';
import { syncDirectory, TEMP_MARKER, temporaryPathFor, writeFileAtomic } from '../lib/write-file-atomic.ts';
import {
  type AgentFailure,
  configurationFailure,
  identityLostFailure,
  identityUnusableFailure,
} from './failure.ts';

export const KEY_FILE_MODE = 0o600;
const DIRECTORY_MODE = 0o700;

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
  /** undefined when ca.pem was missing on disk: the agent restores it from the control plane. */
  caPem: string | undefined;
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
    return { path: temporary, code: (error as NodeJS.ErrnoException).code ?? errorMessage(error) };
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
  if (identity.caPem !== undefined) await writeFileIfChanged(paths.ca, identity.caPem, 0o644);
  await writeFileIfChanged(paths.cert, identity.certPem, 0o644);
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
  await writeFileAtomic(paths.metadata, `${JSON.stringify(ordered, null, 2)}\n`, { mode: 0o644 });
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
      const isKey = what === 'private key';
      throw identityUnusableFailure(
        isKey ? 'IDENTITY_KEY_UNREADABLE' : 'IDENTITY_FILE_UNREADABLE',
        `permission denied reading ${path} (${what}): the connector user must be able to read it ` +
          (isKey ? '(its owner, mode 0600: readable by the owner only)' : '(its owner, mode 0644)'),
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

const PEM_PRIVATE_KEY_HEADER = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
const PEM_CERTIFICATE_HEADER = '-----BEGIN CERTIFICATE-----';

/** A file that holds a PEM certificate and no private key. */
function holdsOnlyCertificate(text: string): boolean {
  return text.includes(PEM_CERTIFICATE_HEADER) && !PEM_PRIVATE_KEY_HEADER.test(text);
}

/** A file that holds a PEM private key and no certificate. */
function holdsOnlyPrivateKey(text: string): boolean {
  return PEM_PRIVATE_KEY_HEADER.test(text) && !text.includes(PEM_CERTIFICATE_HEADER);
}

/** A file of the other kind (a certificate in key.pem, a key in cert.pem) is misplaced, not damaged. */
function misplacedFile(path: string, holds: string, expected: string, cause: unknown): AgentFailure {
  return identityUnusableFailure(
    'IDENTITY_DAMAGED',
    `${path} holds ${holds}, not ${expected}: a file was copied to the wrong name (key.pem and cert.pem swapped?)`,
    cause,
  );
}

/** A key that does not parse (truncated, garbled) is damaged, not "another key". */
function validatePrivateKey(keyPem: string, path: string): void {
  try {
    createPrivateKey(keyPem);
  } catch (error) {
    if (holdsOnlyCertificate(keyPem)) throw misplacedFile(path, 'a certificate', 'a private key', error);
    throw damaged(path, 'not a readable PEM private key', error);
  }
}

function readCertificateFacts(certPem: string, path: string): CertificateFacts {
  try {
    return parseCertificateFacts(certPem);
  } catch (error) {
    if (holdsOnlyPrivateKey(certPem)) throw misplacedFile(path, 'a private key', 'a certificate', error);
    throw damaged(path, 'not a readable PEM X.509 certificate', error);
  }
}

/** key.pem and cert.pem swapped: one message for both files, which says how to put them back. */
function swappedFilesFailure(
  paths: IdentityPaths,
  keyPem: string,
  certPem: string,
): AgentFailure | undefined {
  if (!holdsOnlyCertificate(keyPem) || !holdsOnlyPrivateKey(certPem)) return undefined;
  return identityUnusableFailure(
    'IDENTITY_DAMAGED',
    `${paths.key} holds a certificate and ${paths.cert} a private key: the two files were swapped; ` +
      'swap them back (the key belongs in key.pem, mode 0600)',
  );
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * The certificates of a CA bundle, each checked to parse, or undefined when the bundle is damaged:
 * no certificate, a block that does not parse, or a block cut off (a truncated file).
 */
function caBundleCertificates(caPem: string): string[] | undefined {
  const blocks = caPem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0 || blocks.length !== caPem.split(PEM_CERTIFICATE_HEADER).length - 1)
    return undefined;
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch {
      return undefined;
    }
  }
  return blocks;
}

/** An ID character: what may stand right before the connector ID inside another connector's ID. */
const CONNECTOR_ID_CHARACTER = /[a-z0-9.-]$/;

/**
 * A URI SAN that names this connector ID under another prefix than --san-uri-prefix: the agent's
 * configuration disagrees with the control plane's, the certificate is not another connector's.
 */
function namesConnectorUnderOtherPrefix(uri: string, connectorId: string): boolean {
  if (!uri.endsWith(connectorId)) return false;
  const prefix = uri.slice(0, uri.length - connectorId.length);
  return prefix.length > 0 && !CONNECTOR_ID_CHARACTER.test(prefix);
}

/**
 * Checks that a certificate names this connector: the SAN URI the control plane issues and the CN.
 * `which` says which certificate, e.g. "the certificate /data/identity/cert.pem". A SAN with this
 * connector ID under another prefix is the agent's --san-uri-prefix (exit 12), anything else is a
 * certificate for another connector (exit 13). Every message starts with the guide's fragment.
 */
export function certificateNamesFailure(
  facts: CertificateFacts,
  expect: { connectorId: string; sanUriPrefix: string },
  which: string,
): AgentFailure | undefined {
  const expectedUri = `${expect.sanUriPrefix}${expect.connectorId}`;
  if (!facts.sanUris.includes(expectedUri)) {
    const underOtherPrefix = facts.sanUris.find((uri) =>
      namesConnectorUnderOtherPrefix(uri, expect.connectorId),
    );
    if (underOtherPrefix) {
      return configurationFailure(
        `certificate SAN does not match expected pattern: the certificate names ${underOtherPrefix} but ` +
          `--san-uri-prefix expects ${expectedUri}: set --san-uri-prefix / VAULTPAM_SAN_URI_PREFIX to the ` +
          `control plane's prefix`,
      );
    }
    const found = facts.sanUris.length > 0 ? facts.sanUris.join(', ') : 'no URI SAN';
    return identityUnusableFailure(
      'IDENTITY_FOREIGN',
      `certificate SAN does not match expected pattern: expected URI ${expectedUri}, ${which} has ${found}`,
    );
  }
  if (facts.subjectCommonName !== expect.connectorId) {
    return identityUnusableFailure(
      'IDENTITY_FOREIGN',
      `certificate subject CN is "${facts.subjectCommonName ?? ''}", expected "${expect.connectorId}" (${which})`,
    );
  }
  return undefined;
}

/** Whether the certificate is signed by one of the CA certificates (signature and issuer name). */
function chainsToBundle(certPem: string, caCertificates: readonly string[]): boolean {
  return caCertificates.some((caPem) => certificateIssuedBy(certPem, caPem));
}

/** Whether the certificate is signed by a CA of the PEM bundle `caPem`. */
export function issuedByCaBundle(certPem: string, caPem: string): boolean {
  return chainsToBundle(certPem, caPem.match(PEM_CERTIFICATE) ?? []);
}

/**
 * What loading makes of ca.pem. It is not identity (the control plane gives it with every
 * certificate), so a damaged one, or one replaced by another CA while cert.pem is still the
 * certificate identity.json records, is set aside and restored rather than fatal.
 */
type CaBundleVerdict =
  | { kind: 'verified' }
  | { kind: 'missing' }
  | { kind: 'damaged' | 'replaced'; finding: string };

/**
 * Verifies the bundle as a whole before anything is written from it: each file readable, the
 * certificate signed by the CA in ca.pem (when ca.pem is there and readable), the names this
 * connector's, the key its own. When cert.pem does not verify against ca.pem, what changed decides:
 * cert.pem still the certificate identity.json records (serial) with its key means ca.pem changed;
 * anything else is a certificate replaced or altered. Validity dates are not a reason to stop here:
 * the local clock may be the one that is wrong, so they only produce a warning
 * (localValidityWarning) and the control plane decides.
 */
function verifyBundle(
  paths: IdentityPaths,
  bundle: { keyPem: string; certPem: string; caPem: string | undefined },
  expect: IdentityExpectations,
  recordedSerial: string | undefined,
): { facts: CertificateFacts; ca: CaBundleVerdict } {
  const swapped = swappedFilesFailure(paths, bundle.keyPem, bundle.certPem);
  if (swapped) throw swapped;
  validatePrivateKey(bundle.keyPem, paths.key);
  const facts = readCertificateFacts(bundle.certPem, paths.cert);
  const keyMatches = keyMatchesCertificate(bundle.keyPem, bundle.certPem);
  const ca = judgeCaBundle(paths, bundle, facts, keyMatches && recordedSerial === facts.serial);
  // Names before the key: a certificate of another connector is foreign, whatever key it is for.
  const namesFailure = certificateNamesFailure(facts, expect, `the certificate ${paths.cert}`);
  if (namesFailure?.code === 'IDENTITY_FOREIGN') throw namesFailure;
  if (!keyMatches) {
    throw identityUnusableFailure(
      'IDENTITY_KEY_MISMATCH',
      `private key does not match certificate: ${paths.key} is not the key ${paths.cert} was issued for`,
    );
  }
  if (namesFailure) throw namesFailure;
  return { facts, ca };
}

/** Judges ca.pem against cert.pem; throws IDENTITY_CHAIN_INVALID when it is cert.pem that changed. */
function judgeCaBundle(
  paths: IdentityPaths,
  bundle: { certPem: string; caPem: string | undefined },
  facts: CertificateFacts,
  certIsTheRecordedOne: boolean,
): CaBundleVerdict {
  if (bundle.caPem === undefined) return { kind: 'missing' };
  const caCertificates = caBundleCertificates(bundle.caPem);
  if (!caCertificates) {
    return { kind: 'damaged', finding: `${paths.ca} is damaged: not a readable PEM certificate bundle` };
  }
  if (chainsToBundle(bundle.certPem, caCertificates)) return { kind: 'verified' };
  const issuer = facts.issuer.replace(/\n/g, ', ');
  if (certIsTheRecordedOne) {
    return {
      kind: 'replaced',
      finding:
        `${paths.ca} was replaced: it does not hold the CA that signed ${paths.cert} (issuer "${issuer}"), and ${paths.cert} is the ` +
        `certificate ${paths.metadata} records (serial ${facts.serial}) with its own key, so it is ${paths.ca} ` +
        'that changed (replaced by another CA bundle)',
    };
  }
  throw identityUnusableFailure(
    'IDENTITY_CHAIN_INVALID',
    `certificate chain does not verify: ${paths.cert} is not signed by the CA in ${paths.ca} ` +
      `(its issuer is "${issuer}"): the certificate was replaced or altered`,
  );
}

/** Renames `path` to `<path>.<label>-<time>` next to it (never over another file) and returns the new path. */
async function setAsideFile(path: string, label: string, now: Date): Promise<string> {
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
 * Whether certificate `a` is older than `b`: issued earlier (notBefore), or, issued in the same
 * second, expiring earlier. The control plane accepts only the newest certificate of a connector.
 */
export function certificateIsOlder(a: CertificateFacts, b: CertificateFacts): boolean {
  const issued = a.notBefore.getTime() - b.notBefore.getTime();
  return issued < 0 || (issued === 0 && a.notAfter.getTime() < b.notAfter.getTime());
}

/**
 * A warning when the certificate is outside its validity by the local clock, in either direction,
 * with how far off. It is not a reason to stop: the control plane's clock decides (its refusal,
 * CLIENT_CERTIFICATE_EXPIRED or CLIENT_CERTIFICATE_NOT_YET_VALID, is what fails closed).
 */
export function localValidityWarning(
  certPath: string,
  facts: CertificateFacts,
  now: Date,
): string | undefined {
  const range = `valid from ${facts.notBefore.toISOString()} to ${facts.notAfter.toISOString()}, local time ${now.toISOString()}`;
  let state: string;
  if (now.getTime() > facts.notAfter.getTime()) {
    state = `expired ${describeDuration(now.getTime() - facts.notAfter.getTime())} ago`;
  } else if (now.getTime() < facts.notBefore.getTime()) {
    state = `becomes valid only in ${describeDuration(facts.notBefore.getTime() - now.getTime())}`;
  } else {
    return undefined;
  }
  return (
    `certificate has expired or is not yet valid: this connector's certificate ${certPath} ${state} by the ` +
    `local clock (${range}); trying the control plane, whose clock decides (if the local clock is wrong, ` +
    'fix time sync: timedatectl, NTP)'
  );
}

/**
 * Loads and verifies the identity bundle. Returns `absent` when the disk shows no enrollment, or the
 * usable identity; throws an AgentFailure (exit 10 lost, exit 13 unusable, exit 12 for a
 * --san-uri-prefix that disagrees with the certificate) for anything else. A key and a certificate
 * that match are an identity (never a first boot), whatever else is missing. A damaged or replaced
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

/** Moves an identity file aside; one that cannot be moved means the data directory is not writable. */
async function setAsideOrFail(path: string, label: string, now: Date): Promise<string> {
  try {
    return await setAsideFile(path, label, now);
  } catch (error) {
    throw configurationFailure(
      `cannot move ${path} aside: ${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}; the identity ` +
        'directory must be writable by the connector user: mount a writable durable volume there',
    );
  }
}

/**
 * ca.pem as the identity uses it: a damaged or replaced one is moved aside (kept, never deleted) and,
 * like a missing one, restored from the control plane by the agent; undefined until then.
 */
async function settleCaBundle(
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
async function setAsideDamagedMetadata(
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
async function settleMetadata(
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

// -------------------------------------------------------------------------------------------------
// File permissions (the guide's "Permission Denied" check: key 0600, certificates 0644)

interface PermissionRule {
  path: string;
  /** Mode bits that must not be set. */
  forbidden: number;
  repairedMode: number;
  /** Why the loose mode matters, for the warning. */
  risk: string;
}

function permissionRules(paths: IdentityPaths): PermissionRule[] {
  const replaceable = (path: string): PermissionRule => ({
    path,
    forbidden: 0o022,
    repairedMode: 0o644,
    risk: 'the file was writable by other users, who could replace it',
  });
  return [
    {
      path: paths.dir,
      forbidden: 0o022,
      repairedMode: DIRECTORY_MODE,
      risk: 'the identity directory was writable by other users, who could replace its files',
    },
    {
      path: paths.key,
      forbidden: 0o077,
      repairedMode: KEY_FILE_MODE,
      risk:
        'the private key was readable by other users; if anyone else could read it, treat the key as ' +
        'exposed (guided recovery pairs a new one)',
    },
    replaceable(paths.cert),
    replaceable(paths.ca),
    replaceable(paths.metadata),
    replaceable(paths.rejection),
  ];
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}

/** Sets one loose file mode right; a mode that cannot be set (not our file) is a refusal, exit 13. */
async function repairPermission(rule: PermissionRule): Promise<string | undefined> {
  let current: Stats;
  try {
    current = await stat(rule.path);
  } catch {
    // Missing, or not even visible: reading the file names the problem (no such file, permission denied).
    return undefined;
  }
  if ((current.mode & rule.forbidden) === 0) return undefined;
  try {
    await chmod(rule.path, rule.repairedMode);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? errorMessage(error);
    throw identityUnusableFailure(
      'IDENTITY_PERMISSIONS',
      `permission of ${rule.path} is ${octal(current.mode)} and cannot be set to ${octal(rule.repairedMode)} ` +
        `(${code}; owned by uid ${current.uid}, the agent runs as uid ${process.geteuid?.() ?? 'unknown'}): ` +
        `${rule.risk.replace(' was ', ' is ')}; make the connector user its owner (chown) and chmod it ` +
        `${octal(rule.repairedMode)}`,
      error,
    );
  }
  return `permission of ${rule.path} was ${octal(current.mode)}, set to ${octal(rule.repairedMode)}: ${rule.risk}`;
}

/**
 * Repairs loose modes of the identity directory and its files (key 0600, directory 0700, nothing
 * writable by group or others) and returns one warning per repair, naming the path and both modes.
 */
export async function repairIdentityPermissions(dataDir: string): Promise<string[]> {
  const warnings: string[] = [];
  for (const rule of permissionRules(identityPaths(dataDir))) {
    const warning = await repairPermission(rule);
    if (warning) warnings.push(warning);
  }
  return warnings;
}

// -------------------------------------------------------------------------------------------------
// Noticing changes on disk while running

/** What identifies each identity file's current version: device, inode, size, times and mode. */
export type IdentityFileStamps = Record<'key' | 'cert' | 'ca' | 'metadata', string>;

async function stampOf(path: string): Promise<string> {
  try {
    const s = await stat(path);
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}:${s.mode}`;
  } catch (error) {
    return `error:${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}`;
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
  await writeFileAtomic(identityPaths(dataDir).rejection, `${JSON.stringify(rejection, null, 2)}\n`, {
    mode: 0o644,
  });
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
  await syncDirectory(dataDir);
  return target;
}
