// Writes the Argo CD health check's test data (gitops/argocd/.../vaultpam.io/Connector/testdata)
// from the operator's own status code, removing files no situation produces any more. Run it after
// changing what the operator writes, then review the diff:
//   npx node test/gitops/write-health-testdata.ts
// With --update-messages it also runs health.lua on the new data and takes the messages it now
// gives into health_test.yaml, for the cases whose health status stays as expected; a case whose
// status would change is listed and left alone, for a person to judge (add new cases by hand).
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import { luaHealth } from './ecosystem.ts';
import { CONNECTOR_CHECK_DIR, expectedTestdata } from './health-testdata.ts';

const files = await expectedTestdata();
const dir = join(CONNECTOR_CHECK_DIR, 'testdata');
await mkdir(dir, { recursive: true });
for (const name of await readdir(dir)) {
  if (!files.has(`testdata/${name}`)) {
    await rm(join(dir, name));
    process.stdout.write(`removed testdata/${name}\n`);
  }
}
for (const [path, content] of files) await writeFile(join(CONNECTOR_CHECK_DIR, path), content);
process.stdout.write(`wrote ${files.size} files under ${dir}\n`);

if (process.argv.includes('--update-messages')) {
  const testsFile = join(CONNECTOR_CHECK_DIR, 'health_test.yaml');
  const text = await readFile(testsFile, 'utf8');
  const header = text.slice(0, text.indexOf('tests:'));
  const { tests } = yaml.load(text) as {
    tests: { healthStatus: { status: string; message: string }; inputPath: string }[];
  };
  const kept = tests.filter((c) => files.has(c.inputPath));
  const results = await luaHealth(
    join(CONNECTOR_CHECK_DIR, 'health.lua'),
    kept.map((c) => c.inputPath),
    { cwd: CONNECTOR_CHECK_DIR },
  );
  for (const [i, c] of kept.entries()) {
    const result = results[i];
    if (!result) continue;
    if (result.status !== c.healthStatus.status) {
      process.stdout.write(
        `${c.inputPath}: now ${result.status}, expected ${c.healthStatus.status}: left as is\n`,
      );
      continue;
    }
    if (result.message !== c.healthStatus.message) {
      c.healthStatus.message = result.message;
      process.stdout.write(`${c.inputPath}: message updated\n`);
    }
  }
  await writeFile(testsFile, `${header}${yaml.dump({ tests: kept }, { lineWidth: 100 })}`);
  for (const path of files.keys())
    if (!kept.some((c) => c.inputPath === path)) process.stdout.write(`${path}: no case yet; add one\n`);
}
