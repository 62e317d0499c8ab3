// Local probes for the kubelet: /healthz says the process is alive, /readyz says the control plane
// accepted a heartbeat recently (readiness.ts has the rule).
import { createServer, type Server } from 'node:http';
import { listenOn, urlHost } from '../lib/host-port.ts';
import type { Readiness } from './readiness.ts';

export interface HealthServer {
  url: string;
  close(): Promise<void>;
}

export async function startHealthServer(options: {
  host: string;
  port: number;
  readiness: () => Readiness;
}): Promise<HealthServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const send = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      response.end(JSON.stringify(body));
    };
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      send(405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'use GET' } });
    } else if (path === '/healthz') {
      send(200, { status: 'ok' });
    } else if (path === '/readyz') {
      const readiness = options.readiness();
      send(readiness.ready ? 200 : 503, { status: readiness.ready ? 'ready' : 'not ready', ...readiness });
    } else {
      send(404, { error: { code: 'NOT_FOUND', message: 'probes are /healthz and /readyz' } });
    }
  });
  server.keepAliveTimeout = 5000;
  const address = await listenOn(server, options);
  // Idempotent: a signal handler and the main flow may both close it.
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost(address.host)}:${address.port}`,
    close: () => {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
