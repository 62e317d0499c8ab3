// Scrapes the operator's /metrics as Prometheus does: HTTPS with a bearer token (the operator's
// metrics listener, src/operator/runtime/server.ts), trusting the certificate the operator serves
// (pinned: the test got it from the operator, or wrote it into --metrics-cert-dir itself). Plain
// http:// URLs (--metrics-auth=none) are fetched as they are.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { requestJson } from '../../src/lib/https-json.ts';

export interface MetricsTarget {
  /** https://host:port (or http:// without auth), without a path. */
  url: string;
  /** The certificate the server serves, trusted as it is; without it the server is not verified. */
  certificatePem?: string;
}

export interface Scraped {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** A whole scrape of a few thousand Connectors is some MiB; the helper's default is 256 KiB. */
const MAX_SCRAPE_BYTES = 64 * 1024 * 1024;

/**
 * One GET of `options.path` (/metrics) through the package's one HTTPS helper (lib/https-json.ts),
 * on a connection of its own, closed afterwards (the listener counts connections per address).
 */
export async function scrapeMetrics(
  target: MetricsTarget,
  options: { token?: string; path?: string; headers?: Record<string, string> } = {},
): Promise<Scraped> {
  const url = new URL(options.path ?? '/metrics', target.url);
  const headers = {
    ...(options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {}),
    ...options.headers,
  };
  // An http.Agent makes the helper speak plain HTTP (--metrics-auth=none).
  const agent =
    url.protocol === 'https:'
      ? new HttpsAgent(
          target.certificatePem
            ? { ca: target.certificatePem, checkServerIdentity: () => undefined }
            : { rejectUnauthorized: false },
        )
      : new HttpAgent();
  try {
    const answer = await requestJson({
      method: 'GET',
      url,
      agent,
      headers,
      timeoutMs: 15_000,
      maxAnswerBytes: MAX_SCRAPE_BYTES,
    });
    return { status: answer.status, headers: answer.headers, text: answer.text };
  } finally {
    agent.destroy();
  }
}

// The token of a Prometheus-like ServiceAccount is made the same way the benchmark makes its own.
export { METRICS_READER_ROLE, serviceAccountToken } from '../../dev/local-cluster/metrics-reader.ts';
