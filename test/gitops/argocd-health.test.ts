// The Argo CD health check for vaultpam.io/Connector (gitops/argocd/.../vaultpam.io/Connector),
// in Argo CD's own layout: health.lua, health_test.yaml, testdata/*.yaml. Each case runs through
// lua-health, which runs the script as Argo CD does with the interpreter Argo CD uses (gopher-lua),
// both with the libraries a check from argocd-cm gets and with all of them (as Argo CD's own
// health tests run). The test data is what the operator's code writes, and every phase of the CRD's
// enum and every Stalled and Reconciling reason has a case. docs/gitops.md embeds the script as is.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import * as yaml from 'js-yaml';
import { CONNECTOR_PHASES, type Connector } from '../../src/operator/api/types.ts';
import { ReconcilingReasons, StalledReasons } from '../../src/operator/conditions.ts';
import { luaHealth } from './ecosystem.ts';
import { docTable, gitopsDoc } from './gitops-doc.ts';
import { CONNECTOR_CHECK_DIR, expectedTestdata } from './health-testdata.ts';

interface HealthTest {
  healthStatus: { status: string; message: string };
  inputPath: string;
}

const script = join(CONNECTOR_CHECK_DIR, 'health.lua');

async function healthTests(): Promise<HealthTest[]> {
  const parsed = yaml.load(await readFile(join(CONNECTOR_CHECK_DIR, 'health_test.yaml'), 'utf8')) as {
    tests: HealthTest[];
  };
  return parsed.tests;
}

async function testdataObjects(): Promise<Map<string, Connector>> {
  const objects = new Map<string, Connector>();
  for (const { inputPath } of await healthTests())
    objects.set(
      inputPath,
      yaml.load(await readFile(join(CONNECTOR_CHECK_DIR, inputPath), 'utf8')) as Connector,
    );
  return objects;
}

test('the test data is what the operator writes (regenerate: npx node test/gitops/write-health-testdata.ts)', async (t) => {
  const expected = await expectedTestdata();
  const committed = (await readdir(join(CONNECTOR_CHECK_DIR, 'testdata'))).map((f) => `testdata/${f}`);
  t.deepEqual(committed.sort(), [...expected.keys()].sort(), 'the same files');
  for (const [path, content] of expected)
    t.is(await readFile(join(CONNECTOR_CHECK_DIR, path), 'utf8'), content, `${path} is up to date`);
});

test('health_test.yaml has one case per test-data file, named by what Argo CD says', async (t) => {
  const tests = await healthTests();
  const paths = tests.map((c) => c.inputPath);
  t.is(new Set(paths).size, paths.length, 'no file twice');
  t.deepEqual([...paths].sort(), [...(await expectedTestdata()).keys()].sort());
  for (const c of tests) {
    // testdata/<status>-<situation>.yaml: the file name says the expected health at a glance.
    const prefix = c.inputPath.slice('testdata/'.length).split('-')[0] ?? '';
    t.is(prefix, c.healthStatus.status.toLowerCase(), `${c.inputPath} is named after its expected status`);
    t.truthy(c.healthStatus.message, `${c.inputPath} expects a message`);
  }
});

test("every phase in the CRD's enum, every Stalled and Reconciling reason, paused, no status and an unobserved spec have a case", async (t) => {
  const crd = yaml.load(
    await readFile(new URL('../../crds/connectors.vaultpam.io.yaml', import.meta.url), 'utf8'),
  ) as {
    spec: {
      versions: {
        schema: {
          openAPIV3Schema: { properties: { status: { properties: { phase: { enum: string[] } } } } };
        };
      }[];
    };
  };
  const phases = new Set(
    crd.spec.versions.flatMap((v) => v.schema.openAPIV3Schema.properties.status.properties.phase.enum),
  );
  t.true(phases.size >= 8, 'the phase enum was found');
  const objects = [...(await testdataObjects()).values()];
  const covered = new Set<string | undefined>(objects.map((o) => o.status?.phase));
  for (const phase of phases) t.true(covered.has(phase), `phase ${phase} has a test case`);
  const reasons = (type: string) =>
    new Set(
      objects.flatMap(
        (o) =>
          o.status?.conditions?.filter((c) => c.type === type && c.status === 'True').map((c) => c.reason) ??
          [],
      ),
    );
  const stalled = reasons('Stalled');
  for (const reason of Object.values(StalledReasons))
    t.true(stalled.has(reason), `Stalled ${reason} has a test case`);
  const reconciling = reasons('Reconciling');
  for (const reason of Object.values(ReconcilingReasons))
    t.true(reconciling.has(reason), `Reconciling ${reason} has a test case`);
  t.true(
    objects.some((o) => o.spec.paused === true),
    'a paused Connector has a test case',
  );
  t.true(
    objects.some((o) => o.status === undefined),
    'a Connector without a status has a test case',
  );
  t.true(
    objects.some(
      (o) =>
        o.status?.observedGeneration !== undefined && o.status.observedGeneration !== o.metadata.generation,
    ),
    'a spec the operator has not observed yet has a test case',
  );
});

for (const [mode, options] of [
  ['as a check from argocd-cm (base, table and a safe os only)', {}],
  ["with every standard library (Argo CD's useOpenLibs, and its own health tests)", { openLibs: true }],
] as const) {
  test(`each case: lua-health says what health_test.yaml expects, ${mode}`, async (t) => {
    const tests = await healthTests();
    const results = await luaHealth(
      script,
      tests.map((c) => c.inputPath),
      { ...options, cwd: CONNECTOR_CHECK_DIR },
    );
    t.is(results.length, tests.length);
    for (const [i, c] of tests.entries()) {
      t.deepEqual({ status: results[i]?.status, message: results[i]?.message }, c.healthStatus, c.inputPath);
    }
  });
}

test('a need for action kept as last seen while the control plane is unreachable: Argo CD says both; a blocker says itself alone', async (t) => {
  const objects = await testdataObjects();
  const lastSeen = 'testdata/degraded-needs-recovery-manual-unreachable.yaml';
  const blocker = 'testdata/degraded-stalled-ownership-conflict-unreachable.yaml';
  const [kept, blocked] = await luaHealth(script, [lastSeen, blocker], { cwd: CONNECTOR_CHECK_DIR });
  const stalledMessage = (path: string) =>
    objects.get(path)?.status?.conditions?.find((c) => c.type === 'Stalled')?.message ?? '(none)';
  // A person must act (the stall's words), and the operator cannot see the control plane now.
  t.is(kept?.status, 'Degraded');
  t.true(kept?.message.includes(`stalled (RecoveryRequired): ${stalledMessage(lastSeen)}`), kept?.message);
  t.regex(
    kept?.message ?? '',
    /the operator cannot reach the control plane now \(ControlPlaneUnreachable\): connect ECONNREFUSED 127\.0\.0\.1:8443, so this is the need for action it last saw$/,
  );
  // A conflict in Kubernetes holds whatever the control plane does: its message alone, as before.
  t.is(blocked?.status, 'Degraded');
  t.is(blocked?.message, `Pending, stalled (OwnershipConflict): ${stalledMessage(blocker)}`);
});

test('Argo CD itself shows a Connector being deleted as Pending deletion, before the script runs', async (t) => {
  const deleting = [...(await testdataObjects())].filter(([, o]) => o.metadata.deletionTimestamp);
  t.true(deleting.length > 0);
  const results = await luaHealth(
    script,
    deleting.map(([path]) => path),
    { resource: true, cwd: CONNECTOR_CHECK_DIR },
  );
  for (const result of results) t.like(result, { status: 'Progressing', message: 'Pending deletion' });
});

test('a Connector without status or metadata.generation is judged without an error', async (t) => {
  // What a dry run or a freshly created object looks like to Argo CD: no generation, no status.
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'argocd-health-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const bare = join(dir, 'bare.yaml');
  await writeFile(
    bare,
    'apiVersion: vaultpam.io/v1alpha1\nkind: Connector\nmetadata: {name: edge}\nspec: {}\n',
  );
  const phaseOnly = join(dir, 'phase-only.yaml');
  await writeFile(
    phaseOnly,
    'apiVersion: vaultpam.io/v1alpha1\nkind: Connector\nmetadata: {name: edge}\nspec: {}\nstatus: {phase: Online}\n',
  );
  const [first, second] = await luaHealth(script, [bare, phaseOnly]);
  t.like(first, { status: 'Progressing' });
  t.like(second, {
    status: 'Progressing',
    message: "Online: waiting for the operator's assessment (no Ready condition yet)",
  });
});

test("docs/gitops.md's argocd-cm snippet holds exactly health.lua", async (t) => {
  const doc = await gitopsDoc();
  const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  const configMaps = blocks
    .map(
      (block) =>
        yaml.load(block) as { kind?: string; metadata?: { name?: string }; data?: Record<string, string> },
    )
    .filter((o) => o?.kind === 'ConfigMap' && o.metadata?.name === 'argocd-cm');
  t.is(configMaps.length, 1, 'one argocd-cm snippet');
  t.is(
    configMaps[0]?.data?.['resource.customizations.health.vaultpam.io_Connector'],
    await readFile(script, 'utf8'),
  );
});

test("docs/gitops.md's table says what health_test.yaml expects for each case it names", async (t) => {
  const expected = new Map((await healthTests()).map((c) => [c.inputPath, c.healthStatus.status]));
  const rows = docTable(await gitopsDoc());
  t.true(rows.length >= 8, 'the table was found');
  for (const row of rows) {
    const path = `testdata/${row.testCase}.yaml`;
    t.true(expected.has(path), `${row.testCase} is a test case`);
    t.is<string | undefined, string | undefined>(row.argocd, expected.get(path), `${row.testCase}: Argo CD`);
  }
  t.deepEqual(
    rows.map((r) => `testdata/${r.testCase}.yaml`).sort(),
    [...expected.keys()].sort(),
    'one row per test case',
  );
  const phases = new Set(rows.map((r) => r.phase));
  for (const phase of CONNECTOR_PHASES) t.true(phases.has(phase), `the table has a row for ${phase}`);
});
