// Every error code the control plane can answer with, and its HTTP status: the contract's table
// (src/contract/error-codes.ts). Every throw goes through cpError() so a code cannot be invented at
// a call site.
import { CONTRACT_ERROR_STATUS } from '../contract/error-codes.ts';
import { CodedError } from '../lib/errors.ts';
import { isRetryableStatus } from '../lib/https-json.ts';

export const ERROR_STATUS = CONTRACT_ERROR_STATUS;

export type ErrorCode = keyof typeof ERROR_STATUS;

export function cpError(code: ErrorCode, message: string, details?: Record<string, unknown>): CodedError {
  const status = ERROR_STATUS[code];
  return new CodedError(code, message, {
    httpStatus: status,
    temporary: isRetryableStatus(status),
    details,
  });
}
