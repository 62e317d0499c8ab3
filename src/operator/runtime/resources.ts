// What the runtime needs to know about each kind of object it lists, watches or writes: where it
// lives in the API and which client-node model describes it. One table, so the informers, the apply
// helper and the metrics name kinds the same way.
import type { KubernetesObject } from '@kubernetes/client-node';
// client-node does not re-export its ObjectSerializer; it is the very serializer its typed API
// methods and KubernetesObjectApi use, so objects from a watch stream converted with it have the same
// shape (Date timestamps, model classes) as objects from a list or a read.
import { ObjectSerializer } from '@kubernetes/client-node/dist/serializer.js';
import { API_VERSION, CLUSTER_CONTROL_PLANE, CONTROL_PLANE, KIND, PLURAL } from '../api/constants.ts';

export interface ResourceType {
  /** `v1`, `apps/v1`, `vaultpam.io/v1alpha1`. */
  apiVersion: string;
  kind: string;
  /** Lower-case plural as in the URL path. */
  plural: string;
  namespaced: boolean;
  /** client-node model name (`V1Secret`), or `KubernetesObject` for custom resources. */
  model: string;
}

export const RESOURCE_TYPES = {
  connector: {
    apiVersion: API_VERSION,
    kind: KIND,
    plural: PLURAL,
    namespaced: true,
    model: 'KubernetesObject',
  },
  controlPlane: {
    apiVersion: API_VERSION,
    kind: CONTROL_PLANE.kind,
    plural: CONTROL_PLANE.plural,
    namespaced: true,
    model: 'KubernetesObject',
  },
  clusterControlPlane: {
    apiVersion: API_VERSION,
    kind: CLUSTER_CONTROL_PLANE.kind,
    plural: CLUSTER_CONTROL_PLANE.plural,
    namespaced: false,
    model: 'KubernetesObject',
  },
  secret: { apiVersion: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true, model: 'V1Secret' },
  configMap: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    plural: 'configmaps',
    namespaced: true,
    model: 'V1ConfigMap',
  },
  pod: { apiVersion: 'v1', kind: 'Pod', plural: 'pods', namespaced: true, model: 'V1Pod' },
  persistentVolumeClaim: {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    plural: 'persistentvolumeclaims',
    namespaced: true,
    model: 'V1PersistentVolumeClaim',
  },
  statefulSet: {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    plural: 'statefulsets',
    namespaced: true,
    model: 'V1StatefulSet',
  },
  deployment: {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    plural: 'deployments',
    namespaced: true,
    model: 'V1Deployment',
  },
  lease: {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    plural: 'leases',
    namespaced: true,
    model: 'V1Lease',
  },
  event: {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    plural: 'events',
    namespaced: true,
    model: 'EventsV1Event',
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

/** Converts an object as the API server sent it (JSON, e.g. from a watch) into client-node's model form. */
export function toModel<T extends KubernetesObject>(type: ResourceType, raw: object): T {
  return ObjectSerializer.deserialize(
    { apiVersion: type.apiVersion, kind: type.kind, ...raw },
    type.model,
  ) as T;
}

/**
 * List items arrive already in model form but without apiVersion/kind; the cache always carries them
 * so handlers never need to guess what they were given.
 */
export function withTypeMeta<T extends KubernetesObject>(type: ResourceType, object: T): T {
  object.apiVersion ??= type.apiVersion;
  object.kind ??= type.kind;
  return object;
}
