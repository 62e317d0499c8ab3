// What the runtime needs to know about each kind of object it lists, watches or writes: where it
// lives in the API. One table, so the informers, the apply helper, the client and the metrics name
// kinds the same way.
//
// Objects travel as the API server's JSON (kube-client.ts), typed with client-node's models (a type-only
// import: nothing of client-node loads at runtime). One difference from those types: timestamps are
// the RFC 3339 strings the server sent, not Date objects, so code reads them with `new Date(value)`.
import type { KubernetesObject } from '@kubernetes/client-node';
import { API_VERSION, CLUSTER_CONTROL_PLANE, CONTROL_PLANE, KIND, PLURAL } from '../api/constants.ts';

export interface ResourceType {
  /** `v1`, `apps/v1`, `vaultpam.io/v1alpha1`. */
  apiVersion: string;
  kind: string;
  /** Lower-case plural as in the URL path. */
  plural: string;
  namespaced: boolean;
}

export const RESOURCE_TYPES = {
  connector: {
    apiVersion: API_VERSION,
    kind: KIND,
    plural: PLURAL,
    namespaced: true,
  },
  controlPlane: {
    apiVersion: API_VERSION,
    kind: CONTROL_PLANE.kind,
    plural: CONTROL_PLANE.plural,
    namespaced: true,
  },
  clusterControlPlane: {
    apiVersion: API_VERSION,
    kind: CLUSTER_CONTROL_PLANE.kind,
    plural: CLUSTER_CONTROL_PLANE.plural,
    namespaced: false,
  },
  secret: { apiVersion: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true },
  configMap: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    plural: 'configmaps',
    namespaced: true,
  },
  pod: { apiVersion: 'v1', kind: 'Pod', plural: 'pods', namespaced: true },
  persistentVolumeClaim: {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    plural: 'persistentvolumeclaims',
    namespaced: true,
  },
  statefulSet: {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    plural: 'statefulsets',
    namespaced: true,
  },
  deployment: {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    plural: 'deployments',
    namespaced: true,
  },
  storageClass: {
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    plural: 'storageclasses',
    namespaced: false,
  },
  priorityClass: {
    apiVersion: 'scheduling.k8s.io/v1',
    kind: 'PriorityClass',
    plural: 'priorityclasses',
    namespaced: false,
  },
  serviceAccount: { apiVersion: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', namespaced: true },
  lease: {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    plural: 'leases',
    namespaced: true,
  },
  event: {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    plural: 'events',
    namespaced: true,
  },
} as const satisfies Record<string, ResourceType>;

/** `configmaps`, `statefulsets.apps`, `connectors.vaultpam.io`: the name used in logs and metric labels. */
export function resourceName(type: ResourceType): string {
  const slash = type.apiVersion.indexOf('/');
  return slash === -1 ? type.plural : `${type.plural}.${type.apiVersion.slice(0, slash)}`;
}

/** URL path of the collection, across all namespaces when `namespace` is omitted. */
export function collectionPath(type: ResourceType, namespace?: string): string {
  const root = type.apiVersion.includes('/') ? `/apis/${type.apiVersion}` : `/api/${type.apiVersion}`;
  const scope = type.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${root}${scope}/${type.plural}`;
}

/** URL path of one object (or its subresource, such as `status` or `scale`). */
export function objectPath(
  type: ResourceType,
  namespace: string | undefined,
  name: string,
  subresource?: string,
): string {
  const path = `${collectionPath(type, namespace)}/${encodeURIComponent(name)}`;
  return subresource ? `${path}/${subresource}` : path;
}

/** The table's entry for an apiVersion and kind, if the runtime knows it. */
export function knownResourceType(apiVersion: string, kind: string): ResourceType | undefined {
  return Object.values(RESOURCE_TYPES).find((type) => type.apiVersion === apiVersion && type.kind === kind);
}

/**
 * List items arrive without apiVersion/kind (the list carries them once); the cache always carries
 * them, so handlers never need to guess what they were given.
 */
export function withTypeMeta<T extends KubernetesObject>(type: ResourceType, object: T): T {
  object.apiVersion ??= type.apiVersion;
  object.kind ??= type.kind;
  return object;
}
