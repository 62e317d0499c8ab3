// Issuing a connector's client certificate for its CSR, at enrollment and at renewal: this control
// plane's lifetime and SAN URI prefix, what the agent is answered, and what the record keeps.
import { issueConnectorCertificate } from './pki.ts';
import type { ServiceOptions } from './service-context.ts';
import type { CertificateRecord } from './state.ts';
import type { IssuedCertificateJson } from './views.ts';

export interface IssuedCertificate {
  answer: IssuedCertificateJson;
  record: CertificateRecord;
  /** SHA-256 of the certified public key (lib/pki.ts publicKeySha256). */
  publicKeySha256: string;
}

/** Throws a CSR_* CodedError for a CSR it refuses (invalid, another subject, an unsupported key). */
export function issueCertificate(
  options: ServiceOptions,
  connectorId: string,
  csrPem: string,
  now: number,
): IssuedCertificate {
  const { certificatePem, facts, publicKeySha256 } = issueConnectorCertificate(
    options.ca,
    connectorId,
    csrPem,
    {
      now: new Date(now),
      lifetimeMs: options.certificateLifetimeSeconds * 1000,
      sanUriPrefix: options.sanUriPrefix,
    },
  );
  return {
    answer: {
      certificatePem,
      caPem: options.ca.certPem,
      serial: facts.serial,
      notAfter: facts.notAfter.toISOString(),
    },
    record: {
      serial: facts.serial,
      notBefore: facts.notBefore.getTime(),
      notAfter: facts.notAfter.getTime(),
      fingerprintSha256: facts.fingerprintSha256,
      issuedAt: now,
    },
    publicKeySha256,
  };
}
