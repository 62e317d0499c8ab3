// The one way this repository turns a JSON Schema into TypeScript declarations: the wire types
// from api/openapi.yaml and the Connector types from the CRD are both generated through here, so
// the YAML stays the single source and the TypeScript follows it.
//
// json-schema-to-typescript does the translation (a maintained library that handles $ref, enums,
// nullable unions and doc comments); openapi-typescript was weighed and left out because it drives
// the TypeScript compiler's JavaScript API, which the native TypeScript 7 compiler this project
// uses no longer ships. Output is formatted by the library's bundled formatter with this project's
// style and is excluded from biome (biome.json), so a file on disk equals the generator's output
// byte for byte and the drift test can compare them.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { compile, type JSONSchema, type Options } from 'json-schema-to-typescript';

/**
 * The header every generated file starts with; `source` names the YAML it comes from, `driftTest`
 * the test that compares the two.
 */
export function generatedBanner(
  source: string,
  command: string,
  driftTest = 'test/unit/generated-types.test.ts',
): string {
  return [
    `// Generated from ${source} by \`${command}\`. Do not edit: change the YAML and run the`,
    `// command again (${driftTest} fails while this file and the YAML disagree).`,
    '',
  ].join('\n');
}

/**
 * Declarations for `root` (a schema whose definitions are reachable through `$ref`s or titles).
 * Every schema given a `title` becomes a named, exported declaration. `overrides` replaces options
 * of this default set for one generator (with its reason there).
 */
export async function schemaToTypeScript(
  root: JSONSchema,
  rootName: string,
  overrides: Partial<Options> = {},
): Promise<string> {
  return compile(root, rootName, {
    bannerComment: '',
    additionalProperties: false,
    unreachableDefinitions: true,
    strictIndexSignatures: true,
    format: true,
    style: { singleQuote: true, printWidth: 110, semi: true, trailingComma: 'all' },
    ...overrides,
  });
}

/**
 * A generator's command line: writes `path` with what `generate` returns, or with `--check` only
 * compares and exits 1 (naming the file and the fix) when they differ.
 */
export async function runGenerator(
  path: string,
  shownPath: string,
  generate: () => Promise<string>,
): Promise<void> {
  const text = await generate();
  const current = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  if (process.argv.includes('--check')) {
    if (current === text) return;
    process.stderr.write(`${shownPath} is out of date with its YAML source: run \`npm run generate\`\n`);
    process.exit(1);
  }
  if (current === text) {
    process.stdout.write(`${shownPath} is up to date\n`);
    return;
  }
  writeFileSync(path, text);
  process.stdout.write(`wrote ${shownPath}\n`);
}
