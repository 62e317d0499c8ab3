// The recovery's step machine: for the step recorded in status.recovery, what this pass observes
// decides whether it advances, stays (and does what the step asks again), fails or completes. The
// step is written before its side effects, every side effect is idempotent, and a step advances
// only when its outcome is observed, so a restarted operator resumes where it was.
import type { V1Pod } from '@kubernetes/client-node';
import { ANNOTATIONS } from '../api/constants.ts';
import type { RecoveryStatus } from '../api/types.ts';
import type { ControlPlaneConnector, TokenSecretFacts } from './observed.ts';
import { agentPodFacts } from './pod-facts.ts';
import { failedClosedSince, restartProof, skippedValidationProof } from './recovery-evidence.ts';
import { idle, outcomesOf, type StepOutcomes } from './recovery-outcomes.ts';
import { pairedInRecovery } from './recovery-progress.ts';
import { abandonment, isAutomaticRequestId, recoveryMintKey, startRecovery } from './recovery-requests.ts';
import { recoveryUnderway, restoredReplicas } from './recovery-stages.ts';
import type { RecoveryDecision, RecoveryInput } from './recovery-types.ts';
import { liveTokenWithoutSecret } from './token-restore.ts';
import { untrustedCode, untrustedText } from './untrusted-text.ts';

/** How long a scaled-down connector may still look online before a recovery calls itself not needed. */
export const ONLINE_GRACE_MS = 5 * 60_000;

/** What a step decides from: the pass's input, the attempt's record, its live pods, its outcomes. */
interface Attempt {
  input: RecoveryInput;
  status: RecoveryStatus;
  requestId: string;
  live: V1Pod[];
  to: StepOutcomes;
}

/** The recovery this pass decides, ungated (recovery.ts gates it). */
export function planRecovery(input: RecoveryInput): RecoveryDecision {
  const status = input.previous;
  if (!status || !recoveryUnderway(status.step)) return startRecovery(input);
  const to = outcomesOf(input, status);
  const abandoned = abandonment(input, status);
  if (abandoned) {
    const restore = restoredReplicas(status);
    const back = restore !== undefined ? `; the workload is scaled back to ${restore} replica(s)` : '';
    return to.fail(`abandoned before the control plane began it: ${abandoned}${back}`);
  }
  const attempt: Attempt = { input, status, requestId: status.requestId ?? '', live: podsOf(input.pods), to };
  switch (status.step) {
    case 'Requested':
      return to.advance('Checking');
    case 'Checking':
      return checking(attempt);
    case 'ScalingDown': {
      const scaledDown =
        input.pods.length === 0 && (input.workload === undefined || input.workload.replicas === 0);
      return scaledDown ? to.advance('StorageReady') : to.stay({ replicas: 0 });
    }
    case 'StorageReady': {
      if (input.storage.kind === 'ExistingClaim') {
        const claim = input.claims.get(input.storage.claimName);
        if (!claim || claim.deleting) {
          return to.fail(
            `spec.storage.existingClaim ${input.storage.claimName} does not exist: reattach the original durable storage (recreate the claim bound to the original volume), then set a new spec.recovery.requestId`,
          );
        }
      }
      return to.advance('TokensRevoked');
    }
    case 'TokensRevoked':
      return tokensRevoked(attempt);
    case 'TokenMinted': {
      const key = recoveryMintKey(attempt.requestId);
      // Its expiry is recorded: it bounds the wait for the pairing, and outlives a Secret deleted by
      // hand. So is when it was stored (the Secret's creation, right after the mint): with the
      // expiry, the token's lifetime, of which the expiring-unused alert judges a quarter.
      const secret = input.tokenSecret;
      if (secret?.mintKey === key)
        return to.advance('ScalingUp', {
          ...(secret.expiresAt ? { tokenExpiresAt: secret.expiresAt } : {}),
          ...(secret.createdAt ? { tokenMintedAt: secret.createdAt } : {}),
        });
      // A pass minted the one token and stopped before storing it; by now it is revoked or expired,
      // and the control plane refuses its key for good. One request mints one token: end here.
      if (input.consumedMintKey === key) {
        return to.fail(
          'its one token was minted by a pass that stopped before storing it in the token Secret, and the control plane now refuses its key as consumed (the token was revoked or expired unused)',
        );
      }
      return to.stay({ replicas: 0, mintKey: key, requeueAfterMs: 0 });
    }
    case 'ScalingUp':
      // The token steps run before the workload's: a Secret deleted since the mint is there again
      // before the pod that reads it starts.
      return (
        secretGoneBeforePairing(attempt) ??
        (input.workload === undefined || input.workload.replicas >= 1
          ? to.advance('AwaitingOnline')
          : to.stay({ replicas: 1 }))
      );
    case 'AwaitingOnline':
      return awaitingOnline(attempt);
    case 'ValidatingRestart':
      return validatingRestart(attempt);
    default:
      return idle(input);
  }
}

function checking({ input, status, requestId, live, to }: Attempt): RecoveryDecision {
  const { record, now } = input;
  // The control plane keeps the id of the last recovery it began, and treats that id as the same
  // request forever after (dry run allowed, beginRecovery a no-op, its token key spent). This
  // attempt has not begun it yet, so that id is an earlier attempt's: running it again would
  // scale the connector down and wait at TokensRevoked (or TokenMinted) for good.
  if (record?.recovery?.requestId === requestId) {
    return to.fail(
      `the control plane already began recovery ${requestId} at ${untrustedText(record.recovery.startedAt, 64)}, so this request id is spent; set a new spec.recovery.requestId`,
    );
  }
  // The control plane begins recoveries of paired connectors only, and answers
  // RECOVERY_NOT_NEEDED for a pending record. The recovery of an identity it refused on a
  // never-paired connector asks it for nothing of the kind (no beginRecovery: revoke, mint, pair
  // once), so its precondition is the refusal itself, which the agent reported: no dry run.
  if (record?.state === 'pending' && refusedIdentityRecovery(input, status)) {
    return to.advance(
      'ScalingDown',
      {},
      'no dry run: the agent of this never-paired connector stopped on an identity the control plane refuses, and this recovery only revokes, mints and pairs once',
    );
  }
  const check = input.check?.requestId === requestId ? input.check : undefined;
  if (!check) return to.stay({});
  if (check.allowed) return to.advance('ScalingDown');
  const stillOnline = record?.state === 'online' || record?.state === 'degraded';
  // Requested on a proven identity loss, and no agent runs ready since: a pass between two pod
  // instances of an agent that keeps failing closed (its pod recreated, the new agent not
  // stopped yet) has no termination to show, but the loss has not gone away. Only an agent
  // that runs ready again (heartbeats, the identity intact after all) makes it "not needed".
  const lossStands =
    status.evidence?.phaseBefore === 'NeedsRecovery' && !live.some((p) => agentPodFacts(p).ready);
  const lossSeen = input.identityLoss || lossStands;
  if (check.code === 'RECOVERY_NOT_NEEDED' && stillOnline && lossSeen) {
    // The agent failed closed (or its claim was replaced), so it sends no heartbeat; the control
    // plane marks it offline after a few missed ones. Wait for that without touching the workload.
    const since = new Date(status.startedAt ?? now).getTime();
    if (now.getTime() - since < ONLINE_GRACE_MS) return to.stay({});
  }
  // Not needed, and the operator sees nothing to the contrary: the connector is paired (or pairs by
  // normal enrollment, never having paired), so it is not held back for the request, which is
  // recorded as what it was. A request id still in the spec after the connector was recreated (a
  // GitOps manifest keeps it) stalled a healthy connector, and each new id the same way.
  if (check.code === 'RECOVERY_NOT_NEEDED' && !lossSeen) {
    // An automatic recovery's id is in no spec: there is nothing to remove.
    const way = isAutomaticRequestId(requestId)
      ? 'the operator asked for it by itself; should the connector need recovery again in this incident, ask for a guided one with spec.recovery.requestId'
      : 'spec.recovery.requestId can be removed (this id never runs again); set a new one only once the connector needs recovery';
    return to.notNeeded(
      `the control plane refused it, so nothing was done: ${check.code}: ${check.message}; the operator saw no loss of the connector's identity either. ${way}`,
    );
  }
  return to.fail(
    `the control plane refused the recovery, so nothing was scaled: ${check.code}: ${check.message}`,
  );
}

function tokensRevoked({ input, status, requestId, to }: Attempt): RecoveryDecision {
  const { record, now } = input;
  if (record && record.state !== 'recovering') {
    if (record.state === 'online' || record.state === 'degraded') {
      // No pod runs now, so "online" is either the control plane not having noticed yet (it
      // marks a silent connector offline after a few missed heartbeats) or a connector alive
      // elsewhere with its identity. Wait out the first; only the second means "not needed".
      const since = new Date(status.startedAt ?? now).getTime();
      if (now.getTime() - since < ONLINE_GRACE_MS) return to.stay({ replicas: 0 });
      return to.fail(
        `not needed: the control plane still reports the connector ${record.state} ${Math.round(ONLINE_GRACE_MS / 60_000)} minutes after its pod stopped, so its identity is intact (is another copy of it running?)`,
      );
    }
    if (!record.bootstrapRetired && (record.state === 'pending' || record.state === 'enrolling')) {
      if (record.state === 'pending' && refusedIdentityRecovery(input, status)) {
        // The control plane begins recoveries of paired connectors only (a pending record has
        // no certificate to revoke): revoke the live token, delete its Secret, then mint.
        if (record.liveToken === null && input.tokenSecret === undefined)
          return to.advance('TokenMinted', { mintKey: recoveryMintKey(requestId) });
        return to.stay({
          replicas: 0,
          controlPlane: [{ kind: 'revokeTokens', connectorId: input.connectorId }],
          deleteSecret: input.tokenSecret !== undefined && !input.tokenSecret.deleting,
        });
      }
      return to.fail(
        'not needed: the connector never paired, so normal enrollment applies (the operator mints a token)',
      );
    }
  }
  const revoked =
    record?.state === 'recovering' &&
    record.recovery?.requestId === requestId &&
    input.tokenSecret === undefined;
  if (revoked) return to.advance('TokenMinted', { mintKey: recoveryMintKey(requestId) });
  return to.stay({
    replicas: 0,
    controlPlane: [
      { kind: 'beginRecovery', connectorId: input.connectorId, requestId },
      { kind: 'revokeTokens', connectorId: input.connectorId },
    ],
    deleteSecret: input.tokenSecret !== undefined && !input.tokenSecret.deleting,
  });
}

function awaitingOnline(attempt: Attempt): RecoveryDecision {
  const { input, status, requestId, live, to } = attempt;
  const { record, now } = input;
  if (record?.state === 'needs_recovery') {
    const failure = record.lastEnrollmentFailure;
    return to.fail(
      `pairing was refused${failure ? ` (${untrustedCode(failure.code)} at ${untrustedText(failure.at, 64)})` : ''}; the connector needs recovery again`,
    );
  }
  const stopped = failedClosedSince(live, status.startedAt);
  // An agent that started while its token Secret was deleted by hand found no token: while that
  // token is live and unused, the Secret is stored again (below) and the restarted container pairs
  // with it. Its expiry bounds the wait.
  // A Secret that held the token since well before the agent stopped was not missing: its workload
  // does not give the agent the token (an adopted one that never mounts it), and waiting for the
  // token's expiry (up to 4 h) would only hide that.
  const startedWithoutToken =
    stopped?.termination.code === 'ENROLLMENT_TOKEN_MISSING' &&
    tokenMaybeNotYetInVolume(input.tokenSecret, stopped.termination.finishedAt) &&
    record?.liveToken &&
    ownTokenLive(attempt, record.liveToken.expiresAt);
  if (stopped && !online(record) && !startedWithoutToken) {
    return to.fail(stoppedReason(stopped, record, requestId));
  }
  // The token's expiry ends the wait only while it is unused: once the agent paired with it (a
  // certificate issued since the control plane began this recovery), the identity is on the data
  // volume and a heartbeat is what is awaited, even when the record went offline meanwhile (an
  // agent that paired, beat, and whose pod went before a pass saw it online). Failing then said
  // "expired before the connector paired" of a connector that had paired, and judged it lost.
  // The Secret's expiry, else the one recorded when it was minted (the Secret may be gone).
  const expiresAt = input.tokenSecret?.expiresAt ?? status.tokenExpiresAt;
  if (
    !online(record) &&
    !pairedInRecovery(record, requestId) &&
    expiresAt &&
    new Date(expiresAt).getTime() <= now.getTime()
  ) {
    return to.fail(expiredBeforePairing(expiresAt));
  }
  if (!online(record)) return secretGoneBeforePairing(attempt) ?? to.stay({ replicas: 1 });
  // Retired: the token is spent; its Secret goes before the validation restart proves it is not needed.
  if (input.tokenSecret !== undefined)
    return to.stay({ replicas: 1, deleteSecret: !input.tokenSecret.deleting, requeueAfterMs: 500 });
  const canValidate =
    input.validateRestart && input.storage.kind !== 'EmptyDir' && input.storage.kind !== 'Adopted';
  return canValidate ? to.advance('ValidatingRestart') : to.complete(skippedValidationProof(input));
}

function validatingRestart({ input, requestId, live, to }: Attempt): RecoveryDecision {
  const { record } = input;
  if (record?.state === 'needs_recovery') {
    return to.fail(
      'the connector asked for a token again after the validation restart: its identity did not survive on the data volume',
    );
  }
  // The mark names this recovery's pairing (its certificate's serial), which nobody knows before it
  // happens: a mark set in advance (an edit of the StatefulSet's template; spec.podAnnotations cannot
  // set it) cannot name it, so the pod that paired never passes for its own restart, and a template
  // changed after the pairing rolls the pod, which is then a restart. (The start time cannot tell
  // them apart: Kubernetes records it in whole seconds, and a restart in the second of the pairing
  // looked older than it.) Without the record, nothing is asked and nothing is judged.
  const serial = record?.certificate?.serial;
  if (!serial) return to.stay({ replicas: 1 });
  const mark = validationRestartMark(requestId, serial);
  const restarted = live.find((p) => p.metadata?.annotations?.[ANNOTATIONS.restartedFor] === mark);
  const facts = restarted ? agentPodFacts(restarted) : undefined;
  // An agent that starts with an empty data directory and no token (its Secret went when the
  // connector paired) says ENROLLMENT_TOKEN_MISSING: the identity did not persist either.
  const t = facts?.termination;
  if (facts && t && (t.failureClass === 'IdentityLoss' || t.code === 'ENROLLMENT_TOKEN_MISSING')) {
    return to.fail(
      `after the validation restart the agent in pod ${facts.podName} found no identity: ${t.reason ?? t.code ?? ''}`,
    );
  }
  const startedAt = restarted?.status?.startTime ? new Date(restarted.status.startTime).getTime() : undefined;
  const beatAfterRestart =
    startedAt !== undefined &&
    record?.lastHeartbeatAt !== null &&
    record?.lastHeartbeatAt !== undefined &&
    new Date(record.lastHeartbeatAt).getTime() > startedAt;
  if (restarted && facts?.ready && online(record) && beatAfterRestart) {
    return to.complete(restartProof(facts.podName, startedAt, record));
  }
  return to.stay({ replicas: 1, restartFor: mark });
}

/**
 * The pod-template mark (vaultpam.io/restarted-for) that rolls the pod for a recovery's validation
 * restart, and by which the restarted pod is known: the request id and the serial of the certificate
 * its pairing was issued.
 */
export function validationRestartMark(requestId: string, serial: string): string {
  return `${requestId}/${serial}`;
}

/**
 * Why an attempt ends on an agent that failed closed. Before the pairing it stopped instead of
 * pairing. After it (the record holds a certificate issued since the control plane began this
 * recovery) it paired and stopped before its first heartbeat: saying "instead of pairing" then told a
 * person to look for a pairing problem where the token had paired, and is spent (the attempt's end
 * revokes and deletes what is left of it). A data directory that did not take the certificate
 * (IDENTITY_PERSIST_FAILED: a full volume, a read-only mount) gets what to do first.
 */
function stoppedReason(
  stopped: NonNullable<ReturnType<typeof failedClosedSince>>,
  record: ControlPlaneConnector | undefined,
  requestId: string,
): string {
  const t = stopped.termination;
  // The termination message is whatever the container wrote (an adopted image is anyone's).
  const exit = `exit code ${t.exitCode} (${untrustedText([t.failureClass, t.code, t.reason].filter(Boolean).join(': '))})`;
  if (!record || !pairedInRecovery(record, requestId))
    return `the agent in pod ${stopped.pod} stopped with ${exit} instead of pairing`;
  const paired =
    `the agent in pod ${stopped.pod} paired with this recovery's token at ${record.enrolledAt} (certificate ` +
    `serial ${record.certificate?.serial}), then stopped with ${exit} before its first heartbeat`;
  if (t.code !== 'IDENTITY_PERSIST_FAILED') return `${paired}; the token is spent`;
  return (
    `${paired}: its data directory did not take the certificate, so the connector has no identity to start ` +
    'with, and the token is spent (its Secret is deleted as this attempt ends). ' +
    "Make the data directory writable (free space or expand the claim, a writable mount, the connector user's " +
    'ownership), then set a new spec.recovery.requestId: its one fresh token pairs once, with the key kept ' +
    'on the claim'
  );
}

/**
 * How long after a token Secret is created a pod's mounted volume may still lack the token: the
 * kubelet updates a Secret volume at a pod sync (every minute) from its cache of the Secret (which
 * may be a minute old), so two minutes, and one more of slack.
 */
export const KUBELET_SECRET_SYNC_GRACE_MS = 3 * 60_000;

/**
 * Whether an agent that stopped at `finishedAt` finding no token may have started before the token
 * was in its volume: the Secret is gone (it is stored again), or it was created (again) too shortly
 * before for the kubelet to have put it there. A Secret whose creation time is not known counts as
 * new.
 */
function tokenMaybeNotYetInVolume(
  secret: TokenSecretFacts | undefined,
  finishedAt: string | undefined,
): boolean {
  if (secret === undefined || secret.createdAt === undefined || finishedAt === undefined) return true;
  return Date.parse(finishedAt) < Date.parse(secret.createdAt) + KUBELET_SECRET_SYNC_GRACE_MS;
}

const expiredBeforePairing = (expiresAt: string) =>
  `the recovery token expired at ${expiresAt} before the connector paired; set a new spec.recovery.requestId to try again`;

/**
 * The recovery's token Secret deleted by hand after the mint and before the agent paired (the
 * operator deletes it only once the connector is online): its one token, live and unused, is stored
 * again by asking the control plane with the same mint key (token-restore.ts), as the enrollment
 * restores its own, so no second token is minted. A token no longer live (expired, revoked, or
 * refused as consumed) cannot be stored again, and one request mints one token: the attempt ends.
 * Undefined while the Secret is there, or once the agent paired (a spent token is never asked for).
 */
function secretGoneBeforePairing(attempt: Attempt): RecoveryDecision | undefined {
  const { input, status, requestId, to } = attempt;
  const { record, now } = input;
  if (input.tokenSecret !== undefined || online(record) || pairedInRecovery(record, requestId))
    return undefined;
  const liveUntil = liveTokenWithoutSecret(input.tokenSecret, record, now);
  if (liveUntil !== undefined && ownTokenLive(attempt, liveUntil)) {
    return to.stay({
      replicas: 1,
      mintKey: recoveryMintKey(requestId),
      restoresSecret: { expiresAt: liveUntil },
      // An attempt recorded before the expiry was (an operator upgraded mid-way) learns it now.
      ...(status.tokenExpiresAt ? {} : { status: { ...status, tokenExpiresAt: liveUntil } }),
    });
  }
  if (status.tokenExpiresAt && Date.parse(status.tokenExpiresAt) <= now.getTime())
    return to.fail(expiredBeforePairing(status.tokenExpiresAt));
  const why =
    input.consumedMintKey === recoveryMintKey(requestId)
      ? `the control plane refuses its mint key ${recoveryMintKey(requestId)} as consumed (the token was revoked or expired)`
      : 'the control plane reports no live token of it (it was revoked, or replaced by a token minted by hand)';
  return to.fail(
    `its token Secret was deleted by hand before the connector paired, and the recovery's one token is no longer live to store again: ${why}; one request mints one token, so none is minted again: set a new spec.recovery.requestId to try again`,
  );
}

/**
 * Whether the control plane's live token, expiring at `expiresAt`, is this attempt's one token and
 * may be asked for again: its mint revoked every other token and nothing else mints while the attempt
 * is under way, so a live token with another expiry than the one recorded was minted since (by hand),
 * which revoked this one; and the control plane did not refuse its key as consumed.
 */
function ownTokenLive({ input, status, requestId }: Attempt, expiresAt: string): boolean {
  if (Date.parse(expiresAt) <= input.now.getTime()) return false;
  if (input.consumedMintKey === recoveryMintKey(requestId)) return false;
  return status.tokenExpiresAt === undefined || Date.parse(status.tokenExpiresAt) === Date.parse(expiresAt);
}

/**
 * Whether this recovery of a never-paired connector is for an identity the control plane refused:
 * the agent says so now, or (its pod is scaled away by now) the recovery was requested while the
 * status showed NeedsRecovery for the pending record, which only that diagnosis does.
 */
function refusedIdentityRecovery(input: RecoveryInput, status: RecoveryStatus): boolean {
  if (input.identityRefused) return true;
  return (
    status.evidence?.phaseBefore === 'NeedsRecovery' && status.evidence.controlPlaneStateBefore === 'pending'
  );
}

/** The pods that count: one being deleted is on its way out. */
function podsOf(pods: V1Pod[]) {
  return pods.filter(
    (p) => p.metadata?.deletionTimestamp === undefined || p.metadata?.deletionTimestamp === null,
  );
}

/** Paired and heartbeating: what a recovery's pairing waits for. */
const online = (record: ControlPlaneConnector | undefined) =>
  record !== undefined &&
  (record.state === 'online' || record.state === 'degraded') &&
  record.bootstrapRetired;
