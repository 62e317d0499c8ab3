// Every Kubernetes call the plugin makes, with the person's own credentials. Reads only, except the
// one write a person asks for (`recover`: spec.recovery.requestId, by merge patch, as GitOps sets
// it). Secrets are read by name and only the credential Secret a control plane names; no Secret's
// data goes anywhere but the memory of this process.
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
  type V1Deployment,
  type V1PersistentVolumeClaim,
  type V1Pod,
  type V1Secret,
  type V1StatefulSet,
  Watch,
} from '@kubernetes/client-node';
import { CLUSTER_CONTROL_PLANE, CONTROL_PLANE, GROUP, PLURAL, VERSION } from '../operator/api/constants.ts';
import type { ControlPlaneResource } from '../operator/api/control-planes.ts';
import type { Connector } from '../operator/api/types.ts';
import { describeApiError, httpStatusOf } from '../operator/runtime/api-errors.ts';

/** An Event as the plugin shows it (events.k8s.io/v1, about one object). */
export interface EventRecord {
  type: string;
  reason: string;
  note: string;
  regarding: { kind: string; name: string };
  count: number;
  lastSeen: string;
}

/** The outcome of a read the person may not be allowed to make: the object, absent, or why not. */
export type Readable<T> = { ok: true; value: T | undefined } | { ok: false; why: string; status?: number };

/** Reads that may be refused (403) or fail, as Readable: the caller says so and goes on. */
export async function readable<T>(read: () => Promise<T>): Promise<Readable<T>> {
  try {
    return { ok: true, value: await read() };
  } catch (error) {
    const status = httpStatusOf(error);
    if (status === 404) return { ok: true, value: undefined };
    return { ok: false, why: describeApiError(error), ...(status !== undefined ? { status } : {}) };
  }
}

const connectorPath = (namespace: string) => ({ group: GROUP, version: VERSION, namespace, plural: PLURAL });

/**
 * The most of one log the plugin reads (8 MiB), asked of the kubelet as limitBytes: the client reads
 * a log whole into memory, and a line is as long as the agent (or whatever runs in the pod) makes
 * it, so without a bound one endless line fills this process. With tailLines, the kubelet sends the
 * first this-many bytes of the last lines. 500 agent lines are tens of KiB, the operator's 20 times
 * as many a few MiB.
 */
export const LOG_LIMIT_BYTES = 8 * 1024 * 1024;

export class KubeApi {
  readonly kc: KubeConfig;
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly events: EventsV1Api;

  constructor(kc: KubeConfig) {
    this.kc = kc;
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.events = kc.makeApiClient(EventsV1Api);
  }

  async listConnectors(namespace: string | undefined): Promise<Connector[]> {
    const list = (
      namespace === undefined
        ? await this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
        : await this.custom.listNamespacedCustomObject(connectorPath(namespace))
    ) as { items?: Connector[] };
    return list.items ?? [];
  }

  getConnector(namespace: string, name: string): Promise<Connector> {
    return this.custom.getNamespacedCustomObject({ ...connectorPath(namespace), name }) as Promise<Connector>;
  }

  /**
   * Sets spec.recovery.requestId by merge patch, on the version read (a concurrent change is a 409,
   * not a lost update). With `dryRun`, the API server validates and authorizes it and stores nothing.
   */
  setRecoveryRequest(
    namespace: string,
    name: string,
    requestId: string,
    resourceVersion: string | undefined,
    dryRun: boolean,
  ): Promise<Connector> {
    return this.custom.patchNamespacedCustomObject(
      {
        ...connectorPath(namespace),
        name,
        body: {
          metadata: resourceVersion ? { resourceVersion } : {},
          spec: { recovery: { requestId } },
        },
        ...(dryRun ? { dryRun: 'All' } : {}),
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    ) as Promise<Connector>;
  }

  /**
   * Watches one Connector from `resourceVersion`; every change is handed to onChange. Resolves with
   * a stop function; `onEnd` is told when the server ends the watch (it does, every few minutes).
   */
  async watchConnector(
    namespace: string,
    name: string,
    resourceVersion: string | undefined,
    onChange: (connector: Connector) => void,
    onEnd: (error: unknown) => void,
  ): Promise<() => void> {
    const controller = await new Watch(this.kc).watch(
      `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}`,
      {
        fieldSelector: `metadata.name=${name}`,
        allowWatchBookmarks: false,
        ...(resourceVersion ? { resourceVersion } : {}),
      },
      (phase, object) => {
        if (phase === 'ADDED' || phase === 'MODIFIED') onChange(object as Connector);
      },
      onEnd,
    );
    return () => controller.abort();
  }

  getControlPlane(namespace: string | undefined, name: string): Promise<ControlPlaneResource> {
    return (
      namespace === undefined
        ? this.custom.getClusterCustomObject({
            group: GROUP,
            version: VERSION,
            plural: CLUSTER_CONTROL_PLANE.plural,
            name,
          })
        : this.custom.getNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            plural: CONTROL_PLANE.plural,
            namespace,
            name,
          })
    ) as Promise<ControlPlaneResource>;
  }

  readSecret(namespace: string, name: string): Promise<V1Secret> {
    return this.core.readNamespacedSecret({ namespace, name });
  }

  readConfigMap(namespace: string, name: string): Promise<V1ConfigMap> {
    return this.core.readNamespacedConfigMap({ namespace, name });
  }

  readClaim(namespace: string, name: string): Promise<V1PersistentVolumeClaim> {
    return this.core.readNamespacedPersistentVolumeClaim({ namespace, name });
  }

  readWorkload(
    namespace: string,
    kind: 'StatefulSet' | 'Deployment',
    name: string,
  ): Promise<V1StatefulSet | V1Deployment> {
    return kind === 'StatefulSet'
      ? this.apps.readNamespacedStatefulSet({ namespace, name })
      : this.apps.readNamespacedDeployment({ namespace, name });
  }

  async listPods(namespace: string, labelSelector: string): Promise<V1Pod[]> {
    return (await this.core.listNamespacedPod({ namespace, labelSelector })).items;
  }

  readPodLog(
    namespace: string,
    pod: string,
    container: string,
    tailLines: number,
    previous = false,
  ): Promise<string> {
    return this.core.readNamespacedPodLog({
      namespace,
      name: pod,
      container,
      tailLines,
      previous,
      limitBytes: LOG_LIMIT_BYTES,
    });
  }

  /** The Events of the namespace about the objects named, oldest first. */
  async eventsAbout(namespace: string, objects: ReadonlyArray<{ kind: string; name: string }>) {
    const wanted = new Set(objects.map((o) => `${o.kind}/${o.name}`));
    const list = await this.events.listNamespacedEvent({ namespace });
    const records: EventRecord[] = [];
    for (const event of list.items) {
      const kind = event.regarding?.kind ?? '';
      const name = event.regarding?.name ?? '';
      if (!wanted.has(`${kind}/${name}`)) continue;
      const lastSeen =
        event.series?.lastObservedTime ?? event.eventTime ?? event.deprecatedLastTimestamp ?? undefined;
      records.push({
        type: event.type ?? '',
        reason: event.reason ?? '',
        note: event.note ?? '',
        regarding: { kind, name },
        count: event.series?.count ?? event.deprecatedCount ?? 1,
        lastSeen: lastSeen ? new Date(lastSeen).toISOString() : '',
      });
    }
    return records.sort((a, b) => a.lastSeen.localeCompare(b.lastSeen));
  }
}
