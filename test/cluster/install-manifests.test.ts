// The install manifests work on a real API server: the base and every overlay are rendered by the
// pinned kustomize, applied server-side (pruning what the previous render had and this one lacks, as
// `kubectl apply --prune`, Argo CD and Flux do), and read back. The operator's ServiceAccount is then
// asked, with SelfSubjectAccessReviews made with its own token, for every permission the operator
// needs (granted) and for meaningful ones it must not have (denied). No kubelet runs here, so the
// operator pods are admitted (which proves the restricted Pod Security Standard) but never start.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  AppsV1Api,
  AuthorizationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  loadAllYaml,
  PatchStrategy,
  PolicyV1Api,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type V1Deployment,
} from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import * as yaml from 'js-yaml';
import { ensureClusterBinaries } from '../../dev/local-cluster/binaries.ts';
import { createTestNamespace, repoRoot, useCluster } from '../helpers/cluster.ts';
import { eventually, settled } from '../helpers/eventually.ts';

const run = promisify(execFile);
const cluster = useCluster(test);

const OPERATOR_NAMESPACE = 'vaultpam-system';
const SERVICE_ACCOUNT = 'vaultpam-connector-operator';
const DEPLOYMENT = 'vaultpam-connector-operator';
const LEASE = 'vaultpam-connector-operator';
const CREDENTIAL_SECRET = 'vaultpam-operator-credential';
/** The namespace kustomize/components/namespaced scopes the operator to. */
const WATCHED_NAMESPACE = 'vaultpam';
/** Any namespace where Connectors may live in a cluster-wide install. */
const TEAM_NAMESPACE = 'team-a';
const FIELD_MANAGER = 'install-manifests-test';

let kustomize = '';
test.before(async () => {
  kustomize = join(await ensureClusterBinaries(), 'kustomize');
});

function statusCodeOf(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

async function render(path: string): Promise<KubernetesObject[]> {
  const { stdout } = await run(kustomize, ['build', path], { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024 });
  // loadAllYaml, not a plain YAML parse: client-node's serializer maps the CRDs' x-kubernetes-* schema
  // keys only on objects it loaded, and drops them (the CEL rules among them) from plain ones.
  return (loadAllYaml(stdout) as Array<KubernetesObject | null>).filter(
    (doc): doc is KubernetesObject => typeof doc === 'object' && doc !== null,
  );
}

function identity(object: KubernetesObject): string {
  const namespace = object.metadata?.namespace ? `${object.metadata.namespace}/` : '';
  return `${object.apiVersion} ${object.kind} ${namespace}${object.metadata?.name}`;
}

function find(objects: KubernetesObject[], kind: string, name: string): KubernetesObject | undefined {
  return objects.find((o) => o.kind === kind && o.metadata?.name === name);
}

let installed: KubernetesObject[] = [];

/**
 * Renders `path`, applies every object server-side, deletes what the previous install had and this
 * render lacks, and returns the rendered objects.
 */
async function install(kc: KubeConfig, path: string): Promise<KubernetesObject[]> {
  const objects = await render(path);
  const client = KubernetesObjectApi.makeApiClient(kc);
  for (const object of objects) {
    await client.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }
  const keep = new Set(objects.map(identity));
  for (const stale of installed.filter((o) => !keep.has(identity(o)))) {
    await client.delete(stale).catch((error: unknown) => {
      if (statusCodeOf(error) !== 404) throw error;
    });
  }
  installed = objects;
  return objects;
}

async function readBack(kc: KubeConfig, object: KubernetesObject): Promise<KubernetesObject> {
  const header = {
    apiVersion: object.apiVersion ?? '',
    kind: object.kind ?? '',
    metadata: { name: object.metadata?.name ?? '', namespace: object.metadata?.namespace ?? '' },
  };
  return KubernetesObjectApi.makeApiClient(kc).read(header);
}

async function deployment(kc: KubeConfig): Promise<V1Deployment> {
  return kc
    .makeApiClient(AppsV1Api)
    .readNamespacedDeployment({ name: DEPLOYMENT, namespace: OPERATOR_NAMESPACE });
}

/** The ConfigMap the Deployment reads its settings from (its name carries kustomize's content hash). */
async function operatorSettings(kc: KubeConfig): Promise<Record<string, string>> {
  const current = await deployment(kc);
  const name = current.spec?.template.spec?.containers[0]?.envFrom?.[0]?.configMapRef?.name ?? '';
  const configMap = await kc
    .makeApiClient(CoreV1Api)
    .readNamespacedConfigMap({ name, namespace: OPERATOR_NAMESPACE });
  return configMap.data ?? {};
}

function envOf(current: V1Deployment): Record<string, string | undefined> {
  const env = current.spec?.template.spec?.containers[0]?.env ?? [];
  return Object.fromEntries(env.map((e) => [e.name, e.value]));
}

async function ensureNamespace(kc: KubeConfig, name: string): Promise<void> {
  await kc
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name } } })
    .catch((error: unknown) => {
      if (statusCodeOf(error) !== 409) throw error;
    });
}

// --- access reviews -------------------------------------------------------------------------------

interface Access {
  verb: string;
  resource: string;
  group?: string;
  subresource?: string;
  /** Omitted: the request spans all namespaces (what a cluster-wide informer does). */
  namespace?: string;
  name?: string;
}

function describe(access: Access): string {
  const resource = `${access.group ? `${access.group}/` : ''}${access.resource}${access.subresource ? `/${access.subresource}` : ''}`;
  const where = access.namespace ? `in ${access.namespace}` : 'cluster-wide';
  return `${access.verb} ${resource}${access.name ? ` named ${access.name}` : ''} ${where}`;
}

async function isAllowed(kc: KubeConfig, access: Access): Promise<boolean> {
  const review = await kc.makeApiClient(AuthorizationV1Api).createSelfSubjectAccessReview({
    body: {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      spec: { resourceAttributes: { ...access, group: access.group ?? '' } },
    },
  });
  return review.status?.allowed === true;
}

/**
 * Asks every review and returns the ones whose answer differs from the expectation. RBAC changes
 * reach the authorizer's cache shortly after they are written, so this polls (bounded) until all
 * answers match at once, then hands back whatever still differs for the assertion to show.
 */
async function accessMismatches(kc: KubeConfig, expected: Array<[Access, boolean]>): Promise<string[]> {
  const check = async () => {
    const answers = await Promise.all(expected.map(([access]) => isAllowed(kc, access)));
    return expected
      .filter(([, allowed], index) => answers[index] !== allowed)
      .map(([access, allowed]) => `${describe(access)}: expected ${allowed ? 'allowed' : 'denied'}`);
  };
  return settled(check);
}

const verbs = (list: string[], access: Omit<Access, 'verb'>): Access[] =>
  list.map((verb) => ({ ...access, verb }));

/** Everything the operator does in a namespace that holds Connectors. */
function connectorNamespaceAccess(namespace: string | undefined): Access[] {
  const at = namespace === undefined ? {} : { namespace };
  return [
    ...verbs(['get', 'list', 'watch', 'patch'], {
      group: 'vaultpam.io',
      resource: 'connectors',
      ...at,
    }),
    // The ControlPlanes Connectors name: watched, checked, their status written.
    ...verbs(['get', 'list', 'watch'], { group: 'vaultpam.io', resource: 'controlplanes', ...at }),
    { verb: 'patch', group: 'vaultpam.io', resource: 'controlplanes', subresource: 'status', ...at },
    { verb: 'patch', group: 'vaultpam.io', resource: 'connectors', subresource: 'status', ...at },
    { verb: 'update', group: 'vaultpam.io', resource: 'connectors', subresource: 'finalizers', ...at },
    ...verbs(['get', 'list', 'watch', 'create', 'patch'], {
      group: 'apps',
      resource: 'statefulsets',
      ...at,
    }),
    { verb: 'patch', group: 'apps', resource: 'statefulsets', subresource: 'scale', ...at },
    { verb: 'patch', group: 'apps', resource: 'deployments', subresource: 'scale', ...at },
    ...verbs(['get', 'list', 'watch'], { group: 'apps', resource: 'deployments', ...at }),
    ...verbs(['get', 'list', 'watch'], { resource: 'pods', ...at }),
    // patch: a larger spec.storage.size grows the StatefulSet's claim.
    ...verbs(['get', 'list', 'watch', 'patch'], { resource: 'persistentvolumeclaims', ...at }),
    // Secrets by name only: the token Secret and the credential Secrets control planes name.
    ...verbs(['get', 'create', 'patch', 'delete'], { resource: 'secrets', ...at }),
    ...verbs(['get', 'list', 'watch', 'create', 'patch'], { resource: 'configmaps', ...at }),
    // By name, while a Connector that names one has no pod: Kubernetes refuses a pod whose
    // ServiceAccount does not exist.
    { verb: 'get', resource: 'serviceaccounts', ...at },
    ...verbs(['create', 'patch'], { group: 'events.k8s.io', resource: 'events', ...at }),
  ];
}

/**
 * Cluster-scoped, in every install (the namespaced one too): the StorageClass of a claim that should
 * grow is read by name, to check allowVolumeExpansion first; the PriorityClass a Connector's pod
 * names, before a token is minted for it.
 */
const classAccess: Access[] = [
  { verb: 'get', group: 'storage.k8s.io', resource: 'storageclasses' },
  // The PriorityClass spec.priorityClassName names, read by name while the Connector has no pod.
  { verb: 'get', group: 'scheduling.k8s.io', resource: 'priorityclasses' },
];

/**
 * Cluster-scoped, in every install (the namespaced one too): who may read /metrics is asked of the API
 * server, a TokenReview for the caller's token and a SubjectAccessReview for its user.
 */
const metricsAuthAccess: Access[] = [
  { verb: 'create', group: 'authentication.k8s.io', resource: 'tokenreviews' },
  { verb: 'create', group: 'authorization.k8s.io', resource: 'subjectaccessreviews' },
];

/** Cluster-wide installs only: ClusterControlPlanes are cluster-scoped (their Secrets are read with get). */
const clusterControlPlaneAccess: Access[] = [
  ...verbs(['get', 'list', 'watch'], { group: 'vaultpam.io', resource: 'clustercontrolplanes' }),
  { verb: 'patch', group: 'vaultpam.io', resource: 'clustercontrolplanes', subresource: 'status' },
];

/** What the operator does in its own namespace: leader election and reading its credential. */
const operatorNamespaceAccess: Access[] = [
  { verb: 'create', group: 'coordination.k8s.io', resource: 'leases', namespace: OPERATOR_NAMESPACE },
  ...verbs(['get', 'update'], {
    group: 'coordination.k8s.io',
    resource: 'leases',
    namespace: OPERATOR_NAMESPACE,
    name: LEASE,
  }),
  ...verbs(['get', 'list', 'watch'], {
    resource: 'secrets',
    namespace: OPERATOR_NAMESPACE,
    name: CREDENTIAL_SECRET,
  }),
];

/** Never needed, in any install. */
const neverAccess: Access[] = [
  // Secrets are read by name: listing or watching them would hand the operator every Secret there is.
  ...verbs(['list', 'watch'], { resource: 'secrets' }),
  ...verbs(['list', 'watch'], { resource: 'secrets', namespace: TEAM_NAMESPACE }),
  // Control planes are the admins'; the operator only reads them and writes their status.
  ...verbs(['create', 'update', 'patch', 'delete'], {
    group: 'vaultpam.io',
    resource: 'controlplanes',
    namespace: TEAM_NAMESPACE,
  }),
  ...verbs(['create', 'update', 'patch', 'delete'], {
    group: 'vaultpam.io',
    resource: 'clustercontrolplanes',
  }),
  ...verbs(['get', 'list'], { resource: 'nodes' }),
  ...verbs(['create', 'update', 'bind', 'escalate'], {
    group: 'rbac.authorization.k8s.io',
    resource: 'clusterroles',
  }),
  { verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'rolebindings', namespace: TEAM_NAMESPACE },
  { verb: 'create', group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions' },
  { verb: 'delete', resource: 'namespaces', name: TEAM_NAMESPACE },
  // Leases elsewhere: leader election lives in the operator namespace only, under one name.
  ...verbs(['get', 'create', 'update'], {
    group: 'coordination.k8s.io',
    resource: 'leases',
    namespace: 'kube-system',
  }),
  { verb: 'create', group: 'coordination.k8s.io', resource: 'leases', namespace: TEAM_NAMESPACE },
  {
    verb: 'update',
    group: 'coordination.k8s.io',
    resource: 'leases',
    namespace: OPERATOR_NAMESPACE,
    name: 'other',
  },
  {
    verb: 'delete',
    group: 'coordination.k8s.io',
    resource: 'leases',
    namespace: OPERATOR_NAMESPACE,
    name: LEASE,
  },
  // Pods are observed, never created, deleted or entered.
  { verb: 'create', resource: 'pods', namespace: TEAM_NAMESPACE },
  { verb: 'delete', resource: 'pods', namespace: TEAM_NAMESPACE },
  { verb: 'create', resource: 'pods', subresource: 'exec', namespace: TEAM_NAMESPACE },
  { verb: 'create', resource: 'pods', subresource: 'attach', namespace: TEAM_NAMESPACE },
  { verb: 'create', resource: 'serviceaccounts', subresource: 'token', namespace: TEAM_NAMESPACE },
  // Adopted Deployments are scaled, never created, changed or deleted.
  ...verbs(['create', 'patch', 'update', 'delete'], {
    group: 'apps',
    resource: 'deployments',
    namespace: TEAM_NAMESPACE,
  }),
  // Claims come from StatefulSets or from the user; the operator never creates, replaces or deletes one.
  ...verbs(['create', 'update', 'delete'], {
    resource: 'persistentvolumeclaims',
    namespace: TEAM_NAMESPACE,
  }),
  // StorageClasses are read by name only: never listed, watched or changed.
  ...verbs(['list', 'watch', 'create', 'patch', 'update', 'delete'], {
    group: 'storage.k8s.io',
    resource: 'storageclasses',
  }),
  // PriorityClasses and ServiceAccounts are read by name only: never listed, watched or changed.
  ...verbs(['list', 'watch', 'create', 'patch', 'update', 'delete'], {
    group: 'scheduling.k8s.io',
    resource: 'priorityclasses',
  }),
  ...verbs(['list', 'watch', 'create', 'patch', 'update', 'delete'], {
    resource: 'serviceaccounts',
    namespace: TEAM_NAMESPACE,
  }),
  // Connectors belong to their authors: the operator neither creates, replaces nor deletes them.
  ...verbs(['create', 'update', 'delete'], {
    group: 'vaultpam.io',
    resource: 'connectors',
    namespace: TEAM_NAMESPACE,
  }),
  {
    verb: 'update',
    group: 'vaultpam.io',
    resource: 'connectors',
    subresource: 'status',
    namespace: TEAM_NAMESPACE,
  },
  // Every write is a server-side apply (patch): no full updates; owned objects go with their owner.
  ...verbs(['update', 'delete'], { group: 'apps', resource: 'statefulsets', namespace: TEAM_NAMESPACE }),
  ...verbs(['update', 'delete'], { resource: 'configmaps', namespace: TEAM_NAMESPACE }),
  { verb: 'update', resource: 'secrets', namespace: TEAM_NAMESPACE },
  // Reviews are asked, never something else: a namespaced review elsewhere is not needed.
  {
    verb: 'create',
    group: 'authorization.k8s.io',
    resource: 'localsubjectaccessreviews',
    namespace: TEAM_NAMESPACE,
  },
];

async function expectAccess(t: ExecutionContext, kc: KubeConfig, expected: Array<[Access, boolean]>) {
  t.deepEqual(await accessMismatches(kc, expected), [], 'every access review answers as the install intends');
}

const operatorKubeConfig = () =>
  cluster().cluster.serviceAccountKubeConfig(OPERATOR_NAMESPACE, SERVICE_ACCOUNT);

// --- tests (serial: each one installs an overlay over the previous one, as an upgrade would) ----

test.serial(
  'the base renders with the real kustomize and every rendered object exists after apply',
  async (t) => {
    const { kc } = cluster();
    const objects = await install(kc, 'kustomize/base');
    const kinds = new Set(objects.map((o) => o.kind));
    for (const kind of [
      'Namespace',
      'CustomResourceDefinition',
      'ServiceAccount',
      'ClusterRole',
      'ClusterRoleBinding',
      'Role',
      'RoleBinding',
      'ConfigMap',
      'Deployment',
      'PodDisruptionBudget',
      'Service',
    ]) {
      t.true(kinds.has(kind), `the base renders a ${kind}`);
    }
    t.false(kinds.has('Secret'), 'no Secret is shipped: the credential is created by hand');
    for (const object of objects) {
      const live = await readBack(kc, object);
      t.is(identity(live), identity(object), `${identity(object)} exists`);
      t.like(
        live.metadata?.labels ?? {},
        object.metadata?.labels ?? {},
        `${identity(object)} carries its labels`,
      );
    }
    for (const name of ['controlplanes.vaultpam.io', 'clustercontrolplanes.vaultpam.io'])
      t.truthy(find(objects, 'CustomResourceDefinition', name), `the base renders ${name}`);
    for (const name of [
      'vaultpam-connector-viewer',
      'vaultpam-connector-editor',
      'vaultpam-controlplane-admin',
      'vaultpam-clustercontrolplane-admin',
      'vaultpam-connector-operator-metrics-reader',
    ])
      t.truthy(find(objects, 'ClusterRole', name), `the base renders the role ${name}`);
    const crd = find(objects, 'CustomResourceDefinition', 'connectors.vaultpam.io');
    t.truthy(crd, 'the base renders the Connector CRD');
    const established = await eventually(
      async () => {
        const live = (await readBack(kc, crd ?? {})) as {
          status?: { conditions?: Array<{ type: string; status: string }> };
        };
        return live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
      },
      { description: 'the Connector CRD is established' },
    );
    t.true(established);
    const live = await deployment(kc);
    t.is(live.spec?.replicas, 2);
    t.is(envOf(live).VAULTPAM_OPERATOR_LEADER_ELECT, 'true', 'leader election is on');
  },
);

test.serial(
  'the operator pod template passes the restricted Pod Security Standard its namespace enforces',
  async (t) => {
    const { kc } = cluster();
    const core = kc.makeApiClient(CoreV1Api);
    // The ReplicaSet controller creates the pods through admission; a pod the namespace's
    // restricted policy refuses is never created.
    const pods = await eventually(
      async () => {
        const list = await core.listNamespacedPod({
          namespace: OPERATOR_NAMESPACE,
          labelSelector:
            'app.kubernetes.io/name=vaultpam-connector-operator,app.kubernetes.io/component=operator',
        });
        return list.items.length === 2 && list.items;
      },
      { description: 'two operator pods admitted in vaultpam-system' },
    );
    for (const pod of pods) {
      t.is(pod.spec?.serviceAccountName, SERVICE_ACCOUNT);
      t.is(pod.spec?.securityContext?.runAsNonRoot, true);
      t.is(pod.spec?.securityContext?.seccompProfile?.type, 'RuntimeDefault');
      const container = pod.spec?.containers[0];
      t.is(container?.securityContext?.readOnlyRootFilesystem, true);
      t.is(container?.securityContext?.allowPrivilegeEscalation, false);
      t.deepEqual(container?.securityContext?.capabilities?.drop, ['ALL']);
      t.is(container?.livenessProbe?.httpGet?.path, '/healthz');
      t.is(container?.readinessProbe?.httpGet?.path, '/readyz');
      // Plain HTTP probes on 8080; /metrics on its own HTTPS port.
      t.deepEqual(
        container?.ports?.map((port) => [port.name, port.containerPort]),
        [
          ['probes', 8080],
          ['metrics', 8443],
        ],
      );
      t.is(container?.livenessProbe?.httpGet?.port, 'probes');
    }
    // The policy is really enforced there: a pod without those settings is refused.
    const refused = await core
      .createNamespacedPod({
        namespace: OPERATOR_NAMESPACE,
        dryRun: 'All',
        body: {
          metadata: { name: 'not-restricted' },
          spec: { containers: [{ name: 'c', image: 'busybox:1.37' }] },
        },
      })
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    t.is(statusCodeOf(refused), 403, 'a pod that is not restricted is refused in vaultpam-system');
    const status = JSON.parse(String((refused as { body?: unknown }).body)) as { message?: string };
    t.regex(status.message ?? '', /violates PodSecurity "restricted/);
  },
);

test.serial(
  'the dev overlay: one replica, debug logs, dev images pulled always, no PodDisruptionBudget',
  async (t) => {
    const { kc } = cluster();
    const objects = await install(kc, 'kustomize/overlays/dev');
    t.falsy(find(objects, 'PodDisruptionBudget', DEPLOYMENT), 'dev renders no PodDisruptionBudget');
    const live = await deployment(kc);
    t.is(live.spec?.replicas, 1);
    const container = live.spec?.template.spec?.containers[0];
    t.is(container?.image, 'ghcr.io/vaultpam/vaultpam-connector-operator:dev');
    t.is(container?.imagePullPolicy, 'Always');
    t.is(envOf(live).VAULTPAM_OPERATOR_LEADER_ELECT, 'true', 'leader election stays on with one replica');
    t.like(await operatorSettings(kc), {
      LOG_LEVEL: 'debug',
      VAULTPAM_OPERATOR_CONNECTOR_IMAGE: 'ghcr.io/vaultpam/vaultpam-connector:dev',
    });
    const pdb = await kc
      .makeApiClient(PolicyV1Api)
      .readNamespacedPodDisruptionBudget({ name: DEPLOYMENT, namespace: OPERATOR_NAMESPACE })
      .then(
        () => 200,
        (error: unknown) => statusCodeOf(error),
      );
    t.is(pdb, 404, "the base's PodDisruptionBudget is pruned when switching to dev");
  },
);

test.serial(
  'the production overlay: two spread replicas, limits, PodDisruptionBudget, PriorityClass',
  async (t) => {
    const { kc } = cluster();
    await install(kc, 'kustomize/overlays/production');
    const live = await deployment(kc);
    t.is(live.spec?.replicas, 2);
    const spec = live.spec?.template.spec;
    const container = spec?.containers[0];
    t.is(container?.image, 'ghcr.io/vaultpam/vaultpam-connector-operator:0.1.0');
    t.truthy(container?.resources?.limits?.cpu, 'a CPU limit');
    t.truthy(container?.resources?.limits?.memory, 'a memory limit');
    t.truthy(container?.resources?.requests?.memory, 'a memory request');
    t.is(spec?.priorityClassName, 'vaultpam-connector-operator');
    await t.notThrowsAsync(
      readBack(kc, {
        apiVersion: 'scheduling.k8s.io/v1',
        kind: 'PriorityClass',
        metadata: { name: DEPLOYMENT },
      }),
      'the PriorityClass the pods name exists',
    );
    t.true(
      spec?.topologySpreadConstraints?.some((c) => c.topologyKey === 'kubernetes.io/hostname') ?? false,
      'replicas spread across nodes',
    );
    const pdb = await kc
      .makeApiClient(PolicyV1Api)
      .readNamespacedPodDisruptionBudget({ name: DEPLOYMENT, namespace: OPERATOR_NAMESPACE });
    t.is(pdb.spec?.minAvailable, 1);
    t.is(pdb.spec?.unhealthyPodEvictionPolicy, 'AlwaysAllow', 'a drain is not blocked by an unready replica');
    t.deepEqual(
      pdb.spec?.selector?.matchLabels,
      live.spec?.selector.matchLabels,
      'the PodDisruptionBudget selects the operator pods',
    );
    const settings = await operatorSettings(kc);
    t.is(settings.LOG_LEVEL, 'info');
    t.false('VAULTPAM_OPERATOR_NAMESPACE' in settings, 'no watch namespace: all namespaces');
    t.false('VAULTPAM_OPERATOR_NAMESPACE' in envOf(live), 'no watch namespace: all namespaces');
  },
);

test.serial(
  'install/vaultpam-connector-operator.yaml is the production overlay as it renders now',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'vaultpam-render-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const fresh = join(dir, 'install.yaml');
    await run('bash', [join(repoRoot, 'tools', 'render-install.sh'), fresh], {
      env: { ...process.env, KUSTOMIZE: kustomize },
    });
    const committed = await readFile(join(repoRoot, 'install', 'vaultpam-connector-operator.yaml'), 'utf8');
    const rendered = await readFile(fresh, 'utf8');
    const committedLines = committed.split('\n');
    const firstDifference = rendered.split('\n').findIndex((line, index) => line !== committedLines[index]);
    t.true(
      committed === rendered,
      `install/vaultpam-connector-operator.yaml is stale (first difference at line ${firstDifference + 1}); ` +
        'run tools/render-install.sh and commit the result',
    );
    t.deepEqual(
      yaml.loadAll(committed).map((doc) => identity(doc as KubernetesObject)),
      (await render('kustomize/overlays/production')).map(identity),
    );
  },
);

test.serial(
  'as the operator ServiceAccount (cluster-wide install), every needed permission is granted',
  async (t) => {
    const { kc } = cluster();
    await install(kc, 'kustomize/overlays/production');
    const operator = await operatorKubeConfig();
    const needed = [
      ...connectorNamespaceAccess(undefined),
      ...connectorNamespaceAccess(TEAM_NAMESPACE),
      ...operatorNamespaceAccess,
      ...classAccess,
      ...metricsAuthAccess,
      ...clusterControlPlaneAccess,
    ];
    await expectAccess(
      t,
      operator,
      needed.map((access) => [access, true]),
    );
    // The leader-election calls themselves, as the operator makes them: read, create, read, replace.
    const leases = operator.makeApiClient(CoordinationV1Api);
    const missing = await leases.readNamespacedLease({ name: LEASE, namespace: OPERATOR_NAMESPACE }).then(
      () => 200,
      (error: unknown) => statusCodeOf(error),
    );
    t.is(missing, 404, 'reading the not-yet-created Lease is allowed (404, not 403)');
    const spec = { holderIdentity: 'install-test', leaseDurationSeconds: 15 };
    await leases.createNamespacedLease({
      namespace: OPERATOR_NAMESPACE,
      body: { metadata: { name: LEASE }, spec },
    });
    const lease = await leases.readNamespacedLease({ name: LEASE, namespace: OPERATOR_NAMESPACE });
    const renewed = await leases.replaceNamespacedLease({
      name: LEASE,
      namespace: OPERATOR_NAMESPACE,
      body: { ...lease, spec: { ...lease.spec, holderIdentity: 'install-test-2' } },
    });
    t.is(renewed.spec?.holderIdentity, 'install-test-2');

    // An adopted Deployment is read and scaled as a recovery does it: a merge patch of its scale
    // subresource, the one write the operator makes to a workload it does not own.
    await ensureNamespace(kc, TEAM_NAMESPACE);
    await kc.makeApiClient(AppsV1Api).createNamespacedDeployment({
      namespace: TEAM_NAMESPACE,
      body: {
        metadata: { name: 'adopted' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'adopted' } },
          template: {
            metadata: { labels: { app: 'adopted' } },
            spec: { containers: [{ name: 'connector', image: 'vaultpam/connector:0.1.0' }] },
          },
        },
      },
    });
    const apps = operator.makeApiClient(AppsV1Api);
    t.is(
      (await apps.readNamespacedDeployment({ namespace: TEAM_NAMESPACE, name: 'adopted' })).spec?.replicas,
      1,
    );
    await apps.patchNamespacedDeploymentScale(
      { namespace: TEAM_NAMESPACE, name: 'adopted', body: { spec: { replicas: 0 } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    // (The Scale answer omits a zero replica count, so read the Deployment back as admin.)
    const after = await kc
      .makeApiClient(AppsV1Api)
      .readNamespacedDeployment({ namespace: TEAM_NAMESPACE, name: 'adopted' });
    t.is(after.spec?.replicas, 0);
  },
);

test.serial(
  'as the operator ServiceAccount (cluster-wide install), nothing beyond them is granted',
  async (t) => {
    const { kc } = cluster();
    await install(kc, 'kustomize/overlays/production');
    const operator = await operatorKubeConfig();
    await expectAccess(
      t,
      operator,
      neverAccess.map((access) => [access, false]),
    );
    // The same answers hold for real requests, not only for reviews.
    const core = operator.makeApiClient(CoreV1Api);
    const statusOf = (request: Promise<unknown>) =>
      request.then(
        () => 200,
        (error: unknown) => statusCodeOf(error),
      );
    t.is(await statusOf(core.listSecretForAllNamespaces({ limit: 1 })), 403, 'no Secret list cluster-wide');
    await ensureNamespace(kc, TEAM_NAMESPACE);
    t.is(
      await statusOf(core.listNamespacedSecret({ namespace: TEAM_NAMESPACE, limit: 1 })),
      403,
      'no Secret list in a namespace',
    );
    t.is(
      await statusOf(core.readNamespacedSecret({ namespace: TEAM_NAMESPACE, name: 'absent' })),
      404,
      'a Secret is read by name (404, not 403)',
    );
    const nodes = await core.listNode().then(
      () => 200,
      (error: unknown) => statusCodeOf(error),
    );
    t.is(nodes, 403, 'listing nodes is forbidden');
  },
);

test.serial(
  'the namespaced overlay: Roles in the watched namespace; cluster-wide only the StorageClass and PriorityClass reads',
  async (t) => {
    const { kc } = cluster();
    await ensureNamespace(kc, WATCHED_NAMESPACE);
    const objects = await install(kc, 'kustomize/overlays/namespaced');
    t.falsy(find(objects, 'ClusterRole', 'vaultpam-connector-operator'), 'no ClusterRole for the operator');
    t.falsy(find(objects, 'ClusterRoleBinding', 'vaultpam-connector-operator'), 'no ClusterRoleBinding');
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    const role = await rbac.readNamespacedRole({
      name: 'vaultpam-connector-operator-connectors',
      namespace: WATCHED_NAMESPACE,
    });
    const clusterRole = yaml
      .loadAll(await readFile(join(repoRoot, 'manifests', 'rbac.yaml'), 'utf8'))
      .find((doc) => (doc as KubernetesObject).kind === 'ClusterRole') as { rules: unknown[] };
    t.is(
      role.rules?.length,
      clusterRole.rules.length,
      'the Role carries the same rules as the cluster-wide install',
    );
    const clusterBinding = await rbac.readClusterRoleBinding({ name: 'vaultpam-connector-operator' }).then(
      () => 200,
      (error: unknown) => statusCodeOf(error),
    );
    t.is(clusterBinding, 404, "the cluster-wide install's ClusterRoleBinding is pruned");
    t.like(await operatorSettings(kc), { VAULTPAM_OPERATOR_NAMESPACE: WATCHED_NAMESPACE });

    const operator = await operatorKubeConfig();
    const otherNamespace = await createTestNamespace(kc, 'other');
    await expectAccess(t, operator, [
      ...connectorNamespaceAccess(WATCHED_NAMESPACE).map((access): [Access, boolean] => [access, true]),
      ...operatorNamespaceAccess.map((access): [Access, boolean] => [access, true]),
      // The cluster-wide grants: reading a StorageClass or PriorityClass by name, and the reviews that decide who may
      // read /metrics (all cluster-scoped, so no Role can grant them).
      ...classAccess.map((access): [Access, boolean] => [access, true]),
      ...metricsAuthAccess.map((access): [Access, boolean] => [access, true]),
      // No ClusterControlPlanes: the namespaced operator uses its namespace's ControlPlanes only.
      ...clusterControlPlaneAccess.map((access): [Access, boolean] => [access, false]),
      // Outside the watched namespace, nothing: not across all namespaces, not in another one.
      ...connectorNamespaceAccess(undefined).map((access): [Access, boolean] => [access, false]),
      ...connectorNamespaceAccess(otherNamespace).map((access): [Access, boolean] => [access, false]),
      // In its own namespace, only its credential Secret.
      [{ verb: 'get', resource: 'secrets', namespace: OPERATOR_NAMESPACE, name: 'someone-elses' }, false],
      [{ verb: 'list', resource: 'secrets', namespace: OPERATOR_NAMESPACE }, false],
      ...neverAccess.map((access): [Access, boolean] => [access, false]),
    ]);
    const core = operator.makeApiClient(CoreV1Api);
    // The credential informer lists and watches its one Secret by name; that works, a plain list does not.
    await t.notThrowsAsync(
      core.listNamespacedSecret({
        namespace: OPERATOR_NAMESPACE,
        fieldSelector: `metadata.name=${CREDENTIAL_SECRET}`,
      }),
    );
    const allSecrets = await core.listNamespacedSecret({ namespace: OPERATOR_NAMESPACE }).then(
      () => 200,
      (error: unknown) => statusCodeOf(error),
    );
    t.is(allSecrets, 403, 'other Secrets in the operator namespace are not readable');
    await t.notThrowsAsync(core.listNamespacedConfigMap({ namespace: WATCHED_NAMESPACE }));
    const elsewhere = await core.listNamespacedConfigMap({ namespace: otherNamespace }).then(
      () => 200,
      (error: unknown) => statusCodeOf(error),
    );
    t.is(elsewhere, 403, 'configmaps outside the watched namespace are forbidden');
  },
);

test.serial(
  'every sample in manifests/samples (Connectors and control planes) is accepted by the installed CRDs',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'samples');
    const client = KubernetesObjectApi.makeApiClient(kc);
    const names: Array<[string, string]> = [
      ['connector.yaml', 'Connector'],
      ['connector-existing-claim.yaml', 'Connector'],
      ['connector-ephemeral.yaml', 'Connector'],
      ['connector-adopt.yaml', 'Connector'],
      ['controlplane.yaml', 'ControlPlane'],
      ['clustercontrolplane.yaml', 'ClusterControlPlane'],
    ];
    for (const [name, kind] of names) {
      const sample = yaml.load(
        await readFile(join(repoRoot, 'manifests', 'samples', name), 'utf8'),
      ) as KubernetesObject;
      t.is(sample.kind, kind, `${name} is a ${kind}`);
      const scoped = kind === 'ClusterControlPlane' ? {} : { namespace };
      const created = await client.create(
        { ...sample, metadata: { ...sample.metadata, ...scoped } },
        undefined,
        'All',
      );
      t.is(created.metadata?.name, sample.metadata?.name, `${name} passes the CRD's schema and CEL rules`);
    }
  },
);

test.serial('the settings fixed in the Deployment agree with the RBAC names and the Service', async (t) => {
  const objects = await render('kustomize/base');
  const operator = find(objects, 'Deployment', DEPLOYMENT) as V1Deployment | undefined;
  const role = find(objects, 'Role', 'vaultpam-connector-operator') as
    | { metadata: { namespace: string }; rules: Array<{ resources: string[]; resourceNames?: string[] }> }
    | undefined;
  const service = find(objects, 'Service', 'vaultpam-connector-operator-metrics') as
    | { spec: { ports: Array<{ targetPort: string | number }>; selector: Record<string, string> } }
    | undefined;
  if (!operator || !role || !service) {
    t.fail('the base renders the operator Deployment, its Role and its metrics Service');
    return;
  }
  const env = envOf(operator);
  const named = (resource: string) =>
    role.rules.filter((r) => r.resources.includes(resource)).flatMap((r) => r.resourceNames ?? []);
  t.is(role.metadata.namespace, OPERATOR_NAMESPACE);
  t.deepEqual(
    named('leases'),
    [env.VAULTPAM_OPERATOR_LEASE_NAME],
    'the Role names the Lease the operator uses',
  );
  const [secretNamespace, secretName, secretKey] = (env.VAULTPAM_OPERATOR_CREDENTIAL_SECRET ?? '').split('/');
  t.is(secretNamespace, '$(POD_NAMESPACE)', "the credential Secret is in the operator's own namespace");
  t.deepEqual(named('secrets'), [secretName], 'the Role names the credential Secret the operator reads');
  t.is(secretKey, 'credential', 'the key docs/install.md tells users to create');

  const container = operator.spec?.template.spec?.containers[0];
  const probePort = container?.ports?.find((p) => p.name === 'probes');
  const metricsPort = container?.ports?.find((p) => p.name === 'metrics');
  t.is(
    env.VAULTPAM_OPERATOR_LISTEN,
    `0.0.0.0:${probePort?.containerPort}`,
    'the probes listen on their container port',
  );
  t.is(
    env.VAULTPAM_OPERATOR_METRICS_LISTEN,
    `0.0.0.0:${metricsPort?.containerPort}`,
    '/metrics listens on its container port',
  );
  t.is(env.VAULTPAM_OPERATOR_METRICS_AUTH, undefined, 'authorization is on: the default');
  t.is(container?.livenessProbe?.httpGet?.port, 'probes');
  t.is(container?.readinessProbe?.httpGet?.port, 'probes');
  t.is(service.spec.ports[0]?.targetPort, 'metrics', 'the Service reaches /metrics, not the probes');
  t.is((service.spec.ports[0] as { port?: number } | undefined)?.port, 8443);
  t.deepEqual(
    service.spec.selector,
    operator.spec?.selector.matchLabels,
    'the Service selects the operator pods',
  );
  const downward = Object.fromEntries(
    (container?.env ?? []).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]),
  );
  t.is(downward.POD_NAME, 'metadata.name', 'leader-election identity from the downward API');
  t.is(downward.POD_NAMESPACE, 'metadata.namespace');
});

test.serial('every setting the manifests pass to the operator is one the operator reads', async (t) => {
  const { stdout } = await run(process.execPath, [join(repoRoot, 'src', 'bin', 'operator.ts'), '--help'], {
    cwd: repoRoot,
  });
  const known = new Set([...stdout.matchAll(/\(env (\w+)\)/g)].map((m) => m[1]));
  t.true(known.size > 5, 'the operator lists the environment variable of each flag in --help');
  // Read by the operator directly rather than through a flag.
  for (const name of ['POD_NAME', 'POD_NAMESPACE']) known.add(name);
  const unknown = new Set<string>();
  for (const overlay of ['kustomize/base', 'kustomize/overlays/dev', 'kustomize/overlays/namespaced']) {
    const objects = await render(overlay);
    const operator = find(objects, 'Deployment', DEPLOYMENT) as V1Deployment | undefined;
    const settings = objects.find((o) => o.kind === 'ConfigMap') as
      | { data?: Record<string, string> }
      | undefined;
    const names = [
      ...(operator?.spec?.template.spec?.containers[0]?.env ?? []).map((e) => e.name),
      ...Object.keys(settings?.data ?? {}),
    ];
    t.true(names.length > 5, `${overlay} sets the operator's settings`);
    for (const name of names) if (!known.has(name)) unknown.add(`${overlay}: ${name}`);
  }
  t.deepEqual([...unknown], [], 'a variable the operator does not read would be silently ignored');
});
