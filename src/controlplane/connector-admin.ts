// Admin operations on connector records: create or bring up to date, read, list, delete, and give up
// ownership (see ownership.ts).

import { checkClaim, checkOwner } from './ownership.ts';
import { takePage } from './pages.ts';
import type { ServiceContext } from './service-context.ts';
import type { ConnectorRecord } from './state.ts';
import { revokeLiveTokens } from './token-admin.ts';
import { type ConnectorConfig, type ConnectorJson, connectorJson } from './views.ts';

export interface ConnectorPage {
  connectors: ConnectorJson[];
  cursor: number;
  next: string | null;
}

export class ConnectorAdmin {
  private readonly context: ServiceContext;

  constructor(context: ServiceContext) {
    this.context = context;
  }

  get(connectorId: string): ConnectorJson {
    return connectorJson(this.context.records.require(connectorId), this.context.now());
  }

  /**
   * A page of the records by connector id, those after `after` (all when undefined): at most `limit`
   * and a page's bytes (pages.ts). `next` is the id to ask after for the next page, null on the
   * last. `cursor` is the change feed's position as this page is read: a later page may hold newer
   * records, but every change after the first page's cursor is in the feed, so a client that follows
   * the feed from there brings the whole listing up to date.
   */
  list(after: string | undefined, limit: number): ConnectorPage {
    const { records, store } = this.context;
    const now = this.context.now();
    const sorted = [...records.all()]
      .filter((record) => after === undefined || record.connectorId > after)
      .sort((a, b) => (a.connectorId < b.connectorId ? -1 : 1));
    const page = takePage(sorted, (record) => connectorJson(record, now), limit);
    const next = page.more ? (page.items.at(-1)?.connectorId ?? null) : null;
    return { connectors: page.items, cursor: store.latestCursor(), next };
  }

  /**
   * Creates the record (owned by `owner.uid`, when given) or brings its configuration up to date. A
   * record nobody owns is claimed by the first caller that names an owner, of the namespace it was
   * handed over to if it was; one owned by another Connector, or handed over to another namespace,
   * answers 409 CONNECTOR_ID_CONFLICT and changes nothing.
   */
  ensure(
    connectorId: string,
    config: ConnectorConfig,
    owner: { uid?: string; namespace?: string } = {},
  ): { created: boolean; connector: ConnectorJson } {
    const { records, log } = this.context;
    const now = this.context.now();
    const existing = records.get(connectorId);
    const ownerUid = owner.uid;
    if (existing) {
      const claim = ownerUid !== undefined && existing.ownerUid === null;
      if (claim) checkClaim(existing, owner.namespace);
      else checkOwner(existing, ownerUid);
      const same =
        existing.org === config.org &&
        existing.endpointId === config.endpointId &&
        JSON.stringify(existing.allowedNetworks) === JSON.stringify(config.allowedNetworks);
      if (same && !claim) return { created: false, connector: connectorJson(existing, now) };
      const updated = records.commit((tx) =>
        tx.update(connectorId, now, (draft) => {
          if (claim) {
            draft.ownerUid = ownerUid;
            draft.handoverNamespace = null;
            tx.audit(
              'connector.claimed',
              connectorId,
              { ownerUid, ownerNamespace: owner.namespace ?? null },
              now,
            );
            tx.afterCommit(() => log.info({ connectorId, ownerUid }, 'connector claimed'));
          }
          if (!same) {
            const before = {
              org: draft.org,
              endpointId: draft.endpointId,
              allowedNetworks: draft.allowedNetworks,
            };
            draft.org = config.org;
            draft.endpointId = config.endpointId;
            draft.allowedNetworks = [...config.allowedNetworks];
            tx.audit('connector.updated', connectorId, { before, after: config }, now);
          }
        }),
      );
      return { created: false, connector: connectorJson(updated, now) };
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
      handoverNamespace: null,
      revision: 0,
      createdAt: now,
    };
    const created = records.commit((tx) => {
      tx.audit('connector.created', connectorId, { ...config, ownerUid: record.ownerUid }, now);
      return tx.create(record, now);
    });
    log.info({ connectorId }, 'connector created');
    return { created: true, connector: connectorJson(created, now) };
  }

  /** Removes the record, its tokens and (by forgetting its serial) its certificate. Idempotent. */
  delete(connectorId: string, ownerUid?: string): boolean {
    const { records, store, log } = this.context;
    const record = records.get(connectorId);
    if (!record) return false;
    checkOwner(record, ownerUid);
    const now = this.context.now();
    records.commit((tx) => {
      revokeLiveTokens(store, tx, connectorId, now, 'connector deleted');
      tx.remove(connectorId, now);
      tx.audit(
        'connector.deleted',
        connectorId,
        { state: record.state, certificateSerial: record.certificate?.serial ?? null },
        now,
      );
    });
    log.info({ connectorId }, 'connector deleted');
    return true;
  }

  /**
   * Leaves the record without an owner, identity and certificate intact, so that a new Connector
   * with the same id can claim it (a Connector deleted with deletionPolicy Retain): one of
   * `handoverNamespace` only, when given. False when nobody owned it (nothing changes);
   * 409 CONNECTOR_ID_CONFLICT when another Connector does.
   */
  disown(connectorId: string, ownerUid: string, handoverNamespace?: string): boolean {
    const { records, log } = this.context;
    const record = records.require(connectorId);
    if (record.ownerUid === null) return false;
    checkOwner(record, ownerUid);
    const now = this.context.now();
    records.commit((tx) =>
      tx.update(connectorId, now, (draft) => {
        draft.ownerUid = null;
        draft.handoverNamespace = handoverNamespace ?? null;
        tx.audit(
          'connector.disowned',
          connectorId,
          { ownerUid, handoverNamespace: handoverNamespace ?? null },
          now,
        );
      }),
    );
    log.info({ connectorId, ownerUid, handoverNamespace }, 'connector disowned');
    return true;
  }
}
