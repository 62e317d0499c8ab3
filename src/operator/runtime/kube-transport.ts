// What each request to the API server needs besides its path and body: a connection agent (TLS
// settings, kept-alive connections) and the credential headers. The operator's own client gets
// them from a KubeEndpoint (kube-config.ts); a kubeconfig that needs client-node gets them from
// client-node (kube-fallback.ts). Both meet here, so the client (kube-client.ts) has one way to send.
import type { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Clock } from '../../lib/clock.ts';
import type { KubeEndpoint } from './kube-config.ts';
import { TokenFile } from './kube-token.ts';

export interface RequestCredentials {
  agent: Agent;
  headers: Record<string, string>;
  /** Values that must never appear in an error or log (the bearer token sent). */
  secrets: string[];
}

export interface KubeTransport {
  readonly server: URL;
  /** Where the credentials come from and who serves them, for the operator's log. */
  readonly description: string;
  /** The ServiceAccount's or the context's namespace, when known. */
  readonly namespace: string | undefined;
  credentials(): Promise<RequestCredentials>;
  /**
   * The API server answered 401 Unauthorized. Forgets what may have rotated since it was read and
   * says whether sending the request once more may succeed.
   */
  refused(): boolean;
}

export interface EndpointTransportOptions {
  /** How long a token read from a file is used before the file is read again (kube-token.ts). */
  tokenRefreshMs?: number;
  clock?: Clock;
}

export function endpointTransport(
  endpoint: KubeEndpoint,
  options: EndpointTransportOptions = {},
): KubeTransport {
  // One agent for the process: requests reuse kept-alive TLS connections to the API server.
  const agent = new HttpsAgent({
    keepAlive: true,
    ...(endpoint.ca ? { ca: endpoint.ca } : {}),
    ...(endpoint.cert && endpoint.key ? { cert: endpoint.cert, key: endpoint.key } : {}),
    ...(endpoint.tlsServerName ? { servername: endpoint.tlsServerName } : {}),
    rejectUnauthorized: !endpoint.insecureSkipTlsVerify,
  });
  const credential = endpoint.credential;
  const tokenFile =
    credential.kind === 'tokenFile'
      ? new TokenFile(credential.path, {
          ...(options.tokenRefreshMs !== undefined ? { refreshMs: options.tokenRefreshMs } : {}),
          ...(options.clock ? { clock: options.clock } : {}),
        })
      : undefined;
  const bearer = (token: string): RequestCredentials => ({
    agent,
    headers: { authorization: `Bearer ${token}` },
    secrets: [token],
  });
  return {
    server: endpoint.server,
    description: `${endpoint.source}, served by the operator's own client`,
    namespace: endpoint.namespace,
    async credentials() {
      if (tokenFile) return bearer(await tokenFile.current());
      if (credential.kind === 'token') return bearer(credential.token);
      return { agent, headers: {}, secrets: [] };
    },
    refused() {
      if (!tokenFile) return false;
      tokenFile.refused();
      return true;
    },
  };
}
