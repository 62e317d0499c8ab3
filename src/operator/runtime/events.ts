// Records events.k8s.io/v1 Events about the objects the operator manages.
//
// - Repeats of the same (object, type, reason, action, note) within the series window update one
//   Event's `series.count` instead of creating a new object each time.
// - Writes are rate-limited per object (token bucket), so a flapping connector cannot flood the API
//   server; a repeat dropped by the limiter is still counted into the next series update.
// - Events that must never be lost (priority `always`: phase changes and outcomes) bypass the rate
//   limit; other Events beyond the budget are folded into one summary Event, not dropped silently.
// - record() never throws into the caller: an Event is a courtesy, never a reason to fail a reconcile.
//   Failures are logged and counted.
// - A note that matches a secret pattern (enrollment token, PEM private key) is replaced with a
//   redaction notice and a warning is logged (without the note): a last line of defence.
import { randomBytes } from 'node:crypto';
import type { EventsV1Event } from '@kubernetes/client-node';
import { type Clock, systemClock } from '../../lib/clock.ts';
import { errorMessage } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { evictOldest, PerKeyRateLimiter } from '../../lib/rate-limiter.ts';
import { apiErrorMessage, httpStatusOf } from './api-errors.ts';
import { type KubeAccess, kubeClientOf } from './kube-access.ts';
import type { KubeClient } from './kube-client.ts';
import { microTime } from './kube-time.ts';
import type { OperatorMetrics } from './metrics.ts';
import { RESOURCE_TYPES } from './resources.ts';
import { findSecretPattern } from './secret-patterns.ts';

export const REPORTING_CONTROLLER = 'vaultpam.io/connector-operator';
export const REDACTED_NOTE =
  'The operator withheld this event message because it matched a secret pattern (enrollment token or private key); see the operator log.';
/** events.k8s.io/v1 limits: note < 1 kB, reason and action <= 128 characters. */
export const MAX_NOTE_BYTES = 1024;
export const MAX_REASON_LENGTH = 128;

export type EventType = 'Normal' | 'Warning';

/** The object an Event is about. */
export interface EventSubject {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string;
  resourceVersion?: string;
}

/**
 * `always`: the Event is written whatever the per-object rate limit says, and does not use its
 * budget. For what a person must be able to rely on seeing: a phase change and an outcome (a guided
 * recovery succeeded or failed). These happen once per change of state, never in a loop without
 * one, so they cannot flood the API server; dropping one would hide where the connector ended up.
 * Absent: a step, which is rate-limited, and folded into a summary Event beyond the budget.
 */
export type EventPriority = 'always';

export interface EventInput {
  type: EventType;
  /** Why, in UpperCamelCase: `TokenMinted`, `RecoveryStarted`. */
  reason: string;
  /** What the operator did or failed to do: `Mint`, `ScaleDown`. */
  action: string;
  /** Human-readable message. Never put secrets here; the filter is the last defence, not the first. */
  note: string;
  priority?: EventPriority;
}

/** Reason of the summary Event that step Events beyond the rate limit are folded into. */
export const FOLDED_REASON = 'EventsFolded';

export interface RateLimit {
  /** Writes an object may get in a burst. Default 10. */
  burst?: number;
  /** One more write is allowed per this many milliseconds. Default 30 s. */
  refillEveryMs?: number;
}

export interface EventRecorderOptions {
  /** The operator's client, or a client-node KubeConfig to build it from (kube-access.ts). */
  kc: KubeAccess;
  logger: Logger;
  /** reportingInstance: the operator's identity (pod name + suffix). */
  identity: string;
  metrics?: OperatorMetrics;
  clock?: Clock;
  rateLimit?: RateLimit;
  /** A repeat after this long starts a new Event instead of extending the series. Default 30 min. */
  seriesWindowMs?: number;
  /** Series and rate-limit buckets remembered at most (least recently used forgotten). Default 4096. */
  maxTracked?: number;
}

/** Cuts `text` to at most `maxBytes` of UTF-8 without splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  const marker = '...';
  let end = Math.min(text.length, maxBytes);
  while (end > 0 && Buffer.byteLength(text.slice(0, end)) + marker.length > maxBytes) end -= 1;
  // Do not leave half of a surrogate pair.
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}${marker}`;
}

interface Series {
  eventName: string;
  namespace: string;
  count: number;
  lastObservedMs: number;
}

/** Step Events of one object that the rate limit held back since its last summary. */
interface Folded {
  count: number;
  byReason: Map<string, number>;
  last: EventInput;
}

export class EventRecorder {
  private readonly kube: KubeClient;
  private readonly logger: Logger;
  private readonly identity: string;
  private readonly metrics: OperatorMetrics | undefined;
  private readonly clock: Clock;
  private readonly limiter: PerKeyRateLimiter;
  private readonly seriesWindowMs: number;
  private readonly maxTracked: number;
  private readonly series = new Map<string, Series>();
  private readonly folded = new Map<string, Folded>();
  /** One write at a time per series key, so two quick repeats cannot both create an Event. */
  private readonly chains = new Map<string, Promise<void>>();

  constructor(options: EventRecorderOptions) {
    this.kube = kubeClientOf(options.kc);
    this.logger = options.logger;
    this.identity = options.identity;
    this.metrics = options.metrics;
    this.clock = options.clock ?? systemClock;
    this.seriesWindowMs = options.seriesWindowMs ?? 30 * 60 * 1000;
    this.maxTracked = options.maxTracked ?? 4096;
    this.limiter = new PerKeyRateLimiter({
      burst: options.rateLimit?.burst ?? 10,
      refillEveryMs: options.rateLimit?.refillEveryMs ?? 30_000,
      clock: this.clock,
      maxKeys: this.maxTracked,
    });
  }

  /** Records an Event. Always resolves; failures are logged and counted, never thrown. */
  record(subject: EventSubject, input: EventInput): Promise<void> {
    let event: EventInput;
    try {
      event = this.sanitize(subject, input);
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'event not recorded');
      return Promise.resolve();
    }
    const subjectKey = subject.uid || `${subject.kind}/${subject.namespace}/${subject.name}`;
    const seriesKey = `${subjectKey}\u0000${event.type}\u0000${event.reason}\u0000${event.action}\u0000${event.note}`;
    const previous = this.chains.get(seriesKey) ?? Promise.resolve();
    const next = previous
      .then(() => this.write(subject, subjectKey, seriesKey, event))
      .catch((error: unknown) => {
        this.metrics?.eventsSuppressed.inc({ reason: 'failed' });
        const message = apiErrorMessage(error);
        const terminating = refusedByTerminatingNamespace(error);
        this.logger[terminating ? 'debug' : 'warn'](
          {
            kind: subject.kind,
            namespace: subject.namespace,
            name: subject.name,
            reason: event.reason,
            status: httpStatusOf(error),
            err: message,
          },
          terminating ? 'event not recorded: the namespace is being deleted' : 'recording an event failed',
        );
      })
      .finally(() => {
        if (this.chains.get(seriesKey) === next) this.chains.delete(seriesKey);
      });
    this.chains.set(seriesKey, next);
    return next;
  }

  private sanitize(subject: EventSubject, input: EventInput): EventInput {
    const priority = input.priority === undefined ? {} : { priority: input.priority };
    const secret =
      findSecretPattern(input.note) ?? findSecretPattern(input.reason) ?? findSecretPattern(input.action);
    if (secret !== undefined) {
      this.metrics?.eventsSuppressed.inc({ reason: 'redacted' });
      this.logger.warn(
        {
          kind: subject.kind,
          namespace: subject.namespace,
          name: subject.name,
          reason: input.reason,
          pattern: secret,
        },
        'an event message matched a secret pattern; it was replaced with a redaction notice (fix the caller)',
      );
      return {
        type: input.type,
        reason: 'MessageRedacted',
        action: 'Redact',
        note: REDACTED_NOTE,
        ...priority,
      };
    }
    return {
      type: input.type,
      reason: input.reason.slice(0, MAX_REASON_LENGTH),
      action: input.action.slice(0, MAX_REASON_LENGTH),
      note: truncateUtf8(input.note, MAX_NOTE_BYTES - 1),
      ...priority,
    };
  }

  private async write(
    subject: EventSubject,
    subjectKey: string,
    seriesKey: string,
    event: EventInput,
  ): Promise<void> {
    const nowMs = this.clock.now().getTime();
    const existing = this.series.get(seriesKey);
    const repeat = existing !== undefined && nowMs - existing.lastObservedMs < this.seriesWindowMs;
    if (event.priority === 'always') {
      // Never limited. Held-back step Events are published first (they happened before this one),
      // free: an `always` Event is bounded by changes of state, so this is too.
      await this.publishFolded(subject, subjectKey, nowMs);
    } else {
      const allowed = this.limiter.tryTake(subjectKey);
      if (!allowed && repeat) {
        // Still counted, so the next series update that gets through tells the true number.
        existing.count += 1;
      } else if (!allowed || this.folded.has(subjectKey)) {
        // Beyond the budget, or while Events of this object are being folded: into the summary.
        // A token that comes while some are held back publishes the summary, this Event included.
        this.fold(subjectKey, event);
        if (allowed) return this.publishFolded(subject, subjectKey, nowMs);
      }
      if (!allowed) {
        this.metrics?.eventsSuppressed.inc({ reason: 'rate_limited' });
        this.logger.debug(
          { kind: subject.kind, namespace: subject.namespace, name: subject.name, reason: event.reason },
          'event held back by the per-object rate limit',
        );
        return;
      }
    }
    if (repeat) {
      existing.count += 1;
      existing.lastObservedMs = nowMs;
      this.touch(seriesKey, existing);
      this.metrics?.countWrite('Event', 'patch');
      try {
        await this.kube.patch(
          RESOURCE_TYPES.event,
          { namespace: existing.namespace, name: existing.eventName },
          { series: { count: existing.count, lastObservedTime: microTime(nowMs) } },
          { patch: 'merge' },
        );
        return;
      } catch (error) {
        // The Event expired (the API server keeps them about an hour): start a new one below.
        if (httpStatusOf(error) !== 404) throw error;
        this.series.delete(seriesKey);
      }
    }
    const eventName = await this.create(subject, event, nowMs);
    this.touch(seriesKey, { eventName, namespace: subject.namespace, count: 1, lastObservedMs: nowMs });
  }

  /** Counts a step Event the rate limit held back, for the object's next summary Event. */
  private fold(subjectKey: string, event: EventInput): void {
    const folded = this.folded.get(subjectKey) ?? { count: 0, byReason: new Map(), last: event };
    folded.count += 1;
    folded.byReason.set(event.reason, (folded.byReason.get(event.reason) ?? 0) + 1);
    folded.last = event;
    this.folded.delete(subjectKey);
    this.folded.set(subjectKey, folded);
    evictOldest(this.folded, this.maxTracked);
  }

  /**
   * Writes one summary Event of the step Events held back since the last summary (a new Event
   * each time: its note names how many, of which reasons, and the last one in full).
   */
  private async publishFolded(subject: EventSubject, subjectKey: string, nowMs: number): Promise<void> {
    const folded = this.folded.get(subjectKey);
    if (folded === undefined) return;
    this.folded.delete(subjectKey);
    const reasons = [...folded.byReason].map(([reason, count]) => `${reason} x${count}`).join(', ');
    const summary: EventInput = {
      type: 'Normal',
      reason: FOLDED_REASON,
      action: 'RateLimit',
      note: truncateUtf8(
        `${folded.count} event(s) beyond this object's rate limit were folded into this one (${reasons}); the last: ${folded.last.reason}: ${folded.last.note}`,
        MAX_NOTE_BYTES - 1,
      ),
    };
    try {
      await this.create(subject, summary, nowMs);
    } catch (error) {
      this.metrics?.eventsSuppressed.inc({ reason: 'failed' });
      this.logger[refusedByTerminatingNamespace(error) ? 'debug' : 'warn'](
        { kind: subject.kind, namespace: subject.namespace, name: subject.name, err: apiErrorMessage(error) },
        'recording the summary of folded events failed',
      );
    }
  }

  /** Creates a new Event object and returns its name. */
  private async create(subject: EventSubject, event: EventInput, nowMs: number): Promise<string> {
    const namespace = subject.namespace;
    // <name>.<16 hex>, the name cut so the whole stays a valid DNS subdomain (at most 253 characters).
    const base = subject.name.slice(0, 253 - 17).replace(/[^a-z0-9]+$/, '') || 'object';
    const eventName = `${base}.${randomBytes(8).toString('hex')}`;
    // The JSON the API server takes: eventTime is a MicroTime string, where the model type says Date.
    const body: Omit<EventsV1Event, 'eventTime'> & { eventTime: string } = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: eventName, namespace },
      eventTime: microTime(nowMs),
      reportingController: REPORTING_CONTROLLER,
      reportingInstance: this.identity,
      type: event.type,
      reason: event.reason,
      action: event.action,
      note: event.note,
      regarding: {
        apiVersion: subject.apiVersion,
        kind: subject.kind,
        name: subject.name,
        namespace: subject.namespace,
        ...(subject.uid === undefined ? {} : { uid: subject.uid }),
        ...(subject.resourceVersion === undefined ? {} : { resourceVersion: subject.resourceVersion }),
      },
    };
    this.metrics?.countWrite('Event', 'create');
    await this.kube.create(RESOURCE_TYPES.event, body);
    return eventName;
  }

  private touch(key: string, series: Series): void {
    this.series.delete(key);
    this.series.set(key, series);
    evictOldest(this.series, this.maxTracked);
  }
}

/**
 * Kubernetes accepts nothing new in a namespace being deleted, and its Events go with it: expected
 * while Connectors are finalized there, so not a warning.
 */
function refusedByTerminatingNamespace(error: unknown): boolean {
  return httpStatusOf(error) === 403 && /because it is being terminated/.test(apiErrorMessage(error));
}
