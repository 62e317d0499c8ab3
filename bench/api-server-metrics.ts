// The API server's own account of a run: its /metrics, scraped as the cluster's admin, and what it
// served between two scrapes (requests by verb and resource, watch events sent by kind), to tell
// which requests the machine's time went to.
import { Agent, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { requestJson } from '../src/lib/https-json.ts';
import { diffCounters } from './scale-util.ts';

/** A function that scrapes the API server's /metrics as the KubeConfig's user. */
export async function apiServerMetrics(kc: KubeConfig): Promise<() => Promise<string>> {
  const tls: RequestOptions = {};
  await kc.applyToHTTPSOptions(tls);
  const agent = new Agent({ ca: tls.ca, cert: tls.cert, key: tls.key, keepAlive: true, maxSockets: 1 });
  const url = new URL('/metrics', kc.getCurrentCluster()?.server);
  return async () => {
    const answer = await requestJson({
      method: 'GET',
      url,
      agent,
      timeoutMs: 30_000,
      maxAnswerBytes: 64 << 20,
    });
    if (answer.status !== 200) throw new Error(`the API server answered GET /metrics with ${answer.status}`);
    return answer.text;
  };
}

export interface ApiServerLoad {
  /** Requests by "VERB resource[/subresource]", the most first (a WATCH counts when it opens). */
  requests: Record<string, number>;
  /** Watch events sent to watchers, by resource (one event to three watchers counts three). */
  watchEventsSent: Record<string, number>;
}

/** The fifteen largest entries of a count, the rest summed as "other". */
function largest(counts: Record<string, number>): Record<string, number> {
  const sorted = Object.entries(counts).sort(([, a], [, b]) => b - a);
  const top = Object.fromEntries(sorted.slice(0, 15));
  const rest = sorted.slice(15).reduce((sum, [, n]) => sum + n, 0);
  return rest > 0 ? { ...top, other: rest } : top;
}

/** What the API server served between two scrapes of its /metrics. */
export function apiServerLoad(before: string, after: string): ApiServerLoad {
  const requests = diffCounters(
    before,
    after,
    'apiserver_request_total',
    (l) => `${l.verb} ${l.resource || '(non-resource)'}${l.subresource ? `/${l.subresource}` : ''}`,
  );
  const watchEventsSent = diffCounters(
    before,
    after,
    'apiserver_watch_events_total',
    (l) => l.resource ?? l.kind,
  );
  return { requests: largest(requests), watchEventsSent: largest(watchEventsSent) };
}
