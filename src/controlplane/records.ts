// The connector records: held in memory (10,000 records are a few MB) and written through to SQLite.
// The rule that keeps memory and disk equal is stage, commit, swap:
//
// - The live records are read-only (LiveRecord). An operation changes a record only inside commit(),
//   by staging a copy of it (RecordTransaction.update), changing the copy, and writing it in the
//   transaction together with its audit entries, its change-feed row and its token rows.
// - Only once SQLite has committed do the staged copies replace the live records; then the
//   change feed wakes its long-polls, and the after-commit steps (logs, metrics) run.
// - A write that throws rolls the transaction back and discards the copies: the live records are
//   as they were, as on disk, and the caller gets an error that says nothing changed.
//
// The one exception is the time of a routine heartbeat (and a path's free-text detail): it changes
// on every beat, so touch() puts it in memory only, and flushBatch() writes it every few seconds
// (and on close). A WAL commit per beat would put a write on the hottest path for a value nobody waits
// on; losing a few seconds of last-seen times in a crash is harmless because the offline sweep gives
// every connector a fresh grace period after a restart. Each commit that writes a record writes its
// heartbeat time too, so a record is never behind on disk in anything else.
import type { Logger } from 'pino';
import { errorMessage, isCodedError } from '../lib/errors.ts';
import type { AuditType } from './audit.ts';
import type { ChangeBatch, ChangeFeed } from './change-feed.ts';
import { cpError } from './errors.ts';
import type { ConnectorRecord, ConnectorState, LiveRecord, PathHealth } from './state.ts';
import type { Store } from './store.ts';
import { connectorJson } from './views.ts';

/** What one commit has staged: copies to swap in (null: removed), and what runs after it. */
interface Staging {
  records: Map<string, ConnectorRecord | null>;
  changes: ChangeBatch;
  afterCommit: Array<() => void>;
}

/** The writes of one commit. Everything here happens inside its SQLite transaction. */
export class RecordTransaction {
  private readonly store: Store;
  private readonly live: ReadonlyMap<string, LiveRecord>;
  private readonly staging: Staging;
  private readonly log: Logger;

  constructor(store: Store, live: ReadonlyMap<string, LiveRecord>, staging: Staging, log: Logger) {
    this.store = store;
    this.live = live;
    this.staging = staging;
    this.log = log;
  }

  /** The record as this commit sees it: its staged copy, or the live one. */
  current(connectorId: string): LiveRecord | undefined {
    const staged = this.staging.records.get(connectorId);
    return staged === undefined ? this.live.get(connectorId) : (staged ?? undefined);
  }

  /** Writes and publishes a new record. */
  create(record: ConnectorRecord, now: number): LiveRecord {
    if (this.current(record.connectorId)) throw new Error(`connector ${record.connectorId} exists already`);
    return this.write(record, now);
  }

  /**
   * Stages a copy of the record, lets `change` change the copy, then writes and publishes it (one
   * revision, one change-feed row). The live record stays as it is until the commit succeeds.
   */
  update(connectorId: string, now: number, change: (draft: ConnectorRecord) => void): LiveRecord {
    const current = this.current(connectorId);
    if (!current) throw new Error(`connector ${connectorId} has no record to change`);
    const draft = structuredClone(current) as ConnectorRecord;
    change(draft);
    return this.write(draft, now);
  }

  /** Deletes the record and its token rows, and publishes the deletion. */
  remove(connectorId: string, now: number): void {
    this.store.deleteConnector(connectorId);
    this.staging.changes.append(connectorId, 'deleted', now, null);
    this.staging.records.set(connectorId, null);
  }

  /** Moves a staged copy to `state`, audited now and logged once committed; no-op if it is there. */
  moveTo(draft: ConnectorRecord, state: ConnectorState, now: number, reason: string): void {
    if (draft.state === state) return;
    const fields = { connectorId: draft.connectorId, from: draft.state, to: state, reason };
    this.audit('endpoint.state_changed', draft.connectorId, { from: draft.state, to: state, reason }, now);
    this.afterCommit(() => this.log.info(fields, 'connector state changed'));
    draft.state = state;
    draft.stateChangedAt = now;
  }

  audit(type: AuditType, connectorId: string | null, details: Record<string, unknown>, now: number): void {
    this.store.appendAudit(now, type, connectorId, details);
  }

  /** Runs once the commit has succeeded (logs, metrics); never when it rolls back. */
  afterCommit(step: () => void): void {
    this.staging.afterCommit.push(step);
  }

  private write(draft: ConnectorRecord, now: number): LiveRecord {
    draft.revision += 1;
    this.store.putConnector(draft);
    this.staging.changes.append(draft.connectorId, draft.state, now, connectorJson(draft, now));
    this.staging.records.set(draft.connectorId, draft);
    return draft;
  }
}

export class ConnectorRepository {
  private readonly store: Store;
  private readonly feed: ChangeFeed;
  private readonly log: Logger;
  private readonly records = new Map<string, LiveRecord>();
  /** Connectors whose heartbeat time (or path detail) is newer in memory than on disk. */
  private readonly unflushed = new Set<string>();
  private committing = false;

  constructor(store: Store, feed: ChangeFeed, log: Logger) {
    this.store = store;
    this.feed = feed;
    this.log = log;
    for (const record of store.loadConnectors()) this.records.set(record.connectorId, record);
  }

  get(connectorId: string): LiveRecord | undefined {
    return this.records.get(connectorId);
  }

  has(connectorId: string): boolean {
    return this.records.has(connectorId);
  }

  all(): IterableIterator<LiveRecord> {
    return this.records.values();
  }

  countByState(): Map<ConnectorState, number> {
    const counts = new Map<ConnectorState, number>();
    for (const record of this.records.values()) counts.set(record.state, (counts.get(record.state) ?? 0) + 1);
    return counts;
  }

  require(connectorId: string): LiveRecord {
    const record = this.records.get(connectorId);
    if (!record) throw cpError('CONNECTOR_NOT_FOUND', `connector ${connectorId} does not exist`);
    return record;
  }

  /**
   * Runs `write` in one SQLite transaction and swaps the records it staged in only once that has
   * committed. A refusal the operation throws on purpose (a CodedError) passes through; any other
   * failure is reported as a write that was not committed.
   */
  commit<T>(write: (tx: RecordTransaction) => T): T {
    if (this.committing)
      throw new Error('a commit is under way: one operation stages its changes in one commit');
    const staging: Staging = { records: new Map(), changes: this.feed.batch(), afterCommit: [] };
    let result: T;
    this.committing = true;
    try {
      result = this.store.transaction(() =>
        write(new RecordTransaction(this.store, this.records, staging, this.log)),
      );
    } catch (error) {
      if (isCodedError(error)) throw error;
      throw new Error(`write not committed (rolled back, nothing changed): ${errorMessage(error)}`, {
        cause: error,
      });
    } finally {
      this.committing = false;
    }
    for (const [connectorId, record] of staging.records) {
      if (record === null) this.records.delete(connectorId);
      else this.records.set(connectorId, record);
      this.unflushed.delete(connectorId);
    }
    this.feed.committed(staging.changes);
    for (const step of staging.afterCommit) step();
    return result;
  }

  /**
   * A routine heartbeat: the connector was seen now, and (when given) its paths' details changed.
   * Memory only, written by flushBatch(): the documented exception to writing through. The record
   * is replaced, not changed, so a live record object never changes.
   */
  touch(connectorId: string, seenAt: number, paths?: readonly PathHealth[]): void {
    const record = this.records.get(connectorId);
    if (!record) return;
    this.records.set(connectorId, { ...record, lastHeartbeatAt: seenAt, paths: paths ?? record.paths });
    this.unflushed.add(connectorId);
  }

  /**
   * Writes up to `max` batched heartbeat times in one transaction. The periodic flush goes in
   * slices (see server.ts) so that writing 10,000 records never blocks the event loop for long:
   * one slice of 1,000 takes a few milliseconds, the whole set at once 25-40 ms. A failed slice
   * leaves them unflushed, to be written by the next.
   */
  flushBatch(max: number): number {
    const ids: string[] = [];
    for (const id of this.unflushed) {
      if (ids.length >= max) break;
      ids.push(id);
    }
    if (ids.length === 0) return 0;
    this.store.transaction(() => {
      for (const id of ids) {
        const record = this.records.get(id);
        if (record) this.store.putConnector(record);
      }
    });
    for (const id of ids) this.unflushed.delete(id);
    return ids.length;
  }

  pendingFlush(): number {
    return this.unflushed.size;
  }
}
