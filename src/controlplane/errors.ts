// Every error code the control plane can answer with, and its HTTP status. The codes are the
// contract's (ErrorCode, generated from api/openapi.yaml): the table must name each of them and no
// other, or it does not compile. Every throw goes through cpError() so a code cannot be invented at
// a call site.
import type { ErrorCode as ContractErrorCode } from '../contract/control-plane-api.generated.ts';
import { CodedError } from '../lib/errors.ts';
import { isRetryableStatus } from '../lib/https-json.ts';

export const ERROR_STATUS = {
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

export type ErrorCode = keyof typeof ERROR_STATUS;

export function cpError(code: ErrorCode, message: string, details?: Record<string, unknown>): CodedError {
  const status = ERROR_STATUS[code];
  return new CodedError(code, message, {
    httpStatus: status,
    temporary: isRetryableStatus(status),
    details,
  });
}
