// Storing a live, unused token again in a token Secret someone deleted by hand: one way for the
// enrollment's token and for a guided recovery's one token. The control plane answers a mint with a
// key it already minted for with the token it minted then, while that token is live, and refuses the
// key (IDEMPOTENCY_KEY_CONSUMED) once the token was used, revoked or expired. So asking again with
// the same key stores that very token in a new Secret, and can never mint a second token or hand
// back a spent one. Which key's token is the one to ask for is each path's decision (enrollment.ts,
// recovery-machine.ts); when a restore is possible, how it is asked and the Event that says so are
// this module's.
import type { ConnectorStatus } from '../api/types.ts';
import type { ControlPlaneConnector, TokenSecretFacts } from './observed.ts';
import type { PlanStep } from './plan-types.ts';

/**
 * The expiry of the token the control plane reports live while no token Secret exists (deleted by
 * hand: the operator deletes the Secret only once its token is no longer live or was spent), when it
 * has not expired yet (a record from the change stream says "live" as of when it was sent).
 */
export function liveTokenWithoutSecret(
  secret: TokenSecretFacts | undefined,
  record: ControlPlaneConnector | undefined,
  now: Date,
): string | undefined {
  if (secret !== undefined || !record?.liveToken) return undefined;
  const expiresAt = record.liveToken.expiresAt;
  return Date.parse(expiresAt) > now.getTime() ? expiresAt : undefined;
}

export interface RestoreInput {
  connectorId: string;
  idempotencyKey: string;
  ttlSeconds: number;
  tokenSecretName: string;
  /** The token in words, for the Event: "token #2", "the one token of recovery r1". */
  token: string;
  /** That token's expiry, as the control plane reports it. */
  expiresAt: string;
  /** The status once the token is stored again, if the step sets one. */
  status?: ConnectorStatus;
}

/** The mint that asks again with the token's own key, and stores the answer in a new Secret. */
export function restoreTokenSecretStep(input: RestoreInput): PlanStep {
  return {
    action: {
      kind: 'mintToken',
      connectorId: input.connectorId,
      idempotencyKey: input.idempotencyKey,
      ttlSeconds: input.ttlSeconds,
    },
    ...(input.status ? { status: input.status } : {}),
    events: [
      {
        type: 'Normal',
        reason: 'TokenSecretRestored',
        message: `the enrollment token Secret ${input.tokenSecretName} was deleted while ${input.token} was live and unused: stored that token in it again (the control plane answered its mint key ${input.idempotencyKey} with the token it minted for it, live until ${input.expiresAt}); no new token was minted`,
      },
    ],
  };
}
