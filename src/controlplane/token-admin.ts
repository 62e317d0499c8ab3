// Admin operations on enrollment tokens: mint (idempotent by key, at most one live token per
// connector) and revoke. The token rows live only in SQLite; the record carries the live token's id
// and expiry for the connector view.
import { cpError } from './errors.ts';
import { requireOwned } from './ownership.ts';
import type { RecordTransaction } from './records.ts';
import type { ServiceContext } from './service-context.ts';
import { isBootstrapClosed } from './state.ts';
import type { Store } from './store.ts';
import { deriveToken, hashToken, MAX_TOKEN_TTL_SECONDS, newTokenId } from './tokens.ts';
import { iso, type MintedToken } from './views.ts';

/**
 * Inside a commit: revokes every live token row of the connector, each audited; returns how many.
 * The caller clears the record's liveToken in its staged copy.
 */
export function revokeLiveTokens(
  store: Store,
  tx: RecordTransaction,
  connectorId: string,
  now: number,
  reason: string,
): number {
  let revoked = 0;
  for (const token of store.liveTokens(connectorId)) {
    if (store.finishToken(token.tokenId, 'revoked', now)) {
      revoked += 1;
      tx.audit('token.revoked', connectorId, { tokenId: token.tokenId, reason }, now);
    }
  }
  return revoked;
}

export class TokenAdmin {
  private readonly context: ServiceContext;

  constructor(context: ServiceContext) {
    this.context = context;
  }

  mint(
    connectorId: string,
    request: { ttlSeconds?: number; idempotencyKey: string },
    ownerUid?: string,
  ): { created: boolean; token: MintedToken } {
    const { records, store, options, metrics, log } = this.context;
    const record = requireOwned(records, connectorId, ownerUid);
    const ttlSeconds = request.ttlSeconds ?? MAX_TOKEN_TTL_SECONDS;
    if (ttlSeconds > MAX_TOKEN_TTL_SECONDS) {
      throw cpError('TTL_TOO_LONG', `ttlSeconds must be at most ${MAX_TOKEN_TTL_SECONDS} (4 h)`, {
        field: 'ttlSeconds',
      });
    }
    const now = this.context.now();
    const { tokenKey } = options;
    const existing = store.tokenByIdempotencyKey(connectorId, request.idempotencyKey);
    if (existing) {
      if (existing.status === 'live' && existing.expiresAt > now) {
        const token = deriveToken(tokenKey, connectorId, existing.idempotencyKey, existing.tokenId);
        return {
          created: false,
          token: { tokenId: existing.tokenId, token, expiresAt: iso(existing.expiresAt) },
        };
      }
      throw cpError(
        'IDEMPOTENCY_KEY_CONSUMED',
        `the token minted with this idempotency key is ${existing.status === 'live' ? 'expired' : existing.status}; use a new key`,
        { tokenId: existing.tokenId },
      );
    }
    if (isBootstrapClosed(record)) {
      throw cpError('RECOVERY_REQUIRED', 'the connector is retired from bootstrap; begin a recovery first');
    }
    const tokenId = newTokenId();
    const token = deriveToken(tokenKey, connectorId, request.idempotencyKey, tokenId);
    const expiresAt = now + ttlSeconds * 1000;
    records.commit((tx) => {
      revokeLiveTokens(store, tx, connectorId, now, 'superseded by a new token');
      store.insertToken({
        tokenId,
        connectorId,
        idempotencyKey: request.idempotencyKey,
        tokenHash: hashToken(token),
        createdAt: now,
        expiresAt,
        status: 'live',
        finishedAt: null,
      });
      tx.audit(
        'token.minted',
        connectorId,
        { tokenId, expiresAt: iso(expiresAt), idempotencyKey: request.idempotencyKey },
        now,
      );
      tx.update(connectorId, now, (draft) => {
        draft.liveToken = { tokenId, expiresAt };
      });
    });
    metrics.tokensMinted.inc();
    log.info({ connectorId, tokenId, expiresAt: iso(expiresAt) }, 'enrollment token minted');
    return { created: true, token: { tokenId, token, expiresAt: iso(expiresAt) } };
  }

  /** Revokes every live token of the connector; returns how many (0 changes nothing). */
  revoke(connectorId: string, ownerUid?: string): number {
    const { records, store } = this.context;
    requireOwned(records, connectorId, ownerUid);
    const now = this.context.now();
    return records.commit((tx) => {
      const revoked = revokeLiveTokens(store, tx, connectorId, now, 'revoked by the operator');
      if (revoked > 0) {
        tx.update(connectorId, now, (draft) => {
          draft.liveToken = null;
        });
      }
      return revoked;
    });
  }
}
