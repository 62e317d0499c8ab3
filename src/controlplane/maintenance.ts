// Housekeeping that runs on timers (server.ts) and that tests drive: the offline sweep, and writing
// the batched heartbeat times (records.ts explains why they are batched).
import type { ServiceContext } from './service-context.ts';
import { isOverdue } from './state.ts';
import { isoOrNull } from './views.ts';

export class Maintenance {
  private readonly context: ServiceContext;
  /**
   * Every connector gets a fresh grace period from here: the start (after a restart), or the last
   * time the server had to refuse connections (a heartbeat that could not get in is no silence).
   */
  private graceFrom: number;

  constructor(context: ServiceContext) {
    this.context = context;
    this.graceFrom = context.now();
  }

  /** Grants every connector a fresh grace period from now (see graceFrom). */
  grantGrace(): void {
    this.graceFrom = Math.max(this.graceFrom, this.context.now());
  }

  /** Moves overdue connectors to offline, all in one commit; returns how many moved. */
  sweep(): number {
    const { records, options, metrics, log } = this.context;
    const now = this.context.now();
    const offlineAfterMs = options.offlineAfterSeconds * 1000;
    const overdue = [...records.all()].filter((record) =>
      isOverdue(record, now, offlineAfterMs, this.graceFrom),
    );
    if (overdue.length === 0) return 0;
    records.commit((tx) => {
      for (const { connectorId } of overdue) {
        tx.update(connectorId, now, (draft) => tx.moveTo(draft, 'offline', now, 'heartbeat timeout'));
      }
    });
    metrics.heartbeatTimeouts.inc(overdue.length);
    for (const record of overdue) {
      log.warn(
        { connectorId: record.connectorId, lastHeartbeatAt: isoOrNull(record.lastHeartbeatAt) },
        'connector offline: heartbeat timeout',
      );
    }
    return overdue.length;
  }

  /** Writes all batched heartbeat times to disk (on shutdown, and in tests). */
  flush(): number {
    const { records } = this.context;
    let written = 0;
    while (records.pendingFlush() > 0) written += records.flushBatch(Number.POSITIVE_INFINITY);
    return written;
  }
}
