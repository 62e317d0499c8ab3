// Admin bearer credentials (held only as SHA-256 hashes, compared in constant time) and the mTLS
// client-certificate check for agent routes.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { cpError } from '../errors.ts';
import { type PeerIdentity, peerIdentity } from '../pki.ts';

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

// The wording the enrollment troubleshooting guide teaches people to look for, by OpenSSL verify code.
// (The operator reads the same codes as "this CA does not vouch for the server" when it checks a
// ControlPlane.)
export const UNKNOWN_AUTHORITY: ReadonlySet<string> = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
]);

function rejectionWording(reason: string): string {
  if (UNKNOWN_AUTHORITY.has(reason)) return `certificate signed by unknown authority (${reason})`;
  if (reason === 'CERT_HAS_EXPIRED' || reason === 'CERT_NOT_YET_VALID') {
    return `certificate has expired or is not yet valid (${reason})`;
  }
  return `the certificate is not valid for this control plane (${reason})`;
}

/** Per-connection cache: the peer certificate does not change within a TLS connection. */
const identities = new WeakMap<TLSSocket, PeerIdentity | Error>();

export function clientIdentity(req: IncomingMessage, sanUriPrefix: string): PeerIdentity {
  const socket = req.socket as TLSSocket;
  let identity = identities.get(socket);
  if (identity === undefined) {
    identity = resolveIdentity(socket, sanUriPrefix);
    identities.set(socket, identity);
  }
  if (identity instanceof Error) throw identity;
  return identity;
}

function resolveIdentity(socket: TLSSocket, sanUriPrefix: string): PeerIdentity | Error {
  const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
  if (!peer || Object.keys(peer).length === 0) {
    return cpError(
      'CLIENT_CERTIFICATE_REQUIRED',
      'client certificate required: this route needs a connector client certificate (mTLS)',
    );
  }
  if (!socket.authorized) {
    const reason = String(socket.authorizationError ?? 'unknown');
    return cpError(
      'CLIENT_CERTIFICATE_REJECTED',
      `client certificate rejected: ${rejectionWording(reason)}`,
      {
        reason,
      },
    );
  }
  const identity = peerIdentity(peer, sanUriPrefix);
  return (
    identity ??
    cpError('CLIENT_CERTIFICATE_REJECTED', 'the client certificate is not a connector certificate')
  );
}
