// The operator is nobody's deputy: a Connector names an admin-defined ControlPlane or
// ClusterControlPlane and can no longer point the operator's credential (or any Secret of its
// namespace) at a URL of its author's choosing. Against a real API server, with the operator running
// as its ServiceAccount under the shipped RBAC, the reference control plane, and a user's own https
// server with a self-signed certificate standing in for the attacker's.
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  ApiextensionsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  type KubeConfig,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
} from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import { usableAdminCredential } from '../../src/controlplane/server.ts';
import { FIELD_MANAGER, FINALIZER } from '../../src/operator/api/constants.ts';
import type { ControlPlaneSpec } from '../../src/operator/api/control-planes.ts';
import { type Connector, defaultedSpec } from '../../src/operator/api/types.ts';
import type { RunningOperator } from '../../src/operator/operator.ts';
import { desiredConfigMap } from '../../src/operator/reconcile/desired-objects.ts';
import { selfSignedCertificate } from '../helpers/certificates.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually, isGone } from '../helpers/eventually.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import {
  CREDENTIAL_SECRET,
  connectors,
  controlPlaneResources,
  OPERATOR_NAMESPACE,
  type OperatorEnvironment,
  readyOf,
  startOperatorEnvironment,
} from '../helpers/operator-env.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;
const logs = captureLogs('operator-control-planes', 'debug');

/** Where a credential Secret's owner says it may be sent. */
const URL_ANNOTATION = 'vaultpam.io/control-plane-url';

/** The database password a user would like the operator to send them. */
const DB_PASSWORD = 'app-db-password-7f3a9c1e5b';

/** The user's server: records every request, and answers with an error that echoes what it got. */
interface UserServer {
  url: string;
  certPem: string;
  requests: Array<{ method: string; path: string; authorization: string | undefined }>;
  close(): Promise<void>;
}

async function startUserServer(): Promise<UserServer> {
  const { certPem, keyPem } = await selfSignedCertificate({ commonName: '127.0.0.1', sanIps: ['127.0.0.1'] });
  const requests: UserServer['requests'] = [];
  const server: Server = createServer({ key: keyPem, cert: certPem }, (req, res) => {
    requests.push({
      method: req.method ?? '',
      path: req.url ?? '',
      authorization: req.headers.authorization,
    });
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({ error: { code: 'GOTCHA', message: `thanks for ${req.headers.authorization}` } }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    certPem,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let userServer: UserServer;
let operator: RunningOperator;

test.serial.before(async () => {
  env = await startOperatorEnvironment(cluster(), { logger: logs.logger });
  operator = await env.startOperator();
  userServer = await startUserServer();
});
test.after.always(async () => {
  await userServer?.close();
  await env?.stop();
});

const connectorSpec = { connector: { org: 'acme', endpointId: 'ep-1' } };
/** The HTTP status an API request is answered with: 200 or the error's code. */
const answerOf = (request: Promise<unknown>) =>
  request.then(
    () => 200,
    (error: { code?: number }) => error.code ?? 0,
  );
const condition = (c: Connector, type: string) => c.status?.conditions?.find((x) => x.type === type);

/**
 * A Secret as its owner creates it; `forUrl`: the control-plane URL(s) its owner says the credential
 * may be sent to (the annotation vaultpam.io/control-plane-url; without it, it is sent nowhere).
 */
async function createSecret(namespace: string, name: string, data: Record<string, string>, forUrl?: string) {
  const annotations = forUrl === undefined ? undefined : { [URL_ANNOTATION]: forUrl };
  await cluster()
    .kc.makeApiClient(CoreV1Api)
    .createNamespacedSecret({ namespace, body: { metadata: { name, annotations }, stringData: data } });
}

async function createConfigMap(namespace: string, name: string, data: Record<string, string>) {
  await cluster()
    .kc.makeApiClient(CoreV1Api)
    .createNamespacedConfigMap({ namespace, body: { metadata: { name }, data } });
}

/**
 * The Connector CRD as an older release had it, spec.controlPlane admitted (its rule removed), until
 * the returned function puts the rule back and sees it refuse `spec` in `namespace` again; the
 * test's end puts it back if the test did not.
 */
async function admitLegacyControlPlane(t: ExecutionContext) {
  const { kc } = cluster();
  const crds = kc.makeApiClient(ApiextensionsV1Api);
  const rulePath =
    '/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/controlPlane/x-kubernetes-validations';
  const crd = await crds.readCustomResourceDefinition({ name: 'connectors.vaultpam.io' });
  const rules =
    crd.spec.versions[0]?.schema?.openAPIV3Schema?.properties?.spec?.properties?.controlPlane
      ?.x_kubernetes_validations;
  t.truthy(rules, 'the live CRD refuses spec.controlPlane');
  const patch = (op: object) =>
    crds.patchCustomResourceDefinition(
      { name: 'connectors.vaultpam.io', body: [op] },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
  await patch({ op: 'remove', path: rulePath });
  let restored = false;
  const restore = async () => {
    if (!restored) await patch({ op: 'add', path: rulePath, value: rules });
    restored = true;
  };
  t.teardown(() => restore().catch(() => {}));
  return async (namespace: string, spec: Connector['spec']) => {
    await restore();
    await eventually(
      async () =>
        (await answerOf(
          connectors(kc).create(namespace, { metadata: { name: 'newer', namespace }, spec }),
        )) === 422,
      { description: 'the rule is back' },
    );
  };
}

/** Whether `user` may do `verb` on `resource` in `namespace`, asked of the API server's authorizer. */
async function userMay(
  user: string,
  verb: string,
  resource: string,
  namespace: string | undefined,
  group = 'vaultpam.io',
) {
  const review = await cluster()
    .kc.makeApiClient(AuthorizationV1Api)
    .createSubjectAccessReview({
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: { user, resourceAttributes: { verb, group, resource, ...(namespace ? { namespace } : {}) } },
      },
    });
  return review.status?.allowed === true;
}

/** Everything the operator published about a namespace: statuses and Events, as text. */
async function published(namespace: string): Promise<string> {
  const { kc } = cluster();
  const events = await kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
  const list = (plural: 'connectors' | 'controlplanes') =>
    kc
      .makeApiClient(CustomObjectsApi)
      .listNamespacedCustomObject({ group: 'vaultpam.io', version: 'v1alpha1', namespace, plural });
  return JSON.stringify([events.items, await list('connectors'), await list('controlplanes')]);
}

test.serial(
  'a Connector cannot make the operator send a Secret of its namespace to a server of its choosing',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'deputy');
    await createSecret(namespace, 'app-db', { password: DB_PASSWORD });
    await createConfigMap(namespace, 'user-ca', { 'ca.crt': userServer.certPem });
    // The Connector's author holds `edit` in the namespace, as Connector authors do.
    await kc.makeApiClient(RbacAuthorizationV1Api).createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: 'mallory-edit' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edit' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'mallory' }],
      },
    });

    // 1. The old way is refused at admission, for everyone, with the new way named.
    const refused = await connectors(kc)
      .create(namespace, {
        metadata: { name: 'exfiltrate', namespace },
        spec: {
          ...connectorSpec,
          controlPlane: {
            url: userServer.url,
            caConfigMapRef: { name: 'user-ca' },
            credentialSecretRef: { name: 'app-db', key: 'password' },
          },
        },
      })
      .then(
        () => undefined,
        (error: { code?: number; body?: string }) => error,
      );
    t.is(refused?.code, 422, 'spec.controlPlane is refused at admission');
    t.true(
      String(refused?.body).includes(
        'spec.controlPlane was removed: a Connector no longer carries a URL or credential; ask an admin for a ControlPlane in this namespace or a ClusterControlPlane and set spec.controlPlaneRef',
      ),
      String(refused?.body),
    );

    // 2. Defining where the operator sends a credential takes `admin`: `edit` may write Connectors
    // (aggregated vaultpam-connector-editor) but no ControlPlane, and no ClusterControlPlane.
    t.true(
      await eventually(() => userMay('mallory', 'create', 'connectors', namespace), {
        description: 'edit aggregates the Connector editor role',
      }),
    );
    t.false(
      await userMay('mallory', 'create', 'controlplanes', namespace),
      'edit cannot create ControlPlanes',
    );
    t.false(
      await userMay('mallory', 'update', 'controlplanes', namespace),
      'edit cannot change ControlPlanes',
    );
    t.false(
      await userMay('mallory', 'create', 'clustercontrolplanes', undefined),
      'nor ClusterControlPlanes',
    );

    // 3. A Connector can only name a ControlPlane of its own namespace: one elsewhere is "missing".
    const elsewhere = await createTestNamespace(kc, 'other-team');
    await createSecret(
      elsewhere,
      'cp-admin',
      { credential: usableAdminCredential(env.controlPlane) },
      env.controlPlane.url,
    );
    await createConfigMap(elsewhere, 'cp-ca', { 'ca.crt': env.controlPlane.caPem });
    await controlPlaneResources(kc).create(elsewhere, 'shared', {
      url: env.controlPlane.url,
      caConfigMapRef: { name: 'cp-ca' },
      credentialSecretRef: { name: 'cp-admin' },
    });
    await connectors(kc).create(namespace, {
      metadata: { name: 'borrower', namespace },
      spec: { ...connectorSpec, controlPlaneRef: { name: 'shared' } },
    });
    const stalled = await eventually(
      () =>
        connectors(kc)
          .get(namespace, 'borrower')
          .then((c) => condition(c, 'Stalled')),
      { description: 'the Connector stalls' },
    );
    t.is(stalled.reason, 'ControlPlaneConfigInvalid');
    t.is(
      stalled.message,
      `spec.controlPlaneRef: ControlPlane ${namespace}/shared does not exist; ask an admin to create it (or fix the name); no ConfigMap, StatefulSet, claim or token is created until it resolves`,
    );
    t.deepEqual(userServer.requests, [], "the user's server heard nothing from the operator");
    const core = kc.makeApiClient(CoreV1Api);
    t.true(
      await isGone(() => core.readNamespacedSecret({ namespace, name: 'borrower-enrollment-token' })),
      'no token minted',
    );

    // 4. A ControlPlane at any server naming a Secret of the namespace: the Secret does not say the
    // credential may go there, so nothing is sent.
    await controlPlaneResources(kc).create(namespace, 'user-server', {
      url: userServer.url,
      caConfigMapRef: { name: 'user-ca' },
      credentialSecretRef: { name: 'app-db', key: 'password' },
    });
    const notMeant = await eventually(
      () =>
        controlPlaneResources(kc)
          .get(namespace, 'user-server')
          .then((cp) => readyOf(cp)),
      { description: 'the ControlPlane is checked' },
    );
    t.like(notMeant, { status: 'False', reason: 'CredentialNotForURL' }, notMeant.message);
    t.deepEqual(userServer.requests, [], 'a Secret not meant for that server is not sent there');

    // 5. Whoever may write the Secret (an admin of the namespace) may send it to any server. Even
    // then, what the server answers, echoing the credential, reaches no status, Event or log line,
    // and a Connector on it makes no call.
    await kc.makeApiClient(CoreV1Api).patchNamespacedSecret(
      {
        namespace,
        name: 'app-db',
        body: { metadata: { annotations: { [URL_ANNOTATION]: userServer.url } } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await controlPlaneResources(kc).patch(namespace, 'user-server', {
      metadata: { annotations: { 'vaultpam.io/recheck': '1' } },
    });
    const ready = await eventually(
      () =>
        controlPlaneResources(kc)
          .get(namespace, 'user-server')
          .then((cp) => readyOf(cp)?.reason === 'Unreachable' && readyOf(cp)),
      { description: 'the ControlPlane is checked with the annotated Secret' },
    );
    t.like(ready, { status: 'False', reason: 'Unreachable' }, ready.message);
    t.regex(
      ready.message,
      /answered GET \/v1\/admin\/whoami with HTTP 400 GOTCHA \(thanks for Bearer \[REDACTED\]\)/,
    );
    await connectors(kc).patchSpec(namespace, 'borrower', {
      spec: { controlPlaneRef: { name: 'user-server' } },
    });
    await eventually(
      () =>
        connectors(kc)
          .get(namespace, 'borrower')
          .then((c) =>
            condition(c, 'Stalled')?.message.includes(
              `ControlPlane ${namespace}/user-server is not Ready (Unreachable:`,
            ),
          ),
      { description: 'the Connector stalls on the not-Ready ControlPlane' },
    );
    t.deepEqual(
      [...new Set(userServer.requests.map((r) => `${r.method} ${r.path}`))],
      ['GET /v1/admin/whoami'],
      'only the check, never a Connector call',
    );
    assertNoSecrets(t, 'statuses and Events', await published(namespace), [DB_PASSWORD]);
    assertNoSecrets(t, 'operator log', logs.text(), [DB_PASSWORD]);
  },
);

/**
 * A principal bound to one of the shipped roles and nothing else: a ServiceAccount, with the
 * ClusterRole bound cluster-wide (`namespace` undefined) or in one namespace. Its own client.
 */
async function boundTo(role: string, namespace: string | undefined, home: string) {
  const { kc, cluster: c } = cluster();
  const name = role.replace(/^vaultpam-/, '').slice(0, 40);
  await kc
    .makeApiClient(CoreV1Api)
    .createNamespacedServiceAccount({ namespace: home, body: { metadata: { name } } });
  const subjects = [{ kind: 'ServiceAccount', name, namespace: home }];
  const roleRef = { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role };
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  if (namespace === undefined) {
    await rbac.createClusterRoleBinding({
      body: { metadata: { name: `${home}-${name}` }, roleRef, subjects },
    });
  } else {
    await rbac.createNamespacedRoleBinding({ namespace, body: { metadata: { name }, roleRef, subjects } });
  }
  return { kc: await c.serviceAccountKubeConfig(home, name), user: `system:serviceaccount:${home}:${name}` };
}

/**
 * The Ready condition of a control plane once its reason passes `wanted` (a reason, or a test of
 * it): the check is done by then. A test waits for "checked" rather than for the reason it expects,
 * so that when the check goes wrong it fails saying what the server heard, not by timing out.
 */
const readyOnce = (namespace: string | undefined, name: string, wanted: string | ((r: string) => boolean)) =>
  eventually(
    () =>
      controlPlaneResources(cluster().kc)
        .get(namespace, name)
        .then((cp) => {
          const ready = readyOf(cp);
          const pass = typeof wanted === 'string' ? ready?.reason === wanted : ready && wanted(ready.reason);
          return pass ? ready : undefined;
        }),
    { description: `${name} is checked (${typeof wanted === 'string' ? wanted : 'any reason'})` },
  );
const checked = () => true;
const notReachable = (reason: string) => reason !== 'Reachable';

/** Creates a control plane as a role-bound user, retrying until their binding takes effect. */
const createAs = (kc: KubeConfig, namespace: string | undefined, name: string, spec: ControlPlaneSpec) =>
  eventually(async () => (await answerOf(controlPlaneResources(kc).create(namespace, name, spec))) === 200, {
    description: `the role-bound user creates ${name}`,
  });

/**
 * A holder of vaultpam-clustercontrolplane-admin (and nothing else), a server of theirs that records
 * what it hears, and a name for their ClusterControlPlane; it, and the Secret and ConfigMaps of
 * that name (and `<name>-user`) in the operator's namespace, go after the test.
 */
async function platformUser(t: ExecutionContext, prefix: string) {
  const { kc } = cluster();
  const core = kc.makeApiClient(CoreV1Api);
  const server = await startUserServer();
  const home = await createTestNamespace(kc, prefix);
  const platform = await boundTo('vaultpam-clustercontrolplane-admin', undefined, home);
  const name = `${prefix}-${home}`.slice(0, 60);
  const quietly = (removal: Promise<unknown>) => removal.catch(() => {});
  t.teardown(async () => {
    await server.close();
    await quietly(controlPlaneResources(kc).delete(undefined, name));
    await quietly(core.deleteNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name }));
    for (const configMap of [name, `${name}-user`])
      await quietly(core.deleteNamespacedConfigMap({ namespace: OPERATOR_NAMESPACE, name: configMap }));
  });
  return { server, platform, name };
}

/** A Connector `edge` on the control plane, once it reached it (a token minted; a follower polls it). */
async function connectorReached(namespace: string, controlPlaneRef: Connector['spec']['controlPlaneRef']) {
  const { kc } = cluster();
  await connectors(kc).create(namespace, {
    metadata: { name: 'edge', namespace },
    spec: { ...connectorSpec, controlPlaneRef },
  });
  await eventually(
    () =>
      connectors(kc)
        .get(namespace, 'edge')
        .then((c) => c.status?.enrollment?.tokenSecretName !== undefined),
    { description: 'the Connector reached the control plane (token minted)', timeoutMs: 20_000 },
  );
}

/** The Connector `edge` stalls on its control plane's CredentialNotForURL. */
const stallsNotForUrl = (namespace: string) =>
  eventually(
    () =>
      connectors(cluster().kc)
        .get(namespace, 'edge')
        .then((c) => condition(c, 'Stalled')?.message.includes('is not Ready (CredentialNotForURL:')),
    { description: 'the Connector stalls on it' },
  );

test.serial(
  "the review's reproduction: a holder of vaultpam-clustercontrolplane-admin cannot make the operator send its own credential to their server",
  async (t) => {
    const { kc } = cluster();
    const { server, platform, name } = await platformUser(t, 'mine');
    // They may not read the operator's credential themselves.
    const theirs = platform.kc.makeApiClient(CoreV1Api);
    t.is(
      await answerOf(theirs.readNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: CREDENTIAL_SECRET })),
      403,
    );
    // Stand-in for a publicly trusted certificate: the test server is self-signed.
    await createConfigMap(OPERATOR_NAMESPACE, name, { 'ca.crt': server.certPem });
    await createAs(platform.kc, undefined, name, {
      url: server.url,
      caConfigMapRef: { name },
      credentialSecretRef: { name: CREDENTIAL_SECRET },
    });
    const ready = await readyOnce(undefined, name, checked);
    t.deepEqual(server.requests, [], 'their server heard nothing');
    t.like(ready, { status: 'False', reason: 'CredentialNotForURL' });
    t.is(
      ready.message,
      `spec.credentialSecretRef: Secret ${OPERATOR_NAMESPACE}/${CREDENTIAL_SECRET} does not say where its credential may be sent (it has no annotation ${URL_ANNOTATION}), so the operator sends it nowhere: whoever may write that Secret decides where it goes. If ${server.url} is where it belongs, they run: kubectl -n ${OPERATOR_NAMESPACE} annotate secret ${CREDENTIAL_SECRET} ${URL_ANNOTATION}=${server.url}`,
    );
    // Checked again on request, given the time the review saw the credential go out in: still nothing.
    await controlPlaneResources(platform.kc).patch(undefined, name, {
      metadata: { annotations: { 'vaultpam.io/recheck': '1' } },
    });
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    t.deepEqual(server.requests, [], 'their server heard nothing');
    const credential = usableAdminCredential(env.controlPlane);
    const status = JSON.stringify(await controlPlaneResources(kc).get(undefined, name));
    assertNoSecrets(t, 'ClusterControlPlane', status, [credential]);
    assertNoSecrets(t, 'operator log', logs.text(), [credential]);
  },
);

test.serial(
  'a ClusterControlPlane whose Secret is annotated for its URL is Ready; moving its url to another server sends nothing there',
  async (t) => {
    const { kc } = cluster();
    const { server, platform, name } = await platformUser(t, 'moved');
    const credential = usableAdminCredential(env.controlPlane);
    // The cluster admin, who may write Secrets in the operator's namespace, says where it may go.
    await createSecret(OPERATOR_NAMESPACE, name, { credential }, `${env.controlPlane.url}/`);
    await createConfigMap(OPERATOR_NAMESPACE, name, { 'ca.crt': env.controlPlane.caPem });
    await createConfigMap(OPERATOR_NAMESPACE, `${name}-user`, { 'ca.crt': server.certPem });
    await createAs(platform.kc, undefined, name, {
      url: env.controlPlane.url,
      caConfigMapRef: { name },
      credentialSecretRef: { name },
    });
    t.like(await readyOnce(undefined, name, 'Reachable'), { status: 'True' });

    // A Connector uses it, then its url is moved to another server.
    const namespace = await createTestNamespace(kc, 'ccp-user');
    await connectorReached(namespace, { kind: 'ClusterControlPlane', name });
    await controlPlaneResources(platform.kc).patch(undefined, name, {
      spec: { url: server.url, caConfigMapRef: { name: `${name}-user` } },
    });
    const ready = await readyOnce(undefined, name, notReachable);
    t.deepEqual(server.requests, [], 'the new server heard nothing');
    t.like(ready, { status: 'False', reason: 'CredentialNotForURL' });
    t.regex(
      ready.message,
      new RegExp(
        `^spec\\.credentialSecretRef: Secret ${OPERATOR_NAMESPACE}/${name} is not meant for ${server.url.replaceAll('.', '\\.')} \\(its annotation vaultpam\\.io/control-plane-url lists other URLs\\)`,
      ),
    );
    t.false(ready.message.includes(env.controlPlane.url), 'the annotation is not quoted');
    await stallsNotForUrl(namespace);
    t.deepEqual(server.requests, [], 'the new server heard nothing');
    assertNoSecrets(t, 'statuses and Events', await published(namespace), [credential]);
  },
);

test.serial(
  'a namespaced ControlPlane: whoever may write it but not its Secret cannot move the credential, nor use one not meant for the URL',
  async (t) => {
    const { kc } = cluster();
    const server = await startUserServer();
    t.teardown(() => server.close());
    const namespace = await createTestNamespace(kc, 'cp-move');
    const credential = usableAdminCredential(env.controlPlane);
    // The namespace's owner keeps the Secrets; a ControlPlane writer holds only vaultpam-controlplane-admin.
    await createSecret(namespace, 'cp-admin', { credential }, env.controlPlane.url);
    await createSecret(namespace, 'app-db', { password: DB_PASSWORD });
    await createConfigMap(namespace, 'cp-ca', { 'ca.crt': env.controlPlane.caPem });
    await createConfigMap(namespace, 'user-ca', { 'ca.crt': server.certPem });
    const writer = await boundTo('vaultpam-controlplane-admin', namespace, namespace);
    const cps = controlPlaneResources(writer.kc);
    const theirs = writer.kc.makeApiClient(CoreV1Api);
    t.is(await answerOf(theirs.readNamespacedSecret({ namespace, name: 'cp-admin' })), 403);
    await createAs(writer.kc, namespace, 'team', {
      url: env.controlPlane.url,
      caConfigMapRef: { name: 'cp-ca' },
      credentialSecretRef: { name: 'cp-admin' },
    });
    t.like(await readyOnce(namespace, 'team', 'Reachable'), { status: 'True' });
    await connectorReached(namespace, { name: 'team' });

    // The url of the Ready ControlPlane moved to another server: nothing is sent there.
    await cps.patch(namespace, 'team', { spec: { url: server.url, caConfigMapRef: { name: 'user-ca' } } });
    const moved = await readyOnce(namespace, 'team', notReachable);
    t.deepEqual(server.requests, [], 'the server heard nothing');
    t.like(moved, { status: 'False', reason: 'CredentialNotForURL' });
    // A Secret of the namespace not meant for any control plane: nothing is sent either.
    await cps.create(namespace, 'db', {
      url: server.url,
      caConfigMapRef: { name: 'user-ca' },
      credentialSecretRef: { name: 'app-db', key: 'password' },
    });
    const db = await readyOnce(namespace, 'db', checked);
    t.deepEqual(server.requests, [], 'the server heard nothing');
    t.is(db.reason, 'CredentialNotForURL');
    t.regex(
      db.message,
      new RegExp(`Secret ${namespace}/app-db does not say where its credential may be sent`),
    );
    t.regex(db.message, new RegExp(`kubectl -n ${namespace} annotate secret app-db ${URL_ANNOTATION}=`));
    await stallsNotForUrl(namespace);
    t.deepEqual(server.requests, [], 'the server heard nothing');
    assertNoSecrets(t, 'statuses and Events', await published(namespace), [credential, DB_PASSWORD]);
    assertNoSecrets(t, 'operator log', logs.text(), [credential, DB_PASSWORD]);

    // Moved back: Ready again, from the same Secret.
    await cps.patch(namespace, 'team', {
      spec: { url: env.controlPlane.url, caConfigMapRef: { name: 'cp-ca' } },
    });
    t.like(await readyOnce(namespace, 'team', 'Reachable'), { status: 'True' });
    t.deepEqual(server.requests, []);
  },
);

test.serial(
  'a ControlPlane reports Ready truthfully against the reference control plane: Reachable, Unauthorized, CredentialMissing',
  async (t) => {
    const { kc } = cluster();
    const core = kc.makeApiClient(CoreV1Api);
    const cps = controlPlaneResources(kc);
    const namespace = await createTestNamespace(kc, 'cp-status');
    const credential = usableAdminCredential(env.controlPlane);
    await createSecret(namespace, 'cp-admin', { credential }, env.controlPlane.url);
    await createConfigMap(namespace, 'cp-ca', { 'ca.crt': env.controlPlane.caPem });
    await cps.create(namespace, 'reference', {
      url: env.controlPlane.url,
      caConfigMapRef: { name: 'cp-ca' },
      credentialSecretRef: { name: 'cp-admin' },
    });
    const reachable = await eventually(
      () => cps.get(namespace, 'reference').then((cp) => readyOf(cp) && cp),
      {
        description: 'Ready',
      },
    );
    t.like(readyOf(reachable), { status: 'True', reason: 'Reachable', observedGeneration: 1 });
    t.is(reachable.status?.observedGeneration, 1);
    t.truthy(reachable.status?.lastCheckTime);

    // A wrong credential: Unauthorized, once the ControlPlane is touched (or at the next check).
    await core.replaceNamespacedSecret({
      namespace,
      name: 'cp-admin',
      body: {
        metadata: { name: 'cp-admin', annotations: { [URL_ANNOTATION]: env.controlPlane.url } },
        stringData: { credential: 'not-an-admin-credential' },
      },
    });
    await cps.patch(namespace, 'reference', { metadata: { annotations: { 'vaultpam.io/recheck': '1' } } });
    const unauthorized = await eventually(
      () =>
        cps.get(namespace, 'reference').then((cp) => readyOf(cp)?.reason === 'Unauthorized' && readyOf(cp)),
      { description: 'Unauthorized' },
    );
    t.is(unauthorized.status, 'False');
    t.regex(
      unauthorized.message,
      /refused the admin credential in key "credential" of Secret cp-admin \(HTTP 401 UNAUTHORIZED\)/,
    );

    await core.deleteNamespacedSecret({ namespace, name: 'cp-admin' });
    await cps.patch(namespace, 'reference', { metadata: { annotations: { 'vaultpam.io/recheck': '2' } } });
    const missing = await eventually(
      () =>
        cps
          .get(namespace, 'reference')
          .then((cp) => readyOf(cp)?.reason === 'CredentialMissing' && readyOf(cp)),
      { description: 'CredentialMissing' },
    );
    t.is(
      missing.message,
      `spec.credentialSecretRef: Secret ${namespace}/cp-admin does not exist; create it with the control plane's admin credential under that key`,
    );

    // Recreated: Ready again within the not-Ready recheck (30 s), with no touch at all.
    await createSecret(namespace, 'cp-admin', { credential }, env.controlPlane.url);
    await eventually(() => cps.get(namespace, 'reference').then((cp) => readyOf(cp)?.status === 'True'), {
      description: 'Ready again after the Secret is back',
      timeoutMs: 45_000,
    });

    // A ClusterControlPlane reads its Secret and CA from the operator's namespace, not a Connector's.
    const name = `shared-${namespace}`.slice(0, 60);
    await createSecret(OPERATOR_NAMESPACE, name, { credential }, env.controlPlane.url);
    await createConfigMap(OPERATOR_NAMESPACE, name, { 'ca.crt': env.controlPlane.caPem });
    t.teardown(async () => {
      await cps.delete(undefined, name).catch(() => {});
      await core.deleteNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name }).catch(() => {});
      await core.deleteNamespacedConfigMap({ namespace: OPERATOR_NAMESPACE, name }).catch(() => {});
    });
    await cps.create(undefined, name, {
      url: env.controlPlane.url,
      caConfigMapRef: { name },
      credentialSecretRef: { name },
    });
    const clusterWide = await eventually(() => cps.get(undefined, name).then((cp) => readyOf(cp)), {
      description: 'the ClusterControlPlane is checked',
    });
    t.like(clusterWide, { status: 'True', reason: 'Reachable' });
    assertNoSecrets(t, 'statuses and Events', await published(namespace), [credential]);
    assertNoSecrets(t, 'ClusterControlPlane', JSON.stringify(await cps.get(undefined, name)), [credential]);
    assertNoSecrets(t, 'operator log', logs.text(), [credential]);
  },
);

test.serial(
  'a Connector on a namespaced ControlPlane stalls until it exists, then pairs, goes Online and loses its token',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'cp-life');
    const api = connectors(kc);
    await api.create(namespace, {
      metadata: { name: 'edge', namespace },
      spec: { ...connectorSpec, controlPlaneRef: { kind: 'ControlPlane', name: 'team' } },
    });
    const stalled = await eventually(() => api.get(namespace, 'edge').then((c) => condition(c, 'Stalled')), {
      description: 'stalled on the missing ControlPlane',
    });
    t.is(stalled.reason, 'ControlPlaneConfigInvalid');
    t.regex(stalled.message, new RegExp(`ControlPlane ${namespace}/team does not exist`));

    // The ControlPlane appears: the Connector is woken by it (no resync in between) and a token is minted.
    await createSecret(
      namespace,
      'team-admin',
      { credential: usableAdminCredential(env.controlPlane) },
      env.controlPlane.url,
    );
    await createConfigMap(namespace, 'team-ca', { 'ca.crt': env.controlPlane.caPem });
    await controlPlaneResources(kc).create(namespace, 'team', {
      url: env.controlPlane.url,
      caConfigMapRef: { name: 'team-ca' },
      credentialSecretRef: { name: 'team-admin' },
    });
    const minted = await eventually(
      () => api.get(namespace, 'edge').then((c) => (c.status?.enrollment?.tokenSecretName ? c : undefined)),
      { description: 'token minted', timeoutMs: 20_000 },
    );
    t.is(condition(minted, 'Stalled'), undefined, 'no longer stalled');
    const configMap = await kc
      .makeApiClient(CoreV1Api)
      .readNamespacedConfigMap({ namespace, name: 'edge-config' });
    t.is(configMap.data?.['ca.crt'], env.controlPlane.caPem, "the agent trusts the ControlPlane's CA");

    const pod = await env.runAgent(namespace, 'edge');
    t.teardown(() => pod.stop());
    const online = await eventually(
      () =>
        api
          .get(namespace, 'edge')
          .then(
            (c) =>
              c.status?.phase === 'Online' &&
              c.status.enrollment?.retired &&
              !c.status.enrollment.tokenSecretName &&
              c,
          ),
      { description: 'Online, retired, token Secret gone' },
    );
    t.is(online.status?.connectorId, `${namespace}.edge`);
    t.true(
      await eventually(async () => (await env.admin.getConnector(`${namespace}.edge`)).bootstrapRetired),
    );
    const core = kc.makeApiClient(CoreV1Api);
    t.true(
      await isGone(() => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' })),
      'the token Secret was found by name and deleted, without any Secret watch',
    );
  },
);

test.serial(
  'a Connector stored with spec.controlPlane before the upgrade is not used, and can still be updated and deleted',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'legacy');
    await createSecret(namespace, 'app-db', { password: DB_PASSWORD });
    await createConfigMap(namespace, 'user-ca', { 'ca.crt': userServer.certPem });
    const heardBefore = userServer.requests.length;
    // The CRD as an older release had it: the field admitted. A Connector is stored with it.
    const restore = await admitLegacyControlPlane(t);
    const legacySpec = {
      ...connectorSpec,
      controlPlane: {
        url: userServer.url,
        caConfigMapRef: { name: 'user-ca' },
        credentialSecretRef: { name: 'app-db', key: 'password' },
      },
    };
    await eventually(
      () =>
        connectors(kc)
          .create(namespace, { metadata: { name: 'legacy', namespace }, spec: legacySpec })
          .then(() => true),
      { description: 'stored under the old schema' },
    );
    await restore(namespace, legacySpec);

    const stalled = await eventually(
      () =>
        connectors(kc)
          .get(namespace, 'legacy')
          .then((c) => condition(c, 'Stalled')),
      { description: 'the operator refuses it' },
    );
    t.is(stalled.reason, 'InvalidSpec');
    t.true(stalled.message.startsWith('spec.controlPlane: this field was removed'), stalled.message);
    // The field cannot be changed (say, to another server)...
    const changed = connectors(kc).patchSpec(namespace, 'legacy', {
      spec: { controlPlane: { url: 'https://elsewhere.example' } },
    });
    t.is(await answerOf(changed), 422, 'spec.controlPlane cannot be changed');
    // ...but updates that leave it as it was pass, so nothing is trapped; the finalizer can go.
    await connectors(kc).patchSpec(namespace, 'legacy', {
      metadata: { labels: { team: 'a' } },
      spec: { paused: true },
    });
    // The migration docs/install.md gives: drop the field and name a ControlPlane, in one patch.
    await connectors(kc).patchSpec(namespace, 'legacy', {
      spec: { paused: false, controlPlane: null, controlPlaneRef: { name: 'not-yet' } },
    });
    const migrated = await eventually(
      () =>
        connectors(kc)
          .get(namespace, 'legacy')
          .then((c) => (condition(c, 'Stalled')?.reason === 'ControlPlaneConfigInvalid' ? c : undefined)),
      { description: 'now waiting for its ControlPlane' },
    );
    t.is(migrated.spec.controlPlane, undefined);
    // It never reached a control plane, so a missing one does not hold up its deletion.
    await connectors(kc).delete(namespace, 'legacy');
    await eventually(() => isGone(() => connectors(kc).get(namespace, 'legacy')), {
      description: 'deleted, finalizer removed',
    });
    t.is(userServer.requests.length, heardBefore, "the user's server heard nothing");
    assertNoSecrets(t, 'operator log', logs.text(), [DB_PASSWORD]);
  },
);

/**
 * A namespace with the credential Secret (team-admin) and CA ConfigMap (team-ca) of the reference
 * control plane, and the inline spec.controlPlane of an older release that names them.
 */
async function legacyNamespace(prefix: string) {
  const namespace = await createTestNamespace(cluster().kc, prefix);
  await createSecret(
    namespace,
    'team-admin',
    { credential: usableAdminCredential(env.controlPlane) },
    env.controlPlane.url,
  );
  await createConfigMap(namespace, 'team-ca', { 'ca.crt': env.controlPlane.caPem });
  const inline = {
    url: env.controlPlane.url,
    caConfigMapRef: { name: 'team-ca' },
    credentialSecretRef: { name: 'team-admin' },
  };
  return { namespace, inline };
}

/**
 * A Connector stored under the old schema with `inline` (while admitLegacyControlPlane admits it),
 * with a status that says it reached its control plane, written through the status subresource.
 */
async function storeLegacy(
  namespace: string,
  name: string,
  inline: Record<string, unknown>,
  finalizers?: string[],
) {
  const { kc } = cluster();
  const stored = await eventually(
    () =>
      connectors(kc).create(namespace, {
        metadata: { name, namespace, ...(finalizers ? { finalizers } : {}) },
        spec: { ...connectorSpec, controlPlane: inline },
      }),
    { description: 'stored under the old schema' },
  );
  await kc.makeApiClient(CustomObjectsApi).patchNamespacedCustomObjectStatus(
    {
      group: 'vaultpam.io',
      version: 'v1alpha1',
      plural: 'connectors',
      namespace,
      name,
      body: {
        status: {
          connectorId: `${namespace}.${name}`,
          controlPlaneState: 'pending',
          enrollment: { lastMintKey: `${name}-1`, mintCount: 1, retired: false },
        },
      },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  return stored;
}

test.serial(
  'a Connector that paired through spec.controlPlane moves to a ControlPlane in one patch, keeps its record there and releases it on deletion',
  async (t) => {
    const { kc } = cluster();
    const { namespace, inline } = await legacyNamespace('legacy-paired');
    // The older release: its operator (stopped here) paired the Connector through the inline spec.
    await operator.stop();
    let restarted = false;
    t.teardown(async () => {
      if (!restarted) operator = await env.startOperator();
    });
    const restore = await admitLegacyControlPlane(t);
    const refused = (request: Promise<unknown>) =>
      request.then(
        () => 'accepted',
        (e: { code?: number; body?: unknown }) => `${e.code}: ${String(e.body)}`,
      );
    const uid = (await storeLegacy(namespace, 'paired', inline)).metadata.uid ?? '';
    const id = `${namespace}.paired`;
    // What that operator left on the control plane: the record, owned by this Connector, with a live token.
    await env.admin.ensureConnector(
      id,
      { ...connectorSpec.connector, allowedNetworks: [] },
      { ownerUid: uid, ownerNamespace: namespace },
    );
    await env.admin.mintToken(id, { idempotencyKey: 'paired-1', ownerUid: uid });
    await storeLegacy(namespace, 'split', inline);
    await restore(namespace, { ...connectorSpec, controlPlane: inline });

    // The exception is the update that removes the inline spec: removed alone (allowed, it leaves the
    // reference as it was), the Connector has reached a control plane and names none, so naming one
    // afterwards is refused as for any other. (No operator has seen it: it goes without a finalizer.)
    await connectors(kc).patchSpec(namespace, 'split', { spec: { controlPlane: null } });
    t.regex(
      await refused(
        connectors(kc).patchSpec(namespace, 'split', { spec: { controlPlaneRef: { name: 'team' } } }),
      ),
      /^422: .*spec\.controlPlaneRef cannot be added, changed or removed once the connector has reached its control plane/,
    );
    await connectors(kc).delete(namespace, 'split');
    await eventually(() => isGone(() => connectors(kc).get(namespace, 'split')), {
      description: 'split gone',
    });

    // The new operator: refuses the inline spec and keeps what the status says was reached.
    operator = await env.startOperator();
    restarted = true;
    const invalid = await eventually(
      () =>
        connectors(kc)
          .get(namespace, 'paired')
          .then((c) => (condition(c, 'Stalled')?.reason === 'InvalidSpec' ? c : undefined)),
      { description: 'the new operator refuses the inline spec' },
    );
    t.is(invalid.status?.controlPlaneState, 'pending');
    t.is(invalid.status?.enrollment?.lastMintKey, 'paired-1');

    // A ControlPlane with the URL, CA and credential the inline spec named, and the documented patch.
    await controlPlaneResources(kc).create(namespace, 'team', inline);
    // The reference alone cannot be added while the inline spec stays (the connector reached it).
    t.regex(
      await refused(
        connectors(kc).patchSpec(namespace, 'paired', { spec: { controlPlaneRef: { name: 'team' } } }),
      ),
      /^422: .*spec\.controlPlaneRef cannot be added, changed or removed once the connector has reached its control plane/,
    );
    await connectors(kc).patchSpec(namespace, 'paired', {
      spec: { controlPlane: null, controlPlaneRef: { name: 'team' } },
    });
    const migrated = await eventually(
      () =>
        connectors(kc)
          .get(namespace, 'paired')
          .then((c) =>
            c.status?.observedGeneration === c.metadata.generation && !condition(c, 'Stalled')
              ? c
              : undefined,
          ),
      { description: 'the operator carries on with the ControlPlane' },
    );
    t.is(migrated.spec.controlPlane, undefined);
    t.is(migrated.status?.connectorId, id);
    t.is((await env.admin.getConnector(id)).ownerUid, uid, "the same record, still this Connector's");

    // From now on the reference is fixed, as for every connector that reached its control plane, and
    // the inline spec cannot come back to open the way again.
    await controlPlaneResources(kc).create(namespace, 'other', inline);
    t.regex(
      await refused(
        connectors(kc).patchSpec(namespace, 'paired', { spec: { controlPlaneRef: { name: 'other' } } }),
      ),
      /^422: .*spec\.controlPlaneRef cannot be added, changed or removed/,
    );
    t.regex(
      await refused(
        connectors(kc).patchSpec(namespace, 'paired', {
          spec: { controlPlane: inline, controlPlaneRef: { name: 'other' } },
        }),
      ),
      /^422: .*spec\.controlPlane was removed/,
    );
    t.regex(
      await refused(connectors(kc).patchSpec(namespace, 'paired', { spec: { controlPlaneRef: null } })),
      /^422: .*spec\.controlPlaneRef cannot be added, changed or removed/,
    );

    // Deleting it revokes the token and releases the record on the control plane it paired with.
    await connectors(kc).delete(namespace, 'paired');
    await eventually(() => isGone(() => connectors(kc).get(namespace, 'paired')), {
      description: 'deleted, finalizer removed',
    });
    const record = await env.admin.getConnector(id).then(
      () => 'still there',
      (e: { code?: string }) => e.code,
    );
    t.is(record, 'CONNECTOR_NOT_FOUND', 'released on the control plane it paired with');
  },
);

test.serial(
  'a Connector migrated from spec.controlPlane to a ControlPlane that never became Ready: its deletion names the control plane its record is on',
  async (t) => {
    // The reproduction of an outsider review: the ReleaseAbandoned note said the record was left
    // "in ControlPlane <ns>/elsewhere", a control plane this Connector never reached; the record is
    // where the removed spec.controlPlane registered it.
    const { kc } = cluster();
    const { namespace, inline } = await legacyNamespace('legacy-never-ready');
    // The older release: its operator (stopped here) paired the Connector through the inline spec.
    await operator.stop();
    t.teardown(async () => {
      await operator.stop();
      operator = await env.startOperator();
    });
    const restore = await admitLegacyControlPlane(t);
    const stored = await storeLegacy(namespace, 'moved', inline, [FINALIZER]);
    const uid = stored.metadata.uid ?? '';
    const id = `${namespace}.moved`;
    await env.admin.ensureConnector(
      id,
      { ...connectorSpec.connector, allowedNetworks: [] },
      { ownerUid: uid, ownerNamespace: namespace },
    );
    await env.admin.mintToken(id, { idempotencyKey: 'moved-1', ownerUid: uid });
    // The ConfigMap that operator applied: the agent's configuration, the inline URL and CA with it.
    const configMap = desiredConfigMap(stored, defaultedSpec({ ...stored, spec: connectorSpec }), {
      url: env.controlPlane.url,
      caPem: env.controlPlane.caPem,
    });
    await kc
      .makeApiClient(CoreV1Api)
      .patchNamespacedConfigMap(
        { namespace, name: 'moved-config', body: configMap, fieldManager: FIELD_MANAGER, force: true },
        setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
      );
    await restore(namespace, { ...connectorSpec, controlPlane: inline });

    // Migrated in the documented patch, to a ControlPlane with another URL that never becomes Ready
    // (its credential Secret does not exist).
    await controlPlaneResources(kc).create(namespace, 'elsewhere', {
      url: 'https://elsewhere.invalid',
      credentialSecretRef: { name: 'never-created' },
    });
    await connectors(kc).patchSpec(namespace, 'moved', {
      spec: { controlPlane: null, controlPlaneRef: { name: 'elsewhere' } },
    });
    operator = await env.startOperator({ releaseTimeoutMs: 3_000 });
    await eventually(
      () =>
        connectors(kc)
          .get(namespace, 'moved')
          .then((c) => condition(c, 'Stalled')?.reason === 'ControlPlaneConfigInvalid'),
      { description: 'waiting for its ControlPlane' },
    );

    await connectors(kc).delete(namespace, 'moved');
    await eventually(() => isGone(() => connectors(kc).get(namespace, 'moved')), {
      description: 'gone after the release timeout',
    });
    const note = await eventually(
      () =>
        kc
          .makeApiClient(EventsV1Api)
          .listNamespacedEvent({ namespace })
          .then(
            (list) =>
              list.items.find((e) => e.regarding?.name === 'moved' && e.reason === 'ReleaseAbandoned')?.note,
          ),
      { description: 'the ReleaseAbandoned Event' },
    );
    t.true(
      note.includes(`the control-plane record of ${id} at ${env.controlPlane.url}`) ||
        note.includes(`The control-plane record of ${id} at ${env.controlPlane.url}`),
      note,
    );
    t.false(note.includes(`${id} in ControlPlane ${namespace}/elsewhere`), note);
    t.is(
      (await env.admin.getConnector(id)).ownerUid,
      uid,
      'the record is left where it is, as the note says',
    );
    t.true(note.includes(`names https://elsewhere.invalid`), note);
  },
);

test.serial(
  'a ControlPlane URL with a user name or password is refused at admission (kubectl get would show it)',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'cp-userinfo');
    const error = await t.throwsAsync(() =>
      controlPlaneResources(kc).create(namespace, 'leaky', {
        url: 'https://admin:hunter2@127.0.0.1:8443',
        credentialSecretRef: { name: 'cp-admin' },
      }),
    );
    const body = String((error as { body?: unknown }).body ?? '');
    t.is((error as { code?: number }).code, 422);
    t.regex(body, /spec.url must not carry a user name or password/);
  },
);

test.serial(
  'a ControlPlane URL with a query or fragment is refused at admission (the operator and the agent would read it differently)',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'cp-query');
    for (const url of ['https://127.0.0.1:8443/p?x=1', 'https://127.0.0.1:8443/p#f']) {
      const error = await t.throwsAsync(() =>
        controlPlaneResources(kc).create(namespace, 'queried', {
          url,
          credentialSecretRef: { name: 'cp-admin' },
        }),
      );
      t.is((error as { code?: number }).code, 422, url);
      t.regex(
        String((error as { body?: unknown }).body ?? ''),
        /spec.url must not carry a query or fragment/,
      );
    }
    const withPath = await controlPlaneResources(kc).create(namespace, 'pathed', {
      url: 'https://127.0.0.1:8443/vaultpam',
      credentialSecretRef: { name: 'cp-admin' },
    });
    t.truthy(withPath, 'a path is fine');
  },
);
