// Verifying an identity bundle as a whole, without writing anything: each file what its name says
// (a key in key.pem, a certificate in cert.pem, nothing swapped or cut off), the certificate signed
// by the CA in ca.pem, the names this connector's, the key its own. Each finding is the runbook's
// class of failure with the troubleshooting guide's words: damaged, misplaced or swapped files,
// another connector's certificate, another key, a chain that does not verify (exit 13), or the
// agent's own --san-uri-prefix (exit 12). Validity dates only ever produce a warning.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { describeDuration } from '../lib/duration.ts';
import {
  type CertificateFacts,
  certificateIssuedBy,
  keyMatchesCertificate,
  parseCertificateFacts,
} from '../lib/pki.ts';
import { type AgentFailure, configurationFailure, identityUnusableFailure } from './failure.ts';
import type { IdentityExpectations, IdentityPaths } from './identity-files.ts';

function damaged(path: string, what: string, cause?: unknown): AgentFailure {
  return identityUnusableFailure('IDENTITY_DAMAGED', `${path} is damaged: ${what}`, cause);
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
export function validatePrivateKey(keyPem: string, path: string): void {
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
export type CaBundleVerdict =
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
export function verifyBundle(
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
