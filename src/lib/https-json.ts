// The one way this package sends a JSON request over HTTPS and reads the answer: the operator's
// admin client, the agent's client and the operator's Kubernetes client all go through here, so
// they agree on the deadline, the answer size limit, what an error answer means and which ones are
// worth retrying. `requestStream` is the same request with the answer handed over as it arrives,
// for answers that do not end (a Kubernetes watch).
//
// Built on node:https rather than undici (weighed for issue 9): the agent explains a failed request
// by the phase it reached (DNS, TCP connect, TLS handshake, waiting for the answer), which needs the
// request's own socket and its `reusedSocket` flag; node:https hands both out per request, undici's
// dispatcher hides them. node:https is also already there: no dependency for two small clients.
import type { Agent, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { CodedError, type CodedErrorOptions } from './errors.ts';

/** Answers larger than this are refused unless the caller sets its own limit: most are a few KiB. */
export const DEFAULT_MAX_ANSWER_BYTES = 256 * 1024;

export interface JsonRequest {
  method: string;
  url: URL | string;
  /** TLS settings and connection reuse (an https.Agent, or a proxying agent built on http.Agent). */
  agent: Agent;
  headers?: Record<string, string>;
  /** Sent as the body, serialised; already serialised text is sent as it is. */
  body?: unknown;
  /** One deadline for the whole request: name lookup, connect, handshake and the full answer. */
  timeoutMs: number;
  /** The largest answer accepted (DEFAULT_MAX_ANSWER_BYTES when not given). */
  maxAnswerBytes?: number;
  /** The request's socket, as soon as it has one (`reused`: a kept-alive connection). */
  onSocket?: (socket: Socket, reused: boolean) => void;
  /** The answer's status line and headers arrived; its body is being read. */
  onAnswer?: (answer: IncomingMessage) => void;
}

export interface JsonAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body as text ('' when empty). */
  text: string;
  /** The body parsed as JSON, or undefined when it is empty or not JSON. */
  json: unknown;
}

/**
 * Sends one request and resolves with whatever HTTP status comes back (turning an error status into
 * an error is answerError's job, so each caller decides which statuses it expects). Rejects with the
 * transport's own error (its `code`, such as ECONNREFUSED or a TLS code, intact for the caller to
 * explain), with code REQUEST_TIMEOUT when the deadline passes first, or with BAD_RESPONSE for an
 * answer over MAX_ANSWER_BYTES.
 */
export function requestJson(options: JsonRequest): Promise<JsonAnswer> {
  const { payload, headers } = encode(options);
  const maxAnswerBytes = options.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES;
  return new Promise((resolve, reject) => {
    let answer: IncomingMessage | undefined;
    let settled = false;
    // The first of answer, error and deadline decides; later events of a destroyed request are ignored.
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(deadline);
      return true;
    };
    const fail = (error: unknown) => {
      if (settle()) reject(error);
    };
    const request = httpsRequest(
      options.url,
      { method: options.method, agent: options.agent, headers },
      (res) => {
        answer = res;
        options.onAnswer?.(res);
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxAnswerBytes) {
            res.destroy(
              new CodedError(
                'BAD_RESPONSE',
                `the answer to ${pathOf(options.url)} exceeds ${maxAnswerBytes} bytes`,
              ),
            );
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', fail);
        res.on('end', () => {
          if (!settle()) return;
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: parseJson(text) });
        });
      },
    );
    const deadline = setTimeout(() => {
      const timedOut = Object.assign(new Error(`no answer within ${options.timeoutMs} ms`), {
        code: 'REQUEST_TIMEOUT',
      });
      fail(timedOut);
      answer?.destroy(timedOut);
      request.destroy(timedOut);
    }, options.timeoutMs);
    request.on('socket', (socket) => options.onSocket?.(socket, request.reusedSocket));
    request.on('error', fail);
    request.end(payload);
  });
}

export interface StreamRequest {
  method: string;
  url: URL | string;
  agent: Agent;
  headers?: Record<string, string>;
  body?: unknown;
  /** The deadline for the answer's status line and headers; the body then takes as long as it takes. */
  timeoutMs: number;
}

export interface StreamAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body as it arrives; the caller reads it (or `readAnswer` it) and ends it with `abort`. */
  body: IncomingMessage;
  /** Ends the request and its answer (no more data or end events); safe to call more than once. */
  abort(reason?: Error): void;
}

/**
 * Sends one request and resolves as soon as the answer's status line and headers arrive, whatever
 * the status, with the body still to be read. Rejects as requestJson does (the transport's own
 * error, or REQUEST_TIMEOUT when the headers do not arrive in time).
 */
export function requestStream(options: StreamRequest): Promise<StreamAnswer> {
  const { payload, headers } = encode(options);
  return new Promise((resolve, reject) => {
    let settled = false;
    const request = httpsRequest(
      options.url,
      { method: options.method, agent: options.agent, headers },
      (res) => {
        if (settled) {
          res.destroy();
          return;
        }
        settled = true;
        clearTimeout(deadline);
        const abort = (reason?: Error) => {
          res.destroy(reason);
          request.destroy(reason);
        };
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, abort });
      },
    );
    const deadline = setTimeout(() => {
      const timedOut = Object.assign(new Error(`no answer within ${options.timeoutMs} ms`), {
        code: 'REQUEST_TIMEOUT',
      });
      request.destroy(timedOut);
    }, options.timeoutMs);
    request.on('error', (error) => {
      // After the answer arrived, errors belong to the body the caller reads.
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      reject(error);
    });
    request.end(payload);
  });
}

/** Reads a streamed answer's whole body (at most `maxAnswerBytes`, else BAD_RESPONSE), e.g. an error answer. */
export function readAnswer(
  answer: StreamAnswer,
  maxAnswerBytes = DEFAULT_MAX_ANSWER_BYTES,
): Promise<{ text: string; json: unknown }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    answer.body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxAnswerBytes) {
        const tooLarge = new CodedError('BAD_RESPONSE', `the answer exceeds ${maxAnswerBytes} bytes`);
        answer.abort(tooLarge);
        reject(tooLarge);
        return;
      }
      chunks.push(chunk);
    });
    answer.body.on('error', reject);
    answer.body.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      resolve({ text, json: parseJson(text) });
    });
  });
}

/** The body serialised (text is sent as it is) and the headers that go with it. */
function encode(options: { body?: unknown; headers?: Record<string, string> }): {
  payload: string | undefined;
  headers: Record<string, string | number>;
} {
  const payload =
    options.body === undefined
      ? undefined
      : typeof options.body === 'string'
        ? options.body
        : JSON.stringify(options.body);
  const headers: Record<string, string | number> = { accept: 'application/json', ...options.headers };
  if (payload !== undefined) {
    headers['content-type'] ??= 'application/json';
    headers['content-length'] = Buffer.byteLength(payload);
  }
  return { payload, headers };
}

/**
 * Whether an error answer may succeed when retried later: the server's own trouble (5xx), a rate
 * limit (429) or a request the server gave up waiting for (408). Every other status is permanent.
 */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

export interface AnswerErrorOptions {
  /** What to say when the answer carries no message of its own. */
  fallbackMessage: string;
  /** Strings that must never be repeated in the error (e.g. the credential the request carried). */
  redact?: readonly string[];
  /** Public facts added to the answer's own details. */
  details?: Record<string, unknown>;
  /** The error class to build (a subclass marks the server's words as such for whoever shows them). */
  errorClass?: new (
    code: string,
    message: string,
    options: CodedErrorOptions,
  ) => CodedError;
}

/**
 * The error for an error answer of this API (`{error: {code, message, details?}}`), keeping the
 * server's code and words (HTTP_<status> when it sent none) and whether a retry may help.
 */
export function answerError(status: number, body: unknown, options: AnswerErrorOptions): CodedError {
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)
    ?.error;
  const secrets = options.redact ?? [];
  const code = typeof error?.code === 'string' ? redact(error.code, secrets) : `HTTP_${status}`;
  const said = typeof error?.message === 'string' ? error.message : options.fallbackMessage;
  const given =
    error?.details && typeof error.details === 'object'
      ? (error.details as Record<string, unknown>)
      : undefined;
  const merged = options.details ? { ...given, ...options.details } : given;
  const details = merged && secrets.length > 0 ? (redactValue(merged, secrets, 0) as typeof merged) : merged;
  const ErrorClass = options.errorClass ?? CodedError;
  return new ErrorClass(code, redact(said, secrets), {
    httpStatus: status,
    temporary: isRetryableStatus(status),
    ...(details ? { details } : {}),
  });
}

/** Something at the URL that echoes the request (a proxy's error page) must not carry a secret on. */
function redact(text: string, secrets: readonly string[]): string {
  return secrets.reduce(
    (result, secret) => (secret.length > 0 ? result.split(secret).join('[REDACTED]') : result),
    text,
  );
}

/** Deeper than any details this API sends: a hostile answer's nesting ends here, not in a stack overflow. */
const DETAILS_DEPTH_MAX = 16;

/**
 * The details as the server gave them with every secret redacted from each string, key and value,
 * at any depth (a secret inside a string that itself holds JSON is still a plain substring there).
 */
function redactValue(value: unknown, secrets: readonly string[], depth: number): unknown {
  if (typeof value === 'string') return redact(value, secrets);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= DETAILS_DEPTH_MAX) return '[TRUNCATED]';
  if (Array.isArray(value)) return value.map((item) => redactValue(item, secrets, depth + 1));
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [redact(key, secrets), redactValue(item, secrets, depth + 1)]),
  );
}

function parseJson(text: string): unknown {
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function pathOf(url: URL | string): string {
  return typeof url === 'string' ? new URL(url).pathname : url.pathname;
}
