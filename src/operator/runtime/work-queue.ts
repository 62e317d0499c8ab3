// A per-object work queue in the manner of client-go's workqueue: keys (`namespace/name`) are
// deduplicated while they wait, at most one reconcile per key runs at a time (an add during a run
// marks the key dirty and it runs again right after), failures back off exponentially per key, and
// `addAfter` keeps the earliest of competing deadlines. One global FIFO (Pepr, @dot-i/k8s-operator)
// lets one slow object hold up every other and lets two reconciles of one object race; this does not.
// Keys due now wait in two lanes: `add(key, 'urgent')` (news from outside Kubernetes that a status
// must show soon: a control-plane record changed) runs before every `normal` key (informer events,
// including the echo of the operator's own writes, resyncs, requeues). In one FIFO a connector whose
// agent had just paired waited behind every other connector's echo passes: at 100 Connectors applied
// at once the queue held 96 keys for 20 s and a record's change took p50 5.6 s to reach the status
// (docs/performance.md, "The queue"). Urgent keys are deduplicated like the others, so the urgent lane
// holds at most one entry per object and cannot grow without bound.
// How many reconciles run at once is a number, or a limit that changes (adaptive-limit.ts: lowered
// when the API server answers 429, raised while it does not): it is read at every dispatch, so a
// lowered limit lets the running reconciles finish and starts fewer, and a raised one starts more at
// once. Nothing running is ever stopped for it.
// Time and timers come from an injected Clock so tests drive the queue without sleeping.
import { type BackoffPolicy, backoffDelay, checkBackoffPolicy } from '../../lib/backoff.ts';
import { backgroundClock, type Clock } from '../../lib/clock.ts';
import { CodedError, errorMessage } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { type ConcurrencyLimit, DEFAULT_MAX_CONCURRENCY } from './adaptive-limit.ts';

/** What a reconcile asks of the queue when it succeeds. */
export interface ReconcileResult {
  /** Look at this key again after this many milliseconds (periodic checks, token expiry, ...). */
  requeueAfterMs?: number;
}

/**
 * Reconciles one key. Resolving means success. Throwing (or rejecting) means failure: an error with
 * `temporary === false` (a CodedError marked permanent) is not retried with backoff, only at the next
 * add or periodic look (`periodicLookMs`); any other error is retried with per-key exponential backoff.
 */
export type ReconcileHandler = (
  key: string,
  // biome-ignore lint/suspicious/noConfusingVoidType: lets `async (key) => { ... }` handlers return nothing
) => Promise<ReconcileResult | undefined | void> | ReconcileResult | undefined | void;

const REPORTED = Symbol('vaultpam.alreadyReported');

/**
 * Marks a permanent failure whose cause the handler reported on an earlier pass (its Event, its
 * log, its status) and that did not change: the queue logs it at debug, not again at error, so one
 * stalled object does not log an error at every look.
 */
export function alreadyReported<E extends Error>(error: E): E {
  Object.defineProperty(error, REPORTED, { value: true });
  return error;
}

const isAlreadyReported = (error: unknown) =>
  typeof error === 'object' && error !== null && (error as { [REPORTED]?: unknown })[REPORTED] === true;

export interface BackoffOptions {
  /** Delay after the first failure; doubles with each further failure. Default 1 s. */
  baseMs?: number;
  /** Upper bound of the delay. Default 5 min. */
  capMs?: number;
}

export interface WorkQueueOptions {
  handler: ReconcileHandler;
  logger: Logger;
  /**
   * Reconciles running at once, across keys: a fixed number, or a limit read at every dispatch (its
   * changes start more reconciles at once when it rises). Default DEFAULT_MAX_CONCURRENCY.
   */
  concurrency?: number | ConcurrencyLimit;
  backoff?: BackoffOptions;
  /**
   * A key whose reconcile failed permanently is not retried with backoff; with this, it is looked at
   * again after the delay it returns (the periodic look its successful passes ask for), as well as
   * at its next add. Omitted: only at its next add.
   */
  periodicLookMs?: () => number;
  clock?: Clock;
}

/** Which lane a key due now waits in (see the header): urgent keys run before normal ones. */
export type QueuePriority = 'urgent' | 'normal';

export interface WorkQueueStats {
  /** Keys due now and waiting for a free slot. */
  depth: number;
  /** Reconciles running. */
  inFlight: number;
  /** Keys waiting for a delay (requeueAfter, addAfter or backoff) to pass. */
  delayed: number;
  /** Keys whose last reconcile failed and that are backing off. */
  failing: number;
}

export interface ShutdownOptions {
  /**
   * true (default): finish running reconciles and the keys already due (including keys that got an
   * event while running); false: finish running reconciles only. Delayed keys are dropped either way.
   */
  drain?: boolean;
}

/** The concurrency without a limit given: the operator's default maximum (adaptive-limit.ts). */
export const DEFAULT_CONCURRENCY = DEFAULT_MAX_CONCURRENCY;
export const DEFAULT_BACKOFF_BASE_MS = 1000;
export const DEFAULT_BACKOFF_CAP_MS = 5 * 60 * 1000;

/** Key of a namespaced object. */
export function objectKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** Splits a `namespace/name` key; throws INVALID_KEY for anything else. */
export function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  if (slash <= 0 || slash === key.length - 1 || key.indexOf('/', slash + 1) !== -1) {
    throw new CodedError('INVALID_KEY', `work queue key "${key}" is not namespace/name`);
  }
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

export class WorkQueue {
  private readonly handler: ReconcileHandler;
  private readonly logger: Logger;
  private readonly concurrency: number | ConcurrencyLimit;
  /** Stops following the limit's changes (at shutdown). */
  private readonly unfollowLimit: () => void;
  private readonly backoff: BackoffPolicy;
  private readonly periodicLookMs: (() => number) | undefined;
  private readonly clock: Clock;

  /**
   * Keys due now, in arrival order, per lane; `queued` mirrors both (with the lane) for O(1) dedupe.
   * Sets keep insertion order, so taking the oldest key and moving a waiting key up to the urgent
   * lane are both O(1): with arrays (`shift`, `splice`) each cost the lane's length, which at
   * 10,000 due keys made every pass pay for the whole queue.
   */
  private readonly urgent = new Set<string>();
  private readonly ready = new Set<string>();
  private readonly queued = new Map<string, QueuePriority>();
  private readonly delayedKeys = new Map<string, { at: number; handle: unknown }>();
  private readonly running = new Set<string>();
  /** Keys added while running: they run again as soon as the current run ends, in this lane. */
  private readonly dirty = new Map<string, QueuePriority>();
  private readonly failures = new Map<string, number>();
  private idleWaiters: Array<() => void> = [];
  private stopping = false;

  constructor(options: WorkQueueOptions) {
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    const backoff = {
      baseMs: options.backoff?.baseMs ?? DEFAULT_BACKOFF_BASE_MS,
      capMs: options.backoff?.capMs ?? DEFAULT_BACKOFF_CAP_MS,
    };
    if (typeof concurrency === 'number' && (!Number.isInteger(concurrency) || concurrency < 1)) {
      throw new CodedError(
        'INVALID_ARGUMENT',
        `work queue concurrency must be a whole number >= 1, got ${concurrency}`,
      );
    }
    checkBackoffPolicy('work queue backoff', backoff);
    this.handler = options.handler;
    this.logger = options.logger;
    this.concurrency = concurrency;
    this.backoff = backoff;
    this.periodicLookMs = options.periodicLookMs;
    this.clock = options.clock ?? backgroundClock;
    // A raised limit has room for more at once now, not only when a running reconcile ends.
    this.unfollowLimit =
      typeof concurrency === 'number' ? () => {} : concurrency.onChange(() => this.pumpUnlessStopped());
  }

  /**
   * Queues `key` to run now, in the normal lane or (`urgent`) ahead of every normal key; a key
   * already waiting in the normal lane moves up. Returns false once shutdown has begun (the add is
   * ignored).
   */
  add(key: string, priority: QueuePriority = 'normal'): boolean {
    if (this.stopping) return false;
    this.enqueue(key, priority);
    return true;
  }

  /**
   * Queues `key` to run after `ms`. Of competing deadlines the earliest wins: a key already due or
   * due sooner is left alone, a later deadline is replaced. Returns false once shutdown has begun.
   */
  addAfter(key: string, ms: number): boolean {
    if (this.stopping) return false;
    this.schedule(key, ms);
    return true;
  }

  /** Drops everything the queue holds for `key` (waiting, delays, dirty mark, failure count). */
  forget(key: string): void {
    this.unqueue(key);
    this.cancelDelay(key);
    this.dirty.delete(key);
    this.failures.delete(key);
  }

  get depth(): number {
    return this.urgent.size + this.ready.size;
  }

  get inFlight(): number {
    return this.running.size;
  }

  get delayed(): number {
    return this.delayedKeys.size;
  }

  /** Consecutive failures of `key` (0 after a success). */
  failureCount(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  stats(): WorkQueueStats {
    return { depth: this.depth, inFlight: this.inFlight, delayed: this.delayed, failing: this.failures.size };
  }

  /** Resolves when nothing is due and nothing runs (delayed keys may still be waiting). */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Reconciles allowed to run at once now (the limit's current value, or the fixed number). */
  get limit(): number {
    return typeof this.concurrency === 'number' ? this.concurrency : this.concurrency.current;
  }

  /** Stops taking adds and resolves when the running (and, with drain, the due) reconciles are done. */
  shutdown(options: ShutdownOptions = {}): Promise<void> {
    this.stopping = true;
    // A limit outlives a queue (one queue per leadership term): this one stops listening to it.
    this.unfollowLimit();
    for (const key of [...this.delayedKeys.keys()]) this.cancelDelay(key);
    if (options.drain === false) {
      this.urgent.clear();
      this.ready.clear();
      this.queued.clear();
      this.dirty.clear();
    }
    const idle = this.whenIdle();
    this.notifyIfIdle();
    return idle;
  }

  private enqueue(key: string, priority: QueuePriority = 'normal'): void {
    // Due now beats any pending delay for the key.
    this.cancelDelay(key);
    if (this.running.has(key)) {
      if (this.dirty.get(key) !== 'urgent') this.dirty.set(key, priority);
      return;
    }
    const waiting = this.queued.get(key);
    if (waiting === 'urgent' || waiting === priority) return;
    // Waiting in the normal lane and now urgent: it moves up.
    if (waiting !== undefined) this.unqueue(key);
    this.push(key, priority);
    this.pump();
  }

  private push(key: string, priority: QueuePriority): void {
    this.queued.set(key, priority);
    (priority === 'urgent' ? this.urgent : this.ready).add(key);
  }

  private unqueue(key: string): void {
    const lane = this.queued.get(key);
    if (lane === undefined) return;
    this.queued.delete(key);
    (lane === 'urgent' ? this.urgent : this.ready).delete(key);
  }

  private schedule(key: string, ms: number): void {
    if (!(ms > 0)) {
      this.enqueue(key);
      return;
    }
    if (this.queued.has(key) || this.dirty.has(key)) return;
    const at = this.clock.now().getTime() + ms;
    const existing = this.delayedKeys.get(key);
    if (existing !== undefined && existing.at <= at) return;
    this.cancelDelay(key);
    const handle = this.clock.setTimeout(() => {
      this.delayedKeys.delete(key);
      if (!this.stopping) this.enqueue(key);
    }, ms);
    this.delayedKeys.set(key, { at, handle });
  }

  private cancelDelay(key: string): void {
    const existing = this.delayedKeys.get(key);
    if (existing === undefined) return;
    this.clock.clearTimeout(existing.handle);
    this.delayedKeys.delete(key);
  }

  private pumpUnlessStopped(): void {
    // After shutdown a drain still finishes the due keys, through run()'s own pump.
    if (!this.stopping) this.pump();
  }

  private pump(): void {
    // The limit is read on every round: one that fell meanwhile starts nothing until enough finished.
    while (this.running.size < this.limit && this.urgent.size + this.ready.size > 0) {
      const lane = this.urgent.size > 0 ? this.urgent : this.ready;
      const key = lane.values().next().value as string;
      lane.delete(key);
      const priority = this.queued.get(key) ?? 'normal';
      this.queued.delete(key);
      if (this.running.has(key)) {
        // Never two runs of one key at once: it runs again when the current run ends.
        if (this.dirty.get(key) !== 'urgent') this.dirty.set(key, priority);
        continue;
      }
      this.running.add(key);
      this.run(key).catch((error: unknown) => {
        // run() handles handler errors itself; reaching here means the queue's own bookkeeping
        // failed, which must be seen but must not take the process down.
        this.logger.error({ object: key, err: errorMessage(error) }, 'work queue bookkeeping failed');
      });
    }
  }

  private async run(key: string): Promise<void> {
    let result: ReconcileResult | undefined;
    let failure: { error: unknown } | undefined;
    try {
      // Through a promise so a handler that throws synchronously is caught the same way.
      result = (await Promise.resolve().then(() => this.handler(key))) as ReconcileResult | undefined;
    } catch (error) {
      failure = { error };
    }
    this.running.delete(key);
    if (failure === undefined) this.succeeded(key, result);
    else this.failed(key, failure.error);
    // A requeue at once (requeueAfterMs 0) may have started the key's next run already: that run
    // began after the event, so it covers it, and a second one beside it must not start.
    const again = this.dirty.get(key);
    this.dirty.delete(key);
    if (again !== undefined && !this.running.has(key)) {
      // An event arrived while running: run again now, in the lane it asked for, even while
      // draining, because it was accepted before shutdown began.
      this.cancelDelay(key);
      const waiting = this.queued.get(key);
      if (waiting !== 'urgent' && waiting !== again) {
        if (waiting !== undefined) this.unqueue(key);
        this.push(key, again);
      }
    }
    this.pump();
    this.notifyIfIdle();
  }

  private succeeded(key: string, result: ReconcileResult | undefined): void {
    this.failures.delete(key);
    const after = result?.requeueAfterMs;
    if (after === undefined || this.stopping) return;
    if (!Number.isFinite(after) || after < 0) {
      this.logger.warn(
        { object: key, requeueAfterMs: after },
        'reconcile asked for an invalid requeue delay; ignored',
      );
      return;
    }
    this.schedule(key, after);
  }

  private failed(key: string, error: unknown): void {
    const code = error instanceof CodedError ? error.code : undefined;
    if ((error as { temporary?: unknown } | null)?.temporary === false) {
      this.failures.delete(key);
      const lookAgainInMs = this.stopping ? undefined : this.periodicLookMs?.();
      this.logger[isAlreadyReported(error) ? 'debug' : 'error'](
        {
          object: key,
          code,
          err: errorMessage(error),
          ...(lookAgainInMs !== undefined ? { lookAgainInMs } : {}),
        },
        lookAgainInMs === undefined
          ? 'reconcile failed permanently; not retried until the object changes'
          : 'reconcile failed permanently; not retried with backoff, looked at again when the object changes or at the periodic look',
      );
      if (lookAgainInMs !== undefined) this.schedule(key, lookAgainInMs);
      return;
    }
    const attempt = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, attempt);
    const retryInMs = backoffDelay(attempt, this.backoff);
    if (this.stopping) {
      this.logger.warn(
        { object: key, code, attempt, err: errorMessage(error) },
        'reconcile failed during shutdown; not retried',
      );
      return;
    }
    this.logger.warn(
      { object: key, code, attempt, retryInMs, err: errorMessage(error) },
      'reconcile failed; retrying with backoff',
    );
    this.schedule(key, retryInMs);
  }

  private isIdle(): boolean {
    return this.running.size === 0 && this.urgent.size === 0 && this.ready.size === 0;
  }

  private notifyIfIdle(): void {
    if (!this.isIdle() || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
