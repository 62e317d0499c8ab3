import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { isCodedError } from '../../src/lib/errors.ts';
import {
  certificateIssuedBy,
  createCsrPem,
  generateKeyPairPem,
  issueCertificatePem,
  type KeyAlgorithm,
  keyMatchesCertificate,
  normalizeSerial,
  parseCertificateFacts,
  verifyCsrPem,
} from '../../src/lib/pki.ts';

const HOUR = 3_600_000;

async function makeCa(algorithm: KeyAlgorithm = 'ec-p256') {
  const key = await generateKeyPairPem(algorithm);
  const now = new Date();
  const certPem = issueCertificatePem({
    issuerKeyPem: key.privateKeyPem,
    subjectPublicKey: key.publicKeyPem,
    subject: [
      { shortName: 'CN', value: 'Test CA' },
      { shortName: 'O', value: 'VaultPAM' },
    ],
    notBefore: now,
    notAfter: new Date(now.getTime() + 24 * HOUR),
    isCa: true,
  });
  return { key, certPem };
}

for (const algorithm of ['ec-p256', 'ec-p384', 'rsa-2048'] as const) {
  test(`CSR round trip and issuing with a ${algorithm} connector key`, async (t) => {
    const ca = await makeCa(algorithm === 'rsa-2048' ? 'rsa-2048' : 'ec-p256');
    const key = await generateKeyPairPem(algorithm);
    const csrPem = createCsrPem(key.privateKeyPem, 'team-a.db-connector');
    t.true(csrPem.startsWith('-----BEGIN CERTIFICATE REQUEST-----'));
    const facts = verifyCsrPem(csrPem);
    t.is(facts.subjectCommonName, 'team-a.db-connector');
    t.is(facts.keyType, algorithm === 'rsa-2048' ? 'rsa' : 'ec');

    const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000);
    const certPem = issueCertificatePem({
      issuerKeyPem: ca.key.privateKeyPem,
      issuerCertPem: ca.certPem,
      subjectPublicKey: facts.publicKey,
      subject: [{ shortName: 'CN', value: 'team-a.db-connector' }],
      notBefore,
      notAfter: new Date(notBefore.getTime() + HOUR),
      sanUris: ['spiffe://vaultpam.local/connector/team-a.db-connector'],
      extendedKeyUsage: ['clientAuth'],
      serialHex: '0a1b2c',
    });
    const cert = parseCertificateFacts(certPem);
    t.is(cert.serial, '0a1b2c');
    t.is(cert.subjectCommonName, 'team-a.db-connector');
    t.deepEqual(cert.sanUris, ['spiffe://vaultpam.local/connector/team-a.db-connector']);
    t.is(cert.notBefore.getTime(), notBefore.getTime());
    t.is(cert.notAfter.getTime(), notBefore.getTime() + HOUR);
    t.regex(cert.fingerprintSha256, /^[0-9a-f]{64}$/);
    t.true(keyMatchesCertificate(key.privateKeyPem, certPem));
    t.true(certificateIssuedBy(certPem, ca.certPem));
    t.true(certificateIssuedBy(ca.certPem, ca.certPem));

    const other = await makeCa();
    t.false(certificateIssuedBy(certPem, other.certPem));
    const otherKey = await generateKeyPairPem('ec-p256');
    t.false(keyMatchesCertificate(otherKey.privateKeyPem, certPem));
  });
}

test('openssl accepts the CSR and the chain', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pki-'));
  const ca = await makeCa();
  const key = await generateKeyPairPem('ec-p256');
  const csrPem = createCsrPem(key.privateKeyPem, 'x.y');
  const certPem = issueCertificatePem({
    issuerKeyPem: ca.key.privateKeyPem,
    issuerCertPem: ca.certPem,
    subjectPublicKey: verifyCsrPem(csrPem).publicKey,
    subject: [{ shortName: 'CN', value: 'x.y' }],
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + HOUR),
    extendedKeyUsage: ['clientAuth'],
  });
  writeFileSync(join(dir, 'csr.pem'), csrPem);
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  writeFileSync(join(dir, 'cert.pem'), certPem);
  execFileSync('openssl', ['req', '-in', join(dir, 'csr.pem'), '-verify', '-noout'], { stdio: 'ignore' });
  const out = execFileSync('openssl', [
    'verify',
    '-purpose',
    'sslclient',
    '-CAfile',
    join(dir, 'ca.pem'),
    join(dir, 'cert.pem'),
  ]);
  t.regex(out.toString(), /OK/);
});

test('a CSR whose signature does not verify is CSR_INVALID', async (t) => {
  const key = await generateKeyPairPem('ec-p256');
  const csrPem = createCsrPem(key.privateKeyPem, 'a.b');
  const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  // Flip a byte inside the subject CN ("a.b" -> "a.c"): the structure stays valid, the signature not.
  const at = der.indexOf(Buffer.from('a.b'));
  der[at + 2] = 'c'.charCodeAt(0);
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  const error = t.throws(() => verifyCsrPem(tampered));
  t.true(isCodedError(error, 'CSR_INVALID'));
});

test('garbage and truncated CSRs are CSR_INVALID', async (t) => {
  for (const input of [
    '',
    'hello',
    '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----',
  ]) {
    const error = t.throws(() => verifyCsrPem(input));
    t.true(isCodedError(error, 'CSR_INVALID'), input);
  }
  const key = await generateKeyPairPem('ec-p256');
  const csrPem = createCsrPem(key.privateKeyPem, 'a.b');
  const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const truncated = `-----BEGIN CERTIFICATE REQUEST-----\n${der.subarray(0, der.length - 10).toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  t.true(
    isCodedError(
      t.throws(() => verifyCsrPem(truncated)),
      'CSR_INVALID',
    ),
  );
});

test('weak RSA keys are CSR_KEY_UNSUPPORTED', async (t) => {
  const { generateKeyPairSync } = await import('node:crypto');
  const weak = generateKeyPairSync('rsa', {
    modulusLength: 1024,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const csrPem = createCsrPem(weak.privateKey, 'a.b');
  t.true(
    isCodedError(
      t.throws(() => verifyCsrPem(csrPem)),
      'CSR_KEY_UNSUPPORTED',
    ),
  );
});

test('normalizeSerial drops separators, case and leading zero bytes', (t) => {
  t.is(normalizeSerial('00:AB:CD'), 'abcd');
  t.is(normalizeSerial('0A1B'), '0a1b');
  t.is(normalizeSerial('00'), '00');
});
