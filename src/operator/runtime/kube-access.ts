// How the operator's runtime gets its Kubernetes client. The program loads one from its
// environment (loadKubeClient: the pod's ServiceAccount, or KUBECONFIG). Callers that already hold
// a client-node KubeConfig (the tests, the benchmarks, the local run) may pass that instead: its
// kubeconfig is read by the operator's own loader, so they exercise the same client the program
// runs; one only client-node can serve is served through the KubeConfig they hold.
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeClient, type KubeClientOptions } from './kube-client.ts';
import { fromKubeconfigText, type LoadOptions, loadKubeEndpoint } from './kube-config.ts';
import { clientNodeTransport, loadThroughClientNode } from './kube-fallback.ts';
import { type EndpointTransportOptions, endpointTransport } from './kube-transport.ts';

/** What the runtime's parts accept: the operator's client, or a client-node KubeConfig to build one from. */
export type KubeAccess = KubeClient | KubeConfig;

/** One client per KubeConfig, so every part built from it shares one connection pool. */
const clients = new WeakMap<KubeConfig, KubeClient>();

export function kubeClientOf(access: KubeAccess): KubeClient {
  if (access instanceof KubeClient) return access;
  let client = clients.get(access);
  if (!client) {
    // Exported paths are absolute (client-node resolves them when it loads a file).
    const reading = fromKubeconfigText(access.exportConfig(), 'the KubeConfig given', process.cwd());
    client = new KubeClient(
      'endpoint' in reading
        ? endpointTransport(reading.endpoint)
        : clientNodeTransport(access, reading.clientNode.reason),
    );
    clients.set(access, client);
  }
  return client;
}

/**
 * The client for the operator's process, from its environment (kube-config.ts says where it looks).
 * A kubeconfig the operator's client cannot serve alone loads client-node for it (kube-fallback.ts).
 */
export async function loadKubeClient(
  options: LoadOptions & EndpointTransportOptions & KubeClientOptions = {},
): Promise<KubeClient> {
  const reading = loadKubeEndpoint(options);
  const transport =
    'endpoint' in reading
      ? endpointTransport(reading.endpoint, options)
      : await loadThroughClientNode(reading.clientNode);
  return new KubeClient(transport, options);
}
