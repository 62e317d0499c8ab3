// Checks one ControlPlane or ClusterControlPlane: reads its credential Secret and CA ConfigMap by
// name (the operator lists and watches no Secret), checks that the Secret says its credential may
// be sent to the control plane's URL (its annotation vaultpam.io/control-plane-url, credential-url.ts;
// otherwise nothing is sent), then proves the credential with the control plane's cheapest
// authenticated call, GET /v1/admin/whoami, which changes nothing there. The outcome is what its
// Ready condition says, and, when Ready, the settings Connectors use.
//
// Nothing the check publishes carries the credential: messages are built here from codes and
// names, and anything that came from the server is cut short and has the credential (and anything
// that looks like a token or key) removed first, so a server that echoes the Authorization header
// cannot move it into a status.
import { X509Certificate } from 'node:crypto';
import type { V1ConfigMap, V1Secret } from '@kubernetes/client-node';
import { errorMessage, isCodedError } from '../../lib/errors.ts';
// OpenSSL verify codes that mean "the CA bundle does not vouch for this server".
import { UNKNOWN_AUTHORITY_CODES } from '../../lib/tls-verify-codes.ts';
import {
  type ControlPlaneReason,
  ControlPlaneReasons,
  type ControlPlaneSpec,
  type DefaultedControlPlaneSpec,
  defaultedControlPlaneSpec,
} from '../api/control-planes.ts';
import { caBundleSizeProblem } from '../reconcile/config-map-budget.ts';
import { untrustedCode, untrustedText } from '../reconcile/untrusted-text.ts';
import { describeApiError } from '../runtime/api-errors.ts';
import { decodeCredential } from '../runtime/credential.ts';
import { ControlPlaneAdminClient } from './admin-client.ts';
import { credentialUrlProblem, credentialUrlRefusal } from './credential-url.ts';

/** What a control plane is used with while it is Ready. */
export interface ControlPlaneSettings {
  url: string;
  /** PEM bundle; empty means the system trust store. */
  caPem: string;
  credential: string;
}

export interface CheckOutcome {
  status: 'True' | 'False' | 'Unknown';
  reason: ControlPlaneReason;
  message: string;
  /** Present exactly when status is True. */
  settings?: ControlPlaneSettings;
}

export interface CheckDeps {
  readSecret(namespace: string, name: string): Promise<V1Secret | undefined>;
  readConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined>;
  /** The authenticated call; replaceable in tests. Throws the admin client's coded errors. */
  whoami?(settings: ControlPlaneSettings): Promise<void>;
}

export interface CheckTarget {
  /** Where its Secret and ConfigMap live: its own namespace, or the operator's for a cluster one. */
  secretNamespace: string;
  spec: Partial<ControlPlaneSpec> | undefined;
}

const CHECK_TIMEOUT_MS = 10_000;

async function defaultWhoami(settings: ControlPlaneSettings): Promise<void> {
  const client = new ControlPlaneAdminClient({ ...settings, timeoutMs: CHECK_TIMEOUT_MS });
  try {
    await client.whoami();
  } finally {
    client.close();
  }
}

const notReady = (reason: ControlPlaneReason, message: string): CheckOutcome => ({
  status: reason === ControlPlaneReasons.CheckFailed ? 'Unknown' : 'False',
  reason,
  message,
});

/**
 * Text from elsewhere, safe to publish: the credential cut out first (whatever its shape), then the
 * one cleaning every server text gets (untrusted-text.ts: bounded, one printable line, redacted).
 */
function quote(text: string, credential: string): string {
  return untrustedText(credential ? text.replaceAll(credential, '[REDACTED]') : text);
}

/** A PEM bundle of one or more certificates that all parse; the problem otherwise. */
export function caBundleProblem(pem: string): string | undefined {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)';
  for (const [index, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch {
      return `certificate ${index + 1} of ${blocks.length} does not parse`;
    }
  }
  return undefined;
}

/** An object read by name; a failed read (RBAC, the API server) is CheckFailed, naming it. */
async function readObject<T>(
  where: string,
  read: () => Promise<T | undefined>,
): Promise<{ object: T | undefined } | CheckOutcome> {
  try {
    return { object: await read() };
  } catch (error) {
    return notReady(ControlPlaneReasons.CheckFailed, `could not read ${where}: ${describeApiError(error)}`);
  }
}

/**
 * The credential from its Secret, or why there is none, or why it may not be sent to spec.url: the
 * Secret must list that URL in its annotation vaultpam.io/control-plane-url (credential-url.ts), so
 * that whoever may write a control plane but not its Secret cannot choose where the credential goes.
 */
async function readCredential(
  deps: CheckDeps,
  namespace: string,
  spec: DefaultedControlPlaneSpec,
): Promise<{ credential: string } | CheckOutcome> {
  const ref = spec.credentialSecretRef;
  const where = `Secret ${namespace}/${ref.name}`;
  const read = await readObject(where, () => deps.readSecret(namespace, ref.name));
  if ('status' in read) return read;
  const problem = read.object ? credentialUrlProblem(read.object, spec.url) : undefined;
  if (problem !== undefined) {
    return notReady(
      ControlPlaneReasons.CredentialNotForURL,
      `spec.credentialSecretRef: ${where} ${credentialUrlRefusal(problem, { namespace, name: ref.name }, spec.url, 'the operator')}`,
    );
  }
  const credential = decodeCredential(read.object, ref.key);
  if (credential !== undefined) return { credential };
  return notReady(
    ControlPlaneReasons.CredentialMissing,
    `spec.credentialSecretRef: ${where} ${read.object ? `has no key "${ref.key}" (or it is empty)` : 'does not exist'}; create it with the control plane's admin credential under that key`,
  );
}

/** The CA bundle from its ConfigMap ('' for the system trust store), or why it cannot be used. */
async function readCa(
  deps: CheckDeps,
  namespace: string,
  ref: DefaultedControlPlaneSpec['caConfigMapRef'],
): Promise<{ caPem: string } | CheckOutcome> {
  if (!ref) return { caPem: '' };
  const where = `ConfigMap ${namespace}/${ref.name}`;
  const read = await readObject(where, () => deps.readConfigMap(namespace, ref.name));
  if ('status' in read) return read;
  const caPem = read.object?.data?.[ref.key];
  if (!caPem) {
    return notReady(
      ControlPlaneReasons.CAInvalid,
      `spec.caConfigMapRef: ${where} ${read.object ? `has no key "${ref.key}"` : 'does not exist'}; it must hold the PEM CA bundle of the control plane's serving certificate`,
    );
  }
  // Measured before it is parsed: a bundle no connector can be given is refused here, on the
  // resource its admin owns, not as a refusal of each Connector's ConfigMap (config-map-budget.ts).
  const problem = caBundleSizeProblem(caPem) ?? caBundleProblem(caPem);
  if (problem)
    return notReady(
      ControlPlaneReasons.CAInvalid,
      `spec.caConfigMapRef: key "${ref.key}" of ${where} ${problem}`,
    );
  return { caPem };
}

/** What a failed whoami says about the control plane. */
function callFailure(error: unknown, spec: DefaultedControlPlaneSpec, credential: string): CheckOutcome {
  const secret = `key "${spec.credentialSecretRef.key}" of Secret ${spec.credentialSecretRef.name}`;
  if (isCodedError(error) && (error.httpStatus === 401 || error.httpStatus === 403)) {
    return notReady(
      ControlPlaneReasons.Unauthorized,
      `${spec.url} refused the admin credential in ${secret} (HTTP ${error.httpStatus} ${error.code}); put a current admin credential there`,
    );
  }
  const cause = (error as { cause?: { code?: unknown } }).cause;
  const tlsCode = typeof cause?.code === 'string' ? cause.code : undefined;
  if (tlsCode !== undefined && UNKNOWN_AUTHORITY_CODES.has(tlsCode)) {
    const trust = spec.caConfigMapRef
      ? `the CA in ConfigMap ${spec.caConfigMapRef.name}`
      : 'the system trust store';
    return notReady(
      ControlPlaneReasons.CAInvalid,
      `${spec.url} presented a certificate that ${trust} does not vouch for (${tlsCode}); set spec.caConfigMapRef to the CA that signs it`,
    );
  }
  if (isCodedError(error) && error.code !== 'CONTROL_PLANE_UNREACHABLE') {
    return notReady(
      ControlPlaneReasons.Unreachable,
      `${spec.url} answered GET /v1/admin/whoami with HTTP ${error.httpStatus} ${untrustedCode(error.code)} (${quote(error.message, credential)}); is spec.url the admin API of a VaultPAM control plane?`,
    );
  }
  return notReady(ControlPlaneReasons.Unreachable, quote(errorMessage(error), credential));
}

/** Checks one control plane. Never throws: every failure is an outcome. */
export async function checkControlPlane(deps: CheckDeps, target: CheckTarget): Promise<CheckOutcome> {
  let spec: DefaultedControlPlaneSpec;
  try {
    spec = defaultedControlPlaneSpec(target.spec);
  } catch (error) {
    return notReady(ControlPlaneReasons.InvalidSpec, errorMessage(error));
  }
  // Before anything is sent: a credential not meant for spec.url is refused here (credential-url.ts).
  const credential = await readCredential(deps, target.secretNamespace, spec);
  if ('status' in credential) return credential;
  const ca = await readCa(deps, target.secretNamespace, spec.caConfigMapRef);
  if ('status' in ca) return ca;
  const settings: ControlPlaneSettings = {
    url: spec.url,
    caPem: ca.caPem,
    credential: credential.credential,
  };
  try {
    await (deps.whoami ?? defaultWhoami)(settings);
  } catch (error) {
    return callFailure(error, spec, settings.credential);
  }
  return {
    status: 'True',
    reason: ControlPlaneReasons.Reachable,
    message: `${spec.url} accepted the admin credential in key "${spec.credentialSecretRef.key}" of Secret ${spec.credentialSecretRef.name}`,
    settings,
  };
}
