// Names of the Connector API and of the labels and annotations the operator puts on what it owns.
// Everything that names the API or selects owned objects reads from here, so a rename is one edit.
import { CONNECTOR_ID_PATTERN } from '../../contract/agent-process.ts';

export const GROUP = 'vaultpam.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'Connector';
export const LIST_KIND = 'ConnectorList';
export const PLURAL = 'connectors';
export const SINGULAR = 'connector';
export const CRD_NAME = `${PLURAL}.${GROUP}`;
export const SHORT_NAMES = ['conn', 'vpconn'] as const;
export const CATEGORIES = ['vaultpam'] as const;

/**
 * The admin-defined control-plane resources a Connector names in spec.controlPlaneRef (cert-manager's
 * Issuer / ClusterIssuer split): a namespaced ControlPlane serves Connectors of its own namespace,
 * a ClusterControlPlane serves every namespace and keeps its Secret in the operator's namespace.
 */
export const CONTROL_PLANE = {
  kind: 'ControlPlane',
  listKind: 'ControlPlaneList',
  plural: 'controlplanes',
  singular: 'controlplane',
  crdName: `controlplanes.${GROUP}`,
  shortNames: ['vpcp'],
} as const;
export const CLUSTER_CONTROL_PLANE = {
  kind: 'ClusterControlPlane',
  listKind: 'ClusterControlPlaneList',
  plural: 'clustercontrolplanes',
  singular: 'clustercontrolplane',
  crdName: `clustercontrolplanes.${GROUP}`,
  shortNames: ['vpccp'],
} as const;

/** The one field manager for every server-side apply the operator makes. */
export const FIELD_MANAGER = 'vaultpam-connector-operator';
export const OPERATOR_NAME = 'vaultpam-connector-operator';
/** Finalizer that lets the operator release the control-plane record before the object goes. */
export const FINALIZER = 'vaultpam.io/connector-cleanup';

/** Label and annotation keys on objects the operator owns (StatefulSet, pod, PVC, Secret, ConfigMap). */
export const LABELS = {
  /** Name of the Connector resource an object belongs to. */
  connector: 'vaultpam.io/connector',
  /** What part of the connector the object is: workload, data, config, enrollment-token. */
  component: 'vaultpam.io/component',
  name: 'app.kubernetes.io/name',
  instance: 'app.kubernetes.io/instance',
  managedBy: 'app.kubernetes.io/managed-by',
  partOf: 'app.kubernetes.io/part-of',
} as const;

export const LABEL_VALUES = {
  name: 'vaultpam-connector',
  managedBy: OPERATOR_NAME,
  partOf: 'vaultpam',
} as const;

export const COMPONENTS = {
  workload: 'workload',
  data: 'data',
  config: 'config',
  enrollmentToken: 'enrollment-token',
} as const;

export const ANNOTATIONS = {
  /** Connector id the child was built for, so a renamed id is noticed rather than silently reused. */
  connectorId: 'vaultpam.io/connector-id',
  /** Hash of the rendered configuration; a change rolls the pod. */
  configHash: 'vaultpam.io/config-hash',
  /** Idempotency key of the mint whose token a Secret holds (public; the token is not derivable from it). */
  mintKey: 'vaultpam.io/mint-key',
  /** Expiry of the token a Secret holds, RFC 3339. */
  tokenExpiresAt: 'vaultpam.io/token-expires-at',
  /** Recovery request a restart was made for, so a restarted operator does not restart twice. */
  restartedFor: 'vaultpam.io/restarted-for',
  /**
   * On a Connector, `"true"`: its finalizer releases nothing and goes at once, leaving the
   * control-plane record as it is (a Warning Event, a metric and a log line name it).
   */
  skipRelease: 'vaultpam.io/skip-release',
} as const;

/** How long a finalizer tries to release a Connector's record, counted from its deletionTimestamp. */
export const DEFAULT_RELEASE_TIMEOUT_MS = 5 * 60_000;

/**
 * The label by which a workload consents to adoption: `vaultpam.io/adopted-by: <Connector name>` on
 * the StatefulSet or Deployment that spec.workloadRef names. A label, so only someone who may edit
 * the workload can give it (reconcile/adoption-consent.ts).
 */
export const ADOPTED_BY_LABEL = 'vaultpam.io/adopted-by';

/**
 * The annotation by which a credential Secret's owner says where its credential may be sent: the
 * URL of the control plane (or several, separated by commas or whitespace) that a ControlPlane or
 * ClusterControlPlane naming the Secret must have (control-plane/credential-url.ts). An annotation
 * on the Secret, so only someone who may write the Secret can give it; whoever may only write
 * control planes can neither point a credential elsewhere nor use one not meant for their URL.
 */
export const CONTROL_PLANE_URL_ANNOTATION = 'vaultpam.io/control-plane-url';

/** Labels the operator owns on pods; spec.podLabels may not set them (enforced by the CRD too). */
export const RESERVED_POD_LABEL_KEYS: readonly string[] = [
  LABELS.name,
  LABELS.instance,
  LABELS.managedBy,
  LABELS.connector,
];

/**
 * Annotations the operator owns on pods; spec.podAnnotations may not set them (enforced by the CRD
 * too, and dropped from a Connector stored before that rule): the config hash rolls the pod, and the
 * restart marker is what a recovery's validation restart is recognised by.
 */
export const RESERVED_POD_ANNOTATION_KEYS: readonly string[] = [
  ANNOTATIONS.configHash,
  ANNOTATIONS.restartedFor,
];

/**
 * Prefixes of the annotations by which Kubernetes still sets a pod's AppArmor and seccomp profiles
 * (the API server copies the AppArmor one into the container's securityContext): the pod's security
 * context is the operator's, not the Connector author's, so spec.podAnnotations may not set them
 * either. Compared lower-cased, as Kubernetes checks annotation keys.
 */
export const RESERVED_POD_ANNOTATION_PREFIXES: readonly string[] = [
  'container.apparmor.security.beta.kubernetes.io/',
  'seccomp.security.alpha.kubernetes.io/',
  'container.seccomp.security.alpha.kubernetes.io/',
];

/** Whether spec.podAnnotations may not set this key (the operator's own, or the pod's security). */
export function reservedPodAnnotation(key: string): boolean {
  const lower = key.toLowerCase();
  return (
    RESERVED_POD_ANNOTATION_KEYS.includes(key) ||
    RESERVED_POD_ANNOTATION_PREFIXES.some((prefix) => lower.startsWith(prefix))
  );
}

/** Selector labels of one connector's objects. */
export function selectorLabels(connectorName: string): Record<string, string> {
  return {
    [LABELS.name]: LABEL_VALUES.name,
    [LABELS.instance]: connectorName,
    [LABELS.connector]: connectorName,
  };
}

/** Every label an owned object carries: the selector labels plus managed-by, part-of and component. */
export function ownedObjectLabels(
  connectorName: string,
  component: (typeof COMPONENTS)[keyof typeof COMPONENTS],
): Record<string, string> {
  return {
    ...selectorLabels(connectorName),
    [LABELS.managedBy]: LABEL_VALUES.managedBy,
    [LABELS.partOf]: LABEL_VALUES.partOf,
    [LABELS.component]: component,
  };
}

/**
 * metadata.name limit of a Connector (CRD rule): the name also names its StatefulSet, whose pods
 * (`<name>-0`) and controller-revision-hash label (`<name>-<10 char hash>`) must fit in 63 chars.
 */
export const MAX_CONNECTOR_NAME_LENGTH = 52;

/**
 * The longest control-plane URL, in characters: a ControlPlane's spec.url (CRD maxLength) and the
 * operator's --control-plane-url. It goes into every Connector's ConfigMap, whose room for the CA
 * bundle counts on it (reconcile/config-map-budget.ts).
 */
export const MAX_CONTROL_PLANE_URL_LENGTH = 2048;

/** Data directory of the agent inside the pod (PAM_AGENT_DATA_DIR). */
export const AGENT_DATA_DIR = '/data';

// Defaults the schema cannot apply (or applies only when the parent object is present).
export const DEFAULT_STORAGE_SIZE = '1Gi';
export const DEFAULT_TOKEN_TTL = '4h';
export const MIN_TOKEN_TTL_SECONDS = 5 * 60;
/** The control plane refuses longer tokens (contract: ttlSeconds <= 14400). */
export const MAX_TOKEN_TTL_SECONDS = 4 * 60 * 60;
export const DEFAULT_IMAGE_PULL_POLICY = 'IfNotPresent';
export const DEFAULT_CA_KEY = 'ca.crt';
export const DEFAULT_CREDENTIAL_KEY = 'credential';

/** Pattern of a connector id: the process contract's (src/contract/agent-process.ts). */
export { CONNECTOR_ID_PATTERN };
/** Pattern of spec.recovery.requestId. */
export const RECOVERY_REQUEST_ID_PATTERN = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;

/**
 * How an identity on a kept claim is reattached (docs/connector-resource.md, "Reattaching a
 * claim"): only a record its Connector kept with deletionPolicy Retain still accepts it. The
 * operator's diagnosis and the kubectl plugin's checks say it in these words.
 */
export const REATTACH_STEPS =
  'delete the Connector that had the identity with spec.deletionPolicy: Retain (Release, the default, deletes its record and the identity with it), then create a Connector in the same namespace with the same spec.connector.id and spec.storage.existingClaim naming the claim';
