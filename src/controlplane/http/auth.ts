// Admin bearer credentials (held only as SHA-256 hashes, compared in constant time) and the
// TLS-level client-certificate checks for agent routes (the record-level ones are the service's).
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { normalizeSerial } from '../../lib/pki.ts';
import {
  type CertificateRefusal,
  notConnectorCertificate,
  outsideValidity,
  type PresentedCertificate,
  untrustedCertificate,
} from '../certificate-refusal.ts';
import { cpError } from '../errors.ts';
import { type PeerIdentity, peerIdentity, peerValidity, sanConnectorId } from '../pki.ts';
import { CONNECTOR_ID_PATTERN } from './validate.ts';

const sha256 = (value: string): Buffer => createHash('sha256').update(value).digest();

const HASH_LINE = /^sha256:([0-9a-f]{64})$/i;

/**
 * The stored form of one credential line: a line `sha256:<64 hex digits>` is already a hash (so a
 * credential file may hold hashes only); any other line is the credential itself, hashed here.
 */
export function credentialHash(line: string): Buffer {
  const hashed = HASH_LINE.exec(line);
  return hashed ? Buffer.from(hashed[1] as string, 'hex') : sha256(line);
}

/** True when the line is a hash rather than a usable credential. */
export function isCredentialHash(line: string): boolean {
  return HASH_LINE.test(line);
}

/** The line written to a hash file for a credential. */
export function credentialHashLine(credential: string): string {
  return `sha256:${sha256(credential).toString('hex')}`;
}

export class AdminAuth {
  private readonly hashes: Buffer[];

  /** `lines`: credentials or `sha256:<hex>` hashes of them. */
  constructor(lines: readonly string[]) {
    this.hashes = lines.map(credentialHash);
  }

  /** Throws 401 UNAUTHORIZED unless the request carries one of the admin credentials. */
  check(req: IncomingMessage): void {
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const presented = sha256(match?.[1] ?? '');
    // Compare against every hash, so the time does not tell which (or whether any) matched early.
    let ok = false;
    for (const hash of this.hashes) ok = timingSafeEqual(presented, hash) || ok;
    if (!match || !ok) throw cpError('UNAUTHORIZED', 'a valid admin bearer credential is required');
  }
}

/** The answer to a request without a client certificate: nothing was presented, so nothing is refused. */
export function clientCertificateRequired(): Error {
  return cpError(
    'CLIENT_CERTIFICATE_REQUIRED',
    'client certificate required: this route needs a connector client certificate (mTLS)',
  );
}

/** What a client certificate is, as far as TLS and its names tell (the record is asked later). */
export type ClientCertificate =
  | { kind: 'none' }
  | { kind: 'refused'; refusal: CertificateRefusal }
  | { kind: 'connector'; identity: PeerIdentity };

/**
 * Per-connection cache of accepted identities: the peer certificate does not change within a TLS
 * connection. Refusals are not cached: their message carries the control plane's time.
 */
const identities = new WeakMap<TLSSocket, PeerIdentity>();

/** `now`: the control plane's clock, named in the refusal of a certificate outside its validity. */
export function clientCertificate(
  req: IncomingMessage,
  sanUriPrefix: string,
  now: number,
): ClientCertificate {
  const socket = req.socket as TLSSocket;
  const cached = identities.get(socket);
  if (cached) return { kind: 'connector', identity: cached };
  const judged = judgeClientCertificate(socket, sanUriPrefix, now);
  if (judged.kind === 'connector') identities.set(socket, judged.identity);
  return judged;
}

/** The TLS-level checks, in order: none presented, not trusted or outside its dates, not a connector's. */
function judgeClientCertificate(socket: TLSSocket, sanUriPrefix: string, now: number): ClientCertificate {
  const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
  if (!peer || Object.keys(peer).length === 0) return { kind: 'none' };
  const remoteAddress = socket.remoteAddress ?? null;
  if (!socket.authorized) {
    const verifyCode = String(socket.authorizationError ?? 'unknown');
    return { kind: 'refused', refusal: tlsRefusal(peer, sanUriPrefix, verifyCode, now, remoteAddress) };
  }
  const identity = peerIdentity(peer, sanUriPrefix);
  if (!identity) {
    const presented = presentedCertificate(peer, sanUriPrefix, true, remoteAddress);
    return { kind: 'refused', refusal: notConnectorCertificate(sanUriPrefix, presented) };
  }
  return { kind: 'connector', identity: { ...identity, remoteAddress: remoteAddress ?? undefined } };
}

const DATE_CODES: Record<string, 'CLIENT_CERTIFICATE_EXPIRED' | 'CLIENT_CERTIFICATE_NOT_YET_VALID'> = {
  CERT_HAS_EXPIRED: 'CLIENT_CERTIFICATE_EXPIRED',
  CERT_NOT_YET_VALID: 'CLIENT_CERTIFICATE_NOT_YET_VALID',
};

/**
 * TLS refused the certificate. OpenSSL judges the dates only after it built the chain to a trusted
 * CA and verified the signatures, so a date refusal comes from a certificate of this CA.
 */
function tlsRefusal(
  peer: PeerCertificate,
  sanUriPrefix: string,
  verifyCode: string,
  now: number,
  remoteAddress: string | null,
): CertificateRefusal {
  const dateCode = DATE_CODES[verifyCode];
  const presented = presentedCertificate(peer, sanUriPrefix, dateCode !== undefined, remoteAddress);
  if (dateCode) return outsideValidity(dateCode, peerValidity(peer), now, presented, verifyCode);
  return untrustedCertificate(verifyCode, presented);
}

/** The refused certificate's public facts; a SAN that is not a connector id is not repeated. */
function presentedCertificate(
  peer: PeerCertificate,
  sanUriPrefix: string,
  issuedHere: boolean,
  remoteAddress: string | null,
): PresentedCertificate {
  const named = sanConnectorId(peer, sanUriPrefix);
  return {
    connectorId: named !== undefined && CONNECTOR_ID_PATTERN.test(named) ? named : null,
    issuedHere,
    serial: typeof peer.serialNumber === 'string' ? normalizeSerial(peer.serialNumber) : null,
    remoteAddress,
  };
}
