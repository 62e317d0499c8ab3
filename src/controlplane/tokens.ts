// Enrollment tokens: `vpe_<tokenId>_<secret>`, tokenId 16 hex chars (random), secret 43 base64url
// chars = HMAC-SHA256(serverTokenKey, connectorId | idempotencyKey | tokenId). Deriving the secret
// lets a retried mint with the same idempotency key answer the same token while the database holds
// only sha256(token). The server key lives in <dataDir>/token-key (0600), apart from the database.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const TOKEN_PATTERN = /^vpe_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export const MAX_TOKEN_TTL_SECONDS = 4 * 60 * 60;

export function newTokenId(): string {
  return randomBytes(8).toString('hex');
}

export function newTokenKey(): Buffer {
  return randomBytes(32);
}

export function deriveToken(
  key: Buffer,
  connectorId: string,
  idempotencyKey: string,
  tokenId: string,
): string {
  const secret = createHmac('sha256', key)
    .update(`${connectorId}|${idempotencyKey}|${tokenId}`)
    .digest('base64url');
  return `vpe_${tokenId}_${secret}`;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** The token id of a well-formed token, or undefined. */
export function parseTokenId(token: string): string | undefined {
  return TOKEN_PATTERN.exec(token)?.[1];
}

/** Constant-time comparison of a presented token with a stored hash. */
export function tokenMatchesHash(token: string, storedHash: string): boolean {
  const presented = Buffer.from(hashToken(token), 'hex');
  const stored = Buffer.from(storedHash, 'hex');
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}
