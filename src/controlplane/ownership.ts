// One record, one owning Connector: a caller that names its owner UID may change only a record that
// it owns or that nobody owns. A caller that names none is not checked (clients that predate
// ownership keep working). The refusal does not say who the owner is.
import { cpError } from './errors.ts';
import type { ConnectorRepository } from './records.ts';
import type { LiveRecord } from './state.ts';

export function checkOwner(record: LiveRecord, ownerUid: string | undefined): void {
  if (ownerUid === undefined || record.ownerUid === null || record.ownerUid === ownerUid) return;
  throw cpError(
    'CONNECTOR_ID_CONFLICT',
    `the connector id ${record.connectorId} is owned by another Connector; give this one another connector id`,
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
