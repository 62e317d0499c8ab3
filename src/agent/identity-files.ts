// The connector's identity bundle on durable storage (PAM_AGENT_DATA_DIR/identity): key.pem (0600),
// cert.pem, ca.pem, identity.json and, once the control plane refused the identity, rejection.json
// (or, once it refused an enrollment token for good, refused-tokens.json).
// Where each file is, the modes they are written with, and what a loaded identity holds. Reading
// and verifying the bundle is identity-load.ts (with identity-verify.ts), writing it
// identity-write.ts, setting damaged files aside identity-repair.ts, file modes identity-modes.ts.
import { join } from 'node:path';
import type { CertificateFacts } from '../lib/pki.ts';

export const KEY_FILE_MODE = 0o600;
export const DIRECTORY_MODE = 0o700;
/** cert.pem, ca.pem, identity.json, rejection.json, refused-tokens.json: public facts, readable by all, written by the owner only. */
export const PUBLIC_FILE_MODE = 0o644;

export interface IdentityPaths {
  dir: string;
  key: string;
  cert: string;
  ca: string;
  metadata: string;
  /** Written when the control plane refuses this identity (see recordRejection). */
  rejection: string;
  /** Written when the control plane refuses an enrollment token for good (refused-tokens.ts). */
  refusedTokens: string;
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
    refusedTokens: join(dir, 'refused-tokens.json'),
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
