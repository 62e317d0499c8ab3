// Agent: the mTLS routes. A connector proves itself with its current client certificate (judged by
// TLS and its names in http/auth.ts, then against its record here), then beats and renews.
import type { CodedError } from '../lib/errors.ts';
import {
  type CertificateRefusal,
  outsideValidity,
  type PresentedCertificate,
  revokedCertificate,
  supersededCertificate,
  unknownCertificate,
} from './certificate-refusal.ts';
import { issueCertificate } from './connector-certificate.ts';
import { cpError } from './errors.ts';
import type { PeerIdentity } from './pki.ts';
import type { ServiceContext } from './service-context.ts';
import {
  type CertificateVerdict,
  type ConnectorState,
  type HeartbeatOutcome,
  judgeCertificate,
  type LiveRecord,
  onHeartbeat,
  type PathHealth,
  renewAfter,
  withoutEnrollmentAnswer,
} from './state.ts';
import { type IssuedCertificateJson, iso } from './views.ts';

export interface HeartbeatAnswer {
  state: ConnectorState;
  heartbeatIntervalSeconds: number;
  renewAfter: string;
}

export class AgentSession {
  private readonly context: ServiceContext;

  constructor(context: ServiceContext) {
    this.context = context;
  }

  /**
   * The connector a client certificate of this CA belongs to, if it is that connector's current one
   * and valid by the control plane's clock; otherwise the refusal says which of those it is not.
   */
  authenticatePeer(peer: PeerIdentity): LiveRecord {
    const now = this.context.now();
    const judged = judgeCertificate(this.context.records.get(peer.connectorId), peer, now);
    if (judged.verdict === 'current') return judged.record;
    throw this.refuseCertificate(refusalOf(judged, peer, now));
  }

  /**
   * Refuses a client certificate. No connector changes: the refusal is counted by code, and audited
   * (`endpoint.certificate_refused`) and logged at warn within a budget, so a flood grows neither
   * the audit log nor the log. A certificate this CA issued to an existing connector is charged to
   * that connector's certificateAudit budget: its sender holds a key certified for the connector,
   * and forged enrollments naming the connector (which spend the anonymous budget) must not be able
   * to silence it. Anything else (another CA's certificate, a connector with no record) proves
   * nothing and shares the anonymous budget refused enrollments use. The log line is the answer's message, in the
   * troubleshooting guide's wording, with the facts to find the sender; never the certificate.
   */
  refuseCertificate(refusal: CertificateRefusal): CodedError {
    const { records, store, budget, metrics, log } = this.context;
    const { code, message, details, certificate } = refusal;
    metrics.certificateRefusals.inc({ code });
    // Only a certificate of this CA proves which connector it names; another CA's is anyone's claim.
    const connectorId = certificate.issuedHere ? certificate.connectorId : null;
    const audited =
      connectorId !== null && records.has(connectorId)
        ? budget.take('certificateAudit', connectorId)
        : budget.anonymousAudit('', false);
    const fields = {
      code,
      connectorId: certificate.connectorId,
      serial: certificate.serial,
      remoteAddress: certificate.remoteAddress,
    };
    if (audited) {
      store.appendAudit(
        this.context.now(),
        'endpoint.certificate_refused',
        connectorId,
        refusalAuditDetails(refusal),
      );
      log.warn(fields, message);
    } else {
      metrics.auditSuppressed.inc();
      log.debug(fields, `${message} (audit budget spent)`);
    }
    return cpError(code, message, details);
  }

  heartbeat(peer: PeerIdentity, paths: PathHealth[]): HeartbeatAnswer {
    const { records, options, metrics, log } = this.context;
    const record = this.authenticatePeer(peer);
    const { connectorId } = record;
    const now = this.context.now();
    const outcome = onHeartbeat(record, paths);
    if (outcome.significant && this.mayPublishHeartbeat(record, outcome)) {
      records.commit((tx) =>
        tx.update(connectorId, now, (draft) => {
          draft.lastHeartbeatAt = now;
          draft.paths = paths;
          // It has its certificate: the enrollment's answer can no longer be awaited (enrollment.ts).
          if (draft.certificate?.enrollmentAnswer)
            draft.certificate = withoutEnrollmentAnswer(draft.certificate);
          if (outcome.retire) {
            draft.bootstrapRetired = true;
            tx.audit('endpoint.bootstrap_retired', connectorId, { serial: draft.certificate?.serial }, now);
            tx.afterCommit(() => log.info({ connectorId }, 'connector retired from bootstrap'));
          }
          if (outcome.completeRecovery && draft.recovery) {
            draft.recovery.completedAt = now;
            tx.audit('recovery.completed', connectorId, { requestId: draft.recovery.requestId }, now);
          }
          tx.moveTo(draft, outcome.state, now, 'heartbeat');
        }),
      );
    } else {
      // A routine beat, or a change over the health-change budget: it is alive, and its new health
      // waits for a later beat.
      records.touch(connectorId, now, outcome.significant ? undefined : paths);
    }
    metrics.heartbeats.inc();
    const beaten = records.require(connectorId);
    return {
      state: beaten.state,
      heartbeatIntervalSeconds: options.heartbeatIntervalSeconds,
      renewAfter: iso(renewAfter(beaten.certificate as NonNullable<LiveRecord['certificate']>)),
    };
  }

  /**
   * Whether a significant heartbeat is published now. Retirement, a completed recovery and coming
   * back from offline happen once per incident and always are; health changes (a flapping path,
   * or an agent renaming its paths every beat) are bounded per connector, so one connector cannot
   * flood the change feed and push the others' history out of it.
   */
  private mayPublishHeartbeat(record: LiveRecord, outcome: HeartbeatOutcome): boolean {
    if (outcome.retire || outcome.completeRecovery || record.state === 'offline') return true;
    return this.context.budget.take('healthChange', record.connectorId);
  }

  renew(peer: PeerIdentity, csrPem: string): IssuedCertificateJson {
    const { records, options, budget, metrics, log } = this.context;
    const { connectorId } = this.authenticatePeer(peer);
    // Each renewal issues a certificate and writes an audit entry and a change: bounded per connector.
    if (!budget.take('renewal', connectorId)) {
      throw cpError(
        'RENEWAL_RATE_LIMITED',
        'the certificate was renewed too often; renew later (the current certificate stays valid)',
      );
    }
    const now = this.context.now();
    const { answer, record: certificate } = issueCertificate(options, connectorId, csrPem, now);
    records.commit((tx) =>
      tx.update(connectorId, now, (draft) => {
        const oldSerial = draft.certificate?.serial ?? null;
        draft.certificate = certificate;
        tx.audit(
          'endpoint.cert_renewed',
          connectorId,
          { oldSerial, serial: certificate.serial, notAfter: answer.notAfter },
          now,
        );
      }),
    );
    metrics.certRenewals.inc();
    log.info({ connectorId, serial: certificate.serial }, 'certificate renewed');
    return answer;
  }
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
