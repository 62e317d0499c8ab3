// Real keys, certificates and temp directories for the agent tests (EC P-256: fast to generate).
import { createPublicKey } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { DEFAULT_SAN_URI_PREFIX } from '../../src/agent/config.ts';
import { generateKeyPairPem, issueCertificatePem } from '../../src/lib/pki.ts';

export interface TestCa {
  keyPem: string;
  certPem: string;
}

export async function makeCa(name = 'Test CA'): Promise<TestCa> {
  const pair = await generateKeyPairPem('ec-p256');
  const now = Date.now();
  const certPem = issueCertificatePem({
    issuerKeyPem: pair.privateKeyPem,
    subjectPublicKey: pair.publicKeyPem,
    subject: [{ shortName: 'CN', value: name }],
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + 86_400_000),
    isCa: true,
  });
  return { keyPem: pair.privateKeyPem, certPem };
}

export interface ConnectorCertOptions {
  connectorId: string;
  keyPem?: string;
  notBefore?: Date;
  notAfter?: Date;
  sanUris?: string[];
  commonName?: string;
}

export async function issueConnectorCert(
  ca: TestCa,
  options: ConnectorCertOptions,
): Promise<{ keyPem: string; certPem: string }> {
  const keyPem = options.keyPem ?? (await generateKeyPairPem('ec-p256')).privateKeyPem;
  const now = Date.now();
  const certPem = issueCertificatePem({
    issuerKeyPem: ca.keyPem,
    issuerCertPem: ca.certPem,
    subjectPublicKey: createPublicKey(keyPem),
    subject: [{ shortName: 'CN', value: options.commonName ?? options.connectorId }],
    notBefore: options.notBefore ?? new Date(now - 60_000),
    notAfter: options.notAfter ?? new Date(now + 86_400_000),
    sanUris: options.sanUris ?? [`${DEFAULT_SAN_URI_PREFIX}${options.connectorId}`],
    extendedKeyUsage: ['clientAuth'],
  });
  return { keyPem, certPem };
}

/** A fresh temp directory removed when the test ends. */
export async function tempDir(t: ExecutionContext, prefix = 'vaultpam-agent-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
