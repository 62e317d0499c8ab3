// The control plane a Connector pairs with, reached the way the operator reaches it (the same
// ControlPlane or ClusterControlPlane resource: URL, CA ConfigMap, credential Secret; or, for a
// Connector without spec.controlPlaneRef, the operator's default given here by flags), but with the
// person's own rights: the credential Secret is read with their kubeconfig, so the plugin can do
// only what they may. When they may not read it, the answer says so and the caller goes on with
// what the cluster shows.
//
// The plugin applies the operator's rule on where a credential may go (control-plane/credential-url.ts):
// a ControlPlane's or ClusterControlPlane's credential is sent only to a URL its Secret's annotation
// vaultpam.io/control-plane-url lists. The plugin is nobody's deputy for rights (it has only the
// person's), but the URL comes from the resource, which someone else may have written: without the
// rule, whoever may write control planes could have the person's own plugin carry a credential the
// person can read to a server of their choosing. And the plugin then never calls a control plane
// the operator refuses to call. The default control plane is exempt, as in the operator: its URL is
// given here by the person (--control-plane-url), not read from a resource.
import { readFile } from 'node:fs/promises';
import { errorMessage, isCodedError } from '../lib/errors.ts';
import { CLUSTER_CONTROL_PLANE, CONTROL_PLANE } from '../operator/api/constants.ts';
import { type DefaultedControlPlaneSpec, defaultedControlPlaneSpec } from '../operator/api/control-planes.ts';
import type { Condition, Connector } from '../operator/api/types.ts';
import { ControlPlaneAdminClient, ControlPlaneAnswerError } from '../operator/control-plane/admin-client.ts';
import { caBundleProblem } from '../operator/control-plane/check.ts';
import { credentialUrlProblem, credentialUrlRefusal } from '../operator/control-plane/credential-url.ts';
import { untrustedCode, untrustedText } from '../operator/reconcile/untrusted-text.ts';
import { decodeCredential } from '../operator/runtime/credential.ts';
import { type KubeApi, readable } from './kube-api.ts';
import type { DefaultControlPlaneFlags } from './options.ts';

/** Which control plane, as the Connector names it, and what the operator last found there. */
export interface ControlPlaneSource {
  kind: 'ControlPlane' | 'ClusterControlPlane' | 'default';
  /** `namespace/name` or `name` of the resource; absent for the default. */
  name?: string;
  url?: string;
  /** The resource's Ready condition, as the operator's check wrote it. */
  ready?: Pick<Condition, 'status' | 'reason' | 'message'>;
  /** The API server answered that the resource does not exist (a typo in spec.controlPlaneRef, say). */
  missing?: true;
}

export type ControlPlaneAccess =
  | { source: ControlPlaneSource; client: ControlPlaneAdminClient; credential: string }
  | { source: ControlPlaneSource; unavailable: string };

export interface AccessInput {
  api: KubeApi;
  connector: Connector;
  operatorNamespace: string;
  defaults: DefaultControlPlaneFlags;
}

const DEFAULT_FLAGS_HINT =
  '--control-plane-url, --control-plane-ca-file and --credential-secret (or VAULTPAM_CONTROL_PLANE_URL, VAULTPAM_CONTROL_PLANE_CA_FILE and VAULTPAM_CREDENTIAL_SECRET), the values the operator runs with';

interface Located {
  source: ControlPlaneSource;
  spec?: DefaultedControlPlaneSpec;
  /** Where its Secret and ConfigMap live. */
  secretNamespace?: string;
  caPem?: string;
  unavailable?: string;
}

/** The resource the Connector names, or the default's flags. */
async function locate(input: AccessInput): Promise<Located> {
  const { api, connector, operatorNamespace, defaults } = input;
  const namespace = connector.metadata.namespace ?? '';
  const ref = connector.spec.controlPlaneRef;
  if (!ref) {
    const source: ControlPlaneSource = { kind: 'default', ...(defaults.url ? { url: defaults.url } : {}) };
    if (!defaults.url || !defaults.credentialSecret) {
      return {
        source,
        unavailable: `this Connector uses the operator's default control plane, which the plugin cannot see from the cluster; give ${DEFAULT_FLAGS_HINT}`,
      };
    }
    let caPem = '';
    if (defaults.caFile) {
      try {
        caPem = await readFile(defaults.caFile, 'utf8');
      } catch (error) {
        return {
          source,
          unavailable: `--control-plane-ca-file: cannot read ${defaults.caFile}: ${errorMessage(error)}`,
        };
      }
    }
    const { namespace: secretNamespace, name, key } = defaults.credentialSecret;
    return {
      source,
      spec: { url: defaults.url, credentialSecretRef: { name, key } },
      secretNamespace,
      caPem,
    };
  }
  const cluster = ref.kind === CLUSTER_CONTROL_PLANE.kind;
  const kind = cluster ? CLUSTER_CONTROL_PLANE.kind : CONTROL_PLANE.kind;
  const source: ControlPlaneSource = { kind, name: cluster ? ref.name : `${namespace}/${ref.name}` };
  const read = await readable(() => api.getControlPlane(cluster ? undefined : namespace, ref.name));
  if (!read.ok) return { source, unavailable: `cannot read ${kind} ${source.name}: ${read.why}` };
  if (!read.value)
    return { source: { ...source, missing: true }, unavailable: `${kind} ${source.name} does not exist` };
  const ready = read.value.status?.conditions?.find((c) => c.type === 'Ready');
  source.url = read.value.spec?.url;
  if (ready) source.ready = { status: ready.status, reason: ready.reason, message: ready.message };
  try {
    const spec = defaultedControlPlaneSpec(read.value.spec);
    return { source, spec, secretNamespace: cluster ? operatorNamespace : namespace };
  } catch (error) {
    return { source, unavailable: `${kind} ${source.name} cannot be used: ${errorMessage(error)}` };
  }
}

/**
 * The credential from its Secret, read with the person's rights, or why it cannot be had. With
 * `forUrl` (a control-plane resource's URL), only when the Secret's annotation lists that URL.
 */
async function readCredential(
  api: KubeApi,
  namespace: string,
  ref: DefaultedControlPlaneSpec['credentialSecretRef'],
  forUrl: string | undefined,
): Promise<{ credential: string } | { unavailable: string }> {
  const where = `Secret ${namespace}/${ref.name}`;
  const read = await readable(() => api.readSecret(namespace, ref.name));
  if (!read.ok) {
    return {
      unavailable:
        read.status === 403
          ? `you may not read the credential ${where} (${read.why}), so the control plane was not asked; this shows what the cluster shows (reading it takes get on that Secret, which a namespace admin has)`
          : `cannot read the credential ${where}: ${read.why}`,
    };
  }
  const problem = forUrl !== undefined && read.value ? credentialUrlProblem(read.value, forUrl) : undefined;
  if (problem !== undefined) {
    return {
      unavailable: `the credential ${where} ${credentialUrlRefusal(problem, { namespace, name: ref.name }, forUrl ?? '', 'the plugin')}; the control plane was not asked, and this shows what the cluster shows`,
    };
  }
  const credential = decodeCredential(read.value, ref.key);
  if (credential === undefined) {
    return {
      unavailable: `the credential ${where} ${read.value ? `has no key "${ref.key}" (or it is empty)` : 'does not exist'}`,
    };
  }
  return { credential };
}

/** The CA bundle from the ConfigMap the spec names ('' for the system trust store), or why not. */
async function readCa(
  api: KubeApi,
  namespace: string,
  ref: DefaultedControlPlaneSpec['caConfigMapRef'],
): Promise<{ caPem: string } | { unavailable: string }> {
  if (!ref) return { caPem: '' };
  const where = `ConfigMap ${namespace}/${ref.name}`;
  const read = await readable(() => api.readConfigMap(namespace, ref.name));
  if (!read.ok) return { unavailable: `cannot read the CA ${where}: ${read.why}` };
  const caPem = read.value?.data?.[ref.key];
  if (!caPem)
    return { unavailable: `the CA ${where} ${read.value ? `has no key "${ref.key}"` : 'does not exist'}` };
  const problem = caBundleProblem(caPem);
  return problem ? { unavailable: `key "${ref.key}" of the CA ${where} ${problem}` } : { caPem };
}

/** An admin client for the Connector's control plane, or why the plugin cannot have one. */
export async function controlPlaneAccess(input: AccessInput): Promise<ControlPlaneAccess> {
  const located = await locate(input);
  const { source } = located;
  if (located.unavailable || !located.spec || located.secretNamespace === undefined) {
    return { source, unavailable: located.unavailable ?? 'the control plane cannot be located' };
  }
  const ca =
    located.caPem !== undefined
      ? { caPem: located.caPem }
      : await readCa(input.api, located.secretNamespace, located.spec.caConfigMapRef);
  if ('unavailable' in ca) return { source, unavailable: ca.unavailable };
  const credential = await readCredential(
    input.api,
    located.secretNamespace,
    located.spec.credentialSecretRef,
    source.kind === 'default' ? undefined : located.spec.url,
  );
  if ('unavailable' in credential) return { source, unavailable: credential.unavailable };
  const client = new ControlPlaneAdminClient({
    url: located.spec.url,
    caPem: ca.caPem,
    credential: credential.credential,
    timeoutMs: 10_000,
  });
  return { source, client, credential: credential.credential };
}

/**
 * Whether no answer came at all (connection refused, TLS, timeout), as against an answer that was
 * an error or could not be read. An error answer whose code says CONTROL_PLANE_UNREACHABLE is still
 * an answer: the code is the server's word.
 */
export function controlPlaneSilent(error: unknown): boolean {
  return !(error instanceof ControlPlaneAnswerError) && isCodedError(error, 'CONTROL_PLANE_UNREACHABLE');
}

/**
 * What the control plane did with a call that brought nothing back, to follow "the control plane":
 * "answered HTTP 404 CONNECTOR_NOT_FOUND: <its message>" when it answered with an error, "did not
 * answer: <why>" when no answer came (connection refused, TLS, timeout). The two call for different
 * fixes (the request or the record, against the network or the server), so they are never worded
 * alike. The server's words are cleaned and the credential redacted wherever it appears (a proxy's
 * error page may echo the request).
 */
export function controlPlaneOutcome(error: unknown, credential: string): string {
  const scrub = (text: string) =>
    untrustedText(credential ? text.replaceAll(credential, '[REDACTED]') : text);
  if (error instanceof ControlPlaneAnswerError) {
    const status = error.httpStatus;
    const code = untrustedCode(error.code);
    const said = scrub(error.message);
    // A body that was not the contract's error JSON gives only the status: said once.
    const named = code === `HTTP_${status}` ? '' : ` ${code}`;
    const message = said === '' || said === `HTTP ${status}` ? '' : `: ${said}`;
    return `answered HTTP ${status}${named}${message}`;
  }
  if (controlPlaneSilent(error)) return `did not answer: ${scrub(errorMessage(error))}`;
  return `was asked, and its answer could not be read: ${scrub(errorMessage(error))}`;
}
