// A .tar.gz of a few text files, written without a dependency: POSIX ustar headers (the format
// every tar reads), each file padded to 512-byte blocks, two empty blocks at the end, then gzip
// (node:zlib). The report bundle is a handful of small files, so it is built in memory.
//
// Entry names come from Kubernetes names (a pod or claim name is up to 253 characters), longer
// than ustar's two name fields hold (a name of 100 bytes after a prefix of 155, split at a '/').
// Such a path goes in a POSIX.1-2001 (pax) extended header before its entry: a `path` record,
// which GNU tar, bsdtar and every other pax reader take over the ustar name. The ustar name of
// such an entry is the path cut to 100 bytes, what a reader from before 2001 is left with.
import { gzipSync } from 'node:zlib';
import { CodedError } from '../lib/errors.ts';

export interface TarEntry {
  /** Path inside the archive: relative, '/'-separated names, of any length. */
  path: string;
  content: string | Buffer;
}

const BLOCK = 512;
const NAME_MAX = 100;
const PREFIX_MAX = 155;

function writeField(header: Buffer, offset: number, length: number, value: string): void {
  // Buffer.write writes no partial character, so a cut name stays valid UTF-8.
  header.write(value, offset, Math.min(length, Buffer.byteLength(value)), 'utf8');
}

/** A number as ustar writes it: octal, zero-padded, NUL-terminated. */
function octal(value: number, length: number): string {
  return `${value.toString(8).padStart(length - 1, '0')}\0`;
}

/**
 * ustar's two name fields: a path longer than 100 bytes is split at a '/' into a prefix (at most
 * 155 bytes) and a name (at most 100); undefined when no split fits.
 */
function splitPath(path: string): { prefix: string; name: string } | undefined {
  if (Buffer.byteLength(path) <= NAME_MAX) return { prefix: '', name: path };
  for (let at = path.indexOf('/'); at > 0; at = path.indexOf('/', at + 1)) {
    const prefix = path.slice(0, at);
    const name = path.slice(at + 1);
    if (Buffer.byteLength(prefix) <= PREFIX_MAX && Buffer.byteLength(name) <= NAME_MAX)
      return { prefix, name };
  }
  return undefined;
}

/**
 * A path a tar reader extracts where it says: relative, names between the slashes. Refused with the
 * path named: an empty or absolute path, an empty, '.' or '..' name (a '..' climbs out of the
 * directory the bundle is extracted into), a NUL (ustar's field terminator).
 */
function checkedPath(path: string): string {
  const names = path.split('/');
  const why =
    path.length === 0
      ? 'it is empty'
      : path.includes('\0')
        ? 'it holds a NUL character'
        : path.startsWith('/')
          ? 'it is absolute'
          : names.some((name) => name === '' || name === '.' || name === '..')
            ? "it has an empty, '.' or '..' name between its slashes"
            : undefined;
  if (why) throw new CodedError('TAR_PATH_INVALID', `tar entry path ${JSON.stringify(path)}: ${why}`);
  return path;
}

function header(name: string, prefix: string, size: number, mtime: Date, type: '0' | 'x'): Buffer {
  const block = Buffer.alloc(BLOCK);
  writeField(block, 0, NAME_MAX, name);
  writeField(block, 100, 8, octal(0o644, 8));
  writeField(block, 108, 8, octal(0, 8));
  writeField(block, 116, 8, octal(0, 8));
  writeField(block, 124, 12, octal(size, 12));
  writeField(block, 136, 12, octal(Math.floor(mtime.getTime() / 1000), 12));
  block.fill(' ', 148, 156); // the checksum counts itself as spaces
  writeField(block, 156, 1, type); // '0' a regular file, 'x' a pax extended header for the next one
  writeField(block, 257, 6, 'ustar\0');
  writeField(block, 263, 2, '00');
  writeField(block, 265, 32, 'root');
  writeField(block, 297, 32, 'root');
  writeField(block, 345, PREFIX_MAX, prefix);
  let sum = 0;
  for (const byte of block) sum += byte;
  writeField(block, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}

/**
 * One pax record, `<length> <key>=<value>\n`, where the length counts the whole record, its own
 * digits included (so a record is never 1000 bytes: 999, then 1001).
 */
function paxRecord(key: string, value: string): Buffer {
  const rest = ` ${key}=${value}\n`;
  const restBytes = Buffer.byteLength(rest);
  let length = restBytes;
  while (length !== restBytes + String(length).length) length = restBytes + String(length).length;
  return Buffer.from(`${length}${rest}`, 'utf8');
}

function padded(content: Buffer): Buffer[] {
  const padding = (BLOCK - (content.length % BLOCK)) % BLOCK;
  return padding > 0 ? [content, Buffer.alloc(padding)] : [content];
}

/** The header (after a pax header, for a long path) and the content of one entry. */
function entryParts(path: string, content: Buffer, mtime: Date): Buffer[] {
  const split = splitPath(checkedPath(path));
  if (split) return [header(split.name, split.prefix, content.length, mtime, '0'), ...padded(content)];
  const pax = paxRecord('path', path);
  const file = path.slice(path.lastIndexOf('/') + 1);
  return [
    // The pax header's own name is GNU tar's, PaxHeaders/<the file's name>: no reader extracts it.
    header(`PaxHeaders/${file}`, '', pax.length, mtime, 'x'),
    ...padded(pax),
    header(path, '', content.length, mtime, '0'),
    ...padded(content),
  ];
}

/** The entries as one gzipped tar archive. */
export function tarGz(entries: readonly TarEntry[], mtime = new Date()): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const content = typeof entry.content === 'string' ? Buffer.from(entry.content, 'utf8') : entry.content;
    parts.push(...entryParts(entry.path, content, mtime));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return gzipSync(Buffer.concat(parts));
}
