// A certificate the control plane issued (at enrollment or renewal), checked before anything is
// written from it: readable, for this agent's key, signed by the CA returned with it, and naming
// this connector.
import { keyMatchesCertificate, parseCertificateFacts } from '../lib/pki.ts';
import type { AgentConfig } from './config.ts';
import type { CertificateAnswer } from './control-plane-client.ts';
import { type AgentFailure, identityUnusableFailure } from './failure.ts';
import type { LoadedIdentity } from './identity-files.ts';
import { certificateNamesFailure, issuedByCaBundle } from './identity-verify.ts';

type IssuerConfig = Pick<AgentConfig, 'connectorId' | 'controlPlaneUrl' | 'sanUriPrefix'>;

/**
 * The identity a certificate answer makes with `keyPem`, checked against the key and the CA; its
 * names are checked apart (issuedNamesFailure), since a first boot keeps a certificate named under
 * another SAN prefix.
 */
export function issuedIdentity(
  config: IssuerConfig,
  keyPem: string,
  answer: CertificateAnswer,
  enrolledAt: string,
): LoadedIdentity {
  let facts: ReturnType<typeof parseCertificateFacts>;
  try {
    facts = parseCertificateFacts(answer.certificatePem);
  } catch (error) {
    throw identityUnusableFailure(
      'CERTIFICATE_INVALID',
      'the control plane returned an unreadable certificate',
      error,
    );
  }
  if (!keyMatchesCertificate(keyPem, answer.certificatePem)) {
    throw identityUnusableFailure(
      'IDENTITY_KEY_MISMATCH',
      'private key does not match certificate: the control plane issued a certificate for another key',
    );
  }
  // Nothing is written from a certificate that does not verify, not even the control plane's.
  if (!issuedByCaBundle(answer.certificatePem, answer.caPem)) {
    throw identityUnusableFailure(
      'IDENTITY_CHAIN_INVALID',
      'certificate chain does not verify: the certificate the control plane issued is not signed by the CA ' +
        'it returned with it',
    );
  }
  return {
    keyPem,
    certPem: answer.certificatePem,
    caPem: answer.caPem,
    facts,
    metadata: {
      connectorId: config.connectorId,
      serial: facts.serial,
      notAfter: facts.notAfter.toISOString(),
      enrolledAt,
      controlPlaneUrl: config.controlPlaneUrl,
    },
  };
}

/** Whether an issued certificate names this connector (CN, SAN URI under --san-uri-prefix). */
export function issuedNamesFailure(config: IssuerConfig, identity: LoadedIdentity): AgentFailure | undefined {
  return certificateNamesFailure(identity.facts, config, 'the certificate the control plane issued');
}
