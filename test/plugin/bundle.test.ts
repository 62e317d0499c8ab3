// The report bundle's two pieces: the .tar.gz (read back by the real tar) and the redaction every
// file passes through.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { toYaml } from '../../src/plugin/output.ts';
import { redactBundleText, redactedArgv, withoutPlainValues } from '../../src/plugin/redaction.ts';
import { tarGz } from '../../src/plugin/tar-gz.ts';

const run = promisify(execFile);

test('the archive is a gzipped ustar that the real tar lists and extracts byte for byte', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'plugin-tar-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const big = 'x'.repeat(1500);
  const entries = [
    { path: 'bundle/README.txt', content: 'hello\n' },
    { path: 'bundle/logs/edge-0/connector.log', content: big },
    { path: 'bundle/empty.txt', content: '' },
    { path: 'bundle/utf8.txt', content: 'naïve – ✓\n' },
    { path: `bundle-${'p'.repeat(60)}/objects/${'n'.repeat(70)}.yaml`, content: 'long path\n' },
  ];
  const file = join(dir, 'out.tar.gz');
  await writeFile(file, tarGz(entries, new Date('2026-03-01T12:00:00Z')));
  const { stdout } = await run('tar', ['-tzvf', file]);
  t.regex(stdout, /bundle\/logs\/edge-0\/connector\.log/);
  t.regex(stdout, /1500 2026-03-01/);
  await run('tar', ['-xzf', file, '-C', dir]);
  for (const entry of entries) t.is(await readFile(join(dir, entry.path), 'utf8'), entry.content);
});

test('a path longer than ustar holds goes in a pax header: the real tar extracts it under its full name', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'plugin-tar-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const top = `vaultpam-report-review-4242-1-plain-${'a'.repeat(20)}-20261205-082700`;
  const entries = [
    // A pod name of 126 characters (any pod with the Connector's labels is collected), a claim of
    // 95: neither fits a 100-byte name after the top directory.
    { path: `${top}/objects/pod-plain-${'a'.repeat(120)}.yaml`, content: 'pod\n' },
    { path: `${top}/objects/persistentvolumeclaim-data.${'b'.repeat(90)}.yaml`, content: 'claim\n' },
    { path: `${top}/logs/plain-${'a'.repeat(120)}/connector.log`, content: 'log\n' },
    // The longest a name makes it: a 253-character pod name, in a directory of the same length.
    { path: `${top}/logs/${'p'.repeat(253)}/${'c'.repeat(63)}.previous.log`, content: 'previous\n' },
    // Records of 998, 999, 1001 and 1002 bytes: the length counts its own digits, so none is 1000.
    // (A name between slashes every 100 characters: a file system takes at most 255 in one.)
    ...[986, 987, 988, 989].map((n) => ({
      path: `x/${Array.from({ length: n }, (_, i) => (i % 100 === 99 ? '/' : 'y')).join('')}`,
      content: `${n}\n`,
    })),
    { path: `${top}/README.txt`, content: 'short names stay plain ustar\n' },
  ];
  const file = join(dir, 'out.tar.gz');
  await writeFile(file, tarGz(entries, new Date('2026-03-01T12:00:00Z')));
  // GNU tar (the machine's tar), and bsdtar (libarchive: macOS's tar) where it is installed.
  const readers = ['tar', ...((await run('bsdtar', ['--version']).catch(() => undefined)) ? ['bsdtar'] : [])];
  if (readers.length === 1) t.log('bsdtar is not installed: the archive is read back by GNU tar alone');
  for (const tar of readers) {
    const { stdout } = await run(tar, ['-tzf', file]);
    t.deepEqual(
      stdout.trimEnd().split('\n'),
      entries.map((e) => e.path),
      `${tar}: every entry listed under its full name, and no PaxHeaders entry among them`,
    );
    const into = await mkdtemp(join(dir, `${tar}-`));
    await run(tar, ['-xzf', file, '-C', into]);
    for (const entry of entries) t.is(await readFile(join(into, entry.path), 'utf8'), entry.content, tar);
  }
});

test('a path no tar entry may have is refused, naming it and why', (t) => {
  for (const [path, why] of [
    ['', 'it is empty'],
    ['/etc/passwd', 'it is absolute'],
    ['bundle/../../escape.txt', "an empty, '.' or '..' name"],
    ['bundle//x', "an empty, '.' or '..' name"],
    ['bundle/./x', "an empty, '.' or '..' name"],
    ['bundle/x\0y', 'a NUL character'],
  ] as const) {
    const error = t.throws(() => tarGz([{ path, content: 'x' }]));
    t.true(error?.message.startsWith(`tar entry path ${JSON.stringify(path)}: `), error?.message);
    t.true(error?.message.includes(why), error?.message);
  }
});

test('redaction: known values, tokens, keys and credential shapes go; YAML, certificates and ids stay', (t) => {
  const credential = 'adm_9f8e7d6c5b4a3f2e1d0c';
  const token = `vpe_0123456789abcdef_${'A'.repeat(20)}b${'c'.repeat(22)}`;
  const text = [
    'metadata:',
    '  name: edge',
    '  uid: 4b1c0e9a-0000-4000-8000-000000000001',
    `  note: the credential ${credential} leaked`,
    `log: minted ${token}`,
    'headers: { Authorization: Bearer abcdefghijklmnop }',
    '  password: hunter2hunter2',
    'url: https://user:pa55word@cp.example/',
    'random: Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0LmNb',
    'fingerprint: 3f2a9c0d1e4b5a6f7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b',
    '-----BEGIN PRIVATE KEY-----',
    'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7',
    '-----END PRIVATE KEY-----',
    'ca.crt: |',
    '  -----BEGIN CERTIFICATE-----',
    '  MIIBszCCAVmgAwIBAgIUSomeBase64ThatLooksRandom0123456789',
    '  -----END CERTIFICATE-----',
    '  tokenSecretName: edge-enrollment-token',
    '  secret:',
    '    secretName: edge-enrollment-token',
  ].join('\n');
  const out = redactBundleText(text, [credential]);
  t.false(out.includes(credential));
  t.false(out.includes(token));
  t.false(out.includes('abcdefghijklmnop'));
  t.false(out.includes('hunter2hunter2'));
  t.false(out.includes('pa55word'));
  t.false(out.includes('Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0LmNb'));
  t.false(out.includes('MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7'));
  t.true(out.includes('  uid: 4b1c0e9a-0000-4000-8000-000000000001'), 'UIDs stay');
  t.true(out.includes('fingerprint: 3f2a9c0d1e4b'), 'hex fingerprints stay');
  t.true(
    out.includes('  MIIBszCCAVmgAwIBAgIUSomeBase64ThatLooksRandom0123456789'),
    'a certificate, which is public, stays',
  );
  t.true(out.includes('  tokenSecretName: edge-enrollment-token'), 'a field that names a Secret stays');
  t.true(
    out.includes('  secret:\n    secretName: edge-enrollment-token'),
    'YAML keys do not swallow the next line',
  );
});

test('redaction of a line of megabytes takes time in proportion to it, whatever it holds', (t) => {
  // What a pod's process may write as one log line: before, a long run overflowed V8's regexp
  // stack ("Maximum call stack size exceeded": no bundle) and the last two took hours.
  const size = 8 * 1024 * 1024;
  const secret = 'hunter2hunter2';
  for (const piece of ['x', 'token=', 'eyJ', 'Bearer ', 'eyJ-', 'a-']) {
    const line = `${piece.repeat(Math.ceil(size / piece.length))} password=${secret}`;
    const started = Date.now();
    const out = redactBundleText(line, []);
    const seconds = (Date.now() - started) / 1000;
    t.true(seconds < 10, `${JSON.stringify(piece)} x ${size}: ${seconds} s`);
    t.false(out.includes(secret), `${JSON.stringify(piece)} x ${size}: the secret after it is still found`);
  }
});

test('an object dump: values by position, where no line pattern sees a secret', (t) => {
  t.deepEqual(
    redactedArgv([
      '--password=Tr0ub4dor&3-horse',
      '--token-file',
      '/run/token',
      '-v',
      'DB_PWD=x y',
      '--password',
    ]),
    ['--password=[REDACTED]', '--token-file', '/run/token', '-v', 'DB_PWD=[REDACTED] y', '--password'],
    "a whole value after '=' (the line pattern stops at '&'); a path after --token-file stays",
  );
  const pod = withoutPlainValues({
    metadata: { name: 'p', annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' } },
    // A flag ending the command takes the first arg as its value.
    spec: { containers: [{ name: 'c', command: ['agent', '--api-key'], args: ['k3y', '--debug'] }] },
  });
  t.is(
    toYaml(pod),
    [
      'metadata:',
      '  name: p', // no annotations left: none is written
      'spec:',
      '  containers:',
      '    - name: c',
      '      command:',
      '        - agent',
      '        - --api-key',
      '      args:',
      "        - '[REDACTED]'",
      '        - --debug',
      '',
    ].join('\n'),
  );
});
