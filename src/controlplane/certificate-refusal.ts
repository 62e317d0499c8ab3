// Why the control plane refuses a client certificate: one code per cause, each message in the
// enrollment troubleshooting guide's wording ("client certificate rejected: …"), each with the
// facts a connector agent needs to choose its next step. Clock skew, an expired certificate, a
// revoked one and a replaced one call for different steps, and only some of them for a new
// identity, so the agent branches on the code and the details, never on the text
// (docs/control-plane.md, "mTLS").

import { UNKNOWN_AUTHORITY_CODES } from '../lib/tls-verify-codes.ts';
import type { ErrorCode } from './errors.ts';
import type { RevokedCertificate } from './state.ts';

/** The contract's codes for a presented certificate refused (REQUIRED: none was presented). */
export type CertificateRefusalCode = Exclude<
  Extract<ErrorCode, `CLIENT_CERTIFICATE_${string}`>,
  'CLIENT_CERTIFICATE_REQUIRED'
>;

/** What is known about a refused certificate and its sender: for the log line and the audit entry. */
export interface PresentedCertificate {
  /** The connector id its SAN URI names, when it names one. */
  connectorId: string | null;
  /**
   * This control plane's CA signed it, so the connector id is a fact rather than anyone's claim:
   * only then is the refusal filed under that connector (and charged to its budget).
   */
  issuedHere: boolean;
  serial: string | null;
  remoteAddress: string | null;
}

export interface CertificateRefusal {
  code: CertificateRefusalCode;
  message: string;
  details?: Record<string, unknown>;
  certificate: PresentedCertificate;
}

export interface Validity {
  notBefore: number;
  notAfter: number;
}

const REJECTED = 'client certificate rejected';
const iso = (ms: number): string => new Date(ms).toISOString();

/** TLS refused the chain for another reason than its dates: the control plane's CA does not vouch for it. */
export function untrustedCertificate(
  verifyCode: string,
  certificate: PresentedCertificate,
): CertificateRefusal {
  const cause = UNKNOWN_AUTHORITY_CODES.has(verifyCode)
    ? `certificate signed by unknown authority (${verifyCode})`
    : `the certificate chain is not valid for this control plane (${verifyCode})`;
  return {
    code: 'CLIENT_CERTIFICATE_UNTRUSTED',
    message: `${REJECTED}: ${cause}`,
    details: { reason: verifyCode },
    certificate,
  };
}

/**
 * Outside its validity by the control plane's time (`serverTime`): the details let the agent compare
 * with its own clock and tell clock skew from a certificate that really expired. `verifyCode` names
 * TLS's judgement when it was TLS that refused.
 */
export function outsideValidity(
  code: 'CLIENT_CERTIFICATE_EXPIRED' | 'CLIENT_CERTIFICATE_NOT_YET_VALID',
  validity: Validity,
  serverTime: number,
  certificate: PresentedCertificate,
  verifyCode?: string,
): CertificateRefusal {
  const dates =
    code === 'CLIENT_CERTIFICATE_EXPIRED'
      ? `it expired at ${iso(validity.notAfter)} (valid from ${iso(validity.notBefore)})`
      : `it is valid from ${iso(validity.notBefore)} (until ${iso(validity.notAfter)})`;
  const tail = verifyCode ? ` (${verifyCode})` : '';
  return {
    code,
    message: `${REJECTED}: certificate has expired or is not yet valid: ${dates}; the control plane's time is ${iso(serverTime)}${tail}`,
    details: {
      notBefore: iso(validity.notBefore),
      notAfter: iso(validity.notAfter),
      serverTime: iso(serverTime),
    },
    certificate,
  };
}

export function revokedCertificate(
  revocation: RevokedCertificate,
  certificate: PresentedCertificate,
): CertificateRefusal {
  const by = revocation.requestId === null ? 'revoked' : `revoked by guided recovery ${revocation.requestId}`;
  return {
    code: 'CLIENT_CERTIFICATE_REVOKED',
    message: `${REJECTED}: ${by} at ${iso(revocation.revokedAt)}`,
    details: {
      revokedAt: iso(revocation.revokedAt),
      ...(revocation.requestId === null ? {} : { requestId: revocation.requestId }),
    },
    certificate,
  };
}

/** The connector holds a newer certificate: renewed, or paired again by another copy of the agent. */
export function supersededCertificate(
  replacedAt: number,
  certificate: PresentedCertificate,
): CertificateRefusal {
  return {
    code: 'CLIENT_CERTIFICATE_SUPERSEDED',
    message: `${REJECTED}: the client certificate was replaced by a newer one (renewed or paired again at ${iso(replacedAt)})`,
    details: { replacedAt: iso(replacedAt) },
    certificate,
  };
}

export function unknownCertificate(certificate: PresentedCertificate): CertificateRefusal {
  return {
    code: 'CLIENT_CERTIFICATE_UNKNOWN',
    message: `${REJECTED}: the client certificate belongs to no enrolled connector`,
    certificate,
  };
}

/** Signed by this CA but not a connector certificate: no SAN URI with the prefix, or a CN that differs. */
export function notConnectorCertificate(
  sanUriPrefix: string,
  certificate: PresentedCertificate,
): CertificateRefusal {
  return {
    code: 'CLIENT_CERTIFICATE_REJECTED',
    message:
      `${REJECTED}: certificate SAN does not match expected pattern: expected a URI SAN ` +
      `${sanUriPrefix}<connector id> and the subject CN <connector id>`,
    details: { expectedSanUriPrefix: sanUriPrefix },
    certificate,
  };
}
