// The operator's own Kubernetes client (src/operator/runtime/kube-*.ts) against a real
// kube-apiserver: credentials from kubeconfig files (a client certificate in files, a named
// context, TLS verification, tls-server-name, insecure-skip-tls-verify), a token file that rotates,
// a pod's ServiceAccount directory, an exec plugin served through client-node; error answers with
// their status and Status; the four patch types; watches (events, the server's end, abort, 410 Gone).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type V1ConfigMap } from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import * as yaml from 'js-yaml';
import { FakeClock } from '../../src/lib/clock.ts';
import { describeApiError } from '../../src/operator/runtime/api-errors.ts';
import { writeError } from '../../src/operator/runtime/apply.ts';
import { kubeClientOf, loadKubeClient } from '../../src/operator/runtime/kube-access.ts';
import type { KubeClient } from '../../src/operator/runtime/kube-client.ts';
import { KubeApiError } from '../../src/operator/runtime/kube-errors.ts';
import { RESOURCE_TYPES } from '../../src/operator/runtime/resources.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';

const cluster = useCluster(test);
const ADMIN = 'vaultpam-test-admin';

/** The admin kubeconfig's server, CA, client certificate and key, as PEM. */
async function adminMaterial(): Promise<{ server: string; caPem: string; certPem: string; keyPem: string }> {
  const config = yaml.load(await readFile(cluster().cluster.kubeconfigPath, 'utf8')) as {
    clusters: Array<{ cluster: Record<string, string> }>;
    users: Array<{ user: Record<string, string> }>;
  };
  const pem = (base64: string | undefined) => Buffer.from(base64 ?? '', 'base64').toString('utf8');
  return {
    server: cluster().cluster.server,
    caPem: pem(config.clusters[0]?.cluster['certificate-authority-data']),
    certPem: pem(config.users[0]?.user['client-certificate-data']),
    keyPem: pem(config.users[0]?.user['client-key-data']),
  };
}

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kube-client-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function writeKubeconfig(dir: string, document: object): Promise<string> {
  const path = join(dir, 'kubeconfig');
  await writeFile(path, yaml.dump(document), { mode: 0o600 });
  return path;
}

/** Who the API server says the client is (SelfSubjectReview). */
async function whoami(kube: KubeClient): Promise<string> {
  const review = await kube.request<{ status?: { userInfo?: { username?: string } } }>({
    method: 'POST',
    path: '/apis/authentication.k8s.io/v1/selfsubjectreviews',
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
  });
  return review.status?.userInfo?.username ?? '';
}

/** A ServiceAccount (created if needed) and a fresh token for it from the TokenRequest API. */
async function serviceAccountToken(namespace: string, name: string): Promise<string> {
  const core = cluster().kc.makeApiClient(CoreV1Api);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } }).catch((error) => {
    if ((error as { code?: number }).code !== 409) throw error;
  });
  const request = await core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  return request.status?.token ?? '';
}

const contextOf = (name: string, cluster: object, user: object) => ({
  clusters: [{ name, cluster }],
  users: [{ name, user }],
  contexts: [{ name, context: { cluster: name, user: name } }],
});

test('a kubeconfig with a client certificate in files relative to it, and a named context', async (t) => {
  const admin = await adminMaterial();
  const dir = await tempDir(t);
  await writeFile(join(dir, 'ca.crt'), admin.caPem);
  await writeFile(join(dir, 'admin.crt'), admin.certPem);
  await writeFile(join(dir, 'admin.key'), admin.keyPem, { mode: 0o600 });
  const files = contextOf(
    'files',
    { server: admin.server, 'certificate-authority': 'ca.crt' },
    { 'client-certificate': 'admin.crt', 'client-key': 'admin.key' },
  );
  const elsewhere = contextOf(
    'elsewhere',
    { server: 'https://127.0.0.1:1', 'insecure-skip-tls-verify': true },
    {},
  );
  const path = await writeKubeconfig(dir, {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [...files.clusters, ...elsewhere.clusters],
    users: [...files.users, ...elsewhere.users],
    contexts: [...files.contexts, ...elsewhere.contexts],
    'current-context': 'elsewhere',
  });

  const named = await loadKubeClient({ kubeconfig: path, context: 'files', env: {} });
  t.is(await whoami(named), ADMIN, 'the client certificate from the files authenticates');
  t.regex(named.description, /context files, served by the operator's own client/);
  const current = await loadKubeClient({ kubeconfig: path, env: {} });
  t.is(current.server.port, '1', 'without a name, the current-context is used');

  // The same certificate as -data fields, from the client-node KubeConfig the tests hold.
  t.is(await whoami(kubeClientOf(cluster().kc)), ADMIN);
  t.is(kubeClientOf(cluster().kc), kubeClientOf(cluster().kc), 'one client per KubeConfig');

  await t.throwsAsync(() => loadKubeClient({ kubeconfig: path, context: 'nope', env: {} }), {
    message: /no context named "nope"/,
  });
  await t.throwsAsync(() => loadKubeClient({ kubeconfig: join(dir, 'missing'), env: {} }), {
    message: /cannot read .*missing: ENOENT/,
  });
});

test('TLS: the server is verified against the CA and tls-server-name unless insecure-skip-tls-verify', async (t) => {
  const admin = await adminMaterial();
  const dir = await tempDir(t);
  const token = await serviceAccountToken('default', 'kube-client-tls');
  const load = async (cluster: Record<string, unknown>) =>
    loadKubeClient({
      kubeconfig: await writeKubeconfig(dir, {
        ...contextOf('c', { server: admin.server, ...cluster }, { token }),
        'current-context': 'c',
      }),
      env: {},
    });
  const ca = { 'certificate-authority-data': Buffer.from(admin.caPem).toString('base64') };
  const unverified = await t.throwsAsync(async () => whoami(await load({})));
  t.regex(
    String((unverified as { code?: unknown }).code),
    /CERT|ISSUER|SIGNATURE/,
    'no CA: the system CAs do not vouch for it',
  );
  t.is(
    await whoami(await load({ 'insecure-skip-tls-verify': true })),
    'system:serviceaccount:default:kube-client-tls',
  );
  t.is(
    await whoami(await load({ ...ca, 'tls-server-name': 'kubernetes.default.svc' })),
    'system:serviceaccount:default:kube-client-tls',
  );
  const wrongName = await t.throwsAsync(async () =>
    whoami(await load({ ...ca, 'tls-server-name': 'elsewhere.example' })),
  );
  t.is(
    (wrongName as { code?: unknown }).code,
    'ERR_TLS_CERT_ALTNAME_INVALID',
    'the certificate is checked for tls-server-name',
  );
});

test('a token file is read again when the token in hand is a minute old, and at once after a 401', async (t) => {
  const admin = await adminMaterial();
  const dir = await tempDir(t);
  const namespace = await createTestNamespace(cluster().kc, 'tok');
  const first = await serviceAccountToken(namespace, 'first');
  const second = await serviceAccountToken(namespace, 'second');
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, `${first}\n`);
  const clock = new FakeClock();
  const kube = await loadKubeClient({
    kubeconfig: await writeKubeconfig(dir, {
      ...contextOf(
        'c',
        { server: admin.server, 'certificate-authority-data': Buffer.from(admin.caPem).toString('base64') },
        { tokenFile },
      ),
      'current-context': 'c',
    }),
    env: {},
    clock,
  });
  t.is(await whoami(kube), `system:serviceaccount:${namespace}:first`);

  await writeFile(tokenFile, second);
  t.is(await whoami(kube), `system:serviceaccount:${namespace}:first`, 'a fresh token is not read again');
  clock.advance(60_000);
  t.is(
    await whoami(kube),
    `system:serviceaccount:${namespace}:second`,
    'the rotated token is used a minute on',
  );

  await writeFile(tokenFile, 'not-a-token');
  clock.advance(60_000);
  const refused = await t.throwsAsync(() => whoami(kube));
  t.true(refused instanceof KubeApiError);
  t.is((refused as KubeApiError).code, 401);
  t.false((refused as KubeApiError).message.includes('not-a-token'), 'the token is not in the error');
  await writeFile(tokenFile, first);
  t.is(
    await whoami(kube),
    `system:serviceaccount:${namespace}:first`,
    'after a 401 the file is read at once',
  );
});

test("in a pod: the ServiceAccount's token, CA and namespace, and the API server from the environment", async (t) => {
  const admin = await adminMaterial();
  const namespace = await createTestNamespace(cluster().kc, 'pod');
  const serviceAccountDir = await tempDir(t);
  const home = await tempDir(t);
  await writeFile(join(serviceAccountDir, 'token'), await serviceAccountToken(namespace, 'operator'));
  await writeFile(join(serviceAccountDir, 'ca.crt'), admin.caPem);
  await writeFile(join(serviceAccountDir, 'namespace'), namespace);
  const url = new URL(admin.server);
  const env = { HOME: home, KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port };

  const kube = await loadKubeClient({ env, serviceAccountDir });
  t.is(await whoami(kube), `system:serviceaccount:${namespace}:operator`);
  t.is(kube.namespace, namespace);
  t.regex(kube.description, /^in-cluster/);

  const kubeconfig = cluster().cluster.kubeconfigPath;
  t.is(
    await whoami(await loadKubeClient({ env: { ...env, KUBECONFIG: kubeconfig }, serviceAccountDir })),
    ADMIN,
    'KUBECONFIG comes first',
  );
  await t.throwsAsync(() => loadKubeClient({ env: { HOME: home }, serviceAccountDir }), {
    message: /KUBECONFIG is not set, .* does not exist, and this is not a pod/,
  });
});

test('a kubeconfig with an exec plugin is served through client-node, loaded for it', async (t) => {
  const admin = await adminMaterial();
  const dir = await tempDir(t);
  const token = await serviceAccountToken('default', 'kube-client-exec');
  const plugin = join(dir, 'credential-plugin.mjs');
  await writeFile(
    plugin,
    `process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: ${JSON.stringify(token)} } }));\n`,
  );
  const kube = await loadKubeClient({
    kubeconfig: await writeKubeconfig(dir, {
      ...contextOf(
        'cloud',
        { server: admin.server, 'certificate-authority-data': Buffer.from(admin.caPem).toString('base64') },
        {
          exec: {
            apiVersion: 'client.authentication.k8s.io/v1',
            command: process.execPath,
            args: [plugin],
            interactiveMode: 'Never',
          },
        },
      ),
      'current-context': 'cloud',
    }),
    env: {},
  });
  t.regex(kube.description, /through @kubernetes\/client-node because it uses an exec credential plugin/);
  t.is(await whoami(kube), 'system:serviceaccount:default:kube-client-exec');
});

test("error answers carry the HTTP status and the API server's Status: 404, 409, 422, 403", async (t) => {
  const kube = kubeClientOf(cluster().kc);
  const namespace = await createTestNamespace(cluster().kc, 'err');
  const type = RESOURCE_TYPES.configMap;

  const missing = await t.throwsAsync(() => kube.get(type, { namespace, name: 'nope' }));
  t.true(missing instanceof KubeApiError);
  t.like(missing, { code: 404, temporary: false, body: { reason: 'NotFound' } });
  t.is(describeApiError(missing), 'HTTP 404: configmaps "nope" not found');

  const created = await kube.create<V1ConfigMap>(type, {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'once', namespace },
    data: { a: '1' },
  });
  const again = await t.throwsAsync(() =>
    kube.create<V1ConfigMap>(type, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'once', namespace },
    }),
  );
  t.like(again, { code: 409, body: { reason: 'AlreadyExists' } });
  await kube.replace<V1ConfigMap>(type, { namespace, name: 'once' }, { ...created, data: { a: '2' } });
  const stale = await t.throwsAsync(() =>
    kube.replace<V1ConfigMap>(type, { namespace, name: 'once' }, { ...created, data: { a: '3' } }),
  );
  t.like(stale, { code: 409, body: { reason: 'Conflict' } }, 'a replace from an old resourceVersion');
  const namesake = await t.throwsAsync(() =>
    kube.delete(type, { namespace, name: 'once' }, { preconditions: { uid: 'not-this-one' } }),
  );
  t.like(namesake, { code: 409 }, 'a uid precondition that does not match');

  const invalid = await t.throwsAsync(() =>
    kube.create<V1ConfigMap>(type, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'Not_Valid', namespace },
    }),
  );
  t.like(invalid, { code: 422, body: { reason: 'Invalid' } });
  t.is((invalid as KubeApiError).body?.details?.causes?.[0]?.field, 'metadata.name');
  const asWrite = writeError('create of ConfigMap', invalid);
  t.is(asWrite.code, 'KUBERNETES_INVALID');
  t.deepEqual(
    (asWrite.details?.causes as Array<{ field: string }> | undefined)?.map((c) => c.field),
    ['metadata.name'],
  );

  const token = await serviceAccountToken(namespace, 'nobody');
  const admin = await adminMaterial();
  const dir = await tempDir(t);
  const nobody = await loadKubeClient({
    kubeconfig: await writeKubeconfig(dir, {
      ...contextOf(
        'c',
        { server: admin.server, 'certificate-authority-data': Buffer.from(admin.caPem).toString('base64') },
        { token },
      ),
      'current-context': 'c',
    }),
    env: {},
  });
  const forbidden = await t.throwsAsync(() => nobody.list(type, { namespace }));
  t.like(forbidden, { code: 403, temporary: false, body: { reason: 'Forbidden' } });
  t.false((forbidden as Error).message.includes(token), 'the token is not in the error');
});

test('the four patch types with their content types, server-side apply with a dry run, and delete', async (t) => {
  const kube = kubeClientOf(cluster().kc);
  const namespace = await createTestNamespace(cluster().kc, 'patch');
  const type = RESOURCE_TYPES.configMap;
  const ref = { namespace, name: 'patched' };
  const desired = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'patched', namespace },
    data: { a: '1' },
  };
  const query = { fieldManager: 'kube-client-test', force: true };

  const dryRun = await kube.patch<V1ConfigMap>(type, ref, desired, {
    patch: 'apply',
    query: { ...query, dryRun: 'All' },
  });
  t.deepEqual(dryRun.data, { a: '1' }, 'the dry run answers as if it applied');
  await t.throwsAsync(() => kube.get(type, ref), { instanceOf: KubeApiError, message: /not found/ });

  const applied = await kube.patch<V1ConfigMap>(type, ref, desired, { patch: 'apply', query });
  t.is(applied.metadata?.managedFields?.[0]?.manager, 'kube-client-test');
  t.is(applied.metadata?.managedFields?.[0]?.operation, 'Apply');
  await kube.patch(type, ref, { data: { b: '2' } }, { patch: 'merge' });
  await kube.patch(type, ref, { metadata: { labels: { kind: 'strategic' } } }, { patch: 'strategic' });
  await kube.patch(type, ref, [{ op: 'add', path: '/data/c', value: '3' }], { patch: 'json' });
  const read = await kube.get<V1ConfigMap>(type, ref);
  t.deepEqual(read.data, { a: '1', b: '2', c: '3' });
  t.is(read.metadata?.labels?.kind, 'strategic');
  t.is(typeof read.metadata?.creationTimestamp, 'string', "objects are the API server's JSON");

  await kube.delete(type, ref, {
    propagationPolicy: 'Background',
    preconditions: { uid: read.metadata?.uid ?? '' },
  });
  await t.throwsAsync(() => kube.get(type, ref), { instanceOf: KubeApiError });
});

test('a list is read page by page, and a watch from its version streams events until the server ends it', async (t) => {
  const kube = kubeClientOf(cluster().kc);
  const namespace = await createTestNamespace(cluster().kc, 'watch');
  const type = RESOURCE_TYPES.configMap;
  const make = (name: string) =>
    kube.create<V1ConfigMap>(type, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace } });
  await make('a');
  await make('b');
  const page = await kube.list<V1ConfigMap>(type, {
    namespace,
    fieldSelector: 'metadata.name!=kube-root-ca.crt',
    limit: 1,
  });
  t.is(page.items.length, 1);
  t.truthy(page.metadata?.continue, 'a continue token for the rest');
  const rest = await kube.list<V1ConfigMap>(type, {
    namespace,
    fieldSelector: 'metadata.name!=kube-root-ca.crt',
    limit: 1,
    ...(page.metadata?.continue ? { continue: page.metadata.continue } : {}),
  });
  t.deepEqual(
    [...page.items, ...rest.items].map((cm) => cm.metadata?.name),
    ['a', 'b'],
  );

  const events: string[] = [];
  let ended: { error: Error | undefined } | undefined;
  const from = rest.metadata?.resourceVersion ?? '';
  const watch = await kube.watch(
    type,
    { namespace, resourceVersion: from, timeoutSeconds: 3 },
    {
      onEvent: (kind, object) => events.push(`${kind} ${(object as V1ConfigMap).metadata?.name}`),
      onEnd: (error) => {
        ended = { error };
      },
    },
  );
  t.teardown(() => watch.abort());
  await make('c');
  await kube.patch(type, { namespace, name: 'c' }, { data: { x: '1' } }, { patch: 'merge' });
  await kube.delete(type, { namespace, name: 'a' });
  await eventually(() => events.length === 3, { description: 'three events' });
  t.deepEqual(events, ['ADDED c', 'MODIFIED c', 'DELETED a']);
  await eventually(() => ended, { description: 'the server ends the watch after timeoutSeconds' });
  t.is(ended?.error, undefined, 'a watch the server ended is a clean end');
});

// Serial, so it runs before the others: compacting etcd would expire their continue tokens.
test.serial(
  'an aborted watch reports nothing more, and a version etcd compacted away is 410 Gone',
  async (t) => {
    const kube = kubeClientOf(cluster().kc);
    const namespace = await createTestNamespace(cluster().kc, 'gone');
    const type = RESOURCE_TYPES.configMap;
    const events: string[] = [];
    let endings = 0;
    const watch = await kube.watch(
      type,
      { namespace, resourceVersion: (await kube.list(type, { namespace })).metadata?.resourceVersion ?? '' },
      {
        onEvent: (kind) => events.push(kind),
        onEnd: () => {
          endings += 1;
        },
      },
    );
    await kube.create(type, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'one', namespace } });
    await eventually(() => events.length === 1, { description: 'the first event' });
    watch.abort();
    watch.abort();
    await kube.create(type, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'two', namespace } });
    // The same change reaches a second watch, so the first had its chance to (wrongly) report it.
    const second: string[] = [];
    const control = await kube.watch(
      type,
      { namespace, resourceVersion: '0' },
      {
        onEvent: (_kind, object) => second.push((object as V1ConfigMap).metadata?.name ?? ''),
        onEnd: () => {},
      },
    );
    t.teardown(() => control.abort());
    await eventually(() => second.includes('two'), { description: 'a second watch sees the change' });
    t.deepEqual(events, ['ADDED']);
    t.is(endings, 0, 'abort() ends a watch quietly');

    // Events have no watch cache in the API server, so their watches are served by etcd itself; once
    // etcd compacted its history past a version (as the API server has it do every five minutes), a
    // watch from that version is answered 410 Gone: an ERROR event carrying a Status (what informers
    // relist on), or a refused watch.
    const latest = Number(
      (
        await kube.create<V1ConfigMap>(type, {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: 'three', namespace },
        })
      ).metadata?.resourceVersion,
    );
    const compaction = await fetch(`${cluster().cluster.etcdUrl}/v3/kv/compaction`, {
      method: 'POST',
      body: JSON.stringify({ revision: latest, physical: true }),
    });
    t.is(compaction.status, 200, await compaction.clone().text());
    const gone = await new Promise<{ code?: number; reason?: string }>((resolve, reject) => {
      kube
        .watch(
          RESOURCE_TYPES.event,
          { namespace, resourceVersion: String(latest - 2) },
          {
            onEvent: (kind, object) => {
              if (kind === 'ERROR') resolve(object as { code?: number; reason?: string });
            },
            onEnd: (error) => reject(error ?? new Error('the watch ended without an ERROR event')),
          },
        )
        .then((stream) => t.teardown(() => stream.abort()))
        .catch((error: unknown) =>
          error instanceof KubeApiError
            ? resolve({ code: error.code, ...(error.body?.reason ? { reason: error.body.reason } : {}) })
            : reject(error),
        );
    });
    t.is(gone.code, 410);
    t.is(gone.reason, 'Expired');
  },
);
