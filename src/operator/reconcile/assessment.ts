// Reading the control plane's record and the pod into the runbook's words: the phase, and the
// failure class with its evidence and next step. Each diagnosis rule is a small check; the first
// that matches wins (cert-manager's trigger policies are the model), and the table tests walk
// through the runbook's situations one by one.
import { EXIT_CODES } from '../../contract/agent-process.ts';
import { REATTACH_STEPS } from '../api/constants.ts';
import type { ConnectorPhase, Diagnosis, FailureClass, RecoveryPolicy } from '../api/types.ts';
import { DurableStorageReasons, statusTime } from '../conditions.ts';
import { pairingLost } from './enrollment.ts';
import type { ControlPlaneConnector } from './observed.ts';
import { type AgentPodFacts, type AgentTermination, endedBefore } from './pod-facts.ts';
import { pairedInRecovery } from './recovery-progress.ts';
import type { StoragePosture } from './storage-posture.ts';
import { bounded } from './untrusted-text.ts';

const PHASE_OF_STATE: Record<string, ConnectorPhase> = {
  pending: 'Pending',
  enrolling: 'Enrolling',
  online: 'Online',
  degraded: 'Degraded',
  offline: 'Offline',
  needs_recovery: 'NeedsRecovery',
  recovering: 'Recovering',
};

/** The phase the control plane's state means; a guided recovery in progress shows as Recovering. */
export function phaseOf(
  record: ControlPlaneConnector | undefined,
  recoveryInProgress: boolean,
): ConnectorPhase {
  if (recoveryInProgress) return 'Recovering';
  if (!record) return 'Pending';
  // Looked up as data: a state such as "__proto__" or "constructor" is no phase.
  return Object.hasOwn(PHASE_OF_STATE, record.state)
    ? (PHASE_OF_STATE[record.state] ?? 'Pending')
    : 'Pending';
}

export interface DiagnosisInput {
  record: ControlPlaneConnector | undefined;
  agent: AgentPodFacts | undefined;
  posture: StoragePosture;
  /** How many tokens were minted while the connector never paired. */
  unpairedMints: number;
  recoveryPolicy: RecoveryPolicy;
  tokenExpiredUnused: boolean;
  /**
   * Why the operator acts on nothing this pass (gates.ts heldBecause: paused, blocked), if it does
   * not: a next step that says the operator mints or recovers says that it waits for this.
   */
  held?: string | undefined;
  /** The request id of this incident's automatic recovery when it ended Failed (it runs once). */
  automaticRecoveryFailed?: string | undefined;
  /**
   * The request id of the guided recovery that paired the connector and then ended Failed, while the
   * record is still where that pairing left it (recovery-requests.ts pairedByFailedRecovery): no
   * recovery starts by itself then, automatic or not.
   */
  recoveryFailedAfterPairing?: string | undefined;
}

export type Rule = (input: DiagnosisInput) => Omit<Diagnosis, 'since'> | undefined;

const RECOVERY_STEPS =
  'scale to zero, reattach the original durable storage or provision a new claim, revoke the stale token, mint one fresh single-use token, pair once, then validate a restart without a token';

function recoveryNextStep(input: DiagnosisInput): string {
  const guided = `set spec.recovery.requestId to a new value to run a guided recovery${waitsWhileHeld(input)}: ${RECOVERY_STEPS}`;
  if (input.recoveryPolicy !== 'Automatic') return guided;
  if (input.recoveryFailedAfterPairing) {
    return `guided recovery ${input.recoveryFailedAfterPairing} paired the connector and then failed (status.recovery says why), and no recovery starts by itself after it: ${guided}`;
  }
  if (input.automaticRecoveryFailed) {
    return `the automatic recovery ${input.automaticRecoveryFailed} of this incident failed (status.recovery says why) and runs once per incident: ${guided}`;
  }
  return `a guided recovery starts automatically (once for this incident${input.held ? `; not while ${input.held}` : ''}): ${RECOVERY_STEPS}`;
}

/** " (not while <why>)" for a next step the operator takes, when it acts on nothing this pass. */
function waitsWhileHeld(input: DiagnosisInput): string {
  return input.held ? ` (not while ${input.held})` : '';
}

function agentEvidence(agent: AgentPodFacts | undefined): string[] {
  const t = agent?.termination;
  if (!agent || !t) return [];
  const said = [t.failureClass, t.code, t.reason].filter(Boolean).join(': ');
  return [
    `pod ${agent.podName}: agent exited ${t.exitCode}${said ? ` (${said})` : ''}, restarts ${agent.restartCount}`,
  ];
}

function storageEvidence(posture: StoragePosture): string[] {
  return posture.status === 'True' ? [] : [`storage: ${posture.message}`];
}

const retired = (input: DiagnosisInput) => input.record?.bootstrapRetired === true;

/**
 * The agent's codes for an identity the control plane refused for good (docs/connector-agent.md,
 * "An identity the control plane refuses"): revoked, replaced or unknown; expired by both clocks;
 * issued by a CA the control plane no longer trusts. For these, and only these, the agent moves the
 * identity aside and pairs once with a token mounted after the refusal, so a guided recovery helps.
 */
const REFUSED_IDENTITY_CODES: Readonly<Record<string, string>> = {
  IDENTITY_REJECTED:
    'its certificate was revoked, replaced by a newer one, or belongs to no enrolled connector',
  IDENTITY_EXPIRED:
    'its certificate expired (by the control plane clock and the node clock alike) and cannot be renewed',
  IDENTITY_UNTRUSTED: 'its certificate was issued by a CA the control plane no longer trusts',
};

/**
 * Whether the agent stopped because the control plane refused its identity for good. (A bundle
 * that fails the agent's own chain check at load, a tampered cert.pem, is IDENTITY_CHAIN_INVALID:
 * nothing the control plane said.)
 */
function refusedForGood(t: AgentTermination | undefined): boolean {
  return t?.code !== undefined && Object.hasOwn(REFUSED_IDENTITY_CODES, t.code);
}

/**
 * A container's last termination that ended before the connector's last pairing describes an older
 * incident: a pod whose first start found no token yet (ENROLLMENT_TOKEN_MISSING) and then paired
 * keeps that exit in lastState for the rest of its life, and must not read as identity loss when
 * the connector later goes offline (a partition, a paused process).
 */
function endedBeforePairing(
  t: AgentTermination,
  record: ControlPlaneConnector | undefined,
  sameSecond: 'before' | 'after' = 'before',
): boolean {
  return record?.enrolledAt ? endedBefore(t, record.enrolledAt, sameSecond) : false;
}

/** Runbook branch 3: the control plane says the connector needs recovery. */
const controlPlaneNeedsRecovery: Rule = (input) => {
  if (input.record?.state !== 'needs_recovery') return undefined;
  const failure = input.record.lastEnrollmentFailure;
  return {
    failureClass: 'IdentityLoss',
    reason: failure
      ? `the connector paired before, then tried to enroll again (${failure.code} at ${failure.at}): its persisted identity is gone`
      : 'the control plane marked the connector needs_recovery',
    evidence: [
      ...(failure ? [`control plane: 401 ${failure.code} after a previous pairing at ${failure.at}`] : []),
      ...agentEvidence(input.agent),
      ...storageEvidence(input.posture),
    ],
    nextStep: recoveryNextStep(input),
  };
};

/** The claim behind the data directory was recreated after pairing: the identity went with the old one. */
const claimReplaced: Rule = (input) => {
  if (!retired(input) || input.posture.reason !== DurableStorageReasons.ClaimReplaced) return undefined;
  return {
    failureClass: 'IdentityLoss',
    reason: input.posture.message,
    evidence: [...storageEvidence(input.posture), ...agentEvidence(input.agent)],
    nextStep: `reattach the original volume if it still exists (${REATTACH_STEPS}); if it is gone, ${recoveryNextStep(input)}`,
  };
};

/**
 * The control plane refuses the connector's certificate because the two clocks disagree about its
 * validity (the agent's CLOCK_SKEW, exit 14, class Reconnect). The identity is intact: a recovery
 * would throw away what a time fix saves, so this is never identity loss, paired or not.
 */
const clockSkew: Rule = (input) => {
  if (input.agent?.termination?.code !== 'CLOCK_SKEW') return undefined;
  return {
    failureClass: 'Reconnect',
    reason:
      "the control plane refuses the connector's certificate as expired or not yet valid by its clock while the node's clock says it is valid: the clocks are skewed (the evidence says by how much); the identity is intact",
    evidence: [...agentEvidence(input.agent), ...storageEvidence(input.posture)],
    nextStep:
      "fix time synchronisation (NTP or chrony; timedatectl status) on the node running the pod or on the control plane, whichever is wrong, then restart the pod once; keep the data directory as it is. If it was the node's clock and the control plane judged the certificate expired, the restarted agent then reports the expiry and a guided recovery follows; otherwise no recovery and no new token are needed",
  };
};

/**
 * The agent gave up (exit 14) on a server at the control plane's URL that refused the handshake by a
 * TLS alert about the client certificate (TLS_CLIENT_CERTIFICATE_REJECTED: unknown ca, bad
 * certificate, ...), after --give-up-on-refusal-after of nothing else (5 minutes by default: the
 * StatefulSet passes no --give-up-after, so without it the agent retried for ever and this never
 * showed). The kubelet restarts it, and the restarted agent keeps this termination in lastState while
 * it tries again, so the diagnosis holds across the restarts. Reached, so not "restore outbound
 * HTTPS"; and never identity loss: the agent cannot tell a proxy trusting another CA from a control
 * plane whose CA changed, and a recovery would revoke a certificate that may be good. (The control
 * plane's own refusal of the CA is IDENTITY_UNTRUSTED.) An agent that never paired presented no
 * certificate (its class is FirstBootBootstrap): the server refused the handshake of the enrollment.
 */
const certificateRefusedInHandshake: Rule = (input) => {
  const t = input.agent?.termination;
  if (t?.code !== 'TLS_CLIENT_CERTIFICATE_REJECTED') return undefined;
  if (input.record && endedBeforePairing(t, input.record)) return undefined;
  const restarts =
    'the kubelet restarts the agent by itself (with its backoff), so the next start after the fix connects';
  if (t.failureClass === 'FirstBootBootstrap') {
    return {
      failureClass: 'FirstBootBootstrap',
      reason:
        "the agent, not yet paired, presented no client certificate, and the server at the control plane's URL refused the TLS handshake of its enrollment request with an alert (the agent's reason names it): whatever terminates TLS there (a proxy, ingress or load balancer) requires a client certificate or refuses this client; not a network outage, and the request never reached the control plane",
      evidence: [...agentEvidence(input.agent), ...storageEvidence(input.posture)],
      nextStep: `let the enrollment path through without a client certificate (client certificate optional there, or TLS passthrough to the control plane), or lift the rule of that server that refuses the agent; the token is unspent: ${restarts} and pairs with it (the operator mints a fresh one only if it expires meanwhile${waitsWhileHeld(input)}). No recovery is needed`,
    };
  }
  return {
    failureClass: retired(input) ? 'Reconnect' : 'FirstBootBootstrap',
    reason:
      "the agent reached the control plane's URL, but the TLS handshake there was refused with an alert about the connector's certificate (the agent's reason names it, e.g. unknown ca): the certificate was not accepted, e.g. by a proxy terminating TLS or a control plane trusting another CA; not a network outage, and the identity is kept",
    evidence: [...agentEvidence(input.agent), ...storageEvidence(input.posture)],
    nextStep: `check the proxy and the CA chain at the control plane's URL: configure TLS passthrough to the control plane for the agent, or make whatever terminates TLS there trust the connector CA for client certificates; if the control plane's CA was replaced by mistake, restore it; ${restarts}. No recovery starts for this and none should be asked for on it alone: it would revoke a certificate that may be good (a control plane that no longer trusts the CA says so itself, and the agent then reports IDENTITY_UNTRUSTED)`,
  };
};

/**
 * The agent stopped on a configuration problem between it and the control plane (exit 12), found
 * when the control plane refused its certificate: the identity is intact, the path or the settings
 * are wrong. Not identity loss.
 */
const CONNECTION_CONFIGURATION: Readonly<Record<string, { reason: string; nextStep: string }>> = {
  CONTROL_PLANE_MISMATCH: {
    reason:
      'the identity in the data directory was issued by another control plane than the one the agent is pointed at',
    nextStep:
      "point the Connector at the control plane that issued the identity (the agent's reason names both URLs) and restart the pod once; if the connector moved to the other control plane for good, move the identity directory on the claim aside and pair once with a fresh token",
  },
  CLIENT_CERTIFICATE_NOT_RECEIVED: {
    reason:
      "no client certificate from the agent reaches the control plane although the agent has its certificate: a TLS-terminating proxy, ingress or load balancer between them does not ask for it or drops it, or whatever terminates TLS asks for one in a form the certificate does not fit (the agent's reason says which)",
    nextStep:
      'configure TLS passthrough to the control plane for the agent (or point it at the control plane directly) and restart the pod once; the identity is intact: no recovery and no new token are needed',
  },
  SAN_URI_PREFIX_MISMATCH: {
    reason:
      "the control plane expects another SAN URI prefix than the one the connector's certificate carries (certificate SAN does not match expected pattern)",
    nextStep:
      "give the control plane back the SAN URI prefix the connector's certificate was issued under and restart the pod once; if the prefix changed for good, set the agent's --san-uri-prefix to match, move the identity directory on the claim aside and pair once with a fresh token",
  },
};

const connectionConfiguration: Rule = (input) => {
  const code = input.agent?.termination?.code;
  if (code === undefined || !Object.hasOwn(CONNECTION_CONFIGURATION, code)) return undefined;
  const known = CONNECTION_CONFIGURATION[code] as { reason: string; nextStep: string };
  return {
    failureClass: 'Reconnect',
    reason: `${known.reason}; the identity is intact`,
    evidence: [...agentEvidence(input.agent), ...storageEvidence(input.posture)],
    nextStep: known.nextStep,
  };
};

/** A paired connector's agent started without its identity, or had it refused for good, and stopped. */
const agentLostIdentity: Rule = (input) => {
  const t = input.agent?.termination;
  if (!retired(input) || !t || endedBeforePairing(t, input.record)) return undefined;
  const lost =
    t.failureClass === 'IdentityLoss' ||
    t.code === 'ENROLLMENT_TOKEN_MISSING' ||
    t.failureClass === 'FirstBootBootstrap';
  if (!lost) return undefined;
  const refused = refusedForGood(t) ? REFUSED_IDENTITY_CODES[t.code ?? ''] : undefined;
  return {
    failureClass: 'IdentityLoss',
    reason: refused
      ? `the connector paired before, but the control plane no longer accepts its identity (${t.code}): ${refused}`
      : 'the connector paired before, but its agent found no usable identity in the data directory and failed closed',
    evidence: [...agentEvidence(input.agent), ...storageEvidence(input.posture)],
    nextStep: recoveryNextStep(input),
  };
};

/**
 * A connector that never paired (its record is pending) whose agent found an identity in the data
 * directory and stopped because the control plane refused it for good (IDENTITY_REJECTED,
 * IDENTITY_EXPIRED or IDENTITY_UNTRUSTED, exit 13): typically the claim is that of a Connector
 * deleted with deletionPolicy Release (which deleted the record and its certificate) and this one
 * reuses it, perhaps long after its certificate expired. The agent does not use a token while that
 * identity is there, so an enrollment token cannot help; a guided recovery (whose token the agent
 * pairs with, moving the refused identity aside) does.
 */
export function refusedIdentityOfNeverPaired(
  record: ControlPlaneConnector | undefined,
  agent: AgentPodFacts | undefined,
): boolean {
  const t = agent?.termination;
  if (!t || !record || record.bootstrapRetired || record.state !== 'pending') return false;
  return refusedForGood(t) && (t.failureClass === undefined || t.failureClass === 'IdentityLoss');
}

const refusedIdentity: Rule = (input) => {
  if (!refusedIdentityOfNeverPaired(input.record, input.agent)) return undefined;
  const code = input.agent?.termination?.code ?? '';
  const why =
    code === 'IDENTITY_REJECTED'
      ? 'its certificate belongs to no enrolled connector'
      : (REFUSED_IDENTITY_CODES[code] ?? 'its certificate is refused');
  return {
    failureClass: 'IdentityLoss',
    reason: `the data directory holds an identity the control plane does not accept (${why}), typically the claim of a Connector deleted with deletionPolicy Release; the agent does not replace it with a bootstrap token, so no token is held for it`,
    evidence: [
      ...agentEvidence(input.agent),
      `control plane: ${input.record?.connectorId} is ${input.record?.state} and has no certificate since ${input.record?.stateChangedAt}`,
      ...storageEvidence(input.posture),
    ],
    nextStep: `${recoveryNextStep(input)}; the agent moves the refused identity aside (identity.rejected-<time> in the data directory) and pairs once with the recovery's token`,
  };
};

/**
 * The data directory holds another connector's identity (the agent's IDENTITY_FOREIGN, exit 13):
 * a claim mounted on the wrong Connector, typically one reattached with storage.existingClaim under
 * another connector id. Not this connector's identity lost: nothing a recovery or a token fixes
 * (the agent refuses both while that identity is there), so not IdentityLoss, which would start an
 * automatic recovery. Before this rule the Connector said only "waiting for the connector to pair"
 * while its token waited, unused.
 */
const foreignIdentity: Rule = (input) => {
  const t = input.agent?.termination;
  if (t?.code !== 'IDENTITY_FOREIGN' || (t && input.record && endedBeforePairing(t, input.record)))
    return undefined;
  return {
    failureClass: retired(input) ? 'Reconnect' : 'FirstBootBootstrap',
    reason:
      "the data directory holds another connector's identity (the agent's reason names it): the claim is mounted on the wrong Connector",
    evidence: [...agentEvidence(input.agent), ...storageEvidence(input.posture)],
    nextStep: retired(input)
      ? "mount this connector's own claim back (its identity is intact there), then restart the pod once"
      : `to run the other connector on that claim, use its connector id: ${REATTACH_STEPS}; otherwise give this Connector a claim of its own`,
  };
};

/**
 * The agent's codes for identity files the connector user may not read, or whose loose mode it may
 * not set right (docs/connector-agent.md; the agent exits 12, Configuration): the troubleshooting
 * guide's "Permission Denied", typically a runAsUser or fsGroup changed after pairing.
 */
const INACCESSIBLE_IDENTITY_CODES: ReadonlySet<string> = new Set([
  'IDENTITY_KEY_UNREADABLE',
  'IDENTITY_FILE_UNREADABLE',
  'IDENTITY_PERMISSIONS',
]);

/**
 * Whether the agent's termination is one of those codes meaning a permissions mistake. An agent of
 * a release before IDENTITY_FILE_READ_FAILED said IDENTITY_FILE_UNREADABLE (exit 13) for any read
 * error but a missing file, an I/O error of a failing disk too: from such an agent (not exit 12,
 * Configuration, which pod-facts.ts keeps as the exit code only) it counts only with its
 * "permission denied reading" reason.
 */
function filesInaccessible(t: AgentTermination | undefined): boolean {
  if (t?.code === undefined || !INACCESSIBLE_IDENTITY_CODES.has(t.code)) return false;
  if (t.code !== 'IDENTITY_FILE_UNREADABLE' || t.exitCode === EXIT_CODES.configuration) return true;
  return t.reason?.startsWith('permission denied') === true;
}

/**
 * The agent cannot read its identity files (or set their modes): a permissions mistake, not identity
 * loss. Matched by the agent's code whatever its class, so an agent of a release that still said
 * IdentityLoss (exit 13) for it is read the same way: an automatic recovery would revoke the intact
 * certificate, and could not pair either while the agent cannot read its data directory. A key the
 * reason says others could read is replaced by deleting the identity (identity loss, recovered): the
 * control plane refuses a recovery of a connector whose identity works.
 */
const identityFilesInaccessible: Rule = (input) => {
  const t = input.agent?.termination;
  if (!t || !filesInaccessible(t)) return undefined;
  if (input.record && endedBeforePairing(t, input.record)) return undefined;
  return {
    failureClass: retired(input) ? 'Reconnect' : 'FirstBootBootstrap',
    reason:
      "permission denied: the connector user cannot read the identity files in the data directory, or set their modes (the agent's reason names the file, its owner and mode), typically after the pod's runAsUser or fsGroup changed; the identity is intact",
    evidence: [...agentEvidence(input.agent), ...storageEvidence(input.posture)],
    nextStep:
      "give the connector user the files: make the pod's runAsUser their owner or its fsGroup their group (chown the identity directory on the claim), key.pem mode 0600, cert.pem, ca.pem and identity.json 0644, the directory 0700; then restart the pod once. No recovery and no new token are needed (a recovery would revoke the intact certificate). Only if the agent's reason says the private key was readable by other users and you treat it as exposed: instead, delete the identity directory on the claim (identity/ in the data directory), give the connector user the data directory itself (writable: the new key is written there) and restart the pod; the agent then finds no identity (identity loss), and a guided recovery (automatic under policy Automatic; otherwise spec.recovery.requestId or kubectl vaultpam recover, accepted once the diagnosis says IdentityLoss) revokes the exposed certificate and pairs a new key once. A recovery asked while the identity is still there is refused as not needed",
  };
};

/**
 * The agent paired for the first time, but its data directory did not take the certificate the
 * control plane issued (the agent's IDENTITY_PERSIST_FAILED, exit 12: a full volume, a read-only
 * mount). Nothing is lost: the key is kept on the claim and bootstrap retires at the first heartbeat
 * only. Without this rule the status said only "paired; waiting for the first heartbeat" while the
 * pod crash-looped. The spent token's Secret is deleted once the record says paired, so the agent's
 * "the same token again" does not hold here: the restart after the fix finds no token, and the
 * operator mints a fresh one for it (pairingLost), as the runbook allows before retirement.
 */
const identityNotSaved: Rule = (input) => {
  const t = input.agent?.termination;
  if (t?.code !== 'IDENTITY_PERSIST_FAILED' || retired(input) || input.record?.state !== 'enrolling')
    return undefined;
  // Only a pairing's certificate can fail to be saved: an exit in its second is after it.
  if (endedBeforePairing(t, input.record, 'after')) return undefined;
  return {
    failureClass: 'FirstBootBootstrap',
    reason: `the connector paired at ${input.record.enrolledAt}, but its data directory did not take the certificate the control plane issued (the agent's reason names the file and the error: a full volume, a read-only mount, ownership); the key is kept on the claim and nothing is lost`,
    evidence: [...agentEvidence(input.agent), ...storageEvidence(input.posture)],
    nextStep: `make the data directory writable (free space or expand the claim, a writable mount, the connector user's ownership), then restart the pod once. The token it paired with is spent and its Secret was deleted when the pairing was recorded, so that start reports the token missing (ENROLLMENT_TOKEN_MISSING); the operator then mints a fresh token${waitsWhileHeld(input)} and the next start pairs once with it (a new pairing is allowed until the first heartbeat). No recovery is needed`,
  };
};

/**
 * The same in a guided recovery: the agent paired with the recovery's token (bootstrap retired long
 * before) and its data directory did not take the certificate. The recovery ended Failed on it and
 * its token went with it, so unlike a first pairing no token comes back by itself: the directory is
 * fixed first, then a new request pairs once with the key kept on the claim. The runbook's branch 3
 * ("ensure durable storage is mounted correctly before starting again"). Before, no rule matched and
 * the status showed no diagnosis at all.
 */
const identityNotSavedInRecovery: Rule = (input) => {
  const t = input.agent?.termination;
  const { record } = input;
  // From the record, not the recovery's status: the pass that ends the attempt on this exit says so.
  const requestId = record?.recovery?.requestId;
  if (t?.code !== 'IDENTITY_PERSIST_FAILED' || !record || !retired(input) || record.state !== 'enrolling')
    return undefined;
  if (!requestId || !pairedInRecovery(record, requestId) || endedBeforePairing(t, record, 'after'))
    return undefined;
  return {
    failureClass: 'IdentityLoss',
    reason: `guided recovery ${requestId} paired the connector at ${record.enrolledAt}, but its data directory did not take the certificate the control plane issued (the agent's reason names the file and the error: a full volume, a read-only mount, ownership), so it has no identity to start with; the recovery's token is spent and went with the recovery, and the key is kept on the claim`,
    evidence: [...agentEvidence(input.agent), ...storageEvidence(input.posture)],
    nextStep: `make the data directory writable (free space or expand the claim, a writable mount, the connector user's ownership), then set spec.recovery.requestId to a new value${waitsWhileHeld(input)}: its one fresh token pairs once with the key kept on the claim. No recovery starts by itself before that (it would meet the same directory)`,
  };
};

/** Runbook branch 2: paired before, identity intact, heartbeats stopped. */
const reconnectFailure: Rule = (input) => {
  if (!retired(input) || input.record?.state !== 'offline') return undefined;
  const last = input.record.lastHeartbeatAt;
  return {
    failureClass: 'Reconnect',
    reason: `no heartbeat since ${last ?? 'the first pairing'}; the connector still holds its identity and should reconnect on its own`,
    evidence: [
      `control plane: offline since ${input.record.stateChangedAt}`,
      ...agentEvidence(input.agent),
      ...storageEvidence(input.posture),
    ],
    nextStep:
      'restore outbound HTTPS from the pod to the control plane, confirm the claim still holds the identity, restart the pod once, and check it returns Online without a new token',
  };
};

/**
 * Paired, then lost the identity before the first heartbeat retired bootstrap (an emptyDir pod
 * gone, a claim replaced in between): still the first-boot branch, and a fresh token pairs it.
 */
const pairingLostBeforeFirstHeartbeat: Rule = (input) => {
  if (!pairingLost(input.record, input.agent)) return undefined;
  return {
    failureClass: 'FirstBootBootstrap',
    reason: `the connector paired at ${input.record?.enrolledAt}, but its agent lost the identity before its first heartbeat retired bootstrap`,
    evidence: [...agentEvidence(input.agent), ...storageEvidence(input.posture)],
    nextStep: `the operator mints a fresh enrollment token${waitsWhileHeld(input)} and the agent pairs again on its next start; mount durable storage so the identity survives restarts`,
  };
};

/** Runbook branch 1: never paired; the token, trust or network is the problem. */
const firstBootFailure: Rule = (input) => {
  if (retired(input) || input.record?.state === 'enrolling') return undefined;
  const t = input.agent?.termination;
  const failure = input.record?.lastEnrollmentFailure;
  const agentSaysBootstrap =
    t?.failureClass === 'FirstBootBootstrap' && t.code !== 'ENROLLMENT_TOKEN_MISSING';
  // One expired token is routine (it is re-minted at once); a second one means pairing keeps failing.
  const keepsExpiring = input.unpairedMints >= 2 && input.tokenExpiredUnused;
  if (!agentSaysBootstrap && !failure && !keepsExpiring) return undefined;
  const reasons: string[] = [];
  if (agentSaysBootstrap)
    reasons.push(`the agent's enrollment failed: ${t?.code ?? ''} ${t?.reason ?? ''}`.trim());
  if (failure) reasons.push(`the control plane refused an enrollment with ${failure.code} at ${failure.at}`);
  if (keepsExpiring) {
    // Every token minted for the first pairing ended unused (enrollment.ts counts a revoked one as
    // an expiry for the re-mint backoff): the count is the mints so far.
    reasons.push(
      `enrollment tokens expired or were revoked before the agent used them (${input.unpairedMints} so far)`,
    );
  }
  return {
    failureClass: 'FirstBootBootstrap',
    reason: `the connector never paired: ${reasons.join('; ')}`,
    evidence: [...agentEvidence(input.agent), ...storageEvidence(input.posture)],
    nextStep:
      agentSaysBootstrap && t?.code === 'CLIENT_CERTIFICATE_REQUIRED'
        ? // The guide's "client certificate required" while pairing (a proxy's page or a TLS alert):
          // neither the trust, the network nor the token is the problem.
          `whatever terminates TLS at the control plane's URL (a proxy, ingress or load balancer) requires a client certificate on the enrollment request, which a connector cannot have before it pairs: let the enrollment path through without one (client certificate optional there, or TLS passthrough to the control plane); the request never reached the control plane, so the token is unspent: once the path lets it through, the pod's next start pairs with it (the operator mints a fresh one only if it expires meanwhile${waitsWhileHeld(input)})`
        : `fix the trust (CA bundle), network or token problem the evidence names; the operator mints a fresh token when one expires or is revoked${waitsWhileHeld(input)}, and the agent retries pairing on its next start`,
  };
};

/** The failure-class chain, in order: the first rule that matches gives the diagnosis. */
export const DIAGNOSIS_RULES: readonly Rule[] = [
  controlPlaneNeedsRecovery,
  claimReplaced,
  clockSkew,
  certificateRefusedInHandshake,
  connectionConfiguration,
  foreignIdentity,
  identityFilesInaccessible,
  identityNotSaved,
  identityNotSavedInRecovery,
  agentLostIdentity,
  refusedIdentity,
  reconnectFailure,
  pairingLostBeforeFirstHeartbeat,
  firstBootFailure,
];

/**
 * Heartbeats arrive and the agent runs ready: the connector is well, whatever its container said
 * when it last stopped (a pod's lastState outlives the incident it describes), so no diagnosis.
 */
function connectorWell(input: DiagnosisInput): boolean {
  const state = input.record?.state;
  return (state === 'online' || state === 'degraded') && input.agent?.ready === true;
}

/** The CRD's bounds on status.diagnosis: reason, nextStep and each evidence line; evidence lines. */
export const DIAGNOSIS_TEXT_MAX = 1024;
export const DIAGNOSIS_EVIDENCE_MAX = 16;

/**
 * The diagnosis within the CRD's bounds. A longer field makes the API server refuse the whole status
 * write, so no diagnosis (nor anything else the pass saw) would show; the rules' own texts fit (their
 * test says so), and this keeps a quoted fact that grew from costing the status.
 */
function withinSchema(diagnosis: Omit<Diagnosis, 'since'>): Omit<Diagnosis, 'since'> {
  const { reason, nextStep, evidence } = diagnosis;
  return {
    ...diagnosis,
    ...(reason !== undefined ? { reason: bounded(reason, DIAGNOSIS_TEXT_MAX) } : {}),
    ...(nextStep !== undefined ? { nextStep: bounded(nextStep, DIAGNOSIS_TEXT_MAX) } : {}),
    ...(evidence !== undefined
      ? {
          evidence: evidence
            .slice(0, DIAGNOSIS_EVIDENCE_MAX)
            .map((line) => bounded(line, DIAGNOSIS_TEXT_MAX)),
        }
      : {}),
  };
}

/** The runbook's failure class for what is observed, or undefined when nothing is wrong. */
export function diagnose(input: DiagnosisInput): Omit<Diagnosis, 'since'> | undefined {
  if (connectorWell(input)) return undefined;
  for (const rule of DIAGNOSIS_RULES) {
    const diagnosis = rule(input);
    if (diagnosis) return withinSchema(diagnosis);
  }
  return undefined;
}

/** Keeps `since` of an ongoing diagnosis of the same class, so the status does not churn. */
export function withSince(
  diagnosis: Omit<Diagnosis, 'since'> | undefined,
  previous: Diagnosis | undefined,
  now: Date,
): Diagnosis | undefined {
  if (!diagnosis) return undefined;
  const since =
    previous?.failureClass === diagnosis.failureClass && previous?.since ? previous.since : statusTime(now);
  return { ...diagnosis, since };
}

export function isIdentityLoss(diagnosis: Omit<Diagnosis, 'since'> | undefined): boolean {
  return diagnosis?.failureClass === ('IdentityLoss' satisfies FailureClass);
}
