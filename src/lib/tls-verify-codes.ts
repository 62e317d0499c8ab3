// OpenSSL's verify codes that mean "the certificate does not chain to a CA that is trusted here":
// the troubleshooting guide's "certificate signed by unknown authority". One list for the three
// places that read them: the agent explaining a refused server certificate, the control plane
// explaining a refused client certificate, and the operator checking a ControlPlane's CA.
export const UNKNOWN_AUTHORITY_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
]);
