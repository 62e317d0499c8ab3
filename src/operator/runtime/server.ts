// The operator's two listeners. The caller decides where each listens.
//
// The probe server (plain HTTP, no authentication: kubelet probes it without credentials, and what
// it says, alive or not, ready or not, names no tenant):
// /healthz (liveness): the process answers and no informer is wedged, i.e. none has been failing
//   without a single successful list or watch for longer than `wedgedAfterMs`. Restarting the pod is
//   the remedy of last resort for a watch that cannot recover on its own (a stale credential, a
//   broken connection pool); ordinary blips are handled by the informer's own restarts.
// /readyz (readiness): the leader is ready once every informer has synced its first list. A replica
//   that is not the leader answers 200 "standby": it is healthy and ready to take over. Reporting it
//   unready would gain nothing (the operator serves no traffic through a Service) and would keep a
//   multi-replica Deployment from ever becoming fully available, stalling rollouts.
//
// The metrics server: /metrics, the operator's Prometheus registry. It names every tenant's
// Connectors (namespace, name, phase, Stalled reason), so it is served over HTTPS and each request
// needs a bearer token the API server authenticates and authorizes for `get` on /metrics
// (metrics-auth.ts). Without an authorizer it is plain HTTP for anyone: --metrics-auth=none, for a
// local run on a loopback address only.
//
// Both listeners are reachable by any pod, before it has proved anything, so both bound what a
// caller (a remote address) may hold (lib/connection-limits.ts, LISTENER_LIMITS and
// PROBE_LISTENER_LIMITS): without the bounds 3,000 half-sent
// TLS requests from one pod added about 183 MiB to the operator and stayed open, and one held the
// operator's stop.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import {
  ConnectionLimits,
  closeServer,
  connectionsTheDescriptorsAllow,
  deadlineOptions,
  processLimitsText,
} from '../../lib/connection-limits.ts';
import { errorMessage } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import type { InformerStatus } from './informers.ts';
import type { OperatorMetrics } from './metrics.ts';
import type { MetricsAccess, MetricsAuthorizer } from './metrics-auth.ts';

export interface HealthSource {
  /** Statuses of every informer the process runs (controller informers, the credential source). */
  informers(): InformerStatus[];
  /** Omit when leader election is off: the single replica always acts. */
  isLeader?(): boolean;
}

export interface RuntimeServerOptions {
  health: HealthSource;
  logger: Logger;
  /** An informer failing continuously for longer than this fails /healthz. Default 5 minutes. */
  wedgedAfterMs?: number;
  /** PROBE_LISTENER_LIMITS unless tests say otherwise. */
  limits?: Partial<ListenerLimits>;
}

export interface ListenerLimits {
  /**
   * Connections one remote address may hold at once. Counted by the whole address, IPv6 too: an
   * IPv6 pod network puts many pods in one /64 (lib/connection-limits.ts, AddressGrouping).
   */
  perAddress: number;
  /** Connections held at once in all; Node refuses more. */
  total: number;
  /** The TLS handshake, and then the first request's headers, within this long. */
  firstWordsMs: number;
  /** A whole request (not its answer) within this long. */
  requestMs: number;
}

/**
 * The bounds of the metrics listener. Who asks it legitimately holds a connection or two: Prometheus
 * scrapes from its pod's address every 30 s, a GET with a few headers. So 8 connections per address
 * leave room for a Prometheus pair behind one address; 256 in all hold at most about 19 MiB of TLS
 * state (about 75 KiB each); 10 s for the handshake and the headers, and 15 s for a request, are
 * generous for a GET with no body, and a scraper's own timeout (Prometheus' default: 10 s) is
 * shorter anyway.
 */
export const LISTENER_LIMITS: ListenerLimits = {
  perAddress: 8,
  total: 256,
  firstWordsMs: 10_000,
  requestMs: 15_000,
};

/**
 * The bounds of the probe listener, with more room than the metrics listener's, since a probe that
 * finds no room fails liveness and restarts the operator. The kubelet probes from its node's
 * address, which every hostNetwork pod of that node shares: 32 per address leave those pods room
 * beside the kubelet's one or two (a per-address bound is kept all the same: without one, a single
 * pod could hold every slot). The listener is plain HTTP, with no TLS state: a half-sent request
 * holds under 18.5 KiB (measured with both ends in one process), so 2,048 in all hold under 37 MiB
 * of the 512 MiB limit, and take 64 addresses at their bound to fill (256 took 32).
 */
export const PROBE_LISTENER_LIMITS: ListenerLimits = {
  ...LISTENER_LIMITS,
  perAddress: 32,
  total: 2_048,
};
/**
 * Each of the two listeners holds at most this share of the connections the open-file limit leaves
 * room for (both together, half): the rest is the operator's own connections (the API server, its
 * watches, the control planes). Where the limit is generous (containerd's default is 1,048,576) the
 * listeners' own totals bind; where it is low (1,024) an attacker filling the listeners would
 * otherwise leave the operator no descriptor for its own work.
 */
const DESCRIPTOR_SHARE_PER_LISTENER = 4;

/** A listener's total, fitted below its share of what the open-file limit (`limitsText`) allows. */
export function listenerTotal(total: number, limitsText: string | undefined): number {
  const allowed = connectionsTheDescriptorsAllow(limitsText);
  if (allowed === undefined) return total;
  return Math.max(1, Math.min(total, Math.floor(allowed / DESCRIPTOR_SHARE_PER_LISTENER)));
}

/** How often Node checks the headers and request deadlines (its default, 30 s, adds up to that). */
const DEADLINE_CHECK_EVERY_MS = 1_000;
/** At stop, connections still open this long after the listener closed are cut. */
export const CLOSE_GRACE_MS = 2_000;

/** A listener of the operator's: a server bound as LISTENER_LIMITS says, and how to stop it. */
export interface BoundedServer<S extends Server | HttpsServer = Server | HttpsServer> {
  server: S;
  /** Stops accepting; resolves once every connection is gone (cut after CLOSE_GRACE_MS). */
  close(): Promise<void>;
}

/**
 * `create(options)` with the deadlines of `limits` in its options, the connection bounds attached,
 * and the request handler telling the bounds that a connection spoke.
 */
function bounded<S extends Server | HttpsServer>(
  name: string,
  logger: Logger,
  defaults: ListenerLimits,
  asked: Partial<ListenerLimits> | undefined,
  handler: (request: IncomingMessage, response: ServerResponse) => void,
  create: (
    deadlines: ReturnType<typeof deadlineOptions>,
    listener: (request: IncomingMessage, response: ServerResponse) => void,
  ) => S,
): BoundedServer<S> {
  const wanted = { ...defaults, ...asked };
  const limits = { ...wanted, total: listenerTotal(wanted.total, processLimitsText()) };
  const connections = new ConnectionLimits({
    perAddress: Math.min(limits.perAddress, limits.total),
    grouping: 'address',
    total: limits.total,
    logger,
    serverName: name,
    firstRequestWithinMs: limits.firstWordsMs,
  });
  const server = create(
    deadlineOptions({
      firstWordsMs: limits.firstWordsMs,
      requestMs: limits.requestMs,
      checkEveryMs: DEADLINE_CHECK_EVERY_MS,
    }),
    (request, response) => {
      connections.requested(request.socket);
      handler(request, response);
    },
  );
  connections.attach(server);
  return {
    server,
    close: () => closeServer(server, { graceMs: CLOSE_GRACE_MS, limits: connections }),
  };
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

function refuseMethod(request: IncomingMessage, response: ServerResponse, head: boolean): boolean {
  if (request.method === 'GET' || head) return false;
  response.setHeader('allow', 'GET, HEAD');
  sendJson(
    response,
    405,
    { code: 'METHOD_NOT_ALLOWED', message: `${request.method} is not supported; use GET` },
    head,
  );
  return true;
}

/** Runs `handle`; a request it failed is answered 500 and logged (its URL, never its headers). */
function serving(
  logger: Logger,
  handle: (request: IncomingMessage, response: ServerResponse) => Promise<void>,
): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    handle(request, response).catch((error: unknown) => {
      logger.error({ path: request.url, err: errorMessage(error) }, 'runtime server request failed');
      if (!response.headersSent)
        sendJson(response, 500, { code: 'INTERNAL', message: 'internal error' }, false);
      else response.destroy();
    });
  };
}

/** The probe server: /healthz (/livez) and /readyz, plain HTTP, no authentication. */
export function createRuntimeServer(options: RuntimeServerOptions): BoundedServer<Server> {
  const wedgedAfterMs = options.wedgedAfterMs ?? DEFAULT_WEDGED_AFTER_MS;

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    const head = request.method === 'HEAD';
    if (refuseMethod(request, response, head)) return;
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
      sendJson(
        response,
        404,
        {
          code: 'NOT_FOUND',
          message:
            '/metrics is served on the metrics listener (--metrics-listen, HTTPS with a bearer token), not with the probes',
        },
        head,
      );
      return;
    }
    sendJson(
      response,
      404,
      { code: 'NOT_FOUND', message: `no such path ${path}; try /healthz or /readyz` },
      head,
    );
  }

  return bounded(
    'the probe listener',
    options.logger,
    PROBE_LISTENER_LIMITS,
    options.limits,
    serving(options.logger, handle),
    (deadlines, listener) => createServer(deadlines, listener),
  );
}

export interface MetricsServerOptions {
  metrics: OperatorMetrics;
  logger: Logger;
  /**
   * Who may read /metrics (metrics-auth.ts); the server is HTTPS with `tls`. Omitted: plain HTTP
   * for anyone (--metrics-auth=none).
   */
  auth?: { authorizer: Pick<MetricsAuthorizer, 'authorize'>; tls: { certPem: string; keyPem: string } };
  /** LISTENER_LIMITS unless tests say otherwise. */
  limits?: Partial<ListenerLimits>;
}

/** What a refused request is answered: the status and the body (which never repeats the token). */
function refusal(access: Exclude<MetricsAccess, { decision: 'allowed' }>): {
  status: number;
  code: string;
  message: string;
} {
  switch (access.decision) {
    case 'unauthenticated':
      return {
        status: 401,
        code: 'UNAUTHENTICATED',
        message: `${access.reason}: send Authorization: Bearer <a ServiceAccount token>`,
      };
    case 'forbidden':
      return {
        status: 403,
        code: 'FORBIDDEN',
        message: `${access.user} may not get /metrics; bind the ClusterRole vaultpam-connector-operator-metrics-reader to it`,
      };
    case 'busy':
      return { status: 429, code: 'TOO_MANY_REVIEWS', message: 'too many tokens under review; try again' };
    case 'unavailable':
      return {
        status: 503,
        code: 'AUTHORIZATION_UNAVAILABLE',
        message: 'the API server could not be asked who may read /metrics; try again',
      };
  }
}

/**
 * The metrics server: /metrics only. With `auth`, HTTPS (node:https, so the caller may swap the
 * certificate with setSecureContext) and every request authorized first; without it plain HTTP.
 */
export function createMetricsServer(options: MetricsServerOptions): BoundedServer {
  const { registry } = options.metrics;
  const { auth } = options;

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const head = request.method === 'HEAD';
    if (path !== '/metrics') {
      sendJson(response, 404, { code: 'NOT_FOUND', message: `no such path ${path}; try /metrics` }, head);
      return;
    }
    if (auth) {
      // Before the method is looked at and before name[] is read: who is not allowed learns only
      // that /metrics exists (any other path was answered 404 above), not which methods or metric
      // names it takes.
      const access = await auth.authorizer.authorize(
        request.headers.authorization,
        request.socket.remoteAddress,
      );
      if (access.decision !== 'allowed') {
        const { status, code, message } = refusal(access);
        if (status === 401)
          response.setHeader('www-authenticate', 'Bearer realm="vaultpam-connector-operator"');
        if (status === 429 || status === 503) response.setHeader('retry-after', '1');
        sendJson(response, status, { code, message }, head);
        return;
      }
    }
    if (refuseMethod(request, response, head)) return;
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
  }

  return bounded(
    'the metrics listener',
    options.logger,
    LISTENER_LIMITS,
    options.limits,
    serving(options.logger, handle),
    (deadlines, listener) =>
      auth
        ? createHttpsServer({ cert: auth.tls.certPem, key: auth.tls.keyPem, ...deadlines }, listener)
        : createServer(deadlines, listener),
  );
}
