// Answers what Node's HTTP parser refuses before there is a request to route (header fields over
// the size limit, bytes that are not HTTP, a request that took too long) with the standard JSON
// error body. Without a 'clientError' listener Node writes a bare status line with no body, which
// the clients (and the contract) cannot read a code from.
//
// Mirrors Node's own default (lib/_http_server.js socketOnError): answer only when the socket is
// still writable and no answer of an earlier request on it has started; then close.
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ERROR_STATUS, type ErrorCode } from '../errors.ts';

const ANSWERS: Record<string, { code: ErrorCode; message: string }> = {
  HPE_HEADER_OVERFLOW: {
    code: 'HEADERS_TOO_LARGE',
    message: 'the request header fields are larger than the server accepts',
  },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: {
    code: 'BODY_TOO_LARGE',
    message: 'the chunk extensions of the body are larger than the server accepts',
  },
  ERR_HTTP_REQUEST_TIMEOUT: { code: 'REQUEST_TIMEOUT', message: 'the request did not arrive in time' },
};
const MALFORMED = { code: 'MALFORMED_REQUEST', message: 'the request is not valid HTTP/1.1' } as const;

/** How long a client that never closes its side may keep a refused connection open. */
const LINGER_MS = 5_000;

/** The parser reports every later chunk on a broken connection again: answer once. */
const answered = new WeakSet<Duplex>();

export function answerClientError(error: Error & { code?: string }, socket: Duplex, logger: Logger): void {
  if (answered.has(socket)) return;
  answered.add(socket);
  // Debug only: anyone can send broken requests, so this must not become a log line each.
  logger.debug({ code: error.code, err: error.message }, 'unparseable request refused');
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const { code, message } = ANSWERS[error.code ?? ''] ?? MALFORMED;
  const status = ERROR_STATUS[code];
  const body = JSON.stringify({ error: { code, message } });
  // end(), not destroy(): closing with the client's unread bytes pending would reset the connection
  // and could discard the answer before the client reads it.
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
      'content-type: application/json; charset=utf-8\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      'cache-control: no-store\r\nconnection: close\r\n\r\n' +
      body,
  );
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}
