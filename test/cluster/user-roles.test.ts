// The roles for people shipped in manifests/user-roles.yaml, asked of a real API server with
// SubjectAccessReviews after kube-controller-manager has aggregated them into view, edit and admin:
// Connector authors (edit) cannot define where the operator sends a credential; namespace admins can
// for their namespace only; ClusterControlPlanes take an explicit binding; no role reads Secrets.
import { AuthorizationV1Api, type KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import test from 'ava';
import { installCrds, installOperatorAccess } from '../../dev/local-cluster/install.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { settled } from '../helpers/eventually.ts';

const cluster = useCluster(test);

const ROLES = [
  'vaultpam-connector-viewer',
  'vaultpam-connector-editor',
  'vaultpam-controlplane-admin',
  'vaultpam-clustercontrolplane-admin',
] as const;

interface Ask {
  verb: string;
  resource: string;
  namespace?: string;
  group?: string;
  subresource?: string;
}

async function allowed(
  kc: KubeConfig,
  subject: { user: string; groups?: string[] },
  ask: Ask,
): Promise<boolean> {
  const review = await kc.makeApiClient(AuthorizationV1Api).createSubjectAccessReview({
    body: {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: { ...subject, resourceAttributes: { group: 'vaultpam.io', ...ask } },
    },
  });
  return review.status?.allowed === true;
}

/** Every answer that differs from the expectation, polled until none does (bounded): aggregation and the authorizer's cache take a moment. */
async function mismatches(
  kc: KubeConfig,
  expected: Array<[{ user: string; groups?: string[] }, Ask, boolean]>,
): Promise<string[]> {
  const check = async () => {
    const answers = await Promise.all(expected.map(([subject, ask]) => allowed(kc, subject, ask)));
    return expected
      .filter(([, , want], index) => answers[index] !== want)
      .map(
        ([subject, ask, want]) =>
          `${subject.user} ${ask.verb} ${ask.resource}${ask.subresource ? `/${ask.subresource}` : ''} ${ask.namespace ? `in ${ask.namespace}` : 'cluster-wide'}: expected ${want ? 'allowed' : 'denied'}`,
      );
  };
  return settled(check, { timeoutMs: 20_000, intervalMs: 250 });
}

async function bind(
  kc: KubeConfig,
  namespace: string | undefined,
  user: string,
  role: string,
): Promise<void> {
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const body = {
    metadata: { name: `${user}-${role}`.slice(0, 63) },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
  };
  if (namespace) await rbac.createNamespacedRoleBinding({ namespace, body });
  else await rbac.createClusterRoleBinding({ body });
}

test.serial.before(async () => {
  const { kc } = cluster();
  await installCrds(kc);
  await installOperatorAccess(kc);
});

test.serial(
  'view, edit and admin of a namespace get what their names say, through aggregation',
  async (t) => {
    const { kc } = cluster();
    const team = await createTestNamespace(kc, 'team');
    const other = await createTestNamespace(kc, 'other');
    await bind(kc, team, 'vera', 'view');
    await bind(kc, team, 'eddie', 'edit');
    await bind(kc, team, 'ada', 'admin');
    const vera = { user: 'vera' };
    const eddie = { user: 'eddie' };
    const ada = { user: 'ada' };
    const connectorWrites = ['create', 'update', 'patch', 'delete'];
    const expected: Array<[{ user: string }, Ask, boolean]> = [
      // view: read Connectors and the ControlPlanes they may name; write nothing.
      ...['get', 'list', 'watch'].map((verb): [{ user: string }, Ask, boolean] => [
        vera,
        { verb, resource: 'connectors', namespace: team },
        true,
      ]),
      [vera, { verb: 'get', resource: 'controlplanes', namespace: team }, true],
      [vera, { verb: 'create', resource: 'connectors', namespace: team }, false],
      // edit: write Connectors, but not their status, and no ControlPlane.
      ...connectorWrites.map((verb): [{ user: string }, Ask, boolean] => [
        eddie,
        { verb, resource: 'connectors', namespace: team },
        true,
      ]),
      [eddie, { verb: 'update', resource: 'connectors', subresource: 'status', namespace: team }, false],
      [eddie, { verb: 'list', resource: 'controlplanes', namespace: team }, true],
      ...['create', 'update', 'patch', 'delete'].map((verb): [{ user: string }, Ask, boolean] => [
        eddie,
        { verb, resource: 'controlplanes', namespace: team },
        false,
      ]),
      // admin: define ControlPlanes, in the namespace bound only.
      ...['create', 'update', 'patch', 'delete'].map((verb): [{ user: string }, Ask, boolean] => [
        ada,
        { verb, resource: 'controlplanes', namespace: team },
        true,
      ]),
      [ada, { verb: 'create', resource: 'connectors', namespace: team }, true],
      [ada, { verb: 'create', resource: 'controlplanes', namespace: other }, false],
      [ada, { verb: 'update', resource: 'controlplanes', subresource: 'status', namespace: team }, false],
      // Nobody of them creates ClusterControlPlanes.
      ...[vera, eddie, ada].map((who): [{ user: string }, Ask, boolean] => [
        who,
        { verb: 'create', resource: 'clustercontrolplanes' },
        false,
      ]),
    ];
    t.deepEqual(await mismatches(kc, expected), []);
  },
);

test.serial(
  'only cluster-admin and an explicit vaultpam-clustercontrolplane-admin binding create ClusterControlPlanes',
  async (t) => {
    const { kc } = cluster();
    await bind(kc, undefined, 'platform', 'vaultpam-clustercontrolplane-admin');
    const namespace = await createTestNamespace(kc, 'platform');
    t.deepEqual(
      await mismatches(kc, [
        [{ user: 'platform' }, { verb: 'create', resource: 'clustercontrolplanes' }, true],
        [{ user: 'platform' }, { verb: 'delete', resource: 'clustercontrolplanes' }, true],
        [{ user: 'platform' }, { verb: 'create', resource: 'controlplanes', namespace }, false],
        [
          { user: 'root', groups: ['system:masters'] },
          { verb: 'create', resource: 'clustercontrolplanes' },
          true,
        ],
        [
          { user: 'nobody', groups: ['system:authenticated'] },
          { verb: 'create', resource: 'clustercontrolplanes' },
          false,
        ],
        [
          { user: 'nobody', groups: ['system:authenticated'] },
          { verb: 'list', resource: 'clustercontrolplanes' },
          false,
        ],
      ]),
      [],
    );
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    const labels =
      (await rbac.readClusterRole({ name: 'vaultpam-clustercontrolplane-admin' })).metadata?.labels ?? {};
    t.deepEqual(
      Object.keys(labels).filter((key) => key.startsWith('rbac.authorization.k8s.io/aggregate-to')),
      [],
      'aggregated to nobody',
    );
  },
);

test.serial('none of the shipped roles reads or writes a Secret, wherever it is bound', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'secrets');
  const expected: Array<[{ user: string }, Ask, boolean]> = [];
  for (const role of ROLES) {
    const user = `only-${role}`;
    await bind(kc, namespace, user, role);
    await bind(kc, undefined, `${user}-cluster`, role);
    for (const who of [user, `${user}-cluster`])
      for (const verb of ['get', 'list', 'watch', 'create', 'update'])
        for (const where of [namespace, 'vaultpam-system', undefined])
          expected.push([
            { user: who },
            { group: '', verb, resource: 'secrets', ...(where ? { namespace: where } : {}) },
            false,
          ]);
    // Each role grants what it is for (so the denials above are not a binding that did nothing).
    expected.push([
      { user: `${user}-cluster` },
      role === 'vaultpam-clustercontrolplane-admin'
        ? { verb: 'get', resource: 'clustercontrolplanes' }
        : {
            verb: 'get',
            resource: role === 'vaultpam-controlplane-admin' ? 'controlplanes' : 'connectors',
            namespace,
          },
      true,
    ]);
  }
  t.deepEqual(await mismatches(kc, expected), []);
});
