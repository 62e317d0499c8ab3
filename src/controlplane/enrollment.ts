// Agent: enrollment with a single-use token and a CSR. The endpoint has no other authentication, so
// only a caller holding one of the connector's own tokens may change its record, and what anyone can
// make it write is bounded (budgets.ts).
import type { CodedError } from '../lib/errors.ts';
import { isCodedError } from '../lib/errors.ts';
import { type IssuedCertificate, issueCertificate } from './connector-certificate.ts';
import { cpError, type ErrorCode } from './errors.ts';
import type { EnrollmentFailureReason } from './metrics.ts';
import type { ServiceContext } from './service-context.ts';
import { type CertificateRecord, isBootstrapClosed, type LiveRecord } from './state.ts';
import type { TokenRow } from './store.ts';
import { parseTokenId, tokenMatchesHash } from './tokens.ts';
import type { EnrollResult } from './views.ts';

/** Why an enrollment is refused, and what the caller is told. */
interface Refusal {
  code: ErrorCode;
  reason: EnrollmentFailureReason;
  message: string;
  details?: Record<string, unknown>;
}

export class Enrollment {
  private readonly context: ServiceContext;

  constructor(context: ServiceContext) {
    this.context = context;
  }

  enroll(request: { connectorId: string; token: string; csrPem: string }): EnrollResult {
    const { records, store, options, metrics, log } = this.context;
    const { connectorId } = request;
    const record = records.get(connectorId);
    const tokenId = parseTokenId(request.token);
    const stored = tokenId ? store.tokenById(tokenId) : undefined;
    const token = stored && tokenMatchesHash(request.token, stored.tokenHash) ? stored : undefined;
    if (!record || !token) throw this.refuseAnonymous(connectorId, record !== undefined, 'unknown');
    if (token.connectorId !== connectorId) throw this.refuseAnonymous(connectorId, true, 'wrong_connector');
    // From here on the caller holds one of this connector's own tokens.
    const now = this.context.now();
    const refusal = ownTokenRefusal(record, token, now);
    const maybeRepeat = refusal?.reason === 'used' && answerMayHaveBeenLost(record, token.tokenId);
    if (refusal && !maybeRepeat) throw this.refuseProven(record, refusal);
    const issued = this.issue(record, request.csrPem, now);
    if (refusal) return this.answerAgain(record, token.tokenId, issued, refusal, now);
    const { answer, record: issuedRecord } = issued;
    const certificate: CertificateRecord = { ...issuedRecord, enrollmentTokenId: token.tokenId };
    records.commit((tx) => {
      // Consumed exactly once: the UPDATE only matches a live row.
      if (!store.finishToken(token.tokenId, 'used', now))
        throw cpError('ENROLLMENT_TOKEN_INVALID', 'the enrollment token is not valid');
      tx.update(connectorId, now, (draft) => {
        tx.audit(
          'endpoint.enrolled',
          connectorId,
          {
            tokenId: token.tokenId,
            serial: certificate.serial,
            notAfter: answer.notAfter,
            fingerprintSha256: certificate.fingerprintSha256,
            recoveryRequestId: draft.state === 'recovering' ? (draft.recovery?.requestId ?? null) : null,
          },
          now,
        );
        draft.liveToken = null;
        draft.certificate = certificate;
        draft.enrolledAt = now;
        draft.lastHeartbeatAt = null;
        draft.paths = [];
        tx.moveTo(draft, 'enrolling', now, 'enrolled');
      });
    });
    metrics.enrollments.inc();
    log.info({ connectorId, serial: answer.serial, notAfter: answer.notAfter }, 'connector enrolled');
    return { ...answer, heartbeatIntervalSeconds: options.heartbeatIntervalSeconds };
  }

  /** The certificate for the CSR; a CSR it refuses is a proven refusal (the caller holds a token). */
  private issue(record: LiveRecord, csrPem: string, now: number): IssuedCertificate {
    try {
      return issueCertificate(this.context.options, record.connectorId, csrPem, now);
    } catch (error) {
      if (isCodedError(error) && error.code.startsWith('CSR_')) {
        const reason = error.code.toLowerCase() as EnrollmentFailureReason;
        throw this.refuseProven(record, { code: error.code as ErrorCode, reason, message: error.message });
      }
      throw error;
    }
  }

  /**
   * The spent token again, before any heartbeat, with a CSR of the very key its certificate was
   * issued for: the agent that paired asking again because the answer never reached it (a timeout
   * under load, a crash before the certificate was written; the agent keeps its key before spending
   * the token and reuses it). It gets a certificate for that key, which supersedes the one it never
   * received; nothing else changes, so this is the same pairing answered again, not a second one.
   * Anyone else holding the spent token cannot sign a CSR for that key, and is refused as before.
   */
  private answerAgain(
    record: LiveRecord,
    tokenId: string,
    issued: IssuedCertificate,
    refusal: Refusal,
    now: number,
  ): EnrollResult {
    const { records, options, metrics, log } = this.context;
    const { connectorId } = record;
    const { answer, record: issuedRecord } = issued;
    if (issuedRecord.publicKeySha256 !== record.certificate?.publicKeySha256)
      throw this.refuseProven(record, refusal);
    const certificate: CertificateRecord = { ...issuedRecord, enrollmentTokenId: tokenId };
    records.commit((tx) => {
      tx.update(connectorId, now, (draft) => {
        tx.audit(
          'endpoint.enrolled',
          connectorId,
          {
            tokenId,
            serial: certificate.serial,
            notAfter: answer.notAfter,
            fingerprintSha256: certificate.fingerprintSha256,
            answeredAgain: true,
            supersededSerial: draft.certificate?.serial ?? null,
          },
          now,
        );
        draft.certificate = certificate;
      });
    });
    metrics.enrollmentsAnsweredAgain.inc();
    log.info(
      { connectorId, serial: answer.serial, notAfter: answer.notAfter },
      'connector enrolled again with the same token and key: the answer to its enrollment was lost',
    );
    return { ...answer, heartbeatIntervalSeconds: options.heartbeatIntervalSeconds };
  }

  /**
   * Refuses an enrollment from a caller that proved nothing: an unknown connector, a token that is
   * no token of this connector (made up, or another connector's). Such a caller may change nothing:
   * no state, no revision, no change-feed row, no lastEnrollmentFailure. It is counted, and audited
   * within a budget; the answer is the unknown token's, so it learns neither whether the connector
   * exists nor whether it is retired.
   */
  private refuseAnonymous(
    connectorId: string,
    existing: boolean,
    reason: EnrollmentFailureReason,
  ): CodedError {
    const { store, budget, metrics } = this.context;
    const code = 'ENROLLMENT_TOKEN_INVALID';
    metrics.enrollmentFailures.inc({ reason });
    const audited = budget.anonymousAudit(connectorId, existing);
    if (audited)
      store.appendAudit(this.context.now(), 'gateway.enrollment_failed', connectorId, { code, reason });
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
  private refuseProven(record: LiveRecord, refusal: Refusal): CodedError {
    const { records, budget, metrics } = this.context;
    const { code, reason, message, details } = refusal;
    const { connectorId } = record;
    const now = this.context.now();
    const needsRecovery = reason === 'retired' && record.state !== 'needs_recovery';
    const audited = needsRecovery || budget.take('provenAudit', connectorId);
    const recorded = needsRecovery || budget.take('failureRecord', connectorId);
    records.commit((tx) => {
      if (audited) tx.audit('gateway.enrollment_failed', connectorId, { code, reason }, now);
      if (!recorded) return;
      tx.update(connectorId, now, (draft) => {
        draft.lastEnrollmentFailure = { code, at: now };
        if (needsRecovery) tx.moveTo(draft, 'needs_recovery', now, 'enrollment attempted after retirement');
      });
    });
    metrics.enrollmentFailures.inc({ reason });
    this.logRefusal(audited, { connectorId, code, reason });
    return cpError(code, message, details);
  }

  /** One warning per audited refusal: the log grows no faster than the audit log. */
  private logRefusal(audited: boolean, fields: { connectorId: string; code: string; reason: string }): void {
    const { log, metrics } = this.context;
    if (audited) {
      log.warn(fields, 'enrollment refused');
      return;
    }
    metrics.auditSuppressed.inc();
    log.debug(fields, 'enrollment refused (audit budget spent)');
  }
}

/**
 * True while the record is paired by this token and has not beaten yet: the one window in which a
 * second enrollment with the spent token can be its own agent's retry of a lost answer.
 */
function answerMayHaveBeenLost(record: LiveRecord, tokenId: string): boolean {
  const certificate = record.certificate;
  return (
    record.state === 'enrolling' &&
    certificate?.enrollmentTokenId === tokenId &&
    certificate.publicKeySha256 !== undefined
  );
}

/** Why one of the connector's own tokens cannot pair it now; undefined when it can. */
function ownTokenRefusal(record: LiveRecord, token: TokenRow, now: number): Refusal | undefined {
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
