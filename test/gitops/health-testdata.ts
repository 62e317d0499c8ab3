// The Argo CD health check's files (Argo CD's own layout: health.lua, health_test.yaml and
// testdata/*.yaml under resource_customizations/<group>/<kind>/) and the test data as the
// operator's code produces it (connector-situations.ts). write-health-testdata.ts writes it;
// argocd-health.test.ts fails when the committed files differ from it.
import { fileURLToPath } from 'node:url';
import * as yaml from 'js-yaml';
import { type Situation, situations } from './connector-situations.ts';

/** gitops/argocd/resource_customizations/vaultpam.io/Connector */
export const CONNECTOR_CHECK_DIR = fileURLToPath(
  new URL('../../gitops/argocd/resource_customizations/vaultpam.io/Connector/', import.meta.url),
);

/** One test-data file: the Connector as stored, with a header saying where it comes from. */
export function renderTestdata(situation: Situation): string {
  const header = [
    `# ${situation.title}.`,
    "# Written by test/gitops/write-health-testdata.ts from the operator's own status code",
    '# (test/gitops/connector-situations.ts); do not edit by hand.',
  ].join('\n');
  // A plain object: the stored Connector as JSON would carry it (dates as strings).
  const object = JSON.parse(JSON.stringify(situation.connector)) as object;
  return `${header}\n${yaml.dump(object, { lineWidth: 100, noRefs: true, sortKeys: false })}`;
}

/** Every test-data file: its path under testdata/ and its content. */
export async function expectedTestdata(): Promise<Map<string, string>> {
  return new Map((await situations()).map((s) => [`testdata/${s.file}.yaml`, renderTestdata(s)]));
}
