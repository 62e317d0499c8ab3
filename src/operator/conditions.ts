// The one owner of status.conditions. Every condition the operator writes goes through here, so
// lastTransitionTime moves only when a status flips, Ready is derived the same way everywhere, and
// every reason is a constant a test, an alert or a person can rely on.
//
// Polarity: Ready, DurableStorage, Enrolled and Healthy are "normal-true" (True is good).
// Reconciling and Stalled follow kstatus: "abnormal-true", present only while they hold, removed
// otherwise, so a healthy object carries neither.
import { CodedError } from '../lib/errors.ts';
import type { Condition, ConditionStatus } from './api/types.ts';

export const CONDITION_TYPES = {
  Ready: 'Ready',
  Reconciling: 'Reconciling',
  Stalled: 'Stalled',
  DurableStorage: 'DurableStorage',
  Enrolled: 'Enrolled',
  Healthy: 'Healthy',
} as const;
export type ConditionType = (typeof CONDITION_TYPES)[keyof typeof CONDITION_TYPES];

/** Why the data directory is or is not durable (from the volume the running pod mounts there). */
export const DurableStorageReasons = {
  /** True: a bound PersistentVolumeClaim is mounted at the data directory. */
  ClaimBound: 'ClaimBound',
  /** Unknown: the claim exists but is not bound yet. */
  ClaimPending: 'ClaimPending',
  /** False: the claim is Lost, or gone, or not found. */
  ClaimLost: 'ClaimLost',
  /** False: an emptyDir is mounted although durable storage was asked for. */
  EmptyDir: 'EmptyDir',
  /** False: a generic ephemeral volume lives and dies with the pod. */
  EphemeralVolume: 'EphemeralVolume',
  /** True: a hostPath survives restarts, but only on the same node. */
  HostPath: 'HostPath',
  /** False: nothing is mounted at the data directory; the identity lives in the container layer. */
  NoVolume: 'NoVolume',
  /** False: the claim was recreated (new UID), so the persisted identity is gone. */
  ClaimReplaced: 'ClaimReplaced',
  /** False, and chosen: spec.storage.ephemeral is true (guided recovery deliberately). */
  EphemeralByChoice: 'EphemeralByChoice',
  /** Unknown: no pod runs, so there is no mount to look at. */
  NoRunningPod: 'NoRunningPod',
  /** Unknown: an adopted pod has several containers and none is recognisably the agent. */
  AgentContainerUnknown: 'AgentContainerUnknown',
  /** Unknown: the adopted workload mounts something the operator cannot classify. */
  UnrecognizedVolume: 'UnrecognizedVolume',
} as const;

/** Where the connector is in its pairing lifecycle. */
export const EnrolledReasons = {
  /** True: enrolled, first heartbeat not yet seen. */
  Enrolled: 'Enrolled',
  /** True: enrolled and bootstrap retired; restarts use the persisted identity only. */
  BootstrapRetired: 'BootstrapRetired',
  /** False: never enrolled and no live token yet. */
  AwaitingEnrollment: 'AwaitingEnrollment',
  /** False: a live token waits in its Secret for the agent. */
  TokenMinted: 'TokenMinted',
  /** False: the token expired before the agent paired. */
  TokenExpired: 'TokenExpired',
  /** False: the token was revoked before the agent paired. */
  TokenRevoked: 'TokenRevoked',
  /** False: the control plane rejected the enrollment (CSR, trust, token). */
  EnrollmentRejected: 'EnrollmentRejected',
  /** False: the identity is lost; a recovery must mint a new token. */
  NeedsRecovery: 'NeedsRecovery',
} as const;

/** What the heartbeats say. */
export const HealthyReasons = {
  /** True: heartbeats arrive and every path is healthy. */
  HeartbeatOk: 'HeartbeatOk',
  /** False: heartbeats arrive but at least one path is unhealthy (Degraded). */
  PathUnhealthy: 'PathUnhealthy',
  /** False: no heartbeat for the offline window (Offline). */
  HeartbeatMissed: 'HeartbeatMissed',
  /** False: the control plane reports needs_recovery. */
  NeedsRecovery: 'NeedsRecovery',
  /** False: a guided recovery is in progress. */
  Recovering: 'Recovering',
  /** Unknown: the connector has never sent a heartbeat. */
  NeverConnected: 'NeverConnected',
  /** Unknown: the operator cannot reach the control plane to ask. */
  ControlPlaneUnreachable: 'ControlPlaneUnreachable',
} as const;

export const ReadyReasons = {
  /** True: healthy, enrolled, and on the storage the spec asked for. */
  Ready: 'Ready',
  /** Unknown: a condition Ready depends on has not been observed yet. */
  NotObserved: 'NotObserved',
  // When Ready is False or Unknown for another reason, it carries the reason of the condition that
  // blocks it (e.g. HeartbeatMissed, EmptyDir, InvalidSpec), Cluster API style.
} as const;

/** kstatus Reconciling: the operator is working towards the desired state. */
export const ReconcilingReasons = {
  /** Creating or updating owned objects (ConfigMap, StatefulSet, claim). */
  ApplyingResources: 'ApplyingResources',
  /** The workload is rolling out or scaling. */
  RollingOut: 'RollingOut',
  /** Waiting for the agent to pair with its token. */
  Enrolling: 'Enrolling',
  /** A guided recovery is running. */
  Recovering: 'Recovering',
  /** A temporary error; the operator retries with backoff. */
  RetryingAfterError: 'RetryingAfterError',
  /** Deleting: releasing the control-plane record before removing the finalizer. */
  Finalizing: 'Finalizing',
  /** The claim grows to spec.storage.size: asked, being resized, or waiting to be Bound first. */
  ExpandingStorage: 'ExpandingStorage',
} as const;

/** kstatus Stalled: the operator cannot make progress without a change from a person. */
export const StalledReasons = {
  /** The spec breaks a rule the CRD could not check (e.g. a derived name that does not fit). */
  InvalidSpec: 'InvalidSpec',
  /** The last guided recovery failed; set a new spec.recovery.requestId to try again. */
  RecoveryFailed: 'RecoveryFailed',
  /** NeedsRecovery under policy Manual: waiting for spec.recovery.requestId. */
  RecoveryRequired: 'RecoveryRequired',
  /** A control-plane reference (URL, CA ConfigMap, credential Secret) is missing or unusable. */
  ControlPlaneConfigInvalid: 'ControlPlaneConfigInvalid',
  /** The control plane refused the admin credential. */
  ControlPlaneUnauthorized: 'ControlPlaneUnauthorized',
  /** The control plane refused a request permanently (e.g. TTL too long, connector conflict). */
  ControlPlaneRejected: 'ControlPlaneRejected',
  /** spec.workloadRef names a workload that does not exist. */
  WorkloadNotFound: 'WorkloadNotFound',
  /** The workload spec.workloadRef names does not carry vaultpam.io/adopted-by: <this Connector>. */
  AdoptionNotConsented: 'AdoptionNotConsented',
  /** An object with the operator's child name exists and belongs to someone else. */
  OwnershipConflict: 'OwnershipConflict',
  /** The connector id is already used by another Connector resource. */
  ConnectorIdConflict: 'ConnectorIdConflict',
  /** spec.existingClaim names a claim that does not exist. */
  ClaimNotFound: 'ClaimNotFound',
  /** spec.priorityClassName names a PriorityClass that does not exist (checked while no pod runs). */
  PriorityClassNotFound: 'PriorityClassNotFound',
  /** spec.serviceAccountName names a ServiceAccount of the namespace that does not exist (while no pod runs). */
  ServiceAccountNotFound: 'ServiceAccountNotFound',
  /** Kubernetes forbids the operator to read the PriorityClass or ServiceAccount the pod names, so it cannot check it. */
  PodReferenceForbidden: 'PodReferenceForbidden',
  /** spec.storage.size grew, but the claim's StorageClass does not allow volume expansion. */
  StorageExpansionUnsupported: 'StorageExpansionUnsupported',
  /** Kubernetes refused the operator's finalizer (an admission policy): nothing is done until it is accepted. */
  FinalizerRefused: 'FinalizerRefused',
} as const;

/** What a caller says about one condition; the module decides lastTransitionTime. */
export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  observedGeneration?: number;
}

/** Same rule as metav1.Condition.reason. */
const REASON_PATTERN = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;
const MAX_MESSAGE_LENGTH = 32768;

/** Conditions in a fixed order, so equal sets serialize equally and a status write is skipped. */
const TYPE_ORDER: readonly string[] = [
  CONDITION_TYPES.Ready,
  CONDITION_TYPES.Reconciling,
  CONDITION_TYPES.Stalled,
  CONDITION_TYPES.DurableStorage,
  CONDITION_TYPES.Enrolled,
  CONDITION_TYPES.Healthy,
];

/**
 * A time in status (conditions, recovery, enrollment) as metav1.Time serializes it: RFC 3339, whole
 * seconds, UTC. Sub-second digits would make two reconciles in the same second disagree for no reason.
 */
export function statusTime(now: Date): string {
  return `${now.toISOString().slice(0, 19)}Z`;
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

/**
 * Returns the conditions with `input` applied: a new entry gets `now` as lastTransitionTime; an
 * existing one keeps its lastTransitionTime unless the status flips, and takes the new reason,
 * message and observedGeneration either way. Pure: the input array is not modified.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  input: ConditionInput,
  now: Date,
): Condition[] {
  if (!REASON_PATTERN.test(input.reason)) {
    throw new CodedError(
      'INVALID_CONDITION',
      `condition ${input.type}: reason "${input.reason}" must be CamelCase letters and digits`,
    );
  }
  const existing = findCondition(conditions, input.type);
  const next: Condition = {
    type: input.type,
    status: input.status,
    lastTransitionTime:
      existing !== undefined && existing.status === input.status
        ? existing.lastTransitionTime
        : statusTime(now),
    reason: input.reason,
    message:
      input.message.length > MAX_MESSAGE_LENGTH ? input.message.slice(0, MAX_MESSAGE_LENGTH) : input.message,
  };
  if (input.observedGeneration !== undefined) next.observedGeneration = input.observedGeneration;
  const others = (conditions ?? []).filter((c) => c.type !== input.type);
  return sortConditions([...others, next]);
}

/** Returns the conditions without `type` (kstatus: an abnormal-true condition that no longer holds). */
export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

function sortConditions(conditions: Condition[]): Condition[] {
  const rank = (type: string) => {
    const index = TYPE_ORDER.indexOf(type);
    return index === -1 ? TYPE_ORDER.length : index;
  };
  return conditions.sort((a, b) => rank(a.type) - rank(b.type) || a.type.localeCompare(b.type));
}

export interface KstatusInput {
  reason: string;
  message: string;
  observedGeneration?: number;
}

/** Reconciling=True: the operator is still working towards the spec. */
export function markReconciling(
  conditions: readonly Condition[] | undefined,
  input: KstatusInput,
  now: Date,
): Condition[] {
  return setCondition(conditions, { type: CONDITION_TYPES.Reconciling, status: 'True', ...input }, now);
}

/** Reconciling no longer holds: removed, as kstatus expects. */
export function clearReconciling(conditions: readonly Condition[] | undefined): Condition[] {
  return removeCondition(conditions, CONDITION_TYPES.Reconciling);
}

/** `{ observedGeneration }` for a condition or a status, or nothing when the generation is not known. */
export function observedGenerationOf(generation: number | undefined): { observedGeneration?: number } {
  return generation !== undefined ? { observedGeneration: generation } : {};
}

/** Stalled=True: no progress is possible until a person changes something. */
export function markStalled(
  conditions: readonly Condition[] | undefined,
  input: KstatusInput,
  now: Date,
): Condition[] {
  return setCondition(conditions, { type: CONDITION_TYPES.Stalled, status: 'True', ...input }, now);
}

export function clearStalled(conditions: readonly Condition[] | undefined): Condition[] {
  return removeCondition(conditions, CONDITION_TYPES.Stalled);
}

/** The conditions Ready depends on, most telling first: its reason is that of the first that blocks. */
const READY_DEPENDENCIES = [
  CONDITION_TYPES.Healthy,
  CONDITION_TYPES.Enrolled,
  CONDITION_TYPES.DurableStorage,
] as const;

/**
 * Ready, derived from the other conditions:
 * - Stalled=True makes Ready False with the stall's reason (the spec cannot be met as written);
 * - otherwise the first of Healthy, Enrolled, DurableStorage that is False makes Ready False, and
 *   failing that the first Unknown or missing one makes it Unknown, with that condition's reason;
 * - DurableStorage=False with EphemeralByChoice does not block: running without durable storage
 *   was asked for, so the connector is as ready as its spec allows.
 * Reconciling does not affect Ready: a connector can serve while a rollout finishes.
 *
 * `retrying` is a temporary error the pass met while Stalled holds: Reconciling is not set then
 * (kstatus reads it before Stalled, and a stalled Connector makes no progress), so Ready's message
 * says it after the stall's, and the reason stays the stall's.
 */
export function deriveReady(
  conditions: readonly Condition[] | undefined,
  observedGeneration?: number,
  retrying?: string,
): ConditionInput {
  const result = (status: ConditionStatus, reason: string, message: string): ConditionInput =>
    observedGeneration === undefined
      ? { type: CONDITION_TYPES.Ready, status, reason, message }
      : { type: CONDITION_TYPES.Ready, status, reason, message, observedGeneration };

  const stalled = findCondition(conditions, CONDITION_TYPES.Stalled);
  if (stalled?.status === 'True') {
    const meanwhile = retrying === undefined ? '' : `; meanwhile ${retryingText(retrying)}`;
    return result('False', stalled.reason, `Stalled: ${stalled.message}${meanwhile}`);
  }

  const blocking = READY_DEPENDENCIES.map((type) => ({
    type,
    condition: findCondition(conditions, type),
  })).filter(
    ({ condition }) =>
      condition?.status !== 'True' &&
      !(condition?.status === 'False' && condition.reason === DurableStorageReasons.EphemeralByChoice),
  );
  const firstFalse = blocking.find(({ condition }) => condition?.status === 'False');
  if (firstFalse?.condition !== undefined) {
    return result(
      'False',
      firstFalse.condition.reason,
      `${firstFalse.type}: ${firstFalse.condition.message}`,
    );
  }
  const firstUnknown = blocking[0];
  if (firstUnknown !== undefined) {
    return firstUnknown.condition === undefined
      ? result('Unknown', ReadyReasons.NotObserved, `${firstUnknown.type} has not been observed yet`)
      : result(
          'Unknown',
          firstUnknown.condition.reason,
          `${firstUnknown.type}: ${firstUnknown.condition.message}`,
        );
  }
  const storage = findCondition(conditions, CONDITION_TYPES.DurableStorage);
  const message =
    storage?.reason === DurableStorageReasons.EphemeralByChoice
      ? 'healthy and enrolled; running without durable storage by choice, so a restart needs a guided recovery'
      : 'healthy, enrolled, and its identity is on durable storage';
  return result('True', ReadyReasons.Ready, message);
}

/** Sets Ready from the other conditions (see deriveReady; `retrying`: a temporary error while Stalled). */
export function withReady(
  conditions: readonly Condition[] | undefined,
  observedGeneration: number | undefined,
  now: Date,
  retrying?: string,
): Condition[] {
  return setCondition(conditions, deriveReady(conditions, observedGeneration, retrying), now);
}

/** How Ready's message names a temporary error met while Stalled holds. */
export function retryingText(error: string): string {
  return `a temporary error is retried with backoff: ${error}`;
}
