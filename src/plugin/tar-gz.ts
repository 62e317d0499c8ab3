// A .tar.gz of a few text files, written without a dependency: POSIX ustar headers (the format
// every tar reads), each file padded to 512-byte blocks, two empty blocks at the end, then gzip
// (node:zlib). The report bundle is a handful of small files, so it is built in memory.
import { gzipSync } from 'node:zlib';

export interface TarEntry {
  /** Path inside the archive: at most 255 bytes, split at a '/' as ustar needs. */
  path: string;
  content: string | Buffer;
}

const BLOCK = 512;

function writeField(header: Buffer, offset: number, length: number, value: string): void {
  header.write(value, offset, Math.min(length, Buffer.byteLength(value)), 'utf8');
}

/** A number as ustar writes it: octal, zero-padded, NUL-terminated. */
function octal(value: number, length: number): string {
  return `${value.toString(8).padStart(length - 1, '0')}\0`;
}

/**
 * ustar's two name fields: a path longer than 100 bytes is split at a '/' into a prefix (at most
 * 155 bytes) and a name (at most 100).
 */
function splitPath(path: string): { prefix: string; name: string } {
  if (Buffer.byteLength(path) <= 100) return { prefix: '', name: path };
  for (let at = path.indexOf('/'); at > 0; at = path.indexOf('/', at + 1)) {
    const prefix = path.slice(0, at);
    const name = path.slice(at + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100) return { prefix, name };
  }
  throw new Error(
    `tar path too long for ustar (a name of at most 100 bytes after a prefix of at most 155): ${path}`,
  );
}

function header(path: string, size: number, mtime: Date): Buffer {
  const { prefix, name } = splitPath(path);
  const block = Buffer.alloc(BLOCK);
  writeField(block, 0, 100, name);
  writeField(block, 100, 8, octal(0o644, 8));
  writeField(block, 108, 8, octal(0, 8));
  writeField(block, 116, 8, octal(0, 8));
  writeField(block, 124, 12, octal(size, 12));
  writeField(block, 136, 12, octal(Math.floor(mtime.getTime() / 1000), 12));
  block.fill(' ', 148, 156); // the checksum counts itself as spaces
  writeField(block, 156, 1, '0'); // a regular file
  writeField(block, 257, 6, 'ustar\0');
  writeField(block, 263, 2, '00');
  writeField(block, 265, 32, 'root');
  writeField(block, 297, 32, 'root');
  writeField(block, 345, 155, prefix);
  let sum = 0;
  for (const byte of block) sum += byte;
  writeField(block, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}

/** The entries as one gzipped tar archive. */
export function tarGz(entries: readonly TarEntry[], mtime = new Date()): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const content = typeof entry.content === 'string' ? Buffer.from(entry.content, 'utf8') : entry.content;
    parts.push(header(entry.path, content.length, mtime), content);
    const padding = (BLOCK - (content.length % BLOCK)) % BLOCK;
    if (padding > 0) parts.push(Buffer.alloc(padding));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return gzipSync(Buffer.concat(parts));
}
