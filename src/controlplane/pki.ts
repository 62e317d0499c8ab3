// The control plane's certificate authority: created on first start and kept in the data directory
// (ca.pem, ca-key.pem with mode 0600), the HTTPS serving certificate (issued by the CA at every
// start for the configured host names), and connector client certificates.
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import {
  type CertificateFacts,
  type CsrFacts,
  generateKeyPairPem,
  issueCertificatePem,
  normalizeSerial,
  parseCertificateFacts,
  publicKeySha256,
  verifyCsrPem,
} from '../lib/pki.ts';
import { writeFileAtomic } from '../lib/write-file-atomic.ts';
import { cpError } from './errors.ts';

const HOUR = 3_600_000;
const CA_LIFETIME_MS = 10 * 365 * 24 * HOUR;
const SERVING_LIFETIME_MS = 365 * 24 * HOUR;
/** Certificates are back-dated a little so a client whose clock runs behind still accepts them. */
const BACKDATE_MS = 5 * 60_000;

export interface CertificateAuthority {
  certPem: string;
  certPath: string;
  key: KeyObject;
}

export async function loadOrCreateCa(dataDir: string, now: Date): Promise<CertificateAuthority> {
  const certPath = join(dataDir, 'ca.pem');
  const keyPath = join(dataDir, 'ca-key.pem');
  if (existsSync(certPath) && existsSync(keyPath)) {
    const certPem = readFileSync(certPath, 'utf8');
    const key = createPrivateKey(readFileSync(keyPath, 'utf8'));
    if (!new X509Certificate(certPem).checkPrivateKey(key)) {
      throw cpError('INTERNAL_ERROR', `${keyPath} does not belong to ${certPath}`);
    }
    return { certPem, certPath, key };
  }
  const pair = await generateKeyPairPem('ec-p256');
  const certPem = issueCertificatePem({
    issuerKeyPem: pair.privateKeyPem,
    subjectPublicKey: pair.publicKeyPem,
    subject: [
      { shortName: 'CN', value: 'VaultPAM reference control plane CA' },
      { shortName: 'O', value: 'VaultPAM' },
    ],
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + CA_LIFETIME_MS),
    isCa: true,
  });
  // Key first: a cert without its key is never left behind.
  await writeFileAtomic(keyPath, pair.privateKeyPem, { mode: 0o600 });
  await writeFileAtomic(certPath, certPem, { mode: 0o644 });
  return { certPem, certPath, key: createPrivateKey(pair.privateKeyPem) };
}

export async function issueServingCertificate(
  ca: CertificateAuthority,
  hostnames: readonly string[],
  now: Date,
): Promise<{ certPem: string; keyPem: string }> {
  const pair = await generateKeyPairPem('ec-p256');
  const certPem = issueCertificatePem({
    issuerKeyPem: ca.key,
    issuerCertPem: ca.certPem,
    subjectPublicKey: pair.publicKeyPem,
    subject: [{ shortName: 'CN', value: hostnames[0] ?? 'localhost' }],
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + SERVING_LIFETIME_MS),
    sanDnsNames: hostnames.filter((name) => isIP(name) === 0),
    sanIps: hostnames.filter((name) => isIP(name) !== 0),
    extendedKeyUsage: ['serverAuth'],
  });
  return { certPem, keyPem: pair.privateKeyPem };
}

/**
 * Checks a connector's CSR (proof of possession, key type, subject CN = connectorId) and issues its
 * client certificate: CN=<connectorId>, SAN URI <prefix><connectorId>, clientAuth EKU.
 */
export function issueConnectorCertificate(
  ca: CertificateAuthority,
  connectorId: string,
  csrPem: string,
  options: { now: Date; lifetimeMs: number; sanUriPrefix: string },
): { certificatePem: string; facts: CertificateFacts; publicKeySha256: string } {
  const csr = connectorCsr(csrPem, connectorId);
  const certificatePem = issueCertificatePem({
    issuerKeyPem: ca.key,
    issuerCertPem: ca.certPem,
    subjectPublicKey: csr.publicKey,
    subject: [{ shortName: 'CN', value: connectorId }],
    notBefore: new Date(options.now.getTime() - BACKDATE_MS),
    notAfter: new Date(options.now.getTime() + options.lifetimeMs),
    sanUris: [`${options.sanUriPrefix}${connectorId}`],
    extendedKeyUsage: ['clientAuth'],
  });
  return {
    certificatePem,
    facts: parseCertificateFacts(certificatePem),
    publicKeySha256: publicKeySha256(csr.publicKey),
  };
}

/** A connector's CSR, checked: proof of possession, key type, subject CN = connectorId (else CSR_*). */
function connectorCsr(csrPem: string, connectorId: string): CsrFacts {
  const csr = verifyCsrPem(csrPem);
  if (csr.subjectCommonName !== connectorId) {
    throw cpError('CSR_SUBJECT_MISMATCH', 'the CSR subject CN must be the connectorId');
  }
  return csr;
}

/**
 * The SHA-256 of the key a connector's CSR proves it holds, or undefined for any CSR
 * issueConnectorCertificate would refuse. Issues nothing.
 */
export function csrKeySha256(csrPem: string, connectorId: string): string | undefined {
  try {
    return publicKeySha256(connectorCsr(csrPem, connectorId).publicKey);
  } catch {
    return undefined;
  }
}

export interface PeerIdentity {
  connectorId: string;
  serial: string;
  notBefore: number;
  notAfter: number;
  /** Where the certificate was presented from, for the log line of a refusal. */
  remoteAddress?: string;
}

/** The connector id a certificate's SAN URI names after the configured prefix, if any. */
export function sanConnectorId(peer: PeerCertificate, sanUriPrefix: string): string | undefined {
  const uri = (peer.subjectaltname ?? '')
    .split(/,\s*/)
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4))
    .find((value) => value.startsWith(sanUriPrefix));
  return uri?.slice(sanUriPrefix.length);
}

/** A TLS peer certificate's validity dates, in epoch milliseconds. */
export function peerValidity(peer: PeerCertificate): { notBefore: number; notAfter: number } {
  return { notBefore: new Date(peer.valid_from).getTime(), notAfter: new Date(peer.valid_to).getTime() };
}

/**
 * The connector a TLS peer certificate names, from its SAN URI with the configured prefix; undefined
 * when it is not a connector certificate. Chain and signature are checked by TLS (socket.authorized).
 */
export function peerIdentity(peer: PeerCertificate, sanUriPrefix: string): PeerIdentity | undefined {
  const connectorId = sanConnectorId(peer, sanUriPrefix);
  if (connectorId === undefined) return undefined;
  const cn = peer.subject?.CN;
  if (cn !== undefined && cn !== connectorId) return undefined;
  return { connectorId, serial: normalizeSerial(peer.serialNumber), ...peerValidity(peer) };
}
