// The plugin sends a control-plane resource's credential only where its Secret says it may go (the
// annotation vaultpam.io/control-plane-url), as the operator does: the resource's URL may have been
// written by someone who cannot read the Secret, and the person running the plugin can. The
// default control plane, whose URL the person gives, needs no annotation.
import type { V1Secret } from '@kubernetes/client-node';
import test from 'ava';
import type { ControlPlaneResource } from '../../src/operator/api/control-planes.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import { controlPlaneAccess } from '../../src/plugin/control-plane-access.ts';
import type { KubeApi } from '../../src/plugin/kube-api.ts';

const CREDENTIAL = 'cp-admin-credential-0123456789';

const credentialSecret = (urls?: string): V1Secret => ({
  metadata: {
    name: 'vaultpam-admin',
    ...(urls === undefined ? {} : { annotations: { 'vaultpam.io/control-plane-url': urls } }),
  },
  data: { credential: Buffer.from(CREDENTIAL).toString('base64') },
});

function fakeApi(url: string, secret: V1Secret) {
  const secretReads: string[] = [];
  const api = {
    getControlPlane: async (namespace: string | undefined, name: string): Promise<ControlPlaneResource> => ({
      apiVersion: 'vaultpam.io/v1alpha1',
      kind: namespace === undefined ? 'ClusterControlPlane' : 'ControlPlane',
      metadata: { name, ...(namespace ? { namespace } : {}) },
      spec: { url, credentialSecretRef: { name: 'vaultpam-admin' } },
    }),
    readSecret: async (namespace: string, name: string) => {
      secretReads.push(`${namespace}/${name}`);
      return secret;
    },
    readConfigMap: async () => {
      throw new Error('no CA named');
    },
  } as unknown as KubeApi;
  return { api, secretReads };
}

const connector = (controlPlaneRef?: Connector['spec']['controlPlaneRef']): Connector =>
  ({
    apiVersion: 'vaultpam.io/v1alpha1',
    kind: 'Connector',
    metadata: { namespace: 'team-a', name: 'edge' },
    spec: { connector: { org: 'acme', endpointId: 'ep' }, ...(controlPlaneRef ? { controlPlaneRef } : {}) },
  }) as Connector;

test('a ControlPlane whose Secret does not list its URL gets no client: the plugin says why and how to permit it', async (t) => {
  for (const [name, secret, said] of [
    ['no annotation', credentialSecret(), /has no annotation vaultpam\.io\/control-plane-url/],
    ['another URL', credentialSecret('https://cp.example'), /lists other URLs/],
  ] as const) {
    const { api } = fakeApi('https://attacker.example', secret);
    const access = await controlPlaneAccess({
      api,
      connector: connector({ name: 'vaultpam' }),
      operatorNamespace: 'vaultpam-system',
      defaults: {},
    });
    t.false('client' in access, name);
    const unavailable = 'unavailable' in access ? access.unavailable : '';
    t.regex(unavailable, /^the credential Secret team-a\/vaultpam-admin /, name);
    t.regex(unavailable, said, name);
    t.regex(
      unavailable,
      /so the plugin (sends it nowhere|does not send it there).*kubectl -n team-a annotate secret vaultpam-admin .*vaultpam\.io\/control-plane-url=.*https:\/\/attacker\.example/,
      name,
    );
    t.false(unavailable.includes(CREDENTIAL), name);
  }
});

test('a ClusterControlPlane reads its Secret in the operator namespace, under the same rule', async (t) => {
  const { api, secretReads } = fakeApi('https://attacker.example', credentialSecret());
  const access = await controlPlaneAccess({
    api,
    connector: connector({ kind: 'ClusterControlPlane', name: 'shared' }),
    operatorNamespace: 'vaultpam-system',
    defaults: {},
  });
  t.deepEqual(secretReads, ['vaultpam-system/vaultpam-admin']);
  t.regex(
    'unavailable' in access ? access.unavailable : '',
    /Secret vaultpam-system\/vaultpam-admin does not say/,
  );
});

test('a Secret that lists the URL gives a client; the default control plane needs no annotation', async (t) => {
  const { api } = fakeApi('https://CP.example/', credentialSecret('https://old.example, https://cp.example'));
  const listed = await controlPlaneAccess({
    api,
    connector: connector({ name: 'vaultpam' }),
    operatorNamespace: 'vaultpam-system',
    defaults: {},
  });
  t.true('client' in listed);
  if ('client' in listed) listed.client.close();

  const { api: defaultApi } = fakeApi('https://unused.example', credentialSecret());
  const byFlags = await controlPlaneAccess({
    api: defaultApi,
    connector: connector(),
    operatorNamespace: 'vaultpam-system',
    defaults: {
      url: 'https://cp.example',
      credentialSecret: {
        namespace: 'vaultpam-system',
        name: 'vaultpam-operator-credential',
        key: 'credential',
      },
    },
  });
  t.true('client' in byFlags, 'the person gave the URL');
  if ('client' in byFlags) byFlags.client.close();
});
