// Records events.k8s.io/v1 Events about the objects the operator manages.
//
// - Repeats of the same (object, type, reason, action, note) within the series window update one
//   Event's `series.count` instead of creating a new object each time.
// - Writes are rate-limited per object (token bucket), so a flapping connector cannot flood the API
//   server; a repeat dropped by the limiter is still counted into the next series update.
// - record() never throws into the caller: an Event is a courtesy, never a reason to fail a reconcile.
//   Failures are logged and counted.
// - A note that matches a secret pattern (enrollment token, PEM private key) is replaced with a
//   redaction notice and a warning is logged (without the note): a last line of defence.
import { randomBytes } from 'node:crypto';
import {
  EventsV1Api,
  type EventsV1Event,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
} from '@kubernetes/client-node';
import { type Clock, systemClock } from '../../lib/clock.ts';
import { errorMessage } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { evictOldest, PerKeyRateLimiter } from '../../lib/rate-limiter.ts';
import { apiErrorMessage, httpStatusOf } from './api-errors.ts';
import type { OperatorMetrics } from './metrics.ts';
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

export interface EventInput {
  type: EventType;
  /** Why, in UpperCamelCase: `TokenMinted`, `RecoveryStarted`. */
  reason: string;
  /** What the operator did or failed to do: `Mint`, `ScaleDown`. */
  action: string;
  /** Human-readable message. Never put secrets here; the filter is the last defence, not the first. */
  note: string;
}

export interface RateLimit {
  /** Writes an object may get in a burst. Default 10. */
  burst?: number;
  /** One more write is allowed per this many milliseconds. Default 30 s. */
  refillEveryMs?: number;
}

export interface EventRecorderOptions {
  kc: KubeConfig;
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

export class EventRecorder {
  private readonly api: EventsV1Api;
  private readonly logger: Logger;
  private readonly identity: string;
  private readonly metrics: OperatorMetrics | undefined;
  private readonly clock: Clock;
  private readonly limiter: PerKeyRateLimiter;
  private readonly seriesWindowMs: number;
  private readonly maxTracked: number;
  private readonly series = new Map<string, Series>();
  /** One write at a time per series key, so two quick repeats cannot both create an Event. */
  private readonly chains = new Map<string, Promise<void>>();

  constructor(options: EventRecorderOptions) {
    this.api = options.kc.makeApiClient(EventsV1Api);
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
        this.logger.warn(
          {
            kind: subject.kind,
            namespace: subject.namespace,
            name: subject.name,
            reason: event.reason,
            status: httpStatusOf(error),
            err: apiErrorMessage(error),
          },
          'recording an event failed',
        );
      })
      .finally(() => {
        if (this.chains.get(seriesKey) === next) this.chains.delete(seriesKey);
      });
    this.chains.set(seriesKey, next);
    return next;
  }

  private sanitize(subject: EventSubject, input: EventInput): EventInput {
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
      return { type: input.type, reason: 'MessageRedacted', action: 'Redact', note: REDACTED_NOTE };
    }
    return {
      type: input.type,
      reason: input.reason.slice(0, MAX_REASON_LENGTH),
      action: input.action.slice(0, MAX_REASON_LENGTH),
      note: truncateUtf8(input.note, MAX_NOTE_BYTES - 1),
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
    if (!this.limiter.tryTake(subjectKey)) {
      // Still counted, so the next series update that gets through tells the true number.
      if (repeat) existing.count += 1;
      this.metrics?.eventsSuppressed.inc({ reason: 'rate_limited' });
      this.logger.debug(
        { kind: subject.kind, namespace: subject.namespace, name: subject.name, reason: event.reason },
        'event dropped by the per-object rate limit',
      );
      return;
    }
    if (repeat) {
      existing.count += 1;
      existing.lastObservedMs = nowMs;
      this.touch(seriesKey, existing);
      this.metrics?.countWrite('Event', 'patch');
      try {
        await this.api.patchNamespacedEvent(
          {
            namespace: existing.namespace,
            name: existing.eventName,
            body: { series: { count: existing.count, lastObservedTime: new V1MicroTime(nowMs) } },
          },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
        return;
      } catch (error) {
        // The Event expired (the API server keeps them about an hour): start a new one below.
        if (httpStatusOf(error) !== 404) throw error;
        this.series.delete(seriesKey);
      }
    }
    const namespace = subject.namespace;
    // <name>.<16 hex>, the name cut so the whole stays a valid DNS subdomain (at most 253 characters).
    const base = subject.name.slice(0, 253 - 17).replace(/[^a-z0-9]+$/, '') || 'object';
    const eventName = `${base}.${randomBytes(8).toString('hex')}`;
    const body: EventsV1Event = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: eventName, namespace },
      eventTime: new V1MicroTime(nowMs),
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
    await this.api.createNamespacedEvent({ namespace, body });
    this.touch(seriesKey, { eventName, namespace, count: 1, lastObservedMs: nowMs });
  }

  private touch(key: string, series: Series): void {
    this.series.delete(key);
    this.series.set(key, series);
    evictOldest(this.series, this.maxTracked);
  }
}
