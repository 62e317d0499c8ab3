// Agent: enrollment with a single-use token and a CSR. The endpoint has no other authentication, so
// only a caller holding one of the connector's own tokens may change its record, and what anyone can
// make it write is bounded (budgets.ts).
import type { CodedError } from '../lib/errors.ts';
import { isCodedError } from '../lib/errors.ts';
import { certificateIssuedBy } from '../lib/pki.ts';
import { type IssuedCertificate, issueCertificate } from './connector-certificate.ts';
import { cpError, type ErrorCode } from './errors.ts';
import type { EnrollmentFailureReason } from './metrics.ts';
import { csrKeySha256 } from './pki.ts';
import type { ServiceContext } from './service-context.ts';
import {
  type CertificateRecord,
  type EnrollmentAnswer,
  isBootstrapClosed,
  type LiveRecord,
} from './state.ts';
import type { TokenRow } from './store.ts';
import { parseTokenId, tokenMatchesHash } from './tokens.ts';
import type { EnrollResult } from './views.ts';

/** Why an enrollment is refused, and what the caller is told. */
interface Refusal {
  code: ErrorCode;
  reason: EnrollmentFailureReason;
  message: string;
  details?: Record<string, unknown>;
  /**
   * The caller presented a token this connector paired with, after retirement: the runbook's
   * fallback of an agent whose identity is lost, so the connector moves to needs_recovery.
   */
  identityLost?: boolean;
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
    if (refusal) {
      const awaited = awaitedAnswer(record, token, now, options.ca.certPem);
      if (awaited && csrKeySha256(request.csrPem, connectorId) === awaited.answer.publicKeySha256)
        return this.answerAgain(record, token, awaited, now);
      throw this.refuseProven(record, refusal);
    }
    const { answer, record: issuedRecord, publicKeySha256 } = this.issue(record, request.csrPem, now);
    const certificate: CertificateRecord = {
      ...issuedRecord,
      enrollmentAnswer: { tokenId: token.tokenId, publicKeySha256, certificatePem: answer.certificatePem },
    };
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
   * The spent token again, before any heartbeat and within the token's lifetime, with a CSR of the
   * very key its certificate was issued for: the agent that paired asking again because the answer
   * never reached it (a timeout under load, a crash before the certificate was written; the agent
   * keeps its key before spending the token and reuses it). It is sent the same answer; nothing is
   * issued and the record does not change, so a replay of the original request changes nothing
   * either. Any other CSR (another key, an invalid one) is refused as the spent token always was.
   */
  private answerAgain(
    record: LiveRecord,
    token: TokenRow,
    awaited: AwaitedAnswer,
    now: number,
  ): EnrollResult {
    const { store, budget, options, metrics, log } = this.context;
    const { connectorId } = record;
    const { certificate, answer } = awaited;
    metrics.enrollmentsAnsweredAgain.inc();
    const fields = { connectorId, tokenId: token.tokenId, serial: certificate.serial };
    // An audit entry but no record write: within the budget of what its token holder may write.
    if (budget.take('provenAudit', connectorId)) {
      store.appendAudit(now, 'endpoint.enrollment_answered_again', connectorId, {
        tokenId: token.tokenId,
        serial: certificate.serial,
      });
      log.info(
        fields,
        'enrollment answered again: the same token and key before any heartbeat (a lost answer)',
      );
    } else {
      metrics.auditSuppressed.inc();
      log.debug(fields, 'enrollment answered again (audit budget spent)');
    }
    return {
      certificatePem: answer.certificatePem,
      caPem: options.ca.certPem,
      serial: certificate.serial,
      notAfter: new Date(certificate.notAfter).toISOString(),
      heartbeatIntervalSeconds: options.heartbeatIntervalSeconds,
    };
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
    const needsRecovery = refusal.identityLost === true && record.state !== 'needs_recovery';
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

/** An enrollment's answer that may still be awaited, with the certificate record that holds it. */
interface AwaitedAnswer {
  certificate: CertificateRecord;
  answer: EnrollmentAnswer;
}

/**
 * The answer a spent token's enrollment gave, while it may still be awaited: the connector is
 * enrolling on that token's certificate (no heartbeat yet, no renewal since), the token's own
 * lifetime has not passed (a key and token left behind cannot be turned into an identity later),
 * and the certificate still works: not expired, and issued by the CA this control plane answers with
 * (its CA files may have been replaced since). Otherwise the spent token is refused as always.
 */
function awaitedAnswer(
  record: LiveRecord,
  token: TokenRow,
  now: number,
  caPem: string,
): AwaitedAnswer | undefined {
  const certificate = record.certificate;
  const answer = certificate?.enrollmentAnswer;
  if (!certificate || !answer || answer.tokenId !== token.tokenId) return undefined;
  if (token.status !== 'used' || record.state !== 'enrolling' || token.expiresAt <= now) return undefined;
  if (certificate.notAfter <= now || !certificateIssuedBy(answer.certificatePem, caPem)) return undefined;
  return { certificate, answer };
}

/** Why one of the connector's own tokens cannot pair it now; undefined when it can. */
function ownTokenRefusal(record: LiveRecord, token: TokenRow, now: number): Refusal | undefined {
  if (isBootstrapClosed(record)) {
    // The connector that lost its identity and fell back to its bootstrap token (the runbook's
    // branch 3): tell it so, since holding the token proves it already knows. Only a token it paired
    // with says its identity is lost: one revoked or expired unused (superseded before the agent got
    // it) proves only that a copy of it survived somewhere, so it is refused alike but moves nothing.
    return {
      identityLost: token.status === 'used',
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
