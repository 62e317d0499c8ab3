// The enrollment token's lifecycle outside a recovery: mint one only while the connector has never
// paired, keep at most one (the control plane revokes the previous on each mint), delete the Secret
// as soon as its token is consumed, revoked, expired or the connector is retired, and re-mint an
// expired one with a growing delay so a connector that cannot pair does not burn tokens.
//
// Two parts: planEnrollment decides (held by the pass's gates, it decides nothing), and
// enrollmentSteps turns the decision into the steps act.ts runs, each with the status it sets and
// the Event that says what it did.

import { backoffDelay } from '../../lib/backoff.ts';
import type { EnrollmentStatus } from '../api/types.ts';
import { statusTime } from '../conditions.ts';
import type { ControlPlaneConnector, TokenSecretFacts } from './observed.ts';
import type { PlannedEvent, PlanStep } from './plan-types.ts';
import type { AgentPodFacts } from './pod-facts.ts';
import { liveTokenWithoutSecret, restoreTokenSecretStep } from './token-restore.ts';

export const REMINT_BASE_DELAY_MS = 60_000;
export const REMINT_MAX_DELAY_MS = 60 * 60_000;
/**
 * How much later than the tokenMintedAt its pass planned with a token's expiry may be, a TTL on: the
 * control plane mints after the pass's earlier steps.
 */
export const MINT_PASS_SLACK_MS = 30_000;
/** How soon to look again while the Secret informer catches up with a Secret just written. */
export const SECRET_CATCH_UP_MS = 1_000;

export interface EnrollmentInput {
  connectorUID: string;
  record: ControlPlaneConnector | undefined;
  tokenSecret: TokenSecretFacts | undefined;
  previous: EnrollmentStatus | undefined;
  now: Date;
  tokenSecretName: string;
  /**
   * Paused, blocked, or the control plane not answering (gates.ts): report what the Secret and
   * record say, decide nothing (no mint, no delete, nothing counted).
   */
  held?: boolean;
  /**
   * The agent stopped because the control plane refused the identity in its data directory
   * (assessment.ts, refusedIdentityOfNeverPaired): it does not use a token while that identity is
   * there, so none is minted or kept; a guided recovery mints the one that replaces it.
   */
  identityRefused?: boolean;
  /**
   * The agent lost the identity it paired with before its first heartbeat (pairingLost): bootstrap
   * is not retired, so a fresh token pairs it again, as for a connector that never paired.
   */
  pairingLost?: boolean;
  /**
   * The Secret holds the one token of a recovery attempt that is no longer under way (it ended
   * Failed after its token was minted: the agent stopped instead of pairing, say). That token is
   * nobody's to use: kept, a restarted agent would pair with it later outside any attempt, the
   * "silent retry of an old token" the runbook forbids. It is revoked and its Secret deleted; a
   * new request id mints the next one.
   */
  endedRecoveryToken?: boolean;
  /** spec.enrollment.tokenTTL: the lifetime of the tokens minted now. */
  ttlSeconds?: number;
}

export interface EnrollmentDecision {
  /** The enrollment status as it stands, before any step of this decision runs. */
  status: EnrollmentStatus;
  /** Mint with this key; `status` is the enrollment status once the token is stored. */
  mint?: { idempotencyKey: string; status: EnrollmentStatus };
  deleteSecret: boolean;
  /** The token in the Secret expired before the agent used it. */
  expiredUnused: boolean;
  /** The token in the Secret was revoked in the control plane before the agent used it. */
  revokedUnused?: boolean;
  /** Revoke the live token in the control plane: nobody can use it (identityRefused, endedRecoveryToken). */
  revoke?: boolean;
  /**
   * The token Secret is gone (deleted by hand) while the last token counted is live and unused: the
   * mint asks again with that token's key, which the control plane answers with the same token
   * (idempotent by key), and stores it in a new Secret. No new token; `mint.status` keeps the
   * counters. `expiresAt`: that token's expiry.
   */
  restoresSecret?: { expiresAt: string };
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

/**
 * Whether the agent lost the identity it paired with before its first heartbeat: the record is
 * enrolling and not retired, and the agent of the current pod is stopped (not running, not ready),
 * its last exit after that pairing and without an identity (FirstBootBootstrap: no token, or only
 * the spent one, or the answer with its certificate lost; IdentityLoss IDENTITY_LOST: an identity
 * file without its key). Its data directory went with the pod (emptyDir) or the claim was replaced
 * in between. Bootstrap
 * retires at the first heartbeat only, so this is still the runbook's first-boot branch: the
 * control plane mints for the record (and refuses a recovery: RECOVERY_NOT_NEEDED), and the agent
 * pairs again with a fresh token. An exit from before the pairing (a first start that waited for
 * its token, kept in lastState) says nothing about the identity.
 */
export function pairingLost(
  record: ControlPlaneConnector | undefined,
  agent: AgentPodFacts | undefined,
): boolean {
  if (!record || record.bootstrapRetired || record.state !== 'enrolling' || !record.enrolledAt) return false;
  const t = agent?.termination;
  // A running agent is still at something (pairing, retrying the control plane): wait for it.
  if (!agent || agent.running || agent.ready || !t?.finishedAt) return false;
  if (new Date(t.finishedAt).getTime() < new Date(record.enrolledAt).getTime()) return false;
  return (
    t.failureClass === 'FirstBootBootstrap' ||
    (t.failureClass === 'IdentityLoss' && t.code === 'IDENTITY_LOST')
  );
}

/** Delay before the next mint after `expiries` consecutive tokens expired unused. */
export function remintDelayMs(expiries: number): number {
  if (expiries <= 1) return 0;
  return backoffDelay(expiries - 1, { baseMs: REMINT_BASE_DELAY_MS, capMs: REMINT_MAX_DELAY_MS });
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
  // A key the control plane refused as consumed is remembered until the counter has passed it.
  const consumed = enrollmentMintNumber(input.connectorUID, previous.consumedMintKey);
  if (consumed !== undefined && consumed > mintCount) status.consumedMintKey = previous.consumedMintKey;
  // The last token's expiry stays visible (and drives the re-mint delay) until the connector pairs.
  if (!retired && previous.tokenExpiresAt) status.tokenExpiresAt = previous.tokenExpiresAt;
  // Waiting for a token: never paired, or paired and lost that identity before the first heartbeat.
  const unpaired =
    !retired &&
    (record?.state === 'pending' || (record?.state === 'enrolling' && input.pairingLost === true));
  const expiredUnused =
    unpaired &&
    tokenSecret?.expiresAt !== undefined &&
    new Date(tokenSecret.expiresAt).getTime() <= now.getTime();

  // Held: gate before deciding. The counters stay as they are, because a mint that is not made
  // must not be counted, and no Event may announce it.
  if (input.held) {
    if (live && tokenSecret) {
      status.tokenSecretName = tokenSecret.name;
      if (tokenSecret.expiresAt && countsAsLastMint(input.connectorUID, tokenSecret, status))
        status.tokenExpiresAt = tokenSecret.expiresAt;
    }
    return { status, deleteSecret: false, expiredUnused };
  }
  if (tokenSecretBehind(input.connectorUID, tokenSecret, previous.lastMintKey)) {
    return { status, deleteSecret: false, expiredUnused: false, requeueAfterMs: SECRET_CATCH_UP_MS };
  }
  // A Secret holding a later mint than the status counts proves that mint was made (the pass that
  // minted and stored it failed afterwards, or the operator died before writing its status). The
  // status counts it from now on: once that Secret is deleted (its token expired or revoked), it
  // is the only record of the spent key, and a pass that forgot it would mint with a key below the
  // token the control plane holds live, to be refused (IDEMPOTENCY_KEY_CONSUMED).
  const provenBySecret = enrollmentMintNumber(input.connectorUID, tokenSecret?.mintKey);
  if (provenBySecret !== undefined && provenBySecret > mintCount && tokenSecret?.mintKey) {
    status.mintCount = provenBySecret;
    status.lastMintKey = tokenSecret.mintKey;
    // The mint time recorded is the counted mint's, not this one's: its Secret's creation is the
    // closest fact there is (written right after the mint). Without one, no time is better than an
    // older one, which would make the token's lifetime look longer (and the unused-token alert,
    // which reads the share of it left, fire early).
    if (tokenSecret.createdAt) status.tokenMintedAt = tokenSecret.createdAt;
    else delete status.tokenMintedAt;
  }
  // status.tokenExpiresAt is the expiry of the token lastMintKey names, once a Secret showed it: a
  // Secret holding that key says it, live or not (the backoff counts from it, and a token live with
  // another expiry is not that one).
  if (!retired && tokenSecret?.expiresAt && countsAsLastMint(input.connectorUID, tokenSecret, status))
    status.tokenExpiresAt = tokenSecret.expiresAt;
  // An ended recovery's token is not held either: revoke it, delete its Secret, mint none now.
  if (input.endedRecoveryToken) {
    return {
      status,
      deleteSecret: tokenSecret !== undefined && !tokenSecret.deleting,
      expiredUnused: false,
      ...(record?.liveToken ? { revoke: true } : {}),
    };
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
    if (tokenSecret.expiresAt && countsAsLastMint(input.connectorUID, tokenSecret, status))
      status.tokenExpiresAt = tokenSecret.expiresAt;
    const expiresInMs = new Date(tokenSecret.expiresAt ?? now).getTime() - now.getTime();
    return {
      status,
      deleteSecret: false,
      expiredUnused: false,
      requeueAfterMs: Math.max(expiresInMs, 1_000),
    };
  }
  const deleteSecret = tokenSecret !== undefined && !tokenSecret.deleting;
  // Only a connector that never paired (or lost the pairing before its first heartbeat), and is not
  // waiting for a recovery, gets a token here.
  if (!unpaired || !record) {
    return { status, deleteSecret, expiredUnused };
  }
  // A token the control plane no longer reports live before its own expiry was revoked there (an
  // admin's act): its life ended now, so the re-mint backoff counts from now, not from the expiry
  // it will never reach. (An enrolling record's token may have been spent by the lost pairing.)
  const revokedUnused =
    record.state === 'pending' &&
    deleteSecret &&
    !expiredUnused &&
    tokenSecret?.expiresAt !== undefined &&
    new Date(tokenSecret.expiresAt).getTime() > now.getTime();
  if (revokedUnused) {
    status.tokenExpiresAt = statusTime(now);
    return { status, deleteSecret, expiredUnused: false, revokedUnused, requeueAfterMs: SECRET_CATCH_UP_MS };
  }
  // A Secret holding a later mint than the status counts proves that mint was made: a pass that
  // minted and stored it failed afterwards (or the operator died before writing the status), which
  // leaves the counter as it was. Its key is spent once its token expires, so the next mint counts
  // on from it rather than asking for that key again (refused for good: IDEMPOTENCY_KEY_CONSUMED).
  // A key the control plane refused as consumed (pass-status.ts records it) proves the same of a
  // mint whose Secret was never stored, once its token was revoked or expired.
  const minted = Math.max(
    mintCount,
    enrollmentMintNumber(input.connectorUID, tokenSecret?.mintKey) ?? 0,
    consumed ?? 0,
  );
  // Every token minted so far expired or was lost unused (or paired an identity that was lost), or
  // the connector would have paired.
  const expiries = minted;
  // A token the control plane no longer reports live ended by now at the latest, whatever expiry it
  // was minted with: revoked while no Secret showed it (a pass that deleted the revoked token's
  // Secret did not get to write its status), it must not hold the next mint back until that expiry.
  // One spent by a pairing whose identity was lost ended at that pairing. The end is written down, so
  // the backoff counts from a fixed time (counted from each pass's now, it would never be reached).
  // A live token other than the counted one (another expiry) superseded it, so it ended too: a pass
  // minted that token and died before storing it. Waiting for the counted token's expiry would hold
  // the connector Enrolling for up to the token lifetime; the next mint asks again with the key
  // after the counted one, and the control plane hands back the live token minted with it.
  let lastExpiry = status.tokenExpiresAt ? new Date(status.tokenExpiresAt).getTime() : undefined;
  const countedTokenLive = record.liveToken
    ? new Date(record.liveToken.expiresAt).getTime() === lastExpiry
    : false;
  if (lastExpiry !== undefined && !countedTokenLive) {
    const pairedAt =
      record.state === 'enrolling' && record.enrolledAt ? new Date(record.enrolledAt).getTime() : NaN;
    const ended = Number.isNaN(pairedAt) ? now.getTime() : Math.min(pairedAt, now.getTime());
    if (lastExpiry > ended) {
      status.tokenExpiresAt = statusTime(new Date(ended));
      lastExpiry = new Date(status.tokenExpiresAt).getTime();
    }
  }
  // The Secret was deleted (by hand: the operator deletes only a token that is no longer live)
  // while the token it held, the last one counted, is live and unused. A new key would revoke that
  // token and burn another; waiting for it to expire would leave the agent without its token
  // (ENROLLMENT_TOKEN_MISSING) for up to the token's lifetime. The control plane answers a mint with
  // the same key with the live token it minted for that key, so asking again stores that very token
  // in a new Secret: nothing new is minted, the counters and the expiry stay as they are.
  // The live token is the counted one when its expiry is the one the status recorded. A status
  // that recorded none yet (each mint forgets the expiry before it, and the Secret went before a
  // pass saw it) judges by the time: the counted token expires a TTL after its mint, give or take
  // the pass that minted it; a later mint (by a pass that died before its status write) expires
  // later. The TTL is spec.enrollment.tokenTTL as it is now, not necessarily the one the token was
  // minted with (the status does not record that): after the TTL was changed the judgement may be
  // wrong either way, and both are safe. A later token judged the counted one has the counted key
  // asked again, which the control plane refuses as IDEMPOTENCY_KEY_CONSUMED (that later mint
  // revoked its token), remembered in consumedMintKey, and the next mint counts on from it, as for
  // any spent key; the counted token judged a later one is replaced by a new mint, one token more.
  const lastKey = previous.lastMintKey;
  const liveExpiry = record.liveToken ? new Date(record.liveToken.expiresAt).getTime() : Number.NaN;
  const liveWithoutSecret = liveTokenWithoutSecret(tokenSecret, record, now) !== undefined;
  const mintedAt = status.tokenMintedAt ? new Date(status.tokenMintedAt).getTime() : Number.NaN;
  const countedByTime =
    status.tokenExpiresAt === undefined &&
    input.ttlSeconds !== undefined &&
    liveExpiry <= mintedAt + input.ttlSeconds * 1000 + MINT_PASS_SLACK_MS;
  if (
    liveWithoutSecret &&
    (countedTokenLive || countedByTime) &&
    lastKey !== undefined &&
    previous.consumedMintKey !== lastKey &&
    enrollmentMintNumber(input.connectorUID, lastKey) === mintCount &&
    minted === mintCount
  ) {
    // Once stored, the Secret holds that token, whose expiry is known: the status says so at once,
    // as a pass that finds it live would (a normal mint learns its token's expiry from its Secret).
    const expiresAt = (countedTokenLive ? status.tokenExpiresAt : record.liveToken?.expiresAt) ?? '';
    return {
      status,
      mint: {
        idempotencyKey: lastKey,
        status: { ...status, tokenSecretName: input.tokenSecretName, tokenExpiresAt: expiresAt },
      },
      deleteSecret: false,
      expiredUnused: false,
      restoresSecret: { expiresAt },
      requeueAfterMs: Math.max(liveExpiry - now.getTime(), 1_000),
    };
  }
  const earliest = lastExpiry === undefined ? now.getTime() : lastExpiry + remintDelayMs(expiries);
  if (minted > 0 && earliest > now.getTime()) {
    return { status, deleteSecret, expiredUnused: true, requeueAfterMs: earliest - now.getTime() };
  }
  // A Secret proving a mint the stored status has not counted is that mint's only record until this
  // pass's status is written. Deleting it and minting in the same pass would, if the operator died
  // before that write, leave the new token live and no record of the key before it: the next pass
  // would ask for the spent key while the new token is live. So this pass deletes and counts, and
  // mints nothing; if it dies, no token is live and a refused key is recorded (pass-status.ts).
  if (deleteSecret && provenBySecret !== undefined && provenBySecret > mintCount) {
    return { status, deleteSecret, expiredUnused, requeueAfterMs: SECRET_CATCH_UP_MS };
  }
  const next = minted + 1;
  const idempotencyKey = enrollmentMintKey(input.connectorUID, next);
  return {
    status,
    mint: {
      idempotencyKey,
      status: {
        // consumedMintKey stays until a written status counts past it: a pass whose mint is not made
        // (preempted by a recovery, or failed) keeps the counter where it was, and the key with it.
        // The expiry before is the last token's, not this one's: known once its Secret is seen.
        ...withoutExpiry(status),
        mintCount: next,
        lastMintKey: idempotencyKey,
        tokenMintedAt: statusTime(now),
      },
    },
    deleteSecret,
    expiredUnused: expiredUnused || mintCount > 0,
  };
}

/**
 * Whether the Secret holds the token status.lastMintKey names (a status without one: the mint
 * mintCount counts), whose expiry is the one status.tokenExpiresAt records. A recovery's token
 * (recovery-<id>) never is: lastMintKey stays the enrollment's last key while a recovery mints, and
 * a restore asks the control plane again with that key, which must then find the expiry of its own
 * token, not the recovery's.
 */
function countsAsLastMint(connectorUID: string, secret: TokenSecretFacts, status: EnrollmentStatus): boolean {
  if (status.lastMintKey !== undefined) return secret.mintKey === status.lastMintKey;
  const n = enrollmentMintNumber(connectorUID, secret.mintKey);
  return n !== undefined && n === status.mintCount;
}

function withoutExpiry(status: EnrollmentStatus): EnrollmentStatus {
  const { tokenExpiresAt: _expiry, ...rest } = status;
  return rest;
}

/** The enrollment status of a pass that deletes the token Secret: it names no Secret. */
export function withoutTokenSecret(status: EnrollmentStatus): EnrollmentStatus {
  const { tokenSecretName: _name, ...rest } = status;
  return rest;
}

/** The step that deletes the token Secret, and the enrollment status once it is gone. */
export function deleteTokenSecretStep(
  name: string,
  enrollment: EnrollmentStatus,
  events: PlannedEvent[] = [],
): PlanStep {
  return {
    action: { kind: 'deleteTokenSecret', name },
    status: { enrollment: withoutTokenSecret(enrollment) },
    events,
  };
}

export interface EnrollmentStepsInput {
  decision: EnrollmentDecision;
  connectorId: string;
  ttlSeconds: number;
  tokenSecretName: string;
  /** Bootstrap retired, by the record or (while it cannot be read) the stored status. */
  retired: boolean;
  /** The record holds a certificate: the agent paired. */
  paired: boolean;
  pairingLost: boolean;
}

/** The decision as steps, in act order: revoke, delete the Secret, mint into a fresh one. */
export function enrollmentSteps(input: EnrollmentStepsInput): PlanStep[] {
  const { decision, connectorId, tokenSecretName } = input;
  const steps: PlanStep[] = [];
  if (decision.revoke) steps.push({ action: { kind: 'revokeTokens', connectorId } });
  if (decision.deleteSecret) {
    // A token that expired unused was not spent by the pairing, even when the record has paired.
    const paired = input.paired && !decision.expiredUnused;
    steps.push(
      deleteTokenSecretStep(tokenSecretName, decision.status, [
        tokenSecretDeletedEvent(tokenSecretName, input.retired, paired),
      ]),
    );
  }
  const mint = decision.mint;
  const restored = decision.restoresSecret;
  if (mint && restored) {
    steps.push(
      restoreTokenSecretStep({
        connectorId,
        idempotencyKey: mint.idempotencyKey,
        ttlSeconds: input.ttlSeconds,
        tokenSecretName,
        token: `token #${mint.status.mintCount}`,
        expiresAt: restored.expiresAt,
        status: { enrollment: mint.status },
      }),
    );
  } else if (mint) {
    steps.push({
      action: {
        kind: 'mintToken',
        connectorId,
        idempotencyKey: mint.idempotencyKey,
        ttlSeconds: input.ttlSeconds,
      },
      status: { enrollment: mint.status },
      events: [
        {
          type: 'Normal',
          reason: 'TokenMinted',
          message: `minted enrollment token #${mint.status.mintCount} (expires within ${input.ttlSeconds} s) into Secret ${tokenSecretName}${input.pairingLost ? ': the agent lost the identity it paired with before its first heartbeat, and pairs again' : ''}`,
        },
      ],
    });
  }
  return steps;
}

/** Why the token Secret goes: retirement, a token spent by the pairing, or one no longer live. */
function tokenSecretDeletedEvent(secretName: string, retired: boolean, paired: boolean): PlannedEvent {
  if (retired) {
    return {
      type: 'Normal',
      reason: 'BootstrapRetired',
      message: `bootstrap retired: deleted the enrollment token Secret ${secretName}; restarts use the persisted identity only`,
    };
  }
  if (paired) {
    return {
      type: 'Normal',
      reason: 'TokenConsumed',
      message: `the agent paired with its token: deleted the enrollment token Secret ${secretName}; the token cannot be used again`,
    };
  }
  return {
    type: 'Normal',
    reason: 'TokenSecretDeleted',
    message: `deleted the enrollment token Secret ${secretName}: its token is no longer live`,
  };
}
