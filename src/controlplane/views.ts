// The JSON the control plane answers with: connectors, changes, minted tokens, enrollment and the
// recovery dry run, and how a record or a change row becomes one.
import type {
  Change,
  Connector,
  ConnectorConfig,
  EnrollResponse,
  IssuedCertificate,
  MintedToken,
  RecoveryCheck,
} from '../contract/control-plane-api.generated.ts';
import type { LiveRecord } from './state.ts';
import type { ChangeRow } from './store.ts';

// The answers are the contract's types, so what this server sends and what api/openapi.yaml
// promises cannot drift apart without a type error here.
export type ConnectorJson = Connector;
export type ChangeJson = Change;
export type RecoveryCheckJson = RecoveryCheck;
export type IssuedCertificateJson = IssuedCertificate;
export type EnrollResult = EnrollResponse;
export type { ConnectorConfig, MintedToken };

export const iso = (ms: number): string => new Date(ms).toISOString();
export const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

/** A record as the admin API shows it at `now` (an expired token is no live token). */
export function connectorJson(record: LiveRecord, now: number): ConnectorJson {
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
    handoverNamespace: record.handoverNamespace,
    revision: record.revision,
  };
}

export function changeJson(row: ChangeRow): ChangeJson {
  const connector = row.connector as unknown as ConnectorJson | null;
  return {
    cursor: row.cursor,
    connectorId: row.connectorId,
    state: row.state,
    at: iso(row.at),
    // Rows written before records had owners, or handovers, lack the fields: there were none then.
    connector: connector && {
      ...connector,
      ownerUid: connector.ownerUid ?? null,
      handoverNamespace: connector.handoverNamespace ?? null,
    },
  };
}
