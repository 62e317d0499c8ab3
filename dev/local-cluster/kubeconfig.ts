// Kubeconfig files and client-node KubeConfig objects for the local cluster.
import { writeFile } from 'node:fs/promises';
import { KubeConfig } from '@kubernetes/client-node';
import * as yaml from 'js-yaml';
import { reuseConnections } from '../../src/lib/client-node-connections.ts';

export interface ClientCertificateUser {
  kind: 'certificate';
  certPem: string;
  keyPem: string;
}

export interface TokenUser {
  kind: 'token';
  token: string;
}

export type KubeUser = ClientCertificateUser | TokenUser;

const b64 = (text: string) => Buffer.from(text).toString('base64');

/** The kubeconfig document for one server, CA and user, as a plain object. */
export function kubeconfigDocument(options: {
  server: string;
  caPem: string;
  user: KubeUser;
  name?: string;
}) {
  const name = options.name ?? 'vaultpam-local';
  const user =
    options.user.kind === 'certificate'
      ? { 'client-certificate-data': b64(options.user.certPem), 'client-key-data': b64(options.user.keyPem) }
      : { token: options.user.token };
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name, cluster: { server: options.server, 'certificate-authority-data': b64(options.caPem) } },
    ],
    users: [{ name, user }],
    contexts: [{ name, context: { cluster: name, user: name } }],
    'current-context': name,
  };
}

/** Writes a kubeconfig file (mode 0600: it holds credentials). */
export async function writeKubeconfig(
  path: string,
  options: { server: string; caPem: string; user: KubeUser; name?: string },
): Promise<void> {
  await writeFile(path, yaml.dump(kubeconfigDocument(options)), { mode: 0o600 });
}

export function kubeConfigFor(options: {
  server: string;
  caPem: string;
  user: KubeUser;
  name?: string;
}): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(yaml.dump(kubeconfigDocument(options)));
  // client-node's API clients would open a connection and a TLS handshake per request.
  return reuseConnections(kc);
}
