// Scrapes the operator's /metrics as Prometheus does: HTTPS with a bearer token (the operator's
// metrics listener, src/operator/runtime/server.ts), trusting the certificate the operator serves
// (pinned: the test got it from the operator, or wrote it into --metrics-cert-dir itself). Plain
// http:// URLs (--metrics-auth=none) are fetched as they are.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

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

export function scrapeMetrics(
  target: MetricsTarget,
  options: { token?: string; path?: string; headers?: Record<string, string> } = {},
): Promise<Scraped> {
  const url = new URL(options.path ?? '/metrics', target.url);
  const headers = {
    ...(options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {}),
    ...options.headers,
  };
  return new Promise((resolve, reject) => {
    const done = (response: import('node:http').IncomingMessage) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      response.on('error', reject);
    };
    const request =
      url.protocol === 'https:'
        ? httpsRequest(
            url,
            {
              headers,
              agent: false,
              ...(target.certificatePem
                ? { ca: target.certificatePem, checkServerIdentity: () => undefined }
                : { rejectUnauthorized: false }),
            },
            done,
          )
        : httpRequest(url, { headers, agent: false }, done);
    request.setTimeout(15_000, () => request.destroy(new Error(`GET ${url} timed out`)));
    request.on('error', reject);
    request.end();
  });
}

// The token of a Prometheus-like ServiceAccount is made the same way the benchmark makes its own.
export { METRICS_READER_ROLE, serviceAccountToken } from '../../dev/local-cluster/metrics-reader.ts';
