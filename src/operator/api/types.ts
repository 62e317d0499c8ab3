// The Connector resource as the operator reads it. The types of its spec and status are generated
// from the CRD's schema (crd-types.generated.ts, written by `npm run generate` from
// crds/connectors.vaultpam.io.yaml), so they are what the API server validates and prunes by; this
// module adds the object around them and the defaults the schema cannot apply. Times are RFC 3339
// strings, as they travel in JSON; the operator never holds a Date in a status.
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { RUNBOOK_FAILURE_CLASSES } from '../../contract/agent-process.ts';
import { parseDurationMs } from '../../lib/duration.ts';
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
import type {
  ConnectorConfig,
  ConnectorSpec,
  ConnectorStatus,
  ControlPlaneRef,
  DeletionPolicy,
  FailureClass,
  ImagePullPolicy,
  RecoveryPolicy,
  WorkloadRef,
} from './crd-types.generated.ts';
import { specProblem } from './validation.ts';

export type {
  AuditEntryRef,
  Condition,
  ConditionStatus,
  ConnectorConfig,
  ConnectorMode,
  ConnectorPhase,
  ConnectorSpec,
  ConnectorStatus,
  ControlPlaneRef,
  ControlPlaneRefKind,
  DeletionPolicy,
  Diagnosis,
  EnrollmentSpec,
  EnrollmentStatus,
  FailureClass,
  IdentityStatus,
  ImagePullPolicy,
  LiveTokenStatus,
  LocalObjectReference,
  Quantity,
  RecoveryEvidence,
  RecoveryOutcome,
  RecoveryPolicy,
  RecoverySpec,
  RecoveryStatus,
  RecoveryStep,
  ResourceRequirements,
  StorageSource,
  StorageSpec,
  StorageStatus,
  TaintEffect,
  TokenFlow,
  Toleration,
  TolerationOperator,
  WorkloadKind,
  WorkloadRef,
} from './crd-types.generated.ts';
export { CONNECTOR_PHASES, RECOVERY_STEPS } from './crd-types.generated.ts';

/**
 * The runbook's failure classes a diagnosis names: the process contract's. `satisfies` refuses a
 * class the CRD's enum lacks; the unit test of the schema holds the two lists equal.
 */
export const FAILURE_CLASSES = RUNBOOK_FAILURE_CLASSES satisfies readonly FailureClass[];

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
/**
 * Whether the status says the connector reached its control plane: a state the control plane
 * reported, or a token the operator minted there (the first pass registers and mints before any
 * state is reported). Then its record may hold live tokens: the deletion must release it, and the
 * CRD's transition rule on spec.controlPlaneRef (the same test, in CEL) keeps the reference fixed.
 */
export function reachedControlPlane(status: ConnectorStatus | undefined): boolean {
  return status?.controlPlaneState !== undefined || status?.enrollment?.lastMintKey !== undefined;
}

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
  const ttlMs = TOKEN_TTL_PATTERN.test(ttl) ? parseDurationMs(ttl) : undefined;
  if (ttlMs === undefined) {
    throw invalidSpec(
      'spec.enrollment.tokenTTL',
      `"${ttl}" is not a duration; write hours, minutes and seconds in that order, e.g. 30m, 4h or 1h30m`,
    );
  }
  const tokenTTLSeconds = ttlMs / 1000;
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

/**
 * The CRD's spelling of spec.enrollment.tokenTTL (crds/connectors.vaultpam.io.yaml): whole hours,
 * minutes and seconds, in that order, not empty. A narrower spelling of the one duration grammar
 * (src/lib/duration.ts), which reads the value; test/unit/lib-duration.test.ts keeps the two and the
 * CRD in agreement.
 */
export const TOKEN_TTL_PATTERN = /^(?=.)(?:\d{1,6}h)?(?:\d{1,6}m)?(?:\d{1,6}s)?$/;
