// Admin bearer credentials (held only as SHA-256 hashes, compared in constant time) and the mTLS
// client-certificate check for agent routes.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { cpError } from '../errors.ts';
import { type PeerIdentity, peerIdentity } from '../pki.ts';

const sha256 = (value: string): Buffer => createHash('sha256').update(value).digest();

export class AdminAuth {
  private readonly hashes: Buffer[];

  constructor(credentials: readonly string[]) {
    this.hashes = credentials.map(sha256);
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
    return cpError('CLIENT_CERTIFICATE_REQUIRED', 'this route needs a connector client certificate (mTLS)');
  }
  if (!socket.authorized) {
    return cpError(
      'CLIENT_CERTIFICATE_REJECTED',
      'the client certificate is not valid for this control plane',
      {
        reason: String(socket.authorizationError ?? 'unknown'),
      },
    );
  }
  const identity = peerIdentity(peer, sanUriPrefix);
  return (
    identity ??
    cpError('CLIENT_CERTIFICATE_REJECTED', 'the client certificate is not a connector certificate')
  );
}
