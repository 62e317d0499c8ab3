// One record, one owning Connector: a caller that names its owner UID may change only a record that
// it owns, or that nobody owns and nobody handed over. A record its owner let go of for a namespace
// (deletionPolicy Retain) is changed by nobody naming an owner until a Connector of that namespace
// claims it with PUT: otherwise a Connector of any namespace naming the id could mint, recover or
// delete the retained identity. A caller that names no owner is not checked (clients that predate
// ownership keep working). The refusals say neither who the owner is nor where the record went.
import { cpError } from './errors.ts';
import type { ConnectorRepository } from './records.ts';
import type { LiveRecord } from './state.ts';

/** Why the fix of a conflict is a new Connector: a Connector's connector id cannot change (its CRD). */
const FIXED_ID = 'a Connector cannot change its connector id once created';

export function checkOwner(record: LiveRecord, ownerUid: string | undefined): void {
  if (ownerUid === undefined || record.ownerUid === ownerUid) return;
  if (record.ownerUid === null && record.handoverNamespace === null) return;
  if (record.ownerUid === null) throw handedOver(record);
  throw cpError(
    'CONNECTOR_ID_CONFLICT',
    `the connector id ${record.connectorId} is owned by another Connector; ${FIXED_ID}: create a new one with another connector id, or delete the Connector that owns ${record.connectorId}`,
    { connectorId: record.connectorId },
  );
}

/**
 * Whether a caller naming `ownerUid` of `ownerNamespace` may claim the unowned `record` with PUT:
 * any caller for a record nobody handed over, only one of the handover namespace otherwise.
 */
export function checkClaim(record: LiveRecord, ownerNamespace: string | undefined): void {
  if (record.handoverNamespace === null || record.handoverNamespace === ownerNamespace) return;
  throw handedOver(record);
}

function handedOver(record: LiveRecord): Error {
  return cpError(
    'CONNECTOR_ID_CONFLICT',
    `the connector id ${record.connectorId} was let go of by its Connector for a Connector of another namespace to claim, and only one of that namespace can; ${FIXED_ID}: create a new one with another connector id`,
    { connectorId: record.connectorId },
  );
}

/** The record, when the caller (naming its owner UID, or not) may change it. */
export function requireOwned(
  records: ConnectorRepository,
  connectorId: string,
  ownerUid: string | undefined,
): LiveRecord {
  const record = records.require(connectorId);
  checkOwner(record, ownerUid);
  return record;
}
