// The one atomic file write (src/lib/write-file-atomic.ts), on real files.
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { TEMP_MARKER, temporaryPathFor, writeFileAtomic } from '../../src/lib/write-file-atomic.ts';

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lib-atomic-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('creates and then replaces the whole file, leaving no temporary file', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'f.txt');
  await writeFileAtomic(path, 'first, and longer than the second', { mode: 0o600 });
  t.is(await readFile(path, 'utf8'), 'first, and longer than the second');
  await writeFileAtomic(path, 'second', { mode: 0o644 });
  t.is(await readFile(path, 'utf8'), 'second');
  t.is((await stat(path)).mode & 0o777, 0o644);
  t.deepEqual(await readdir(dir), ['f.txt']);
});

test('bytes are written as they are', async (t) => {
  const path = join(await tempDir(t), 'key.bin');
  const bytes = new Uint8Array([0, 1, 2, 255, 10, 13]);
  await writeFileAtomic(path, bytes, { mode: 0o600 });
  t.deepEqual(new Uint8Array(await readFile(path)), bytes);
});

test('the mode is exactly the one asked for, whatever the umask', async (t) => {
  const dir = await tempDir(t);
  const previous = process.umask(0o077);
  try {
    await writeFileAtomic(join(dir, 'public.pem'), 'x', { mode: 0o644 });
  } finally {
    process.umask(previous);
  }
  const loose = process.umask(0o000);
  try {
    await writeFileAtomic(join(dir, 'key.pem'), 'x', { mode: 0o600 });
  } finally {
    process.umask(loose);
  }
  t.is((await stat(join(dir, 'public.pem'))).mode & 0o777, 0o644);
  t.is((await stat(join(dir, 'key.pem'))).mode & 0o777, 0o600);
});

test('a write that cannot be renamed into place fails, keeps what was there and removes its temporary file', async (t) => {
  const dir = await tempDir(t);
  // A directory where the file should go: the rename fails after the temporary file was written.
  const path = join(dir, 'cert.pem');
  await mkdir(path);
  await writeFile(join(path, 'inside'), 'kept');
  await t.throwsAsync(writeFileAtomic(path, 'new', { mode: 0o644 }));
  t.deepEqual(await readdir(dir), ['cert.pem']);
  t.is(await readFile(join(path, 'inside'), 'utf8'), 'kept');
});

test('a write into a directory that does not exist fails and leaves nothing behind', async (t) => {
  const dir = await tempDir(t);
  await t.throwsAsync(writeFileAtomic(join(dir, 'missing', 'f.txt'), 'x', { mode: 0o600 }), {
    code: 'ENOENT',
  });
  t.deepEqual(await readdir(dir), []);
});

test('temporary files are named after the file, with the marker a crash clean-up looks for', (t) => {
  const first = temporaryPathFor('/data/identity/cert.pem');
  const second = temporaryPathFor('/data/identity/cert.pem');
  t.true(first.startsWith(`/data/identity/cert.pem${TEMP_MARKER}${process.pid}-`));
  t.regex(first, /\.tmp-\d+-[0-9a-f]{8}$/);
  t.not(first, second, 'two writes never share a temporary file');
});
