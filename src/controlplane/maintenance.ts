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

  /** When the connections refused lately began being refused (see grantGrace). */
  private refusalsSince = Number.NEGATIVE_INFINITY;
  private lastRefusalAt = Number.NEGATIVE_INFINITY;

  /**
   * Connections were refused: every connector gets a fresh grace period, from when the refusals
   * began, not from each one. A flood that lasts longer than --offline-after still ends in offline
   * (the connectors' heartbeats did not arrive), and one that comes and goes cannot hold a connector
   * that really went silent online for more than one window after each of its waves: refusals that
   * come within --offline-after of each other are one wave.
   */
  grantGrace(): void {
    const now = this.context.now();
    const offlineAfterMs = this.context.options.offlineAfterSeconds * 1000;
    if (now - this.lastRefusalAt >= offlineAfterMs) this.refusalsSince = now;
    this.lastRefusalAt = now;
    this.graceFrom = Math.max(this.graceFrom, this.refusalsSince);
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
