// The change feed: every published change is a row with a cursor (SQLite AUTOINCREMENT, never
// reused), written in the transaction of the change it describes. Followers read pages from a cursor
// (bounded in rows and in bytes, pages.ts) and long-poll for the next change; the newest `retention`
// rows are kept, and an older cursor answers 410 CURSOR_EXPIRED (the follower resyncs from the
// connector list).
//
// Rows are appended through a ChangeBatch that belongs to one commit of the record repository
// (records.ts); the feed counts them and wakes its long-polls only once that commit has succeeded, so
// a write that rolls back wakes nobody.
import { cpError } from './errors.ts';
import { takePage } from './pages.ts';
import type { ChangeRow, Store } from './store.ts';
import { type ChangeJson, type ConnectorJson, changeJson } from './views.ts';

const DEFAULT_RETENTION = 100_000;

export interface ChangePage {
  changes: ChangeJson[];
  cursor: number;
}

/** The change rows of one commit: written inside its transaction, announced after it. */
export class ChangeBatch {
  private readonly store: Store;
  private readonly retention: number;
  private readonly pruneEvery: number;
  /** Rows appended since the feed was last pruned, this batch's included. */
  sincePrune: number;
  appended = 0;

  constructor(store: Store, retention: number, sincePrune: number) {
    this.store = store;
    this.retention = retention;
    // Pruning costs a DELETE, so it runs every so many rows rather than on each.
    this.pruneEvery = Math.max(1, Math.min(1000, retention));
    this.sincePrune = sincePrune;
  }

  append(connectorId: string, state: ChangeRow['state'], at: number, connector: ConnectorJson | null): void {
    this.store.appendChange(connectorId, state, at, connector);
    this.appended += 1;
    this.sincePrune += 1;
    if (this.sincePrune >= this.pruneEvery) {
      this.sincePrune = 0;
      this.store.pruneChanges(this.retention);
    }
  }
}

export class ChangeFeed {
  private readonly store: Store;
  private readonly retention: number;
  private sincePrune = 0;
  private readonly waiters = new Set<() => void>();

  constructor(store: Store, retention = DEFAULT_RETENTION) {
    this.store = store;
    this.retention = retention;
  }

  /** The rows of a commit about to begin. */
  batch(): ChangeBatch {
    return new ChangeBatch(this.store, this.retention, this.sincePrune);
  }

  /** The batch's commit succeeded: its rows count, and long-polls wake to read them. */
  committed(batch: ChangeBatch): void {
    this.sincePrune = batch.sincePrune;
    if (batch.appended > 0) this.wakeWaiters();
  }

  /**
   * A page of the changes after `since` (at least one when there is any), and the cursor of its last
   * one: the next page starts right after it, so a page cut short by its size skips nothing.
   * 410 CURSOR_EXPIRED when they were pruned.
   */
  changes(since: number): ChangePage {
    const latest = this.store.latestCursor();
    const oldest = this.store.oldestCursor() ?? latest + 1;
    if (since > latest || since < oldest - 1) {
      throw cpError(
        'CURSOR_EXPIRED',
        'the cursor is older than the kept changes; resync with GET /v1/connectors',
        {
          oldestCursor: oldest - 1,
        },
      );
    }
    const page = takePage(this.store.changesSince(since), changeJson);
    return { changes: page.items, cursor: page.items.at(-1)?.cursor ?? since };
  }

  /** Answers at once when something is newer than `since`, else waits up to waitMs for a change. */
  async waitForChanges(since: number, waitMs: number, signal?: AbortSignal): Promise<ChangePage> {
    const first = this.changes(since);
    if (first.changes.length > 0 || waitMs <= 0) return first;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      this.waiters.add(done);
      signal?.addEventListener('abort', done);
    });
    return this.changes(since);
  }

  /** Ends every pending long-poll (they answer with what they have): on shutdown. */
  releaseWaiters(): void {
    this.wakeWaiters();
  }

  private wakeWaiters(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}
