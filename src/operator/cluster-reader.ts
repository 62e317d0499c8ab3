// The ClusterReader the reconciler observes through: owned objects from the informers' caches (no
// API round trip, no load on the API server at 10,000 connectors), and what the operator does not
// own read from the API when a Connector needs it. Secrets are never cached: the operator may not
// list or watch them, so its own token Secret and the credential Secrets that control-plane
// resources name are read by name (get), only when they matter.
import type {
  KubernetesObject,
  V1ConfigMap,
  V1Deployment,
  V1PersistentVolumeClaim,
  V1Pod,
  V1PriorityClass,
  V1Secret,
  V1ServiceAccount,
  V1StatefulSet,
  V1StorageClass,
} from '@kubernetes/client-node';
import { LABELS } from './api/constants.ts';
import type { Connector } from './api/types.ts';
import type { ClusterReader } from './reconcile/observe.ts';
import type { Informer } from './runtime/informers.ts';
import { type KubeAccess, kubeClientOf } from './runtime/kube-access.ts';
import type { KubeClient } from './runtime/kube-client.ts';
import { RESOURCE_TYPES } from './runtime/resources.ts';

/**
 * The index the pod and claim informers keep (InformerOptions.index): the Connector an object
 * belongs to, by its connector label, so one Connector's pods and claims are found without a scan.
 */
export function byConnectorLabel(object: KubernetesObject): string | undefined {
  const connector = object.metadata?.labels?.[LABELS.connector];
  return connector === undefined ? undefined : connectorIndexKey(object.metadata?.namespace ?? '', connector);
}

function connectorIndexKey(namespace: string, connectorName: string): string {
  return `${namespace}/${connectorName}`;
}

export interface OwnedInformers {
  statefulSets: Informer<V1StatefulSet>;
  configMaps: Informer<V1ConfigMap>;
  pods: Informer<V1Pod>;
  claims: Informer<V1PersistentVolumeClaim>;
}

function notFound(error: unknown): boolean {
  return (error as { code?: number }).code === 404;
}

async function orUndefined<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (error) {
    if (notFound(error)) return undefined;
    throw error;
  }
}

export class InformerClusterReader implements ClusterReader {
  private readonly informers: OwnedInformers;
  private readonly kube: KubeClient;

  constructor(kc: KubeAccess, informers: OwnedInformers) {
    this.informers = informers;
    this.kube = kubeClientOf(kc);
  }

  ownedStatefulSet(namespace: string, name: string) {
    return this.informers.statefulSets.get(namespace, name);
  }
  ownedConfigMap(namespace: string, name: string) {
    return this.informers.configMaps.get(namespace, name);
  }
  ownedPods(namespace: string, connectorName: string) {
    return this.informers.pods.byIndex(connectorIndexKey(namespace, connectorName));
  }
  ownedClaims(namespace: string, connectorName: string) {
    return this.informers.claims.byIndex(connectorIndexKey(namespace, connectorName));
  }
  readClaim(namespace: string, name: string) {
    return orUndefined(
      this.kube.get<V1PersistentVolumeClaim>(RESOURCE_TYPES.persistentVolumeClaim, { namespace, name }),
    );
  }
  readWorkload(
    namespace: string,
    kind: 'StatefulSet' | 'Deployment',
    name: string,
  ): Promise<V1StatefulSet | V1Deployment | undefined> {
    return kind === 'StatefulSet'
      ? orUndefined(this.kube.get<V1StatefulSet>(RESOURCE_TYPES.statefulSet, { namespace, name }))
      : orUndefined(this.kube.get<V1Deployment>(RESOURCE_TYPES.deployment, { namespace, name }));
  }
  async listPods(namespace: string, labelSelector: string) {
    return (await this.kube.list<V1Pod>(RESOURCE_TYPES.pod, { namespace, labelSelector })).items ?? [];
  }
  readSecret(namespace: string, name: string) {
    return orUndefined(this.kube.get<V1Secret>(RESOURCE_TYPES.secret, { namespace, name }));
  }
  readConnector(namespace: string, name: string) {
    return orUndefined(this.kube.get<Connector>(RESOURCE_TYPES.connector, { namespace, name }));
  }
  readConfigMap(namespace: string, name: string) {
    return orUndefined(this.kube.get<V1ConfigMap>(RESOURCE_TYPES.configMap, { namespace, name }));
  }
  /** Read only when a claim should grow (storage-expansion.ts), so no informer: a handful of reads. */
  readStorageClass(name: string) {
    return orUndefined(this.kube.get<V1StorageClass>(RESOURCE_TYPES.storageClass, { name }));
  }
  /** Read only while a Connector that names one has no pod (pod-references.ts): no informer either. */
  readPriorityClass(name: string) {
    return orUndefined(this.kube.get<V1PriorityClass>(RESOURCE_TYPES.priorityClass, { name }));
  }
  readServiceAccount(namespace: string, name: string) {
    return orUndefined(this.kube.get<V1ServiceAccount>(RESOURCE_TYPES.serviceAccount, { namespace, name }));
  }
}
