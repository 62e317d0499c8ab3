// Certificates for tests that need a TLS peer of their own: a self-signed CA certificate, usable as
// a server's certificate and as the trust anchor that vouches for it.
import { generateKeyPairPem, issueCertificatePem, type KeyAlgorithm } from '../../src/lib/pki.ts';

export async function selfSignedCertificate(
  options: { commonName?: string; sanIps?: string[]; keyAlgorithm?: KeyAlgorithm } = {},
): Promise<{ certPem: string; keyPem: string }> {
  const pair = await generateKeyPairPem(options.keyAlgorithm ?? 'ec-p256');
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

export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
}

export interface CertificateChain {
  root: IssuedCertificate;
  intermediate: IssuedCertificate;
  /** A server certificate for `sanIps`, issued by the intermediate. */
  leaf: IssuedCertificate;
}

/**
 * A root CA, an intermediate CA it issued and a server certificate the intermediate issued, all
 * of one organization (`O=`), as a CA with an issuing intermediate names them.
 */
export async function certificateChain(
  options: { organization?: string; sanIps?: string[] } = {},
): Promise<CertificateChain> {
  const organization = options.organization ?? 'VaultPAM Test PKI';
  const name = (commonName: string) => [
    { shortName: 'CN', value: commonName },
    { shortName: 'O', value: organization },
  ];
  const validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000) };
  const issue = async (
    issuer: IssuedCertificate | undefined,
    subject: Array<{ shortName: string; value: string }>,
    extra: { isCa?: boolean; sanIps?: string[]; extendedKeyUsage?: Array<'serverAuth'> },
  ): Promise<IssuedCertificate> => {
    const pair = await generateKeyPairPem('ec-p256');
    const certPem = issueCertificatePem({
      issuerKeyPem: issuer?.keyPem ?? pair.privateKeyPem,
      ...(issuer ? { issuerCertPem: issuer.certPem } : {}),
      subjectPublicKey: pair.publicKeyPem,
      subject,
      ...validity,
      ...extra,
    });
    return { certPem, keyPem: pair.privateKeyPem };
  };
  const root = await issue(undefined, name(`${organization} Root CA`), { isCa: true });
  const intermediate = await issue(root, name(`${organization} Issuing CA 1`), { isCa: true });
  const leaf = await issue(intermediate, [{ shortName: 'CN', value: options.sanIps?.[0] ?? '127.0.0.1' }], {
    sanIps: options.sanIps ?? ['127.0.0.1'],
    extendedKeyUsage: ['serverAuth'],
  });
  return { root, intermediate, leaf };
}
