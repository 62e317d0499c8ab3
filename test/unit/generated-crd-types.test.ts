// The Connector and ControlPlane types are generated from the CRDs in crds/; the file in the
// repository must be exactly what the generator makes of the CRDs in the repository, so the schema
// the API server validates by and the types the operator is compiled against cannot drift apart.
import { readFileSync } from 'node:fs';
import test from 'ava';
import * as yaml from 'js-yaml';
import {
  type CustomResourceDefinition,
  connectorSchema,
  type JsonSchema,
} from '../../src/operator/api/crd.ts';
import {
  CONNECTOR_CRD_PATH,
  CONTROL_PLANE_CRD_PATH,
  CRD_TYPES_PATH,
  generateCrdTypes,
} from '../../tools/generate/crd-types.ts';

const root = new URL('../../', import.meta.url);
const connectorCrd = readFileSync(new URL(CONNECTOR_CRD_PATH, root), 'utf8');
const controlPlaneCrd = readFileSync(new URL(CONTROL_PLANE_CRD_PATH, root), 'utf8');

/** A copy of a CRD's text with `edit` applied to the schema node at `path` (`[]`: a list's items). */
function editedCrd(text: string, path: string, edit: (node: JsonSchema) => void): string {
  const crd = yaml.load(text) as CustomResourceDefinition;
  let node = connectorSchema(crd);
  for (const part of path.split('.')) {
    const next = part === '[]' ? node.items : node.properties?.[part];
    if (next === undefined) throw new Error(`the CRD has no ${path}`);
    node = next;
  }
  edit(node);
  return yaml.dump(crd);
}

test('src/operator/api/crd-types.generated.ts is what the CRDs generate', async (t) => {
  const onDisk = readFileSync(new URL(CRD_TYPES_PATH, root), 'utf8');
  t.is(await generateCrdTypes(), onDisk, 'run `npm run generate` and commit the result');
});

test('a field or enum value added to a CRD changes the generated types (the check can fail)', async (t) => {
  const onDisk = readFileSync(new URL(CRD_TYPES_PATH, root), 'utf8');
  const withField = editedCrd(connectorCrd, 'status.identity', (identity) => {
    identity.properties = { ...identity.properties, issuer: { type: 'string' } };
  });
  const generated = await generateCrdTypes(withField, controlPlaneCrd);
  t.regex(generated, /export interface IdentityStatus \{[^}]*issuer\?: string;/s);
  t.not(generated, onDisk);

  const withPhase = editedCrd(connectorCrd, 'status.phase', (phase) => {
    phase.enum = [...(phase.enum ?? []), 'Hibernating'];
  });
  const phases = await generateCrdTypes(withPhase, controlPlaneCrd);
  t.regex(phases, /export type ConnectorPhase =[^;]*\| 'Hibernating';/s);
  t.regex(phases, /export const CONNECTOR_PHASES = \[[^\]]*'Hibernating',\n\]/s, 'the runtime list follows');
});

test('each named part of the schemas is one exported declaration', async (t) => {
  const generated = await generateCrdTypes();
  for (const name of [
    'ConnectorSpec',
    'ConnectorStatus',
    'ControlPlaneRef',
    'StorageSpec',
    'WorkloadRef',
    'RecoveryStatus',
    'AuditEntryRef',
    'ControlPlaneSpec',
    'ControlPlaneStatus',
    'SecretKeyRef',
    'Quantity',
    'ConnectorPhase',
  ])
    t.regex(generated, new RegExp(`^export (?:type|interface) ${name}\\b`, 'm'), name);
  // metav1.Condition is in both CRDs' status and declared once.
  t.is(generated.match(/^export interface Condition\b/gm)?.length, 1);
  t.notRegex(generated, /^export (?:type|interface) [A-Za-z]+\d\b/m, 'no numbered duplicate');
  t.regex(generated, /^ {2}affinity\?: V1Affinity;$/m, 'the passed-through affinity is the Kubernetes type');
});

test('a name the two CRDs share must have one shape in both', async (t) => {
  const diverged = editedCrd(controlPlaneCrd, 'status.conditions.[]', (condition) => {
    condition.properties = { ...condition.properties, severity: { type: 'string' } };
  });
  await t.throwsAsync(generateCrdTypes(connectorCrd, diverged), {
    message: /Condition is declared twice with different shapes/,
  });
});
