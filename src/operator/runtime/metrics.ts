// The operator's Prometheus metrics, all named vaultpam_operator_*, on a per-instance Registry (never
// prom-client's global one) so two operators in one test process never share a counter. Gauges that
// mirror live state (queue depth, connectors by phase, leadership) read their source at scrape time
// instead of being pushed, so they cannot drift from what they describe.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CONNECTOR_PHASES, type ConnectorPhase } from '../api/types.ts';
import type { WorkQueueStats } from './work-queue.ts';

export const RECONCILE_RESULTS = ['success', 'requeue', 'error'] as const;
export type ReconcileResultLabel = (typeof RECONCILE_RESULTS)[number];

export const KUBERNETES_WRITE_VERBS = ['create', 'update', 'patch', 'delete', 'dry-run'] as const;
export type KubernetesWriteVerb = (typeof KUBERNETES_WRITE_VERBS)[number];

/** Why an Event the operator wanted to emit was not written as asked. */
export type EventSuppression = 'rate_limited' | 'redacted' | 'failed';

export interface OperatorMetrics {
  readonly registry: Registry;
  readonly reconciles: Counter<'result'>;
  readonly reconcileErrors: Counter<'code'>;
  readonly reconcileDuration: Histogram;
  readonly enrollmentTokensMinted: Counter;
  readonly recoveries: Counter<'outcome'>;
  readonly kubernetesWrites: Counter<'kind' | 'verb'>;
  readonly informerRestarts: Counter<'resource'>;
  readonly informerWatchErrors: Counter<'resource'>;
  readonly eventsSuppressed: Counter<'reason'>;
  /** Finalizers removed without releasing the control-plane record (release timeout or skip annotation). */
  readonly releasesAbandoned: Counter<'deletion_policy' | 'reason'>;
  /** Counts one write request to the Kubernetes API. Every write the operator makes goes through here. */
  countWrite(kind: string, verb: KubernetesWriteVerb): void;
  /** Records one finished reconcile: its result, duration and (for errors) the error code. */
  observeReconcile(result: ReconcileResultLabel, durationSeconds: number, errorCode?: string): void;
  /** Where the work-queue gauges read from at scrape time. */
  setWorkQueueSource(source: () => WorkQueueStats): void;
  /** Where the connectors-by-phase gauge reads from at scrape time. */
  setConnectorPhaseSource(source: () => ReadonlyMap<ConnectorPhase, number>): void;
  /** Where the leader gauge reads from at scrape time (true: this replica leads). */
  setLeaderSource(source: () => boolean): void;
  /** Sum of kubernetesWrites over every label set, optionally leaving out some kinds (e.g. Lease renewals). */
  totalWrites(options?: { excludeKinds?: readonly string[] }): Promise<number>;
}

export function createOperatorMetrics(): OperatorMetrics {
  const registry = new Registry();
  const registers = [registry];
  let workQueueSource: (() => WorkQueueStats) | undefined;
  let phaseSource: (() => ReadonlyMap<ConnectorPhase, number>) | undefined;
  let leaderSource: (() => boolean) | undefined;

  const reconciles = new Counter({
    name: 'vaultpam_operator_reconciles_total',
    help: 'Finished reconciles by result (success, requeue, error).',
    labelNames: ['result'],
    registers,
  });
  const reconcileErrors = new Counter({
    name: 'vaultpam_operator_reconcile_errors_total',
    help: 'Failed reconciles by error code.',
    labelNames: ['code'],
    registers,
  });
  const reconcileDuration = new Histogram({
    name: 'vaultpam_operator_reconcile_duration_seconds',
    help: 'Duration of one reconcile.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  const enrollmentTokensMinted = new Counter({
    name: 'vaultpam_operator_enrollment_tokens_minted_total',
    help: 'Enrollment tokens the operator minted through the control plane.',
    registers,
  });
  const recoveries = new Counter({
    name: 'vaultpam_operator_recoveries_total',
    help: 'Guided recoveries that ended, by outcome.',
    labelNames: ['outcome'],
    registers,
  });
  const kubernetesWrites = new Counter({
    name: 'vaultpam_operator_kubernetes_writes_total',
    help: 'Write requests sent to the Kubernetes API, by object kind and verb (server-side apply counts as patch).',
    labelNames: ['kind', 'verb'],
    registers,
  });
  const informerRestarts = new Counter({
    name: 'vaultpam_operator_informer_restarts_total',
    help: 'Times an informer restarted its list/watch after the watch failed.',
    labelNames: ['resource'],
    registers,
  });
  const informerWatchErrors = new Counter({
    name: 'vaultpam_operator_informer_watch_errors_total',
    help: 'List or watch failures seen by informers.',
    labelNames: ['resource'],
    registers,
  });
  const eventsSuppressed = new Counter({
    name: 'vaultpam_operator_events_suppressed_total',
    help: 'Events not written as asked: rate_limited (dropped), redacted (secret-looking message replaced), failed (API error).',
    labelNames: ['reason'],
    registers,
  });
  const releasesAbandoned = new Counter({
    name: 'vaultpam_operator_connector_releases_abandoned_total',
    help: 'Connectors whose finalizer was removed without releasing their control-plane record, by the deletion policy asked and why (timeout: the release timeout passed; skipped: the vaultpam.io/skip-release annotation).',
    labelNames: ['deletion_policy', 'reason'],
    registers,
  });
  new Gauge({
    name: 'vaultpam_operator_work_queue_depth',
    help: 'Keys due now and waiting for a free reconcile slot.',
    registers,
    collect() {
      this.set(workQueueSource?.().depth ?? 0);
    },
  });
  new Gauge({
    name: 'vaultpam_operator_work_queue_in_flight',
    help: 'Reconciles running now.',
    registers,
    collect() {
      this.set(workQueueSource?.().inFlight ?? 0);
    },
  });
  new Gauge({
    name: 'vaultpam_operator_connectors',
    help: 'Connector resources by status phase, as the operator last observed them.',
    labelNames: ['phase'],
    registers,
    collect() {
      const counts = phaseSource?.();
      for (const phase of CONNECTOR_PHASES) this.set({ phase }, counts?.get(phase) ?? 0);
    },
  });
  new Gauge({
    name: 'vaultpam_operator_leader',
    help: '1 while this replica holds the leader lease, else 0.',
    registers,
    collect() {
      this.set(leaderSource?.() ? 1 : 0);
    },
  });

  return {
    registry,
    reconciles,
    reconcileErrors,
    reconcileDuration,
    enrollmentTokensMinted,
    recoveries,
    kubernetesWrites,
    informerRestarts,
    informerWatchErrors,
    eventsSuppressed,
    releasesAbandoned,
    countWrite(kind, verb) {
      kubernetesWrites.inc({ kind, verb });
    },
    observeReconcile(result, durationSeconds, errorCode) {
      reconciles.inc({ result });
      reconcileDuration.observe(durationSeconds);
      if (result === 'error') reconcileErrors.inc({ code: errorCode ?? 'UNKNOWN' });
    },
    setWorkQueueSource(source) {
      workQueueSource = source;
    },
    setConnectorPhaseSource(source) {
      phaseSource = source;
    },
    setLeaderSource(source) {
      leaderSource = source;
    },
    async totalWrites(options = {}) {
      const excluded = new Set(options.excludeKinds ?? []);
      const { values } = await kubernetesWrites.get();
      return values
        .filter((sample) => !excluded.has(String(sample.labels.kind)))
        .reduce((sum, sample) => sum + sample.value, 0);
    },
  };
}
