// The Helm chart (charts/vaultpam-connector-operator) with the real helm, built from the Go module
// pinned in tools/helm: it lints (also --strict) with its defaults and every ci/ values file; it
// renders the same objects as the kustomize overlays (production, dev, namespaced, and production with
// the admission-policy component), field by field after Helm's own labels and the settings rollout
// mechanism are set aside (normalise.ts); its copies of crds/ and monitoring/rules.yaml are the
// originals; the operator's own flag parsing accepts the settings each values file renders; and bad
// values are refused, by values.schema.json or the chart's checks, with a message naming the value.
// test/chart/chart-apply.test.ts applies every rendering to a real API server.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubernetesObject, V1ConfigMap, V1Deployment } from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import * as yaml from 'js-yaml';
import { selfSignedCertificate } from '../helpers/certificates.ts';
import { repoRoot } from '../helpers/cluster.ts';
import {
  CHART_DIR,
  chartPath,
  ciValuesFiles,
  helm,
  identity,
  RELEASE_NAMESPACE,
  renderKustomize,
  templateArgs,
  templateChart,
} from './helm.ts';
import { firstDifference, HELM_LABELS, normalise, SETTINGS_CONFIGMAP } from './normalise.ts';

const ci = (name: string) => join(CHART_DIR, 'ci', name);

// --- helm lint -----------------------------------------------------------------------------------

test('helm lint passes, also with --strict, with the defaults and with each ci/ values file', async (t) => {
  const files = ciValuesFiles();
  t.true(files.length >= 6, `the chart has its ci/ values files (found ${files.length})`);
  for (const values of [undefined, ...files]) {
    const what = values ? chartPath(values) : 'the defaults';
    for (const strict of [false, true]) {
      const args = [
        'lint',
        CHART_DIR,
        ...(strict ? ['--strict'] : []),
        ...(values ? ['--values', values] : []),
      ];
      const result = await helm(args);
      t.is(result.code, 0, `helm ${args.join(' ')}: ${result.stdout}${result.stderr}`);
      t.regex(result.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/, what);
      t.notRegex(
        result.stdout,
        /\[(ERROR|WARNING)\]/,
        `${what}${strict ? ' (--strict)' : ''}: no error or warning`,
      );
    }
  }
});

test('helm lint --strict fails on a values file with a bad value', async (t) => {
  const result = await helm(['lint', CHART_DIR, '--strict', '--set', 'replicas=0']);
  t.not(result.code, 0);
  t.regex(`${result.stdout}${result.stderr}`, /\/replicas.*minimum: got 0, want 1/);
});

// --- copies of the repository's sources -----------------------------------------------------------

test("the chart's crds/ are the repository's crds/, file for file and byte for byte", async (t) => {
  const source = (await readdir(join(repoRoot, 'crds')))
    .filter((name) => name !== 'kustomization.yaml')
    .sort();
  const copied = (await readdir(join(CHART_DIR, 'crds'))).sort();
  t.deepEqual(copied, source, 'the same CRD files (bash tools/helm/sync-chart.sh copies them)');
  for (const name of source) {
    const [original, copy] = await Promise.all([
      readFile(join(repoRoot, 'crds', name), 'utf8'),
      readFile(join(CHART_DIR, 'crds', name), 'utf8'),
    ]);
    t.true(
      copy === original,
      `charts/vaultpam-connector-operator/crds/${name} differs from crds/${name}; run bash tools/helm/sync-chart.sh`,
    );
  }
});

test("the chart's files/rules.yaml is monitoring/rules.yaml, byte for byte", async (t) => {
  const [original, copy] = await Promise.all([
    readFile(join(repoRoot, 'monitoring', 'rules.yaml'), 'utf8'),
    readFile(join(CHART_DIR, 'files', 'rules.yaml'), 'utf8'),
  ]);
  t.true(
    copy === original,
    'charts/vaultpam-connector-operator/files/rules.yaml is stale; run bash tools/helm/sync-chart.sh',
  );
});

test("the chart's files/dashboards/ are monitoring/dashboards/, byte for byte", async (t) => {
  const source = (await readdir(join(repoRoot, 'monitoring', 'dashboards'))).sort();
  t.deepEqual((await readdir(join(CHART_DIR, 'files', 'dashboards'))).sort(), source);
  for (const name of source) {
    const [original, copy] = await Promise.all([
      readFile(join(repoRoot, 'monitoring', 'dashboards', name), 'utf8'),
      readFile(join(CHART_DIR, 'files', 'dashboards', name), 'utf8'),
    ]);
    t.true(copy === original, `files/dashboards/${name} is stale; run bash tools/helm/sync-chart.sh`);
  }
});

// --- the chart and the kustomize install render the same objects ----------------------------------

/**
 * Compares two renderings object by object after normalise(): the same identities, and for each the
 * first differing field, if any.
 */
function drift(chart: KubernetesObject[], kustomize: KubernetesObject[]) {
  const byIdentity = (objects: KubernetesObject[]) =>
    new Map(objects.map((object) => [identity(normalise(object) as KubernetesObject), normalise(object)]));
  const fromChart = byIdentity(chart);
  const fromKustomize = byIdentity(kustomize);
  const onlyChart = [...fromChart.keys()].filter((key) => !fromKustomize.has(key)).sort();
  const onlyKustomize = [...fromKustomize.keys()].filter((key) => !fromChart.has(key)).sort();
  const differing = [...fromChart.keys()]
    .filter((key) => fromKustomize.has(key))
    .flatMap((key) => {
      const found = firstDifference(fromChart.get(key) ?? null, fromKustomize.get(key) ?? null);
      return found ? [`${key} at ${found}`] : [];
    });
  return { onlyChart, onlyKustomize, differing, compared: fromChart.size };
}

const namespaceObject = `v1 Namespace ${RELEASE_NAMESPACE}`;

test('with its defaults, the chart renders the objects of kustomize/overlays/production, field for field', async (t) => {
  const kustomize = await renderKustomize('kustomize/overlays/production');
  const chart = await templateChart();
  const result = drift(chart, kustomize);
  t.deepEqual(result.differing, [], 'no object differs');
  t.deepEqual(result.onlyChart, []);
  // helm install needs the release namespace before it installs anything, so the chart renders it
  // only when asked (namespace.create, the next test); everything else is there.
  t.deepEqual(result.onlyKustomize, [namespaceObject]);
  t.true(result.compared >= 20, `every object of the overlay compared (${result.compared})`);
  t.false(
    chart.some((object) => object.kind === 'Secret'),
    'no Secret: the operator credential is created by hand, never a value',
  );
});

test('with namespace.create, the chart also renders the Namespace of the production overlay', async (t) => {
  const kustomize = await renderKustomize('kustomize/overlays/production');
  const chart = await templateChart({ setJson: ['namespace.create=true'] });
  t.deepEqual(drift(chart, kustomize), {
    onlyChart: [],
    onlyKustomize: [],
    differing: [],
    compared: kustomize.length,
  });
});

test('with ci/dev-values.yaml, the chart renders the objects of kustomize/overlays/dev', async (t) => {
  const result = drift(
    await templateChart({ valuesFiles: [ci('dev-values.yaml')] }),
    await renderKustomize('kustomize/overlays/dev'),
  );
  t.deepEqual(result.differing, []);
  t.deepEqual(result.onlyChart, []);
  t.deepEqual(result.onlyKustomize, [namespaceObject]);
});

test('with ci/namespaced-values.yaml, the chart renders the objects of kustomize/overlays/namespaced', async (t) => {
  const chart = await templateChart({ valuesFiles: [ci('namespaced-values.yaml')] });
  const result = drift(chart, await renderKustomize('kustomize/overlays/namespaced'));
  t.deepEqual(result.differing, []);
  t.deepEqual(result.onlyChart, []);
  t.deepEqual(result.onlyKustomize, [namespaceObject]);
  t.truthy(
    chart.find((o) => o.kind === 'Role' && o.metadata?.namespace === 'vaultpam'),
    'the Connector rules are a Role in the watched namespace',
  );
  t.false(chart.some((o) => o.metadata?.name === 'vaultpam-connector-operator-clustercontrolplanes'));
});

test('with admissionPolicy.enabled, the chart renders production plus kustomize/components/connector-admission-policy', async (t) => {
  const kustomize = await renderKustomize('kustomize/overlays/production', [
    'kustomize/components/connector-admission-policy',
  ]);
  const chart = await templateChart({ setJson: ['admissionPolicy.enabled=true'] });
  const result = drift(chart, kustomize);
  t.deepEqual(result.differing, []);
  t.deepEqual(result.onlyChart, []);
  t.deepEqual(result.onlyKustomize, [namespaceObject]);
  for (const kind of ['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'])
    t.true(
      chart.some((o) => o.kind === kind),
      `the chart renders the ${kind}`,
    );
});

test('admissionPolicy.allowedOrgs: unset or null leaves the key out (every organisation allowed, as the component ships); a list, even empty, sets it', async (t) => {
  const orgsOf = async (setJson: string[]) => {
    const chart = await templateChart({ setJson: ['admissionPolicy.enabled=true', ...setJson] });
    const params = chart.find(
      (o) => o.kind === 'ConfigMap' && o.metadata?.name === 'vaultpam-connector-admission',
    ) as KubernetesObject & { data: Record<string, string> };
    return params.data.allowedOrgs;
  };
  t.is(await orgsOf([]), undefined, 'unset: no key');
  t.is(await orgsOf(['admissionPolicy.allowedOrgs=null']), undefined, 'null unsets it again');
  t.is(
    await orgsOf(['admissionPolicy.allowedOrgs=[]']),
    '',
    'an empty list: the key, empty (no organisation)',
  );
  t.is(
    await orgsOf(['admissionPolicy.allowedOrgs=["team-a/acme-payments","shared"]']),
    'team-a/acme-payments,shared',
  );
  // spec.connector.org may hold blanks inside, and the policy trims only an entry's ends, so an
  // organisation such as "Acme Payments" can be listed (the kustomize component's parameters take
  // it); the other lists' entries (images, names, ids) never hold one.
  t.is(await orgsOf(['admissionPolicy.allowedOrgs=["team-a/Acme Payments"]']), 'team-a/Acme Payments');
});

test('with every monitoring value enabled, the chart renders production plus kustomize/components/monitoring', async (t) => {
  const kustomize = await renderKustomize('kustomize/overlays/production', [
    'kustomize/components/monitoring',
  ]);
  const chart = await templateChart({
    setJson: [
      'monitoring={"serviceMonitor":{"enabled":true},"prometheusRule":{"enabled":true},"grafanaDashboard":{"enabled":true}}',
    ],
  });
  const result = drift(chart, kustomize);
  t.deepEqual(result.differing, []);
  t.deepEqual(result.onlyChart, []);
  t.deepEqual(result.onlyKustomize, [namespaceObject]);
  for (const kind of ['ServiceMonitor', 'PrometheusRule'])
    t.true(
      chart.some((o) => o.kind === kind),
      `the chart renders the ${kind}`,
    );
  t.true(
    chart.some((o) => o.kind === 'ConfigMap' && o.metadata?.labels?.grafana_dashboard === '1'),
    'the chart renders the dashboard ConfigMap',
  );
});

test('the drift check sees a change: a chart value that the overlay does not have is reported by field', async (t) => {
  const kustomize = await renderKustomize('kustomize/overlays/production');
  const chart = await templateChart({ setJson: ['operator.concurrency=16'] });
  t.deepEqual(drift(chart, kustomize).differing, [
    `v1 ConfigMap ${RELEASE_NAMESPACE}/${SETTINGS_CONFIGMAP} at .data.VAULTPAM_OPERATOR_CONCURRENCY: "16" != "8"`,
  ]);
});

// --- monitoring ----------------------------------------------------------------------------------

test('the PrometheusRule carries the rule groups of monitoring/rules.yaml, templates of Prometheus intact', async (t) => {
  const chart = await templateChart({ valuesFiles: [ci('monitoring-values.yaml')] });
  const rule = chart.find((o) => o.kind === 'PrometheusRule') as KubernetesObject & {
    spec: { groups: unknown };
  };
  t.truthy(rule, 'monitoring.prometheusRule.enabled renders a PrometheusRule');
  const source = yaml.load(await readFile(join(repoRoot, 'monitoring', 'rules.yaml'), 'utf8')) as {
    groups: unknown;
  };
  t.deepEqual(rule.spec.groups, source.groups, 'the same groups, rules, expressions and annotations');
  t.regex(
    JSON.stringify(rule.spec.groups),
    /\{\{ \$labels\.name \}\}/,
    "Prometheus's own {{ $labels.name }} is not rendered by Helm",
  );
  t.like(
    rule.metadata?.labels ?? {},
    { release: 'kube-prometheus-stack' },
    'the labels a Prometheus selects by',
  );
  const defaults = await templateChart();
  t.false(
    defaults.some((o) => o.apiVersion?.startsWith('monitoring.coreos.com/')),
    'no Prometheus Operator object by default (its CRDs may be absent)',
  );
});

test('the ServiceMonitor scrapes the metrics Service and gives the job label the alerts select', async (t) => {
  const chart = await templateChart({ valuesFiles: [ci('monitoring-values.yaml')] });
  const monitor = chart.find((o) => o.kind === 'ServiceMonitor') as KubernetesObject & {
    spec: {
      jobLabel: string;
      selector: { matchLabels: Record<string, string> };
      endpoints: Array<{ port: string; path: string; interval: string; honorLabels: boolean }>;
    };
  };
  const service = chart.find((o) => o.kind === 'Service') as KubernetesObject & {
    spec: { ports: Array<{ name: string }> };
  };
  t.truthy(monitor);
  const serviceLabels = service.metadata?.labels ?? {};
  t.like(serviceLabels, monitor.spec.selector.matchLabels, 'its selector matches the metrics Service');
  t.is(
    monitor.metadata?.namespace,
    service.metadata?.namespace,
    "it selects in its own namespace, the Service's",
  );
  t.is(monitor.spec.endpoints[0]?.port, service.spec.ports[0]?.name, 'it scrapes the Service port by name');
  t.is(monitor.spec.endpoints[0]?.path, '/metrics');
  t.is(monitor.spec.endpoints[0]?.interval, '15s', 'the interval of the values file');
  t.true(monitor.spec.endpoints[0]?.honorLabels, "per-connector series keep the Connector's namespace label");
  const job = serviceLabels[monitor.spec.jobLabel];
  const rules = await readFile(join(repoRoot, 'monitoring', 'rules.yaml'), 'utf8');
  t.truthy(job, `the Service carries the job label ${monitor.spec.jobLabel}`);
  t.true(rules.includes(`job="${job}"`), `the alerts select job="${job}", the job this ServiceMonitor gives`);
});

// Before: the Secret was mounted with the default mode, tls.key 0644.
test("with metrics.certSecret, the metrics-tls Secret is mounted 0400 and readable by the operator's group only", async (t) => {
  const chart = await templateChart({ setJson: ['metrics.certSecret="operator-metrics-tls"'] });
  const deployment = chart.find((o) => o.kind === 'Deployment') as V1Deployment;
  const pod = deployment.spec?.template.spec;
  const volume = pod?.volumes?.find((v) => v.name === 'metrics-tls');
  t.is(volume?.secret?.secretName, 'operator-metrics-tls');
  t.is(volume?.secret?.defaultMode, 0o400);
  // The kubelet gives the files to fsGroup (0440): the container's group, 65532, reads tls.key.
  t.is(pod?.securityContext?.fsGroup, 65532);
  t.is(pod?.securityContext?.runAsGroup, 65532);
  const defaults = (await templateChart()).find((o) => o.kind === 'Deployment') as V1Deployment;
  t.is(defaults.spec?.template.spec?.securityContext?.fsGroup, undefined, 'no Secret, no fsGroup');
});

// --- the settings the chart renders are the operator's -----------------------------------------

const operatorEntry = join(repoRoot, 'src', 'bin', 'operator.ts');

/** The operator container's environment as the kubelet would give it: ConfigMap, then env with $(VAR). */
function operatorEnvironment(objects: KubernetesObject[]): Record<string, string> {
  const deployment = objects.find((o) => o.kind === 'Deployment') as V1Deployment;
  const container = deployment.spec?.template.spec?.containers[0];
  const settingsName = container?.envFrom?.[0]?.configMapRef?.name;
  const settings = objects.find(
    (o) => o.kind === 'ConfigMap' && o.metadata?.name === settingsName,
  ) as V1ConfigMap;
  const environment: Record<string, string> = { ...(settings?.data ?? {}) };
  for (const entry of container?.env ?? []) {
    if (entry.value !== undefined) {
      environment[entry.name] = entry.value.replace(
        /\$\(([A-Z_][A-Z0-9_]*)\)/g,
        (_, name: string) => environment[name] ?? '',
      );
    } else if (entry.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') {
      environment[entry.name] = RELEASE_NAMESPACE;
    } else if (entry.valueFrom?.fieldRef?.fieldPath === 'metadata.name') {
      environment[entry.name] = 'vaultpam-connector-operator-0';
    }
  }
  return environment;
}

const CA_FILE_VARIABLE = 'VAULTPAM_OPERATOR_CONTROL_PLANE_CA_FILE';

/** A CA bundle in a file, as the pod has it mounted from the CA ConfigMap. */
async function mountedCaFile(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'chart-ca-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'ca.crt');
  await writeFile(file, (await selfSignedCertificate()).certPem);
  return file;
}

test("the operator's own flag parsing accepts the settings of the defaults and of each ci/ values file", async (t) => {
  const help = spawnSync(process.execPath, [operatorEntry, '--help'], { encoding: 'utf8', timeout: 30_000 });
  const known = new Set([...help.stdout.matchAll(/\(env ([A-Z0-9_]+)\)/g)].map((match) => match[1]));
  t.true(known.has('VAULTPAM_OPERATOR_CONTROL_PLANE_URL'), 'the operator lists its variables');
  for (const values of [undefined, ...ciValuesFiles()]) {
    const what = values ? chartPath(values) : 'the defaults';
    const environment = operatorEnvironment(await templateChart({ valuesFiles: values ? [values] : [] }));
    const unknown = Object.keys(environment).filter((name) => !known.has(name) && !name.startsWith('POD_'));
    t.deepEqual(unknown, [], `${what}: every variable is one the operator reads`);
    // The CA file is read and judged with the flags: in the pod it is mounted from the CA ConfigMap
    // the values name, here it is a real CA bundle at a path of the test's.
    if (environment[CA_FILE_VARIABLE] !== undefined) environment[CA_FILE_VARIABLE] = await mountedCaFile(t);
    // Every flag is checked before the operator touches the cluster: with no kubeconfig, getting as
    // far as loading it means every setting was accepted.
    const run = spawnSync(process.execPath, [operatorEntry], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { PATH: process.env.PATH ?? '', ...environment, KUBECONFIG: '/nonexistent' },
    });
    t.regex(
      run.stderr,
      /cannot load KUBECONFIG=\/nonexistent/,
      `${what}: the operator accepted its settings (${run.stderr.trim()})`,
    );
  }
});

// --- bad values -----------------------------------------------------------------------------------

interface BadValue {
  /** --set-json entry that is refused. */
  bad: string;
  /** What helm's message must say: the value's path and what is wrong. */
  message: RegExp;
  /** The same values corrected, which render (so the refusal is about this value alone). */
  fixed: string[];
}

const SCHEMA = /values don't meet the specifications of the schema/;

const badValues: BadValue[] = [
  { bad: 'replicas=0', message: /at '\/replicas': minimum: got 0, want 1/, fixed: ['replicas=3'] },
  { bad: 'replicas="2"', message: /at '\/replicas': got string, want integer/, fixed: ['replicas=2'] },
  { bad: 'replica=3', message: /at '': additional properties 'replica' not allowed/, fixed: ['replicas=3'] },
  {
    bad: 'image.digest="sha256:abc"',
    message: /at '\/image\/digest': 'sha256:abc' does not match/,
    fixed: [`image.digest="sha256:${'a'.repeat(64)}"`],
  },
  {
    bad: 'image.pullPolicy="Sometimes"',
    message: /at '\/image\/pullPolicy': value must be one of 'IfNotPresent', 'Always', 'Never'/,
    fixed: ['image.pullPolicy="Always"'],
  },
  {
    bad: 'resources.limits.memory="lots"',
    message: /at '\/resources\/limits\/memory': 'lots' does not match/,
    fixed: ['resources.limits.memory="1Gi"'],
  },
  {
    bad: 'resources.limits.gpu="1"',
    message: /at '\/resources\/limits': additional properties 'gpu' not allowed/,
    fixed: ['resources.limits.cpu="2"'],
  },
  {
    bad: 'operator.logLevel="verbose"',
    message:
      /at '\/operator\/logLevel': value must be one of 'fatal', 'error', 'warn', 'info', 'debug', 'trace'/,
    fixed: ['operator.logLevel="debug"'],
  },
  {
    bad: 'operator.resync="ten minutes"',
    message: /at '\/operator\/resync': 'ten minutes' does not match/,
    fixed: ['operator.resync="1h30m"'],
  },
  {
    bad: 'operator.concurrency=0',
    message: /at '\/operator\/concurrency': minimum: got 0, want 1/,
    fixed: ['operator.concurrency=8'],
  },
  {
    bad: 'operator.extraSettings={"RESYNC":"5m"}',
    message: /at '\/operator\/extraSettings': additional properties 'RESYNC' not allowed/,
    fixed: ['operator.extraSettings={"VAULTPAM_OPERATOR_RELEASE_TIMEOUT":"5m"}'],
  },
  {
    bad: 'controlPlane.url="http://vaultpam.example.com"',
    message: /at '\/controlPlane\/url': 'http:\/\/vaultpam.example.com' does not match/,
    fixed: ['controlPlane.url="https://vaultpam.example.com"'],
  },
  {
    bad: 'controlPlane.ca.bundle="not a certificate"',
    message: /at '\/controlPlane\/ca\/bundle': 'not a certificate' does not match/,
    fixed: ['controlPlane.ca.bundle="-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----"'],
  },
  {
    bad: 'controlPlane.credentialSecret.name="Operator Credential"',
    message: /at '\/controlPlane\/credentialSecret\/name': 'Operator Credential' does not match/,
    fixed: ['controlPlane.credentialSecret.name="operator-credential"'],
  },
  {
    bad: 'namespaced.namespace="Team_A"',
    message: /at '\/namespaced\/namespace': 'Team_A' does not match/,
    fixed: ['namespaced.namespace="team-a"'],
  },
  {
    bad: 'nodeSelector={"disk type":"ssd"}',
    message: /at '\/nodeSelector': additional properties 'disk type' not allowed/,
    fixed: ['nodeSelector={"disktype":"ssd"}'],
  },
  {
    bad: 'monitoring.serviceMonitor.interval="30 seconds"',
    message: /at '\/monitoring\/serviceMonitor\/interval': '30 seconds' does not match/,
    fixed: ['monitoring.serviceMonitor.interval="30s"'],
  },
  {
    bad: 'admissionPolicy.allowedImagePrefixes=["ghcr.io/a, ghcr.io/b"]',
    message: /at '\/admissionPolicy\/allowedImagePrefixes\/0': 'ghcr.io\/a, ghcr.io\/b' does not match/,
    fixed: ['admissionPolicy.allowedImagePrefixes=["ghcr.io/a","ghcr.io/b"]'],
  },
  {
    bad: 'admissionPolicy.allowedOrgs=["team-a/acme, team-b/retail"]',
    message: /at '\/admissionPolicy\/allowedOrgs\/0': 'team-a\/acme, team-b\/retail' does not match/,
    fixed: ['admissionPolicy.allowedOrgs=["team-a/acme","team-b/retail"]'],
  },
  {
    // The policy trims each entry, so one beginning or ending in a blank would never match.
    bad: 'admissionPolicy.allowedOrgs=["team-a/acme "]',
    message: /at '\/admissionPolicy\/allowedOrgs\/0': 'team-a\/acme ' does not match/,
    fixed: ['admissionPolicy.allowedOrgs=["team-a/acme"]'],
  },
  {
    // Helm holds numbers as floats: 2^63-1 rendered as 9223372036854776000, which no int64 holds,
    // so the Deployment was refused at apply instead of the value here.
    bad: 'tolerations=[{"key":"k","operator":"Exists","effect":"NoExecute","tolerationSeconds":9223372036854775807}]',
    message: /at '\/tolerations\/0\/tolerationSeconds': maximum: got 9\.22\d*\S*, want 9\.007199254740991/,
    fixed: ['tolerations=[{"key":"k","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}]'],
  },
  {
    bad: 'priorityClass.value=1.5',
    message: /at '\/priorityClass\/value': got number, want integer/,
    fixed: ['priorityClass.value=1000'],
  },
];

/** Refusals by the chart's own checks (vaultpam.checks in _helpers.tpl): combinations of values. */
const badCombinations: BadValue[] = [
  {
    bad: 'replicas=1',
    message:
      /podDisruptionBudget\.enabled is true with replicas: 1: .* set replicas to 2 or more, or podDisruptionBudget\.enabled to false/,
    fixed: ['replicas=1', 'podDisruptionBudget.enabled=false'],
  },
  {
    bad: 'controlPlane.ca={"bundle":"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----","existingConfigMap":true}',
    message: /controlPlane\.ca\.bundle and controlPlane\.ca\.existingConfigMap are both set/,
    fixed: ['controlPlane.ca={"bundle":"","existingConfigMap":true}'],
  },
  {
    bad: 'operator.extraSettings={"VAULTPAM_OPERATOR_LEASE_NAME":"other"}',
    message:
      /operator\.extraSettings\.VAULTPAM_OPERATOR_LEASE_NAME: the chart sets VAULTPAM_OPERATOR_LEASE_NAME in the Deployment/,
    fixed: ['operator.extraSettings={"VAULTPAM_OPERATOR_RELEASE_TIMEOUT":"10m"}'],
  },
  {
    bad: 'operator.extraSettings={"LOG_LEVEL":"debug"}',
    message: /operator\.extraSettings\.LOG_LEVEL: set it with operator\.logLevel instead/,
    fixed: ['operator.logLevel="debug"'],
  },
  {
    bad: 'priorityClass.name=""',
    message: /priorityClass\.create is true with an empty priorityClass\.name/,
    fixed: ['priorityClass.name=""', 'priorityClass.create=false'],
  },
];

test('values.schema.json refuses each bad value with a message naming it, and accepts it corrected', async (t) => {
  for (const { bad, message, fixed } of badValues) {
    const refused = await helm(templateArgs({ setJson: [bad] }));
    t.not(refused.code, 0, `${bad} is refused`);
    t.regex(refused.stderr, SCHEMA, `${bad}: refused by the schema`);
    t.regex(refused.stderr, message, `${bad}: the message names the value and what is wrong`);
    const accepted = await helm(templateArgs({ setJson: fixed }));
    t.is(accepted.code, 0, `${fixed.join(' ')} renders: ${accepted.stderr}`);
  }
});

test("the chart's checks refuse combinations the schema cannot express, naming the values and the fix", async (t) => {
  for (const { bad, message, fixed } of badCombinations) {
    const refused = await helm(templateArgs({ setJson: [bad] }));
    t.not(refused.code, 0, `${bad} is refused`);
    t.regex(refused.stderr, message, `${bad}: the message names the values and the fix`);
    const accepted = await helm(templateArgs({ setJson: fixed }));
    t.is(accepted.code, 0, `${fixed.join(' ')} renders: ${accepted.stderr}`);
  }
});

// The operator's variables operator.extraSettings refuses, and why; every other one it reads is safe.
const REFUSED_EXTRA_SETTINGS: Record<string, RegExp> = {
  LOG_LEVEL: /set it with operator\.logLevel instead/,
  VAULTPAM_OPERATOR_CONNECTOR_IMAGE: /set it with operator\.connectorImage instead/,
  VAULTPAM_OPERATOR_CONCURRENCY: /set it with operator\.concurrency instead/,
  VAULTPAM_OPERATOR_RESYNC: /set it with operator\.resync instead/,
  VAULTPAM_OPERATOR_CONTROL_PLANE_URL: /set it with controlPlane\.url instead/,
  VAULTPAM_OPERATOR_CONTROL_PLANE_CA_FILE: /set it with controlPlane\.ca instead/,
  VAULTPAM_OPERATOR_NAMESPACE: /set it with namespaced\.enabled and namespaced\.namespace instead/,
  VAULTPAM_OPERATOR_CREDENTIAL_SECRET: /the chart sets .* in the Deployment/,
  VAULTPAM_OPERATOR_LEADER_ELECT: /the chart sets .* in the Deployment/,
  VAULTPAM_OPERATOR_LEASE_NAME: /the chart sets .* in the Deployment/,
  VAULTPAM_OPERATOR_LISTEN: /the chart sets .* in the Deployment/,
  VAULTPAM_OPERATOR_METRICS_LISTEN: /the chart sets .* in the Deployment/,
  VAULTPAM_OPERATOR_METRICS_CERT_DIR: /set it with metrics\.certSecret instead/,
  VAULTPAM_OPERATOR_METRICS_AUTH: /authorized bearer tokens only .* none is for a local run/,
  VAULTPAM_OPERATOR_LEADER_ELECTION_NAMESPACE: /in the release namespace only/,
  VAULTPAM_OPERATOR_CLUSTER_RESOURCE_NAMESPACE: /in the release namespace only/,
};

test("operator.extraSettings accepts exactly the operator's variables the chart neither sets nor cannot grant", async (t) => {
  const help = spawnSync(process.execPath, [operatorEntry, '--help'], { encoding: 'utf8', timeout: 30_000 });
  const known = [...help.stdout.matchAll(/\(env ([A-Z0-9_]+)\)/g)].map((match) => match[1] ?? '');
  t.true(known.includes('VAULTPAM_OPERATOR_RELEASE_TIMEOUT'), 'the operator lists its variables');
  for (const name of Object.keys(REFUSED_EXTRA_SETTINGS))
    t.true(known.includes(name), `${name} is the operator's`);
  const schema = JSON.parse(await readFile(join(CHART_DIR, 'values.schema.json'), 'utf8'));
  const declared = Object.keys(schema.properties.operator.properties.extraSettings.properties);
  t.deepEqual(declared.toSorted(), known.toSorted(), "the schema names exactly the operator's variables");
  const accepted: string[] = [];
  for (const name of known) {
    // A duration: the safe ones are all durations; the refused ones are refused whatever the value.
    const result = await helm(templateArgs({ setJson: [`operator.extraSettings={"${name}":"45s"}`] }));
    if (result.code === 0) {
      accepted.push(name);
      continue;
    }
    const reason = REFUSED_EXTRA_SETTINGS[name];
    t.truthy(reason, `${name} is refused only if listed: ${result.stderr}`);
    t.regex(
      result.stderr,
      new RegExp(`operator\\.extraSettings\\.${name}: `),
      `${name}: the message names it`,
    );
    if (reason) t.regex(result.stderr, reason, `${name}: the message says why and the fix`);
  }
  const safe = known.filter((name) => !(name in REFUSED_EXTRA_SETTINGS));
  t.deepEqual(accepted.toSorted(), safe.toSorted(), 'the accepted names are the safe ones');
  t.true(
    safe.length >= 4,
    `the leader-election durations and the release timeout are safe (${safe.join(', ')})`,
  );

  const misspelt = await helm(
    templateArgs({ setJson: ['operator.extraSettings={"VAULTPAM_OPERATOR_WATCH_NAMESPACE":"team-a"}'] }),
  );
  t.not(misspelt.code, 0, 'a misspelt name is refused');
  t.regex(misspelt.stderr, SCHEMA);
  t.regex(
    misspelt.stderr,
    /at '\/operator\/extraSettings': additional properties 'VAULTPAM_OPERATOR_WATCH_NAMESPACE' not allowed/,
  );
});

test('the labels Helm adds are the only labels the drift comparison sets aside', async (t) => {
  const chart = await templateChart();
  const deployment = chart.find((o) => o.kind === 'Deployment');
  const labels = deployment?.metadata?.labels ?? {};
  for (const name of HELM_LABELS) t.truthy(labels[name], `the chart sets ${name}`);
  t.is(labels['app.kubernetes.io/managed-by'], 'Helm');
  t.like(normalise(deployment ?? {}), {
    metadata: {
      labels: {
        'app.kubernetes.io/name': 'vaultpam-connector-operator',
        'app.kubernetes.io/part-of': 'vaultpam',
        'app.kubernetes.io/component': 'operator',
      },
    },
  });
});
