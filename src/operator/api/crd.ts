// Loads the CRDs shipped in crds/ (Connector, ControlPlane, ClusterControlPlane), so the operator
// (which may install them) and the tests read the one file that kubectl applies, never a copy.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { load } from 'js-yaml';
import { CodedError } from '../../lib/errors.ts';
import { CLUSTER_CONTROL_PLANE, CONTROL_PLANE, CRD_NAME, VERSION } from './constants.ts';

const crdPath = (name: string) => fileURLToPath(new URL(`../../../crds/${name}.yaml`, import.meta.url));
export const CONNECTOR_CRD_PATH = crdPath(CRD_NAME);
/** The two control-plane CRDs, by the kind each defines. */
export const CONTROL_PLANE_CRD_PATHS = {
  [CONTROL_PLANE.kind]: crdPath(CONTROL_PLANE.crdName),
  [CLUSTER_CONTROL_PLANE.kind]: crdPath(CLUSTER_CONTROL_PLANE.crdName),
} as const;

/** The parts of an OpenAPI v3 schema (structural, as Kubernetes accepts it) the project reads. */
export interface JsonSchema {
  type?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  items?: JsonSchema;
  required?: string[];
  enum?: unknown[];
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  maxItems?: number;
  maxProperties?: number;
  minimum?: number;
  default?: unknown;
  anyOf?: JsonSchema[];
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-validations'?: Array<{
    rule: string;
    message?: string;
    messageExpression?: string;
    /** Where the error points, relative to the schema node (e.g. `.metadata.name` from the root). */
    fieldPath?: string;
    optionalOldSelf?: boolean;
  }>;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    group: string;
    scope: string;
    names: { kind: string; plural: string; singular: string; shortNames?: string[]; categories?: string[] };
    versions: Array<{
      name: string;
      served: boolean;
      storage: boolean;
      subresources?: { status?: Record<string, never> };
      additionalPrinterColumns?: Array<{
        name: string;
        type: string;
        jsonPath: string;
        priority?: number;
        description?: string;
      }>;
      schema: { openAPIV3Schema: JsonSchema };
    }>;
  };
}

/** The CustomResourceDefinition in `path`, which must be the one named `name`. */
export async function loadCrd(path: string, name: string): Promise<CustomResourceDefinition> {
  const text = await readFile(path, 'utf8');
  const crd = load(text) as CustomResourceDefinition | null;
  if (crd?.kind !== 'CustomResourceDefinition' || crd.metadata?.name !== name) {
    throw new CodedError('CRD_INVALID', `${path}: expected the CustomResourceDefinition ${name}`);
  }
  return crd;
}

export function loadConnectorCrd(path: string = CONNECTOR_CRD_PATH): Promise<CustomResourceDefinition> {
  return loadCrd(path, CRD_NAME);
}

/** The openAPIV3Schema of the served version (of any of the project's CRDs). */
export function connectorSchema(crd: CustomResourceDefinition): JsonSchema {
  const version = crd.spec.versions.find((v) => v.name === VERSION);
  if (version === undefined) {
    throw new CodedError('CRD_INVALID', `${crd.metadata.name} has no version ${VERSION}`);
  }
  return version.schema.openAPIV3Schema;
}
