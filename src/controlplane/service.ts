// The control plane's domain operations: connectors, tokens, enrollment, heartbeats, renewal,
// recovery, the offline sweep and the change feed. HTTP-free: the routes in http/routes.ts call
// these methods, and tests may call them directly.
//
// Every connector record is held in memory (10,000 records are a few MB) and written through to
// SQLite whenever it changes in a way a client can observe: state, path health, certificate, token,
// recovery, configuration. Those writes commit before the answer is sent, in the same transaction
// as their audit entry and change-feed row. The one exception is the time of a routine heartbeat
// (and a path's free-text detail): it changes on every beat, so it is kept in memory and written in
// batches by flush() (every few seconds, and on close). Writing it per beat would cost a WAL commit
// per heartbeat; batching keeps the heartbeat path at a map lookup, and losing a few seconds of
// last-seen times in a crash is harmless because the offline sweep gives every connector a fresh
// grace period after a restart.
import type { Logger } from 'pino';
import type { Clock } from '../lib/clock.ts';
import type { CodedError } from '../lib/errors.ts';
import { isCodedError } from '../lib/errors.ts';
import { type AuditEntry, type AuditType, auditEntryJson } from './audit.ts';
import { WriteBudget, type WriteBudgets } from './budgets.ts';
import {
  type CertificateRefusal,
  outsideValidity,
  type PresentedCertificate,
  revokedCertificate,
  supersededCertificate,
  unknownCertificate,
} from './certificate-refusal.ts';
import { cpError, type ErrorCode } from './errors.ts';
import type { ControlPlaneMetrics, EnrollmentFailureReason } from './metrics.ts';
import { type CertificateAuthority, issueConnectorCertificate, type PeerIdentity } from './pki.ts';
import {
  type CertificateVerdict,
  type ConnectorRecord,
  type ConnectorState,
  type HeartbeatOutcome,
  isBootstrapClosed,
  isOverdue,
  judgeCertificate,
  onHeartbeat,
  type PathHealth,
  recoveryDecision,
  rememberRevoked,
  renewAfter,
} from './state.ts';
import type { AuditQuery, ChangeRow, Store, TokenRow } from './store.ts';
import {
  deriveToken,
  hashToken,
  MAX_TOKEN_TTL_SECONDS,
  newTokenId,
  parseTokenId,
  tokenMatchesHash,
} from './tokens.ts';

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

export interface ConnectorConfig {
  org: string;
  endpointId: string;
  allowedNetworks: string[];
}

export interface ConnectorJson {
  connectorId: string;
  org: string;
  endpointId: string;
  allowedNetworks: string[];
  state: ConnectorState;
  bootstrapRetired: boolean;
  lastHeartbeatAt: string | null;
  stateChangedAt: string;
  enrolledAt: string | null;
  paths: PathHealth[];
  certificate: { serial: string; notBefore: string; notAfter: string; fingerprintSha256: string } | null;
  liveToken: { tokenId: string; expiresAt: string } | null;
  recovery: { requestId: string; startedAt: string; completedAt: string | null } | null;
  lastEnrollmentFailure: { code: string; at: string } | null;
  /** The UID of the Kubernetes Connector that owns the record; null when nobody does. */
  ownerUid: string | null;
  revision: number;
}

/** The answer to a dry run of beginRecovery: it would begin (or has begun, by this requestId). */
export interface RecoveryCheckJson {
  dryRun: true;
  allowed: true;
  requestId: string;
  state: ConnectorState;
  /** A recovery of this requestId has begun already; beginning it again changes nothing. */
  sameRequest: boolean;
}

export interface ChangeJson {
  cursor: number;
  connectorId: string;
  state: string;
  at: string;
  connector: ConnectorJson | null;
}

export interface MintedToken {
  tokenId: string;
  token: string;
  expiresAt: string;
}

export interface EnrollResult {
  certificatePem: string;
  caPem: string;
  serial: string;
  notAfter: string;
  heartbeatIntervalSeconds: number;
}

const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

const CHANGE_PAGE = 1000;

export class ControlPlaneService {
  readonly options: ServiceOptions;
  private readonly store: Store;
  private readonly connectors = new Map<string, ConnectorRecord>();
  /** Connectors whose last-heartbeat time (or path detail) is newer in memory than on disk. */
  private readonly dirty = new Set<string>();
  private readonly waiters = new Set<() => void>();
  private readonly startedAt: number;
  private changesSincePrune = 0;
  private readonly budget: WriteBudget;

  constructor(options: ServiceOptions) {
    this.options = options;
    this.store = options.store;
    this.budget = new WriteBudget(options.clock, options.metrics.budgetExceeded, options.budgets);
    for (const record of this.store.loadConnectors()) this.connectors.set(record.connectorId, record);
    this.startedAt = this.now();
  }

  private now(): number {
    return this.options.clock.now().getTime();
  }

  private get log(): Logger {
    return this.options.logger;
  }

  // -- views ------------------------------------------------------------------------------------

  connectorJson(record: ConnectorRecord, now = this.now()): ConnectorJson {
    const certificate = record.certificate;
    return {
      connectorId: record.connectorId,
      org: record.org,
      endpointId: record.endpointId,
      allowedNetworks: [...record.allowedNetworks],
      state: record.state,
      bootstrapRetired: record.bootstrapRetired,
      lastHeartbeatAt: isoOrNull(record.lastHeartbeatAt),
      stateChangedAt: iso(record.stateChangedAt),
      enrolledAt: isoOrNull(record.enrolledAt),
      paths: record.paths.map((path) => ({ ...path })),
      certificate: certificate
        ? {
            serial: certificate.serial,
            notBefore: iso(certificate.notBefore),
            notAfter: iso(certificate.notAfter),
            fingerprintSha256: certificate.fingerprintSha256,
          }
        : null,
      liveToken:
        record.liveToken && record.liveToken.expiresAt > now
          ? { tokenId: record.liveToken.tokenId, expiresAt: iso(record.liveToken.expiresAt) }
          : null,
      recovery: record.recovery
        ? {
            requestId: record.recovery.requestId,
            startedAt: iso(record.recovery.startedAt),
            completedAt: isoOrNull(record.recovery.completedAt),
          }
        : null,
      lastEnrollmentFailure: record.lastEnrollmentFailure
        ? { code: record.lastEnrollmentFailure.code, at: iso(record.lastEnrollmentFailure.at) }
        : null,
      ownerUid: record.ownerUid,
      revision: record.revision,
    };
  }

  countByState(): Map<ConnectorState, number> {
    const counts = new Map<ConnectorState, number>();
    for (const record of this.connectors.values())
      counts.set(record.state, (counts.get(record.state) ?? 0) + 1);
    return counts;
  }

  // -- write helpers (call inside store.transaction) ---------------------------------------------

  private audit(
    type: AuditType,
    connectorId: string | null,
    details: Record<string, unknown>,
    now: number,
  ): void {
    this.store.appendAudit(now, type, connectorId, details);
  }

  private setState(record: ConnectorRecord, state: ConnectorState, now: number, reason: string): void {
    if (record.state === state) return;
    this.audit('endpoint.state_changed', record.connectorId, { from: record.state, to: state, reason }, now);
    this.log.info(
      { connectorId: record.connectorId, from: record.state, to: state, reason },
      'connector state changed',
    );
    record.state = state;
    record.stateChangedAt = now;
  }

  /** Persists the record and publishes it on the change feed. */
  private publish(record: ConnectorRecord, now: number): void {
    record.revision += 1;
    this.store.putConnector(record);
    this.dirty.delete(record.connectorId);
    this.appendChange(record.connectorId, record.state, now, this.connectorJson(record, now));
  }

  private appendChange(
    connectorId: string,
    state: string,
    now: number,
    connector: ConnectorJson | null,
  ): void {
    this.store.appendChange(connectorId, state, now, connector);
    this.changesSincePrune += 1;
    const retention = this.options.changeRetention ?? 100_000;
    if (this.changesSincePrune >= Math.max(1, Math.min(1000, retention))) {
      this.changesSincePrune = 0;
      this.store.pruneChanges(retention);
    }
    // Wake long-pollers after the surrounding transaction has committed.
    if (this.waiters.size > 0) queueMicrotask(() => this.wakeWaiters());
  }

  private wakeWaiters(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private revokeLiveTokens(record: ConnectorRecord, now: number, reason: string, except?: string): number {
    let revoked = 0;
    for (const token of this.store.liveTokens(record.connectorId)) {
      if (token.tokenId === except) continue;
      if (this.store.finishToken(token.tokenId, 'revoked', now)) {
        revoked += 1;
        this.audit('token.revoked', record.connectorId, { tokenId: token.tokenId, reason }, now);
      }
    }
    if (record.liveToken && record.liveToken.tokenId !== except) record.liveToken = null;
    return revoked;
  }

  // -- admin: connectors -------------------------------------------------------------------------

  requireConnector(connectorId: string): ConnectorRecord {
    const record = this.connectors.get(connectorId);
    if (!record) throw cpError('CONNECTOR_NOT_FOUND', `connector ${connectorId} does not exist`);
    return record;
  }

  /**
   * One record, one owning Connector: a caller that names its owner UID may change only a record
   * that it owns or that nobody owns. The answer does not say who the owner is.
   */
  private checkOwner(record: ConnectorRecord, ownerUid: string | undefined): void {
    if (ownerUid === undefined || record.ownerUid === null || record.ownerUid === ownerUid) return;
    throw cpError(
      'CONNECTOR_ID_CONFLICT',
      `the connector id ${record.connectorId} is owned by another Connector; give this one another connector id`,
      { connectorId: record.connectorId },
    );
  }

  /** The record, when the caller (naming its owner UID, or not) may change it. */
  private requireOwned(connectorId: string, ownerUid: string | undefined): ConnectorRecord {
    const record = this.requireConnector(connectorId);
    this.checkOwner(record, ownerUid);
    return record;
  }

  getConnector(connectorId: string): ConnectorJson {
    return this.connectorJson(this.requireConnector(connectorId));
  }

  listConnectors(): { connectors: ConnectorJson[]; cursor: number } {
    const now = this.now();
    const connectors = [...this.connectors.values()]
      .sort((a, b) => (a.connectorId < b.connectorId ? -1 : 1))
      .map((record) => this.connectorJson(record, now));
    return { connectors, cursor: this.store.latestCursor() };
  }

  /**
   * Creates the record (owned by `ownerUid`, when given) or brings its configuration up to date. A
   * record nobody owns is claimed by the first caller that names an owner; one owned by another
   * Connector answers 409 CONNECTOR_ID_CONFLICT and changes nothing.
   */
  ensureConnector(
    connectorId: string,
    config: ConnectorConfig,
    ownerUid?: string,
  ): { created: boolean; connector: ConnectorJson } {
    const now = this.now();
    const existing = this.connectors.get(connectorId);
    if (existing) {
      this.checkOwner(existing, ownerUid);
      const claim = ownerUid !== undefined && existing.ownerUid === null;
      const same =
        existing.org === config.org &&
        existing.endpointId === config.endpointId &&
        JSON.stringify(existing.allowedNetworks) === JSON.stringify(config.allowedNetworks);
      if (!same || claim) {
        this.store.transaction(() => {
          if (claim) {
            existing.ownerUid = ownerUid;
            this.audit('connector.claimed', connectorId, { ownerUid }, now);
          }
          if (!same) {
            const before = {
              org: existing.org,
              endpointId: existing.endpointId,
              allowedNetworks: existing.allowedNetworks,
            };
            existing.org = config.org;
            existing.endpointId = config.endpointId;
            existing.allowedNetworks = [...config.allowedNetworks];
            this.audit('connector.updated', connectorId, { before, after: config }, now);
          }
          this.publish(existing, now);
        });
        if (claim) this.log.info({ connectorId, ownerUid }, 'connector claimed');
      }
      return { created: false, connector: this.connectorJson(existing, now) };
    }
    const record: ConnectorRecord = {
      connectorId,
      org: config.org,
      endpointId: config.endpointId,
      allowedNetworks: [...config.allowedNetworks],
      state: 'pending',
      bootstrapRetired: false,
      lastHeartbeatAt: null,
      stateChangedAt: now,
      enrolledAt: null,
      paths: [],
      certificate: null,
      revokedCertificates: [],
      liveToken: null,
      recovery: null,
      lastEnrollmentFailure: null,
      ownerUid: ownerUid ?? null,
      revision: 0,
      createdAt: now,
    };
    this.store.transaction(() => {
      this.audit('connector.created', connectorId, { ...config, ownerUid: record.ownerUid }, now);
      this.publish(record, now);
    });
    this.connectors.set(connectorId, record);
    this.log.info({ connectorId }, 'connector created');
    return { created: true, connector: this.connectorJson(record, now) };
  }

  /** Removes the record, its tokens and (by forgetting its serial) its certificate. Idempotent. */
  deleteConnector(connectorId: string, ownerUid?: string): boolean {
    const record = this.connectors.get(connectorId);
    if (!record) return false;
    this.checkOwner(record, ownerUid);
    const now = this.now();
    this.store.transaction(() => {
      this.revokeLiveTokens(record, now, 'connector deleted');
      this.store.deleteConnector(connectorId);
      this.audit(
        'connector.deleted',
        connectorId,
        { state: record.state, certificateSerial: record.certificate?.serial ?? null },
        now,
      );
      this.appendChange(connectorId, 'deleted', now, null);
    });
    this.connectors.delete(connectorId);
    this.dirty.delete(connectorId);
    this.log.info({ connectorId }, 'connector deleted');
    return true;
  }

  /**
   * Leaves the record without an owner, identity and certificate intact, so that a new Connector
   * with the same id can claim it (a Connector deleted with deletionPolicy Retain). False when
   * nobody owned it (nothing changes); 409 CONNECTOR_ID_CONFLICT when another Connector does.
   */
  disownConnector(connectorId: string, ownerUid: string): boolean {
    const record = this.requireConnector(connectorId);
    if (record.ownerUid === null) return false;
    this.checkOwner(record, ownerUid);
    const now = this.now();
    this.store.transaction(() => {
      record.ownerUid = null;
      this.audit('connector.disowned', connectorId, { ownerUid }, now);
      this.publish(record, now);
    });
    this.log.info({ connectorId, ownerUid }, 'connector disowned');
    return true;
  }

  // -- admin: tokens -----------------------------------------------------------------------------

  mintToken(
    connectorId: string,
    request: { ttlSeconds?: number; idempotencyKey: string },
    ownerUid?: string,
  ): { created: boolean; token: MintedToken } {
    const record = this.requireOwned(connectorId, ownerUid);
    const ttlSeconds = request.ttlSeconds ?? MAX_TOKEN_TTL_SECONDS;
    if (ttlSeconds > MAX_TOKEN_TTL_SECONDS) {
      throw cpError('TTL_TOO_LONG', `ttlSeconds must be at most ${MAX_TOKEN_TTL_SECONDS} (4 h)`, {
        field: 'ttlSeconds',
      });
    }
    const now = this.now();
    const { tokenKey } = this.options;
    const existing = this.store.tokenByIdempotencyKey(connectorId, request.idempotencyKey);
    if (existing) {
      if (existing.status === 'live' && existing.expiresAt > now) {
        const token = deriveToken(tokenKey, connectorId, existing.idempotencyKey, existing.tokenId);
        return {
          created: false,
          token: { tokenId: existing.tokenId, token, expiresAt: iso(existing.expiresAt) },
        };
      }
      throw cpError(
        'IDEMPOTENCY_KEY_CONSUMED',
        `the token minted with this idempotency key is ${existing.status === 'live' ? 'expired' : existing.status}; use a new key`,
        { tokenId: existing.tokenId },
      );
    }
    if (isBootstrapClosed(record)) {
      throw cpError('RECOVERY_REQUIRED', 'the connector is retired from bootstrap; begin a recovery first');
    }
    const tokenId = newTokenId();
    const token = deriveToken(tokenKey, connectorId, request.idempotencyKey, tokenId);
    const expiresAt = now + ttlSeconds * 1000;
    this.store.transaction(() => {
      this.revokeLiveTokens(record, now, 'superseded by a new token');
      this.store.insertToken({
        tokenId,
        connectorId,
        idempotencyKey: request.idempotencyKey,
        tokenHash: hashToken(token),
        createdAt: now,
        expiresAt,
        status: 'live',
        finishedAt: null,
      });
      record.liveToken = { tokenId, expiresAt };
      this.audit(
        'token.minted',
        connectorId,
        { tokenId, expiresAt: iso(expiresAt), idempotencyKey: request.idempotencyKey },
        now,
      );
      this.publish(record, now);
    });
    this.options.metrics.tokensMinted.inc();
    this.log.info({ connectorId, tokenId, expiresAt: iso(expiresAt) }, 'enrollment token minted');
    return { created: true, token: { tokenId, token, expiresAt: iso(expiresAt) } };
  }

  revokeTokens(connectorId: string, ownerUid?: string): number {
    const record = this.requireOwned(connectorId, ownerUid);
    const now = this.now();
    return this.store.transaction(() => {
      const revoked = this.revokeLiveTokens(record, now, 'revoked by the operator');
      if (revoked > 0) this.publish(record, now);
      return revoked;
    });
  }

  // -- admin: recovery ---------------------------------------------------------------------------

  /**
   * Whether a recovery by `requestId` may begin: 'begin', 'same_request' (begun already, idempotent),
   * or 409 RECOVERY_NOT_NEEDED. beginRecovery and its dry run (checkRecovery) answer alike because
   * both ask here.
   */
  private recoveryAllowed(record: ConnectorRecord, requestId: string): 'begin' | 'same_request' {
    const decision = recoveryDecision(record, requestId);
    if (decision === 'not_needed') {
      throw cpError(
        'RECOVERY_NOT_NEEDED',
        `a connector in state ${record.state} needs no recovery${record.bootstrapRetired ? '' : '; mint a token instead'}`,
        { state: record.state },
      );
    }
    return decision;
  }

  /**
   * The dry run of beginRecovery (`?dryRun=true`): the same ownership check and the same refusals,
   * and nothing written (no state, revision, token, audit entry or change). The operator asks it
   * before it scales a connector down, so a recovery that would be refused never stops a workload.
   */
  checkRecovery(connectorId: string, requestId: string, ownerUid?: string): RecoveryCheckJson {
    const record = this.requireOwned(connectorId, ownerUid);
    const decision = this.recoveryAllowed(record, requestId);
    return {
      dryRun: true,
      allowed: true,
      requestId,
      state: record.state,
      sameRequest: decision === 'same_request',
    };
  }

  beginRecovery(connectorId: string, requestId: string, ownerUid?: string): ConnectorJson {
    const record = this.requireOwned(connectorId, ownerUid);
    if (this.recoveryAllowed(record, requestId) === 'same_request') return this.connectorJson(record);
    const now = this.now();
    this.store.transaction(() => {
      const revokedTokens = this.revokeLiveTokens(record, now, 'recovery started');
      const revokedSerial = record.certificate?.serial ?? null;
      if (revokedSerial !== null) {
        // Remembered, so the old identity is told it was revoked rather than that nobody knows it.
        record.revokedCertificates = rememberRevoked(record.revokedCertificates, {
          serial: revokedSerial,
          revokedAt: now,
          requestId,
        });
      }
      record.certificate = null;
      record.recovery = { requestId, startedAt: now, completedAt: null };
      this.audit(
        'recovery.started',
        connectorId,
        { requestId, from: record.state, revokedSerial, revokedTokens },
        now,
      );
      this.setState(record, 'recovering', now, 'recovery started');
      this.publish(record, now);
    });
    return this.connectorJson(record, now);
  }

  // -- admin: change feed and audit --------------------------------------------------------------

  changes(since: number): { changes: ChangeJson[]; cursor: number } {
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
    const rows = this.store.changesSince(since, CHANGE_PAGE);
    return { changes: rows.map(changeJson), cursor: rows.at(-1)?.cursor ?? since };
  }

  /** Answers at once when something is newer than `since`, else waits up to waitMs for a change. */
  async waitForChanges(
    since: number,
    waitMs: number,
    signal?: AbortSignal,
  ): Promise<{ changes: ChangeJson[]; cursor: number }> {
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

  queryAudit(query: AuditQuery): AuditEntry[] {
    return this.store.queryAudit(query).map(auditEntryJson);
  }

  // -- agent: enrollment -------------------------------------------------------------------------

  /**
   * Refuses an enrollment from a caller that proved nothing: an unknown connector, a token that is
   * no token of this connector (made up, or another connector's). The enrollment endpoint has no
   * other authentication, so such a caller may change nothing: no state, no revision, no change-feed
   * row, no lastEnrollmentFailure. It is counted, and audited within a budget; the answer is the
   * unknown token's, so it learns neither whether the connector exists nor whether it is retired.
   */
  private refuseAnonymous(
    connectorId: string,
    existing: boolean,
    reason: EnrollmentFailureReason,
  ): CodedError {
    const code = 'ENROLLMENT_TOKEN_INVALID';
    this.options.metrics.enrollmentFailures.inc({ reason });
    const audited = this.budget.anonymousAudit(connectorId, existing);
    if (audited) this.audit('gateway.enrollment_failed', connectorId, { code, reason }, this.now());
    this.logRefusal(audited, { connectorId, code, reason });
    return cpError(code, 'the enrollment token is not valid');
  }

  /**
   * Refuses an enrollment from a caller holding one of this connector's own tokens (spent, revoked
   * or expired), which proves it is that connector's deployment: the one refusal that may touch the
   * record. A retired connector moves to needs_recovery (always written and audited); otherwise
   * lastEnrollmentFailure is recorded within a per-connector budget, so a crash-looping agent does
   * not flood the change feed.
   */
  private refuseProven(record: ConnectorRecord, refusal: Refusal): CodedError {
    const { code, reason, message, details } = refusal;
    const { connectorId } = record;
    const now = this.now();
    this.options.metrics.enrollmentFailures.inc({ reason });
    const needsRecovery = reason === 'retired' && record.state !== 'needs_recovery';
    const audited = needsRecovery || this.budget.take('provenAudit', connectorId);
    const recorded = needsRecovery || this.budget.take('failureRecord', connectorId);
    this.store.transaction(() => {
      if (audited) this.audit('gateway.enrollment_failed', connectorId, { code, reason }, now);
      if (!recorded) return;
      record.lastEnrollmentFailure = { code, at: now };
      if (needsRecovery)
        this.setState(record, 'needs_recovery', now, 'enrollment attempted after retirement');
      this.publish(record, now);
    });
    this.logRefusal(audited, { connectorId, code, reason });
    return cpError(code, message, details);
  }

  /** One warning per audited refusal: the log grows no faster than the audit log. */
  private logRefusal(audited: boolean, fields: { connectorId: string; code: string; reason: string }): void {
    if (audited) {
      this.log.warn(fields, 'enrollment refused');
      return;
    }
    this.options.metrics.auditSuppressed.inc();
    this.log.debug(fields, 'enrollment refused (audit budget spent)');
  }

  enroll(request: { connectorId: string; token: string; csrPem: string }): EnrollResult {
    const { connectorId } = request;
    const record = this.connectors.get(connectorId);
    const tokenId = parseTokenId(request.token);
    const stored = tokenId ? this.store.tokenById(tokenId) : undefined;
    const token = stored && tokenMatchesHash(request.token, stored.tokenHash) ? stored : undefined;
    if (!record || !token) throw this.refuseAnonymous(connectorId, record !== undefined, 'unknown');
    if (token.connectorId !== connectorId) throw this.refuseAnonymous(connectorId, true, 'wrong_connector');
    // From here on the caller holds one of this connector's own tokens.
    const now = this.now();
    const refusal = ownTokenRefusal(record, token, now);
    if (refusal) throw this.refuseProven(record, refusal);
    let issued: ReturnType<typeof issueConnectorCertificate>;
    try {
      issued = issueConnectorCertificate(this.options.ca, connectorId, request.csrPem, {
        now: new Date(now),
        lifetimeMs: this.options.certificateLifetimeSeconds * 1000,
        sanUriPrefix: this.options.sanUriPrefix,
      });
    } catch (error) {
      if (isCodedError(error) && error.code.startsWith('CSR_')) {
        const reason = error.code.toLowerCase() as EnrollmentFailureReason;
        throw this.refuseProven(record, { code: error.code as ErrorCode, reason, message: error.message });
      }
      throw error;
    }
    const { facts } = issued;
    this.store.transaction(() => {
      // Consumed exactly once: the UPDATE only matches a live row.
      if (!this.store.finishToken(token.tokenId, 'used', now))
        throw cpError('ENROLLMENT_TOKEN_INVALID', 'the enrollment token is not valid');
      record.liveToken = null;
      record.certificate = {
        serial: facts.serial,
        notBefore: facts.notBefore.getTime(),
        notAfter: facts.notAfter.getTime(),
        fingerprintSha256: facts.fingerprintSha256,
        issuedAt: now,
      };
      record.enrolledAt = now;
      record.lastHeartbeatAt = null;
      record.paths = [];
      this.audit(
        'endpoint.enrolled',
        connectorId,
        {
          tokenId: token.tokenId,
          serial: facts.serial,
          notAfter: facts.notAfter.toISOString(),
          fingerprintSha256: facts.fingerprintSha256,
          recoveryRequestId: record.state === 'recovering' ? (record.recovery?.requestId ?? null) : null,
        },
        now,
      );
      this.setState(record, 'enrolling', now, 'enrolled');
      this.publish(record, now);
    });
    this.options.metrics.enrollments.inc();
    this.log.info(
      { connectorId, serial: facts.serial, notAfter: facts.notAfter.toISOString() },
      'connector enrolled',
    );
    return {
      certificatePem: issued.certificatePem,
      caPem: this.options.ca.certPem,
      serial: facts.serial,
      notAfter: facts.notAfter.toISOString(),
      heartbeatIntervalSeconds: this.options.heartbeatIntervalSeconds,
    };
  }

  // -- agent: mTLS routes ------------------------------------------------------------------------

  /**
   * The connector a client certificate of this CA belongs to, if it is that connector's current one
   * and valid by the control plane's clock; otherwise the refusal says which of those it is not.
   */
  authenticatePeer(peer: PeerIdentity): ConnectorRecord {
    const now = this.now();
    const judged = judgeCertificate(this.connectors.get(peer.connectorId), peer, now);
    if (judged.verdict === 'current') return judged.record;
    throw this.refuseCertificate(refusalOf(judged, peer, now));
  }

  /**
   * Refuses a client certificate. Its sender proved nothing, so no connector changes: the refusal is
   * counted by code, and audited (`endpoint.certificate_refused`) and logged at warn within the
   * budget of refusals that prove nothing, the one refused enrollments use (per connector, with
   * unknown connectors and certificates of other CAs sharing one bucket, and a total), so a flood
   * grows neither the audit log nor the log. The log line is the answer's message, in the
   * troubleshooting guide's wording, with the facts to find the sender; never the certificate.
   */
  refuseCertificate(refusal: CertificateRefusal): CodedError {
    const { code, message, details, certificate } = refusal;
    this.options.metrics.certificateRefusals.inc({ code });
    // Only a certificate of this CA proves which connector it names; another CA's is anyone's claim.
    const connectorId = certificate.issuedHere ? certificate.connectorId : null;
    const audited = this.budget.anonymousAudit(
      connectorId ?? '',
      connectorId !== null && this.connectors.has(connectorId),
    );
    const fields = {
      code,
      connectorId: certificate.connectorId,
      serial: certificate.serial,
      remoteAddress: certificate.remoteAddress,
    };
    if (audited) {
      this.audit('endpoint.certificate_refused', connectorId, refusalAuditDetails(refusal), this.now());
      this.log.warn(fields, message);
    } else {
      this.options.metrics.auditSuppressed.inc();
      this.log.debug(fields, `${message} (audit budget spent)`);
    }
    return cpError(code, message, details);
  }

  heartbeat(
    peer: PeerIdentity,
    paths: PathHealth[],
  ): { state: ConnectorState; heartbeatIntervalSeconds: number; renewAfter: string } {
    const record = this.authenticatePeer(peer);
    const now = this.now();
    const outcome = onHeartbeat(record, paths);
    this.options.metrics.heartbeats.inc();
    record.lastHeartbeatAt = now;
    if (outcome.significant && !this.mayPublishHeartbeat(record, outcome)) {
      // Over the health-change budget: it is alive, and its new health waits for a later beat.
      this.dirty.add(record.connectorId);
    } else if (outcome.significant) {
      record.paths = paths;
      this.store.transaction(() => {
        if (outcome.retire) {
          record.bootstrapRetired = true;
          this.audit(
            'endpoint.bootstrap_retired',
            record.connectorId,
            { serial: record.certificate?.serial },
            now,
          );
          this.log.info({ connectorId: record.connectorId }, 'connector retired from bootstrap');
        }
        if (outcome.completeRecovery && record.recovery) {
          record.recovery.completedAt = now;
          this.audit('recovery.completed', record.connectorId, { requestId: record.recovery.requestId }, now);
        }
        this.setState(record, outcome.state, now, 'heartbeat');
        this.publish(record, now);
      });
    } else {
      record.paths = paths;
      this.dirty.add(record.connectorId);
    }
    return {
      state: record.state,
      heartbeatIntervalSeconds: this.options.heartbeatIntervalSeconds,
      renewAfter: iso(renewAfter(record.certificate as NonNullable<ConnectorRecord['certificate']>)),
    };
  }

  /**
   * Whether a significant heartbeat is published now. Retirement, a completed recovery and coming
   * back from offline happen once per incident and always are; health changes (a flapping path,
   * or an agent renaming its paths every beat) are bounded per connector, so one connector cannot
   * flood the change feed and push the others' history out of it.
   */
  private mayPublishHeartbeat(record: ConnectorRecord, outcome: HeartbeatOutcome): boolean {
    if (outcome.retire || outcome.completeRecovery || record.state === 'offline') return true;
    return this.budget.take('healthChange', record.connectorId);
  }

  renew(peer: PeerIdentity, csrPem: string): Omit<EnrollResult, 'heartbeatIntervalSeconds'> {
    const record = this.authenticatePeer(peer);
    // Each renewal issues a certificate and writes an audit entry and a change: bounded per connector.
    if (!this.budget.take('renewal', record.connectorId)) {
      throw cpError(
        'RENEWAL_RATE_LIMITED',
        'the certificate was renewed too often; renew later (the current certificate stays valid)',
      );
    }
    const now = this.now();
    const issued = issueConnectorCertificate(this.options.ca, record.connectorId, csrPem, {
      now: new Date(now),
      lifetimeMs: this.options.certificateLifetimeSeconds * 1000,
      sanUriPrefix: this.options.sanUriPrefix,
    });
    const { facts } = issued;
    this.store.transaction(() => {
      const oldSerial = record.certificate?.serial ?? null;
      record.certificate = {
        serial: facts.serial,
        notBefore: facts.notBefore.getTime(),
        notAfter: facts.notAfter.getTime(),
        fingerprintSha256: facts.fingerprintSha256,
        issuedAt: now,
      };
      this.audit(
        'endpoint.cert_renewed',
        record.connectorId,
        { oldSerial, serial: facts.serial, notAfter: facts.notAfter.toISOString() },
        now,
      );
      this.publish(record, now);
    });
    this.options.metrics.certRenewals.inc();
    this.log.info({ connectorId: record.connectorId, serial: facts.serial }, 'certificate renewed');
    return {
      certificatePem: issued.certificatePem,
      caPem: this.options.ca.certPem,
      serial: facts.serial,
      notAfter: facts.notAfter.toISOString(),
    };
  }

  // -- housekeeping ------------------------------------------------------------------------------

  /** Moves overdue connectors to offline; returns how many moved. Driven by a timer and by tests. */
  sweep(): number {
    const now = this.now();
    const offlineAfterMs = this.options.offlineAfterSeconds * 1000;
    const overdue = [...this.connectors.values()].filter((record) =>
      isOverdue(record, now, offlineAfterMs, this.startedAt),
    );
    if (overdue.length === 0) return 0;
    this.store.transaction(() => {
      for (const record of overdue) {
        this.setState(record, 'offline', now, 'heartbeat timeout');
        this.publish(record, now);
      }
    });
    this.options.metrics.heartbeatTimeouts.inc(overdue.length);
    for (const record of overdue) {
      this.log.warn(
        { connectorId: record.connectorId, lastHeartbeatAt: isoOrNull(record.lastHeartbeatAt) },
        'connector offline: heartbeat timeout',
      );
    }
    return overdue.length;
  }

  /** Writes all batched last-heartbeat times to disk (on shutdown, and in tests). */
  flush(): number {
    let written = 0;
    while (this.dirty.size > 0) written += this.flushBatch(Number.POSITIVE_INFINITY);
    return written;
  }

  /**
   * Writes up to `max` batched last-heartbeat times in one transaction. The periodic flush goes in
   * slices (see server.ts) so that writing 10,000 records never blocks the event loop for long:
   * one slice of 1,000 takes a few milliseconds, the whole set at once 25-40 ms.
   */
  flushBatch(max: number): number {
    const ids: string[] = [];
    for (const id of this.dirty) {
      if (ids.length >= max) break;
      ids.push(id);
    }
    if (ids.length === 0) return 0;
    this.store.transaction(() => {
      for (const id of ids) {
        const record = this.connectors.get(id);
        if (record) this.store.putConnector(record);
      }
    });
    for (const id of ids) this.dirty.delete(id);
    return ids.length;
  }

  pendingFlush(): number {
    return this.dirty.size;
  }

  /** Ends every pending long-poll (they answer with what they have). */
  releaseWaiters(): void {
    this.wakeWaiters();
  }
}

/** Why an enrollment is refused, and what the caller is told. */
interface Refusal {
  code: ErrorCode;
  reason: EnrollmentFailureReason;
  message: string;
  details?: Record<string, unknown>;
}

/** Why one of the connector's own tokens cannot pair it now; undefined when it can. */
function ownTokenRefusal(record: ConnectorRecord, token: TokenRow, now: number): Refusal | undefined {
  if (isBootstrapClosed(record)) {
    // The connector that lost its identity and fell back to its bootstrap token (the runbook's
    // branch 3): tell it so, since holding the token proves it already knows.
    return {
      code: 'ENROLLMENT_TOKEN_INVALID',
      reason: 'retired',
      message:
        'the enrollment token is not valid: this connector paired before, so its token cannot pair it again; ' +
        'its persisted identity is lost and must be recovered',
      details: { previouslyPaired: true },
    };
  }
  if (token.status === 'used') {
    return {
      code: 'ENROLLMENT_TOKEN_INVALID',
      reason: 'used',
      message: 'the enrollment token was already used',
    };
  }
  if (token.status === 'revoked') {
    return {
      code: 'ENROLLMENT_TOKEN_REVOKED',
      reason: 'revoked',
      message: 'enrolment token revoked: the token was revoked before it was used; generate a new token',
    };
  }
  if (token.expiresAt <= now) {
    return {
      code: 'ENROLLMENT_TOKEN_EXPIRED',
      reason: 'expired',
      message: 'the enrollment token has expired',
    };
  }
  return undefined;
}

/** The refusal a record-level verdict on a certificate of this CA gets. */
function refusalOf(
  judged: Exclude<CertificateVerdict, { verdict: 'current' }>,
  peer: PeerIdentity,
  now: number,
): CertificateRefusal {
  const presented: PresentedCertificate = {
    connectorId: peer.connectorId,
    issuedHere: true,
    serial: peer.serial,
    remoteAddress: peer.remoteAddress ?? null,
  };
  switch (judged.verdict) {
    case 'revoked':
      return revokedCertificate(judged.revocation, presented);
    case 'unknown':
      return unknownCertificate(presented);
    case 'superseded':
      return supersededCertificate(judged.current.issuedAt, presented);
    case 'not_yet_valid':
      return outsideValidity('CLIENT_CERTIFICATE_NOT_YET_VALID', peer, now, presented);
    case 'expired':
      return outsideValidity('CLIENT_CERTIFICATE_EXPIRED', peer, now, presented);
  }
}

/** Public facts only: the code, the serial and sender, the dates or revocation, never the certificate. */
function refusalAuditDetails(refusal: CertificateRefusal): Record<string, unknown> {
  const { certificate } = refusal;
  return {
    code: refusal.code,
    serial: certificate.serial,
    remoteAddress: certificate.remoteAddress,
    // A name another CA's certificate claims is kept apart from the entry's connectorId.
    ...(!certificate.issuedHere && certificate.connectorId !== null
      ? { claimedConnectorId: certificate.connectorId }
      : {}),
    ...refusal.details,
  };
}

function changeJson(row: ChangeRow): ChangeJson {
  const connector = row.connector as unknown as ConnectorJson | null;
  return {
    cursor: row.cursor,
    connectorId: row.connectorId,
    state: row.state,
    at: iso(row.at),
    // Rows written before records had owners lack the field: they were unowned then.
    connector: connector && { ...connector, ownerUid: connector.ownerUid ?? null },
  };
}
