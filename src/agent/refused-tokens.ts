// Enrollment tokens the control plane refused for good (invalid, expired, revoked), remembered in
// identity/refused-tokens.json as salted fingerprints: a later start with the same token mounted
// fails closed the same way without sending it again. Without this, an agent whose data directory
// was emptied while its spent token stayed mounted presented that token at every restart of a
// crash loop, which the runbook forbids ("do not treat repeated bootstrap retries as a normal
// restart path"). A different token (a fresh one the operator or an admin mounted) is sent.
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../lib/write-file-atomic.ts';
import { identityPaths, PUBLIC_FILE_MODE } from './identity-files.ts';
import { tokenFingerprint } from './identity-rejection.ts';

/** The refusals that no retry of the same token can change. */
const FINAL_REFUSALS = new Set([
  'ENROLLMENT_TOKEN_INVALID',
  'ENROLLMENT_TOKEN_EXPIRED',
  'ENROLLMENT_TOKEN_REVOKED',
]);

export function isFinalTokenRefusal(code: string): boolean {
  return FINAL_REFUSALS.has(code);
}

/** One refused token: its fingerprint and the control plane's answer, public facts only. */
export interface RefusedToken {
  token: string;
  refusedAt: string;
  code: string;
  httpStatus: number;
  message: string;
  previouslyPaired: boolean;
}

const MAX_REFUSED = 16;

/**
 * Salted with the connector id and the control plane's URL: the refusal was that control plane's, of
 * this connector's token; pointed at another one (a path fixed, a control plane restored or moved)
 * the agent sends the token again.
 */
function fingerprintOf(connectorId: string, controlPlaneUrl: string, token: string): string {
  return tokenFingerprint(`refused-enrollment-token:${connectorId}:${controlPlaneUrl}`, token);
}

async function readAll(dataDir: string): Promise<RefusedToken[]> {
  let text: string;
  try {
    text = await readFile(identityPaths(dataDir).refusedTokens, 'utf8');
  } catch {
    return [];
  }
  try {
    const value = JSON.parse(text) as { refused?: unknown };
    if (!Array.isArray(value.refused)) return [];
    // An entry that is not whole is no record: its token is sent, and a refusal recorded again.
    return value.refused.filter(
      (entry): entry is RefusedToken =>
        typeof entry === 'object' &&
        entry !== null &&
        typeof entry.token === 'string' &&
        typeof entry.code === 'string' &&
        isFinalTokenRefusal(entry.code) &&
        typeof entry.refusedAt === 'string' &&
        typeof entry.message === 'string' &&
        Number.isInteger(entry.httpStatus) &&
        typeof entry.previouslyPaired === 'boolean',
    );
  } catch {
    // A damaged record is no record: the token is sent, and a refusal is recorded again.
    return [];
  }
}

/** The recorded refusal of `token` for `connectorId` by this control plane, if it refused it for good before. */
export async function refusalOf(
  dataDir: string,
  connectorId: string,
  controlPlaneUrl: string,
  token: string,
): Promise<RefusedToken | undefined> {
  const fingerprint = fingerprintOf(connectorId, controlPlaneUrl, token);
  return (await readAll(dataDir)).find((entry) => entry.token === fingerprint);
}

/** Remembers that the control plane refused `token` for good (the identity directory exists by now). */
export async function recordRefusedToken(
  dataDir: string,
  connectorId: string,
  controlPlaneUrl: string,
  token: string,
  refusal: Omit<RefusedToken, 'token'>,
): Promise<void> {
  const fingerprint = fingerprintOf(connectorId, controlPlaneUrl, token);
  const others = (await readAll(dataDir)).filter((entry) => entry.token !== fingerprint);
  const refused = [...others, { token: fingerprint, ...refusal }].slice(-MAX_REFUSED);
  await writeFileAtomic(identityPaths(dataDir).refusedTokens, `${JSON.stringify({ refused }, null, 2)}\n`, {
    mode: PUBLIC_FILE_MODE,
  });
}
