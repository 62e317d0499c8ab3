// The wire types are generated from api/openapi.yaml; the file in the repository must be exactly
// what the generator makes of the YAML in the repository, so the two cannot drift apart.
import { readFileSync } from 'node:fs';
import test from 'ava';
import * as yaml from 'js-yaml';
import { generateWireTypes, OPENAPI_PATH, WIRE_TYPES_PATH } from '../../tools/generate/wire-types.ts';

const root = new URL('../../', import.meta.url);

test('src/contract/control-plane-api.generated.ts is what api/openapi.yaml generates', async (t) => {
  const onDisk = readFileSync(new URL(WIRE_TYPES_PATH, root), 'utf8');
  t.is(await generateWireTypes(), onDisk, 'run `npm run generate` and commit the result');
});

test('a change to a schema in the YAML changes the generated types (the check can fail)', async (t) => {
  const yaml = readFileSync(new URL(OPENAPI_PATH, root), 'utf8');
  const changed = yaml.replace(
    /(\n {4}MintRequest:\n(?: {6}.*\n)*? {6}properties:\n)/,
    '$1        addedField:\n          type: string\n',
  );
  t.not(changed, yaml, 'the fixture edit applied');
  const generated = await generateWireTypes(changed);
  t.regex(generated, /export interface MintRequest \{[^}]*addedField\?: string;/s);
  t.not(generated, await generateWireTypes(yaml));
});

test('every schema of the OpenAPI document is an exported declaration of the same name', async (t) => {
  const generated = await generateWireTypes();
  const document = yaml.load(readFileSync(new URL(OPENAPI_PATH, root), 'utf8')) as {
    components: { schemas: Record<string, unknown> };
  };
  const names = Object.keys(document.components.schemas);
  t.true(names.length > 15, 'the schema names were read');
  for (const name of names)
    t.regex(generated, new RegExp(`^export (?:type|interface) ${name}\\b`, 'm'), name ?? '');
  t.notRegex(generated, /^export (?:type|interface) [A-Za-z]+\d\b/m, 'no numbered duplicate of a schema');
});
