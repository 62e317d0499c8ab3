// Generates docs/crd-reference.md, the field reference of every CustomResourceDefinition in crds/
// (Connector, ControlPlane, ClusterControlPlane), from their openAPIV3Schema: each field with its
// type, whether it is required, its default, its allowed values, its validation (OpenAPI keywords
// and the CEL rules the API server runs, with their messages) and its description. The CRD is what
// the API server validates by, so the reference is made from it and cannot drift from it
// (test/unit/generated-crd-reference.test.ts compares the file with this generator's output).
//
//   node tools/generate/crd-reference.ts           writes the file (npm run generate runs it)
//   node tools/generate/crd-reference.ts --check   exits 1 when the file differs from the CRDs
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as yaml from 'js-yaml';
import type { CustomResourceDefinition, JsonSchema } from '../../src/operator/api/crd.ts';
import { runGenerator } from './schema-to-ts.ts';

const repository = fileURLToPath(new URL('../..', import.meta.url));
export const CRD_DIR = 'crds';
export const CRD_REFERENCE_PATH = 'docs/crd-reference.md';
const COMMAND = 'npm run generate';

/** Every CRD file in crds/ by name, in name order (the kustomization is not one). */
export function readCrdFiles(dir = `${repository}/${CRD_DIR}`): Record<string, string> {
  const files = readdirSync(dir)
    .filter((file) => file.endsWith('.yaml') && !file.startsWith('kustomization'))
    .sort();
  return Object.fromEntries(files.map((file) => [file, readFileSync(`${dir}/${file}`, 'utf8')]));
}

type Rule = NonNullable<JsonSchema['x-kubernetes-validations']>[number];
/** The keywords of JsonSchema this reference also reads. */
interface Schema extends JsonSchema {
  maximum?: number;
  minItems?: number;
  minProperties?: number;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
}

interface Field {
  path: string;
  schema: Schema;
  required: boolean;
}

/** Text on one line. */
const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();
/** Prose for a table cell or list item: one line, pipes escaped, '<' shown rather than read as HTML. */
const cell = (text: string) => oneLine(text).replaceAll('|', '\\|').replaceAll('<', '&lt;');
/** A code span (in a table, its pipes escaped as GitHub's tables require). */
const code = (value: unknown, inTable = true) => {
  const text = oneLine(typeof value === 'string' ? value : JSON.stringify(value));
  // A backtick inside would end the span: use a double-backtick span then.
  const span = text.includes('`') ? `\`\` ${text} \`\`` : `\`${text}\``;
  return inTable ? span.replaceAll('|', '\\|') : span;
};

/** Every field under `schema`, depth first in the CRD's order; `[]` a list's items, `{}` a map's values. */
function fields(schema: Schema, path: string, out: Field[] = []): Field[] {
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    const childPath = path ? `${path}.${name}` : name;
    out.push({ path: childPath, schema: child, required: schema.required?.includes(name) ?? false });
    fields(child, childPath, out);
  }
  if (schema.items?.properties) fields(schema.items, `${path}[]`, out);
  if (typeof schema.additionalProperties === 'object' && schema.additionalProperties.properties)
    fields(schema.additionalProperties, `${path}{}`, out);
  return out;
}

/** Every schema node with its path, the root included: where CEL rules may sit. */
function nodes(schema: Schema, path = ''): Array<{ path: string; schema: Schema }> {
  const found = [{ path, schema }];
  for (const [name, child] of Object.entries(schema.properties ?? {}))
    found.push(...nodes(child, path ? `${path}.${name}` : name));
  if (schema.items) found.push(...nodes(schema.items, `${path}[]`));
  if (typeof schema.additionalProperties === 'object')
    found.push(...nodes(schema.additionalProperties, `${path}{}`));
  return found;
}

function typeOf(schema: Schema): string {
  if (schema['x-kubernetes-int-or-string']) return 'integer or string';
  const format = schema.format ? ` (${schema.format})` : '';
  if (schema.type === 'array') return `list of ${schema.items ? typeOf(schema.items) : 'any'}`;
  if (schema.type === 'object' && typeof schema.additionalProperties === 'object')
    return `map of string to ${typeOf(schema.additionalProperties)}`;
  if (schema.type === 'object' && schema['x-kubernetes-preserve-unknown-fields'] && !schema.properties)
    return 'object (any fields)';
  return `${schema.type ?? 'any'}${format}`;
}

/** The OpenAPI validation keywords of one field, in words. */
function validation(schema: Schema): string[] {
  const found: string[] = [];
  const range = (what: string, min: number | undefined, max: number | undefined) => {
    if (min !== undefined && max !== undefined) found.push(`${what} ${min} to ${max}`);
    else if (min !== undefined) found.push(`${what} at least ${min}`);
    else if (max !== undefined) found.push(`${what} at most ${max}`);
  };
  range('length', schema.minLength, schema.maxLength);
  range('items', schema.minItems, schema.maxItems);
  range('entries', schema.minProperties, schema.maxProperties);
  range('value', schema.minimum, schema.maximum);
  if (schema.pattern !== undefined) found.push(`pattern ${code(schema.pattern)}`);
  if (schema['x-kubernetes-list-type']) found.push(`list type ${schema['x-kubernetes-list-type']}`);
  if (schema['x-kubernetes-list-map-keys'])
    found.push(
      `list map keys ${schema['x-kubernetes-list-map-keys'].map((value) => code(value)).join(', ')}`,
    );
  if (schema['x-kubernetes-preserve-unknown-fields']) found.push('unknown fields kept');
  const rules = schema['x-kubernetes-validations']?.length ?? 0;
  if (rules > 0) found.push(`${rules} CEL rule${rules === 1 ? '' : 's'} (below)`);
  // A list's items and a map's values without fields of their own have no row: their checks go here.
  const element =
    schema.items && !schema.items.properties
      ? ['each item', schema.items]
      : typeof schema.additionalProperties === 'object' && !schema.additionalProperties.properties
        ? ['each value', schema.additionalProperties]
        : undefined;
  const [label, elementSchema] = (element ?? []) as [string?, Schema?];
  const elementChecks = elementSchema ? validation(elementSchema) : [];
  if (label && elementChecks.length) found.push(`${label}: ${elementChecks.join(', ')}`);
  return found;
}

function fieldRow(field: Field): string {
  const { schema } = field;
  const values = schema.enum?.map((value) => code(value)).join(', ') ?? '';
  const defaultValue = schema.default === undefined ? '' : code(schema.default);
  return `| ${[
    code(field.path),
    cell(typeOf(schema)),
    field.required ? 'yes' : '',
    defaultValue,
    values,
    cell(validation(schema).join('; ')),
    cell(schema.description ?? ''),
  ].join(' | ')} |`;
}

function ruleLines(where: string, rules: Rule[]): string[] {
  return rules.map((rule) => {
    const message = rule.message ?? '(message computed by messageExpression)';
    const notes = [
      ...(rule.fieldPath ? [`reported at ${code(rule.fieldPath, false)}`] : []),
      ...(rule.messageExpression ? ['its message is computed from the value'] : []),
      ...(rule.optionalOldSelf ? ['checked on creation only'] : []),
      ...(/\boldSelf\b/.test(rule.rule) && !rule.optionalOldSelf ? ['checked on update'] : []),
    ];
    return `- ${where ? code(where, false) : 'The object'}: ${cell(message)}${notes.length ? ` (${notes.join('; ')})` : ''}\n  Rule: ${code(rule.rule, false)}`;
  });
}

function crdSection(crd: CustomResourceDefinition, file: string): string {
  const version = crd.spec.versions.find((v) => v.storage) ?? crd.spec.versions[0];
  if (!version) throw new Error(`${file} defines no version`);
  const root = version.schema.openAPIV3Schema as Schema;
  const { names } = crd.spec;
  const lines = [
    `## ${names.kind}`,
    '',
    cell(root.description ?? ''),
    '',
    `- API: \`${crd.spec.group}/${version.name}\`, kind \`${names.kind}\`, ${crd.spec.scope.toLowerCase()}` +
      ` (\`kubectl get ${names.plural}\`${names.shortNames?.length ? `, short names ${names.shortNames.map((value) => code(value)).join(', ')}` : ''}` +
      `${names.categories?.length ? `, categories ${names.categories.map((value) => code(value)).join(', ')}` : ''}).`,
    `- Source: \`${CRD_DIR}/${file}\`.`,
    '',
  ];
  const columns = version.additionalPrinterColumns ?? [];
  if (columns.length) {
    lines.push(
      '`kubectl get` columns (`-o wide` adds those of priority 1):',
      '',
      '| Column | From | Priority | Description |',
      '| --- | --- | --- | --- |',
      ...columns.map(
        (c) =>
          `| ${cell(c.name)} | ${code(c.jsonPath)} | ${c.priority ?? 0} | ${cell(c.description ?? '')} |`,
      ),
      '',
    );
  }
  const all = fields(root, '').filter(
    (f) => !['apiVersion', 'kind', 'metadata'].includes(f.path.split('.')[0] ?? ''),
  );
  lines.push(
    '### Fields',
    '',
    '`[]` is an element of a list, `{}` a value of a map.',
    '',
    '| Field | Type | Required | Default | Values | Validation | Description |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...all.map(fieldRow),
    '',
  );
  const withRules = nodes(root).filter((f) => f.schema['x-kubernetes-validations']?.length);
  if (withRules.length) {
    lines.push(
      '### Rules checked on write',
      '',
      'CEL rules the API server runs on every create and update (`x-kubernetes-validations`); a write',
      'that breaks one is refused with its message.',
      '',
      ...withRules.flatMap((f) => ruleLines(f.path, f.schema['x-kubernetes-validations'] ?? [])),
      '',
    );
  }
  return lines.join('\n');
}

export function generateCrdReference(crdFiles: Record<string, string> = readCrdFiles()): string {
  const sections = Object.entries(crdFiles).map(([file, text]) => {
    const crd = yaml.load(text) as CustomResourceDefinition;
    if (crd?.kind !== 'CustomResourceDefinition')
      throw new Error(`${file} is not a CustomResourceDefinition`);
    return { kind: crd.spec.names.kind, text: crdSection(crd, file) };
  });
  // The resource people write first comes first.
  const order = ['Connector', 'ControlPlane', 'ClusterControlPlane'];
  sections.sort((a, b) => (order.indexOf(a.kind) + 1 || 99) - (order.indexOf(b.kind) + 1 || 99));
  return [
    '# CRD reference',
    '',
    `<!-- Generated from ${CRD_DIR}/*.yaml by tools/generate/crd-reference.ts (\`${COMMAND}\`); do not edit.`,
    '     test/unit/generated-crd-reference.test.ts fails when this file and the CRDs differ. -->',
    '',
    'Every field of the custom resources this operator serves, as the API server validates them: type,',
    'whether it is required, default, allowed values, validation and description, then the CEL rules',
    'checked on write. What each field does and how the operator acts on it: `docs/connector-resource.md`',
    'and `docs/control-planes.md`.',
    '',
    ...sections.map((s) => `- [${s.kind}](#${s.kind.toLowerCase()})`),
    '',
    ...sections.map((s) => s.text),
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await runGenerator(`${repository}/${CRD_REFERENCE_PATH}`, CRD_REFERENCE_PATH, async () =>
    generateCrdReference(),
  );
}
