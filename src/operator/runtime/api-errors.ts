// Reading client-node errors. An ApiException's own message holds the whole response (headers and
// body) over several lines; logs, statuses and coded errors want the HTTP status and the API
// server's one-line Status message instead.
import { errorMessage } from '../../lib/errors.ts';

/** HTTP status of a failed API call (ApiException `.code`, Watch errors `.statusCode`), if any. */
export function httpStatusOf(error: unknown): number | undefined {
  const { code, statusCode } = (error ?? {}) as { code?: unknown; statusCode?: unknown };
  if (typeof code === 'number') return code;
  return typeof statusCode === 'number' ? statusCode : undefined;
}

/** The metav1.Status an API error carries as its body, parsed; undefined when it is not JSON. */
export function apiStatusOf(
  error: unknown,
): { message?: unknown; details?: { causes?: unknown } } | undefined {
  const body = (error as { body?: unknown } | null)?.body;
  if (typeof body !== 'string') return (body ?? undefined) as ReturnType<typeof apiStatusOf>;
  try {
    return JSON.parse(body);
  } catch {
    // Not JSON (a proxy's HTML page, an empty body).
    return undefined;
  }
}

/** The API server's Status message, or the first line of the error's own message. */
export function apiErrorMessage(error: unknown): string {
  const message = apiStatusOf(error)?.message;
  if (typeof message === 'string' && message !== '') return message;
  const cause = (error as { cause?: unknown } | null)?.cause;
  const first = errorMessage(error).split('\n')[0] ?? '';
  // fetch() failures say only "fetch failed"; the reason (ECONNREFUSED, socket closed) is in the cause.
  return cause === undefined ? first : `${first}: ${errorMessage(cause).split('\n')[0]}`;
}

/** `HTTP 403: configmaps is forbidden: ...` or the plain message when there was no HTTP answer. */
export function describeApiError(error: unknown): string {
  const status = httpStatusOf(error);
  return status === undefined ? apiErrorMessage(error) : `HTTP ${status}: ${apiErrorMessage(error)}`;
}
