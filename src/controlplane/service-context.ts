// What the parts of the control plane's service share: its options, the token ledger and audit log
// (the Store), the connector records (the repository, the only way to change one), the write budgets
// and the clock.
import type { Logger } from 'pino';
import type { Clock } from '../lib/clock.ts';
import type { WriteBudget, WriteBudgets } from './budgets.ts';
import type { ControlPlaneMetrics } from './metrics.ts';
import type { CertificateAuthority } from './pki.ts';
import type { ConnectorRepository } from './records.ts';
import type { Store } from './store.ts';

export interface ServiceOptions {
  store: Store;
  clock: Clock;
  logger: Logger;
  ca: CertificateAuthority;
  tokenKey: Buffer;
  metrics: ControlPlaneMetrics;
  heartbeatIntervalSeconds: number;
  offlineAfterSeconds: number;
  certificateLifetimeSeconds: number;
  sanUriPrefix: string;
  /** How many change-feed entries are kept; older cursors answer 410 CURSOR_EXPIRED. */
  changeRetention?: number;
  /** What callers without an admin credential may make it write (see budgets.ts for the defaults). */
  budgets?: Partial<WriteBudgets>;
}

export interface ServiceContext {
  readonly options: ServiceOptions;
  readonly store: Store;
  readonly records: ConnectorRepository;
  readonly budget: WriteBudget;
  readonly metrics: ControlPlaneMetrics;
  readonly log: Logger;
  /** The injected clock's now, in epoch milliseconds. */
  now(): number;
}
