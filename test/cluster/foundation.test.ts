// Proves the local control plane is the real thing: the pinned kube-apiserver answers, CRDs and
// the status subresource work, the controller-manager's garbage collector and StatefulSet
// controller run, and RBAC refuses a ServiceAccount that lacks a Role. And that client-node's API
// clients, as this package builds them (src/lib/client-node-connections.ts), keep their connections
// to it: one TLS handshake per credential rather than one per request.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AppsV1Api,
  AuthenticationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  VersionApi,
} from '@kubernetes/client-node';
import test from 'ava';
import * as yaml from 'js-yaml';
import { reuseConnections } from '../../src/lib/client-node-connections.ts';
import { createTestNamespace, installCrds, repoRoot, useCluster } from '../helpers/cluster.ts';
import { eventually, isGone } from '../helpers/eventually.ts';

const cluster = useCluster(test);

function statusCodeOf(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

test.serial('/version reports the Kubernetes version pinned in tools/cluster/go.mod', async (t) => {
  const goMod = await readFile(join(repoRoot, 'tools', 'cluster', 'go.mod'), 'utf8');
  const pinned = /k8s\.io\/kubernetes (v\d+\.\d+\.\d+)/.exec(goMod)?.[1];
  t.truthy(pinned, 'tools/cluster/go.mod pins k8s.io/kubernetes');
  const version = await cluster().kc.makeApiClient(VersionApi).getCode();
  t.is(version.gitVersion, pinned ?? 'a k8s.io/kubernetes pin');
});

test.serial(
  'a CRD from crds/ is established and a custom resource round-trips with its status',
  async (t) => {
    const { kc } = cluster();
    const crds = await installCrds(kc);
    const connectorCrd = crds.find((crd) => crd.spec.names.kind === 'Connector');
    t.truthy(connectorCrd, 'crds/ defines the Connector kind');
    if (!connectorCrd) return;
    const namespace = await createTestNamespace(kc, 'crd');
    const sample = yaml.load(
      await readFile(join(repoRoot, 'manifests', 'samples', 'connector.yaml'), 'utf8'),
    ) as {
      metadata: { name: string; namespace?: string };
      spec: Record<string, unknown>;
    };
    const version = connectorCrd.spec.versions.find((v) => v.storage)?.name ?? 'v1alpha1';
    const api = kc.makeApiClient(CustomObjectsApi);
    const ref = {
      group: connectorCrd.spec.group,
      version,
      namespace,
      plural: connectorCrd.spec.names.plural,
    };
    const created = (await api.createNamespacedCustomObject({
      ...ref,
      body: { ...sample, metadata: { ...sample.metadata, namespace } },
    })) as { metadata: { name: string; generation: number }; spec: unknown; status?: unknown };
    t.deepEqual(created.spec, sample.spec);
    t.is(created.status, undefined, 'status is not set through the main resource');

    const name = created.metadata.name;
    await api.patchNamespacedCustomObjectStatus(
      {
        ...ref,
        name,
        body: { status: { phase: 'Pending', observedGeneration: created.metadata.generation } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const read = (await api.getNamespacedCustomObject({ ...ref, name })) as {
      metadata: { generation: number };
      status?: { phase?: string; observedGeneration?: number };
    };
    t.is(read.status?.phase, 'Pending');
    t.is(read.status?.observedGeneration, created.metadata.generation);
    t.is(
      read.metadata.generation,
      created.metadata.generation,
      'a status write does not bump the generation',
    );
  },
);

test.serial('deleting an owner garbage-collects its dependents (the controller-manager runs)', async (t) => {
  const { kc } = cluster();
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = await createTestNamespace(kc, 'gc');
  const owner = await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'owner' } } });
  await core.createNamespacedConfigMap({
    namespace,
    body: {
      metadata: {
        name: 'dependent',
        ownerReferences: [
          { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata?.uid ?? '' },
        ],
      },
    },
  });
  await core.deleteNamespacedConfigMap({ namespace, name: 'owner', propagationPolicy: 'Background' });
  await eventually(() => isGone(() => core.readNamespacedConfigMap({ namespace, name: 'dependent' })), {
    description: 'dependent ConfigMap garbage-collected',
    timeoutMs: 60_000,
  });
  t.pass();
});

test.serial('a StatefulSet gets its Pod and its PersistentVolumeClaim created', async (t) => {
  const { kc } = cluster();
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = await createTestNamespace(kc, 'sts');
  // Pods are admitted only once the namespace's default ServiceAccount exists.
  await eventually(() => core.readNamespacedServiceAccount({ namespace, name: 'default' }), {
    description: 'default ServiceAccount created',
  });
  await kc.makeApiClient(AppsV1Api).createNamespacedStatefulSet({
    namespace,
    body: {
      metadata: { name: 'web' },
      spec: {
        replicas: 1,
        serviceName: 'web',
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            containers: [
              {
                name: 'web',
                image: 'example.invalid/web:1',
                volumeMounts: [{ name: 'data', mountPath: '/data' }],
              },
            ],
          },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: 'data' },
            spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
          },
        ],
      },
    },
  });
  const pod = await eventually(() => core.readNamespacedPod({ namespace, name: 'web-0' }), {
    description: 'Pod web-0 created by the StatefulSet controller',
    timeoutMs: 60_000,
  });
  const claim = await eventually(
    () => core.readNamespacedPersistentVolumeClaim({ namespace, name: 'data-web-0' }),
    {
      description: 'PVC data-web-0 created by the StatefulSet controller',
      timeoutMs: 60_000,
    },
  );
  const volume = pod.spec?.volumes?.find((v) => v.name === 'data');
  t.is(volume?.persistentVolumeClaim?.claimName, 'data-web-0');
  t.is(claim.spec?.resources?.requests?.storage, '1Gi');
});

test.serial('a ServiceAccount without a Role is refused with 403, and allowed once bound', async (t) => {
  const { kc, cluster: local } = cluster();
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = await createTestNamespace(kc, 'rbac');
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'reader' } } });
  const asReader = (await local.serviceAccountKubeConfig(namespace, 'reader')).makeApiClient(CoreV1Api);

  const refused = await t.throwsAsync(() => asReader.listNamespacedSecret({ namespace }));
  t.is(statusCodeOf(refused), 403);

  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createNamespacedRole({
    namespace,
    body: {
      metadata: { name: 'secret-reader' },
      rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['list'] }],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: 'reader-reads-secrets' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'secret-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace }],
    },
  });
  const list = await eventually(() => asReader.listNamespacedSecret({ namespace }), {
    description: 'RBAC cache sees the new binding',
  });
  t.true(Array.isArray(list.items));
});

/**
 * The connections client-node's HTTP client (undici) opens to the API server while `work` runs,
 * counted from undici's own diagnostics channel: one per TCP connection and TLS handshake.
 */
async function connectionsOpenedBy(server: string, work: () => Promise<unknown>): Promise<number> {
  const port = new URL(server).port;
  let opened = 0;
  const onConnected = (message: unknown) => {
    const { connectParams } = message as { connectParams?: { port?: string | number } };
    if (String(connectParams?.port) === port) opened += 1;
  };
  subscribe('undici:client:connected', onConnected);
  try {
    await work();
  } finally {
    unsubscribe('undici:client:connected', onConnected);
  }
  return opened;
}

const sequentially = async (times: number, request: () => Promise<unknown>) => {
  for (let i = 0; i < times; i += 1) await request();
};

test.serial('client-node as it ships opens a connection and a TLS handshake for every request', async (t) => {
  // The reason for reuseConnections: if a client-node release keeps its connections, this fails,
  // and the workaround can go.
  const { cluster: local } = cluster();
  const plain = new KubeConfig();
  plain.loadFromFile(local.kubeconfigPath);
  const core = plain.makeApiClient(CoreV1Api);
  t.is(await connectionsOpenedBy(local.server, () => sequentially(5, () => core.listNamespace())), 5);
});

test.serial(
  'with reuseConnections, twenty requests share one connection, and a burst reuses the pool',
  async (t) => {
    const { cluster: local } = cluster();
    const kc = new KubeConfig();
    kc.loadFromFile(local.kubeconfigPath);
    const core = reuseConnections(kc).makeApiClient(CoreV1Api);
    const version = kc.makeApiClient(VersionApi);
    t.is(
      await connectionsOpenedBy(local.server, () =>
        sequentially(10, async () => {
          await core.listNamespace();
          await version.getCode();
        }),
      ),
      1,
    );
    // Ten at once need up to ten connections; the same ten again need none more.
    const burst = () => Promise.all(Array.from({ length: 10 }, () => core.listNamespace()));
    const first = await connectionsOpenedBy(local.server, burst);
    t.true(first <= 10, `${first} connections for 10 requests`);
    t.is(await connectionsOpenedBy(local.server, burst), 0);
    // The local cluster's own KubeConfigs are built this way (dev/local-cluster/kubeconfig.ts).
    const admin = local.adminKubeConfig().makeApiClient(CoreV1Api);
    t.is(await connectionsOpenedBy(local.server, () => sequentially(5, () => admin.listNamespace())), 1);
  },
);

test.serial('reused connections never mix credentials: each context is served as its own user', async (t) => {
  const { kc, cluster: local } = cluster();
  const namespace = await createTestNamespace(kc, 'conn');
  await kc
    .makeApiClient(CoreV1Api)
    .createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'viewer' } } });
  const asServiceAccount = await local.serviceAccountKubeConfig(namespace, 'viewer');
  // One KubeConfig with both users, switched between requests as `kubectl --context` would.
  const both = new KubeConfig();
  both.loadFromFile(local.kubeconfigPath);
  const adminContext = both.getCurrentContext();
  const serviceAccountUser = asServiceAccount.getCurrentUser();
  const serviceAccountCluster = asServiceAccount.getCurrentCluster();
  if (!serviceAccountUser || !serviceAccountCluster)
    throw new Error('the ServiceAccount kubeconfig is empty');
  both.addUser({ ...serviceAccountUser, name: 'viewer' });
  both.addCluster({ ...serviceAccountCluster, name: 'viewer' });
  both.addContext({ name: 'viewer', cluster: 'viewer', user: 'viewer' });
  reuseConnections(both);
  const whoAmI = async (context: string) => {
    both.setCurrentContext(context);
    const review = await both.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
    });
    return review.status?.userInfo?.username;
  };
  for (let round = 0; round < 3; round += 1) {
    t.is(await whoAmI(adminContext), 'vaultpam-test-admin');
    t.is(await whoAmI('viewer'), `system:serviceaccount:${namespace}:viewer`);
  }
  both.setCurrentContext('viewer');
  const refused = await t.throwsAsync(() =>
    both.makeApiClient(CoreV1Api).listNamespacedSecret({ namespace }),
  );
  t.is(statusCodeOf(refused), 403);
});
