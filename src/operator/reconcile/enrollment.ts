// The enrollment token's lifecycle outside a recovery: mint one only while the connector has never
// paired, keep at most one (the control plane revokes the previous on each mint), delete the Secret
// as soon as its token is consumed, revoked, expired or the connector is retired, and re-mint an
// expired one with a growing delay so a connector that cannot pair does not burn tokens.
import type { EnrollmentStatus } from '../api/types.ts';
import type { ControlPlaneConnector, TokenSecretFacts } from './observed.ts';

export const REMINT_BASE_DELAY_MS = 60_000;
export const REMINT_MAX_DELAY_MS = 60 * 60_000;
/** How soon to look again while the Secret informer catches up with a Secret just written. */
export const SECRET_CATCH_UP_MS = 1_000;

export interface EnrollmentInput {
  connectorUID: string;
  record: ControlPlaneConnector | undefined;
  tokenSecret: TokenSecretFacts | undefined;
  previous: EnrollmentStatus | undefined;
  now: Date;
  tokenSecretName: string;
  /** spec.paused: report what the Secret and record say, decide nothing (no mint, no delete). */
  paused?: boolean;
  /**
   * The agent stopped because the control plane refused the identity in its data directory
   * (assessment.ts, refusedIdentityOfNeverPaired): it does not use a token while that identity is
   * there, so none is minted or kept; a guided recovery mints the one that replaces it.
   */
  identityRefused?: boolean;
}

export interface EnrollmentDecision {
  status: EnrollmentStatus;
  mint?: { idempotencyKey: string };
  deleteSecret: boolean;
  /** The token in the Secret expired before the agent used it. */
  expiredUnused: boolean;
  /** The token in the Secret was revoked in the control plane before the agent used it. */
  revokedUnused?: boolean;
  /** Revoke the live token in the control plane: nobody can use it (identityRefused). */
  revoke?: boolean;
  requeueAfterMs?: number;
}

/** Idempotency key of the n-th enrollment mint of one Connector object (UID: a re-created object starts over). */
export function enrollmentMintKey(connectorUID: string, n: number): string {
  return `enroll-${connectorUID}-${n}`;
}

/** The mint number of an enrollment idempotency key of this Connector, if it is one. */
function enrollmentMintNumber(connectorUID: string, key: string | undefined): number | undefined {
  const prefix = enrollmentMintKey(connectorUID, 0).slice(0, -1);
  if (!key?.startsWith(prefix)) return undefined;
  const n = Number(key.slice(prefix.length));
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/**
 * True when the cached token Secret is older than the last mint this operator recorded: the Secret
 * informer has not delivered the replacement yet. Judging the old Secret would delete the fresh one
 * or mint yet another token.
 */
export function tokenSecretBehind(
  connectorUID: string,
  secret: TokenSecretFacts | undefined,
  lastMintKey: string | undefined,
): boolean {
  const seen = enrollmentMintNumber(connectorUID, secret?.mintKey);
  const last = enrollmentMintNumber(connectorUID, lastMintKey);
  return seen !== undefined && last !== undefined && seen < last;
}

/** Delay before the next mint after `expiries` consecutive tokens expired unused. */
export function remintDelayMs(expiries: number): number {
  if (expiries <= 1) return 0;
  return Math.min(REMINT_BASE_DELAY_MS * 2 ** (expiries - 2), REMINT_MAX_DELAY_MS);
}

/**
 * Whether the Secret holds the token the control plane reports live, and that token has not expired
 * yet (the record may come from the change stream, where "live" was true when it was sent).
 */
export function secretHoldsLiveToken(
  secret: TokenSecretFacts | undefined,
  record: ControlPlaneConnector | undefined,
  now: Date,
): boolean {
  if (!secret || secret.deleting || !record?.liveToken || !secret.expiresAt) return false;
  const expiresAt = new Date(secret.expiresAt).getTime();
  return expiresAt === new Date(record.liveToken.expiresAt).getTime() && expiresAt > now.getTime();
}

export function planEnrollment(input: EnrollmentInput): EnrollmentDecision {
  const { record, tokenSecret, now } = input;
  const previous = input.previous ?? {};
  const mintCount = previous.mintCount ?? 0;
  const retired = record?.bootstrapRetired === true;
  const live = secretHoldsLiveToken(tokenSecret, record, now);
  const status: EnrollmentStatus = { retired, mintCount };
  if (previous.lastMintKey) status.lastMintKey = previous.lastMintKey;
  if (previous.tokenMintedAt) status.tokenMintedAt = previous.tokenMintedAt;
  // The last token's expiry stays visible (and drives the re-mint delay) until the connector pairs.
  if (!retired && previous.tokenExpiresAt) status.tokenExpiresAt = previous.tokenExpiresAt;
  const expiredUnused =
    !retired &&
    record?.state === 'pending' &&
    tokenSecret?.expiresAt !== undefined &&
    new Date(tokenSecret.expiresAt).getTime() <= now.getTime();

  // Paused: gate before deciding. The counters stay as they are, because a mint that is not made
  // must not be counted, and no Event may announce it.
  if (input.paused) {
    if (live && tokenSecret) {
      status.tokenSecretName = tokenSecret.name;
      if (tokenSecret.expiresAt) status.tokenExpiresAt = tokenSecret.expiresAt;
    }
    return { status, deleteSecret: false, expiredUnused };
  }
  if (tokenSecretBehind(input.connectorUID, tokenSecret, previous.lastMintKey)) {
    return { status, deleteSecret: false, expiredUnused: false, requeueAfterMs: SECRET_CATCH_UP_MS };
  }
  // A token the agent will not use is not held: revoke it, delete its Secret, mint none.
  if (input.identityRefused && !retired && record?.state === 'pending') {
    delete status.tokenExpiresAt;
    return {
      status,
      deleteSecret: tokenSecret !== undefined && !tokenSecret.deleting,
      expiredUnused: false,
      ...(record.liveToken ? { revoke: true } : {}),
    };
  }
  if (live && tokenSecret) {
    status.tokenSecretName = tokenSecret.name;
    if (tokenSecret.expiresAt) status.tokenExpiresAt = tokenSecret.expiresAt;
    const expiresInMs = new Date(tokenSecret.expiresAt ?? now).getTime() - now.getTime();
    return {
      status,
      deleteSecret: false,
      expiredUnused: false,
      requeueAfterMs: Math.max(expiresInMs, 1_000),
    };
  }
  const deleteSecret = tokenSecret !== undefined && !tokenSecret.deleting;
  // Only a connector that never paired, and is not waiting for a recovery, gets a token here.
  if (record?.state !== 'pending' || retired) {
    return { status, deleteSecret, expiredUnused };
  }
  // A token the control plane no longer reports live before its own expiry was revoked there (an
  // admin's act): its life ended now, so the re-mint backoff counts from now, not from the expiry
  // it will never reach.
  const revokedUnused =
    deleteSecret &&
    !expiredUnused &&
    tokenSecret?.expiresAt !== undefined &&
    new Date(tokenSecret.expiresAt).getTime() > now.getTime();
  if (revokedUnused) {
    status.tokenExpiresAt = `${now.toISOString().slice(0, 19)}Z`;
    return { status, deleteSecret, expiredUnused: false, revokedUnused, requeueAfterMs: SECRET_CATCH_UP_MS };
  }
  // Every token minted so far expired or was lost unused, or the connector would have paired.
  const expiries = mintCount;
  const lastExpiry = previous.tokenExpiresAt ? new Date(previous.tokenExpiresAt).getTime() : undefined;
  const earliest = lastExpiry === undefined ? now.getTime() : lastExpiry + remintDelayMs(expiries);
  if (mintCount > 0 && earliest > now.getTime()) {
    return { status, deleteSecret, expiredUnused: true, requeueAfterMs: earliest - now.getTime() };
  }
  const next = mintCount + 1;
  const idempotencyKey = enrollmentMintKey(input.connectorUID, next);
  return {
    status: {
      ...status,
      mintCount: next,
      lastMintKey: idempotencyKey,
      tokenMintedAt: `${now.toISOString().slice(0, 19)}Z`,
    },
    mint: { idempotencyKey },
    deleteSecret,
    expiredUnused: expiredUnused || mintCount > 0,
  };
}
