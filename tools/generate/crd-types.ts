// Generates src/operator/api/crd-types.generated.ts, the TypeScript shape of the Connector and
// ControlPlane resources, from the openAPIV3Schema of their CRDs in crds/. The CRD is what the API
// server validates and prunes by, so it is the source: a field added there appears in the types, a
// field the code uses that the CRD lacks is a type error.
//
//   npx node tools/generate/crd-types.ts           writes the file
//   npx node tools/generate/crd-types.ts --check   exits 1 when the file differs from the CRDs
//
// ClusterControlPlane shares ControlPlane's schema (a unit test holds them equal), so only the
// namespaced one is read.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import * as yaml from 'js-yaml';
import type { JSONSchema } from 'json-schema-to-typescript';
import { generatedBanner, runGenerator, schemaToTypeScript } from './schema-to-ts.ts';

const repository = fileURLToPath(new URL('../..', import.meta.url));
export const CONNECTOR_CRD_PATH = 'crds/connectors.vaultpam.io.yaml';
export const CONTROL_PLANE_CRD_PATH = 'crds/controlplanes.vaultpam.io.yaml';
export const CRD_TYPES_PATH = 'src/operator/api/crd-types.generated.ts';
const COMMAND = 'npx node tools/generate/crd-types.ts';

/**
 * The declaration each schema node becomes, by its path from the resource's root (`[]` a list's
 * items, `{}` a map's values). A node not named here is written inline in its parent's declaration.
 */
const CONNECTOR_NAMES: Record<string, string> = {
  spec: 'ConnectorSpec',
  'spec.controlPlaneRef': 'ControlPlaneRef',
  'spec.controlPlaneRef.kind': 'ControlPlaneRefKind',
  'spec.connector': 'ConnectorConfig',
  'spec.imagePullPolicy': 'ImagePullPolicy',
  'spec.imagePullSecrets[]': 'LocalObjectReference',
  'spec.resources': 'ResourceRequirements',
  'spec.resources.limits{}': 'Quantity',
  'spec.resources.requests{}': 'Quantity',
  'spec.tolerations[]': 'Toleration',
  'spec.tolerations[].operator': 'TolerationOperator',
  'spec.tolerations[].effect': 'TaintEffect',
  'spec.storage': 'StorageSpec',
  'spec.enrollment': 'EnrollmentSpec',
  'spec.recovery': 'RecoverySpec',
  'spec.recovery.policy': 'RecoveryPolicy',
  'spec.workloadRef': 'WorkloadRef',
  'spec.workloadRef.kind': 'WorkloadKind',
  'spec.deletionPolicy': 'DeletionPolicy',
  status: 'ConnectorStatus',
  'status.phase': 'ConnectorPhase',
  'status.mode': 'ConnectorMode',
  'status.identity': 'IdentityStatus',
  'status.enrollment': 'EnrollmentStatus',
  'status.liveToken': 'LiveTokenStatus',
  'status.liveToken.mintedFor': 'TokenFlow',
  'status.storage': 'StorageStatus',
  'status.storage.source': 'StorageSource',
  'status.recovery': 'RecoveryStatus',
  'status.recovery.step': 'RecoveryStep',
  'status.recovery.outcome': 'RecoveryOutcome',
  'status.recovery.evidence': 'RecoveryEvidence',
  'status.recovery.evidence.auditEntries[]': 'AuditEntryRef',
  'status.diagnosis': 'Diagnosis',
  'status.diagnosis.failureClass': 'FailureClass',
  'status.conditions[]': 'Condition',
  'status.conditions[].status': 'ConditionStatus',
};

const CONTROL_PLANE_NAMES: Record<string, string> = {
  spec: 'ControlPlaneSpec',
  'spec.caConfigMapRef': 'ConfigMapKeyRef',
  'spec.credentialSecretRef': 'SecretKeyRef',
  status: 'ControlPlaneStatus',
  'status.conditions[]': 'Condition',
  'status.conditions[].status': 'ConditionStatus',
};

/**
 * Enumerations the operator also needs as values (metrics publish every phase; tests walk every
 * step), emitted as const arrays in the CRD's order beside their union.
 */
const ENUM_ARRAYS: Record<string, string> = {
  ConnectorPhase: 'CONNECTOR_PHASES',
  RecoveryStep: 'RECOVERY_STEPS',
};

/**
 * Subtrees whose schema is a Kubernetes type's (the pod's affinity, passed to the pod as it is),
 * typed as Kubernetes' own type rather than written out again.
 */
const PASSED_THROUGH_TYPES: Record<string, string> = { 'spec.affinity': 'V1Affinity' };
const IMPORTS = "import type { V1Affinity } from '@kubernetes/client-node';\n";

/**
 * The keywords that shape a type. Validation keywords (lengths, patterns, item counts, CEL rules)
 * stay with the API server; the library would also turn a small maxItems into tuple types.
 */
const SHAPE_KEYWORDS = ['type', 'description', 'required', 'enum'] as const;

function openApiSchema(crdText: string): JSONSchema {
  const crd = yaml.load(crdText) as {
    spec: { versions: Array<{ schema: { openAPIV3Schema: JSONSchema } }> };
  };
  const [version] = crd.spec.versions;
  if (version === undefined) throw new Error('the CRD has no version');
  return version.schema.openAPIV3Schema;
}

/**
 * Reduces CRD schemas to their shapes and titles the nodes the tables name. A name given in both
 * CRDs (metav1.Condition in each status) must be the same shape there, and is one object here: the
 * library declares a schema object once, however often it is reached.
 */
class Shaper {
  readonly #declared = new Map<string, JSONSchema>();

  shape(schema: JSONSchema, names: Record<string, string>, path = ''): JSONSchema {
    const shape = this.#shapeOf(schema, names, path);
    const title = names[path];
    return title === undefined ? shape : this.#declare({ title, ...shape });
  }

  /** The enumeration declared as `name`. */
  enumeration(name: string): readonly unknown[] {
    const values = this.#declared.get(name)?.enum;
    if (values === undefined) throw new Error(`no enumeration is declared as ${name}`);
    return values;
  }

  #shapeOf(schema: JSONSchema, names: Record<string, string>, path: string): JSONSchema {
    const result: JSONSchema = Object.fromEntries(
      SHAPE_KEYWORDS.filter((keyword) => schema[keyword] !== undefined).map((keyword) => [
        keyword,
        schema[keyword],
      ]),
    );
    const passedThrough = PASSED_THROUGH_TYPES[path];
    if (passedThrough !== undefined) return { description: result.description, tsType: passedThrough };
    // Kubernetes' int-or-string, whether or not an anyOf beside it spells the two types out.
    if (schema['x-kubernetes-int-or-string'])
      return { ...result, anyOf: [{ type: 'integer' }, { type: 'string' }] };
    if (schema.properties !== undefined) {
      result.properties = Object.fromEntries(
        Object.entries(schema.properties).map(([key, child]) => [
          key,
          this.shape(child, names, path === '' ? key : `${path}.${key}`),
        ]),
      );
    }
    if (schema.items !== undefined && !Array.isArray(schema.items))
      result.items = this.shape(schema.items, names, `${path}[]`);
    if (typeof schema.additionalProperties === 'object') {
      result.additionalProperties = this.shape(schema.additionalProperties, names, `${path}{}`);
    } else if (schema['x-kubernetes-preserve-unknown-fields']) {
      // The API server keeps any field here, so the type admits any.
      result.additionalProperties = true;
    }
    return result;
  }

  #declare(schema: JSONSchema & { title: string }): JSONSchema {
    const earlier = this.#declared.get(schema.title);
    if (earlier === undefined) {
      this.#declared.set(schema.title, schema);
      return schema;
    }
    if (!isDeepStrictEqual(earlier, schema)) {
      throw new Error(`${schema.title} is declared twice with different shapes; give one another name`);
    }
    return earlier;
  }
}

function part(resource: JSONSchema, name: 'spec' | 'status'): JSONSchema {
  const schema = resource.properties?.[name];
  if (schema === undefined) throw new Error(`the CRD's schema has no ${name}`);
  return schema;
}

/** `export const NAME = [...] as const satisfies readonly Type[];` for each of ENUM_ARRAYS. */
function enumArrays(shaper: Shaper): string {
  return Object.entries(ENUM_ARRAYS)
    .map(([type, constant]) => {
      const values = shaper.enumeration(type).map((value) => `  '${String(value)}',\n`);
      return `\n/** Every ${type}, in the CRD's order. */\nexport const ${constant} = [\n${values.join('')}] as const satisfies readonly ${type}[];\n`;
    })
    .join('');
}

export async function generateCrdTypes(
  connectorCrdText = readFileSync(`${repository}/${CONNECTOR_CRD_PATH}`, 'utf8'),
  controlPlaneCrdText = readFileSync(`${repository}/${CONTROL_PLANE_CRD_PATH}`, 'utf8'),
): Promise<string> {
  const shaper = new Shaper();
  const connector = shaper.shape(openApiSchema(connectorCrdText), CONNECTOR_NAMES);
  const controlPlane = shaper.shape(openApiSchema(controlPlaneCrdText), CONTROL_PLANE_NAMES);
  const root: JSONSchema = {
    title: 'CrdSchemas',
    description: 'The spec and status of each resource (the index the generator compiles from).',
    type: 'object',
    additionalProperties: false,
    properties: {
      ConnectorSpec: part(connector, 'spec'),
      ConnectorStatus: part(connector, 'status'),
      ControlPlaneSpec: part(controlPlane, 'spec'),
      ControlPlaneStatus: part(controlPlane, 'status'),
    },
  };
  // A map's values read as possibly undefined already (noUncheckedIndexedAccess); declared without
  // `| undefined`, a spec's maps pass as they are to the pod's, typed so by @kubernetes/client-node.
  const body = await schemaToTypeScript(root, 'CrdSchemas', { strictIndexSignatures: false });
  const source = `${CONNECTOR_CRD_PATH} and ${CONTROL_PLANE_CRD_PATH}`;
  const banner = generatedBanner(source, COMMAND, 'test/unit/generated-crd-types.test.ts');
  return `${banner}${IMPORTS}${body}${enumArrays(shaper)}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await runGenerator(`${repository}/${CRD_TYPES_PATH}`, CRD_TYPES_PATH, () => generateCrdTypes());
}
