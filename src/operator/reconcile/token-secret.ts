// The enrollment-token Secret, observed without watching Secrets. The operator used to cache every
// token Secret in the cluster through a label-selected informer, which needs list and watch on all
// Secrets everywhere; now it reads its own Secret by name (get), and only on a pass where the Secret
// can exist or matter. It can exist only after a mint and until a pass deletes it, and the stored
// status records both ends, so a connector that is retired and clean makes no read: 10,000 online
// connectors cost no Secret reads at all, and a pass that may mint, delete or judge a token always
// reads it fresh (no cache can lag behind a Secret just written).
import type { V1Secret } from '@kubernetes/client-node';
import { ANNOTATIONS } from '../api/constants.ts';
import type { Connector, DefaultedSpec } from '../api/types.ts';
import { CONDITION_TYPES, ReconcilingReasons } from '../conditions.ts';
import { childNames } from './desired-objects.ts';
import type { ControlPlaneView, ForeignObject, TokenSecretFacts } from './observed.ts';
import { controlledBy, foreignObject } from './ownership.ts';
import { recoveryUnderway } from './recovery-stages.ts';
import { untrustedTime } from './untrusted-text.ts';

/**
 * Whether this pass reads the token Secret. Every place the planner uses token-Secret facts is one
 * of these cases:
 * - a recovery is asked for or under way (it revokes, mints into, and deletes the Secret, and judges
 *   its mint key and expiry), whether or not the control plane answers;
 * - the stored status does not say "retired, and no token Secret": before pairing the Secret carries
 *   the live token (minting, expiry, revocation, Enrolled's message); at retirement it must be found
 *   to be deleted, and only a pass that deleted it writes that status;
 * - the last pass ended in an error or a stall: a delete may have failed after the status said
 *   retired, so the Secret is looked for again until a pass ends cleanly;
 * - the control plane reports what needs a token or the Secret: a record never paired or needing
 *   recovery, or a live token (its Secret must be judged, and deleted once the token is spent).
 */
export function tokenSecretMayMatter(
  connector: Connector,
  spec: DefaultedSpec,
  view: ControlPlaneView,
): boolean {
  const status = connector.status ?? {};
  if (recoveryUnderway(status.recovery?.step)) return true;
  if (spec.recovery.requestId !== undefined && spec.recovery.requestId !== status.recovery?.requestId)
    return true;
  if (status.enrollment?.retired !== true || status.enrollment.tokenSecretName !== undefined) return true;
  const unfinished = (status.conditions ?? []).some(
    (c) =>
      c.type === CONDITION_TYPES.Stalled ||
      (c.type === CONDITION_TYPES.Reconciling && c.reason === ReconcilingReasons.RetryingAfterError),
  );
  if (unfinished) return true;
  if (!view.reachable) return false;
  const record = view.record;
  return !record?.bootstrapRetired || record.state === 'needs_recovery' || Boolean(record.liveToken);
}

/** The Secret reduced to what the planner judges; never its value. */
export function tokenSecretFacts(secret: V1Secret | undefined): TokenSecretFacts | undefined {
  if (!secret?.metadata?.name) return undefined;
  const annotations = secret.metadata.annotations ?? {};
  return {
    name: secret.metadata.name,
    uid: secret.metadata.uid,
    mintKey: annotations[ANNOTATIONS.mintKey],
    // Anyone who may edit the Secret may edit this: quoted in conditions only when it is a time.
    expiresAt: untrustedTime(annotations[ANNOTATIONS.tokenExpiresAt]),
    ...(secret.metadata.creationTimestamp
      ? { createdAt: new Date(secret.metadata.creationTimestamp).toISOString() }
      : {}),
    deleting: Boolean(secret.metadata.deletionTimestamp),
  };
}

export interface ObservedTokenSecret {
  /** The Secret this Connector controls, if it exists and was read. */
  facts?: TokenSecretFacts;
  /** A Secret with the token Secret's name that this Connector does not control: never written. */
  foreign?: ForeignObject;
}

/** Reads the token Secret by name when it may matter (tokenSecretMayMatter), and judges whose it is. */
export async function observeTokenSecret(
  readSecret: (namespace: string, name: string) => Promise<V1Secret | undefined>,
  connector: Connector,
  spec: DefaultedSpec,
  mayMatter: boolean,
): Promise<ObservedTokenSecret> {
  if (!mayMatter) return {};
  const secret = await readSecret(spec.namespace, childNames(spec.name).tokenSecret);
  if (!secret) return {};
  const uid = connector.metadata.uid ?? '';
  if (controlledBy(secret, uid)) {
    const facts = tokenSecretFacts(secret);
    return facts ? { facts } : {};
  }
  const foreign = foreignObject('Secret', secret, uid);
  return foreign ? { foreign } : {};
}
