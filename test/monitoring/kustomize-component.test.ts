// The monitoring component (kustomize/components/monitoring) rendered by the pinned kustomize on top
// of the production and the namespaced overlays, as a user's overlay would add it: it adds exactly
// the ServiceMonitor, the PrometheusRule and the dashboard ConfigMap; the ServiceMonitor selects the
// operator's metrics Service by its labels and port and gives it the job the operator's alerts
// select; the PrometheusRule carries rules.yaml's groups and the ConfigMap the dashboard file. The
// monitoring.coreos.com CRDs are the Prometheus Operator's, not this project's, so these objects are
// not applied to the test API server: instead they are decoded strictly into the Prometheus
// Operator's own Go types (monitoring-objects), and promtool checks the rules in rules.test.ts.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { KubernetesObject } from '@kubernetes/client-node';
import test from 'ava';
import * as yaml from 'js-yaml';
import { ensureClusterBinaries } from '../../dev/local-cluster/binaries.ts';
import { RULES_FILE } from './prometheusrule.ts';
import { metricsOfQueries, prometheusOperatorVerdicts } from './promtool.ts';

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const DASHBOARD_FILE = join(repoRoot, 'monitoring/dashboards/vaultpam-connectors.json');

interface Labelled extends KubernetesObject {
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

let kustomize = '';
test.before(async () => {
  kustomize = join(await ensureClusterBinaries(), 'kustomize');
});

/** Renders a user's overlay (these bases, repository folders, with these components) as YAML. */
async function renderOverlayText(
  t: import('ava').ExecutionContext,
  bases: string[],
  components: string[],
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vaultpam-overlay-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // kustomize takes directories by relative path only.
  const at = (folder: string) => relative(dir, join(repoRoot, folder));
  await writeFile(
    join(dir, 'kustomization.yaml'),
    yaml.dump({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: bases.map(at),
      components: components.map(at),
    }),
  );
  const { stdout } = await run(kustomize, ['build', dir], { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** The objects of a user's overlay, rendered. */
async function renderOverlay(t: import('ava').ExecutionContext, bases: string[], components: string[]) {
  return yaml
    .loadAll(await renderOverlayText(t, bases, components))
    .filter((doc): doc is Labelled => typeof doc === 'object' && doc !== null);
}

const identity = (o: KubernetesObject) =>
  `${o.kind} ${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
const one = (objects: Labelled[], kind: string) => {
  const found = objects.filter((o) => o.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, rendered ${found.length}`);
  return found[0] as Labelled;
};

/** The job the operator's alerts select in up{job="..."}: what the ServiceMonitor must produce. */
async function alertedOperatorJob(): Promise<string> {
  const rules = yaml.load(await readFile(RULES_FILE, 'utf8')) as {
    groups: Array<{ rules: Array<{ expr: string }> }>;
  };
  const exprs = rules.groups.flatMap((g) => g.rules).map((r, i) => ({ id: String(i), expr: r.expr }));
  const jobs = (await metricsOfQueries(exprs))
    .flatMap((a) => a.selectors ?? [])
    .filter((s) => s.metric === 'up')
    .flatMap((s) => s.matchers.filter((m) => m.name === 'job' && m.type === '=').map((m) => m.value));
  if (new Set(jobs).size !== 1)
    throw new Error(`expected one operator job in the rules, found ${jobs.join(', ')}`);
  return jobs[0] ?? '';
}

for (const overlay of ['kustomize/overlays/production', 'kustomize/overlays/namespaced']) {
  test(`${overlay} with the monitoring component: a ServiceMonitor that scrapes the metrics Service as the job the alerts select`, async (t) => {
    const objects = await renderOverlay(t, [overlay], ['kustomize/components/monitoring']);
    const without = await renderOverlay(t, [overlay], []);
    const added = objects.map(identity).filter((id) => !without.map(identity).includes(id));
    t.deepEqual(added.sort(), [
      'ConfigMap vaultpam-system/vaultpam-connector-operator-dashboard',
      'PrometheusRule vaultpam-system/vaultpam-connector-operator',
      'ServiceMonitor vaultpam-system/vaultpam-connector-operator',
    ]);

    const monitor = one(objects, 'ServiceMonitor');
    const service = objects.find(
      (o) => o.kind === 'Service' && o.metadata?.name === 'vaultpam-connector-operator-metrics',
    );
    t.truthy(service, 'the metrics Service is rendered');
    const spec = monitor.spec as {
      jobLabel: string;
      selector: { matchLabels: Record<string, string> };
      namespaceSelector?: unknown;
      endpoints: Array<{ port: string; path: string; honorLabels?: boolean }>;
    };
    // No namespaceSelector: the Service in the ServiceMonitor's own namespace.
    t.is(spec.namespaceSelector, undefined);
    t.is(monitor.metadata?.namespace, service?.metadata?.namespace);
    const serviceLabels = service?.metadata?.labels ?? {};
    for (const [key, value] of Object.entries(spec.selector.matchLabels)) {
      t.is(serviceLabels[key], value, `the Service carries the selector's ${key}`);
    }
    const ports = ((service?.spec?.ports ?? []) as Array<{ name: string }>).map((p) => p.name);
    t.deepEqual(
      spec.endpoints.map((e) => [e.port, e.path, e.honorLabels]),
      [['metrics', '/metrics', true]],
    );
    t.true(ports.includes('metrics'));
    t.is(serviceLabels[spec.jobLabel], await alertedOperatorJob(), 'the job label the alerts select');

    // The Service's selector reaches the operator's pods, whose container serves /metrics on it.
    const deployment = one(objects, 'Deployment');
    const template = deployment.spec?.template as
      | { metadata: { labels: Record<string, string> } }
      | undefined;
    const podLabels = template?.metadata.labels ?? {};
    for (const [key, value] of Object.entries((service?.spec?.selector ?? {}) as Record<string, string>)) {
      t.is(podLabels[key], value);
    }
  });
}

test('the PrometheusRule carries rules.yaml and the ConfigMap the dashboard, for Grafana sidecars', async (t) => {
  const objects = await renderOverlay(
    t,
    ['kustomize/overlays/production'],
    ['kustomize/components/monitoring'],
  );
  const rule = one(objects, 'PrometheusRule');
  t.is(rule.apiVersion, 'monitoring.coreos.com/v1');
  const rules = yaml.load(await readFile(RULES_FILE, 'utf8')) as { groups: unknown };
  t.deepEqual(rule.spec?.groups, rules.groups);

  const dashboard = objects.find(
    (o) => o.kind === 'ConfigMap' && o.metadata?.name === 'vaultpam-connector-operator-dashboard',
  );
  t.is(dashboard?.metadata?.labels?.grafana_dashboard, '1');
  t.deepEqual(Object.keys(dashboard?.data ?? {}), ['vaultpam-connectors.json']);
  t.deepEqual(
    JSON.parse(dashboard?.data?.['vaultpam-connectors.json'] ?? '{}'),
    JSON.parse(await readFile(DASHBOARD_FILE, 'utf8')),
  );
});

test("the ServiceMonitor and the PrometheusRule decode strictly into the Prometheus Operator's types", async (t) => {
  const rendered = await renderOverlayText(
    t,
    ['kustomize/overlays/production'],
    ['kustomize/components/monitoring'],
  );
  t.deepEqual(await prometheusOperatorVerdicts(rendered), [
    { kind: 'PrometheusRule', namespace: 'vaultpam-system', name: 'vaultpam-connector-operator' },
    { kind: 'ServiceMonitor', namespace: 'vaultpam-system', name: 'vaultpam-connector-operator' },
  ]);
  // The check can fail: a field name spelled in the wrong case, and a number where a duration goes.
  const broken = rendered.replace('honorLabels: true', 'honorlabels: true').replace(/for: 10m/, 'for: 600');
  t.not(broken, rendered);
  const errors = (await prometheusOperatorVerdicts(broken)).map((v) => v.error ?? '');
  t.regex(errors.join('\n'), /unknown field "spec\.endpoints\[0\]\.honorlabels"/);
  t.regex(errors.join('\n'), /rules\.for of type v1\.Duration/);
});
