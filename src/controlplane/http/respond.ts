// Writes answers: JSON bodies, and errors as { error: { code, message, details? } } with the
// status of their code. Anything that is not a CodedError is logged and answered as a generic 500,
// so no internal message (which could carry input) leaks to the client.
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { errorMessage, isCodedError } from '../../lib/errors.ts';

export function sendJson(res: ServerResponse, status: number, body?: unknown): void {
  if (res.headersSent) return;
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType: string): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, error: unknown, logger: Logger): number {
  if (isCodedError(error) && error.httpStatus < 500) {
    const body: { code: string; message: string; details?: Record<string, unknown> } = {
      code: error.code,
      message: error.message,
    };
    if (error.details) body.details = error.details;
    sendJson(res, error.httpStatus, { error: body });
    return error.httpStatus;
  }
  const status = isCodedError(error) ? error.httpStatus : 500;
  const code = isCodedError(error) ? error.code : 'INTERNAL_ERROR';
  logger.error({ code, err: errorMessage(error) }, 'request failed');
  sendJson(res, status, { error: { code, message: isCodedError(error) ? error.message : 'internal error' } });
  return status;
}
