// Generates src/contract/control-plane-api.generated.ts, the wire types of the control plane's
// API, from the schemas in api/openapi.yaml. The operator's client, the agent's client and the
// reference control plane all speak these types, so the OpenAPI document is the one contract and a
// change to it shows up as a type error wherever the code disagrees.
//
//   npx node tools/generate/wire-types.ts           writes the file
//   npx node tools/generate/wire-types.ts --check   exits 1 when the file differs from the YAML
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as yaml from 'js-yaml';
import type { JSONSchema } from 'json-schema-to-typescript';
import { generatedBanner, runGenerator, schemaToTypeScript } from './schema-to-ts.ts';

const repository = fileURLToPath(new URL('../..', import.meta.url));
export const OPENAPI_PATH = 'api/openapi.yaml';
export const WIRE_TYPES_PATH = 'src/contract/control-plane-api.generated.ts';

/**
 * A `$ref` with sibling keywords (a description beside it) makes the library declare a second,
 * numbered copy of the referenced type; the reference alone keeps one name per schema.
 */
function bareReferences(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(bareReferences);
  if (node === null || typeof node !== 'object') return node;
  const object = node as Record<string, unknown>;
  if (typeof object.$ref === 'string') return { $ref: object.$ref };
  return Object.fromEntries(Object.entries(object).map(([key, value]) => [key, bareReferences(value)]));
}

export async function generateWireTypes(openapiText = readFileSync(`${repository}/${OPENAPI_PATH}`, 'utf8')) {
  const document = yaml.load(openapiText) as { components: { schemas: Record<string, JSONSchema> } };
  const schemas = bareReferences(document.components.schemas) as Record<string, JSONSchema>;
  // Each component schema becomes an exported declaration of its own name.
  for (const [name, schema] of Object.entries(schemas)) schema.title = name;
  const root: JSONSchema = {
    title: 'ControlPlaneSchemas',
    description: 'Every schema of the OpenAPI document by name (the index the generator compiles from).',
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(
      Object.keys(schemas).map((name) => [name, { $ref: `#/components/schemas/${name}` }]),
    ),
    components: { schemas },
  } as JSONSchema;
  const body = await schemaToTypeScript(root, 'ControlPlaneSchemas');
  return `${generatedBanner(OPENAPI_PATH, 'npx node tools/generate/wire-types.ts')}${body}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await runGenerator(`${repository}/${WIRE_TYPES_PATH}`, WIRE_TYPES_PATH, generateWireTypes);
}
