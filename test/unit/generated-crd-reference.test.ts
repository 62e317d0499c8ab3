// docs/crd-reference.md is generated from the CRDs in crds/: the file in the repository must be
// exactly what the generator makes of the CRDs in the repository, so the reference people read and
// the schema the API server validates by cannot drift apart. And it is complete: every field of
// every CRD, with its type, default, allowed values, validation and description, and every CEL rule.
import { readFileSync } from 'node:fs';
import test from 'ava';
import * as yaml from 'js-yaml';
import type { CustomResourceDefinition, JsonSchema } from '../../src/operator/api/crd.ts';
import {
  CRD_REFERENCE_PATH,
  generateCrdReference,
  readCrdFiles,
} from '../../tools/generate/crd-reference.ts';

const root = new URL('../../', import.meta.url);
const onDisk = () => readFileSync(new URL(CRD_REFERENCE_PATH, root), 'utf8');
const CONNECTOR = 'connectors.vaultpam.io.yaml';

/** A copy of the CRD files with `edit` applied to the Connector's schema node at `path`. */
function editedConnector(path: string, edit: (node: JsonSchema) => void): Record<string, string> {
  const files = readCrdFiles();
  const crd = yaml.load(files[CONNECTOR] ?? '') as CustomResourceDefinition;
  let node = crd.spec.versions[0]?.schema.openAPIV3Schema as JsonSchema;
  for (const part of path.split('.')) {
    const next = node.properties?.[part];
    if (next === undefined) throw new Error(`the CRD has no ${path}`);
    node = next;
  }
  edit(node);
  return { ...files, [CONNECTOR]: yaml.dump(crd) };
}

/** Every field path of a schema, as the reference writes them (`[]` list items, `{}` map values). */
function fieldPaths(schema: JsonSchema, path = ''): string[] {
  const paths: string[] = [];
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    const childPath = path ? `${path}.${name}` : name;
    paths.push(childPath, ...fieldPaths(child, childPath));
  }
  if (schema.items) paths.push(...fieldPaths(schema.items, `${path}[]`));
  if (typeof schema.additionalProperties === 'object')
    paths.push(...fieldPaths(schema.additionalProperties, `${path}{}`));
  return paths;
}

/** The table row of a field in one resource's section. */
function row(reference: string, kind: string, path: string): string | undefined {
  const section = reference.split(/^## /m).find((s) => s.startsWith(`${kind}\n`)) ?? '';
  return section.split('\n').find((line) => line.startsWith(`| \`${path}\` |`));
}

test('docs/crd-reference.md is what the CRDs generate', (t) => {
  t.is(generateCrdReference(), onDisk(), 'run `npm run generate` and commit the result');
});

test('every field of every CRD has a row with its type and description, and every CEL rule is listed', (t) => {
  const reference = onDisk();
  for (const text of Object.values(readCrdFiles())) {
    const crd = yaml.load(text) as CustomResourceDefinition;
    const kind = crd.spec.names.kind;
    const schema = crd.spec.versions[0]?.schema.openAPIV3Schema as JsonSchema;
    const paths = fieldPaths(schema).filter((p) => !/^(apiVersion|kind|metadata)\b/.test(p));
    t.true(paths.length > 5, kind);
    for (const path of paths) {
      const line = row(reference, kind, path);
      t.truthy(line, `${kind} ${path} has a row`);
    }
    const rules = JSON.stringify(schema).match(/"rule":/g)?.length ?? 0;
    const section = reference.split(/^## /m).find((s) => s.startsWith(`${kind}\n`)) ?? '';
    t.is(section.match(/^ {2}Rule: /gm)?.length ?? 0, rules, `${kind}: every CEL rule is listed`);
  }
  // A few rows in full, as a reader sees them.
  t.is(
    row(reference, 'Connector', 'spec.controlPlaneRef.kind'),
    "| `spec.controlPlaneRef.kind` | string |  | `ControlPlane` | `ControlPlane`, `ClusterControlPlane` |  | ControlPlane (namespaced, in the Connector's own namespace) or ClusterControlPlane; defaults to ControlPlane. |",
  );
  t.regex(row(reference, 'Connector', 'spec.connector.org') ?? '', /\| string \| yes \|.*\| length 1 to 253/);
  t.regex(row(reference, 'ControlPlane', 'spec.caConfigMapRef.key') ?? '', /\| `ca\.crt` \|/);
});

test('a field, a default or an enum value added to a CRD changes the reference (the check can fail)', (t) => {
  const current = onDisk();
  const withField = generateCrdReference(
    editedConnector('spec.enrollment', (enrollment) => {
      enrollment.properties = {
        ...enrollment.properties,
        maxUses: { type: 'integer', minimum: 1, default: 1, description: 'How often a token may be used.' },
      };
    }),
  );
  t.not(withField, current);
  t.regex(
    withField,
    /^\| `spec\.enrollment\.maxUses` \| integer \| {2}\| `1` \| {2}\| value at least 1 \| How often a token may be used\. \|$/m,
  );
  const withPhase = generateCrdReference(
    editedConnector('status.phase', (phase) => {
      phase.enum = [...(phase.enum ?? []), 'Hibernating'];
    }),
  );
  t.regex(withPhase, /^\| `status\.phase` \|[^\n]*`Hibernating`/m);
});
