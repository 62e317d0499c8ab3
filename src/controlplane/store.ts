// SQLite storage (node:sqlite DatabaseSync, WAL). Synchronous on purpose: Node runs one handler at
// a time, so a read-check-write sequence inside transaction() is atomic with respect to every other
// request, and the transaction makes it atomic on disk. Connector rows are written only by the
// record repository (records.ts), which swaps its in-memory records only after a commit.
//
// Durability: WAL with synchronous=NORMAL. A committed transaction survives a crash or kill of the
// process; after a power loss the last few transactions may be lost (SQLite's documented trade-off),
// which the clients' idempotency keys and request ids cover.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { AuditType } from './audit.ts';
import type { CertificateRecord, ConnectorRecord, ConnectorState, LiveRecord } from './state.ts';

const MIGRATIONS: string[] = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE connectors (
     id TEXT PRIMARY KEY,
     state TEXT NOT NULL,
     record TEXT NOT NULL
   );
   CREATE TABLE tokens (
     token_id TEXT PRIMARY KEY,
     connector_id TEXT NOT NULL,
     idempotency_key TEXT NOT NULL,
     token_hash TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('live', 'used', 'revoked')),
     finished_at INTEGER,
     UNIQUE (connector_id, idempotency_key)
   );
   CREATE INDEX tokens_live ON tokens (connector_id) WHERE status = 'live';
   CREATE TABLE changes (
     cursor INTEGER PRIMARY KEY AUTOINCREMENT,
     connector_id TEXT NOT NULL,
     state TEXT NOT NULL,
     at INTEGER NOT NULL,
     connector TEXT
   );
   CREATE TABLE audit (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     at INTEGER NOT NULL,
     type TEXT NOT NULL,
     connector_id TEXT,
     details TEXT NOT NULL
   );
   CREATE INDEX audit_connector ON audit (connector_id, at);
   CREATE INDEX audit_at ON audit (at);`,
  // 2: record ownership, a column of its own so that the owner is a fact the database can be asked
  // about. Existing records get NULL, i.e. unowned: the first Connector naming itself on PUT claims them.
  'ALTER TABLE connectors ADD COLUMN owner_uid TEXT',
];

export type TokenStatus = 'live' | 'used' | 'revoked';

export interface TokenRow {
  tokenId: string;
  connectorId: string;
  idempotencyKey: string;
  tokenHash: string;
  createdAt: number;
  expiresAt: number;
  status: TokenStatus;
  finishedAt: number | null;
}

export interface ChangeRow {
  cursor: number;
  connectorId: string;
  /** The connector's state after the change, or `deleted`. */
  state: ConnectorState | 'deleted';
  at: number;
  connector: ConnectorRecord | null;
}

export interface AuditRow {
  seq: number;
  at: number;
  type: string;
  connectorId: string | null;
  details: Record<string, unknown>;
}

export interface AuditQuery {
  connectorId?: string;
  since?: number;
  until?: number;
  limit: number;
  afterSeq?: number;
}

type Row = Record<string, unknown>;

/** A record as an earlier release may have written it: without the fields added to the JSON since. */
type StoredRecord = Omit<ConnectorRecord, 'revokedCertificates' | 'certificate' | 'handoverNamespace'> & {
  revokedCertificates?: ConnectorRecord['revokedCertificates'];
  handoverNamespace?: string | null;
  certificate: (Omit<CertificateRecord, 'issuedAt'> & { issuedAt?: number }) | null;
};

/**
 * Fills in what older records lack: no revoked certificate remembered (their revoked ones are then
 * refused as unknown), the issue time read as notBefore, which makes the first renewAfter early
 * by the back-dating at most (the renewal that follows records the real one), and no handover
 * namespace (a record disowned before it existed stays claimable as it was then).
 */
function withLaterFields(stored: StoredRecord): ConnectorRecord {
  const { certificate } = stored;
  return {
    ...stored,
    revokedCertificates: stored.revokedCertificates ?? [],
    handoverNamespace: stored.handoverNamespace ?? null,
    certificate: certificate && { ...certificate, issuedAt: certificate.issuedAt ?? certificate.notBefore },
  };
}

function tokenFromRow(row: Row): TokenRow {
  return {
    tokenId: String(row.token_id),
    connectorId: String(row.connector_id),
    idempotencyKey: String(row.idempotency_key),
    tokenHash: String(row.token_hash),
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    status: String(row.status) as TokenStatus,
    finishedAt: row.finished_at === null ? null : Number(row.finished_at),
  };
}

export class Store {
  readonly path: string;
  private readonly db: DatabaseSync;
  private readonly statements = new Map<string, StatementSync>();
  private depth = 0;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    this.path = join(dataDir, 'control-plane.sqlite');
    this.db = new DatabaseSync(this.path);
    this.db.exec('PRAGMA journal_mode = WAL');
    this.db.exec('PRAGMA synchronous = NORMAL');
    this.db.exec('PRAGMA foreign_keys = ON');
    this.db.exec('PRAGMA busy_timeout = 5000');
    this.migrate();
  }

  private migrate(): void {
    const version = Number((this.db.prepare('PRAGMA user_version').get() as Row).user_version);
    for (let next = version; next < MIGRATIONS.length; next++) {
      this.transaction(() => {
        this.db.exec(MIGRATIONS[next] as string);
        this.db.exec(`PRAGMA user_version = ${next + 1}`);
      });
    }
  }

  private sql(text: string): StatementSync {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  /** Runs fn in one transaction (nested calls join the outer one). */
  transaction<T>(fn: () => T): T {
    if (this.depth > 0) return fn();
    this.db.exec('BEGIN IMMEDIATE');
    this.depth++;
    try {
      const result = fn();
      this.db.exec('COMMIT');
      return result;
    } catch (error) {
      this.db.exec('ROLLBACK');
      throw error;
    } finally {
      this.depth--;
    }
  }

  close(): void {
    if (!this.db.isOpen) return;
    this.db.close();
  }

  // -- meta -------------------------------------------------------------------------------------

  getMeta(key: string): string | undefined {
    const row = this.sql('SELECT value FROM meta WHERE key = ?').get(key) as Row | undefined;
    return row ? String(row.value) : undefined;
  }

  setMeta(key: string, value: string): void {
    this.sql(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
    ).run(key, value);
  }

  // -- connectors -------------------------------------------------------------------------------

  loadConnectors(): ConnectorRecord[] {
    // The owner column is the truth: records written before it existed have no ownerUid in their JSON.
    return (this.sql('SELECT record, owner_uid FROM connectors ORDER BY id').all() as Row[]).map((row) => ({
      ...withLaterFields(JSON.parse(String(row.record)) as StoredRecord),
      ownerUid: row.owner_uid === null ? null : String(row.owner_uid),
    }));
  }

  putConnector(record: LiveRecord): void {
    this.sql(
      'INSERT INTO connectors (id, state, owner_uid, record) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET state = excluded.state, owner_uid = excluded.owner_uid, record = excluded.record',
    ).run(record.connectorId, record.state, record.ownerUid, JSON.stringify(record));
  }

  deleteConnector(connectorId: string): void {
    this.sql('DELETE FROM connectors WHERE id = ?').run(connectorId);
    this.sql('DELETE FROM tokens WHERE connector_id = ?').run(connectorId);
  }

  // -- tokens -----------------------------------------------------------------------------------

  insertToken(row: TokenRow): void {
    this.sql(
      'INSERT INTO tokens (token_id, connector_id, idempotency_key, token_hash, created_at, expires_at, status, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ).run(
      row.tokenId,
      row.connectorId,
      row.idempotencyKey,
      row.tokenHash,
      row.createdAt,
      row.expiresAt,
      row.status,
      row.finishedAt,
    );
  }

  tokenById(tokenId: string): TokenRow | undefined {
    const row = this.sql('SELECT * FROM tokens WHERE token_id = ?').get(tokenId) as Row | undefined;
    return row ? tokenFromRow(row) : undefined;
  }

  tokenByIdempotencyKey(connectorId: string, idempotencyKey: string): TokenRow | undefined {
    const row = this.sql('SELECT * FROM tokens WHERE connector_id = ? AND idempotency_key = ?').get(
      connectorId,
      idempotencyKey,
    ) as Row | undefined;
    return row ? tokenFromRow(row) : undefined;
  }

  liveTokens(connectorId: string): TokenRow[] {
    return (
      this.sql("SELECT * FROM tokens WHERE connector_id = ? AND status = 'live'").all(connectorId) as Row[]
    ).map(tokenFromRow);
  }

  /** Moves a live token to used or revoked; false when it was not live (so it is consumed once). */
  finishToken(tokenId: string, status: 'used' | 'revoked', at: number): boolean {
    const result = this.sql(
      "UPDATE tokens SET status = ?, finished_at = ? WHERE token_id = ? AND status = 'live'",
    ).run(status, at, tokenId);
    return Number(result.changes) === 1;
  }

  // -- changes ----------------------------------------------------------------------------------

  appendChange(
    connectorId: string,
    state: ChangeRow['state'],
    at: number,
    connector: unknown | null,
  ): number {
    const result = this.sql(
      'INSERT INTO changes (connector_id, state, at, connector) VALUES (?, ?, ?, ?)',
    ).run(connectorId, state, at, connector === null ? null : JSON.stringify(connector));
    return Number(result.lastInsertRowid);
  }

  /**
   * The changes after `cursor`, oldest first, read from the database only as far as the caller
   * iterates: a page stops early by its size (pages.ts), and the rows it does not take are not read.
   */
  *changesSince(cursor: number): Generator<ChangeRow> {
    for (const row of this.sql('SELECT * FROM changes WHERE cursor > ? ORDER BY cursor').iterate(
      cursor,
    ) as Iterable<Row>) {
      yield {
        cursor: Number(row.cursor),
        connectorId: String(row.connector_id),
        state: String(row.state) as ChangeRow['state'],
        at: Number(row.at),
        connector: row.connector === null ? null : (JSON.parse(String(row.connector)) as ConnectorRecord),
      };
    }
  }

  /** Newest cursor ever handed out (survives pruning: AUTOINCREMENT never reuses a value). */
  latestCursor(): number {
    const row = this.sql("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").get() as Row | undefined;
    return row ? Number(row.seq) : 0;
  }

  oldestCursor(): number | undefined {
    const row = this.sql('SELECT MIN(cursor) AS c FROM changes').get() as Row;
    return row.c === null ? undefined : Number(row.c);
  }

  /** Keeps the newest `keep` changes. */
  pruneChanges(keep: number): void {
    this.sql('DELETE FROM changes WHERE cursor <= ?').run(this.latestCursor() - keep);
  }

  // -- audit ------------------------------------------------------------------------------------

  appendAudit(
    at: number,
    type: AuditType,
    connectorId: string | null,
    details: Record<string, unknown>,
  ): number {
    const result = this.sql('INSERT INTO audit (at, type, connector_id, details) VALUES (?, ?, ?, ?)').run(
      at,
      type,
      connectorId,
      JSON.stringify(details),
    );
    return Number(result.lastInsertRowid);
  }

  queryAudit(query: AuditQuery): AuditRow[] {
    const where: string[] = [];
    const params: Array<string | number> = [];
    if (query.connectorId !== undefined) {
      where.push('connector_id = ?');
      params.push(query.connectorId);
    }
    if (query.since !== undefined) {
      where.push('at >= ?');
      params.push(query.since);
    }
    if (query.until !== undefined) {
      where.push('at <= ?');
      params.push(query.until);
    }
    if (query.afterSeq !== undefined) {
      where.push('seq > ?');
      params.push(query.afterSeq);
    }
    const text = `SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq LIMIT ?`;
    return (this.sql(text).all(...params, query.limit) as Row[]).map((row) => ({
      seq: Number(row.seq),
      at: Number(row.at),
      type: String(row.type),
      connectorId: row.connector_id === null ? null : String(row.connector_id),
      details: JSON.parse(String(row.details)) as Record<string, unknown>,
    }));
  }
}
