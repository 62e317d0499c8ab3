// The ClusterReader the reconciler observes through: owned objects from the informers' caches (no
// API round trip, no load on the API server at 10,000 connectors), and what the operator does not
// own read from the API when a Connector needs it. Secrets are never cached: the operator may not
// list or watch them, so its own token Secret and the credential Secrets that control-plane
// resources name are read by name (get), only when they matter.
import {
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  StorageV1Api,
  type V1ConfigMap,
  type V1Deployment,
  type V1PersistentVolumeClaim,
  type V1Pod,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import { LABELS } from './api/constants.ts';
import type { ClusterReader } from './reconcile/observe.ts';
import type { Informer } from './runtime/informers.ts';

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
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly storage: StorageV1Api;

  constructor(kc: KubeConfig, informers: OwnedInformers) {
    this.informers = informers;
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.storage = kc.makeApiClient(StorageV1Api);
  }

  ownedStatefulSet(namespace: string, name: string) {
    return this.informers.statefulSets.get(namespace, name);
  }
  ownedConfigMap(namespace: string, name: string) {
    return this.informers.configMaps.get(namespace, name);
  }
  ownedPods(namespace: string, connectorName: string) {
    return this.informers.pods
      .list(namespace)
      .filter((p) => p.metadata?.labels?.[LABELS.connector] === connectorName);
  }
  ownedClaims(namespace: string, connectorName: string) {
    return this.informers.claims
      .list(namespace)
      .filter((c) => c.metadata?.labels?.[LABELS.connector] === connectorName);
  }
  readClaim(namespace: string, name: string) {
    return orUndefined(this.core.readNamespacedPersistentVolumeClaim({ namespace, name }));
  }
  readWorkload(
    namespace: string,
    kind: 'StatefulSet' | 'Deployment',
    name: string,
  ): Promise<V1StatefulSet | V1Deployment | undefined> {
    return kind === 'StatefulSet'
      ? orUndefined(this.apps.readNamespacedStatefulSet({ namespace, name }))
      : orUndefined(this.apps.readNamespacedDeployment({ namespace, name }));
  }
  async listPods(namespace: string, labelSelector: string) {
    return (await this.core.listNamespacedPod({ namespace, labelSelector })).items;
  }
  readSecret(namespace: string, name: string) {
    return orUndefined(this.core.readNamespacedSecret({ namespace, name }));
  }
  readConfigMap(namespace: string, name: string) {
    return orUndefined(this.core.readNamespacedConfigMap({ namespace, name }));
  }
  /** Read only when a claim should grow (storage-expansion.ts), so no informer: a handful of reads. */
  readStorageClass(name: string) {
    return orUndefined(this.storage.readStorageClass({ name }));
  }
}
