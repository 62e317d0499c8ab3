// plan(observed, now): the one pure decision of a reconcile pass. It reads what is (observe.ts),
// decides what should be, and returns it as data (plan-types.ts) for the act layer. Observed facts
// in the status are rebuilt from the world on every pass; the only things carried over from the
// previous status are the recovery procedure's progress record and the enrollment counters, which
// is what makes both crash-safe.
import type { V1Pod, V1PodSpec, V1StatefulSet } from '@kubernetes/client-node';
import { ADOPTED_BY_LABEL, ANNOTATIONS } from '../api/constants.ts';
import type {
  Condition,
  ConnectorStatus,
  DefaultedSpec,
  EnrollmentStatus,
  RecoveryStatus,
} from '../api/types.ts';
import {
  CONDITION_TYPES,
  clearReconciling,
  clearStalled,
  EnrolledReasons,
  HealthyReasons,
  markReconciling,
  markStalled,
  ReconcilingReasons,
  StalledReasons,
  setCondition,
  withReady,
} from '../conditions.ts';
import { adoptionNotConsentedMessage } from './adoption-consent.ts';
import { diagnose, isIdentityLoss, phaseOf, refusedIdentityOfNeverPaired, withSince } from './assessment.ts';
import { childNames, configHash, desiredConfigMap, desiredStatefulSet } from './desired-objects.ts';
import { type EnrollmentDecision, pairingLost, planEnrollment, secretHoldsLiveToken } from './enrollment.ts';
import type { ControlPlaneConnector, Observed } from './observed.ts';
import { ownershipConflictMessage } from './ownership.ts';
import type { ControlPlaneAction, Plan, PlannedEvent } from './plan-types.ts';
import { type AgentPodFacts, agentPodFacts } from './pod-facts.ts';
import { planRecovery, type RecoveryDecision, recoveryUnderway } from './recovery.ts';
import { planStorageExpansion } from './storage-expansion.ts';
import { currentPod, modeOf, type StoragePosture, storagePosture } from './storage-posture.ts';
import { transitionEvents } from './transition-events.ts';
import { errorMessageText, untrustedRecord } from './untrusted-text.ts';

/** The heartbeat time in the status is refreshed at most this often while nothing else changes. */
export const HEARTBEAT_REFRESH_MS = 5 * 60_000;
/** Look again this often while something the operator does not watch blocks the Connector. */
export const BLOCKED_RECHECK_MS = 15_000;
/** Look again this often at steady state, even without events (control-plane drift, expiry). */
export const STEADY_RESYNC_MS = 10 * 60_000;

const stamp = (now: Date) => `${now.toISOString().slice(0, 19)}Z`;

function sameConfig(record: ControlPlaneConnector, spec: DefaultedSpec): boolean {
  return (
    record.org === spec.connector.org &&
    record.endpointId === spec.connector.endpointId &&
    JSON.stringify(record.allowedNetworks) === JSON.stringify(spec.connector.allowedNetworks)
  );
}

/**
 * The heartbeat time to show: the control plane's. While heartbeats keep arriving it is refreshed
 * at most every few minutes (one status write per heartbeat would load the API server for
 * nothing); once they stop (offline, needs recovery) it is exact, so it agrees with every message
 * that names the last heartbeat.
 */
export function heartbeatToShow(
  latest: string | null | undefined,
  shown: string | undefined,
  beating: boolean,
): string | undefined {
  if (!latest) return shown;
  if (beating && shown && new Date(latest).getTime() - new Date(shown).getTime() < HEARTBEAT_REFRESH_MS)
    return shown;
  return stamp(new Date(latest));
}

function postureFor(
  observed: Observed,
  spec: DefaultedSpec,
  pod: V1Pod | undefined,
  identityClaimUID = observed.connector.status?.storage?.claimUID,
): StoragePosture {
  const template = observed.workload?.object?.spec?.template?.spec as V1PodSpec | undefined;
  const names = childNames(spec.name);
  const claimTemplates = new Set(
    observed.workload?.object?.spec?.volumeClaimTemplates?.map((t) => t.metadata?.name ?? '') ?? [],
  );
  return storagePosture({
    podSpec: pod?.spec ?? template,
    ...(pod?.metadata?.name ? { podName: pod.metadata.name } : {}),
    fromPod: pod !== undefined,
    claims: observed.claims,
    // Claims of a StatefulSet's template are named <template>-<statefulset>-0: the adopted one's name
    // when a StatefulSet is adopted, the operator's own otherwise.
    claimForTemplateVolume: (mount) =>
      claimTemplates.has(mount) ? `${mount}-${observed.workload?.name ?? names.statefulSet}-0` : undefined,
    identityClaimUID,
    ephemeralByChoice: spec.storage.kind === 'EmptyDir',
  });
}

/** The claim UID the identity lives on: remembered once the connector is retired, moved by a recovery. */
function identityClaimUID(
  posture: StoragePosture,
  retired: boolean,
  previous: string | undefined,
  recoveryDone: boolean,
): string | undefined {
  const current = posture.claim?.uid;
  if (!retired) return current ?? previous;
  if (!previous || recoveryDone) return current ?? previous;
  return previous;
}

/** The enrollment status of a pass whose planned mint is not made: the mint counters as they were. */
function unmintedEnrollment(
  status: EnrollmentStatus,
  previous: EnrollmentStatus | undefined,
): EnrollmentStatus {
  const { lastMintKey: _key, tokenMintedAt: _at, ...rest } = status;
  return {
    ...rest,
    mintCount: previous?.mintCount ?? 0,
    ...(previous?.lastMintKey ? { lastMintKey: previous.lastMintKey } : {}),
    ...(previous?.tokenMintedAt ? { tokenMintedAt: previous.tokenMintedAt } : {}),
  };
}

/** The enrollment status of a pass that deletes the token Secret: it names no Secret. */
function withoutTokenSecret(status: EnrollmentStatus): EnrollmentStatus {
  const { tokenSecretName: _name, ...rest } = status;
  return rest;
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

export function plan(observed: Observed, now: Date): Plan {
  const connector = observed.connector;
  const previous: ConnectorStatus = connector.status ?? {};
  const generation = connector.metadata.generation;
  const events: PlannedEvent[] = [];
  let conditions: Condition[] = [...(previous.conditions ?? [])];

  if (!observed.spec.ok) {
    conditions = markStalled(
      conditions,
      {
        reason: StalledReasons.InvalidSpec,
        message: observed.spec.error.message,
        ...(generation !== undefined ? { observedGeneration: generation } : {}),
      },
      now,
    );
    conditions = withReady(clearReconciling(conditions), generation, now);
    return {
      controlPlane: [],
      events: [{ type: 'Warning', reason: 'InvalidSpec', message: observed.spec.error.message }],
      status: { ...previous, observedGeneration: generation ?? 0, conditions },
    };
  }
  const spec = observed.spec.value;
  const names = childNames(spec.name);
  // The record's free text (path details, the last enrollment failure) is the server's words.
  const record = observed.controlPlane.reachable ? untrustedRecord(observed.controlPlane.record) : undefined;
  const pod = currentPod(observed.pods);
  const agent = pod ? agentPodFacts(pod) : undefined;
  const posture = postureFor(observed, spec, pod);
  const retired = record?.bootstrapRetired ?? previous.enrollment?.retired ?? false;
  // Gate before deciding: paused, or an object with a child's name that is not ours, means this
  // pass observes and reports only. Nothing is minted, written or counted.
  const blocker = blockingReason(observed, spec);
  const holding = spec.paused || blocker !== undefined;
  const identityRefused = refusedIdentityOfNeverPaired(record, agent);
  const lostPairing = pairingLost(record, agent);

  // ---- enrollment and recovery decisions ----
  const enrollment = planEnrollment({
    connectorUID: connector.metadata.uid ?? '',
    record,
    tokenSecret: observed.tokenSecret,
    previous: previous.enrollment,
    now,
    tokenSecretName: names.tokenSecret,
    paused: holding,
    identityRefused,
    pairingLost: lostPairing,
  });
  const rawDiagnosis = diagnose({
    record,
    agent,
    posture,
    unpairedMints: retired ? 0 : (previous.enrollment?.mintCount ?? 0),
    recoveryPolicy: spec.recovery.policy,
    tokenExpiredUnused: enrollment.expiredUnused,
  });
  // Paused: a recovery under way holds its step; none starts, none advances.
  const recovery = holding
    ? heldRecovery(previous.recovery)
    : planRecovery({
        connectorId: spec.connector.id,
        policy: spec.recovery.policy,
        requestedId: spec.recovery.requestId,
        validateRestart: spec.recovery.validateRestart,
        storage: spec.storage,
        previous: previous.recovery,
        record,
        identityLoss: isIdentityLoss(rawDiagnosis),
        identityRefused,
        phaseBefore: previous.phase,
        workload: observed.workload,
        pods: observed.pods,
        tokenSecret: observed.tokenSecret,
        claims: observed.claims,
        audit: observed.audit,
        check: observed.recoveryCheck,
        consumedMintKey: previous.enrollment?.consumedMintKey,
        now,
      });
  events.push(...recovery.events);
  // A recovery in progress mints its own one token (recovery.mintKey), so an enrollment mint it
  // preempts is not made, and is not counted either: the counters stay as they were.
  const enrollmentStatus =
    recovery.inProgress && enrollment.mint
      ? unmintedEnrollment(enrollment.status, previous.enrollment)
      : enrollment.status;

  // ---- control-plane calls ----
  const controlPlane: ControlPlaneAction[] = [];
  // An unowned record (retained by a deleted Connector, or from before ownership) is claimed by the
  // same idempotent PUT that registers the configuration.
  const unowned = record !== undefined && record.ownerUid === null;
  if (!holding && observed.controlPlane.reachable && (!record || unowned || !sameConfig(record, spec))) {
    controlPlane.push({
      kind: 'ensureConnector',
      connectorId: spec.connector.id,
      config: {
        org: spec.connector.org,
        endpointId: spec.connector.endpointId,
        allowedNetworks: spec.connector.allowedNetworks,
      },
    });
  }
  let deleteTokenSecret: string | undefined;
  if (recovery.inProgress) {
    controlPlane.push(...recovery.controlPlane);
    if (recovery.mintKey) {
      controlPlane.push({
        kind: 'mintToken',
        connectorId: spec.connector.id,
        idempotencyKey: recovery.mintKey,
        ttlSeconds: spec.tokenTTLSeconds,
      });
    }
    if (recovery.deleteSecret) deleteTokenSecret = names.tokenSecret;
  } else if (observed.controlPlane.reachable) {
    if (enrollment.revoke) controlPlane.push({ kind: 'revokeTokens', connectorId: spec.connector.id });
    if (enrollment.mint) {
      controlPlane.push({
        kind: 'mintToken',
        connectorId: spec.connector.id,
        idempotencyKey: enrollment.mint.idempotencyKey,
        ttlSeconds: spec.tokenTTLSeconds,
      });
      events.push({
        type: 'Normal',
        reason: 'TokenMinted',
        message: `minted enrollment token #${enrollment.status.mintCount} (expires within ${spec.tokenTTLSeconds} s) into Secret ${names.tokenSecret}${lostPairing ? ': the agent lost the identity it paired with before its first heartbeat, and pairs again' : ''}`,
      });
    }
    if (enrollment.deleteSecret) {
      deleteTokenSecret = names.tokenSecret;
      // A token that expired unused was not spent by the pairing, even when the record has paired.
      const paired = Boolean(record?.certificate) && !enrollment.expiredUnused;
      events.push(tokenSecretDeletedEvent(names.tokenSecret, retired, paired));
    }
  }

  // ---- owned objects ----
  const paused = holding;
  let configMap: Plan['configMap'];
  let statefulSet: Plan['statefulSet'];
  let scaleAdopted: Plan['scaleAdopted'];
  const replicas = recovery.inProgress && recovery.replicas !== undefined ? recovery.replicas : 1;
  const restartedFor =
    recovery.restartFor ?? observed.workload?.templateAnnotations[ANNOTATIONS.restartedFor];
  if (!paused) {
    configMap = desiredConfigMap(connector, spec, { url: observed.controlPlaneUrl, caPem: observed.caPem });
    if (spec.workloadRef) {
      // An adopted workload is scaled only when a recovery asks for a number: down, up to pair, or
      // back to the replicas it had when an attempt that scaled it ends. Otherwise it is the user's.
      const wanted = recovery.replicas;
      if (observed.workload && wanted !== undefined && observed.workload.replicas !== wanted) {
        scaleAdopted = { kind: spec.workloadRef.kind, name: spec.workloadRef.name, replicas: wanted };
      }
    } else {
      statefulSet = desiredStatefulSet(connector, spec, {
        image: spec.image ?? observed.defaultImage,
        replicas,
        configHash: configHash(configMap),
        restartedFor,
        liveClaimTemplates: observed.workload?.object?.spec?.volumeClaimTemplates,
      });
    }
  }

  // ---- status ----
  // The agent's fail-closed exit (or a replaced claim) proves the identity is gone before the
  // control plane's heartbeat timeout can: show NeedsRecovery at once, not Online or Offline.
  const identityLost = !recovery.inProgress && isIdentityLoss(rawDiagnosis);
  const phase = !observed.controlPlane.reachable
    ? (previous.phase ?? 'Pending')
    : identityLost
      ? 'NeedsRecovery'
      : phaseOf(record, recovery.inProgress);
  const diagnosis = withSince(recovery.inProgress ? undefined : rawDiagnosis, previous.diagnosis, now);
  const recoveryDone = recovery.status?.step === 'Completed' && previous.recovery?.step !== 'Completed';
  const claimUID = identityClaimUID(posture, retired, previous.storage?.claimUID, recoveryDone);
  // The pass that completes a recovery moves the identity to the claim it paired on, so the storage
  // it reports (mode, DurableStorage, Ready) is judged against that claim: the replaced one is gone.
  const shownPosture =
    recoveryDone && claimUID !== previous.storage?.claimUID
      ? postureFor(observed, spec, pod, claimUID)
      : posture;
  const mode = modeOf(shownPosture);
  const lastHeartbeatTime = heartbeatToShow(
    record?.lastHeartbeatAt,
    previous.lastHeartbeatTime,
    record?.state === 'online' || record?.state === 'degraded',
  );

  const status: ConnectorStatus = {
    observedGeneration: generation ?? 0,
    phase,
    connectorId: spec.connector.id,
    enrollment: deleteTokenSecret ? withoutTokenSecret(enrollmentStatus) : enrollmentStatus,
    storage: {
      ...(posture.volumeName ? { volumeName: posture.volumeName } : {}),
      source: posture.source,
      ...(posture.claimName ? { claimName: posture.claimName } : {}),
      ...(claimUID ? { claimUID } : {}),
      ...(posture.claim?.phase ? { claimPhase: posture.claim.phase } : {}),
      ...(posture.podName ? { podName: posture.podName } : {}),
    },
  };
  if (mode) status.mode = mode;
  if (record) status.controlPlaneState = record.state;
  if (lastHeartbeatTime) status.lastHeartbeatTime = lastHeartbeatTime;
  if (record?.certificate) {
    status.identity = {
      certificateSerial: record.certificate.serial,
      notAfter: record.certificate.notAfter,
      fingerprintSHA256: record.certificate.fingerprintSha256,
    };
  }
  if (recovery.status) status.recovery = recovery.status;
  if (diagnosis) status.diagnosis = diagnosis;

  // ---- conditions ----
  const g = generation !== undefined ? { observedGeneration: generation } : {};
  conditions = setCondition(
    conditions,
    {
      type: CONDITION_TYPES.DurableStorage,
      status: shownPosture.status,
      reason: shownPosture.reason,
      message: shownPosture.message,
      ...g,
    },
    now,
  );
  conditions = setCondition(
    conditions,
    {
      type: CONDITION_TYPES.Enrolled,
      ...enrolledCondition(record, observed, enrollment, agent, identityLost, lostPairing, now),
      ...g,
    },
    now,
  );
  conditions = setCondition(
    conditions,
    {
      type: CONDITION_TYPES.Healthy,
      ...healthyCondition(observed, record, recovery.inProgress, identityLost),
      ...g,
    },
    now,
  );
  conditions = clearStalled(conditions);
  if (blocker) {
    conditions = markStalled(conditions, { ...blocker, ...g }, now);
    events.push({ type: 'Warning', ...blocker });
  } else if (recovery.status?.step === 'Failed' && spec.recovery.requestId === recovery.status.requestId) {
    conditions = markStalled(
      conditions,
      {
        reason: StalledReasons.RecoveryFailed,
        message: `${recovery.status.reason ?? 'the recovery failed'}; set a new spec.recovery.requestId to try again`,
        ...g,
      },
      now,
    );
  } else if (
    (record?.state === 'needs_recovery' || identityLost) &&
    spec.recovery.policy === 'Manual' &&
    !recovery.inProgress
  ) {
    conditions = markStalled(
      conditions,
      {
        reason: StalledReasons.RecoveryRequired,
        message: diagnosis?.nextStep ?? 'set spec.recovery.requestId to run a guided recovery',
        ...g,
      },
      now,
    );
  }
  // ---- growing the claim when spec.storage.size grew (storage-expansion.ts) ----
  const expansion = planStorageExpansion({
    storage: spec.storage,
    claim: observed.claims.get(names.claim),
    storageClass: observed.storageClass,
    previousConditions: previous.conditions,
    holding: paused,
  });
  events.push(...expansion.events);
  if (expansion.stalled && !conditions.some((c) => c.type === CONDITION_TYPES.Stalled))
    conditions = markStalled(conditions, { ...expansion.stalled, ...g }, now);
  const reconciling =
    // NeedsRecovery waits for a person or a recovery: not progress the operator is making.
    reconcilingCondition(observed, record, recovery.inProgress, paused || identityLost) ??
    expansion.reconciling;
  conditions = reconciling
    ? markReconciling(conditions, { ...reconciling, ...g }, now)
    : clearReconciling(conditions);
  conditions = withReady(conditions, generation, now);
  status.conditions = conditions;

  const transitions = transitionEvents({ previous, phase, mode, posture: shownPosture, diagnosis });

  const requeues = [
    // What blocks the pass (a user's object, a missing workload or claim) may change without any
    // event the operator watches (it only watches its own labelled objects): look again soon.
    blocker ? BLOCKED_RECHECK_MS : undefined,
    enrollment.requeueAfterMs,
    recovery.inProgress ? recovery.requeueAfterMs : undefined,
    STEADY_RESYNC_MS,
  ];
  const result: Plan = {
    controlPlane,
    status,
    events,
    transitions,
    requeueAfterMs: Math.min(...requeues.filter((r): r is number => r !== undefined)),
  };
  if (configMap) result.configMap = configMap;
  if (statefulSet) result.statefulSet = statefulSet;
  if (scaleAdopted) result.scaleAdopted = scaleAdopted;
  if (deleteTokenSecret) result.deleteTokenSecret = deleteTokenSecret;
  if (expansion.expandClaim) result.expandClaim = expansion.expandClaim;
  return result;
}

/**
 * What stops this pass from deciding anything, before anything is decided: an object with a child's
 * name that is not ours, an adopted workload that does not exist or has not consented to adoption,
 * an existing claim that does not exist. Minting a token (or scaling, or creating a workload) for a
 * connector that cannot run would be a side effect before its precondition, and scaling a workload
 * that did not consent would make the operator the deputy of whoever wrote the Connector.
 */
function blockingReason(
  observed: Observed,
  spec: DefaultedSpec,
): { reason: string; message: string } | undefined {
  const foreign = observed.foreign ?? [];
  if (foreign.length > 0) {
    return {
      reason: StalledReasons.OwnershipConflict,
      message: ownershipConflictMessage(spec.namespace, foreign),
    };
  }
  const record = observed.controlPlane.reachable ? observed.controlPlane.record : undefined;
  const owner = record?.ownerUid;
  if (typeof owner === 'string' && owner !== observed.connector.metadata.uid) {
    return {
      reason: StalledReasons.ConnectorIdConflict,
      message: `connector id ${spec.connector.id} belongs to another Connector in the control plane; give this Connector another spec.connector.id, or delete the other one (with deletionPolicy Retain to hand its record over)`,
    };
  }
  if (spec.workloadRef && !observed.workload) {
    const { kind, name } = spec.workloadRef;
    return {
      reason: StalledReasons.WorkloadNotFound,
      message: `spec.workloadRef: ${kind} ${spec.namespace}/${name} does not exist; create it (labelled ${ADOPTED_BY_LABEL}=${spec.name}, its consent to adoption) or fix the name`,
    };
  }
  const adopted = observed.workload;
  if (spec.workloadRef && adopted && adopted.consented !== true) {
    return {
      reason: StalledReasons.AdoptionNotConsented,
      message: adoptionNotConsentedMessage({
        namespace: spec.namespace,
        kind: spec.workloadRef.kind,
        name: spec.workloadRef.name,
        connectorName: spec.name,
        adoptedBy: adopted.adoptedBy,
      }),
    };
  }
  const step = observed.connector.status?.recovery?.step;
  const recovering = recoveryUnderway(step);
  // During a recovery the StorageReady step reports a missing claim itself, as the attempt's outcome.
  if (spec.storage.kind === 'ExistingClaim' && !recovering && !observed.claims.has(spec.storage.claimName)) {
    return {
      reason: StalledReasons.ClaimNotFound,
      message: `spec.storage.existingClaim: PersistentVolumeClaim ${spec.namespace}/${spec.storage.claimName} does not exist; create it (or restore the original identity volume under that name)`,
    };
  }
  return undefined;
}

/** A paused Connector's recovery: the recorded step stays, nothing is planned for it. */
function heldRecovery(previous: RecoveryStatus | undefined): RecoveryDecision {
  const step = previous?.step;
  return {
    status: previous,
    inProgress: recoveryUnderway(step),
    controlPlane: [],
    deleteSecret: false,
    events: [],
  };
}

function enrolledCondition(
  record: ControlPlaneConnector | undefined,
  observed: Observed,
  enrollment: Pick<EnrollmentDecision, 'expiredUnused' | 'revokedUnused'>,
  agent: AgentPodFacts | undefined,
  identityLost: boolean,
  lostPairing: boolean,
  now: Date,
) {
  if (!observed.controlPlane.reachable) {
    return {
      status: 'Unknown' as const,
      reason: HealthyReasons.ControlPlaneUnreachable,
      message: errorMessageText(observed.controlPlane.error),
    };
  }
  if (record?.state === 'needs_recovery' || identityLost) {
    return {
      status: 'False' as const,
      reason: EnrolledReasons.NeedsRecovery,
      message: 'the persisted identity is lost; a guided recovery must mint a new token',
    };
  }
  if (record?.bootstrapRetired) {
    return {
      status: 'True' as const,
      reason: EnrolledReasons.BootstrapRetired,
      message: `paired at ${record.enrolledAt}; bootstrap retired, restarts use the persisted identity only`,
    };
  }
  if (record?.state === 'enrolling' && lostPairing) {
    // Not retired yet: the control plane mints for the record, and the agent pairs again.
    const waiting = secretHoldsLiveToken(observed.tokenSecret, record, now);
    const lost = `the agent paired at ${record.enrolledAt} but lost that identity before its first heartbeat (bootstrap is not retired, so it pairs again with a fresh token)`;
    return {
      status: 'False' as const,
      reason: waiting ? EnrolledReasons.TokenMinted : EnrolledReasons.AwaitingEnrollment,
      message: waiting
        ? `${lost}; a single-use token waits in Secret ${observed.tokenSecret?.name} until ${observed.tokenSecret?.expiresAt}`
        : `${lost}; a fresh token is minted`,
    };
  }
  if (record?.state === 'enrolling') {
    return {
      status: 'True' as const,
      reason: EnrolledReasons.Enrolled,
      message: `paired at ${record.enrolledAt}; waiting for the first heartbeat`,
    };
  }
  const refusal = agent?.termination;
  if (refusal?.failureClass === 'FirstBootBootstrap' && refusal.code !== 'ENROLLMENT_TOKEN_MISSING') {
    return {
      status: 'False' as const,
      reason: EnrolledReasons.EnrollmentRejected,
      message: `the agent's enrollment was refused: ${[refusal.code, refusal.reason].filter(Boolean).join(': ')}`,
    };
  }
  if (enrollment.revokedUnused) {
    return {
      status: 'False' as const,
      reason: EnrolledReasons.TokenRevoked,
      message: `the token in Secret ${observed.tokenSecret?.name} was revoked in the control plane before the agent used it; its Secret is deleted and a fresh token is minted`,
    };
  }
  if (secretHoldsLiveToken(observed.tokenSecret, record, now)) {
    return {
      status: 'False' as const,
      reason: EnrolledReasons.TokenMinted,
      message: `a single-use token waits in Secret ${observed.tokenSecret?.name} until ${observed.tokenSecret?.expiresAt}`,
    };
  }
  if (enrollment.expiredUnused) {
    return {
      status: 'False' as const,
      reason: EnrolledReasons.TokenExpired,
      message: 'the enrollment token expired before the connector paired; a fresh one is minted',
    };
  }
  return { status: 'False' as const, reason: EnrolledReasons.AwaitingEnrollment, message: 'not paired yet' };
}

function healthyCondition(
  observed: Observed,
  record: ControlPlaneConnector | undefined,
  recovering: boolean,
  identityLost: boolean,
) {
  if (!observed.controlPlane.reachable) {
    return {
      status: 'Unknown' as const,
      reason: HealthyReasons.ControlPlaneUnreachable,
      message: errorMessageText(observed.controlPlane.error),
    };
  }
  if (identityLost && record?.state !== 'needs_recovery') {
    return {
      status: 'False' as const,
      reason: HealthyReasons.NeedsRecovery,
      message:
        record?.state === 'pending'
          ? 'the agent failed closed: its data directory holds an identity the control plane does not accept'
          : `the agent failed closed without its identity; the control plane still reports ${record?.state ?? 'no record'} until its heartbeat timeout`,
    };
  }
  if (recovering || record?.state === 'recovering') {
    return {
      status: 'False' as const,
      reason: HealthyReasons.Recovering,
      message: 'a guided recovery is in progress',
    };
  }
  switch (record?.state) {
    case 'online':
      return {
        status: 'True' as const,
        reason: HealthyReasons.HeartbeatOk,
        message: `heartbeats arrive; every path healthy`,
      };
    case 'degraded': {
      const bad = record.paths
        .filter((p) => !p.healthy)
        .map((p) => (p.detail ? `${p.name} (${p.detail})` : p.name));
      return {
        status: 'False' as const,
        reason: HealthyReasons.PathUnhealthy,
        message: `unhealthy path(s): ${bad.join(', ')}`,
      };
    }
    case 'offline':
      return {
        status: 'False' as const,
        reason: HealthyReasons.HeartbeatMissed,
        message: `no heartbeat since ${record.lastHeartbeatAt ?? 'pairing'}`,
      };
    case 'needs_recovery':
      return {
        status: 'False' as const,
        reason: HealthyReasons.NeedsRecovery,
        message: 'the control plane reports needs_recovery',
      };
    default:
      return {
        status: 'Unknown' as const,
        reason: HealthyReasons.NeverConnected,
        message: 'no heartbeat yet',
      };
  }
}

/**
 * Why a StatefulSet has not finished rolling out, if it has not: its controller has not seen the
 * latest spec, or some replicas still run an older revision (the rule kstatus applies to it).
 */
export function rolloutInProgress(sts: V1StatefulSet | undefined): string | undefined {
  if (!sts) return undefined;
  const generation = sts.metadata?.generation;
  const status = sts.status;
  if (generation !== undefined && (status?.observedGeneration ?? 0) < generation)
    return `the StatefulSet controller has not observed generation ${generation} yet`;
  const replicas = sts.spec?.replicas ?? 1;
  if (replicas > 0 && status?.updateRevision && status.currentRevision !== status.updateRevision)
    return `rolling out revision ${status.updateRevision}: ${status.updatedReplicas ?? 0} of ${replicas} replicas updated`;
  return undefined;
}

function reconcilingCondition(
  observed: Observed,
  record: ControlPlaneConnector | undefined,
  recovering: boolean,
  paused: boolean,
) {
  if (paused) return undefined;
  if (recovering)
    return {
      reason: ReconcilingReasons.Recovering,
      message: `guided recovery ${observed.connector.status?.recovery?.requestId ?? ''} in progress`,
    };
  if (!observed.workload && !observed.connector.spec.workloadRef)
    return { reason: ReconcilingReasons.ApplyingResources, message: 'creating the workload' };
  const rollout = rolloutInProgress(observed.workload?.object);
  if (rollout) return { reason: ReconcilingReasons.RollingOut, message: rollout };
  if (!record || record.state === 'pending' || record.state === 'enrolling') {
    return {
      reason: ReconcilingReasons.Enrolling,
      message: 'waiting for the connector to pair and send its first heartbeat',
    };
  }
  return undefined;
}
