// The kubeconfigs the operator's own client does not serve (an exec credential plugin, an
// auth-provider, a proxy, basic authentication, impersonation: what running the operator out of
// cluster against a cloud cluster usually needs) are served by @kubernetes/client-node, as every
// kubeconfig was before the operator had its own client. client-node is loaded only then, by a
// dynamic import: its generated API surface is most of the memory an operator process would
// otherwise hold (docs/performance.md, "Third increment"), and a pod's ServiceAccount never needs
// it. client-node supplies the credential headers and the connection agent (its exec plugins, token
// refresh and proxy agents); the requests themselves are still the operator's (kube-client.ts).
import type { Agent } from 'node:http';
import type { RequestOptions } from 'node:https';
// Type-only: a caller that already holds a KubeConfig (the tests, the benchmarks) passes it in, and
// a kubeconfig that needs client-node loads it below; nothing here loads it otherwise.
import type { KubeConfig } from '@kubernetes/client-node';
import { CodedError, errorMessage } from '../../lib/errors.ts';
import type { ClientNodeNeeded } from './kube-config.ts';
import type { KubeTransport, RequestCredentials } from './kube-transport.ts';

/** Requests authenticated by a client-node KubeConfig, for the reason given. */
export function clientNodeTransport(kc: KubeConfig, why: string): KubeTransport {
  const cluster = kc.getCurrentCluster();
  if (!cluster) {
    throw new CodedError(
      'KUBECONFIG_INVALID',
      `the kubeconfig's context "${kc.getCurrentContext()}" has no cluster`,
    );
  }
  let server: URL;
  try {
    server = new URL(cluster.server);
  } catch {
    throw new CodedError('KUBECONFIG_INVALID', `the server "${cluster.server}" is not a URL`);
  }
  if (server.protocol !== 'https:') {
    throw new CodedError('KUBECONFIG_INVALID', `the server ${cluster.server} must be https://`);
  }
  return {
    server,
    description: `kubeconfig context ${kc.getCurrentContext()}, served through @kubernetes/client-node because ${why}`,
    namespace: kc.getContextObject(kc.getCurrentContext())?.namespace,
    async credentials(): Promise<RequestCredentials> {
      const options: RequestOptions = { headers: {} };
      // Runs the exec plugin or auth-provider when its credential is missing or expired.
      await kc.applyToHTTPSOptions(options);
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(options.headers ?? {})) {
        if (typeof value === 'string') headers[name.toLowerCase()] = value;
      }
      if (options.auth) headers.authorization = `Basic ${Buffer.from(options.auth).toString('base64')}`;
      const secret = headers.authorization?.replace(/^\S+\s+/, '');
      return {
        // applyToHTTPSOptions always sets one: TLS settings, and the proxy's agent for a proxy-url.
        agent: options.agent as Agent,
        headers,
        secrets: secret ? [secret, headers.authorization ?? ''] : [],
      };
    },
    // client-node keeps an exec plugin's credential until it expires, with no way to drop it early.
    refused: () => false,
  };
}

/** Loads client-node and the kubeconfig it is needed for, and serves requests through it. */
export async function loadThroughClientNode(needed: ClientNodeNeeded): Promise<KubeTransport> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  try {
    const [first, ...more] = needed.files;
    if (first !== undefined) kc.loadFromFile(first);
    for (const file of more) {
      const next = new KubeConfig();
      next.loadFromFile(file);
      // true: the first file's current-context stays, as kubectl merges.
      kc.mergeConfig(next, true);
    }
    kc.setCurrentContext(needed.context);
  } catch (error) {
    throw new CodedError('KUBECONFIG_INVALID', `${needed.source}: ${errorMessage(error)}`);
  }
  return clientNodeTransport(kc, needed.reason);
}
