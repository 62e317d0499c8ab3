import { chmod, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { DEFAULT_SAN_URI_PREFIX } from '../../src/agent/config.ts';
import { EXIT_CODES, isAgentFailure } from '../../src/agent/failure.ts';
import {
  type IdentityExpectations,
  identityPaths,
  loadIdentity,
  removeStrayTempFiles,
  saveIdentity,
  savePendingKey,
  writeFileAtomic,
} from '../../src/agent/identity-store.ts';
import { parseCertificateFacts } from '../../src/lib/pki.ts';
import { issueConnectorCert, makeCa, type TestCa, tempDir } from './fixtures.ts';

const connectorId = 'team-a.conn-1';
let ca: TestCa;

test.before(async () => {
  ca = await makeCa();
});

function expectations(overrides: Partial<IdentityExpectations> = {}): IdentityExpectations {
  return {
    connectorId,
    sanUriPrefix: DEFAULT_SAN_URI_PREFIX,
    controlPlaneUrl: 'https://cp.example',
    now: new Date(),
    ...overrides,
  };
}

async function saveValidIdentity(dataDir: string, id = connectorId) {
  const { keyPem, certPem } = await issueConnectorCert(ca, { connectorId: id });
  const facts = parseCertificateFacts(certPem);
  await saveIdentity(dataDir, {
    keyPem,
    certPem,
    caPem: ca.certPem,
    metadata: {
      connectorId: id,
      serial: facts.serial,
      notAfter: facts.notAfter.toISOString(),
      enrolledAt: '2026-01-01T00:00:00.000Z',
      controlPlaneUrl: 'https://cp.example',
    },
  });
  return { keyPem, certPem, facts };
}

async function loadFailure(dataDir: string, expect = expectations()) {
  try {
    await loadIdentity(dataDir, expect);
  } catch (error) {
    if (isAgentFailure(error)) return error;
    throw error;
  }
  throw new Error('expected loadIdentity to fail');
}

test('an empty data directory is a first boot', async (t) => {
  const dataDir = await tempDir(t);
  t.deepEqual(await loadIdentity(dataDir, expectations()), { kind: 'absent', pendingKeyPem: undefined });
});

test('a saved identity loads back, with the key file 0600 and identity.json per the contract', async (t) => {
  const dataDir = await tempDir(t);
  const saved = await saveValidIdentity(dataDir);
  const paths = identityPaths(dataDir);
  t.is((await stat(paths.key)).mode & 0o777, 0o600);
  t.is((await stat(paths.dir)).mode & 0o777, 0o700);
  const metadata = JSON.parse(await readFile(paths.metadata, 'utf8')) as Record<string, unknown>;
  t.deepEqual(Object.keys(metadata), ['connectorId', 'serial', 'notAfter', 'enrolledAt', 'controlPlaneUrl']);
  const loaded = await loadIdentity(dataDir, expectations());
  if (loaded.kind !== 'present') return t.fail('identity not loaded');
  t.is(loaded.identity.keyPem, saved.keyPem);
  t.is(loaded.identity.facts.serial, saved.facts.serial);
  t.deepEqual(loaded.notes, []);
});

test('the key file is 0600 even under a permissive umask', async (t) => {
  const dataDir = await tempDir(t);
  const previous = process.umask(0o000);
  t.teardown(() => process.umask(previous));
  await savePendingKey(dataDir, '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
  t.is((await stat(identityPaths(dataDir).key)).mode & 0o777, 0o600);
});

test('a crash between write and rename leaves the previous bundle intact and load ignores the stray file', async (t) => {
  const dataDir = await tempDir(t);
  const saved = await saveValidIdentity(dataDir);
  const paths = identityPaths(dataDir);
  // What a crash after writing the temporary file and before the rename leaves behind.
  const stray = `${paths.cert}.tmp-4242-deadbeef`;
  await writeFile(stray, 'half-written garbage');
  await writeFile(`${paths.key}.tmp-4242-cafebabe`, '-----BEGIN PRIVATE KEY-----\ntruncated');
  const loaded = await loadIdentity(dataDir, expectations());
  if (loaded.kind !== 'present') return t.fail('identity not loaded');
  t.is(loaded.identity.certPem, saved.certPem);
  t.is(loaded.identity.keyPem, saved.keyPem);
  t.deepEqual((await removeStrayTempFiles(dataDir)).sort(), [
    'cert.pem.tmp-4242-deadbeef',
    'key.pem.tmp-4242-cafebabe',
  ]);
  t.deepEqual((await readdir(paths.dir)).sort(), ['ca.pem', 'cert.pem', 'identity.json', 'key.pem']);
});

test('an atomic write replaces the whole file and leaves no temporary file', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'f.txt');
  await writeFileAtomic(path, 'first', 0o600);
  await writeFileAtomic(path, 'second', 0o644);
  t.is(await readFile(path, 'utf8'), 'second');
  t.is((await stat(path)).mode & 0o777, 0o644);
  t.deepEqual(await readdir(dir), ['f.txt']);
});

test('a lone pending key (enrollment never finished) is a first boot that reuses the key', async (t) => {
  const dataDir = await tempDir(t);
  const { keyPem } = await issueConnectorCert(ca, { connectorId });
  await savePendingKey(dataDir, keyPem);
  t.deepEqual(await loadIdentity(dataDir, expectations()), { kind: 'absent', pendingKeyPem: keyPem });
});

test('identity.json present but key or certificate missing is durable identity loss (exit 10)', async (t) => {
  for (const file of ['key', 'cert'] as const) {
    const dataDir = await tempDir(t);
    await saveValidIdentity(dataDir);
    const path = identityPaths(dataDir)[file];
    await rm(path);
    const failure = await loadFailure(dataDir);
    t.is(failure.code, 'IDENTITY_LOST');
    t.is(failure.failureClass, 'IdentityLoss');
    t.is(failure.exitCode, EXIT_CODES.identityLoss);
    t.true(failure.message.startsWith(`no such file: ${path}`), failure.message);
    t.regex(failure.message, /will not re-enroll/);
  }
});

test('damaged files are an unusable identity (exit 13) naming the file', async (t) => {
  const cases: Array<[keyof ReturnType<typeof identityPaths>, string, RegExp]> = [
    ['metadata', '{ not json', /identity\.json is damaged: it is not valid JSON/],
    ['metadata', '{"connectorId":"team-a.conn-1"}', /field "serial" is missing/],
    ['cert', 'garbage', /cert\.pem is damaged: it does not hold a PEM X\.509 certificate/],
    ['key', 'garbage', /key\.pem is damaged: it does not hold a PEM private key/],
  ];
  for (const [file, content, pattern] of cases) {
    const dataDir = await tempDir(t);
    await saveValidIdentity(dataDir);
    await writeFile(identityPaths(dataDir)[file], content);
    const failure = await loadFailure(dataDir);
    t.is(failure.exitCode, EXIT_CODES.identityUnusable, file);
    t.is(failure.code, 'IDENTITY_DAMAGED');
    t.regex(failure.message, pattern);
  }
});

test('a key that does not match the certificate is reported as such', async (t) => {
  const dataDir = await tempDir(t);
  await saveValidIdentity(dataDir);
  const other = await issueConnectorCert(ca, { connectorId });
  await writeFile(identityPaths(dataDir).key, other.keyPem);
  const failure = await loadFailure(dataDir);
  t.is(failure.code, 'IDENTITY_KEY_MISMATCH');
  t.is(failure.exitCode, EXIT_CODES.identityUnusable);
  t.regex(failure.message, /private key does not match certificate/);
});

test("another connector's identity is foreign: by identity.json and by the certificate SAN", async (t) => {
  const mounted = await tempDir(t);
  await saveValidIdentity(mounted, 'team-b.other');
  const byMetadata = await loadFailure(mounted);
  t.is(byMetadata.code, 'IDENTITY_FOREIGN');
  t.regex(byMetadata.message, /belongs to connector "team-b\.other", but this agent is "team-a\.conn-1"/);

  const copied = await tempDir(t);
  await saveValidIdentity(copied);
  const foreign = await issueConnectorCert(ca, { connectorId: 'team-b.other' });
  await writeFile(identityPaths(copied).key, foreign.keyPem);
  await writeFile(identityPaths(copied).cert, foreign.certPem);
  const bySan = await loadFailure(copied);
  t.is(bySan.code, 'IDENTITY_FOREIGN');
  t.is(bySan.exitCode, EXIT_CODES.identityUnusable);
  t.regex(
    bySan.message,
    /certificate SAN does not match expected pattern: expected URI spiffe:\/\/vaultpam\.local\/connector\/team-a\.conn-1/,
  );
  t.regex(bySan.message, /team-b\.other/);
});

test('an expired certificate is unusable and the message compares with local time', async (t) => {
  const dataDir = await tempDir(t);
  await saveValidIdentity(dataDir);
  const failure = await loadFailure(dataDir, expectations({ now: new Date(Date.now() + 3 * 86_400_000) }));
  t.is(failure.code, 'IDENTITY_EXPIRED');
  t.regex(failure.message, /has expired .*local time is/);
});

test('a not-yet-valid certificate loads with a clock-skew note', async (t) => {
  const dataDir = await tempDir(t);
  await saveValidIdentity(dataDir);
  const loaded = await loadIdentity(dataDir, expectations({ now: new Date(Date.now() - 3_600_000) }));
  if (loaded.kind !== 'present') return t.fail('identity not loaded');
  t.is(loaded.notes.length, 1);
  t.regex(loaded.notes[0] ?? '', /not yet valid .*local clock is probably .* behind/);
});

test.serial(
  'a key file the connector user may not read is reported as permission denied, naming the path',
  async (t) => {
    const dataDir = await tempDir(t);
    await saveValidIdentity(dataDir);
    const { key, dir } = identityPaths(dataDir);
    await chmod(dataDir, 0o755);
    await chmod(dir, 0o755);
    // The key stays 0600 and owned by the user that wrote it; the agent runs as another user. Root
    // ignores mode bits, so a root test process switches its effective user for the duration of the load.
    const asRoot = process.getuid?.() === 0;
    if (asRoot) process.seteuid?.(65534);
    else await chmod(key, 0o000);
    let failure: Awaited<ReturnType<typeof loadFailure>>;
    try {
      failure = await loadFailure(dataDir);
    } finally {
      if (asRoot) process.seteuid?.(0);
    }
    t.is(failure.code, 'IDENTITY_KEY_UNREADABLE');
    t.is(failure.exitCode, EXIT_CODES.identityUnusable);
    t.true(failure.message.startsWith(`permission denied reading ${key}`), failure.message);
  },
);

test('a key path that is not a file is reported as unreadable, naming the path', async (t) => {
  const dataDir = await tempDir(t);
  await saveValidIdentity(dataDir);
  const { key } = identityPaths(dataDir);
  await rm(key);
  await mkdir(key);
  const failure = await loadFailure(dataDir);
  t.is(failure.code, 'IDENTITY_FILE_UNREADABLE');
  t.true(failure.message.includes(key));
  t.is(failure.exitCode, EXIT_CODES.identityUnusable);
});

test('a crash between cert.pem and identity.json is repaired from the certificate', async (t) => {
  const dataDir = await tempDir(t);
  await saveValidIdentity(dataDir);
  const renewed = await issueConnectorCert(ca, {
    connectorId,
    keyPem: await readFile(identityPaths(dataDir).key, 'utf8'),
  });
  await writeFile(identityPaths(dataDir).cert, renewed.certPem);
  const loaded = await loadIdentity(dataDir, expectations());
  if (loaded.kind !== 'present') return t.fail('identity not loaded');
  const serial = parseCertificateFacts(renewed.certPem).serial;
  t.is(loaded.identity.metadata.serial, serial);
  t.is(loaded.identity.metadata.enrolledAt, '2026-01-01T00:00:00.000Z', 'enrollment time kept');
  t.regex(loaded.notes[0] ?? '', /rebuilt .*identity\.json/);
  const onDisk = JSON.parse(await readFile(identityPaths(dataDir).metadata, 'utf8')) as { serial: string };
  t.is(onDisk.serial, serial);
});
