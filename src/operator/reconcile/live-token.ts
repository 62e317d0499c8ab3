// The live token: the one token an agent can pair with now, whichever flow minted it. The
// enrollment and a guided recovery each keep their own record (status.enrollment.tokenExpiresAt
// names only the enrollment's counted token, and stays as its end until the connector pairs;
// status.recovery.tokenExpiresAt names the attempt's one token, and stays once it ended), so
// neither alone says which token the Secret holds now. This module says it, from the status alone,
// for everything that shows it: status.liveToken (kubectl get's Token Expiry column), the token
// gauges and their alert, and kubectl vaultpam status. Reading it from the status records rather
// than from status.liveToken keeps a status written by an operator before that field read right.
import type { ConnectorStatus, LiveTokenStatus, RecoveryStep } from '../api/types.ts';

/**
 * The steps of an attempt at which the token a Secret holds can only be the attempt's one token:
 * TokensRevoked revoked every other token, and nothing else mints while the attempt is under way.
 * (At TokenMinted the mint may not have been stored yet; until a pass sees its Secret, no token is
 * live in it.)
 */
const RECOVERY_TOKEN_STEPS: readonly RecoveryStep[] = [
  'TokenMinted',
  'ScalingUp',
  'AwaitingOnline',
  'ValidatingRestart',
];

/**
 * The token the token Secret holds now, if it is live: status.enrollment.tokenSecretName is set
 * only by a pass that saw the Secret hold the token the control plane reports live. Its expiry is
 * the recovery's record while an attempt past its revoke is under way, else the enrollment's.
 */
export function liveTokenOf(status: ConnectorStatus): LiveTokenStatus | undefined {
  if (!status.enrollment?.tokenSecretName) return undefined;
  const recovery = status.recovery;
  if (recovery?.step !== undefined && RECOVERY_TOKEN_STEPS.includes(recovery.step)) {
    if (!recovery.tokenExpiresAt) return undefined;
    return {
      expiresAt: recovery.tokenExpiresAt,
      ...(recovery.tokenMintedAt ? { mintedAt: recovery.tokenMintedAt } : {}),
      mintedFor: 'Recovery',
    };
  }
  const { tokenExpiresAt, tokenMintedAt } = status.enrollment;
  if (!tokenExpiresAt) return undefined;
  return {
    expiresAt: tokenExpiresAt,
    ...(tokenMintedAt ? { mintedAt: tokenMintedAt } : {}),
    mintedFor: 'Enrollment',
  };
}

/** The status with status.liveToken rebuilt from its records (absent when no token is live). */
export function withLiveToken(status: ConnectorStatus): ConnectorStatus {
  const { liveToken: _stored, ...rest } = status;
  const live = liveTokenOf(rest);
  return live ? { ...rest, liveToken: live } : rest;
}
