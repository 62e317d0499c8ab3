// The operator's Prometheus metrics, all named vaultpam_operator_*, on a per-instance Registry (never
// prom-client's global one) so two operators in one test process never share a counter. Gauges that
// mirror live state (queue depth, connectors by phase, leadership) read their source at scrape time
// instead of being pushed, so they cannot drift from what they describe.
//
// The per-connector gauges (vaultpam_operator_connector_*, labels namespace and name) are the facts
// alerts need about one Connector: its phase, why it is Stalled, its live token's mint time and
// expiry, its certificate's expiry. They are read from the Connector informer's cache at scrape time
// too, so a deleted Connector's series are gone at the next scrape, and every replica (leader and
// warm standby) exports the same values (alerts take max by namespace and name). Each is one series
// per Connector at most: the phase and the Stalled reason are labels of the one series that holds
// 1, not one series per possible value.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import {
  CONNECTOR_PHASES,
  type Connector,
  type ConnectorPhase,
  type RecoveryOutcome,
  type TokenFlow,
} from '../api/types.ts';
import { liveTokenOf } from '../reconcile/live-token.ts';
import type { KubeRequestInfo } from './kube-client.ts';
import { RESOURCE_TYPES, resourceName } from './resources.ts';
import type { WorkQueueStats } from './work-queue.ts';

export const RECONCILE_RESULTS = ['success', 'requeue', 'error'] as const;
export type ReconcileResultLabel = (typeof RECONCILE_RESULTS)[number];

export const KUBERNETES_WRITE_VERBS = ['create', 'update', 'patch', 'delete', 'dry-run'] as const;
export type KubernetesWriteVerb = (typeof KUBERNETES_WRITE_VERBS)[number];

/**
 * The outcome label of vaultpam_operator_recoveries_total for each recovery outcome: not_needed, a
 * request the control plane refused because the connector needed none, is no failed recovery.
 */
export const RECOVERY_OUTCOME_LABELS = {
  Succeeded: 'succeeded',
  Failed: 'failed',
  NotNeeded: 'not_needed',
} as const satisfies Record<RecoveryOutcome, string>;

/**
 * The resources requests and 429s are counted by: the operator's own table. Anything else
 * (discovery, a kind a test brought) is `other`, so the label set stays bounded whatever the
 * client is asked to do.
 */
const OWN_RESOURCES: ReadonlySet<string> = new Set(Object.values(RESOURCE_TYPES).map(resourceName));

const ownResource = (resource: string) => (OWN_RESOURCES.has(resource) ? resource : 'other');

/**
 * The minted_for label of the token gauges, for status.liveToken.mintedFor: two values, so the
 * alert can say whose token expires unused (the enrollment re-mints; a recovery ends Failed).
 */
export const MINTED_FOR_LABELS = {
  Enrollment: 'enrollment',
  Recovery: 'recovery',
} as const satisfies Record<TokenFlow, string>;
export type MintedForLabel = (typeof MINTED_FOR_LABELS)[TokenFlow];

/** Why an Event the operator wanted to emit was not written as asked. */
export type EventSuppression = 'rate_limited' | 'redacted' | 'failed';

/** What the per-connector gauges show of one Connector. Times are seconds since the epoch. */
export interface ConnectorMetricFacts {
  namespace: string;
  name: string;
  phase?: ConnectorPhase;
  /** The reason of the Stalled condition while it is True. */
  stalledReason?: string;
  /** The Ready condition's status and reason, when it has one. */
  ready?: { status: string; reason: string };
  /**
   * The live token a Secret holds now (the enrollment's, or a guided recovery's one token), not the
   * last one's end kept in status; its mint time when recorded.
   */
  liveToken?: { expiresAt: number; mintedAt?: number; mintedFor: MintedForLabel };
  certificateNotAfter?: number;
}

/** An RFC 3339 time as seconds since the epoch; undefined when absent or unreadable. */
function epochSeconds(time: string | undefined): number | undefined {
  if (!time) return undefined;
  const ms = Date.parse(time);
  return Number.isNaN(ms) ? undefined : ms / 1000;
}

/** The facts the per-connector gauges show, read from a Connector's status. */
export function connectorMetricFacts(connector: Connector): ConnectorMetricFacts {
  const status = connector.status ?? {};
  const facts: ConnectorMetricFacts = {
    namespace: connector.metadata.namespace ?? '',
    name: connector.metadata.name ?? '',
  };
  if (status.phase) facts.phase = status.phase;
  const stalled = status.conditions?.find((c) => c.type === 'Stalled' && c.status === 'True');
  if (stalled) facts.stalledReason = stalled.reason;
  const ready = status.conditions?.find((c) => c.type === 'Ready');
  if (ready) facts.ready = { status: ready.status, reason: ready.reason };
  const liveToken = liveTokenFacts(status);
  if (liveToken) facts.liveToken = liveToken;
  const notAfter = epochSeconds(status.identity?.notAfter);
  if (notAfter !== undefined) facts.certificateNotAfter = notAfter;
  return facts;
}

/**
 * The live token (live-token.ts: the one the Secret holds now, whichever flow minted it), not the
 * last one's end kept in status.enrollment.tokenExpiresAt until the connector pairs.
 */
function liveTokenFacts(status: NonNullable<Connector['status']>): ConnectorMetricFacts['liveToken'] {
  const live = liveTokenOf(status);
  const expiresAt = epochSeconds(live?.expiresAt);
  if (!live || expiresAt === undefined) return undefined;
  const mintedAt = epochSeconds(live.mintedAt);
  return {
    expiresAt,
    mintedFor: MINTED_FOR_LABELS[live.mintedFor],
    ...(mintedAt !== undefined ? { mintedAt } : {}),
  };
}

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
  /** 429 answers from the API server, by verb and resource. */
  readonly kubernetesThrottled: Counter<'verb' | 'resource'>;
  /** Answers below 500 from the API server (reads and writes, 429s included), by verb, resource and code. */
  readonly kubernetesRequests: Counter<'verb' | 'resource' | 'code'>;
  /** Counts one write request to the Kubernetes API. Every write the operator makes goes through here. */
  countWrite(kind: string, verb: KubernetesWriteVerb): void;
  /** Counts one 429 answer from the API server (the Kubernetes client's observer calls it). */
  countThrottled(request: KubeRequestInfo): void;
  /** Counts one answer below 500 from the API server, 429 included (the client's observer calls it). */
  countAnswered(request: KubeRequestInfo, status: number): void;
  /** Records one finished reconcile: its result, duration and (for errors) the error code. */
  observeReconcile(result: ReconcileResultLabel, durationSeconds: number, errorCode?: string): void;
  /** Where the work-queue gauges read from at scrape time. */
  setWorkQueueSource(source: () => WorkQueueStats): void;
  /** Where the concurrency-limit gauge reads from at scrape time (adaptive-limit.ts). */
  setConcurrencyLimitSource(source: () => number): void;
  /** Where the connectors-by-phase gauge reads from at scrape time. */
  setConnectorPhaseSource(source: () => ReadonlyMap<ConnectorPhase, number>): void;
  /** Where the leader gauge reads from at scrape time (true: this replica leads). */
  setLeaderSource(source: () => boolean): void;
  /** Where the per-connector gauges read from at scrape time: every Connector the operator sees. */
  setConnectorSource(source: () => Iterable<Connector>): void;
  /** Sum of kubernetesWrites over every label set, optionally leaving out some kinds (e.g. Lease renewals). */
  totalWrites(options?: { excludeKinds?: readonly string[] }): Promise<number>;
}

/**
 * `processMetrics` adds prom-client's process and Node metrics (CPU, resident memory, heap, event-loop
 * lag, GC): what says the operator's event loop is blocked before its Lease renewals are late. The
 * CLI turns it on; tests that start many operators in one process do not.
 */
export function createOperatorMetrics(options: { processMetrics?: boolean } = {}): OperatorMetrics {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  let workQueueSource: (() => WorkQueueStats) | undefined;
  let concurrencyLimitSource: (() => number) | undefined;
  let phaseSource: (() => ReadonlyMap<ConnectorPhase, number>) | undefined;
  let leaderSource: (() => boolean) | undefined;
  let connectorSource: (() => Iterable<Connector>) | undefined;

  const reconciles = new Counter({
    name: 'vaultpam_operator_reconciles_total',
    help: 'Finished reconciles by result (success, requeue, error).',
    labelNames: ['result'],
    registers,
  });
  // Every result exported from the start (at 0), so rate() sees the first error as an increase
  // rather than as a series that appeared.
  for (const result of RECONCILE_RESULTS) reconciles.inc({ result }, 0);
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
  // Every outcome from the start: a series born at its first increment makes increase() miss that
  // one (it has no earlier sample), and the first failed recovery after a restart is the one to see.
  for (const outcome of Object.values(RECOVERY_OUTCOME_LABELS)) recoveries.inc({ outcome }, 0);
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
  const kubernetesThrottled = new Counter({
    name: 'vaultpam_operator_kubernetes_throttled_total',
    help: "Requests the Kubernetes API server answered 429 (API Priority and Fairness rejected them, or a rate limit), by verb and resource (other: outside the operator's own kinds). Each may lower the reconcile concurrency limit.",
    labelNames: ['verb', 'resource'],
    registers,
  });
  // Reads as well as writes: what the operator costs the API server (a GET that misses the cache
  // is a quorum read from etcd), and which of its requests were refused (403, 404, 409, 422).
  const kubernetesRequests = new Counter({
    name: 'vaultpam_operator_kubernetes_requests_total',
    help: "Answers below 500 the Kubernetes API server gave the operator (every verb, 429s included), by verb, resource (other: outside the operator's own kinds) and HTTP code.",
    labelNames: ['verb', 'resource', 'code'],
    registers,
  });
  new Gauge({
    name: 'vaultpam_operator_work_queue_concurrency_limit',
    help: 'Reconciles allowed to run at once now: --concurrency, halved when the API server answers 429, grown back by one a second while it does not.',
    registers,
    collect() {
      this.set(concurrencyLimitSource?.() ?? 0);
    },
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

  registerConnectorGauges(registers, () => connectorSource?.() ?? []);

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
    kubernetesThrottled,
    kubernetesRequests,
    countWrite(kind, verb) {
      kubernetesWrites.inc({ kind, verb });
    },
    countThrottled({ verb, resource }) {
      kubernetesThrottled.inc({ verb, resource: ownResource(resource) });
    },
    countAnswered({ verb, resource }, status) {
      kubernetesRequests.inc({ verb, resource: ownResource(resource), code: String(status) });
    },
    observeReconcile(result, durationSeconds, errorCode) {
      reconciles.inc({ result });
      reconcileDuration.observe(durationSeconds);
      if (result === 'error') reconcileErrors.inc({ code: errorCode ?? 'UNKNOWN' });
    },
    setWorkQueueSource(source) {
      workQueueSource = source;
    },
    setConcurrencyLimitSource(source) {
      concurrencyLimitSource = source;
    },
    setConnectorPhaseSource(source) {
      phaseSource = source;
    },
    setLeaderSource(source) {
      leaderSource = source;
    },
    setConnectorSource(source) {
      connectorSource = source;
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

/**
 * The per-connector gauges. Each gauge, when scraped, resets and sets one series per Connector that
 * has the fact, so nothing outlives the Connector or the fact. The informer replaces a Connector's
 * object on every change, so the facts are remembered per object (a WeakMap): a scrape of five
 * gauges reads each status once, and a changed Connector is read afresh.
 */
function registerConnectorGauges(registers: Registry[], source: () => Iterable<Connector>): void {
  const remembered = new WeakMap<Connector, ConnectorMetricFacts>();
  function* facts(): Iterable<ConnectorMetricFacts> {
    for (const connector of source()) {
      let f = remembered.get(connector);
      if (!f) {
        f = connectorMetricFacts(connector);
        remembered.set(connector, f);
      }
      yield f;
    }
  }
  const key = (f: ConnectorMetricFacts) => ({ namespace: f.namespace, name: f.name });
  const gauge = (
    name: string,
    help: string,
    labelNames: string[],
    series: (f: ConnectorMetricFacts) => [Record<string, string>, number] | undefined,
  ) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const f of facts()) {
          const one = series(f);
          if (one) this.set(one[0], one[1]);
        }
      },
    });
  gauge(
    'vaultpam_operator_connector_phase',
    'Always 1: one series per Connector, its status phase in the phase label.',
    ['namespace', 'name', 'phase'],
    (f) => (f.phase ? [{ ...key(f), phase: f.phase }, 1] : undefined),
  );
  gauge(
    'vaultpam_operator_connector_stalled',
    'Always 1: one series per Connector whose Stalled condition is True, its reason in the reason label.',
    ['namespace', 'name', 'reason'],
    (f) => (f.stalledReason ? [{ ...key(f), reason: f.stalledReason }, 1] : undefined),
  );
  gauge(
    'vaultpam_operator_connector_ready',
    'Always 1: one series per Connector with a Ready condition, its status (True, False, Unknown) and reason in the status and reason labels (the reason of the condition that blocks it when it is not True, e.g. ControlPlaneUnreachable while the operator cannot reach the control plane and the phase is the last one seen).',
    ['namespace', 'name', 'status', 'reason'],
    (f) => (f.ready ? [{ ...key(f), ...f.ready }, 1] : undefined),
  );
  // minted_for (enrollment, recovery) says whose token it is: both gauges carry it, so their series
  // still pair one to one (expiry - minted is the token's lifetime).
  gauge(
    'vaultpam_operator_connector_token_expiry_timestamp_seconds',
    "Expiry of the live token while its Secret holds it, seconds since the epoch: the enrollment's (minted_for=enrollment) or a guided recovery's one token (minted_for=recovery).",
    ['namespace', 'name', 'minted_for'],
    (f) =>
      f.liveToken ? [{ ...key(f), minted_for: f.liveToken.mintedFor }, f.liveToken.expiresAt] : undefined,
  );
  gauge(
    'vaultpam_operator_connector_token_minted_timestamp_seconds',
    "When the live token (while its Secret holds it) was minted, seconds since the epoch, minted_for as on the expiry gauge; a recovery's token is timed by its Secret's creation (no series for one minted by an operator that did not record it).",
    ['namespace', 'name', 'minted_for'],
    (f) =>
      f.liveToken?.mintedAt !== undefined
        ? [{ ...key(f), minted_for: f.liveToken.mintedFor }, f.liveToken.mintedAt]
        : undefined,
  );
  gauge(
    'vaultpam_operator_connector_certificate_expiry_timestamp_seconds',
    "Expiry (notAfter) of the connector's current client certificate, seconds since the epoch.",
    ['namespace', 'name'],
    (f) => (f.certificateNotAfter !== undefined ? [key(f), f.certificateNotAfter] : undefined),
  );
}
