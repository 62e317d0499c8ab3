// What the reconciler saw on one pass: the Connector, the objects it owns or inspects, and the
// control plane's record. The planner is a pure function of this and the time, so every field here
// is a plain fact (no clients, no promises), and table tests build these by hand.
import type { V1ConfigMap, V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import type { CodedError } from '../../lib/errors.ts';
import type { Connector, DefaultedSpec } from '../api/types.ts';
import type { AuditEntry, Connector as ControlPlaneConnector } from '../control-plane/admin-client.ts';

export type { ControlPlaneConnector };

/** A PersistentVolumeClaim, reduced to what identity safety and growing it (storage-expansion.ts) need. */
export interface ClaimFacts {
  name: string;
  uid: string;
  phase: string;
  deleting: boolean;
  /** spec.resources.requests.storage: the size asked for. */
  requested?: string;
  /** status.capacity.storage: the size the bound volume has (absent until bound). */
  capacity?: string;
  /** spec.storageClassName (empty or absent: no class, so Kubernetes cannot expand it). */
  storageClassName?: string;
  /** Conditions with status True that tell of a resize (Resizing, FileSystemResizePending, *ResizeError). */
  resizeConditions?: { type: string; message?: string }[];
  /**
   * The Connector whose data claim the labels say this is (the operator's labels, which its
   * StatefulSet's claim template gives every claim it makes), absent on anyone else's claim. Only
   * such a claim is ever grown: a claim the operator did not make is not its to write.
   */
  labelledFor?: string;
}

/** The StorageClass of the operator's claim, read only when that claim should grow. */
export interface StorageClassFacts {
  name: string;
  /** `allowVolumeExpansion: true`: Kubernetes admits a larger request on its claims. */
  allowVolumeExpansion: boolean;
}

/** The enrollment-token Secret the operator owns, without its value. */
export interface TokenSecretFacts {
  name: string;
  /** The Secret object judged: a delete is for this one only, not a newer one of the same name. */
  uid: string | undefined;
  mintKey: string | undefined;
  expiresAt: string | undefined;
  /**
   * When this Secret object was created (its creationTimestamp): an agent that found no token long
   * after it existed was not given it by its workload (recovery-machine.ts).
   */
  createdAt?: string | undefined;
  deleting: boolean;
}

/** The workload that runs the connector: the operator's own StatefulSet or an adopted one. */
export interface WorkloadFacts {
  kind: 'StatefulSet' | 'Deployment';
  name: string;
  /** Desired replicas in the workload's spec. */
  replicas: number;
  readyReplicas: number;
  /** Annotations on the pod template (the restart marker lives there). */
  templateAnnotations: Record<string, string>;
  /** The workload's pod selector as a label selector string (adopted, consenting workloads). */
  podSelector?: string;
  /**
   * Adopted workloads only: whether the workload consents to adoption by this Connector (its label
   * vaultpam.io/adopted-by names it, adoption-consent.ts). Without consent nothing but its labels
   * is read: no pod selector, pods, template or claims.
   */
  consented?: boolean;
  /** Adopted workloads only: the value of its vaultpam.io/adopted-by label, if any. */
  adoptedBy?: string;
  /** The StatefulSet as read, when it is the operator's own (for diffing is not needed: SSA decides). */
  object?: V1StatefulSet;
}

/**
 * The control plane's answer to a recovery's dry run (recovery-check.ts): it would begin the
 * recovery, or its refusal. Code and message are cleaned (untrusted-text.ts).
 */
export type RecoveryCheck =
  | { requestId: string; allowed: true }
  | { requestId: string; allowed: false; code: string; message: string };

/** The control plane as seen on this pass. */
export type ControlPlaneView =
  | { reachable: true; record: ControlPlaneConnector | undefined }
  | { reachable: false; error: CodedError };

/** An object that has the name one of this Connector's children must have, but is not controlled by it. */
export interface ForeignObject {
  kind: 'ConfigMap' | 'StatefulSet' | 'Secret' | 'PersistentVolumeClaim';
  name: string;
  /** Who controls it instead (kind/name of its controller owner), if anyone. */
  controller?: string;
}

/**
 * An object the pod spec names that Kubernetes looks up when it creates the pod (pod-references.ts):
 * missing, or not readable by the operator (403), so it cannot tell.
 */
export interface PodReferenceProblem {
  field: 'spec.priorityClassName' | 'spec.serviceAccountName';
  kind: 'PriorityClass' | 'ServiceAccount';
  name: string;
  state: 'missing' | 'forbidden';
  /** The API server's refusal, cleaned (state forbidden). */
  refusal?: string;
}

export interface Observed {
  connector: Connector;
  /** The spec with defaults, or why it is invalid (permanent: wait for a spec change). */
  spec: { ok: true; value: DefaultedSpec } | { ok: false; error: CodedError };
  /** The image connector pods run when spec.image is empty. */
  defaultImage: string;
  /** Control-plane URL and CA in effect for this connector (its spec.controlPlaneRef's or the operator's default). */
  controlPlaneUrl: string | undefined;
  caPem: string | undefined;
  workload: WorkloadFacts | undefined;
  configMap: V1ConfigMap | undefined;
  tokenSecret: TokenSecretFacts | undefined;
  /** Pods of this connector (by label), including terminating ones. */
  pods: V1Pod[];
  /** Claims in the connector's namespace that its pods or spec reference, by name. */
  claims: Map<string, ClaimFacts>;
  controlPlane: ControlPlaneView;
  /**
   * Objects with a child's name that this Connector does not control: the operator never writes
   * them (it would take over a user's object), and stalls with OwnershipConflict instead.
   */
  foreign?: ForeignObject[];
  /** Audit entries of this connector since a recovery started (read only while one runs). */
  audit?: AuditEntry[];
  /** The control plane's dry-run answer for the recovery whose recorded step is Checking. */
  recoveryCheck?: RecoveryCheck;
  /**
   * The StorageClass of the operator's own claim, read only while spec.storage.size asks for more
   * than the claim has; absent then means the class does not exist.
   */
  storageClass?: StorageClassFacts;
  /**
   * What is wrong with the PriorityClass and ServiceAccount the pod names, read while the Connector
   * has no pod (absent: nothing wrong, nothing named, or a pod exists).
   */
  podReferences?: PodReferenceProblem[];
}
