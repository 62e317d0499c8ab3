// Certificates for tests that need a TLS peer of their own: a self-signed CA certificate, usable as
// a server's certificate and as the trust anchor that vouches for it.
import { generateKeyPairPem, issueCertificatePem } from '../../src/lib/pki.ts';

export async function selfSignedCertificate(
  options: { commonName?: string; sanIps?: string[] } = {},
): Promise<{ certPem: string; keyPem: string }> {
  const pair = await generateKeyPairPem('ec-p256');
  const certPem = issueCertificatePem({
    issuerKeyPem: pair.privateKeyPem,
    subjectPublicKey: pair.publicKeyPem,
    subject: [{ shortName: 'CN', value: options.commonName ?? 'test CA' }],
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    isCa: true,
    ...(options.sanIps ? { sanIps: options.sanIps, extendedKeyUsage: ['serverAuth' as const] } : {}),
  });
  return { certPem, keyPem: pair.privateKeyPem };
}
