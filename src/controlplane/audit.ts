// The audit log's vocabulary and wire shape. Entries are appended in the same transaction as the
// change they describe (Store.appendAudit) and never updated or deleted. Details hold public facts
// only: ids, serials, states, codes; never a token, credential or key.
import type { AuditRow } from './store.ts';

export const AUDIT_TYPES = [
  'connector.created',
  'connector.updated',
  'connector.deleted',
  'connector.claimed',
  'connector.disowned',
  'token.minted',
  'token.revoked',
  'endpoint.enrolled',
  'endpoint.enrollment_answered_again',
  'gateway.enrollment_failed',
  'endpoint.certificate_refused',
  'endpoint.bootstrap_retired',
  'endpoint.cert_renewed',
  'endpoint.state_changed',
  'recovery.started',
  'recovery.completed',
] as const;
export type AuditType = (typeof AUDIT_TYPES)[number];

export interface AuditEntry {
  seq: number;
  at: string;
  type: string;
  connectorId: string | null;
  details: Record<string, unknown>;
}

export function auditEntryJson(row: AuditRow): AuditEntry {
  return {
    seq: row.seq,
    at: new Date(row.at).toISOString(),
    type: row.type,
    connectorId: row.connectorId,
    details: row.details,
  };
}
