// Every error code of the control-plane contract (ErrorCode, generated from api/openapi.yaml) and
// its HTTP status (the contract's x-http-status): the table must name each code and no other, or
// it does not compile. The reference control plane answers with these codes only (errors.ts), and
// the operator tells a contract code from a code a control plane made up by it (a made-up one is
// quoted as text but never becomes a metric label: it could name a new series at every answer).
import type { ErrorCode as ContractErrorCode } from './control-plane-api.generated.ts';

export const CONTRACT_ERROR_STATUS = {
  INVALID_REQUEST: 400,
  MALFORMED_REQUEST: 400,
  MALFORMED_JSON: 400,
  TTL_TOO_LONG: 400,
  CSR_INVALID: 400,
  CSR_SUBJECT_MISMATCH: 400,
  CSR_KEY_UNSUPPORTED: 400,
  UNAUTHORIZED: 401,
  ENROLLMENT_TOKEN_INVALID: 401,
  ENROLLMENT_TOKEN_EXPIRED: 401,
  ENROLLMENT_TOKEN_REVOKED: 401,
  CLIENT_CERTIFICATE_REQUIRED: 401,
  CLIENT_CERTIFICATE_UNTRUSTED: 401,
  CLIENT_CERTIFICATE_EXPIRED: 401,
  CLIENT_CERTIFICATE_NOT_YET_VALID: 401,
  CLIENT_CERTIFICATE_REVOKED: 401,
  CLIENT_CERTIFICATE_SUPERSEDED: 401,
  CLIENT_CERTIFICATE_UNKNOWN: 401,
  CLIENT_CERTIFICATE_REJECTED: 401,
  NOT_FOUND: 404,
  CONNECTOR_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  REQUEST_TIMEOUT: 408,
  IDEMPOTENCY_KEY_CONSUMED: 409,
  CONNECTOR_ID_CONFLICT: 409,
  RECOVERY_REQUIRED: 409,
  RECOVERY_NOT_NEEDED: 409,
  CURSOR_EXPIRED: 410,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RENEWAL_RATE_LIMITED: 429,
  HEADERS_TOO_LARGE: 431,
  INTERNAL_ERROR: 500,
} as const satisfies Record<ContractErrorCode, number>;

/** True for a code the contract names (an answer's code may be anything a server sends). */
export function isContractErrorCode(code: unknown): code is ContractErrorCode {
  return typeof code === 'string' && Object.hasOwn(CONTRACT_ERROR_STATUS, code);
}
