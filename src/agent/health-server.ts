// Local probes for the kubelet: /healthz says the process is alive, /readyz says the control plane
// accepted a heartbeat recently (within three intervals, the control plane's own offline rule).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export const READY_WITHIN_INTERVALS = 3;

export interface Readiness {
  ready: boolean;
  lastHeartbeatAt: string | null;
  /**
   * The state as this agent sees it: the control plane's state while heartbeats are accepted in
   * time; once they are not, "not ready" with the state the control plane gave at the last accepted
   * heartbeat and when (that state is no longer confirmed: a 503 never says "online").
   */
  state: string | null;
  /** The control plane's state from the last accepted heartbeat, however old. */
  lastReportedState: string | null;
  detail: string;
}

/** Pure readiness rule: last accepted heartbeat no older than 3 intervals. */
export function readinessAt(
  lastAcceptedAt: Date | undefined,
  intervalMs: number,
  now: Date,
  state: string | undefined,
): Readiness {
  const lastReportedState = state ?? null;
  if (!lastAcceptedAt) {
    return {
      ready: false,
      lastHeartbeatAt: null,
      state: 'not ready (no heartbeat accepted yet)',
      lastReportedState,
      detail: 'no heartbeat accepted yet',
    };
  }
  const age = now.getTime() - lastAcceptedAt.getTime();
  const limit = READY_WITHIN_INTERVALS * intervalMs;
  const lastHeartbeatAt = lastAcceptedAt.toISOString();
  if (age <= limit) {
    return {
      ready: true,
      lastHeartbeatAt,
      state: lastReportedState,
      lastReportedState,
      detail: 'last heartbeat accepted in time',
    };
  }
  return {
    ready: false,
    lastHeartbeatAt,
    state: `not ready (${lastReportedState ?? 'no state'} as of the last accepted heartbeat, ${lastHeartbeatAt})`,
    lastReportedState,
    detail: `last heartbeat accepted ${Math.round(age / 1000)} s ago, more than ${READY_WITHIN_INTERVALS} intervals`,
  };
}

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
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  // Idempotent: a signal handler and the main flow may both close it.
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${address.port}`,
    close: () => {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
