// The chart the way docs/helm.md installs it: the real `helm install`, `helm upgrade` and
// `helm uninstall` against a real API server (Helm keeps its release record in a Secret of the release
// namespace and installs crds/ before the templates). The release namespace is prepared as the doc
// says, with the restricted Pod Security labels, since Helm cannot label a namespace it did not make.
// The first install is of an older chart (another CRD schema, another default), upgraded by running
// docs/helm.md's "Upgrading" commands as written, with the real kubectl.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  ApiextensionsV1Api,
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
} from '@kubernetes/client-node';
import test from 'ava';
import * as yaml from 'js-yaml';
import { ensureKubectl } from '../../dev/local-cluster/binaries.ts';
import { repoRoot, useCluster } from '../helpers/cluster.ts';
import { runProgram } from '../helpers/go-tools.ts';
import { CHART_DIR, helm, helmEnvironment, helmTools, RELEASE_NAME, RELEASE_NAMESPACE } from './helm.ts';

const cluster = useCluster(test);

const statusCodeOf = (error: unknown) => (error as { code?: number }).code;

async function exists(kc: KubeConfig, object: KubernetesObject): Promise<boolean> {
  return KubernetesObjectApi.makeApiClient(kc)
    .read({
      apiVersion: object.apiVersion ?? '',
      kind: object.kind ?? '',
      metadata: { name: object.metadata?.name ?? '', namespace: object.metadata?.namespace ?? '' },
    })
    .then(
      () => true,
      (error: unknown) => {
        if (statusCodeOf(error) === 404) return false;
        throw error;
      },
    );
}

const connectorClusterRole = {
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'ClusterRole',
  metadata: { name: 'vaultpam-connector-operator' },
};
const connectorCrd = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'connectors.vaultpam.io' },
};

/** helm with the test cluster's admin kubeconfig. */
async function helmOnCluster(args: string[]) {
  const result = await helm([...args, '--kubeconfig', cluster().cluster.kubeconfigPath]);
  if (result.code !== 0) throw new Error(`helm ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result;
}

const OLDER_DESCRIPTION = 'A Connector as an older release of the chart described it.';

interface OlderChart {
  dir: string;
  /** operator.concurrency: the older chart's default, and the repository chart's. */
  concurrency: { older: number; current: number };
}

/**
 * A copy of the chart as an older release: its Connector CRD with another schema (the root
 * description), its default operator.concurrency another number.
 */
async function olderChart(): Promise<OlderChart> {
  const dir = join(await mkdtemp(join(tmpdir(), 'vaultpam-older-chart-')), 'vaultpam-connector-operator');
  await cp(CHART_DIR, dir, { recursive: true });
  const crdFile = join(dir, 'crds', 'connectors.vaultpam.io.yaml');
  const crd = yaml.load(await readFile(crdFile, 'utf8')) as {
    spec: { versions: Array<{ schema: { openAPIV3Schema: { description: string } } }> };
  };
  for (const version of crd.spec.versions) version.schema.openAPIV3Schema.description = OLDER_DESCRIPTION;
  await writeFile(crdFile, yaml.dump(crd));
  const valuesFile = join(dir, 'values.yaml');
  const values = await readFile(valuesFile, 'utf8');
  const current = (yaml.load(values) as { operator: { concurrency: number } }).operator.concurrency;
  const older = current === 1 ? 2 : current - 1;
  const olderValues = values.replace(/^( {2}concurrency: )\d+$/m, `$1${older}`);
  if (olderValues === values) throw new Error('values.yaml: operator.concurrency not found');
  await writeFile(valuesFile, olderValues);
  return { dir, concurrency: { older, current } };
}

/** The first `sh` block of a section of docs/helm.md, as written there. */
async function helmDocBlock(heading: string): Promise<string> {
  const doc = await readFile(join(repoRoot, 'docs', 'helm.md'), 'utf8');
  const section = doc.split(/^## /m).find((part) => part.startsWith(`${heading}\n`));
  const block = section?.match(/^```sh\n([\s\S]*?)^```$/m)?.[1];
  if (!block) throw new Error(`docs/helm.md: no sh block under "## ${heading}"`);
  return block;
}

/**
 * Runs a shell script from the repository's root as a person would, the real kubectl and helm first
 * on the PATH and the test cluster in KUBECONFIG.
 */
async function shell(script: string) {
  const kubectl = await ensureKubectl(() => {});
  return runProgram('bash', ['-euo', 'pipefail', '-c', script], {
    cwd: repoRoot,
    env: {
      ...helmEnvironment(),
      PATH: `${dirname(kubectl)}:${await helmTools()}:${process.env.PATH ?? ''}`,
      KUBECONFIG: cluster().cluster.kubeconfigPath,
    },
  });
}

test.serial('helm install, the documented upgrade, namespaced mode and uninstall, for real', async (t) => {
  const { kc } = cluster();
  const core = kc.makeApiClient(CoreV1Api);
  for (const name of [RELEASE_NAMESPACE, 'vaultpam']) {
    await core.createNamespace({
      body: {
        metadata: {
          name,
          labels: name === RELEASE_NAMESPACE ? { 'pod-security.kubernetes.io/enforce': 'restricted' } : {},
        },
      },
    });
  }

  const older = await olderChart();
  t.teardown(() => rm(dirname(older.dir), { recursive: true, force: true }));
  const installed = await helmOnCluster([
    'install',
    RELEASE_NAME,
    older.dir,
    '--namespace',
    RELEASE_NAMESPACE,
    '--set',
    'operator.logLevel=debug',
  ]);
  t.regex(installed.stdout, /STATUS: deployed/);
  t.regex(
    installed.stdout,
    /kubectl -n vaultpam-system create secret generic vaultpam-operator-credential/,
    'the notes say how to create the credential',
  );
  t.true(await exists(kc, connectorCrd), 'helm installed the CRDs from crds/');
  const deployment = await kc
    .makeApiClient(AppsV1Api)
    .readNamespacedDeployment({ name: 'vaultpam-connector-operator', namespace: RELEASE_NAMESPACE });
  t.is(deployment.spec?.replicas, 2);
  t.is(deployment.metadata?.annotations?.['meta.helm.sh/release-name'], RELEASE_NAME, 'the release owns it');
  t.true(await exists(kc, connectorClusterRole));

  const settings = () =>
    core
      .readNamespacedConfigMap({ name: 'vaultpam-connector-operator-config', namespace: RELEASE_NAMESPACE })
      .then((configMap) => configMap.data ?? {});
  const connectorDescription = () =>
    kc
      .makeApiClient(ApiextensionsV1Api)
      .readCustomResourceDefinition({ name: 'connectors.vaultpam.io' })
      .then((crd) => crd.spec.versions[0]?.schema?.openAPIV3Schema?.description);
  t.is(await connectorDescription(), OLDER_DESCRIPTION, "the older chart's CRDs");
  t.is((await settings()).VAULTPAM_OPERATOR_CONCURRENCY, String(older.concurrency.older));

  // A server-side diff of the chart's crds/ against the live CRDs: exit 1 while they differ.
  const crdDiff = () =>
    shell('kubectl diff --server-side --force-conflicts -f charts/vaultpam-connector-operator/crds/');
  t.is((await crdDiff()).code, 1, "the older CRDs differ from the repository's");

  // docs/helm.md's "Upgrading", as written. Without --force-conflicts the CRDs' apply is refused:
  // Helm manages their fields.
  const upgrade = await helmDocBlock('Upgrading');
  const crdApply = upgrade.split('\n').find((line) => line.startsWith('kubectl apply --server-side'));
  t.truthy(crdApply?.includes(' --force-conflicts '), crdApply);
  const unforced = await shell(crdApply?.replace(' --force-conflicts', '') ?? 'false');
  t.not(unforced.code, 0);
  t.regex(unforced.stderr, /conflict with "helm"/);
  const upgraded = await shell(upgrade);
  t.is(upgraded.code, 0, upgraded.stderr);
  t.not(await connectorDescription(), OLDER_DESCRIPTION);
  const diff = await crdDiff();
  t.is(diff.code, 0, `the live CRDs are the repository's: ${diff.stdout}${diff.stderr}`);
  const upgradedSettings = await settings();
  t.is(
    upgradedSettings.VAULTPAM_OPERATOR_CONCURRENCY,
    String(older.concurrency.current),
    "the new chart's default, not the old one (--reuse-values would keep that)",
  );
  t.is(upgradedSettings.LOG_LEVEL, 'debug', 'the value set on the release is kept');

  const values = join(CHART_DIR, 'ci', 'namespaced-values.yaml');
  await helmOnCluster([
    'upgrade',
    RELEASE_NAME,
    CHART_DIR,
    '--namespace',
    RELEASE_NAMESPACE,
    '--values',
    values,
  ]);
  t.false(await exists(kc, connectorClusterRole), 'the upgrade removed the cluster-wide Connector rules');
  t.true(
    await exists(kc, {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'vaultpam-connector-operator-connectors', namespace: 'vaultpam' },
    }),
    'and granted them in the watched namespace',
  );
  const history = await helmOnCluster([
    'history',
    RELEASE_NAME,
    '--namespace',
    RELEASE_NAMESPACE,
    '-o',
    'json',
  ]);
  t.deepEqual(
    (JSON.parse(history.stdout) as Array<{ revision: number }>).map((entry) => entry.revision),
    [1, 2, 3],
  );

  // A bad value stops an upgrade before anything changes.
  const refused = await helm([
    'upgrade',
    RELEASE_NAME,
    CHART_DIR,
    '--namespace',
    RELEASE_NAMESPACE,
    '--set',
    'replicas=0',
    '--kubeconfig',
    cluster().cluster.kubeconfigPath,
  ]);
  t.not(refused.code, 0);
  t.regex(refused.stderr, /at '\/replicas': minimum: got 0, want 1/);

  await helmOnCluster(['uninstall', RELEASE_NAME, '--namespace', RELEASE_NAMESPACE, '--wait']);
  t.false(
    await exists(kc, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'vaultpam-connector-operator', namespace: RELEASE_NAMESPACE },
    }),
    'uninstall removed the operator',
  );
  t.true(await exists(kc, connectorCrd), 'and kept the CRDs, so no Connector is deleted with the chart');
});
