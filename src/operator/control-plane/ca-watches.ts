// Watches the CA ConfigMap of each control-plane resource, so that a bundle changed in place is
// checked at once. The registry checks a Ready resource only every few minutes (registry.ts), and
// an edit of the ConfigMap is no change of the resource: without this, an admin who replaced or
// grew the bundle (even past what a Connector's ConfigMap can hold) saw the ControlPlane stay Ready
// with the old bundle for up to READY_RECHECK_MS. Control planes are few, so each gets one narrow
// watch of its ConfigMap by name (a field selector), as adopted workloads do (adoption-watches.ts),
// rather than a watch of every ConfigMap in the cluster.
import type { V1ConfigMap } from '@kubernetes/client-node';
import type { Logger } from '../../lib/logger.ts';
import { Informer } from '../runtime/informers.ts';
import type { KubeAccess } from '../runtime/kube-access.ts';
import type { OperatorMetrics } from '../runtime/metrics.ts';
import { RESOURCE_TYPES } from '../runtime/resources.ts';

/** Where a control-plane resource's CA bundle lives. */
export interface CaConfigMapTarget {
  namespace: string;
  name: string;
  /**
   * The resourceVersion of the ConfigMap the check read ('' when it found none; absent when it did
   * not read it). The watch starts after that read: a first list showing anything else is news.
   */
  seenVersion?: string;
}

export interface CaWatchesOptions {
  kc: KubeAccess;
  logger: Logger;
  metrics?: OperatorMetrics;
  /** Called with the control plane's key when its CA ConfigMap is created, changed or deleted. */
  onChange(key: string): void;
}

/** What the registry needs of the watches: one target per control plane, or none. */
export interface CaWatch {
  ensure(key: string, target: CaConfigMapTarget | undefined): void;
  stop(): void;
}

export class ControlPlaneCaWatches implements CaWatch {
  private readonly options: CaWatchesOptions;
  private readonly watched = new Map<
    string,
    { target: CaConfigMapTarget; informer: Informer<V1ConfigMap> }
  >();

  constructor(options: CaWatchesOptions) {
    this.options = options;
  }

  /** Watches `target` for control plane `key`; none (no caConfigMapRef, or gone) stops its watch. */
  ensure(key: string, target: CaConfigMapTarget | undefined): void {
    const current = this.watched.get(key);
    if (
      current &&
      target &&
      current.target.namespace === target.namespace &&
      current.target.name === target.name
    )
      return;
    if (current) {
      current.informer.stop();
      this.watched.delete(key);
    }
    if (!target) return;
    const { kc, logger, metrics } = this.options;
    const { namespace, name } = target;
    const informer = new Informer<V1ConfigMap>({
      kc,
      logger,
      ...(metrics ? { metrics } : {}),
      type: RESOURCE_TYPES.configMap,
      namespace,
      fieldSelector: `metadata.name=${name}`,
      // Its events are all that matters: the check reads the bundle itself. Without this the cache
      // would hold each bundle, up to 1 MiB, for nothing.
      transform: (configMap) => ({ metadata: configMap.metadata ?? {} }),
    });
    const wake = () => this.options.onChange(key);
    informer.addHandlers({
      // The first list is judged once it is complete (below). A ConfigMap created after it (the CA
      // the ControlPlane was waiting for) is news.
      onAdd: () => {
        if (informer.hasSynced()) wake();
      },
      onUpdate: wake,
      onDelete: wake,
    });
    informer.start();
    // The check read the ConfigMap before this watch began: one changed, deleted or created in
    // between shows in the first list as it is now, not as an event, and is news all the same.
    const seen = target.seenVersion;
    informer.waitForSync().then(
      () => {
        const listed = informer.get(namespace, name)?.metadata?.resourceVersion ?? '';
        if (this.watched.get(key)?.informer === informer && listed !== seen) wake();
      },
      () => {}, // stopped before its first list: nothing to compare
    );
    this.watched.set(key, { target, informer });
    logger.debug({ controlPlane: key, namespace, name }, 'watching the control plane CA ConfigMap');
  }

  /** Control-plane keys being watched, for tests. */
  keys(): string[] {
    return [...this.watched.keys()];
  }

  stop(): void {
    for (const key of [...this.watched.keys()]) this.ensure(key, undefined);
  }
}
