// Small helpers the scale benchmarks share (bench/scale.ts, bench/scale-*.ts and
// bench/control-plane-scale.ts): waiting, bounded concurrency, percentiles, reading the operator's
// Prometheus counters, and writing a result as JSON and a table.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const say = (line: string) => process.stdout.write(`${line}\n`);
export const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));
export const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

/** Count, p50, p99 and max of latencies in ms (whole ms). */
export function latencySummary(values: number[]) {
  return {
    count: values.length,
    p50Ms: Math.round(percentile(values, 50)),
    p99Ms: Math.round(percentile(values, 99)),
    maxMs: values.length > 0 ? Math.round(Math.max(...values)) : NaN,
  };
}

export async function pool<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>) {
  let next = 0;
  const run = async () => {
    while (next < items.length) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, run));
}

/** Polls `check` every `intervalMs` until it holds; fails naming `what` after `deadlineMs`. */
export async function until(
  what: string,
  deadlineMs: number,
  check: () => boolean | Promise<boolean>,
  intervalMs = 100,
) {
  const deadline = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${deadlineMs / 1000} s waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Sum of a Prometheus counter's samples whose labels pass `keep`. */
export function counterSum(text: string, name: string, keep: (labels: string) => boolean = () => true) {
  let sum = 0;
  for (const [, labels = '', value] of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)`, 'gm')))
    if (keep(labels)) sum += Number(value);
  return sum;
}

export function countersByLabels(text: string, name: string) {
  const out: Record<string, number> = {};
  for (const [, labels = '', value] of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)`, 'gm')))
    if (Number(value) > 0) out[labels.replaceAll('"', '')] = Number(value);
  return out;
}

const WRITES = 'vaultpam_operator_kubernetes_writes_total';

/** The operator's writes other than its Lease renewals. */
export function writesTotal(text: string) {
  return counterSum(text, WRITES, (l) => !l.includes('kind="Lease"'));
}

/**
 * A counter's increase between two scrapes of one process (`before` '' for all of it), by its
 * labels as `countersByLabels` writes them, or by what `groupBy` makes of those labels (summed).
 */
export function diffCounters(
  before: string,
  after: string,
  name: string,
  groupBy?: (labels: Record<string, string>) => string | undefined,
) {
  const a = countersByLabels(before, name);
  const b = countersByLabels(after, name);
  const out: Record<string, number> = {};
  for (const [labels, value] of Object.entries(b)) {
    const delta = value - (a[labels] ?? 0);
    if (delta <= 0) continue;
    const key = groupBy
      ? groupBy(Object.fromEntries(labels.split(',').map((pair) => pair.split('=', 2))))
      : labels;
    if (key !== undefined) out[key] = (out[key] ?? 0) + delta;
  }
  return out;
}

/** The operator's writes by kind and verb between two scrapes of one process (`before` '' for all). */
export function diffWrites(before: string, after: string) {
  return diffCounters(before, after, WRITES);
}

/**
 * The operator's requests between two scrapes as "verb resource code" (`get configmaps 404`): its
 * reads as well as its writes, each by the answer it got. The API server's own counts cannot say
 * whose a request was.
 */
export function diffRequests(before: string, after: string) {
  return diffCounters(
    before,
    after,
    'vaultpam_operator_kubernetes_requests_total',
    (l) => `${l.verb} ${l.resource} ${l.code}`,
  );
}

/** Of `diffRequests`, the reads (get and list) per connector; the leader election's Lease reads aside. */
export function readsPerConnector(requests: Record<string, number>, connectors: number) {
  const reads = Object.entries(requests)
    .filter(([key]) => key.startsWith('get ') || key.startsWith('list '))
    .filter(([key]) => !key.includes(' leases.coordination.k8s.io '))
    .reduce((sum, [, n]) => sum + n, 0);
  return Math.round((reads / Math.max(1, connectors)) * 100) / 100;
}

/** The sum of writes by kind, Lease renewals aside. */
export function nonLeaseWrites(writes: Record<string, number>) {
  return Object.entries(writes)
    .filter(([labels]) => !labels.includes('kind=Lease'))
    .reduce((sum, [, value]) => sum + value, 0);
}

/**
 * Waits until the operator has written nothing (Lease renewals aside) for `quietMs`, at most
 * `maxMs`; returns whether it got quiet.
 */
export async function waitForQuiet(metrics: () => Promise<string>, quietMs: number, maxMs: number) {
  const deadline = Date.now() + maxMs;
  let quietSince = Date.now();
  let last = writesTotal(await metrics());
  while (Date.now() - quietSince < quietMs) {
    if (Date.now() > deadline) return false;
    await sleep(1_000);
    const writes = writesTotal(await metrics());
    if (writes !== last) quietSince = Date.now();
    last = writes;
  }
  return true;
}

/** Writes <out>/<name>.json and .md, prints the table and says where both went. */
export async function writeResult(out: string, name: string, result: unknown, table: string) {
  await mkdir(out, { recursive: true });
  const base = join(out, name);
  await writeFile(`${base}.json`, `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(`${base}.md`, table);
  say(`\n${table}`);
  say(`figures written to ${base}.json and ${base}.md`);
}
