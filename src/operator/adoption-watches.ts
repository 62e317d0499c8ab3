// Watches for adopted workloads (spec.workloadRef). The operator's own objects carry its labels and
// are watched by the shared label-selected informers; a user's StatefulSet or Deployment and its
// pods carry the user's labels. Rather than watching every workload and pod in the cluster, each
// adopting Connector gets two narrow watches in its namespace: the workload by name (a field
// selector) and its pods by the workload's own selector. Any event wakes that Connector, so a pod
// rescheduled onto emptyDir is noticed at once, not at the Connector's next periodic look.
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../lib/logger.ts';
import { Informer } from './runtime/informers.ts';
import type { KubeAccess } from './runtime/kube-access.ts';
import type { OperatorMetrics } from './runtime/metrics.ts';
import { RESOURCE_TYPES } from './runtime/resources.ts';

export interface AdoptionTarget {
  namespace: string;
  kind: 'StatefulSet' | 'Deployment';
  name: string;
  /** The workload's pod selector as a label selector string; undefined until the workload is read. */
  podSelector: string | undefined;
}

export interface AdoptionWatchesOptions {
  kc: KubeAccess;
  logger: Logger;
  metrics?: OperatorMetrics;
  /** Called with the Connector's key on any event of its workload or pods. */
  onChange(key: string): void;
}

interface Watched {
  target: AdoptionTarget;
  workload: Informer<KubernetesObject>;
  pods: Informer<KubernetesObject> | undefined;
}

const sameTarget = (a: AdoptionTarget, b: AdoptionTarget) =>
  a.namespace === b.namespace && a.kind === b.kind && a.name === b.name && a.podSelector === b.podSelector;

export class AdoptionWatches {
  private readonly options: AdoptionWatchesOptions;
  private readonly watched = new Map<string, Watched>();

  constructor(options: AdoptionWatchesOptions) {
    this.options = options;
  }

  /** Watches `target` for the Connector `key`; a changed target (selector, name) replaces the watches. */
  ensure(key: string, target: AdoptionTarget): void {
    const current = this.watched.get(key);
    if (current && sameTarget(current.target, target)) return;
    if (current) this.release(key);
    const { kc, logger, metrics } = this.options;
    const wake = () => this.options.onChange(key);
    const handlers = { onAdd: wake, onUpdate: wake, onDelete: wake };
    const workload = new Informer<KubernetesObject>({
      kc,
      logger,
      ...(metrics ? { metrics } : {}),
      type: target.kind === 'StatefulSet' ? RESOURCE_TYPES.statefulSet : RESOURCE_TYPES.deployment,
      namespace: target.namespace,
      fieldSelector: `metadata.name=${target.name}`,
    });
    workload.addHandlers(handlers);
    workload.start();
    let pods: Informer<KubernetesObject> | undefined;
    if (target.podSelector) {
      pods = new Informer<KubernetesObject>({
        kc,
        logger,
        ...(metrics ? { metrics } : {}),
        type: RESOURCE_TYPES.pod,
        namespace: target.namespace,
        labelSelector: target.podSelector,
      });
      pods.addHandlers(handlers);
      pods.start();
    }
    this.watched.set(key, { target, workload, pods });
    logger.debug({ connector: key, ...target }, 'watching the adopted workload');
  }

  /** Stops the watches of a Connector that no longer adopts anything (or is gone). */
  release(key: string): void {
    const current = this.watched.get(key);
    if (!current) return;
    current.workload.stop();
    current.pods?.stop();
    this.watched.delete(key);
  }

  /** Connector keys being watched, for tests and metrics. */
  keys(): string[] {
    return [...this.watched.keys()];
  }

  stop(): void {
    for (const key of [...this.watched.keys()]) this.release(key);
  }
}
