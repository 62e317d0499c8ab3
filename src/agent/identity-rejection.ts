// An identity the control plane refused, or that was reported lost, remembered in
// identity/rejection.json with fingerprints of the tokens mounted at each report: a token mounted
// after the first report (a guided recovery's) may replace the identity; one mounted before may not.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../lib/write-file-atomic.ts';
import { identityPaths, PUBLIC_FILE_MODE } from './identity-files.ts';

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
    mode: PUBLIC_FILE_MODE,
  });
  return rejection;
}
