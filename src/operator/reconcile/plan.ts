// plan(observed, now): the one pure decision of a reconcile pass. It reads what is (observe.ts),
// decides what should be, and returns it as data (plan-types.ts) for the act layer. Observed facts
// in the status are rebuilt from the world on every pass; the only things carried over from the
// previous status are the recovery procedure's progress record and the enrollment counters, which
// is what makes both crash-safe.
import type { V1Pod, V1PodSpec } from '@kubernetes/client-node';
import { ANNOTATIONS } from '../api/constants.ts';
import type { Condition, ConnectorStatus, DefaultedSpec, RecoveryStatus } from '../api/types.ts';
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
import { diagnose, isIdentityLoss, phaseOf, withSince } from './assessment.ts';
import { childNames, configHash, desiredConfigMap, desiredStatefulSet } from './desired-objects.ts';
import { planEnrollment, secretHoldsLiveToken } from './enrollment.ts';
import type { ControlPlaneConnector, Observed } from './observed.ts';
import type { ControlPlaneAction, Plan, PlannedEvent } from './plan-types.ts';
import { agentPodFacts } from './pod-facts.ts';
import { planRecovery, type RecoveryDecision } from './recovery.ts';
import { currentPod, modeOf, type StoragePosture, storagePosture } from './storage-posture.ts';
import { transitionEvents } from './transition-events.ts';

/** The heartbeat time in the status is refreshed at most this often while nothing else changes. */
export const HEARTBEAT_REFRESH_MS = 5 * 60_000;
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

/** The heartbeat time to show: the control plane's, but only refreshed every few minutes. */
export function heartbeatToShow(
  latest: string | null | undefined,
  shown: string | undefined,
): string | undefined {
  if (!latest) return shown;
  if (shown && new Date(latest).getTime() - new Date(shown).getTime() < HEARTBEAT_REFRESH_MS) return shown;
  return stamp(new Date(latest));
}

function postureFor(observed: Observed, spec: DefaultedSpec, pod: V1Pod | undefined): StoragePosture {
  const template = observed.workload?.object?.spec?.template?.spec as V1PodSpec | undefined;
  const names = childNames(spec.name);
  const claimTemplates = new Set(
    observed.workload?.object?.spec?.volumeClaimTemplates?.map((t) => t.metadata?.name ?? '') ?? [],
  );
  const previous = observed.connector.status?.storage;
  return storagePosture({
    podSpec: pod?.spec ?? template,
    ...(pod?.metadata?.name ? { podName: pod.metadata.name } : {}),
    fromPod: pod !== undefined,
    claims: observed.claims,
    // Claims of a StatefulSet's template are named <template>-<statefulset>-0: the adopted one's name
    // when a StatefulSet is adopted, the operator's own otherwise.
    claimForTemplateVolume: (mount) =>
      claimTemplates.has(mount) ? `${mount}-${observed.workload?.name ?? names.statefulSet}-0` : undefined,
    identityClaimUID: previous?.claimUID,
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
  const record = observed.controlPlane.reachable ? observed.controlPlane.record : undefined;
  const pod = currentPod(observed.pods);
  const agent = pod ? agentPodFacts(pod) : undefined;
  const posture = postureFor(observed, spec, pod);
  const retired = record?.bootstrapRetired ?? previous.enrollment?.retired ?? false;

  // ---- enrollment and recovery decisions ----
  const enrollment = planEnrollment({
    connectorUID: connector.metadata.uid ?? '',
    record,
    tokenSecret: observed.tokenSecret,
    previous: previous.enrollment,
    now,
    tokenSecretName: names.tokenSecret,
    paused: spec.paused,
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
  const recovery = spec.paused
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
        phaseBefore: previous.phase,
        workload: observed.workload,
        pods: observed.pods,
        tokenSecret: observed.tokenSecret,
        claims: observed.claims,
        audit: observed.audit,
        now,
      });
  events.push(...recovery.events);

  // ---- control-plane calls ----
  const controlPlane: ControlPlaneAction[] = [];
  if (!spec.paused && observed.controlPlane.reachable && (!record || !sameConfig(record, spec))) {
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
        message: `minted enrollment token #${enrollment.status.mintCount} (expires within ${spec.tokenTTLSeconds} s) into Secret ${names.tokenSecret}`,
      });
    }
    if (enrollment.deleteSecret) {
      deleteTokenSecret = names.tokenSecret;
      events.push(tokenSecretDeletedEvent(names.tokenSecret, retired, Boolean(record?.certificate)));
    }
  }

  // ---- owned objects ----
  const paused = spec.paused;
  let configMap: Plan['configMap'];
  let statefulSet: Plan['statefulSet'];
  let scaleAdopted: Plan['scaleAdopted'];
  const replicas = recovery.inProgress && recovery.replicas !== undefined ? recovery.replicas : 1;
  const restartedFor =
    recovery.restartFor ?? observed.workload?.templateAnnotations[ANNOTATIONS.restartedFor];
  if (!paused) {
    configMap = desiredConfigMap(connector, spec, { url: observed.controlPlaneUrl, caPem: observed.caPem });
    if (spec.workloadRef) {
      if (observed.workload && observed.workload.replicas !== replicas && recovery.inProgress) {
        scaleAdopted = { kind: spec.workloadRef.kind, name: spec.workloadRef.name, replicas };
      }
    } else {
      statefulSet = desiredStatefulSet(connector, spec, {
        image: spec.image ?? observed.defaultImage,
        replicas,
        configHash: configHash(configMap),
        restartedFor,
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
  const mode = modeOf(posture);
  const lastHeartbeatTime = heartbeatToShow(record?.lastHeartbeatAt, previous.lastHeartbeatTime);
  const recoveryDone = recovery.status?.step === 'Completed' && previous.recovery?.step !== 'Completed';
  const claimUID = identityClaimUID(posture, retired, previous.storage?.claimUID, recoveryDone);

  const status: ConnectorStatus = {
    observedGeneration: generation ?? 0,
    phase,
    connectorId: spec.connector.id,
    enrollment: enrollment.status,
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
      status: posture.status,
      reason: posture.reason,
      message: posture.message,
      ...g,
    },
    now,
  );
  conditions = setCondition(
    conditions,
    {
      type: CONDITION_TYPES.Enrolled,
      ...enrolledCondition(record, observed, enrollment.expiredUnused, identityLost, now),
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
  if (recovery.status?.step === 'Failed' && spec.recovery.requestId === recovery.status.requestId) {
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
  const reconciling = reconcilingCondition(observed, record, recovery.inProgress, paused);
  conditions = reconciling
    ? markReconciling(conditions, { ...reconciling, ...g }, now)
    : clearReconciling(conditions);
  conditions = withReady(conditions, generation, now);
  status.conditions = conditions;

  const transitions = transitionEvents({ previous, phase, mode, posture, diagnosis });

  const requeues = [
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
  return result;
}

/** A paused Connector's recovery: the recorded step stays, nothing is planned for it. */
function heldRecovery(previous: RecoveryStatus | undefined): RecoveryDecision {
  const step = previous?.step;
  return {
    status: previous,
    inProgress: step !== undefined && step !== 'Completed' && step !== 'Failed',
    controlPlane: [],
    deleteSecret: false,
    events: [],
  };
}

function enrolledCondition(
  record: ControlPlaneConnector | undefined,
  observed: Observed,
  expiredUnused: boolean,
  identityLost: boolean,
  now: Date,
) {
  if (!observed.controlPlane.reachable) {
    return {
      status: 'Unknown' as const,
      reason: HealthyReasons.ControlPlaneUnreachable,
      message: observed.controlPlane.error.message,
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
  if (record?.state === 'enrolling') {
    return {
      status: 'True' as const,
      reason: EnrolledReasons.Enrolled,
      message: `paired at ${record.enrolledAt}; waiting for the first heartbeat`,
    };
  }
  if (secretHoldsLiveToken(observed.tokenSecret, record, now)) {
    return {
      status: 'False' as const,
      reason: EnrolledReasons.TokenMinted,
      message: `a single-use token waits in Secret ${observed.tokenSecret?.name} until ${observed.tokenSecret?.expiresAt}`,
    };
  }
  if (expiredUnused) {
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
      message: observed.controlPlane.error.message,
    };
  }
  if (identityLost && record?.state !== 'needs_recovery') {
    return {
      status: 'False' as const,
      reason: HealthyReasons.NeedsRecovery,
      message: `the agent failed closed without its identity; the control plane still reports ${record?.state ?? 'no record'} until its heartbeat timeout`,
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
  if (!record || record.state === 'pending' || record.state === 'enrolling') {
    return {
      reason: ReconcilingReasons.Enrolling,
      message: 'waiting for the connector to pair and send its first heartbeat',
    };
  }
  return undefined;
}
