// TypeScript shape of the Connector resource, field for field the CRD in
// crds/connectors.vaultpam.io.yaml (a unit test compares the two recursively). Times are RFC 3339
// strings, as they travel in JSON; the operator never holds a Date in a status.
import type { V1Affinity, V1ObjectMeta } from '@kubernetes/client-node';
import { RUNBOOK_FAILURE_CLASSES, type RunbookFailureClass } from '../../contract/agent-process.ts';
import { CodedError } from '../../lib/errors.ts';
import {
  type API_VERSION,
  CONNECTOR_ID_PATTERN,
  DEFAULT_IMAGE_PULL_POLICY,
  DEFAULT_STORAGE_SIZE,
  DEFAULT_TOKEN_TTL,
  type KIND,
  MAX_TOKEN_TTL_SECONDS,
  MIN_TOKEN_TTL_SECONDS,
} from './constants.ts';
import { specProblem } from './validation.ts';

// Enumerations are const arrays so the test can compare them with the schema's enums.
export const IMAGE_PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;
export type ImagePullPolicy = (typeof IMAGE_PULL_POLICIES)[number];
export const RECOVERY_POLICIES = ['Manual', 'Automatic'] as const;
export type RecoveryPolicy = (typeof RECOVERY_POLICIES)[number];
export const WORKLOAD_KINDS = ['StatefulSet', 'Deployment'] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];
export const DELETION_POLICIES = ['Release', 'Retain'] as const;
export type DeletionPolicy = (typeof DELETION_POLICIES)[number];
export const TOLERATION_OPERATORS = ['Exists', 'Equal'] as const;
export const TAINT_EFFECTS = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] as const;

export const CONNECTOR_PHASES = [
  'Pending',
  'Enrolling',
  'Online',
  'Offline',
  'Degraded',
  'NeedsRecovery',
  'Recovering',
  'Terminating',
] as const;
export type ConnectorPhase = (typeof CONNECTOR_PHASES)[number];
export const CONNECTOR_MODES = ['Autonomous', 'GuidedRecovery'] as const;
export type ConnectorMode = (typeof CONNECTOR_MODES)[number];
export const STORAGE_SOURCES = [
  'PersistentVolumeClaim',
  'EmptyDir',
  'Ephemeral',
  'HostPath',
  'None',
  'Unknown',
] as const;
export type StorageSource = (typeof STORAGE_SOURCES)[number];
export const RECOVERY_STEPS = [
  'Requested',
  'Checking',
  'ScalingDown',
  'StorageReady',
  'TokensRevoked',
  'TokenMinted',
  'ScalingUp',
  'AwaitingOnline',
  'ValidatingRestart',
  'Completed',
  'Failed',
] as const;
export type RecoveryStep = (typeof RECOVERY_STEPS)[number];
export const RECOVERY_OUTCOMES = ['Succeeded', 'Failed'] as const;
export type RecoveryOutcome = (typeof RECOVERY_OUTCOMES)[number];
/** The runbook's failure classes a diagnosis names: the process contract's. */
export const FAILURE_CLASSES = RUNBOOK_FAILURE_CLASSES;
export type FailureClass = RunbookFailureClass;
export const CONDITION_STATUSES = ['True', 'False', 'Unknown'] as const;
export type ConditionStatus = (typeof CONDITION_STATUSES)[number];

// ---- spec ----

export interface ConfigMapKeyRef {
  name: string;
  /** Defaults to ca.crt. */
  key?: string;
}

export interface SecretKeyRef {
  name: string;
  /** Defaults to credential. */
  key?: string;
}

export const CONTROL_PLANE_REF_KINDS = ['ControlPlane', 'ClusterControlPlane'] as const;
export type ControlPlaneRefKind = (typeof CONTROL_PLANE_REF_KINDS)[number];

/**
 * The control plane a Connector pairs with: an admin-defined ControlPlane in the Connector's own
 * namespace or a ClusterControlPlane. The Connector names it only; URL, CA and credential live in
 * that resource, so whoever writes Connectors cannot point the operator's credential anywhere.
 */
export interface ControlPlaneRef {
  /** Defaults to ControlPlane. */
  kind?: ControlPlaneRefKind;
  name: string;
}

export interface ConnectorConfig {
  /** Defaults to `<namespace>.<name>`; set only at creation. */
  id?: string;
  org: string;
  endpointId: string;
  allowedNetworks?: string[];
}

export interface LocalObjectReference {
  name: string;
}

/** A quantity: an integer or a string such as `500m` or `256Mi`. */
export type Quantity = number | string;

export interface ResourceRequirements {
  limits?: Record<string, Quantity>;
  requests?: Record<string, Quantity>;
}

export interface Toleration {
  key?: string;
  operator?: (typeof TOLERATION_OPERATORS)[number];
  value?: string;
  effect?: (typeof TAINT_EFFECTS)[number];
  tolerationSeconds?: number;
}

export interface StorageSpec {
  /** Quantity; the operator defaults it to 1Gi for a claim it creates. */
  size?: string;
  storageClassName?: string;
  existingClaim?: string;
  ephemeral?: boolean;
}

export interface EnrollmentSpec {
  /** Duration such as `30m`, `4h`, `1h30m`; 5m..4h, default 4h. */
  tokenTTL?: string;
}

export interface RecoverySpec {
  policy?: RecoveryPolicy;
  requestId?: string;
  validateRestart?: boolean;
}

export interface WorkloadRef {
  kind: WorkloadKind;
  name: string;
}

export interface ConnectorSpec {
  controlPlaneRef?: ControlPlaneRef;
  /**
   * Removed: a Connector no longer carries a URL or a credential reference. The CRD refuses it; it
   * is typed only so that an object stored before the removal is recognised and refused by name.
   */
  controlPlane?: Record<string, unknown>;
  connector: ConnectorConfig;
  image?: string;
  imagePullPolicy?: ImagePullPolicy;
  imagePullSecrets?: LocalObjectReference[];
  resources?: ResourceRequirements;
  nodeSelector?: Record<string, string>;
  tolerations?: Toleration[];
  /** Passed through to the pod as is (the schema preserves unknown fields here). */
  affinity?: V1Affinity;
  priorityClassName?: string;
  serviceAccountName?: string;
  podLabels?: Record<string, string>;
  podAnnotations?: Record<string, string>;
  storage?: StorageSpec;
  enrollment?: EnrollmentSpec;
  recovery?: RecoverySpec;
  workloadRef?: WorkloadRef;
  deletionPolicy?: DeletionPolicy;
  paused?: boolean;
}

// ---- status ----

export interface IdentityStatus {
  certificateSerial?: string;
  notAfter?: string;
  fingerprintSHA256?: string;
}

export interface EnrollmentStatus {
  tokenSecretName?: string;
  tokenExpiresAt?: string;
  tokenMintedAt?: string;
  retired?: boolean;
  mintCount?: number;
  lastMintKey?: string;
  /**
   * A mint key the control plane refused as consumed (IDEMPOTENCY_KEY_CONSUMED) in the last pass: a
   * pass minted with it and stopped before storing the token (the Secret write or the answer was
   * lost, or the operator stopped), and the token was revoked or expired unused. An enrollment key
   * the next mint counts on from (kept until mintCount has passed it); a recovery's key ends that
   * recovery as Failed at TokenMinted.
   */
  consumedMintKey?: string;
}

export interface StorageStatus {
  volumeName?: string;
  source?: StorageSource;
  claimName?: string;
  claimUID?: string;
  claimPhase?: string;
  podName?: string;
}

export interface AuditEntryRef {
  type: string;
  at: string;
  seq: number;
}

export interface RecoveryEvidence {
  phaseBefore?: string;
  phaseAfter?: string;
  controlPlaneStateBefore?: string;
  controlPlaneStateAfter?: string;
  /**
   * Replicas the workload had before the recovery scaled it down, recorded with the request: a
   * recovery that fails or is abandoned after scaling down scales it back to this many (the
   * operator's own StatefulSet to its one replica).
   */
  replicasBefore?: number;
  /** The log line or audit entry that proves the reconnect. */
  proof?: string;
  auditEntries?: AuditEntryRef[];
  windowStart?: string;
  windowEnd?: string;
}

export interface RecoveryStatus {
  requestId?: string;
  step?: RecoveryStep;
  attempts?: number;
  startedAt?: string;
  finishedAt?: string;
  outcome?: RecoveryOutcome;
  reason?: string;
  mintKey?: string;
  evidence?: RecoveryEvidence;
  /**
   * Request ids handled before this record's (from the spec or automatic), oldest first, at most
   * HANDLED_REQUEST_IDS_KEPT: with requestId, the ids that never run again. Carried into each new
   * recovery record.
   */
  handledRequestIds?: string[];
}

export interface Diagnosis {
  failureClass?: FailureClass;
  reason?: string;
  evidence?: string[];
  nextStep?: string;
  since?: string;
}

/** metav1.Condition as JSON. */
export interface Condition {
  type: string;
  status: ConditionStatus;
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface ConnectorStatus {
  observedGeneration?: number;
  phase?: ConnectorPhase;
  mode?: ConnectorMode;
  connectorId?: string;
  controlPlaneState?: string;
  lastHeartbeatTime?: string;
  identity?: IdentityStatus;
  enrollment?: EnrollmentStatus;
  storage?: StorageStatus;
  recovery?: RecoveryStatus;
  diagnosis?: Diagnosis;
  conditions?: Condition[];
}

export interface Connector {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: V1ObjectMeta;
  spec: ConnectorSpec;
  status?: ConnectorStatus;
}

export interface ConnectorList {
  apiVersion: typeof API_VERSION;
  kind: 'ConnectorList';
  metadata: { resourceVersion?: string; continue?: string };
  items: Connector[];
}

// ---- defaults ----

/** How the connector's data directory is to be provided, decided once from spec.storage/workloadRef. */
export type StoragePlan =
  | { kind: 'OperatorClaim'; size: string; storageClassName?: string }
  | { kind: 'ExistingClaim'; claimName: string }
  | { kind: 'EmptyDir'; sizeLimit?: string }
  /** An adopted workload brings its own volumes; the operator only observes them. */
  | { kind: 'Adopted' };

/** The spec with every default applied, including those the schema cannot apply. */
export interface DefaultedSpec {
  namespace: string;
  name: string;
  /** Absent: the operator's default control plane (its --control-plane-url flags). */
  controlPlaneRef?: Required<ControlPlaneRef>;
  connector: Required<Omit<ConnectorConfig, 'allowedNetworks'>> & { allowedNetworks: string[] };
  image?: string;
  imagePullPolicy: ImagePullPolicy;
  storage: StoragePlan;
  tokenTTLSeconds: number;
  recovery: { policy: RecoveryPolicy; requestId?: string; validateRestart: boolean };
  workloadRef?: WorkloadRef;
  deletionPolicy: DeletionPolicy;
  paused: boolean;
}

/** Default connector id: `<namespace>.<name>` (contract: Identifiers). */
export function defaultConnectorId(namespace: string, name: string): string {
  return `${namespace}.${name}`;
}

/**
 * Applies the defaults the schema cannot: the connector id from namespace and name, the token TTL
 * parsed to seconds, the storage plan. Objects created before a schema default existed, or read
 * without defaulting, get the same result. Throws INVALID_SPEC (permanent) for what the CRD's
 * rules would refuse (the syntax rules are in validation.ts), so a connector that slipped past
 * validation, e.g. stored before a rule existed, stalls with a clear message before it mints a token
 * for a pod Kubernetes would refuse.
 */
export function defaultedSpec(connector: Pick<Connector, 'metadata' | 'spec'>): DefaultedSpec {
  const namespace = connector.metadata.namespace;
  const name = connector.metadata.name;
  if (!namespace || !name) {
    throw invalidSpec('metadata', 'a Connector needs metadata.namespace and metadata.name');
  }
  const spec = connector.spec;
  const problem = specProblem(name, spec);
  if (problem !== undefined) throw invalidSpec(...problem);
  const ttl = spec.enrollment?.tokenTTL ?? DEFAULT_TOKEN_TTL;
  let tokenTTLSeconds: number;
  try {
    tokenTTLSeconds = parseDuration(ttl);
  } catch (error) {
    throw invalidSpec('spec.enrollment.tokenTTL', (error as Error).message);
  }
  if (tokenTTLSeconds < MIN_TOKEN_TTL_SECONDS || tokenTTLSeconds > MAX_TOKEN_TTL_SECONDS) {
    throw invalidSpec('spec.enrollment.tokenTTL', `"${ttl}" is outside 5m..4h`);
  }

  if (spec.connector.id !== undefined && !CONNECTOR_ID_PATTERN.test(spec.connector.id)) {
    throw invalidSpec(
      'spec.connector.id',
      `"${spec.connector.id}" must be lower-case letters, digits, '.' or '-', starting and ending with a letter or digit`,
    );
  }
  const result: DefaultedSpec = {
    namespace,
    name,
    connector: {
      id: spec.connector.id ?? defaultConnectorId(namespace, name),
      org: spec.connector.org,
      endpointId: spec.connector.endpointId,
      allowedNetworks: [...(spec.connector.allowedNetworks ?? [])],
    },
    imagePullPolicy: spec.imagePullPolicy ?? DEFAULT_IMAGE_PULL_POLICY,
    storage: storagePlan(spec),
    tokenTTLSeconds,
    recovery: {
      policy: spec.recovery?.policy ?? 'Manual',
      validateRestart: spec.recovery?.validateRestart ?? true,
    },
    deletionPolicy: spec.deletionPolicy ?? 'Release',
    paused: spec.paused ?? false,
  };
  if (spec.recovery?.requestId !== undefined) result.recovery.requestId = spec.recovery.requestId;
  if (spec.image !== undefined) result.image = spec.image;
  if (spec.workloadRef !== undefined) result.workloadRef = { ...spec.workloadRef };
  if (spec.controlPlaneRef !== undefined) {
    result.controlPlaneRef = {
      kind: spec.controlPlaneRef.kind ?? 'ControlPlane',
      name: spec.controlPlaneRef.name,
    };
  }
  return result;
}

/** Spec fields that shape the pod the operator builds; an adopted workload has its own. */
const POD_SETTINGS = [
  'image',
  'imagePullPolicy',
  'imagePullSecrets',
  'resources',
  'nodeSelector',
  'tolerations',
  'affinity',
  'priorityClassName',
  'serviceAccountName',
  'podLabels',
  'podAnnotations',
] as const satisfies ReadonlyArray<keyof ConnectorSpec>;

function storagePlan(spec: ConnectorSpec): StoragePlan {
  if (spec.workloadRef !== undefined) {
    const podSettings = POD_SETTINGS.filter((field) => spec[field] !== undefined);
    if (podSettings.length > 0) {
      throw invalidSpec(
        'spec.workloadRef',
        `adopts an existing workload, so the operator builds no pod template; remove spec.${podSettings.join(', spec.')}`,
      );
    }
    if (spec.storage !== undefined) {
      throw invalidSpec(
        'spec.storage',
        'workloadRef adopts an existing workload, so storage must not be set',
      );
    }
    return { kind: 'Adopted' };
  }
  const storage = spec.storage ?? {};
  if (storage.existingClaim !== undefined) {
    if (storage.size !== undefined || storage.storageClassName !== undefined || storage.ephemeral === true) {
      throw invalidSpec(
        'spec.storage',
        'existingClaim cannot be combined with size, storageClassName or ephemeral: true',
      );
    }
    return { kind: 'ExistingClaim', claimName: storage.existingClaim };
  }
  if (storage.ephemeral === true) {
    if (storage.storageClassName !== undefined) {
      throw invalidSpec('spec.storage', 'ephemeral: true cannot be combined with storageClassName');
    }
    return storage.size === undefined ? { kind: 'EmptyDir' } : { kind: 'EmptyDir', sizeLimit: storage.size };
  }
  const plan: StoragePlan = { kind: 'OperatorClaim', size: storage.size ?? DEFAULT_STORAGE_SIZE };
  if (storage.storageClassName !== undefined) plan.storageClassName = storage.storageClassName;
  return plan;
}

function invalidSpec(field: string, problem: string): CodedError {
  return new CodedError('INVALID_SPEC', `${field}: ${problem}`, {
    httpStatus: 422,
    temporary: false,
    details: { field },
  });
}

const DURATION_PATTERN = /^(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,6})s)?$/;

/**
 * Parses the CRD's duration grammar (`4h`, `30m`, `1h30m`, `90s`: hours, minutes, seconds, in that
 * order, as Go's time.ParseDuration reads them) to whole seconds.
 */
export function parseDuration(text: string): number {
  const match = DURATION_PATTERN.exec(text);
  if (text === '' || match === null) {
    throw new CodedError(
      'INVALID_DURATION',
      `"${text}" is not a duration; write hours, minutes and seconds in that order, e.g. 30m, 4h or 1h30m`,
      { httpStatus: 422, temporary: false },
    );
  }
  const [, hours, minutes, seconds] = match;
  return Number(hours ?? 0) * 3600 + Number(minutes ?? 0) * 60 + Number(seconds ?? 0);
}

/** Formats seconds in the same grammar, shortest form (`14400` -> `4h`, `5400` -> `1h30m`). */
export function formatDuration(totalSeconds: number): string {
  if (!Number.isInteger(totalSeconds) || totalSeconds < 0) {
    throw new CodedError(
      'INVALID_DURATION',
      `${totalSeconds} is not a whole, non-negative number of seconds`,
    );
  }
  if (totalSeconds === 0) return '0s';
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  return `${hours ? `${hours}h` : ''}${minutes ? `${minutes}m` : ''}${seconds ? `${seconds}s` : ''}`;
}
