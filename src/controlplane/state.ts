// The connector state machine as pure functions of a record and the time: no I/O, no clock of its
// own. The service's parts apply the outcomes through the record repository (records.ts: persist,
// audit, change feed), then count them. Unit-tested with a fake clock in test/controlplane/state.test.ts.
import type { ErrorCode } from './errors.ts';

export const CONNECTOR_STATES = [
  'pending',
  'enrolling',
  'online',
  'degraded',
  'offline',
  'needs_recovery',
  'recovering',
] as const;
export type ConnectorState = (typeof CONNECTOR_STATES)[number];

export interface PathHealth {
  name: string;
  healthy: boolean;
  detail: string;
}

export interface CertificateRecord {
  serial: string;
  /** Back-dated a few minutes for clock skew (pki.ts), so it is not when the certificate was issued. */
  notBefore: number;
  notAfter: number;
  fingerprintSha256: string;
  /**
   * When the control plane issued it: the lifetime it granted runs from here. Records written before
   * this field existed read it as notBefore (store.ts).
   */
  issuedAt: number;
  /**
   * What the enrollment that issued this certificate answered, kept until the first heartbeat so an
   * agent whose answer was lost can be sent it again (enrollment.ts). Absent for a renewal, once the
   * connector has beaten, and in records written before it existed. The certificate is public; the
   * key never leaves the agent.
   */
  enrollmentAnswer?: EnrollmentAnswer;
}

/** The enrollment's answer, by the token it spent and the SHA-256 of the key it certified. */
export interface EnrollmentAnswer {
  tokenId: string;
  publicKeySha256: string;
  certificatePem: string;
}

/** The certificate record without the enrollment's answer: what is kept once it cannot be asked again. */
export function withoutEnrollmentAnswer(certificate: CertificateRecord): CertificateRecord {
  const { enrollmentAnswer: _answered, ...kept } = certificate;
  return kept;
}

/** A certificate taken from its connector before it expired, remembered so its refusal can say so. */
export interface RevokedCertificate {
  serial: string;
  revokedAt: number;
  /** The guided recovery that revoked it. */
  requestId: string | null;
}

/**
 * Revoked serials remembered per connector. Each recovery adds one; a serial older than the last
 * eight recoveries is still refused, only as belonging to no enrolled connector (by then it has
 * usually expired, and TLS refuses it as expired before the record is asked).
 */
export const REVOKED_CERTIFICATES_KEPT = 8;

export interface ConnectorRecord {
  connectorId: string;
  org: string;
  endpointId: string;
  allowedNetworks: string[];
  state: ConnectorState;
  bootstrapRetired: boolean;
  /** Epoch milliseconds; null before the first heartbeat. */
  lastHeartbeatAt: number | null;
  stateChangedAt: number;
  enrolledAt: number | null;
  paths: PathHealth[];
  certificate: CertificateRecord | null;
  /** The newest REVOKED_CERTIFICATES_KEPT revoked certificates, oldest first. */
  revokedCertificates: RevokedCertificate[];
  liveToken: { tokenId: string; expiresAt: number } | null;
  recovery: { requestId: string; startedAt: number; completedAt: number | null } | null;
  lastEnrollmentFailure: { code: ErrorCode; at: number } | null;
  /**
   * The UID of the Kubernetes Connector that owns this record, or null (created by a client that
   * names no owner, or disowned when its Connector was deleted with deletionPolicy Retain).
   */
  ownerUid: string | null;
  /**
   * Set when the owner let go of the record (deletionPolicy Retain): only a Connector of this
   * namespace may claim it, and until one does no Connector naming an owner may change it. Null
   * while owned, and for records nobody owned or released before the field existed.
   */
  handoverNamespace: string | null;
  revision: number;
  createdAt: number;
}

type DeepReadonly<T> = T extends readonly (infer E)[]
  ? readonly DeepReadonly<E>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/**
 * A record as the repository holds it (records.ts): read-only all the way down, so that changing
 * one can only mean staging a copy, which the repository swaps in once its write has committed.
 */
export type LiveRecord = DeepReadonly<ConnectorRecord>;

/** One unhealthy path is enough to call the connector degraded. */
export function healthState(paths: readonly PathHealth[]): 'online' | 'degraded' {
  return paths.every((path) => path.healthy) ? 'online' : 'degraded';
}

function sameHealth(a: readonly PathHealth[], b: readonly PathHealth[]): boolean {
  return (
    a.length === b.length && a.every((path, i) => path.name === b[i]?.name && path.healthy === b[i]?.healthy)
  );
}

export interface HeartbeatOutcome {
  state: ConnectorState;
  /** First heartbeat after the first enrollment: retire the connector from bootstrap. */
  retire: boolean;
  /** First heartbeat after a recovery pairing: the recovery is complete. */
  completeRecovery: boolean;
  /**
   * True when the record changes in a way the operator must see (state, path health, retirement),
   * so it is persisted at once and published on the change feed. A routine beat is not significant:
   * its time is kept in memory and written in batches.
   */
  significant: boolean;
}

export function onHeartbeat(record: LiveRecord, paths: readonly PathHealth[]): HeartbeatOutcome {
  // needs_recovery is left only through an explicit recovery; pending and recovering have no valid
  // certificate, so a beat there cannot happen, and if it did it would change nothing.
  const frozen =
    record.state === 'needs_recovery' || record.state === 'recovering' || record.state === 'pending';
  const state = frozen ? record.state : healthState(paths);
  const retire = record.state === 'enrolling' && !record.bootstrapRetired;
  const completeRecovery =
    record.state === 'enrolling' && record.recovery !== null && record.recovery.completedAt === null;
  const significant =
    state !== record.state || retire || completeRecovery || !sameHealth(record.paths, paths);
  return { state, retire, completeRecovery, significant };
}

/**
 * Whether the offline sweep moves this connector to offline: it was online or degraded and no
 * heartbeat arrived for `offlineAfterMs`. `graceFrom` (the process start) keeps a restart of the
 * control plane from declaring every connector offline before it had a chance to beat.
 */
export function isOverdue(record: LiveRecord, now: number, offlineAfterMs: number, graceFrom = 0): boolean {
  if (record.state !== 'online' && record.state !== 'degraded') return false;
  const lastSeen = Math.max(record.lastHeartbeatAt ?? 0, graceFrom);
  return now - lastSeen >= offlineAfterMs;
}

/** A retired connector may pair again only inside a recovery. */
export function isBootstrapClosed(record: LiveRecord): boolean {
  return record.bootstrapRetired && record.state !== 'recovering';
}

export type RecoveryDecision = 'same_request' | 'begin' | 'not_needed';

export function recoveryDecision(record: LiveRecord, requestId: string): RecoveryDecision {
  if (record.recovery?.requestId === requestId) return 'same_request';
  switch (record.state) {
    case 'needs_recovery':
    case 'offline':
    case 'recovering':
      return 'begin';
    case 'enrolling':
      // Paired inside a recovery but never heartbeated: the identity may be lost again.
      return record.bootstrapRetired ? 'begin' : 'not_needed';
    default:
      return 'not_needed';
  }
}

/**
 * Renewal threshold: two thirds into the lifetime the control plane granted, counted from issuance.
 * Counted from the back-dated notBefore instead, a lifetime under about 2.5 minutes would be "renew
 * now" at issuance and a 5-minute one renewed after 1.7 minutes.
 */
export function renewAfter(certificate: Readonly<CertificateRecord>): number {
  return certificate.issuedAt + Math.floor(((certificate.notAfter - certificate.issuedAt) * 2) / 3);
}

/** The revoked list with `certificate` added, keeping the newest REVOKED_CERTIFICATES_KEPT. */
export function rememberRevoked(
  revoked: readonly RevokedCertificate[],
  certificate: RevokedCertificate,
): RevokedCertificate[] {
  return [...revoked, certificate].slice(-REVOKED_CERTIFICATES_KEPT);
}

/** What the control plane knows about a client certificate its CA issued, by the record it names. */
export type CertificateVerdict =
  | { verdict: 'current'; record: LiveRecord }
  | { verdict: 'revoked'; revocation: RevokedCertificate }
  | { verdict: 'unknown' }
  | { verdict: 'superseded'; current: Readonly<CertificateRecord> }
  | { verdict: 'not_yet_valid' }
  | { verdict: 'expired' };

/**
 * Judges a certificate of this CA (already verified by TLS) against the record of the connector it
 * names, in this order: a revoked serial (also once the record holds a newer certificate), no record
 * or no certificate, another serial than the current one, then the validity dates by the control
 * plane's clock (which may differ from the system clock TLS judged by).
 */
export function judgeCertificate(
  record: LiveRecord | undefined,
  presented: { serial: string; notBefore: number; notAfter: number },
  now: number,
): CertificateVerdict {
  const revocation = record?.revokedCertificates.find((entry) => entry.serial === presented.serial);
  if (revocation) return { verdict: 'revoked', revocation };
  if (!record?.certificate) return { verdict: 'unknown' };
  if (record.certificate.serial !== presented.serial)
    return { verdict: 'superseded', current: record.certificate };
  if (presented.notBefore > now) return { verdict: 'not_yet_valid' };
  if (presented.notAfter <= now) return { verdict: 'expired' };
  return { verdict: 'current', record };
}
