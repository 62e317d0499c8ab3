// The control plane's domain operations, HTTP-free: the routes in http/routes.ts and server.ts call
// this facade, and tests may too. It wires the parts, each with one job, and hands each call to its
// part:
//
//   records.ts         the connector records: stage a copy, commit, then swap it in (the rule that
//                      keeps memory equal to disk, and its one exception: batched heartbeat times)
//   change-feed.ts     change rows, pages from a cursor, long-poll waiters
//   connector-admin.ts create/update, read, list, delete, disown (ownership.ts: who may change one)
//   token-admin.ts     mint and revoke enrollment tokens
//   recovery.ts        begin a guided recovery, and its dry run
//   enrollment.ts      pairing with a token and a CSR, and its refusals
//   agent-session.ts   mTLS: judging a client certificate, heartbeats, renewal
//   connector-certificate.ts  issuing a connector's certificate (enrollment, renewal)
//   maintenance.ts     the offline sweep, writing batched heartbeat times
//   views.ts           the JSON answers
import type { CodedError } from '../lib/errors.ts';
import { AgentSession, type HeartbeatAnswer } from './agent-session.ts';
import { type AuditEntry, auditEntryJson } from './audit.ts';
import { WriteBudget } from './budgets.ts';
import type { CertificateRefusal } from './certificate-refusal.ts';
import { ChangeFeed, type ChangePage } from './change-feed.ts';
import { ConnectorAdmin, type ConnectorPage } from './connector-admin.ts';
import { Enrollment } from './enrollment.ts';
import { Maintenance } from './maintenance.ts';
import type { PeerIdentity } from './pki.ts';
import { ConnectorRepository } from './records.ts';
import { RecoveryAdmin } from './recovery.ts';
import type { ServiceContext, ServiceOptions } from './service-context.ts';
import type { ConnectorState, LiveRecord, PathHealth } from './state.ts';
import type { AuditQuery } from './store.ts';
import { TokenAdmin } from './token-admin.ts';
import type {
  ConnectorConfig,
  ConnectorJson,
  EnrollResult,
  IssuedCertificateJson,
  MintedToken,
  RecoveryCheckJson,
} from './views.ts';

export class ControlPlaneService {
  readonly options: ServiceOptions;
  /** The connector records as held in memory (read-only; tests compare them with the database). */
  readonly records: ConnectorRepository;
  private readonly context: ServiceContext;
  private readonly feed: ChangeFeed;
  private readonly connectors: ConnectorAdmin;
  private readonly tokens: TokenAdmin;
  private readonly recovery: RecoveryAdmin;
  private readonly enrollment: Enrollment;
  private readonly session: AgentSession;
  private readonly maintenance: Maintenance;

  constructor(options: ServiceOptions) {
    const { store, clock, logger, metrics } = options;
    this.options = options;
    this.feed = new ChangeFeed(store, options.changeRetention);
    this.records = new ConnectorRepository(store, this.feed, logger);
    this.context = {
      options,
      store,
      records: this.records,
      budget: new WriteBudget(clock, metrics.budgetExceeded, options.budgets),
      metrics,
      log: logger,
      now: () => clock.now().getTime(),
    };
    this.connectors = new ConnectorAdmin(this.context);
    this.tokens = new TokenAdmin(this.context);
    this.recovery = new RecoveryAdmin(this.context);
    this.enrollment = new Enrollment(this.context);
    this.session = new AgentSession(this.context);
    this.maintenance = new Maintenance(this.context);
  }

  countByState(): Map<ConnectorState, number> {
    return this.records.countByState();
  }

  // -- admin --------------------------------------------------------------------------------------

  getConnector(connectorId: string): ConnectorJson {
    return this.connectors.get(connectorId);
  }

  listConnectors(after: string | undefined, limit: number): ConnectorPage {
    return this.connectors.list(after, limit);
  }

  ensureConnector(
    connectorId: string,
    config: ConnectorConfig,
    owner: { uid?: string; namespace?: string } = {},
  ): { created: boolean; connector: ConnectorJson } {
    return this.connectors.ensure(connectorId, config, owner);
  }

  deleteConnector(connectorId: string, ownerUid?: string): boolean {
    return this.connectors.delete(connectorId, ownerUid);
  }

  disownConnector(connectorId: string, ownerUid: string, handoverNamespace?: string): boolean {
    return this.connectors.disown(connectorId, ownerUid, handoverNamespace);
  }

  mintToken(
    connectorId: string,
    request: { ttlSeconds?: number; idempotencyKey: string },
    ownerUid?: string,
  ): { created: boolean; token: MintedToken } {
    return this.tokens.mint(connectorId, request, ownerUid);
  }

  revokeTokens(connectorId: string, ownerUid?: string): number {
    return this.tokens.revoke(connectorId, ownerUid);
  }

  checkRecovery(connectorId: string, requestId: string, ownerUid?: string): RecoveryCheckJson {
    return this.recovery.check(connectorId, requestId, ownerUid);
  }

  beginRecovery(connectorId: string, requestId: string, ownerUid?: string): ConnectorJson {
    return this.recovery.begin(connectorId, requestId, ownerUid);
  }

  changes(since: number): ChangePage {
    return this.feed.changes(since);
  }

  waitForChanges(since: number, waitMs: number, signal?: AbortSignal): Promise<ChangePage> {
    return this.feed.waitForChanges(since, waitMs, signal);
  }

  queryAudit(query: AuditQuery): AuditEntry[] {
    return this.context.store.queryAudit(query).map(auditEntryJson);
  }

  // -- agent --------------------------------------------------------------------------------------

  enroll(request: { connectorId: string; token: string; csrPem: string }): EnrollResult {
    return this.enrollment.enroll(request);
  }

  authenticatePeer(peer: PeerIdentity): LiveRecord {
    return this.session.authenticatePeer(peer);
  }

  refuseCertificate(refusal: CertificateRefusal): CodedError {
    return this.session.refuseCertificate(refusal);
  }

  heartbeat(peer: PeerIdentity, paths: PathHealth[]): HeartbeatAnswer {
    return this.session.heartbeat(peer, paths);
  }

  renew(peer: PeerIdentity, csrPem: string): IssuedCertificateJson {
    return this.session.renew(peer, csrPem);
  }

  // -- housekeeping -------------------------------------------------------------------------------

  /** Moves overdue connectors to offline; returns how many moved. Driven by a timer and by tests. */
  sweep(): number {
    return this.maintenance.sweep();
  }

  /** Writes all batched heartbeat times to disk (on shutdown, and in tests). */
  flush(): number {
    return this.maintenance.flush();
  }

  /**
   * The server refused a connection for want of room: heartbeats may have been kept out, so every
   * connector gets a fresh grace period from now before the sweep counts it offline.
   */
  graceForRefusedConnections(): void {
    this.maintenance.grantGrace();
  }

  /** Writes up to `max` batched heartbeat times in one transaction (the periodic flush's slice). */
  flushBatch(max: number): number {
    return this.records.flushBatch(max);
  }

  pendingFlush(): number {
    return this.records.pendingFlush();
  }

  /** Ends every pending long-poll (they answer with what they have). */
  releaseWaiters(): void {
    this.feed.releaseWaiters();
  }
}
