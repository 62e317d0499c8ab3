// Builds the reference control plane (fastify-style build vs listen): createControlPlane() opens the
// data directory (SQLite state, CA, token key, admin credential) and returns an HTTPS server that is
// not yet listening; startControlPlane() also listens. Only src/bin reads flags, environment and
// signals.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { type Clock, systemClock } from '../lib/clock.ts';
import {
  ConnectionLimits,
  closeServer,
  connectionsTheDescriptorsAllow,
  deadlineOptions,
  processLimitsText,
} from '../lib/connection-limits.ts';
import { errorMessage } from '../lib/errors.ts';
import { listenOn, urlHost } from '../lib/host-port.ts';
import { silentLogger } from '../lib/logger.ts';
import { writeFileAtomic } from '../lib/write-file-atomic.ts';
import type { WriteBudgets } from './budgets.ts';
import { cpError } from './errors.ts';
import { AdminAuth, credentialHashLine, isCredentialHash } from './http/auth.ts';
import { answerClientError } from './http/client-error.ts';
import { sendError, sendJson, sendText } from './http/respond.ts';
import { Router } from './http/router.ts';
import { authenticate, ROUTES, type RouteContext, type RouteDefinition } from './http/routes.ts';
import { type ControlPlaneMetrics, createMetrics } from './metrics.ts';
import { issueServingCertificate, loadOrCreateCa } from './pki.ts';
import { ControlPlaneService } from './service.ts';
import { Store } from './store.ts';
import { newTokenKey } from './tokens.ts';

export const DEFAULTS = {
  heartbeatIntervalSeconds: 10,
  offlineAfterIntervals: 3,
  certificateLifetimeSeconds: 24 * 60 * 60,
  sanUriPrefix: 'spiffe://vaultpam.local/connector/',
  serverHostnames: ['localhost', '127.0.0.1'],
  host: '127.0.0.1',
  port: 8443,
  sweepIntervalMs: 1000,
  flushIntervalMs: 5000,
  keepAliveTimeoutSeconds: 2,
  /** Connections of one caller (an IPv4 address or an IPv6 /64) held at once (lib/connection-limits.ts). */
  maxConnectionsPerAddress: 4096,
  /** Connections held at once in all. */
  maxConnections: 32_768,
} as const;

/**
 * How long a connection may take to finish its TLS handshake, and then to send its first request's
 * headers: a connection that says nothing is closed this soon, not after the minute a request may
 * take (an idle connection with no request was held 86 s).
 */
const FIRST_WORDS_TIMEOUT_MS = 10_000;
/** How often Node checks the headers and request deadlines (its default, 30 s, adds up to that). */
const DEADLINE_CHECK_INTERVAL_MS = 1_000;

/**
 * How long a TLS session stays resumable (Node's default is 5 minutes). An agent reconnects for each
 * heartbeat (see keepAliveTimeoutSeconds) and resumes its session from a ticket: no certificate
 * verification and no signature, a fraction of a full handshake's CPU. An hour means one full
 * handshake per agent per hour. Resuming grants nothing the certificate does not: the identity is
 * still the session's certificate, judged against its record and the clock on every request.
 */
const TLS_SESSION_LIFETIME_SECONDS = 3600;

/** Records written per transaction by the periodic heartbeat flush. */
const FLUSH_SLICE = 1000;

/** The agent API's routes (enrollment and the mTLS routes), whose callers come back a heartbeat interval later. */
const AGENT_ROUTES: ReadonlySet<RouteDefinition['auth']> = new Set(['token', 'mtls']);

/** The status label of a request whose client left before the answer (nginx's convention). */
const CLIENT_GONE = 499;

/** The request target as a URL; a target no URL parser accepts is the client's error, not a 500. */
function requestUrl(req: IncomingMessage): URL {
  try {
    return new URL(req.url ?? '/', 'https://control-plane');
  } catch {
    throw cpError('MALFORMED_REQUEST', 'the request target is not a valid path');
  }
}

export interface ControlPlaneOptions {
  dataDir: string;
  clock?: Clock;
  logger?: Logger;
  heartbeatIntervalSeconds?: number;
  /** Default: 3 heartbeat intervals. */
  offlineAfterSeconds?: number;
  certificateLifetimeSeconds?: number;
  sanUriPrefix?: string;
  /** The serving certificate's SANs. */
  serverHostnames?: string[];
  /**
   * Admin bearer credentials, or `sha256:<hex>` hashes of them. When omitted, the hashes in
   * <dataDir>/admin-credential.sha256 are used; on first start a credential is generated, only its
   * hash is kept there, and the credential itself is handed over once in
   * <dataDir>/initial-admin-credential (mode 0600), which the control plane never reads back.
   */
  adminCredentials?: string[];
  /** How often the offline sweep runs on its own (real time; the decision uses `clock`). */
  sweepIntervalMs?: number;
  /** How often batched last-heartbeat times are written. */
  flushIntervalMs?: number;
  /** Change-feed entries kept (older cursors answer 410). */
  changeRetention?: number;
  /** What callers without an admin credential may make it write (defaults in budgets.ts). */
  budgets?: Partial<WriteBudgets>;
  /** Also export process and Node.js metrics (event-loop lag, memory, GC) on /metrics. */
  processMetrics?: boolean;
  /**
   * How long an idle connection stays open for the caller's next request (announced in the
   * Keep-Alive header; this package's clients close theirs a second earlier). Default 2 s: the
   * operator's calls in a burst share a connection. When it is shorter than the heartbeat interval,
   * the agent API's answers announce 1 s, so agents hold no connection between heartbeats: every
   * open TLS connection holds about 75 KiB here (node's 64 KiB read buffer per TLS socket and
   * OpenSSL's state), 750 MiB for 10,000 agents kept connected. Reconnecting with a resumed TLS
   * session costs CPU instead, about 0.9 ms per heartbeat (docs/performance.md, "The control plane
   * at 10,000 agents"); a keep-alive longer than the interval trades that back.
   */
  keepAliveTimeoutSeconds?: number;
  /** Connections of one remote address held at once; above it a connection is closed at once. */
  maxConnectionsPerAddress?: number;
  /** Connections held at once in all; above it Node refuses them (and the offline sweep holds off). */
  maxConnections?: number;
}

export interface ControlPlane {
  server: Server;
  service: ControlPlaneService;
  metrics: ControlPlaneMetrics;
  caPem: string;
  caPath: string;
  /**
   * A usable admin credential, for tests and local development: the first configured one that is
   * not a hash, or the generated one while its hand-over file still exists; undefined otherwise.
   */
  adminCredential: string | undefined;
  /** The hand-over file of a generated credential, while it exists. */
  adminCredentialPath: string | undefined;
  dataDir: string;
  listen(options?: { host?: string; port?: number }): Promise<string>;
  /** Runs the offline sweep now; returns how many connectors went offline. */
  sweep(): number;
  /** Writes batched heartbeat times now. */
  flush(): number;
  close(): Promise<void>;
}

/**
 * The admin credential a caller in the same process (local run, tests, benchmarks) uses; throws a
 * clear error when the control plane knows only hashes.
 */
export function usableAdminCredential(
  controlPlane: Pick<ControlPlane, 'adminCredential' | 'dataDir'>,
): string {
  if (controlPlane.adminCredential !== undefined) return controlPlane.adminCredential;
  throw new Error(
    `the control plane in ${controlPlane.dataDir} holds only hashes of its admin credentials (configured as ` +
      `sha256: lines, or ${INITIAL_ADMIN_CREDENTIAL_FILE} was deleted after hand-over): pass a credential ` +
      'with --admin-credential-file',
  );
}

export interface StartedControlPlane extends ControlPlane {
  url: string;
}

async function loadTokenKey(dataDir: string): Promise<Buffer> {
  const path = join(dataDir, 'token-key');
  if (existsSync(path)) return Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
  const key = newTokenKey();
  await writeFileAtomic(path, `${key.toString('base64')}\n`, { mode: 0o600 });
  return key;
}

interface AdminCredentials {
  /** Credentials or their `sha256:` hashes: what AdminAuth checks against. */
  lines: string[];
  /** A usable credential, when one is known (see ControlPlane.adminCredential). */
  credential: string | undefined;
  /** The hand-over file of a generated credential, while it exists. */
  handOverPath: string | undefined;
  generated: boolean;
}

export const ADMIN_CREDENTIAL_HASH_FILE = 'admin-credential.sha256';
export const INITIAL_ADMIN_CREDENTIAL_FILE = 'initial-admin-credential';

async function loadAdminCredentials(dataDir: string, given: string[] | undefined): Promise<AdminCredentials> {
  const fromOptions = (given ?? []).map((line) => line.trim()).filter((line) => line.length > 0);
  if (fromOptions.length > 0) {
    const credential = fromOptions.find((line) => !isCredentialHash(line));
    return { lines: fromOptions, credential, handOverPath: undefined, generated: false };
  }
  const hashPath = join(dataDir, ADMIN_CREDENTIAL_HASH_FILE);
  const handOverPath = join(dataDir, INITIAL_ADMIN_CREDENTIAL_FILE);
  if (existsSync(hashPath)) {
    const lines = readCredentialFile(hashPath);
    if (lines.length > 0) {
      const handedOver = existsSync(handOverPath) ? readCredentialFile(handOverPath)[0] : undefined;
      return {
        lines,
        credential: handedOver,
        handOverPath: handedOver === undefined ? undefined : handOverPath,
        generated: false,
      };
    }
  }
  // The hand-over file first, the hash file last: a start that dies in between generates afresh.
  const credential = `vpa_${randomBytes(32).toString('base64url')}`;
  await writeFileAtomic(handOverPath, `${credential}\n`, { mode: 0o600 });
  await writeFileAtomic(hashPath, `${credentialHashLine(credential)}\n`, { mode: 0o600 });
  return { lines: [credentialHashLine(credential)], credential, handOverPath, generated: true };
}

/** One credential per line; blank lines and lines starting with # are ignored. */
export function readCredentialFile(path: string): string[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('#'));
}

export async function createControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger();
  const heartbeatIntervalSeconds = options.heartbeatIntervalSeconds ?? DEFAULTS.heartbeatIntervalSeconds;
  const offlineAfterSeconds =
    options.offlineAfterSeconds ?? heartbeatIntervalSeconds * DEFAULTS.offlineAfterIntervals;
  const sanUriPrefix = options.sanUriPrefix ?? DEFAULTS.sanUriPrefix;
  const dataDir = options.dataDir;
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });

  const ca = await loadOrCreateCa(dataDir, clock.now());
  const serving = await issueServingCertificate(
    ca,
    options.serverHostnames ?? [...DEFAULTS.serverHostnames],
    clock.now(),
  );
  const admin = await loadAdminCredentials(dataDir, options.adminCredentials);
  if (admin.generated) {
    logger.info(
      { path: admin.handOverPath },
      'generated an admin credential: hand it to the operator, then delete the file (only its hash is kept)',
    );
  }
  const tokenKey = await loadTokenKey(dataDir);
  const store = new Store(dataDir);

  let service: ControlPlaneService | undefined;
  let limits: ConnectionLimits | undefined;
  const metrics = createMetrics(() => service?.countByState() ?? new Map(), {
    processMetrics: options.processMetrics,
    openConnections: () => limits?.openConnections ?? 0,
  });
  service = new ControlPlaneService({
    store,
    clock,
    logger,
    ca,
    tokenKey,
    metrics,
    heartbeatIntervalSeconds,
    offlineAfterSeconds,
    certificateLifetimeSeconds: options.certificateLifetimeSeconds ?? DEFAULTS.certificateLifetimeSeconds,
    sanUriPrefix,
    changeRetention: options.changeRetention,
    budgets: options.budgets,
  });
  const core = service;
  const keepAliveTimeoutSeconds = options.keepAliveTimeoutSeconds ?? DEFAULTS.keepAliveTimeoutSeconds;
  const agentsReconnect = keepAliveTimeoutSeconds < heartbeatIntervalSeconds;
  const adminAuth = new AdminAuth(admin.lines);
  const router = new Router<RouteDefinition>(ROUTES);
  let closing = false;

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const started = process.hrtime.bigint();
    let routeLabel = 'unmatched';
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    let status = 500;
    // Every answer's Date is this control plane's clock, the one its renewAfter, certificate dates
    // and refusals use (node would write the process's own time): an agent compares it with its own
    // clock to schedule renewal on this clock and to notice skew.
    res.setHeader('date', clock.now().toUTCString());
    try {
      if (closing) res.setHeader('connection', 'close');
      const url = requestUrl(req);
      const { route, params } = router.match(req.method ?? 'GET', url.pathname);
      routeLabel = route.path;
      if (agentsReconnect && AGENT_ROUTES.has(route.auth) && !closing) {
        // An agent's next call is a heartbeat interval away, past the keep-alive timeout: a kept
        // connection would only wait to be closed, holding its memory here. Announcing 1 s makes a
        // node agent close it as soon as the answer is read (the client closing first, so the
        // TIME_WAIT is the agent's); the next heartbeat resumes the TLS session.
        res.setHeader('connection', 'keep-alive');
        res.setHeader('keep-alive', 'timeout=1');
      }
      const context: RouteContext = {
        req,
        res,
        params,
        query: url.searchParams,
        service: core,
        metrics,
        sanUriPrefix,
        signal: abort.signal,
      };
      authenticate(route, context, adminAuth);
      const result = await route.handler(context);
      status = result.status;
      if (result.text !== undefined) sendText(res, status, result.text, result.contentType ?? 'text/plain');
      else sendJson(res, status, result.body);
    } catch (error) {
      if (req.socket.destroyed) {
        // The client went away (an aborted upload, a dropped connection): nobody to answer, and an
        // error line each would let any client write the log at will.
        status = CLIENT_GONE;
        logger.debug({ route: routeLabel, err: errorMessage(error) }, 'client went away');
        return;
      }
      // The body may be unread (auth or content-type failures): close instead of parsing leftovers.
      if (!req.complete) res.setHeader('connection', 'close');
      status = sendError(res, error, logger);
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.requestDuration.observe({ route: routeLabel, status: String(status) }, seconds);
      if (logger.isLevelEnabled('debug')) {
        logger.debug(
          { method: req.method, route: routeLabel, status, ms: Math.round(seconds * 1000) },
          'request',
        );
      }
    }
  };

  const server = createServer(
    {
      key: serving.keyPem,
      cert: `${serving.certPem}${ca.certPem}`,
      ca: [ca.certPem],
      // Ask for a client certificate on every connection but do not require one at the TLS
      // layer: enrollment, admin and public routes have none; mTLS routes check it per request.
      requestCert: true,
      rejectUnauthorized: false,
      keepAliveTimeout: keepAliveTimeoutSeconds * 1000,
      ...deadlineOptions({
        firstWordsMs: FIRST_WORDS_TIMEOUT_MS,
        requestMs: 60_000,
        checkEveryMs: DEADLINE_CHECK_INTERVAL_MS,
      }),
      sessionTimeout: TLS_SESSION_LIFETIME_SECONDS,
    },
    (req, res) => {
      limits?.requested(req.socket);
      void handle(req, res);
    },
  );
  const total = connectionBound(options.maxConnections, logger);
  // Callers on the internet: one holding an IPv6 /64 holds 2^64 addresses, so it is one caller. The
  // first-request deadline runs on real time, not `clock` (the offline decisions' time, moved by
  // tests): it is a network deadline like Node's own handshake and headers deadlines beside it, and
  // a test's jump of the offline clock must not close connections that are really open.
  const connectionLimits = new ConnectionLimits({
    perAddress: Math.min(options.maxConnectionsPerAddress ?? DEFAULTS.maxConnectionsPerAddress, total),
    grouping: 'ipv6-64',
    total,
    logger,
    serverName: 'the control plane',
    refused: (reason) => metrics.connectionsRefused.inc({ reason }),
    countedAs: 'cp_connections_refused_total',
    firstRequestWithinMs: FIRST_WORDS_TIMEOUT_MS,
    onSaturated: () => service?.graceForRefusedConnections(),
  });
  limits = connectionLimits;
  connectionLimits.attach(server);
  server.on('secureConnection', (socket: TLSSocket) => {
    metrics.tlsHandshakes.inc({ resumed: String(socket.isSessionReused()) });
  });
  server.on('tlsClientError', (error) => logger.debug({ err: error.message }, 'TLS handshake failed'));
  server.on('clientError', (error, socket) => answerClientError(error, socket, logger));

  const timers: NodeJS.Timeout[] = [];
  const startTimers = () => {
    const sweepTimer = setInterval(() => {
      try {
        core.sweep();
      } catch (error) {
        logger.error({ err: (error as Error).message }, 'offline sweep failed');
      }
    }, options.sweepIntervalMs ?? DEFAULTS.sweepIntervalMs);
    let flushing = false;
    const flushSlices = () => {
      // One slice per turn of the event loop, so requests keep being served in between.
      try {
        if (core.flushBatch(FLUSH_SLICE) > 0 && core.pendingFlush() > 0 && !closing) {
          setImmediate(flushSlices);
          return;
        }
      } catch (error) {
        logger.error({ err: (error as Error).message }, 'heartbeat flush failed');
      }
      flushing = false;
    };
    const flushTimer = setInterval(() => {
      if (flushing) return;
      flushing = true;
      flushSlices();
    }, options.flushIntervalMs ?? DEFAULTS.flushIntervalMs);
    sweepTimer.unref();
    flushTimer.unref();
    timers.push(sweepTimer, flushTimer);
  };

  let closed: Promise<void> | undefined;
  const controlPlane: ControlPlane = {
    server,
    service: core,
    metrics,
    caPem: ca.certPem,
    caPath: ca.certPath,
    adminCredential: admin.credential,
    adminCredentialPath: admin.handOverPath,
    dataDir,
    async listen(listenOptions = {}) {
      const address = await listenOn(server, {
        host: listenOptions.host ?? DEFAULTS.host,
        port: listenOptions.port ?? DEFAULTS.port,
      });
      startTimers();
      return `https://${urlHost(address.host)}:${address.port}`;
    },
    sweep: () => core.sweep(),
    flush: () => core.flush(),
    close() {
      closed ??= (async () => {
        closing = true;
        for (const timer of timers) clearInterval(timer);
        core.releaseWaiters();
        // Long-polls were released above; anything still open after a moment is cut.
        // With the limits, the cut also reaches connections still in their TLS handshake, which
        // the server's closeAllConnections does not know of: before, one held the stop.
        await closeServer(server, { graceMs: 2000, limits: connectionLimits });
        core.flush();
        store.close();
        logger.info('control plane stopped');
      })();
      return closed;
    },
  };
  return controlPlane;
}

export async function startControlPlane(
  options: ControlPlaneOptions & { host?: string; port?: number },
): Promise<StartedControlPlane> {
  const controlPlane = await createControlPlane(options);
  const url = await controlPlane.listen({ host: options.host, port: options.port });
  (options.logger ?? silentLogger()).info({ url, caPath: controlPlane.caPath }, 'control plane listening');
  return Object.assign(controlPlane, { url });
}

/**
 * The connections to hold at most: `asked` (the default when none was), or fewer when the process's
 * open-file limit would run out first (then accepting fails with no event, no grace is granted, and
 * heartbeats are kept out). Said when a bound that was asked for is lowered; the default is simply
 * fitted to the limit.
 */
function connectionBound(asked: number | undefined, logger: Logger): number {
  // Not Linux (no limits to read): the bound is what was asked for.
  const bound = asked ?? DEFAULTS.maxConnections;
  const allowed = connectionsTheDescriptorsAllow(processLimitsText());
  if (allowed === undefined || allowed >= bound) return bound;
  if (asked !== undefined)
    logger.warn(
      { maxConnections: asked, heldAtMost: allowed },
      `--max-connections ${asked} is more than the process's open-file limit leaves room for: holding at most ${allowed} connections; raise the limit (ulimit -n, the container's nofile) to hold more`,
    );
  return allowed;
}
