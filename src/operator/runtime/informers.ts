// A typed informer: lists one kind of object (optionally one namespace, label and field selector),
// keeps a read cache, watches for changes and calls add/update/delete handlers.
//
// It is built on the operator's own client (kube-client.ts: paginated lists and watches), not on
// client-node's ListWatch, which has the defects this project exists to avoid: a watch error makes it
// stop for good (it only calls the error callbacks), a handler that throws during a relist becomes an
// unhandled rejection (which ends the process) and during a watch is swallowed by the line parser
// together with the resourceVersion update, a stop() during its reconnect delay still opens a new
// watch, and it has no notion of "synced" or resync. Here every list or watch failure is counted,
// logged and followed by a restart with capped exponential backoff (at least as long as a 429's
// Retry-After asks); handlers that throw or reject are logged and never reach the caller; stop() ends
// everything; `hasSynced()` and a periodic resync are built in.
import type { KubernetesObject } from '@kubernetes/client-node';
import { type BackoffPolicy, backoffDelay, checkBackoffPolicy } from '../../lib/backoff.ts';
import { backgroundClock, type Clock } from '../../lib/clock.ts';
import { CodedError, errorMessage } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { describeApiError, httpStatusOf } from './api-errors.ts';
import { CacheIndex, type IndexFunction } from './cache-index.ts';
import { type KubeAccess, kubeClientOf } from './kube-access.ts';
import type { KubeClient } from './kube-client.ts';
import { KubeApiError } from './kube-errors.ts';
import type { WatchStream } from './kube-watch.ts';
import type { OperatorMetrics } from './metrics.ts';
import { type ResourceType, resourceName, withTypeMeta } from './resources.ts';
import type { StringPool } from './string-pool.ts';

export interface InformerHandlers<T extends KubernetesObject> {
  onAdd?(object: T): void | Promise<void>;
  /** Also called on every resync with the same object as both arguments. */
  onUpdate?(object: T, previous: T): void | Promise<void>;
  /** Gets the last state the informer knew of the object. */
  onDelete?(object: T): void | Promise<void>;
}

export interface RestartBackoff {
  /** Delay before the first restart after a failure; doubles with each further failure. Default 1 s. */
  baseMs?: number;
  /** Upper bound of the delay. Default 30 s. */
  capMs?: number;
}

export interface InformerOptions<T extends KubernetesObject = KubernetesObject> {
  /** The operator's client, or a client-node KubeConfig to build it from (kube-access.ts). */
  kc: KubeAccess;
  type: ResourceType;
  logger: Logger;
  /** Watch one namespace; all namespaces when omitted. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Re-deliver every cached object to onUpdate this often; no resync when omitted or 0. */
  resyncPeriodMs?: number;
  restartBackoff?: RestartBackoff;
  metrics?: OperatorMetrics;
  /** Time and timers for restarts and resyncs; the system clock when omitted. */
  clock?: Clock;
  /** Objects per list page. Default 500. */
  pageSize?: number;
  /** Keeps the cache indexed by this key too, for byIndex (cache-index.ts). */
  index?: IndexFunction<T>;
  /**
   * What of each object the cache keeps, as client-go's SetTransform: applied to every listed and
   * watched object before it is cached and handed to the handlers (after managedFields went).
   */
  transform?: (object: T) => T;
  /**
   * Equal strings of the cached objects kept once (string-pool.ts): every object is handed to it
   * after the transform. One pool shared by the informers of a process shares across kinds too.
   */
  strings?: StringPool;
}

export type InformerState = 'idle' | 'listing' | 'connecting' | 'watching' | 'backing-off' | 'stopped';

export interface InformerStatus {
  /** `connectors.vaultpam.io`, `secrets`, ... */
  resource: string;
  state: InformerState;
  /** True once the first full list has been loaded into the cache; stays true across restarts. */
  synced: boolean;
  /** Restarts after failures since start. */
  restarts: number;
  /** How long the informer has been failing without a successful list or watch in between; 0 when healthy. */
  failingForMs: number;
  /** Message of the last failure, if any. */
  lastError?: string;
}

export const DEFAULT_RESTART_BASE_MS = 1000;
export const DEFAULT_RESTART_CAP_MS = 30_000;
export const DEFAULT_PAGE_SIZE = 500;

interface RawWatchObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  code?: number;
  message?: string;
}

/**
 * An object as the cache keeps it: with its type, without `metadata.managedFields`. Those are the
 * field sets of every writer (the operator's applies, the controllers', the kubelet's status): a
 * third to a half of a StatefulSet, Pod or Connector, read by no one in the operator, and held for
 * every cached object (at 1,000 connectors, tens of MiB of the process). The same transform as
 * controller-runtime's TransformStripManagedFields. Writes never start from a cached object's
 * managedFields: server-side apply sends only the operator's intent.
 */
function cacheable<T extends KubernetesObject>(type: ResourceType, object: T): T {
  const typed = withTypeMeta(type, object);
  if (typed.metadata?.managedFields !== undefined) delete typed.metadata.managedFields;
  return typed;
}

export class Informer<T extends KubernetesObject> {
  readonly resource: string;
  private readonly type: ResourceType;
  private readonly logger: Logger;
  private readonly namespace: string | undefined;
  private readonly labelSelector: string | undefined;
  private readonly fieldSelector: string | undefined;
  private readonly resyncPeriodMs: number;
  private readonly backoff: BackoffPolicy;
  private readonly pageSize: number;
  private readonly metrics: OperatorMetrics | undefined;
  private readonly clock: Clock;
  private readonly kube: KubeClient;
  private readonly handlers: InformerHandlers<T>[] = [];

  /** namespace ('' for cluster-scoped) -> name -> object. */
  private cache = new Map<string, Map<string, T>>();
  private readonly index: CacheIndex<T> | undefined;
  private readonly transform: ((object: T) => T) | undefined;
  private readonly strings: StringPool | undefined;
  /** Where the next watch resumes; undefined means "list first". */
  private resourceVersion: string | undefined;
  private synced = false;
  private syncWaiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  private currentState: InformerState = 'idle';
  /** Bumped on every (re)connect and on stop, so callbacks of an old watch are ignored. */
  private session = 0;
  private abortWatch: (() => void) | undefined;
  private restartTimer: unknown;
  private resyncTimer: unknown;
  private attempts = 0;
  private restartCount = 0;
  private failingSince: number | undefined;
  private lastError: string | undefined;

  constructor(options: InformerOptions<T>) {
    this.type = options.type;
    this.index = options.index ? new CacheIndex(options.index) : undefined;
    this.transform = options.transform;
    this.strings = options.strings;
    this.resource = resourceName(options.type);
    this.logger = options.logger.child({ informer: this.resource });
    this.namespace = options.namespace;
    this.labelSelector = options.labelSelector;
    this.fieldSelector = options.fieldSelector;
    this.resyncPeriodMs = options.resyncPeriodMs ?? 0;
    this.backoff = {
      baseMs: options.restartBackoff?.baseMs ?? DEFAULT_RESTART_BASE_MS,
      capMs: options.restartBackoff?.capMs ?? DEFAULT_RESTART_CAP_MS,
    };
    this.pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    this.metrics = options.metrics;
    this.clock = options.clock ?? backgroundClock;
    checkBackoffPolicy(`informer ${this.resource}: restartBackoff`, this.backoff);
    if (!(this.resyncPeriodMs >= 0)) {
      throw new CodedError(
        'INVALID_ARGUMENT',
        `informer ${this.resource}: resyncPeriodMs must be 0 (off) or a positive number, got ${this.resyncPeriodMs}`,
      );
    }
    this.kube = kubeClientOf(options.kc);
  }

  /** Registers handlers; objects already cached are not replayed (register before start). */
  addHandlers(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
  }

  /** Starts listing and watching in the background. Calling it again while running does nothing. */
  start(): void {
    if (this.currentState !== 'idle' && this.currentState !== 'stopped') return;
    this.currentState = 'listing';
    this.logger.debug(
      { namespace: this.namespace, labelSelector: this.labelSelector, fieldSelector: this.fieldSelector },
      'informer starting',
    );
    this.connectNow();
    this.scheduleResync();
  }

  /** Stops watching; the cache keeps its last content. Waiters for the first sync are rejected. */
  stop(): void {
    if (this.currentState === 'stopped' || this.currentState === 'idle') {
      this.currentState = 'stopped';
      this.rejectSyncWaiters();
      return;
    }
    this.currentState = 'stopped';
    this.session += 1;
    this.clock.clearTimeout(this.restartTimer);
    this.clock.clearTimeout(this.resyncTimer);
    this.restartTimer = undefined;
    this.resyncTimer = undefined;
    this.abortWatch?.();
    this.abortWatch = undefined;
    this.rejectSyncWaiters();
    this.logger.debug('informer stopped');
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list is cached; rejects if the informer stops first or `signal` aborts. */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    if (this.currentState === 'stopped') return Promise.reject(this.stoppedError());
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      this.syncWaiters.push(waiter);
      signal?.addEventListener(
        'abort',
        () => {
          this.syncWaiters = this.syncWaiters.filter((w) => w !== waiter);
          reject(
            new CodedError(
              'INFORMER_SYNC_ABORTED',
              `informer ${this.resource}: gave up waiting for the first list`,
              {
                temporary: true,
                cause: signal.reason,
              },
            ),
          );
        },
        { once: true },
      );
    });
  }

  get(namespace: string, name: string): T | undefined {
    return this.cache.get(namespace)?.get(name);
  }

  /** Cached objects whose index key (InformerOptions.index) is `key`: no scan of the cache. */
  byIndex(key: string): T[] {
    if (this.index === undefined) {
      throw new CodedError('INVALID_ARGUMENT', `informer ${this.resource}: byIndex needs the index option`);
    }
    return this.index.get(key);
  }

  /** Cached objects of one namespace, or of all when `namespace` is omitted. */
  list(namespace?: string): T[] {
    if (namespace !== undefined) return [...(this.cache.get(namespace)?.values() ?? [])];
    return [...this.cache.values()].flatMap((objects) => [...objects.values()]);
  }

  status(): InformerStatus {
    return {
      resource: this.resource,
      state: this.currentState,
      synced: this.synced,
      restarts: this.restartCount,
      failingForMs: this.failingSince === undefined ? 0 : this.clock.now().getTime() - this.failingSince,
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
    };
  }

  private connectNow(): void {
    this.session += 1;
    void this.connect(this.session);
  }

  private async connect(session: number): Promise<void> {
    try {
      if (this.resourceVersion === undefined) {
        this.currentState = 'listing';
        await this.relist(session);
        if (session !== this.session) return;
      }
      this.currentState = 'connecting';
      const connectedAt = this.clock.now().getTime();
      let delivered = false;
      let watch: WatchStream;
      try {
        watch = await this.kube.watch(
          this.type,
          {
            ...(this.namespace !== undefined ? { namespace: this.namespace } : {}),
            ...(this.labelSelector !== undefined ? { labelSelector: this.labelSelector } : {}),
            ...(this.fieldSelector !== undefined ? { fieldSelector: this.fieldSelector } : {}),
            resourceVersion: this.resourceVersion ?? '',
            allowWatchBookmarks: true,
          },
          {
            onEvent: (phase, object) => {
              if (session !== this.session) return;
              delivered = true;
              try {
                this.onWatchEvent(phase, object as RawWatchObject);
              } catch (error) {
                // An object we cannot read must be seen, not swallowed.
                this.logger.error({ phase, err: errorMessage(error) }, 'could not process a watch event');
              }
            },
            onEnd: (error) => {
              if (session !== this.session) return;
              this.abortWatch = undefined;
              this.onWatchEnd(error, delivered, connectedAt);
            },
          },
        );
      } catch (error) {
        // A watch the server refused (410 Gone for a version too old, 403, ...) ends like one that broke.
        if (session === this.session) this.onWatchEnd(error, false, connectedAt);
        return;
      }
      if (session !== this.session) {
        // Stopped, or a new session began while the watch was being opened.
        watch.abort();
        return;
      }
      this.abortWatch = () => watch.abort();
      this.currentState = 'watching';
      this.failingSince = undefined;
    } catch (error) {
      if (session === this.session) this.fail(error);
    }
  }

  /** Lists every page, then reconciles the cache with it, delivering add/update/delete for the differences. */
  private async relist(session: number): Promise<void> {
    const items: T[] = [];
    let continueToken: string | undefined;
    let listVersion = '';
    do {
      const page = await this.kube.list<T>(this.type, {
        ...(this.namespace !== undefined ? { namespace: this.namespace } : {}),
        ...(this.fieldSelector !== undefined ? { fieldSelector: this.fieldSelector } : {}),
        ...(this.labelSelector !== undefined ? { labelSelector: this.labelSelector } : {}),
        limit: this.pageSize,
        ...(continueToken !== undefined ? { continue: continueToken } : {}),
      });
      if (session !== this.session) return;
      for (const item of page.items ?? []) items.push(this.cacheable(item));
      continueToken = page.metadata?.continue || undefined;
      listVersion = page.metadata?.resourceVersion ?? '';
    } while (continueToken !== undefined);

    const previous = this.cache;
    const next = new Map<string, Map<string, T>>();
    for (const item of items) {
      const { namespace, name } = this.keyOf(item);
      let objects = next.get(namespace);
      if (objects === undefined) {
        objects = new Map();
        next.set(namespace, objects);
      }
      objects.set(name, item);
    }
    this.cache = next;
    this.index?.replace(items);
    this.resourceVersion = listVersion;
    for (const item of items) {
      const { namespace, name } = this.keyOf(item);
      const old = previous.get(namespace)?.get(name);
      if (old === undefined) this.deliver('add', item);
      else if (old.metadata?.resourceVersion !== item.metadata?.resourceVersion)
        this.deliver('update', item, old);
    }
    for (const [namespace, objects] of previous) {
      for (const [name, old] of objects) {
        if (next.get(namespace)?.has(name) !== true) this.deliver('delete', old);
      }
    }
    this.failingSince = undefined;
    if (!this.synced) {
      this.synced = true;
      this.logger.info({ objects: items.length }, 'informer synced');
      const waiters = this.syncWaiters;
      this.syncWaiters = [];
      for (const waiter of waiters) waiter.resolve();
    }
  }

  private onWatchEvent(phase: string, raw: RawWatchObject): void {
    if (phase === 'ERROR') {
      // The server reports a failed watch as an ERROR event carrying a Status, then closes the stream.
      if (raw.code === 410) {
        this.logger.debug('watch resourceVersion expired; relisting');
        this.resourceVersion = undefined;
      } else {
        this.lastError = `watch error event: ${raw.message ?? `code ${raw.code}`}`;
      }
      return;
    }
    // Any event proves the stream works, so a later failure starts its backoff from the beginning.
    this.attempts = 0;
    const version = raw.metadata?.resourceVersion;
    if (phase === 'BOOKMARK') {
      if (version) this.resourceVersion = version;
      return;
    }
    const object = this.cacheable(raw as T);
    const { namespace, name } = this.keyOf(object);
    if (phase === 'ADDED' || phase === 'MODIFIED') {
      let objects = this.cache.get(namespace);
      if (objects === undefined) {
        objects = new Map();
        this.cache.set(namespace, objects);
      }
      const old = objects.get(name);
      objects.set(name, object);
      this.index?.set(object, old);
      if (old === undefined) this.deliver('add', object);
      else if (old.metadata?.resourceVersion !== object.metadata?.resourceVersion)
        this.deliver('update', object, old);
    } else if (phase === 'DELETED') {
      const objects = this.cache.get(namespace);
      const old = objects?.get(name);
      objects?.delete(name);
      if (old !== undefined) this.index?.delete(old);
      if (objects?.size === 0) this.cache.delete(namespace);
      this.deliver('delete', old ?? object);
    }
    if (version) this.resourceVersion = version;
  }

  private onWatchEnd(error: unknown, delivered: boolean, connectedAt: number): void {
    const lasted = this.clock.now().getTime() - connectedAt;
    if (lasted >= this.backoff.capMs) this.attempts = 0;
    if (httpStatusOf(error) === 410) {
      this.resourceVersion = undefined;
      this.connectNow();
      return;
    }
    const routine =
      error === null || error === undefined || (error as { name?: unknown }).name === 'TimeoutError';
    if (routine && (delivered || lasted >= this.backoff.baseMs || this.resourceVersion === undefined)) {
      // Watches end by design (server timeouts, client inactivity timeout): resume where we were.
      this.logger.debug({ lastedMs: lasted }, 'watch ended; reconnecting');
      this.connectNow();
      return;
    }
    this.fail(routine ? new Error('the watch ended right after it was opened') : error);
  }

  private fail(error: unknown): void {
    this.attempts += 1;
    this.failingSince ??= this.clock.now().getTime();
    this.lastError = describeApiError(error);
    this.metrics?.informerWatchErrors.inc({ resource: this.resource });
    // A server that said when to come back (429 Retry-After) is not asked sooner.
    const retryInMs = Math.max(
      backoffDelay(this.attempts, this.backoff),
      (error instanceof KubeApiError ? error.retryAfterMs : undefined) ?? 0,
    );
    this.logger.warn(
      { attempt: this.attempts, retryInMs, status: httpStatusOf(error), err: this.lastError },
      'informer list/watch failed; restarting with backoff',
    );
    this.currentState = 'backing-off';
    this.session += 1;
    this.restartTimer = this.clock.setTimeout(() => {
      this.restartTimer = undefined;
      if (this.currentState === 'stopped') return;
      this.restartCount += 1;
      this.metrics?.informerRestarts.inc({ resource: this.resource });
      this.connectNow();
    }, retryInMs);
  }

  private scheduleResync(): void {
    if (this.resyncPeriodMs <= 0) return;
    this.resyncTimer = this.clock.setTimeout(() => {
      this.resyncTimer = undefined;
      if (this.currentState === 'stopped') return;
      if (this.synced) for (const object of this.list()) this.deliver('update', object, object);
      this.scheduleResync();
    }, this.resyncPeriodMs);
  }

  private deliver(event: 'add' | 'update' | 'delete', object: T, previous?: T): void {
    for (const handlers of this.handlers) {
      try {
        let result: void | Promise<void> | undefined;
        if (event === 'add') result = handlers.onAdd?.(object);
        else if (event === 'update') result = handlers.onUpdate?.(object, previous ?? object);
        else result = handlers.onDelete?.(object);
        if (result instanceof Promise)
          result.catch((error: unknown) => this.handlerFailed(event, object, error));
      } catch (error) {
        this.handlerFailed(event, object, error);
      }
    }
  }

  private handlerFailed(event: string, object: T, error: unknown): void {
    // Only the object's coordinates are logged: the object itself may be a Secret.
    this.logger.error(
      { event, namespace: object.metadata?.namespace, name: object.metadata?.name, err: errorMessage(error) },
      'informer event handler failed; the informer carries on',
    );
  }

  private cacheable(object: T): T {
    const stripped = cacheable(this.type, object);
    const kept = this.transform ? withTypeMeta(this.type, this.transform(stripped)) : stripped;
    return this.strings ? this.strings.internAll(kept) : kept;
  }

  private keyOf(object: KubernetesObject): { namespace: string; name: string } {
    return { namespace: object.metadata?.namespace ?? '', name: object.metadata?.name ?? '' };
  }

  private stoppedError(): CodedError {
    return new CodedError(
      'INFORMER_STOPPED',
      `informer ${this.resource} stopped before its first list completed`,
      {
        temporary: true,
      },
    );
  }

  private rejectSyncWaiters(): void {
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    for (const waiter of waiters) waiter.reject(this.stoppedError());
  }
}
