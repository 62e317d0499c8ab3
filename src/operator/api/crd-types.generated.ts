// Generated from crds/connectors.vaultpam.io.yaml and crds/controlplanes.vaultpam.io.yaml by `npx node tools/generate/crd-types.ts`. Do not edit: change the YAML and run the
// command again (test/unit/generated-crd-types.test.ts fails while this file and the YAML disagree).
import type { V1Affinity } from '@kubernetes/client-node';
/**
 * ControlPlane (namespaced, in the Connector's own namespace) or ClusterControlPlane; defaults to ControlPlane.
 */
export type ControlPlaneRefKind = 'ControlPlane' | 'ClusterControlPlane';
/**
 * Image pull policy of the agent container; defaults to IfNotPresent.
 */
export type ImagePullPolicy = 'Always' | 'IfNotPresent' | 'Never';
export type Quantity = number | string;
/**
 * Exists or Equal (the default).
 */
export type TolerationOperator = 'Exists' | 'Equal';
/**
 * Taint effect to match; empty matches all effects.
 */
export type TaintEffect = 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
/**
 * Manual (default) waits for a person or GitOps to set requestId; Automatic starts one recovery per incident by itself.
 */
export type RecoveryPolicy = 'Manual' | 'Automatic';
/**
 * StatefulSet or Deployment.
 */
export type WorkloadKind = 'StatefulSet' | 'Deployment';
/**
 * What deleting the Connector does in the control plane: Release (default) revokes its tokens and deletes its record; Retain keeps the record, for a new Connector of the same connector id in this namespace to claim (no other namespace can).
 */
export type DeletionPolicy = 'Release' | 'Retain';
/**
 * Pending (never enrolled), Enrolling (token issued, not yet online), Online, Offline (no heartbeat; may recover by itself), Degraded (a runtime path is unhealthy), NeedsRecovery (identity lost or invalid bootstrap fallback; waits for a recovery), Recovering (guided recovery in progress), Terminating (being deleted: the finalizer releases the control-plane record, within the operator's --release-timeout).
 */
export type ConnectorPhase =
  | 'Pending'
  | 'Enrolling'
  | 'Online'
  | 'Offline'
  | 'Degraded'
  | 'NeedsRecovery'
  | 'Recovering'
  | 'Terminating';
/**
 * Autonomous when durable storage is mounted at the running pod's data directory, GuidedRecovery otherwise.
 */
export type ConnectorMode = 'Autonomous' | 'GuidedRecovery';
/**
 * Which flow minted it. Enrollment: the operator mints a fresh one when it expires unused. Recovery: the recovery (recovery.requestId) ends Failed if the agent has not paired with it by then.
 */
export type TokenFlow = 'Enrollment' | 'Recovery';
/**
 * Kind of that volume.
 */
export type StorageSource =
  'PersistentVolumeClaim' | 'EmptyDir' | 'Ephemeral' | 'HostPath' | 'None' | 'Unknown';
/**
 * The current step.
 */
export type RecoveryStep =
  | 'Requested'
  | 'Checking'
  | 'ScalingDown'
  | 'StorageReady'
  | 'TokensRevoked'
  | 'TokenMinted'
  | 'ScalingUp'
  | 'AwaitingOnline'
  | 'ValidatingRestart'
  | 'Completed'
  | 'Failed';
/**
 * Result of a finished recovery. NotNeeded (at step Failed, as nothing ran): the control plane refused the request because the connector needs no recovery, and the operator saw no loss of its identity either; the connector is not held back by it, and the request id can be removed.
 */
export type RecoveryOutcome = 'Succeeded' | 'Failed' | 'NotNeeded';
/**
 * FirstBootBootstrap (never paired), Reconnect (paired and still has its identity), IdentityLoss (paired, identity lost or bootstrap fallback refused).
 */
export type FailureClass = 'FirstBootBootstrap' | 'Reconnect' | 'IdentityLoss';
/**
 * Status of the condition, one of True, False, Unknown.
 */
export type ConditionStatus = 'True' | 'False' | 'Unknown';

/**
 * The spec and status of each resource (the index the generator compiles from).
 */
export interface CrdSchemas {
  ConnectorSpec?: ConnectorSpec;
  ConnectorStatus?: ConnectorStatus;
  ControlPlaneSpec?: ControlPlaneSpec;
  ControlPlaneStatus?: ControlPlaneStatus;
}
/**
 * The desired connector. The operator never writes spec.
 */
export interface ConnectorSpec {
  controlPlaneRef?: ControlPlaneRef;
  /**
   * Removed. A Connector no longer carries a URL or credential: set spec.controlPlaneRef to a ControlPlane or ClusterControlPlane instead.
   */
  controlPlane?: {
    [k: string]: unknown;
  };
  connector: ConnectorConfig;
  /**
   * Connector agent image. Defaults to the operator's --connector-image. Not allowed with workloadRef.
   */
  image?: string;
  imagePullPolicy?: ImagePullPolicy;
  /**
   * Secrets (in the Connector's namespace) used to pull the image.
   */
  imagePullSecrets?: LocalObjectReference[];
  resources?: ResourceRequirements;
  /**
   * Node labels the connector pod must be scheduled onto.
   */
  nodeSelector?: {
    [k: string]: string;
  };
  /**
   * Tolerations of the connector pod (core/v1 Toleration).
   */
  tolerations?: Toleration[];
  /**
   * Scheduling affinity of the connector pod (core/v1 Affinity), passed to the pod as it is. The schema is Kubernetes' own: a value of the wrong shape is refused, and a field Kubernetes does not know is refused under strict field validation (kubectl's default) or dropped with a warning.
   */
  affinity?: V1Affinity;
  /**
   * PriorityClass of the connector pod.
   */
  priorityClassName?: string;
  /**
   * ServiceAccount of the connector pod. The agent needs no Kubernetes API access; defaults to a service account without token automount.
   */
  serviceAccountName?: string;
  /**
   * Extra labels for the connector pod (the operator's own labels cannot be overridden).
   */
  podLabels?: {
    [k: string]: string;
  };
  /**
   * Extra annotations for the connector pod.
   */
  podAnnotations?: {
    [k: string]: string;
  };
  storage?: StorageSpec;
  enrollment?: EnrollmentSpec;
  recovery?: RecoverySpec;
  workloadRef?: WorkloadRef;
  deletionPolicy?: DeletionPolicy;
  /**
   * When true the operator observes and reports status but takes no action.
   */
  paused?: boolean;
}
/**
 * The control plane this connector pairs with: the name of a ControlPlane in the Connector's namespace or of a ClusterControlPlane, which an admin defines with the URL, CA and credential. When absent, the operator's default control plane (its --control-plane-url flags) applies.
 */
export interface ControlPlaneRef {
  kind?: ControlPlaneRefKind;
  /**
   * Name of the ControlPlane or ClusterControlPlane.
   */
  name: string;
}
/**
 * Connector configuration registered with the control plane. It is deployment-owned and survives the loss of the connector's data directory.
 */
export interface ConnectorConfig {
  /**
   * Connector identifier in the control plane. Defaults to <namespace>.<name> (computed by the operator). Lower-case letters, digits, '.' and '-', starting and ending with a letter or digit, at most 253 characters. Set only at creation.
   */
  id?: string;
  /**
   * The VaultPAM organisation this connector belongs to.
   */
  org: string;
  /**
   * The endpoint this connector serves. Immutable: a connector's endpoint cannot be moved; create a new Connector instead.
   */
  endpointId: string;
  /**
   * Networks (CIDRs, IPv4 or IPv6) this connector may reach, e.g. 10.0.0.0/8.
   */
  allowedNetworks?: string[];
}
export interface LocalObjectReference {
  /**
   * Name of a docker-registry Secret.
   */
  name: string;
}
/**
 * Compute resources of the agent container.
 */
export interface ResourceRequirements {
  /**
   * Maximum resources, e.g. cpu 500m and memory 256Mi.
   */
  limits?: {
    [k: string]: Quantity;
  };
  /**
   * Requested resources, e.g. cpu 50m and memory 64Mi.
   */
  requests?: {
    [k: string]: Quantity;
  };
}
export interface Toleration {
  /**
   * Taint key the toleration applies to; empty matches all keys.
   */
  key?: string;
  operator?: TolerationOperator;
  /**
   * Taint value the toleration matches (with operator Equal).
   */
  value?: string;
  effect?: TaintEffect;
  /**
   * For NoExecute, how long the pod stays bound after the taint appears. At most 9007199254740991 (2^53-1), the largest whole number the operator's JSON numbers hold exactly: a larger one would be rounded into a StatefulSet that no controller can read.
   */
  tolerationSeconds?: number;
}
/**
 * Where the agent's data directory (PAM_AGENT_DATA_DIR, /data) lives. Durable storage gives Autonomous mode: the identity survives restarts and rescheduling. By default the operator creates a PersistentVolumeClaim of 1Gi in the default storage class. Not allowed with workloadRef.
 */
export interface StorageSpec {
  /**
   * Size of the claim the operator creates (default 1Gi), or the emptyDir size limit with ephemeral: true. Can grow (if the storage class allows expansion), never shrink.
   */
  size?: string;
  /**
   * StorageClass of the claim the operator creates; the cluster default when absent. Cannot be changed after creation.
   */
  storageClassName?: string;
  /**
   * Use this existing PersistentVolumeClaim (same namespace) instead of creating one, e.g. to reattach the original identity volume. Cannot be changed after creation.
   */
  existingClaim?: string;
  /**
   * true chooses guided recovery deliberately: the data directory is an emptyDir, so every restart loses the identity and needs a recovery. Cannot be turned on later for a Connector created with durable storage; can be turned off to move to durable storage.
   */
  ephemeral?: boolean;
}
/**
 * Enrollment token settings.
 */
export interface EnrollmentSpec {
  /**
   * Lifetime of each single-use enrollment token, a duration like 30m, 4h or 1h30m (units h, m, s); between 5m and 4h, default 4h.
   */
  tokenTTL?: string;
}
/**
 * How guided recovery is started when the connector needs recovery.
 */
export interface RecoverySpec {
  policy?: RecoveryPolicy;
  /**
   * Set or change this to ask for one guided recovery; each new value is a new request and a value already handled is never run twice.
   */
  requestId?: string;
  /**
   * After re-pairing, restart the connector once more and confirm it reconnects without a token (the runbook's post-recovery validation). Default true.
   */
  validateRestart?: boolean;
}
/**
 * Adopt an existing StatefulSet or Deployment (same namespace) that runs the agent instead of creating one. Cannot be added, changed or removed after creation and excludes image, pod settings and storage.
 */
export interface WorkloadRef {
  kind: WorkloadKind;
  /**
   * Name of the workload.
   */
  name: string;
}
/**
 * What the operator observed. Rebuilt from the world on every reconcile.
 */
export interface ConnectorStatus {
  /**
   * The metadata.generation this status was computed from.
   */
  observedGeneration?: number;
  phase?: ConnectorPhase;
  mode?: ConnectorMode;
  /**
   * The connector's identifier in the control plane.
   */
  connectorId?: string;
  /**
   * The raw state the control plane reports, e.g. online or needs_recovery.
   */
  controlPlaneState?: string;
  /**
   * When the control plane last accepted a heartbeat, set once heartbeats have stopped (Offline, NeedsRecovery) and exact; absent while they arrive (Online, Degraded), so that heartbeats cost no status write.
   */
  lastHeartbeatTime?: string;
  identity?: IdentityStatus;
  enrollment?: EnrollmentStatus;
  liveToken?: LiveTokenStatus;
  storage?: StorageStatus;
  recovery?: RecoveryStatus;
  diagnosis?: Diagnosis;
  /**
   * Ready, Reconciling and Stalled (kstatus), DurableStorage, Enrolled and Healthy.
   */
  conditions?: Condition[];
}
/**
 * Public facts about the connector's current certificate.
 */
export interface IdentityStatus {
  /**
   * Serial number (hex).
   */
  certificateSerial?: string;
  /**
   * Certificate expiry.
   */
  notAfter?: string;
  /**
   * SHA-256 fingerprint of the certificate (hex).
   */
  fingerprintSHA256?: string;
}
/**
 * The enrollment token's lifecycle. The token itself is only in its Secret.
 */
export interface EnrollmentStatus {
  /**
   * Name of the short-lived Secret holding the live token, if any.
   */
  tokenSecretName?: string;
  /**
   * Expiry of the live token.
   */
  tokenExpiresAt?: string;
  /**
   * When the live token was minted.
   */
  tokenMintedAt?: string;
  /**
   * True after bootstrap retirement (first enrollment and first heartbeat); no restart may use a token again.
   */
  retired?: boolean;
  /**
   * How many tokens the operator has minted for this connector.
   */
  mintCount?: number;
  /**
   * Idempotency key of the last mint, so a retried mint is not a second token.
   */
  lastMintKey?: string;
  /**
   * A mint key the control plane refused as consumed (IDEMPOTENCY_KEY_CONSUMED): a pass minted with it and stopped before storing the token. An enrollment key the next mint counts on from; a recovery's key ends that recovery as Failed.
   */
  consumedMintKey?: string;
}
/**
 * The live token the token Secret (enrollment.tokenSecretName) holds now, whichever flow minted it: the enrollment's, or a guided recovery's one token. Absent when no token is live. Rebuilt on every pass from enrollment and recovery, which keep each flow's own record; this is the one place that names the token an agent can pair with, and what kubectl get's Token Expiry column shows.
 */
export interface LiveTokenStatus {
  /**
   * When the live token expires unused.
   */
  expiresAt: string;
  /**
   * When it was minted (enrollment.tokenMintedAt, or recovery.tokenMintedAt); absent when not recorded (a recovery's token minted by an operator before recovery.tokenMintedAt existed).
   */
  mintedAt?: string;
  mintedFor: TokenFlow;
}
/**
 * The storage actually mounted at the data directory of the running pod.
 */
export interface StorageStatus {
  /**
   * Name of the pod volume mounted at the data directory.
   */
  volumeName?: string;
  source?: StorageSource;
  /**
   * Name of the PersistentVolumeClaim, for claim-backed volumes.
   */
  claimName?: string;
  /**
   * UID of that claim; a new UID means the volume was recreated.
   */
  claimUID?: string;
  /**
   * Phase of that claim (Pending, Bound, Lost).
   */
  claimPhase?: string;
  /**
   * The pod observed.
   */
  podName?: string;
}
/**
 * The guided recovery procedure's progress record. Each step is recorded before it is taken so a restarted operator resumes without repeating a side effect.
 */
export interface RecoveryStatus {
  /**
   * The request being (or last) handled.
   */
  requestId?: string;
  step?: RecoveryStep;
  /**
   * How many recoveries the operator has started for this connector.
   */
  attempts?: number;
  /**
   * When this recovery started.
   */
  startedAt?: string;
  /**
   * When it finished.
   */
  finishedAt?: string;
  outcome?: RecoveryOutcome;
  /**
   * Why it failed, or a summary of the outcome.
   */
  reason?: string;
  /**
   * Idempotency key of this recovery's single token mint.
   */
  mintKey?: string;
  /**
   * Expiry of this recovery's one token, recorded once its Secret showed it. Until the agent pairs, a token Secret deleted by hand is stored again with that token while it is live, and the recovery fails at this time if the agent has not paired by then, whether the Secret is there or not.
   */
  tokenExpiresAt?: string;
  /**
   * When this recovery's one token was stored in its Secret (the Secret's creation, right after the mint), recorded with tokenExpiresAt: with it, the token's lifetime is known (the expiring-unused alert judges a quarter of it).
   */
  tokenMintedAt?: string;
  /**
   * Request ids handled before this one (from spec.recovery.requestId or automatic), oldest first, the newest 16, always with the newest one the spec asked for. With requestId, the ids that never run again.
   */
  handledRequestIds?: string[];
  evidence?: RecoveryEvidence;
}
/**
 * The audit evidence the runbook asks for.
 */
export interface RecoveryEvidence {
  /**
   * Phase before the recovery.
   */
  phaseBefore?: string;
  /**
   * Phase after the recovery.
   */
  phaseAfter?: string;
  /**
   * Control-plane state before the recovery.
   */
  controlPlaneStateBefore?: string;
  /**
   * Control-plane state after the recovery.
   */
  controlPlaneStateAfter?: string;
  /**
   * Replicas the workload had before the recovery scaled it down; a recovery that fails or is abandoned after that scales it back.
   */
  replicasBefore?: number;
  /**
   * The log line or audit entry that proves the reconnect.
   */
  proof?: string;
  /**
   * Control-plane audit entries tied to the incident.
   */
  auditEntries?: AuditEntryRef[];
  /**
   * Start of the incident window.
   */
  windowStart?: string;
  /**
   * End of the incident window.
   */
  windowEnd?: string;
}
export interface AuditEntryRef {
  /**
   * Audit entry type, e.g. endpoint.enrolled.
   */
  type: string;
  /**
   * When it was recorded.
   */
  at: string;
  /**
   * Its sequence number in the audit log.
   */
  seq: number;
}
/**
 * The runbook's failure class for a connector that is not online.
 */
export interface Diagnosis {
  failureClass?: FailureClass;
  /**
   * What was observed.
   */
  reason?: string;
  /**
   * The facts that led to the diagnosis.
   */
  evidence?: string[];
  /**
   * What to do next.
   */
  nextStep?: string;
  /**
   * When this diagnosis was first made.
   */
  since?: string;
}
export interface Condition {
  /**
   * Type of condition in CamelCase.
   */
  type: string;
  status: ConditionStatus;
  /**
   * The metadata.generation the condition was set from.
   */
  observedGeneration?: number;
  /**
   * Last time the condition's status changed.
   */
  lastTransitionTime: string;
  /**
   * Programmatic identifier (CamelCase) of the condition's last transition.
   */
  reason: string;
  /**
   * Human readable message about the transition.
   */
  message: string;
}
/**
 * Where the control plane is and how the operator authenticates to it.
 */
export interface ControlPlaneSpec {
  /**
   * HTTPS base URL of the control plane, e.g. https://vaultpam.example.com.
   */
  url: string;
  caConfigMapRef?: ConfigMapKeyRef;
  credentialSecretRef: SecretKeyRef;
}
/**
 * ConfigMap in this ControlPlane's namespace holding the PEM CA bundle that signs the control plane's serving certificate, at most 1,032,192 bytes: the operator copies it into each Connector's ConfigMap, which Kubernetes holds to 1 MiB with the connector's configuration (a larger bundle makes the control plane CAInvalid). When absent, the system trust store is used.
 */
export interface ConfigMapKeyRef {
  /**
   * Name of the ConfigMap.
   */
  name: string;
  /**
   * Key within the ConfigMap; defaults to ca.crt.
   */
  key?: string;
}
/**
 * Secret in this ControlPlane's namespace holding the admin credential the operator presents to the control plane's admin API (Authorization: Bearer). The credential never leaves that Secret and the operator's memory. The Secret must list spec.url in its annotation vaultpam.io/control-plane-url (several URLs separated by commas or spaces), which only whoever may write the Secret can set: otherwise the credential is sent nowhere and Ready is False (CredentialNotForURL).
 */
export interface SecretKeyRef {
  /**
   * Name of the Secret.
   */
  name: string;
  /**
   * Key within the Secret; defaults to credential.
   */
  key?: string;
}
/**
 * What the operator found when it last checked the control plane. Written by the operator only.
 */
export interface ControlPlaneStatus {
  /**
   * The metadata.generation this status was computed from.
   */
  observedGeneration?: number;
  /**
   * When the operator last checked the control plane and wrote what it found; a check that finds nothing new is written at most every 30 minutes.
   */
  lastCheckTime?: string;
  /**
   * Ready: True (Reachable) when the admin API answers with the credential; False (Unauthorized, Unreachable, CredentialMissing, CredentialNotForURL, CAInvalid, InvalidSpec) or Unknown (CheckFailed) otherwise.
   */
  conditions?: Condition[];
}

/** Every ConnectorPhase, in the CRD's order. */
export const CONNECTOR_PHASES = [
  'Pending',
  'Enrolling',
  'Online',
  'Offline',
  'Degraded',
  'NeedsRecovery',
  'Recovering',
  'Terminating',
] as const satisfies readonly ConnectorPhase[];

/** Every RecoveryStep, in the CRD's order. */
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
] as const satisfies readonly RecoveryStep[];
