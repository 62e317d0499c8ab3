// The error the operator's Kubernetes client throws for an error answer. It has the shape the
// operator's callers already read (api-errors.ts): the HTTP status as a number in `code`, as
// client-node's ApiException has it, and the API server's metav1.Status as the parsed `body`, so a
// 404, 409, 410, 422 or 403 is told apart by status and a 422's field causes are at hand. A 429
// (API Priority and Fairness, or a rate limit) carries the server's Retry-After.
import { STATUS_CODES } from 'node:http';
import { isRetryableStatus } from '../../lib/https-json.ts';

/** The parts of a metav1.Status the operator reads. */
export interface KubeStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    kind?: string;
    causes?: Array<{ field?: string; message?: string; reason?: string }>;
  };
}

export class KubeApiError extends Error {
  /** The HTTP status (named `code` like client-node's ApiException, which api-errors.ts reads). */
  readonly code: number;
  /** The API server's Status, parsed; undefined when the answer was not one (a proxy's page). */
  readonly body: KubeStatus | undefined;
  /** True when the same request may succeed later (5xx, 429, 408: https-json's one rule). */
  readonly temporary: boolean;
  /** How long the server asked to wait before a retry (Retry-After), if it said. */
  readonly retryAfterMs: number | undefined;

  constructor(code: number, message: string, body: KubeStatus | undefined, retryAfterMs?: number) {
    super(message);
    this.name = 'KubeApiError';
    this.code = code;
    this.body = body;
    this.temporary = isRetryableStatus(code);
    this.retryAfterMs = retryAfterMs;
  }
}

/** Longest text of a non-Status answer kept in the message (a proxy's page is not worth more). */
const MAX_QUOTED = 200;

/**
 * The error for an error answer. The message is the Status's own message, or the status line and
 * the first line of whatever else came back; `secrets` (the credential the request carried) are
 * cut out of it, in case something in between echoed the request.
 */
export function kubeApiError(
  status: number,
  answer: { text: string; json: unknown; retryAfter?: string | string[] | undefined },
  secrets: readonly string[] = [],
): KubeApiError {
  const body = isStatus(answer.json) ? answer.json : undefined;
  const said =
    typeof body?.message === 'string' && body.message !== ''
      ? body.message
      : [
          `${status} ${STATUS_CODES[status] ?? 'error'}`,
          answer.text.split('\n')[0]?.trim().slice(0, MAX_QUOTED),
        ]
          .filter(Boolean)
          .join(': ');
  const message = secrets.reduce(
    (text, secret) => (secret.length > 0 ? text.split(secret).join('[REDACTED]') : text),
    said,
  );
  return new KubeApiError(status, message, body, retryAfterMs(answer.retryAfter));
}

function isStatus(value: unknown): value is KubeStatus {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'Status';
}

/** Retry-After as seconds (what the API server sends) or an HTTP date, in milliseconds from now. */
export function retryAfterMs(header: string | string[] | undefined, nowMs = Date.now()): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : undefined;
}
