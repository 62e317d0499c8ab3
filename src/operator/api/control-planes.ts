// The ControlPlane and ClusterControlPlane resources as the operator reads them; the types of their
// spec and status are generated from crds/controlplanes.vaultpam.io.yaml (crd-types.generated.ts),
// which ClusterControlPlane's schema equals (a unit test holds them equal). An admin defines where a
// control plane is and which credential the operator presents to it; a Connector only names one
// (spec.controlPlaneRef). This is cert-manager's Issuer / ClusterIssuer split, and it is what keeps
// the operator from being anyone's deputy: whoever may write Connectors cannot send the operator's
// requests, or a Secret of their namespace, to a URL of their choosing. Nor can whoever may write
// a control plane but not its Secret: a credential Secret is used only for a URL its annotation
// vaultpam.io/control-plane-url lists (control-plane/credential-url.ts).
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { CodedError } from '../../lib/errors.ts';
import { type API_VERSION, DEFAULT_CA_KEY, DEFAULT_CREDENTIAL_KEY } from './constants.ts';
import type {
  ConfigMapKeyRef,
  ControlPlaneRefKind,
  ControlPlaneSpec,
  ControlPlaneStatus,
  SecretKeyRef,
} from './crd-types.generated.ts';
import { controlPlaneSpecProblem } from './validation.ts';

export type {
  ConfigMapKeyRef,
  ControlPlaneSpec,
  ControlPlaneStatus,
  SecretKeyRef,
} from './crd-types.generated.ts';

export interface ControlPlaneResource {
  apiVersion: typeof API_VERSION;
  kind: ControlPlaneRefKind;
  metadata: V1ObjectMeta;
  spec: ControlPlaneSpec;
  status?: ControlPlaneStatus;
}

/** The spec with its reference keys defaulted. */
export interface DefaultedControlPlaneSpec {
  url: string;
  caConfigMapRef?: Required<ConfigMapKeyRef>;
  credentialSecretRef: Required<SecretKeyRef>;
}

/**
 * Applies the key defaults and checks again what the CRD checks (an object stored before a rule
 * existed): a spec the operator cannot use is refused, naming the field, before any call is made.
 */
export function defaultedControlPlaneSpec(
  spec: Partial<ControlPlaneSpec> | undefined,
): DefaultedControlPlaneSpec {
  const problem = controlPlaneSpecProblem(spec ?? {});
  if (problem !== undefined) {
    throw new CodedError('INVALID_SPEC', `${problem[0]}: ${problem[1]}`, {
      temporary: false,
      details: { field: problem[0] },
    });
  }
  const { url, credentialSecretRef, caConfigMapRef } = spec as ControlPlaneSpec;
  return {
    url,
    credentialSecretRef: {
      name: credentialSecretRef.name,
      key: credentialSecretRef.key ?? DEFAULT_CREDENTIAL_KEY,
    },
    ...(caConfigMapRef
      ? { caConfigMapRef: { name: caConfigMapRef.name, key: caConfigMapRef.key ?? DEFAULT_CA_KEY } }
      : {}),
  };
}

/** Why a control plane is or is not Ready (its one condition). */
export const ControlPlaneReasons = {
  /** True: the admin API answered GET /v1/admin/whoami with the credential. */
  Reachable: 'Reachable',
  /** False: the control plane refused the credential (401/403). */
  Unauthorized: 'Unauthorized',
  /** False: no answer, a TLS failure other than trust, or an answer that is not the admin API's. */
  Unreachable: 'Unreachable',
  /** False: the credential Secret or its key does not exist, or is empty. */
  CredentialMissing: 'CredentialMissing',
  /**
   * False: the credential Secret does not list the control plane's URL in its annotation
   * vaultpam.io/control-plane-url, so the credential is sent nowhere (control-plane/credential-url.ts).
   */
  CredentialNotForURL: 'CredentialNotForURL',
  /**
   * False: the CA ConfigMap or key does not exist, is not PEM, is too large to hand to connectors
   * (reconcile/config-map-budget.ts), or does not verify the server.
   */
  CAInvalid: 'CAInvalid',
  /** False: the spec is unusable (stored before a validation rule existed). */
  InvalidSpec: 'InvalidSpec',
  /** Unknown: the operator could not read the Secret or ConfigMap from the API server. */
  CheckFailed: 'CheckFailed',
} as const;
export type ControlPlaneReason = (typeof ControlPlaneReasons)[keyof typeof ControlPlaneReasons];
