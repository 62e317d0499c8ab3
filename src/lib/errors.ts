// Typed errors with a stable code, modelled on undici's and fastify's coded errors. Every error
// that crosses a module boundary is one of these, so callers branch on `code`, never on text.
// `temporary` separates "retry with backoff" from "permanent: stop and wait for a change".

export interface CodedErrorOptions {
  /** HTTP status that fits, for errors that are answered over HTTP. */
  httpStatus?: number;
  /** True when retrying later may succeed (network, conflict, not-yet-ready). */
  temporary?: boolean;
  cause?: unknown;
  /** Extra public facts for the caller; never secrets. */
  details?: Record<string, unknown>;
}

export class CodedError extends Error {
  readonly code: string;
  readonly httpStatus: number;
  readonly temporary: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, options: CodedErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CodedError';
    this.code = code;
    this.httpStatus = options.httpStatus ?? 500;
    this.temporary = options.temporary ?? false;
    this.details = options.details;
  }

  toJSON(): { code: string; message: string; details?: Record<string, unknown> } {
    return this.details
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message };
  }
}

export function isCodedError(value: unknown, code?: string): value is CodedError {
  return value instanceof CodedError && (code === undefined || value.code === code);
}

/**
 * Any thrown value as a CodedError: a CodedError as it is, anything else (a socket error, a bug)
 * as a temporary error with `code`, its message and the original as the cause.
 */
export function asCodedError(error: unknown, code: string): CodedError {
  if (error instanceof CodedError) return error;
  return new CodedError(code, errorMessage(error), { temporary: true, cause: error });
}

/** A file system error's code (ENOENT, EACCES, ...), else its message: the short cause a person can act on. */
export function fsErrorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException | null)?.code ?? errorMessage(error);
}

/** Message of any thrown value, for logs; never includes a stack or request body. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
