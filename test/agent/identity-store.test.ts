import { X509Certificate } from 'node:crypto';
import { chmod, chown, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { DEFAULT_SAN_URI_PREFIX } from '../../src/agent/config.ts';
import { EXIT_CODES, isAgentFailure } from '../../src/agent/failure.ts';
import { changedIdentityFiles, stampIdentityFiles } from '../../src/agent/identity-changes.ts';
import { type IdentityExpectations, identityPaths } from '../../src/agent/identity-files.ts';
import { loadIdentity } from '../../src/agent/identity-load.ts';
import { repairIdentityPermissions } from '../../src/agent/identity-modes.ts';
import { setAsideIdentity } from '../../src/agent/identity-repair.ts';
import {
  removeStrayTempFiles,
  saveCertificate,
  saveIdentity,
  savePendingKey,
} from '../../src/agent/identity-write.ts';
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

test('a damaged key or certificate is an unusable identity (exit 13) naming the file', async (t) => {
  // A damaged identity.json or ca.pem is set aside and rebuilt or restored instead (tests below).
  const cases: Array<[keyof ReturnType<typeof identityPaths>, string, RegExp]> = [
    ['cert', 'garbage', /cert\.pem is damaged: not a readable PEM X\.509 certificate/],
    ['key', 'garbage', /key\.pem is damaged: not a readable PEM private key/],
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

test('a certificate outside its validity by the local clock loads in both directions, with a warning saying how far off', async (t) => {
  const dataDir = await tempDir(t);
  const { facts } = await saveValidIdentity(dataDir);
  const { cert } = identityPaths(dataDir);
  // The local clock 3 h 2 min past the certificate's notAfter: the control plane's clock decides.
  const late = new Date(facts.notAfter.getTime() + (3 * 60 + 2) * 60_000);
  const expired = await loadIdentity(dataDir, expectations({ now: late }));
  if (expired.kind !== 'present') return t.fail('identity not loaded');
  t.deepEqual(expired.notes, [
    `certificate has expired or is not yet valid: this connector's certificate ${cert} expired 3 h 2 min ago ` +
      `by the local clock (valid from ${facts.notBefore.toISOString()} to ${facts.notAfter.toISOString()}, ` +
      `local time ${late.toISOString()}); trying the control plane, whose clock decides (if the local clock ` +
      'is wrong, fix time sync: timedatectl, NTP)',
  ]);
  const early = new Date(facts.notBefore.getTime() - 61 * 60_000);
  const notYetValid = await loadIdentity(dataDir, expectations({ now: early }));
  if (notYetValid.kind !== 'present') return t.fail('identity not loaded');
  t.is(notYetValid.notes.length, 1);
  t.regex(
    notYetValid.notes[0] ?? '',
    /^certificate has expired or is not yet valid: this connector's certificate .*cert\.pem becomes valid only in 1 h 1 min by the local clock .*whose clock decides/,
  );
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
    // A permissions mistake leaves the identity intact: Configuration, exit 12, whose next step is
    // ownership and mode (the guide's "Permission Denied"), never the recovery exit 13 leads to.
    t.is(failure.failureClass, 'Configuration');
    t.is(failure.exitCode, EXIT_CODES.configuration);
    t.regex(failure.nextStep, /runAsUser.*fsGroup/);
    t.regex(failure.nextStep, /do not start a guided recovery/);
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
  // Not a permission: its own code, so IDENTITY_*_UNREADABLE always means ownership and mode.
  t.is(failure.code, 'IDENTITY_FILE_READ_FAILED');
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

test('only ca.pem missing is not identity loss: the identity loads without it and nothing is written', async (t) => {
  const dataDir = await tempDir(t);
  const saved = await saveValidIdentity(dataDir);
  const paths = identityPaths(dataDir);
  await rm(paths.ca);
  const metadataBefore = await readFile(paths.metadata, 'utf8');
  const loaded = await loadIdentity(dataDir, expectations());
  if (loaded.kind !== 'present') return t.fail('identity not loaded');
  t.is(loaded.identity.caPem, undefined);
  t.is(loaded.identity.facts.serial, saved.facts.serial);
  t.is(await readFile(paths.metadata, 'utf8'), metadataBefore);
  t.deepEqual((await readdir(paths.dir)).sort(), ['cert.pem', 'identity.json', 'key.pem']);
});

test('a truncated key or certificate is damaged, not a key mismatch', async (t) => {
  for (const file of ['key', 'cert'] as const) {
    const dataDir = await tempDir(t);
    await saveValidIdentity(dataDir);
    const path = identityPaths(dataDir)[file];
    const text = await readFile(path, 'utf8');
    // What a full disk or an interrupted copy leaves: the first half of the PEM, header included.
    await writeFile(path, text.slice(0, Math.floor(text.length / 2)));
    const failure = await loadFailure(dataDir);
    t.is(failure.code, 'IDENTITY_DAMAGED', file);
    t.is(failure.exitCode, EXIT_CODES.identityUnusable);
    const what = file === 'key' ? 'not a readable PEM private key' : 'not a readable PEM X.509 certificate';
    t.is(failure.message, `${path} is damaged: ${what}`);
  }
});

/** Replaces cert.pem, then checks the refusal and that identity.json was left exactly as it was. */
async function expectCertificateRefused(
  t: ExecutionContext,
  certPem: string,
  expected: { code: string; message: RegExp },
) {
  const dataDir = await tempDir(t);
  await saveValidIdentity(dataDir);
  const paths = identityPaths(dataDir);
  const metadataBefore = await readFile(paths.metadata, 'utf8');
  await writeFile(paths.cert, certPem);
  const failure = await loadFailure(dataDir);
  t.is(failure.code, expected.code);
  t.is(failure.exitCode, EXIT_CODES.identityUnusable);
  t.regex(failure.message, expected.message);
  t.is(await readFile(paths.metadata, 'utf8'), metadataBefore, 'identity.json unchanged');
  return { dataDir, paths };
}

test('a certificate re-signed by another CA is untrusted, and identity.json is not rebuilt from it', async (t) => {
  const otherCa = await makeCa('Another CA');
  const probe = await tempDir(t);
  const { keyPem } = await saveValidIdentity(probe);
  // Same key, same names: only the signature says it is not the control plane's certificate.
  const resigned = await issueConnectorCert(otherCa, { connectorId, keyPem });
  const dataDir = await tempDir(t);
  await saveValidIdentity(dataDir);
  const paths = identityPaths(dataDir);
  await writeFile(paths.key, keyPem);
  await writeFile(paths.cert, resigned.certPem);
  const metadataBefore = await readFile(paths.metadata, 'utf8');
  const failure = await loadFailure(dataDir);
  t.is(failure.code, 'IDENTITY_CHAIN_INVALID');
  t.is(failure.failureClass, 'IdentityLoss');
  t.is(failure.exitCode, EXIT_CODES.identityUnusable);
  t.true(
    failure.message.startsWith(
      `certificate chain does not verify: ${paths.cert} is not signed by the CA in ${paths.ca}`,
    ),
    failure.message,
  );
  t.is(await readFile(paths.metadata, 'utf8'), metadataBefore, 'identity.json unchanged');
});

test('a tampered certificate: altered after signing is untrusted, signed by the CA for another key is a mismatch', async (t) => {
  const probe = await tempDir(t);
  const { certPem } = await saveValidIdentity(probe);
  // One character of the subject and SAN changed in the signed bytes, the signature left as it was.
  const der = new X509Certificate(certPem).raw;
  const altered = Buffer.from(der.toString('latin1').replaceAll('conn-1', 'conn-9'), 'latin1');
  t.notDeepEqual(altered, der);
  const alteredPem = `-----BEGIN CERTIFICATE-----\n${altered.toString('base64')}\n-----END CERTIFICATE-----\n`;
  await expectCertificateRefused(t, alteredPem, {
    code: 'IDENTITY_CHAIN_INVALID',
    message: /^certificate chain does not verify: .*cert\.pem is not signed by the CA in .*ca\.pem/,
  });
  // Re-signed with the control plane's own CA key, but for another key than key.pem.
  const forAnotherKey = await issueConnectorCert(ca, { connectorId });
  await expectCertificateRefused(t, forAnotherKey.certPem, {
    code: 'IDENTITY_KEY_MISMATCH',
    message: /^private key does not match certificate/,
  });
});

test("a SAN naming this connector under another prefix is the agent's --san-uri-prefix: Configuration, exit 12", async (t) => {
  const dataDir = await tempDir(t);
  await saveValidIdentity(dataDir);
  const otherPrefix = 'spiffe://vaultpam.local/connector/';
  const failure = await loadFailure(dataDir, expectations({ sanUriPrefix: 'spiffe://pam.example/agents/' }));
  t.is(failure.code, 'CONFIGURATION_INVALID');
  t.is(failure.failureClass, 'Configuration');
  t.is(failure.exitCode, EXIT_CODES.configuration);
  t.is(
    failure.message,
    `certificate SAN does not match expected pattern: the certificate names ${otherPrefix}${connectorId} but ` +
      `--san-uri-prefix expects spiffe://pam.example/agents/${connectorId}: set --san-uri-prefix / ` +
      "VAULTPAM_SAN_URI_PREFIX to the control plane's prefix",
  );
  t.regex(failure.nextStep, /flag or environment variable/);

  // A connector ID that merely ends like this one ("a.team-a.conn-1") is another connector's.
  const copied = await tempDir(t);
  await saveValidIdentity(copied);
  const foreign = await issueConnectorCert(ca, { connectorId: `a.${connectorId}` });
  await writeFile(identityPaths(copied).key, foreign.keyPem);
  await writeFile(identityPaths(copied).cert, foreign.certPem);
  const bySan = await loadFailure(copied);
  t.is(bySan.code, 'IDENTITY_FOREIGN');
  t.is(bySan.exitCode, EXIT_CODES.identityUnusable);
  t.true(bySan.message.startsWith('certificate SAN does not match expected pattern: '), bySan.message);
});

test.serial(
  'loose modes are repaired and reported with the path, the old mode and the new one',
  async (t) => {
    const dataDir = await tempDir(t);
    await saveValidIdentity(dataDir);
    const paths = identityPaths(dataDir);
    await chmod(paths.dir, 0o777);
    await chmod(paths.key, 0o644);
    await chmod(paths.cert, 0o666);
    await chmod(paths.metadata, 0o664);
    const warnings = await repairIdentityPermissions(dataDir);
    t.deepEqual(warnings, [
      `permission of ${paths.dir} was 0777, set to 0700: the identity directory was writable by other users, who could replace its files`,
      `permission of ${paths.key} was 0644, set to 0600: the private key was readable by other users; if anyone else could read it, treat the key as exposed: delete the identity directory and restart (guided recovery then revokes it and pairs a new key; it is refused while this identity works)`,
      `permission of ${paths.cert} was 0666, set to 0644: the file was writable by other users, who could replace it`,
      `permission of ${paths.metadata} was 0664, set to 0644: the file was writable by other users, who could replace it`,
    ]);
    t.is((await stat(paths.dir)).mode & 0o777, 0o700);
    t.is((await stat(paths.key)).mode & 0o777, 0o600);
    t.is((await stat(paths.cert)).mode & 0o777, 0o644);
    t.is((await stat(paths.metadata)).mode & 0o777, 0o644);
    t.is((await stat(paths.ca)).mode & 0o777, 0o644, 'a right mode is left alone');
    t.deepEqual(await repairIdentityPermissions(dataDir), [], 'nothing left to repair');

    await chmod(paths.key, 0o666);
    t.regex((await repairIdentityPermissions(dataDir))[0] ?? '', /key\.pem was 0666, set to 0600/);
  },
);

// Root may chmod any file, so the refusal needs a file of another user and a process that is not
// root while it tries: as root the test hands the key to uid 1234 and runs the repair as uid 65534.
const asRoot = process.getuid?.() === 0;
(asRoot ? test.serial : test.skip)(
  "a loose key the agent cannot repair (another user's file) is refused: IDENTITY_PERMISSIONS, exit 12",
  async (t) => {
    const dataDir = await tempDir(t);
    await saveValidIdentity(dataDir);
    const paths = identityPaths(dataDir);
    await chmod(dataDir, 0o755);
    await chmod(paths.dir, 0o755);
    await chmod(paths.key, 0o644);
    await chown(paths.key, 1234, 1234);
    process.seteuid?.(65534);
    let failure: unknown;
    try {
      await repairIdentityPermissions(dataDir);
    } catch (error) {
      failure = error;
    } finally {
      process.seteuid?.(0);
    }
    if (!isAgentFailure(failure)) return t.fail(`expected a refusal, got ${String(failure)}`);
    t.is(failure.code, 'IDENTITY_PERMISSIONS');
    t.is(failure.failureClass, 'Configuration');
    t.is(failure.exitCode, EXIT_CODES.configuration);
    t.true(
      failure.message.startsWith(
        `permission of ${paths.key} is 0644 and cannot be set to 0600 (EPERM; owned by uid 1234`,
      ),
      failure.message,
    );
    t.is((await stat(paths.key)).mode & 0o777, 0o644, 'left as it was');
  },
);

test('the stamps of the identity files change when a file is rewritten or deleted, not when left alone', async (t) => {
  const dataDir = await tempDir(t);
  const { certPem } = await saveValidIdentity(dataDir);
  const paths = identityPaths(dataDir);
  const first = await stampIdentityFiles(dataDir);
  t.deepEqual(changedIdentityFiles(dataDir, first, await stampIdentityFiles(dataDir)), []);
  await writeFile(paths.cert, certPem.replace('\n', '\n\n'));
  await rm(paths.key);
  t.deepEqual(changedIdentityFiles(dataDir, first, await stampIdentityFiles(dataDir)), [
    paths.key,
    paths.cert,
  ]);
});

// -------------------------------------------------------------------------------------------------
// What can be rebuilt or restored is, and what is set aside is kept (issue 12, identity on disk)

/** The names in the identity directory that start with `prefix` (files set aside). */
async function setAside(dataDir: string, prefix: string): Promise<string[]> {
  return (await readdir(identityPaths(dataDir).dir)).filter((name) => name.startsWith(prefix));
}

test('a damaged identity.json (empty, not JSON, a field missing) is moved aside and rebuilt from the certificate that verifies', async (t) => {
  const cases: Array<[string, string]> = [
    ['', 'it is empty'],
    ['{ not json', 'it is not valid JSON'],
    ['{"connectorId":"team-a.conn-1"}', 'field "serial" is missing or not a string'],
  ];
  for (const [content, what] of cases) {
    const dataDir = await tempDir(t);
    const { facts } = await saveValidIdentity(dataDir);
    const paths = identityPaths(dataDir);
    await writeFile(paths.metadata, content);
    const loaded = await loadIdentity(dataDir, expectations());
    if (loaded.kind !== 'present') return t.fail('identity not loaded');
    const [aside] = await setAside(dataDir, 'identity.json.damaged-');
    if (!aside) return t.fail(`${what}: nothing set aside`);
    t.is(await readFile(join(paths.dir, aside), 'utf8'), content, 'kept as it was');
    t.deepEqual(loaded.notes, [
      `${paths.metadata} is damaged: ${what}: moved it to ${join(paths.dir, aside)}; it is rebuilt from ${paths.cert}`,
      `rebuilt ${paths.metadata} from ${paths.cert} (serial ${facts.serial})`,
    ]);
    const rebuilt = JSON.parse(await readFile(paths.metadata, 'utf8')) as {
      serial: string;
      connectorId: string;
    };
    t.is(rebuilt.serial, facts.serial);
    t.is(rebuilt.connectorId, connectorId);
  }
});

test('what is set aside never lands on another: the identity directory set aside twice at one instant, next to an empty directory of that name', async (t) => {
  const dataDir = await tempDir(t);
  const now = new Date('2026-03-04T05:06:07.089Z');
  const stamped = join(dataDir, 'identity.rejected-20260304T050607.089Z');
  await mkdir(stamped);
  const { keyPem: firstKey } = await saveValidIdentity(dataDir);
  const first = await setAsideIdentity(dataDir, now);
  const { keyPem: secondKey } = await saveValidIdentity(dataDir);
  const second = await setAsideIdentity(dataDir, now);
  t.not(first, stamped, 'an empty directory with the name is not replaced either');
  t.not(first, second);
  for (const path of [first, second]) t.true(path.startsWith(`${stamped}-`), path);
  t.deepEqual(await readdir(stamped), []);
  t.is(await readFile(join(first, 'key.pem'), 'utf8'), firstKey);
  t.is(await readFile(join(second, 'key.pem'), 'utf8'), secondKey);
  await t.throwsAsync(stat(identityPaths(dataDir).dir), { code: 'ENOENT' });
});

test('a damaged identity.json with a certificate that does not verify fails on the certificate and stays where it is', async (t) => {
  const dataDir = await tempDir(t);
  const { keyPem } = await saveValidIdentity(dataDir);
  const paths = identityPaths(dataDir);
  await writeFile(paths.metadata, '');
  await writeFile(
    paths.cert,
    (await issueConnectorCert(await makeCa('Another CA'), { connectorId, keyPem })).certPem,
  );
  const failure = await loadFailure(dataDir);
  t.is(failure.code, 'IDENTITY_CHAIN_INVALID');
  t.is(await readFile(paths.metadata, 'utf8'), '');
  t.deepEqual(await setAside(dataDir, 'identity.json.'), []);
});

test('a damaged (truncated) ca.pem is moved aside and the identity loads without it, as with a missing one', async (t) => {
  const dataDir = await tempDir(t);
  const saved = await saveValidIdentity(dataDir);
  const paths = identityPaths(dataDir);
  const truncated = ca.certPem.slice(0, Math.floor(ca.certPem.length / 2));
  await writeFile(paths.ca, truncated);
  const metadataBefore = await readFile(paths.metadata, 'utf8');
  const loaded = await loadIdentity(dataDir, expectations());
  if (loaded.kind !== 'present') return t.fail('identity not loaded');
  t.is(loaded.identity.caPem, undefined, 'restored by the agent from the control plane');
  t.is(loaded.identity.facts.serial, saved.facts.serial);
  const [aside] = await setAside(dataDir, 'ca.pem.damaged-');
  if (!aside) return t.fail('ca.pem not set aside');
  t.is(await readFile(join(paths.dir, aside), 'utf8'), truncated, 'kept, not deleted');
  await t.throwsAsync(stat(paths.ca), { code: 'ENOENT' });
  t.regex(
    loaded.notes[0] ?? '',
    new RegExp(
      `^${paths.ca} is damaged: not a readable PEM certificate bundle: moved it to ${paths.ca}\\.damaged-\\S+; it is restored from the control plane`,
    ),
  );
  t.is(await readFile(paths.metadata, 'utf8'), metadataBefore);
});

test('ca.pem replaced by another CA while cert.pem is the one identity.json records: ca.pem is what changed, moved aside', async (t) => {
  const dataDir = await tempDir(t);
  const saved = await saveValidIdentity(dataDir);
  const paths = identityPaths(dataDir);
  // The guide's "add your root CA" done by replacing the bundle instead of adding to it.
  const root = await makeCa('Corporate Root CA');
  await writeFile(paths.ca, root.certPem);
  const loaded = await loadIdentity(dataDir, expectations());
  if (loaded.kind !== 'present') return t.fail('identity not loaded');
  t.is(loaded.identity.caPem, undefined);
  const [aside] = await setAside(dataDir, 'ca.pem.replaced-');
  if (!aside) return t.fail('ca.pem not set aside');
  t.is(await readFile(join(paths.dir, aside), 'utf8'), root.certPem);
  t.true(
    (loaded.notes[0] ?? '').startsWith(
      `${paths.ca} was replaced: it does not hold the CA that signed ${paths.cert} (issuer "CN=Test CA"), and ` +
        `${paths.cert} is the certificate ${paths.metadata} records (serial ${saved.facts.serial}) with its own key, ` +
        `so it is ${paths.ca} that changed`,
    ),
    loaded.notes[0],
  );
  t.false((loaded.notes[0] ?? '').includes('the certificate was replaced or altered'));
});

test('key.pem and cert.pem without ca.pem and identity.json are an identity, not a first boot, and nothing is written yet', async (t) => {
  const dataDir = await tempDir(t);
  const saved = await saveValidIdentity(dataDir);
  const paths = identityPaths(dataDir);
  await rm(paths.ca);
  await rm(paths.metadata);
  const loaded = await loadIdentity(dataDir, expectations());
  if (loaded.kind !== 'present') return t.fail(`loaded as ${loaded.kind}: a token would be spent`);
  t.is(loaded.identity.keyPem, saved.keyPem);
  t.is(loaded.identity.caPem, undefined);
  t.is(loaded.identity.metadata.serial, saved.facts.serial);
  t.deepEqual(loaded.notes, [
    `${paths.metadata} is missing: ${paths.key} and ${paths.cert} match each other and name this connector ` +
      `(serial ${saved.facts.serial}), so they are its identity and no enrollment token is used; ${paths.metadata} ` +
      `is rebuilt once ${paths.ca} is restored from the control plane`,
  ]);
  t.deepEqual(
    (await readdir(paths.dir)).sort(),
    ['cert.pem', 'key.pem'],
    'identity.json waits for a verified chain',
  );
});

test('identity.json is never rebuilt from a certificate older than the one it records', async (t) => {
  const dataDir = await tempDir(t);
  const { keyPem } = await saveValidIdentity(dataDir);
  const paths = identityPaths(dataDir);
  const older = await issueConnectorCert(ca, {
    connectorId,
    keyPem,
    notBefore: new Date(Date.now() - 7_200_000),
    notAfter: new Date(Date.now() + 3_600_000),
  });
  const metadataBefore = await readFile(paths.metadata, 'utf8');
  const recorded = JSON.parse(metadataBefore) as { serial: string; notAfter: string };
  await writeFile(paths.cert, older.certPem);
  const loaded = await loadIdentity(dataDir, expectations());
  if (loaded.kind !== 'present') return t.fail('identity not loaded');
  t.is(await readFile(paths.metadata, 'utf8'), metadataBefore, 'identity.json kept');
  const olderSerial = parseCertificateFacts(older.certPem).serial;
  t.true(
    (loaded.notes[0] ?? '').startsWith(
      `${paths.cert} holds serial ${olderSerial} (valid until ${parseCertificateFacts(older.certPem).notAfter.toISOString()}), ` +
        `older than serial ${recorded.serial} (valid until ${recorded.notAfter}) that ${paths.metadata} records: ` +
        `${paths.metadata} is kept, not rebuilt from an older certificate`,
    ),
    loaded.notes[0],
  );
});

test('an enrollment is written key, ca.pem, cert.pem, identity.json: a ca.pem that cannot be written leaves no cert.pem', async (t) => {
  const dataDir = await tempDir(t);
  const { keyPem, certPem } = await issueConnectorCert(ca, { connectorId });
  await savePendingKey(dataDir, keyPem);
  const paths = identityPaths(dataDir);
  // A directory where ca.pem goes: the rename over it fails (EISDIR), as a full disk would fail the write.
  await mkdir(paths.ca);
  const facts = parseCertificateFacts(certPem);
  await t.throwsAsync(
    saveIdentity(dataDir, {
      keyPem,
      certPem,
      caPem: ca.certPem,
      metadata: {
        connectorId,
        serial: facts.serial,
        notAfter: facts.notAfter.toISOString(),
        enrolledAt: new Date().toISOString(),
        controlPlaneUrl: 'https://cp.example',
      },
    }),
  );
  await t.throwsAsync(stat(paths.cert), { code: 'ENOENT' }, 'no certificate on disk without its CA');
  await t.throwsAsync(stat(paths.metadata), { code: 'ENOENT' });
});

test('saving a renewed certificate rewrites cert.pem and identity.json only; ca.pem only when its content changed', async (t) => {
  const dataDir = await tempDir(t);
  const { keyPem } = await saveValidIdentity(dataDir);
  const paths = identityPaths(dataDir);
  const inode = async (path: string) => (await stat(path)).ino;
  const before = { key: await inode(paths.key), ca: await inode(paths.ca), cert: await inode(paths.cert) };
  const renewed = await issueConnectorCert(ca, { connectorId, keyPem });
  const facts = parseCertificateFacts(renewed.certPem);
  const metadata = {
    connectorId,
    serial: facts.serial,
    notAfter: facts.notAfter.toISOString(),
    enrolledAt: '2026-01-01T00:00:00.000Z',
    controlPlaneUrl: 'https://cp.example',
  };
  await saveCertificate(dataDir, { certPem: renewed.certPem, caPem: ca.certPem, metadata });
  t.is(await inode(paths.key), before.key, 'key.pem untouched');
  t.is(await inode(paths.ca), before.ca, 'ca.pem untouched: same content');
  t.not(await inode(paths.cert), before.cert);
  t.is(await readFile(paths.cert, 'utf8'), renewed.certPem);
  const bundle = `${ca.certPem}${(await makeCa('Next CA')).certPem}`;
  await saveCertificate(dataDir, { certPem: renewed.certPem, caPem: bundle, metadata });
  t.is(await readFile(paths.ca, 'utf8'), bundle, 'a changed CA bundle is written');
});

test('key.pem and cert.pem swapped, or one of them holding the other kind, is said as such, not "damaged"', async (t) => {
  const dataDir = await tempDir(t);
  const { keyPem, certPem } = await saveValidIdentity(dataDir);
  const paths = identityPaths(dataDir);
  await writeFile(paths.key, certPem);
  await writeFile(paths.cert, keyPem);
  const swapped = await loadFailure(dataDir);
  t.is(swapped.exitCode, EXIT_CODES.identityUnusable);
  t.is(
    swapped.message,
    `${paths.key} holds a certificate and ${paths.cert} a private key: the two files were swapped; swap them ` +
      'back (the key belongs in key.pem, mode 0600)',
  );
  await writeFile(paths.cert, certPem);
  t.is(
    (await loadFailure(dataDir)).message,
    `${paths.key} holds a certificate, not a private key: a file was copied to the wrong name (key.pem and cert.pem swapped?)`,
  );
  await writeFile(paths.key, keyPem);
  await writeFile(paths.cert, keyPem);
  t.is(
    (await loadFailure(dataDir)).message,
    `${paths.cert} holds a private key, not a certificate: a file was copied to the wrong name (key.pem and cert.pem swapped?)`,
  );
});

test("another connector's cert.pem (same CA, its own key) is foreign, not a key mismatch", async (t) => {
  const dataDir = await tempDir(t);
  await saveValidIdentity(dataDir);
  const paths = identityPaths(dataDir);
  await writeFile(paths.cert, (await issueConnectorCert(ca, { connectorId: 'team-b.other' })).certPem);
  const failure = await loadFailure(dataDir);
  t.is(failure.code, 'IDENTITY_FOREIGN');
  t.true(
    failure.message.startsWith(
      `certificate SAN does not match expected pattern: expected URI ${DEFAULT_SAN_URI_PREFIX}${connectorId}, the certificate ${paths.cert} has ${DEFAULT_SAN_URI_PREFIX}team-b.other`,
    ),
    failure.message,
  );
});

test.serial(
  "a certificate the connector user may not read names the mode a certificate needs, not the key's",
  async (t) => {
    const dataDir = await tempDir(t);
    await saveValidIdentity(dataDir);
    const { key, cert, dir } = identityPaths(dataDir);
    await chmod(dataDir, 0o755);
    await chmod(dir, 0o755);
    const asRoot = process.getuid?.() === 0;
    if (asRoot) {
      // The agent runs as uid 65534 and owns the key; cert.pem stays root's, owner-only.
      await chown(key, 65534, 65534);
      await chmod(cert, 0o600);
      process.seteuid?.(65534);
    } else {
      await chmod(cert, 0o000);
    }
    let failure: Awaited<ReturnType<typeof loadFailure>>;
    try {
      failure = await loadFailure(dataDir);
    } finally {
      if (asRoot) process.seteuid?.(0);
    }
    t.is(failure.code, 'IDENTITY_FILE_UNREADABLE');
    t.is(failure.exitCode, EXIT_CODES.configuration);
    t.is(
      failure.message,
      `permission denied reading ${cert} (certificate): the connector user must be able to read it (its owner, mode 0644)`,
    );
  },
);
