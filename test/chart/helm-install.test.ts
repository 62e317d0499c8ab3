// The chart the way docs/helm.md installs it: the real `helm install`, `helm upgrade` and
// `helm uninstall` against a real API server (Helm keeps its release record in a Secret of the release
// namespace and installs crds/ before the templates). The release namespace is prepared as the doc
// says, with the restricted Pod Security labels, since Helm cannot label a namespace it did not make.
import { join } from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
} from '@kubernetes/client-node';
import test from 'ava';
import { useCluster } from '../helpers/cluster.ts';
import { CHART_DIR, helm, RELEASE_NAME, RELEASE_NAMESPACE } from './helm.ts';

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

test.serial('helm install, upgrade to namespaced mode, and uninstall on a real API server', async (t) => {
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

  const installed = await helmOnCluster([
    'install',
    RELEASE_NAME,
    CHART_DIR,
    '--namespace',
    RELEASE_NAMESPACE,
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
    [1, 2],
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
