// The alerts (monitoring/rules.yaml) with the real promtool built from the pinned Prometheus module
// (tools/promtool): `promtool check rules` on the rule file and on the PrometheusRule's groups,
// `promtool test rules` on the rule tests in monitoring/tests/, every alert tested both firing and
// quiet, every alert with its labels, annotations and a runbook_url that resolves to a docs section,
// and every expression and every series the tests feed held to the metrics the code exports.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import * as yaml from 'js-yaml';
import { runbookUrlProblem } from './docs-anchors.ts';
import { expectedPrometheusRule, PROMETHEUS_RULE_FILE, RULES_FILE } from './prometheusrule.ts';
import { promtool } from './promtool.ts';
import { queryProblems } from './query-check.ts';

const TESTS_DIR = fileURLToPath(new URL('../../monitoring/tests/', import.meta.url));

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleGroups {
  groups: Array<{ name: string; rules: Rule[] }>;
}
interface RuleTestFile {
  rule_files: string[];
  tests: Array<{
    name?: string;
    input_series: Array<{ series: string; values: string }>;
    alert_rule_test?: Array<{ alertname: string; eval_time: string; exp_alerts?: unknown[] }>;
  }>;
}

const rulesText = await readFile(RULES_FILE, 'utf8');
const rules = yaml.load(rulesText) as RuleGroups;
const alerts = rules.groups.flatMap((g) => g.rules).filter((r): r is Rule & { alert: string } => !!r.alert);
const testFiles = (await readdir(TESTS_DIR)).filter((f) => f.endsWith('.yaml')).sort();
const ruleTests = await Promise.all(
  testFiles.map(async (file) => ({
    file,
    content: yaml.load(await readFile(join(TESTS_DIR, file), 'utf8')) as RuleTestFile,
  })),
);

test('promtool check rules accepts monitoring/rules.yaml', async (t) => {
  const result = await promtool(['check', 'rules', RULES_FILE]);
  t.is(result.code, 0, result.stdout + result.stderr);
  t.regex(result.stdout, new RegExp(`SUCCESS: ${alerts.length} rules found`));
});

test('the rule tests pass under promtool test rules', async (t) => {
  const result = await promtool(['test', 'rules', ...testFiles], TESTS_DIR);
  t.is(result.code, 0, result.stdout + result.stderr);
  for (const file of testFiles) t.true(result.stdout.includes(`Processing test file: ${file}`), file);
  t.notRegex(result.stdout + result.stderr, /FAILED/);
});

test('promtool test rules fails when an alert does not fire as a test expects', async (t) => {
  // The same tests against rules whose Offline alert waits an hour: the 15-minute case must fail,
  // so a rule test here can fail at all.
  const dir = await mkdtemp(join(tmpdir(), 'vaultpam-rules-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const slower = rulesText.replace(/(alert: VaultpamConnectorOffline\n(?:.*\n)*?\s+for: )10m/, '$11h');
  t.not(slower, rulesText);
  await writeFile(join(dir, 'rules.yaml'), slower);
  const testFile = (await readFile(join(TESTS_DIR, 'connectors.yaml'), 'utf8')).replace(
    '../rules.yaml',
    'rules.yaml',
  );
  await writeFile(join(dir, 'connectors.yaml'), testFile);
  const result = await promtool(['test', 'rules', 'connectors.yaml'], dir);
  t.not(result.code, 0);
  t.regex(result.stdout + result.stderr, /alertname: VaultpamConnectorOffline, time: 15m/);
});

test('every alert is tested: firing, and quiet where it must not fire', (t) => {
  const cases = ruleTests.flatMap(({ content }) => content.tests.flatMap((g) => g.alert_rule_test ?? []));
  for (const { alert } of alerts) {
    const mine = cases.filter((c) => c.alertname === alert);
    t.true(
      mine.some((c) => (c.exp_alerts ?? []).length > 0),
      `${alert}: no rule test expects it to fire`,
    );
    t.true(
      mine.some((c) => (c.exp_alerts ?? []).length === 0),
      `${alert}: no rule test expects it to stay quiet`,
    );
  }
  const known = new Set(alerts.map((a) => a.alert));
  t.deepEqual(
    cases.map((c) => c.alertname).filter((name) => !known.has(name)),
    [],
    'tests of alerts that do not exist',
  );
});

test('every alert has a severity, a summary, a description and a runbook_url to a docs section that exists', async (t) => {
  t.true(alerts.length >= 10);
  const names = new Set<string>();
  for (const alert of alerts) {
    t.false(names.has(alert.alert), `${alert.alert} is defined twice`);
    names.add(alert.alert);
    t.regex(alert.alert, /^Vaultpam[A-Z][A-Za-z]+$/);
    t.true(['warning', 'critical'].includes(alert.labels?.severity ?? ''), `${alert.alert}: severity`);
    t.truthy(alert.annotations?.summary, `${alert.alert}: summary`);
    t.truthy(alert.annotations?.description, `${alert.alert}: description`);
    const url = alert.annotations?.runbook_url ?? '';
    t.is(await runbookUrlProblem(url), undefined, `${alert.alert}: runbook_url`);
  }
});

test('a runbook_url to a missing section or file is caught', async (t) => {
  const base = 'https://github.com/vaultpam/vaultpam-connector-operator/blob/main/docs/';
  t.is(await runbookUrlProblem(`${base}connector-resource.md#conditions`), undefined);
  t.regex((await runbookUrlProblem(`${base}connector-resource.md#no-such-section`)) ?? '', /has no heading/);
  t.regex((await runbookUrlProblem(`${base}no-such-file.md#conditions`)) ?? '', /does not exist/);
  t.regex((await runbookUrlProblem('https://example.com/runbook#x')) ?? '', /does not start with/);
});

test('every alert expression reads only metrics the code exports, with labels and values they have', async (t) => {
  const problems = await queryProblems(alerts.map((a) => ({ id: a.alert, expr: a.expr })));
  t.deepEqual(problems, []);
});

test('the rule tests feed only series of metrics the code exports', async (t) => {
  const series = ruleTests.flatMap(({ file, content }) =>
    content.tests.flatMap((group, i) =>
      group.input_series.map((s, j) => ({ id: `${file} test ${i + 1} series ${j + 1}`, expr: s.series })),
    ),
  );
  t.true(series.length > 20);
  t.deepEqual(await queryProblems(series), []);
});

test('the metric check catches a name, a label and a value the code does not export', async (t) => {
  const problems = await queryProblems([
    { id: 'typo', expr: 'rate(vaultpam_operator_reconcile_total[5m])' },
    { id: 'label', expr: 'vaultpam_operator_leader{phase="Online"}' },
    { id: 'value', expr: 'vaultpam_operator_connector_phase{phase=~"Offline|Broken"}' },
    { id: 'parse', expr: 'sum(' },
    { id: 'fine', expr: 'sum by (phase) (vaultpam_operator_connectors{phase="Online"})' },
  ]);
  t.is(problems.length, 4, problems.join('\n'));
  t.regex(problems[0] ?? '', /^typo: vaultpam_operator_reconcile_total is not a metric/);
  t.regex(problems[1] ?? '', /^label: vaultpam_operator_leader has no label phase/);
  t.regex(problems[2] ?? '', /^value: vaultpam_operator_connector_phase never has phase="Broken"/);
  t.regex(problems[3] ?? '', /^parse: /);
});

test('the PrometheusRule is monitoring/rules.yaml under spec, and promtool accepts its groups', async (t) => {
  const onDisk = await readFile(PROMETHEUS_RULE_FILE, 'utf8');
  t.is(onDisk, await expectedPrometheusRule(), 'run: npx node test/monitoring/write-prometheusrule.ts');
  const object = yaml.load(onDisk) as { apiVersion: string; kind: string; spec: RuleGroups };
  t.is(object.apiVersion, 'monitoring.coreos.com/v1');
  t.is(object.kind, 'PrometheusRule');
  t.deepEqual(object.spec.groups, rules.groups);

  const dir = await mkdtemp(join(tmpdir(), 'vaultpam-prometheusrule-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const groupsFile = join(dir, 'groups.yaml');
  await writeFile(groupsFile, yaml.dump({ groups: object.spec.groups }));
  const result = await promtool(['check', 'rules', groupsFile]);
  t.is(result.code, 0, result.stdout + result.stderr);
});
