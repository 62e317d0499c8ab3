// Shared pieces of the control-plane benchmarks: run the control plane as its own process (so the
// load generators do not share its event loop), enroll simulated connectors, fork client processes,
// and summarise latencies. Traffic goes to 127.0.0.1 only; every loop is bounded in count and time.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULTS } from '../src/controlplane/server.ts';
import { createCsrPem, generateKeyPairPem } from '../src/lib/pki.ts';
import { imageCommand } from '../tools/image-layout.ts';

export const ROOT = join(import.meta.dirname, '..');

export interface ControlPlaneProcess {
  url: string;
  caPem: string;
  credential: string;
  child: ChildProcess;
  stop(): Promise<number | null>;
}

/** `nodeArgs` go to node itself, before the program (e.g. --cpu-prof, --heapsnapshot-signal). */
export async function startControlPlaneProcess(
  extraArgs: string[] = [],
  nodeArgs: string[] = [],
): Promise<ControlPlaneProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cp-bench-'));
  const child = spawn(
    process.execPath,
    [
      ...(await imageCommand('control-plane', nodeArgs)),
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      dataDir,
      '--log-level',
      'info',
      // The fleet plays every agent from 127.0.0.1: one address, as many connections as agents
      // (with a keep-alive longer than the heartbeat interval, one each).
      '--max-connections-per-address',
      String(DEFAULTS.maxConnections),
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL'); // never leave a control plane behind
      reject(new Error(`control plane did not start: ${output}`));
    }, 60_000);
    // Read (and drop, once started) the log lines so the pipe never fills and blocks the server.
    child.stdout?.on('data', (chunk: Buffer) => {
      if (output.length > 100_000) return;
      output += chunk.toString();
      const match = /"url":"(https:[^"]+)"/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once('exit', (code) => reject(new Error(`control plane exited ${code}: ${output}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    url,
    caPem: readFileSync(join(dataDir, 'ca.pem'), 'utf8'),
    credential: readFileSync(join(dataDir, 'initial-admin-credential'), 'utf8').trim(),
    child,
    async stop() {
      child.kill('SIGTERM');
      const code = await exited;
      rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
  };
}

export interface Target {
  url: string;
  caPem: string;
  credential: string;
}

export interface HttpResult {
  status: number;
  body: string;
  ms: number;
}

export function post(
  target: Target,
  path: string,
  body: unknown,
  options: { agent?: Agent | false; method?: string; headers?: Record<string, string> } = {},
): Promise<HttpResult> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      `${target.url}${path}`,
      {
        method: options.method ?? 'POST',
        ca: target.caPem,
        agent: options.agent ?? false,
        headers: { ...(text ? { 'content-type': 'application/json' } : {}), ...(options.headers ?? {}) },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            ms: performance.now() - started,
          }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(text);
  });
}

export interface EnrolledConnector {
  connectorId: string;
  keyPem: string;
  certPem: string;
}

export interface PreparedConnector {
  connectorId: string;
  token: string;
}

async function pool<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const run = async () => {
    while (next < items.length) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, run));
}

/** Admin side: ensure each connector and mint its token, over kept-alive connections. */
export async function prepareConnectors(
  target: Target,
  ids: string[],
  concurrency: number,
): Promise<PreparedConnector[]> {
  const agent = new Agent({ ca: target.caPem, keepAlive: true, maxSockets: concurrency });
  const headers = { authorization: `Bearer ${target.credential}` };
  const prepared: PreparedConnector[] = [];
  await pool(ids, concurrency, async (connectorId) => {
    const config = { org: 'bench', endpointId: 'ep', allowedNetworks: [] };
    const put = await post(target, `/v1/connectors/${connectorId}`, config, {
      agent,
      method: 'PUT',
      headers,
    });
    if (put.status >= 300) throw new Error(`ensure ${connectorId}: ${put.status} ${put.body}`);
    const mint = await post(
      target,
      `/v1/connectors/${connectorId}/tokens`,
      { idempotencyKey: 'bench' },
      { agent, headers },
    );
    if (mint.status >= 300) throw new Error(`mint ${connectorId}: ${mint.status} ${mint.body}`);
    prepared.push({ connectorId, token: (JSON.parse(mint.body) as { token: string }).token });
  });
  agent.destroy();
  return prepared;
}

/**
 * Agent side: key pairs and CSRs are made first (not timed), then each connector enrolls on a fresh
 * TLS connection, as distinct agents would. Returns identities, per-request latencies and wall time.
 */
export async function enrollConnectors(
  target: Target,
  prepared: PreparedConnector[],
  concurrency: number,
): Promise<{ enrolled: EnrolledConnector[]; latencies: number[]; seconds: number; failures: number }> {
  const keys = await Promise.all(prepared.map(() => generateKeyPairPem('ec-p256')));
  const requests = prepared.map((item, index) => {
    const keyPem = (keys[index] as { privateKeyPem: string }).privateKeyPem;
    return { ...item, keyPem, csrPem: createCsrPem(keyPem, item.connectorId) };
  });
  const enrolled: EnrolledConnector[] = [];
  const latencies: number[] = [];
  let failures = 0;
  const started = performance.now();
  await pool(requests, concurrency, async (item) => {
    const res = await post(target, '/v1/enroll', {
      connectorId: item.connectorId,
      token: item.token,
      csrPem: item.csrPem,
    });
    latencies.push(res.ms);
    if (res.status !== 201) {
      failures += 1;
      return;
    }
    const { certificatePem } = JSON.parse(res.body) as { certificatePem: string };
    enrolled.push({ connectorId: item.connectorId, keyPem: item.keyPem, certPem: certificatePem });
  });
  return { enrolled, latencies, seconds: (performance.now() - started) / 1000, failures };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

export function summarize(latencies: number[]): {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
} {
  const sorted = [...latencies].sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 100) / 100;
  return {
    count: sorted.length,
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.at(-1) ?? Number.NaN),
  };
}

export function flag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? Number(process.argv[index + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}

/** Cumulative bucket counts of cp_http_request_duration_seconds for one route and status. */
export function durationBuckets(metricsText: string, route: string, status = '200'): Map<number, number> {
  const buckets = new Map<number, number>();
  const pattern = /^cp_http_request_duration_seconds_bucket\{([^}]*)\} (\d+)/gm;
  for (const [, labels, value] of metricsText.matchAll(pattern)) {
    if (!labels?.includes(`route="${route}"`) || !labels.includes(`status="${status}"`)) continue;
    const le = /le="([^"]+)"/.exec(labels)?.[1];
    buckets.set(le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), Number(value));
  }
  return buckets;
}

/**
 * Server-side handler time percentiles between two scrapes, as bucket upper bounds in ms (the
 * control plane's own histogram: time from request to answer inside the process, without the
 * client's or the network's queueing).
 */
export function serverPercentiles(
  before: string,
  after: string,
  route: string,
): { p50: string; p99: string } {
  const a = durationBuckets(before, route);
  const b = durationBuckets(after, route);
  const bounds = [...b.keys()].sort((x, y) => x - y);
  const delta = bounds.map((le) => [le, (b.get(le) ?? 0) - (a.get(le) ?? 0)] as const);
  const total = delta.at(-1)?.[1] ?? 0;
  const at = (p: number) => {
    const bound = delta.find(([, count]) => count >= total * p)?.[0];
    return bound === undefined ? 'n/a' : bound === Number.POSITIVE_INFINITY ? '>30000' : `<=${bound * 1000}`;
  };
  return { p50: at(0.5), p99: at(0.99) };
}

/** A gauge's value from Prometheus text, e.g. nodejs_eventloop_lag_p99_seconds. */
export function gauge(metricsText: string, name: string): number | undefined {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)`, 'm').exec(metricsText);
  return match ? Number(match[1]) : undefined;
}
