// The operator's /metrics listener put together (server.ts serves it): where it listens, whether
// requests are authorized (metrics-auth.ts) and over HTTPS with which certificate (metrics-tls.ts,
// kept current while the process runs), and the client the authorizer's reviews go through.
//
// That client is the operator's credentials and connections with an observer of its own: the
// reviews' answers are counted in the request metrics like any other request of the operator's,
// but a 429 the API server gives a review does not reach the reconcile concurrency limit
// (adaptive-limit.ts). Reviews are caused by whoever sends a token, not by the operator's work: had
// they fed the limit, a caller with made-up tokens would have slowed every reconcile.
import type { Server as HttpsServer } from 'node:https';
import { isIP, isIPv4 } from 'node:net';
import { backgroundClock, type Clock } from '../../lib/clock.ts';
import { addressGroup } from '../../lib/connection-limits.ts';
import { CodedError } from '../../lib/errors.ts';
import { listenOn, urlHost } from '../../lib/host-port.ts';
import type { Logger } from '../../lib/logger.ts';
import type { KubeClient } from './kube-client.ts';
import type { OperatorMetrics } from './metrics.ts';
import { MetricsAuthorizer } from './metrics-auth.ts';
import {
  keepCertificateCurrent,
  metricsDnsNames,
  readCertDir,
  type ServingCertificate,
  selfSignedServingCertificate,
} from './metrics-tls.ts';
import { type BoundedServer, createMetricsServer } from './server.ts';

export interface MetricsEndpointOptions {
  listen: { host: string; port: number };
  /**
   * `kubernetes` (the default): HTTPS, and each request's bearer token reviewed by the API server
   * (metrics-auth.ts). `none`: plain HTTP for anyone, refused on an address beyond loopback.
   */
  auth?: 'kubernetes' | 'none';
  /** tls.crt and tls.key (e.g. cert-manager's); a self-signed certificate when omitted. */
  certDir?: string;
  /** More names for the self-signed certificate, besides the metrics Service's and localhost. */
  dnsNames?: string[];
}

export interface RunningMetricsEndpoint {
  /** Its URL (https:// with auth, http:// without) and the certificate it serves now (with auth). */
  readonly endpoint: { url: string; certificatePem?: string };
  /** Stops the certificate's renewal and the listener (connections left are cut after 2 s). */
  stop(): Promise<void>;
}

/**
 * Why --metrics-auth=none may not listen on `host`, or undefined on a loopback address: /metrics
 * names every tenant's Connectors, and a scraper in the cluster has a token to send
 * (docs/monitoring.md); a local run listens on loopback. The one rule and message of both the flag
 * check (bin/operator.ts) and startMetricsEndpoint.
 */
export function metricsAuthNoneProblem(host: string): string | undefined {
  if (isLoopback(host)) return undefined;
  return `--metrics-auth=none: /metrics would serve every tenant's Connectors to anyone who reaches ${host}; give --metrics-listen a loopback address (127.0.0.1:8443, [::1]:8443 or localhost:8443) for a local run, or keep --metrics-auth=kubernetes and give the scraper a token`;
}

/** Refuses --metrics-auth=none beyond loopback (metricsAuthNoneProblem). */
export function checkMetricsEndpoint(options: MetricsEndpointOptions): void {
  const problem = options.auth === 'none' ? metricsAuthNoneProblem(options.listen.host) : undefined;
  if (problem !== undefined) throw new CodedError('INVALID_ARGUMENT', problem);
}

export async function startMetricsEndpoint(options: {
  endpoint: MetricsEndpointOptions;
  /** The operator's client; the reviews get a copy with their own observer (see the header). */
  kc: KubeClient;
  metrics: OperatorMetrics;
  logger: Logger;
  clock?: Clock;
}): Promise<RunningMetricsEndpoint> {
  const { endpoint, metrics, logger } = options;
  const clock = options.clock ?? backgroundClock;
  checkMetricsEndpoint(endpoint);
  let listener: BoundedServer;
  let current: { url: string; certificatePem?: string };
  let stopCertificates = () => {};
  if (endpoint.auth === 'none') {
    listener = createMetricsServer({ metrics, logger });
    current = { url: '' };
  } else {
    const reviewer = options.kc.withObserver({
      throttled: (request) => {
        metrics.countThrottled(request);
        metrics.countAnswered(request, 429);
      },
      served: (request, status) => metrics.countAnswered(request, status),
    });
    const dnsNames = metricsDnsNames(process.env.POD_NAMESPACE, endpoint.dnsNames);
    const certificate: ServingCertificate = endpoint.certDir
      ? await readCertDir(endpoint.certDir)
      : await selfSignedServingCertificate(dnsNames, clock.now());
    listener = createMetricsServer({
      metrics,
      logger,
      auth: { authorizer: new MetricsAuthorizer({ kc: reviewer, logger, clock }), tls: certificate },
    });
    const https = listener.server as HttpsServer;
    current = { url: '', certificatePem: certificate.certPem };
    stopCertificates = keepCertificateCurrent({
      certDir: endpoint.certDir,
      dnsNames,
      current: certificate,
      logger,
      clock,
      apply: (next) => {
        https.setSecureContext({ cert: next.certPem, key: next.keyPem });
        current.certificatePem = next.certPem;
      },
    });
  }
  const bound = await listenOn(listener.server, endpoint.listen);
  current.url = `${endpoint.auth === 'none' ? 'http' : 'https'}://${urlHost(bound.host)}:${bound.port}`;
  return {
    endpoint: current,
    async stop() {
      stopCertificates();
      await listener.close();
    },
  };
}

/**
 * Whether `host` is a loopback address: an IP literal in 127.0.0.0/8 (also IPv4-mapped), ::1 in
 * any spelling, or `localhost`. A name is not looked at further: `127.evil.com` is a name, which
 * resolves wherever its owner likes (before, anything starting with `127.` passed).
 */
export function isLoopback(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  if (isIP(host) === 0) return false;
  const address = addressGroup(host, 'address');
  return address === '0:0:0:0:0:0:0:1' || (isIPv4(address) && address.startsWith('127.'));
}
