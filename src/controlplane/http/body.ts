// Reads a JSON request body: content type must be application/json, at most `limit` bytes
// (64 KiB by the contract), valid UTF-8, and it must parse. Each failure has its own code (a body
// that is not UTF-8 is not JSON text: MALFORMED_JSON, saying so).
//
// An oversized body is not drained: reading stops once the limit is passed (or at once, when the
// declared Content-Length is over it), so a client cannot make the server read an unbounded upload.
// The caller answers the error; because the request is then incomplete, the server answers with
// `Connection: close` and Node destroys the socket once that answer is flushed.
import type { IncomingMessage } from 'node:http';
import { cpError } from '../errors.ts';

export const BODY_LIMIT_BYTES = 64 * 1024;

export function isJsonContentType(header: string | undefined): boolean {
  if (!header) return false;
  const mediaType = header.split(';')[0]?.trim().toLowerCase();
  return mediaType === 'application/json';
}

function tooLarge(limit: number) {
  return cpError('BODY_TOO_LARGE', `the body must be at most ${limit} bytes`);
}

export async function readJsonBody(req: IncomingMessage, limit = BODY_LIMIT_BYTES): Promise<unknown> {
  if (!isJsonContentType(req.headers['content-type'])) {
    req.resume();
    throw cpError('UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json');
  }
  const declared = Number(req.headers['content-length']);
  // Not a byte of it is read: the connection is closed after the answer instead.
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  const text = decodeUtf8(await readLimited(req, limit));
  try {
    return JSON.parse(text);
  } catch {
    throw cpError('MALFORMED_JSON', 'the body is not valid JSON');
  }
}

// Fatal: JSON text is UTF-8 (RFC 8259), and a lenient decoder turns each byte that is not into
// U+FFFD, three bytes in the record and in every answer that shows it, for each byte sent.
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function decodeUtf8(body: Buffer): string {
  try {
    return UTF8.decode(body);
  } catch {
    throw cpError('MALFORMED_JSON', 'the body is not valid UTF-8, which JSON text must be');
  }
}

/**
 * The body, or BODY_TOO_LARGE as soon as more than `limit` bytes arrived. Listeners rather than
 * `for await`: leaving an async iterator early destroys the request and with it the socket, before
 * the 413 could be written.
 */
function readLimited(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        stop();
        // Paused, the request's buffer fills and the HTTP parser stops reading the socket.
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (error: Error) => {
      stop();
      reject(error);
    };
    const onClose = () => {
      stop();
      reject(new Error('the request closed before its body was complete'));
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
    req.once('close', onClose);
  });
}
