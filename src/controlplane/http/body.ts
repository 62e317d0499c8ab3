// Reads a JSON request body: content type must be application/json, at most `limit` bytes
// (64 KiB by the contract), and it must parse. Each failure has its own code.
import type { IncomingMessage } from 'node:http';
import { cpError } from '../errors.ts';

export const BODY_LIMIT_BYTES = 64 * 1024;

export function isJsonContentType(header: string | undefined): boolean {
  if (!header) return false;
  const mediaType = header.split(';')[0]?.trim().toLowerCase();
  return mediaType === 'application/json';
}

export async function readJsonBody(req: IncomingMessage, limit = BODY_LIMIT_BYTES): Promise<unknown> {
  if (!isJsonContentType(req.headers['content-type'])) {
    req.resume();
    throw cpError('UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json');
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    throw cpError('BODY_TOO_LARGE', `the body must be at most ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > limit) tooLarge = true;
    if (!tooLarge) chunks.push(buffer);
  }
  if (tooLarge) throw cpError('BODY_TOO_LARGE', `the body must be at most ${limit} bytes`);
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw cpError('MALFORMED_JSON', 'the body is not valid JSON');
  }
}
