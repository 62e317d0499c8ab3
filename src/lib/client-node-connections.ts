// One connection pool per credential for @kubernetes/client-node's API clients.
//
// client-node (2.0.1, its newest release) authenticates each request of a `makeApiClient` client
// in `KubeConfig.applySecurityAuthentication`, which builds a new undici Agent every time: the
// request then opens a TCP connection of its own and makes a full TLS handshake with the API server,
// and nothing is ever reused. Its `createAgent` (watches, WebSockets) keeps one agent per cluster
// and user; its dispatchers have no such cache. On the benchmark's two cores, the API server spent
// a tenth of its CPU on these handshakes (docs/performance.md, "Where the API server's time
// goes"). Here the first pool built for a credential is kept, and every later request with that
// credential is sent through it, on its kept-alive connections.
//
// Only a credential whose TLS material is in the kubeconfig (inline or a file, as a client-node
// agent reads it, once) is keyed: an exec plugin or an auth provider may return a new client
// certificate on any request, so their requests keep client-node's own behaviour. The operator does
// not need this: its own client (src/operator/runtime/kube-client.ts) keeps its connections.
import type { KubeConfig, RequestContext } from '@kubernetes/client-node';

type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;

/** Makes `kc`'s API clients reuse one connection pool per credential; returns `kc`. */
export function reuseConnections(kc: KubeConfig): KubeConfig {
  const authenticate = kc.applySecurityAuthentication.bind(kc);
  const pools = new Map<string, Dispatcher>();
  kc.applySecurityAuthentication = async (context: RequestContext) => {
    await authenticate(context);
    const fresh = context.getDispatcher();
    const credential = credentialKey(kc);
    if (!fresh || credential === undefined) return;
    const kept = pools.get(credential);
    if (!kept) {
      pools.set(credential, fresh);
      return;
    }
    context.setDispatcher(kept);
    // Built for this request and never used: it holds no connection.
    void fresh.close();
  };
  return kc;
}

/** What the connection pool of the current context depends on; undefined: not to be kept. */
function credentialKey(kc: KubeConfig): string | undefined {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (!cluster || !user || user.exec || user.authProvider) return undefined;
  return JSON.stringify([
    cluster.name,
    cluster.server,
    cluster.caData,
    cluster.caFile,
    cluster.skipTLSVerify,
    cluster.tlsServerName,
    cluster.proxyUrl,
    user.name,
    user.certData,
    user.certFile,
    user.keyData,
    user.keyFile,
  ]);
}
