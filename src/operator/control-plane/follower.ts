// Follows one control plane's change stream so the operator never polls thousands of connectors:
// one list (read in pages) and a cursor, then long-polls for changes after that cursor. The cursor is
// the one the list's first page was read at: a record of a later page may be newer than it, and
// following the changes from it brings every record up to date (a change is taken over a record
// only when it is not older, see `keep`).
// A client that reconnects resumes from its cursor and misses nothing; a cursor the control plane
// no longer keeps (410 CURSOR_EXPIRED) means a fresh list. Every change is announced by connector
// id, which the controller turns into a reconcile of the matching Connector within moments.

import { type BackoffPolicy, backoffDelay } from '../../lib/backoff.ts';
import { backgroundClock, type Clock } from '../../lib/clock.ts';
import { asCodedError, CodedError, isCodedError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import type { ControlPlaneAdminClient, Connector as ControlPlaneConnector } from './admin-client.ts';

/**
 * Why the follower reports a record: one record's change; the echo of a change the operator's own
 * call already returned (see `remember`); or all of them at once (see onChange).
 */
export type ChangeCause = 'change' | 'echo' | 'relist';

export interface FollowerOptions {
  /** The client in effect now (the credential may be reloaded between calls). */
  client: () => ControlPlaneAdminClient | undefined;
  logger: Logger;
  /**
   * Called with the connector id of every record that changed (`change`: from the change stream;
   * `echo`: a change whose revision the operator's own admin call had already returned, so no news
   * to it), or that a (re)list delivered or a failure made stale (`relist`: every record at once, no
   * news).
   */
  onChange: (connectorId: string, cause: ChangeCause) => void;
  /** Long-poll wait per request (the control plane caps it at 30 s). */
  waitSeconds?: number;
  clock?: Clock;
  /** Delay after the first failure, doubling up to retryCapMs. Default 1 s. */
  retryBaseMs?: number;
  /** Default 30 s. */
  retryCapMs?: number;
}

export class ControlPlaneFollower {
  private readonly options: FollowerOptions;
  private readonly clock: Clock;
  private readonly backoff: BackoffPolicy;
  private readonly records = new Map<string, ControlPlaneConnector>();
  /**
   * The newest revision of each record that an admin call of the operator returned and the change
   * stream has not yet passed: a change up to it is that call's echo. An entry leaves when the
   * stream reaches its revision, or when the record is forgotten or listed again.
   */
  private readonly ownRevisions = new Map<string, number>();
  /** Admin calls of the operator under way, per record: a change that arrives meanwhile is their echo. */
  private readonly ownCalls = new Map<string, number>();
  private cursor: number | undefined;
  private running = false;
  private failures = 0;
  private lastError: CodedError | undefined;
  private wakeTimer: unknown;
  private wake: (() => void) | undefined;

  constructor(options: FollowerOptions) {
    this.options = options;
    this.clock = options.clock ?? backgroundClock;
    this.backoff = { baseMs: options.retryBaseMs ?? 1_000, capMs: options.retryCapMs ?? 30_000 };
  }

  /** True once a snapshot was listed and the stream is being followed without error. */
  synced(): boolean {
    return this.cursor !== undefined && this.lastError === undefined;
  }

  /** Why following fails right now, if it does. */
  error(): CodedError | undefined {
    return this.lastError;
  }

  get(connectorId: string): ControlPlaneConnector | undefined {
    return this.records.get(connectorId);
  }

  /**
   * Records a fresher copy the operator just got from an admin call (keeps the newest revision). The
   * change stream brings the same revision a moment later: it is reported as an `echo`, since the
   * pass that made the call has the record already.
   */
  remember(record: ControlPlaneConnector): void {
    this.keep(record);
    const own = this.ownRevisions.get(record.connectorId);
    if (own === undefined || own < record.revision)
      this.ownRevisions.set(record.connectorId, record.revision);
  }

  /**
   * Runs admin calls of the operator that change `connectorId`'s record (register, mint, revoke,
   * begin a recovery), with `remember` of what they return: a change the stream brings while they
   * run is theirs (its answer may come after the stream has already carried it), and reported as an
   * `echo`. Another writer's change in that moment is reported as an echo too; it is still reported,
   * so the Connector is still reconciled, only not ahead of the others.
   */
  async own<T>(connectorId: string, calls: () => Promise<T>): Promise<T> {
    this.ownCalls.set(connectorId, (this.ownCalls.get(connectorId) ?? 0) + 1);
    try {
      return await calls();
    } finally {
      const left = (this.ownCalls.get(connectorId) ?? 1) - 1;
      if (left > 0) this.ownCalls.set(connectorId, left);
      else this.ownCalls.delete(connectorId);
    }
  }

  forget(connectorId: string): void {
    this.records.delete(connectorId);
    this.ownRevisions.delete(connectorId);
  }

  private keep(record: ControlPlaneConnector): void {
    const known = this.records.get(record.connectorId);
    // Replaced unless what is kept is known to be newer: a record without a number for its
    // revision (a control plane that does not keep one) is replaced by each change, in stream order,
    // rather than kept until the next full list.
    if (!known || !(known.revision > record.revision)) this.records.set(record.connectorId, record);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.loop();
  }

  stop(): void {
    this.running = false;
    if (this.wakeTimer !== undefined) this.clock.clearTimeout(this.wakeTimer);
    this.wake?.();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const client = this.options.client();
      try {
        if (!client)
          throw new CodedError(
            'CONTROL_PLANE_CREDENTIAL_MISSING',
            'no control-plane credential is available yet',
            { temporary: true },
          );
        if (this.cursor === undefined) await this.list(client);
        else await this.follow(client, this.cursor);
        if (this.lastError) this.options.logger.info('following the control plane again');
        this.failures = 0;
        this.lastError = undefined;
      } catch (error) {
        if (!this.running) return;
        if (isCodedError(error, 'CURSOR_EXPIRED')) {
          this.options.logger.info({ cursor: this.cursor }, 'change cursor expired; listing again');
          this.cursor = undefined;
          continue;
        }
        this.failures += 1;
        const coded = asCodedError(error, 'CONTROL_PLANE_UNREACHABLE');
        if (!this.lastError)
          this.options.logger.warn(
            { code: coded.code, err: coded.message },
            'cannot follow the control plane; retrying',
          );
        this.lastError = coded;
        // Reconciles fall back to direct reads; tell them the view is stale.
        for (const id of this.records.keys()) this.options.onChange(id, 'relist');
        await this.sleep(backoffDelay(this.failures, this.backoff));
      }
    }
  }

  private async list(client: ControlPlaneAdminClient): Promise<void> {
    const snapshot = await client.listConnectors();
    const seen = new Set<string>();
    // A fresh list reports every record anyway; no change before its cursor will be seen again (one
    // after it may come again, for a record a later page already had: reported, and taken over it
    // only when not older).
    this.ownRevisions.clear();
    for (const record of snapshot.connectors) {
      seen.add(record.connectorId);
      this.records.set(record.connectorId, record);
      this.options.onChange(record.connectorId, 'relist');
    }
    for (const id of [...this.records.keys()]) {
      if (!seen.has(id)) {
        this.records.delete(id);
        this.options.onChange(id, 'relist');
      }
    }
    this.cursor = snapshot.cursor;
  }

  private async follow(client: ControlPlaneAdminClient, since: number): Promise<void> {
    const page = await client.changes(since, this.options.waitSeconds ?? 25);
    for (const change of page.changes) {
      const own = this.ownRevisions.get(change.connectorId);
      const echo =
        change.connector !== null &&
        (this.ownCalls.has(change.connectorId) || (own !== undefined && change.connector.revision <= own));
      if (own !== undefined && (change.connector === null || change.connector.revision >= own))
        this.ownRevisions.delete(change.connectorId);
      if (change.connector) this.keep(change.connector);
      else this.records.delete(change.connectorId);
      this.options.onChange(change.connectorId, echo ? 'echo' : 'change');
    }
    this.cursor = page.cursor;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.wakeTimer = this.clock.setTimeout(() => {
        this.wakeTimer = undefined;
        resolve();
      }, ms);
    });
  }
}
