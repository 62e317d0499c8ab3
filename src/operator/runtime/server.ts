// The operator's probe and metrics endpoint (plain HTTP: it serves no secrets and kubelet probes
// and Prometheus scrape it inside the cluster). The caller decides where it listens.
//
// /healthz (liveness): the process answers and no informer is wedged, i.e. none has been failing
//   without a single successful list or watch for longer than `wedgedAfterMs`. Restarting the pod is
//   the remedy of last resort for a watch that cannot recover on its own (a stale credential, a
//   broken connection pool); ordinary blips are handled by the informer's own restarts.
// /readyz (readiness): the leader is ready once every informer has synced its first list. A replica
//   that is not the leader answers 200 "standby": it is healthy and ready to take over. Reporting it
//   unready would gain nothing (the operator serves no traffic through a Service) and would keep a
//   multi-replica Deployment from ever becoming fully available, stalling rollouts.
// /metrics: the operator's Prometheus registry.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { errorMessage } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import type { InformerStatus } from './informers.ts';
import type { OperatorMetrics } from './metrics.ts';

export interface HealthSource {
  /** Statuses of every informer the process runs (controller informers, the credential source). */
  informers(): InformerStatus[];
  /** Omit when leader election is off: the single replica always acts. */
  isLeader?(): boolean;
}

export interface RuntimeServerOptions {
  metrics: OperatorMetrics;
  health: HealthSource;
  logger: Logger;
  /** An informer failing continuously for longer than this fails /healthz. Default 5 minutes. */
  wedgedAfterMs?: number;
}

export const DEFAULT_WEDGED_AFTER_MS = 5 * 60 * 1000;

export interface ProbeResult {
  ok: boolean;
  status: 'alive' | 'wedged' | 'ready' | 'standby' | 'not-ready';
  informers: InformerStatus[];
}

export function checkLiveness(informers: InformerStatus[], wedgedAfterMs: number): ProbeResult {
  const wedged = informers.some((informer) => informer.failingForMs > wedgedAfterMs);
  return { ok: !wedged, status: wedged ? 'wedged' : 'alive', informers };
}

export function checkReadiness(informers: InformerStatus[], isLeader: boolean | undefined): ProbeResult {
  if (isLeader === false) return { ok: true, status: 'standby', informers };
  const synced = informers.every((informer) => informer.synced);
  return { ok: synced, status: synced ? 'ready' : 'not-ready', informers };
}

function sendJson(response: ServerResponse, statusCode: number, body: unknown, head: boolean): void {
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(statusCode, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  response.end(head ? undefined : text);
}

export function createRuntimeServer(options: RuntimeServerOptions): Server {
  const wedgedAfterMs = options.wedgedAfterMs ?? DEFAULT_WEDGED_AFTER_MS;
  const { registry } = options.metrics;

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const head = request.method === 'HEAD';
    if (request.method !== 'GET' && !head) {
      response.setHeader('allow', 'GET, HEAD');
      sendJson(
        response,
        405,
        { code: 'METHOD_NOT_ALLOWED', message: `${request.method} is not supported; use GET` },
        head,
      );
      return;
    }
    if (path === '/healthz' || path === '/livez') {
      const result = checkLiveness(options.health.informers(), wedgedAfterMs);
      sendJson(response, result.ok ? 200 : 503, result, head);
      return;
    }
    if (path === '/readyz') {
      const result = checkReadiness(options.health.informers(), options.health.isLeader?.());
      sendJson(response, result.ok ? 200 : 503, result, head);
      return;
    }
    if (path === '/metrics') {
      // Each name once: a metric repeated would repeat its TYPE line, which no scraper accepts.
      const names = [...new Set(url.searchParams.getAll('name[]'))];
      const unknown = names.filter((name) => registry.getSingleMetric(name) === undefined);
      if (unknown.length > 0) {
        sendJson(
          response,
          400,
          {
            code: 'UNKNOWN_METRIC',
            message: `no metric ${unknown.join(', ')} (name[]); the names are those of the metrics table in docs/operator-runtime.md, or leave name[] out for all`,
          },
          head,
        );
        return;
      }
      // name[] (repeatable) limits the answer to those metrics, as node_exporter's collect[] does: a
      // poller that wants one counter does not pay for every Connector's series.
      const text =
        names.length === 0
          ? await registry.metrics()
          : `${(await Promise.all(names.map((name) => registry.getSingleMetricAsString(name)))).join('\n')}\n`;
      response.writeHead(200, {
        'content-type': registry.contentType,
        'content-length': Buffer.byteLength(text),
      });
      response.end(head ? undefined : text);
      return;
    }
    sendJson(
      response,
      404,
      { code: 'NOT_FOUND', message: `no such path ${path}; try /healthz, /readyz or /metrics` },
      head,
    );
  }

  return createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      options.logger.error({ path: request.url, err: errorMessage(error) }, 'runtime server request failed');
      if (!response.headersSent)
        sendJson(response, 500, { code: 'INTERNAL', message: 'internal error' }, false);
      else response.destroy();
    });
  });
}
