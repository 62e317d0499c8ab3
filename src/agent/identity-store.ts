// The connector's identity bundle on durable storage (PAM_AGENT_DATA_DIR/identity): key.pem (0600),
// cert.pem, ca.pem and identity.json. Every file is replaced atomically (temporary file, fsync,
// rename, fsync of the directory), so a crash leaves either the old or the new file, never half of
// one. Loading verifies the bundle as a whole (the certificate signed by ca.pem, the key its own, the
// names this connector's) and classifies what it finds the way the runbook does: nothing (first
// boot), a usable identity, a lost identity (enrolled before, key or certificate gone) or an unusable
// one (unreadable, damaged, untrusted, mismatched, another connector's). A missing ca.pem alone is
// not a loss: the control plane gives it again. Loose file modes are repaired and reported. It never
// falls back to enrolling by itself. An identity the
// control plane refused is remembered (rejection.json, with fingerprints of the tokens mounted at
// each refusal) and, when a guided recovery mounts a new token, moved aside whole, never deleted.
import { createHash, createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import type { Stats } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../lib/errors.ts';
import {
  type CertificateFacts,
  certificateIssuedBy,
  keyMatchesCertificate,
  parseCertificateFacts,
} from '../lib/pki.ts';
import { describeDuration } from './connection-errors.ts';
import {
  type AgentFailure,
  configurationFailure,
  identityLostFailure,
  identityUnusableFailure,
} from './failure.ts';

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
  /** undefined leaves ca.pem as it is (only an identity loaded without ca.pem lacks it). */
  caPem: string | undefined;
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
  if (identity.caPem !== undefined) await writeFileAtomic(paths.ca, identity.caPem, 0o644);
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

/** A key that does not parse (truncated, garbled) is damaged, not "another key". */
function validatePrivateKey(keyPem: string, path: string): void {
  try {
    createPrivateKey(keyPem);
  } catch (error) {
    throw damaged(path, 'not a readable PEM private key', error);
  }
}

function readCertificateFacts(certPem: string, path: string): CertificateFacts {
  try {
    return parseCertificateFacts(certPem);
  } catch (error) {
    throw damaged(path, 'not a readable PEM X.509 certificate', error);
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The certificates of a CA bundle, each checked to parse: one bad block makes the bundle damaged. */
function readCaBundle(caPem: string, path: string): string[] {
  const blocks = caPem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw damaged(path, 'not a readable PEM certificate bundle');
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (error) {
      throw damaged(path, 'not a readable PEM certificate bundle', error);
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
 * Verifies the bundle as a whole before anything is written from it: each file readable, the
 * certificate signed by the CA in ca.pem (when ca.pem is there), the key its own, and the names
 * this connector's. Validity dates are not a reason to stop here: the local clock may be the one
 * that is wrong, so they only produce a warning (localValidityWarning) and the control plane decides.
 */
function verifyBundle(
  paths: IdentityPaths,
  bundle: { keyPem: string; certPem: string; caPem: string | undefined },
  expect: IdentityExpectations,
): CertificateFacts {
  validatePrivateKey(bundle.keyPem, paths.key);
  const facts = readCertificateFacts(bundle.certPem, paths.cert);
  if (bundle.caPem !== undefined) {
    const caCertificates = readCaBundle(bundle.caPem, paths.ca);
    if (!chainsToBundle(bundle.certPem, caCertificates)) {
      throw identityUnusableFailure(
        'IDENTITY_CHAIN_INVALID',
        `certificate chain does not verify: ${paths.cert} is not signed by the CA in ${paths.ca} ` +
          `(its issuer is "${facts.issuer.replace(/\n/g, ', ')}"): the certificate was replaced or altered`,
      );
    }
  }
  if (!keyMatchesCertificate(bundle.keyPem, bundle.certPem)) {
    throw identityUnusableFailure(
      'IDENTITY_KEY_MISMATCH',
      `private key does not match certificate: ${paths.key} is not the key ${paths.cert} was issued for`,
    );
  }
  const namesFailure = certificateNamesFailure(facts, expect, `the certificate ${paths.cert}`);
  if (namesFailure) throw namesFailure;
  return facts;
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
 * --san-uri-prefix that disagrees with the certificate) for anything else. identity.json is only
 * ever rewritten from a certificate that verified against ca.pem.
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
    // ca.pem alone is not identity: the control plane gives it again with every certificate.
    const missing = [
      keyRead.kind === 'missing' ? paths.key : undefined,
      certRead.kind === 'missing' ? paths.cert : undefined,
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

  // Key and certificate are present from here on; ca.pem may be missing (restored by the agent).
  const keyPem = (keyRead as { text: string }).text;
  const certPem = (certRead as { text: string }).text;
  const caPem = caRead.kind === 'ok' ? caRead.text : undefined;
  const facts = verifyBundle(paths, { keyPem, certPem, caPem }, expect);
  const skew = localValidityWarning(paths.cert, facts, expect.now);
  if (skew) notes.push(skew);

  if (!metadata || metadata.serial !== facts.serial || metadata.notAfter !== facts.notAfter.toISOString()) {
    // A crash between writing cert.pem and identity.json: the certificate is the truth.
    metadata = {
      connectorId: expect.connectorId,
      serial: facts.serial,
      notAfter: facts.notAfter.toISOString(),
      enrolledAt: metadata?.enrolledAt ?? facts.notBefore.toISOString(),
      controlPlaneUrl: metadata?.controlPlaneUrl ?? expect.controlPlaneUrl,
    };
    if (caPem !== undefined) {
      await writeMetadata(paths, metadata);
      notes.push(`rebuilt ${paths.metadata} from ${paths.cert} (serial ${facts.serial})`);
    } else {
      // Without ca.pem the chain is unverified: nothing is written until the control plane's answer.
      notes.push(
        `${paths.metadata} does not match ${paths.cert} (serial ${facts.serial}); it is rewritten once ` +
          `${paths.ca} is restored`,
      );
    }
  }
  return { kind: 'present', identity: { keyPem, certPem, caPem, metadata, facts }, notes };
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
