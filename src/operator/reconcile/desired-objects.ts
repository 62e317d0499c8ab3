// The objects the operator owns for one Connector, built purely from the defaulted spec. They are
// applied with server-side apply under one field manager, so building the full desired object on
// every pass is both the simplest and the idempotent way: an unchanged object is a no-op write.
import { createHash } from 'node:crypto';
import type {
  V1ConfigMap,
  V1OwnerReference,
  V1PersistentVolumeClaim,
  V1PodSpec,
  V1Secret,
  V1StatefulSet,
  V1Volume,
} from '@kubernetes/client-node';
import {
  AGENT_DATA_DIR,
  ANNOTATIONS,
  API_VERSION,
  COMPONENTS,
  KIND,
  LABELS,
  ownedObjectLabels,
  reservedPodAnnotation,
  selectorLabels,
} from '../api/constants.ts';
import type { Connector, ConnectorSpec, DefaultedSpec } from '../api/types.ts';
import { AGENT_CONTAINER_NAME, DATA_DIR_ENV } from './storage-posture.ts';

export const DATA_VOLUME = 'data';
export const CONFIG_MOUNT = '/etc/vaultpam/config';
export const TOKEN_MOUNT = '/var/run/vaultpam/enrollment';
export const TOKEN_KEY = 'token';
export const CA_KEY = 'ca.crt';
/** The ConfigMap key of the control-plane URL (VAULTPAM_CONTROL_PLANE_URL): where the agent pairs, and is registered. */
export const CONTROL_PLANE_URL_KEY = 'control-plane-url';
export const HEALTH_PORT = 8081;
/** UID and GID the agent runs as (the image's non-root user). */
export const AGENT_UID = 65532;

export const childNames = (connectorName: string) => ({
  statefulSet: connectorName,
  configMap: `${connectorName}-config`,
  tokenSecret: `${connectorName}-enrollment-token`,
  /** The claim a StatefulSet's data template gives its only pod. */
  claim: `${DATA_VOLUME}-${connectorName}-0`,
  pod: `${connectorName}-0`,
});

export function ownerReference(connector: Connector): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: connector.metadata.name ?? '',
    uid: connector.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** The control plane a ConfigMap of this operator gives the agent (its URL and CA), as it stands. */
export function configuredControlPlane(configMap: V1ConfigMap | undefined): {
  url: string | undefined;
  caPem: string | undefined;
} {
  return {
    url: configMap?.data?.[CONTROL_PLANE_URL_KEY] || undefined,
    caPem: configMap?.data?.[CA_KEY] || undefined,
  };
}

/** Configuration only: no token, key or secret ever goes here (DESIGN invariant). */
export function desiredConfigMap(
  connector: Connector,
  spec: DefaultedSpec,
  controlPlane: { url: string | undefined; caPem: string | undefined },
): V1ConfigMap {
  const data: Record<string, string> = {
    'connector-id': spec.connector.id,
    org: spec.connector.org,
    'endpoint-id': spec.connector.endpointId,
    'allowed-networks': spec.connector.allowedNetworks.join(','),
  };
  if (controlPlane.url) data[CONTROL_PLANE_URL_KEY] = controlPlane.url;
  if (controlPlane.caPem) data[CA_KEY] = controlPlane.caPem;
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: childNames(spec.name).configMap,
      namespace: spec.namespace,
      labels: ownedObjectLabels(spec.name, COMPONENTS.config),
      annotations: { [ANNOTATIONS.connectorId]: spec.connector.id },
      ownerReferences: [ownerReference(connector)],
    },
    data,
  };
}

/** Hash of the configuration, put on the pod template so a configuration change rolls the pod. */
export function configHash(configMap: V1ConfigMap): string {
  const data = configMap.data ?? {};
  const canonical = JSON.stringify(
    Object.keys(data)
      .sort()
      .map((key) => [key, data[key]]),
  );
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/** The token Secret; its one key is mounted as a file, optional, so the pod starts without it. */
export function desiredTokenSecret(
  connector: Connector,
  spec: DefaultedSpec,
  token: { value: string; mintKey: string; expiresAt: string },
): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {
      name: childNames(spec.name).tokenSecret,
      namespace: spec.namespace,
      labels: ownedObjectLabels(spec.name, COMPONENTS.enrollmentToken),
      annotations: {
        [ANNOTATIONS.connectorId]: spec.connector.id,
        [ANNOTATIONS.mintKey]: token.mintKey,
        [ANNOTATIONS.tokenExpiresAt]: token.expiresAt,
      },
      ownerReferences: [ownerReference(connector)],
    },
    stringData: { [TOKEN_KEY]: token.value },
  };
}

export interface StatefulSetInputs {
  image: string;
  replicas: number;
  configHash: string;
  /** Recovery request a validation restart was made for; changing it rolls the pod exactly once. */
  restartedFor: string | undefined;
  /**
   * The volumeClaimTemplates of the live StatefulSet, when it exists. Kubernetes refuses any change
   * to them after creation (the whole update fails), so they are kept exactly as they are: a larger
   * spec.storage.size grows the claim itself instead (storage-expansion.ts).
   */
  liveClaimTemplates?: V1PersistentVolumeClaim[] | undefined;
}

/** A claim template as the live StatefulSet has it: plain JSON, without the status the server adds. */
function keptClaimTemplate(template: V1PersistentVolumeClaim): V1PersistentVolumeClaim {
  const { status: _status, ...rest } = JSON.parse(JSON.stringify(template)) as V1PersistentVolumeClaim;
  return rest;
}

export function desiredStatefulSet(
  connector: Connector,
  spec: DefaultedSpec,
  inputs: StatefulSetInputs,
): V1StatefulSet {
  const names = childNames(spec.name);
  const raw: ConnectorSpec = connector.spec;
  // The author's annotations never stand for the operator's own nor set the pod's security profiles
  // (a Connector stored before the CRD refused them): a restart marker of theirs would pass for a
  // validation restart never made, an AppArmor one would run the agent unconfined.
  const podAnnotations: Record<string, string> = {
    ...Object.fromEntries(
      Object.entries(raw.podAnnotations ?? {}).filter(([key]) => !reservedPodAnnotation(key)),
    ),
    [ANNOTATIONS.configHash]: inputs.configHash,
  };
  if (inputs.restartedFor) podAnnotations[ANNOTATIONS.restartedFor] = inputs.restartedFor;
  const volumes: V1Volume[] = [
    { name: 'config', configMap: { name: names.configMap } },
    // optional: the pod must start (and fail closed, or reconnect) when no token is minted.
    {
      name: 'enrollment-token',
      secret: { secretName: names.tokenSecret, optional: true, defaultMode: 0o400 },
    },
    { name: 'tmp', emptyDir: { sizeLimit: '16Mi' } },
  ];
  if (spec.storage.kind === 'ExistingClaim') {
    volumes.push({ name: DATA_VOLUME, persistentVolumeClaim: { claimName: spec.storage.claimName } });
  } else if (spec.storage.kind === 'EmptyDir') {
    volumes.push({
      name: DATA_VOLUME,
      emptyDir: spec.storage.sizeLimit ? { sizeLimit: spec.storage.sizeLimit } : {},
    });
  }
  const podSpec: V1PodSpec = {
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    terminationGracePeriodSeconds: 30,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: AGENT_UID,
      runAsGroup: AGENT_UID,
      fsGroup: AGENT_UID,
      fsGroupChangePolicy: 'OnRootMismatch',
      seccompProfile: { type: 'RuntimeDefault' },
    },
    containers: [
      {
        name: AGENT_CONTAINER_NAME,
        image: inputs.image,
        imagePullPolicy: spec.imagePullPolicy,
        // Paths go in environment values (not inside flags) so each is exactly a mount path plus a file.
        env: [
          { name: DATA_DIR_ENV, value: AGENT_DATA_DIR },
          {
            name: 'VAULTPAM_CONNECTOR_ID',
            valueFrom: { configMapKeyRef: { name: names.configMap, key: 'connector-id' } },
          },
          {
            name: 'VAULTPAM_CONTROL_PLANE_URL',
            valueFrom: { configMapKeyRef: { name: names.configMap, key: CONTROL_PLANE_URL_KEY } },
          },
          { name: 'VAULTPAM_CA_FILE', value: `${CONFIG_MOUNT}/${CA_KEY}` },
          { name: 'VAULTPAM_TOKEN_FILE', value: `${TOKEN_MOUNT}/${TOKEN_KEY}` },
          { name: 'VAULTPAM_TERMINATION_LOG', value: '/dev/termination-log' },
          { name: 'VAULTPAM_HEALTH_LISTEN', value: `0.0.0.0:${HEALTH_PORT}` },
          { name: 'TMPDIR', value: '/tmp' },
        ],
        ports: [{ name: 'health', containerPort: HEALTH_PORT, protocol: 'TCP' }],
        volumeMounts: [
          { name: DATA_VOLUME, mountPath: AGENT_DATA_DIR },
          { name: 'config', mountPath: CONFIG_MOUNT, readOnly: true },
          { name: 'enrollment-token', mountPath: TOKEN_MOUNT, readOnly: true },
          { name: 'tmp', mountPath: '/tmp' },
        ],
        // A slow start (cold node, loaded host) is the startup probe's business, not a liveness kill.
        startupProbe: {
          httpGet: { path: '/healthz', port: 'health' },
          periodSeconds: 2,
          failureThreshold: 30,
        },
        livenessProbe: {
          httpGet: { path: '/healthz', port: 'health' },
          periodSeconds: 10,
          failureThreshold: 3,
        },
        readinessProbe: {
          httpGet: { path: '/readyz', port: 'health' },
          periodSeconds: 5,
          failureThreshold: 2,
        },
        terminationMessagePath: '/dev/termination-log',
        terminationMessagePolicy: 'FallbackToLogsOnError',
        securityContext: {
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          runAsNonRoot: true,
          capabilities: { drop: ['ALL'] },
        },
        ...(raw.resources ? { resources: raw.resources as never } : {}),
      },
    ],
    volumes,
  };
  if (raw.nodeSelector) podSpec.nodeSelector = raw.nodeSelector;
  if (raw.tolerations) podSpec.tolerations = raw.tolerations;
  if (raw.affinity) podSpec.affinity = raw.affinity;
  if (raw.priorityClassName) podSpec.priorityClassName = raw.priorityClassName;
  if (raw.serviceAccountName) podSpec.serviceAccountName = raw.serviceAccountName;
  if (raw.imagePullSecrets) podSpec.imagePullSecrets = raw.imagePullSecrets;

  const kept = inputs.liveClaimTemplates?.length
    ? inputs.liveClaimTemplates.map(keptClaimTemplate)
    : undefined;
  const claimTemplates =
    spec.storage.kind !== 'OperatorClaim'
      ? undefined
      : (kept ?? [
          {
            apiVersion: 'v1',
            kind: 'PersistentVolumeClaim',
            metadata: { name: DATA_VOLUME, labels: ownedObjectLabels(spec.name, COMPONENTS.data) },
            spec: {
              accessModes: ['ReadWriteOnce'],
              resources: { requests: { storage: spec.storage.size } },
              ...(spec.storage.storageClassName ? { storageClassName: spec.storage.storageClassName } : {}),
            },
          },
        ]);
  const statefulSet: V1StatefulSet = {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: {
      name: names.statefulSet,
      namespace: spec.namespace,
      labels: ownedObjectLabels(spec.name, COMPONENTS.workload),
      annotations: { [ANNOTATIONS.connectorId]: spec.connector.id },
      ownerReferences: [ownerReference(connector)],
    },
    spec: {
      replicas: inputs.replicas,
      serviceName: names.statefulSet,
      podManagementPolicy: 'OrderedReady',
      selector: { matchLabels: selectorLabels(spec.name) },
      // The identity must outlive the StatefulSet and any scale-down: never delete the claim.
      persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
      template: {
        metadata: {
          labels: { ...(raw.podLabels ?? {}), ...ownedObjectLabels(spec.name, COMPONENTS.workload) },
          annotations: podAnnotations,
        },
        spec: podSpec,
      },
      ...(claimTemplates ? { volumeClaimTemplates: claimTemplates } : {}),
    },
  };
  return statefulSet;
}

/** The label selector that finds every object of one connector. */
export function connectorSelector(connectorName: string): string {
  return `${LABELS.connector}=${connectorName}`;
}
