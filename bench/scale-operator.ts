// The operator as the scale benchmark runs it: as its image runs it (compiled, with the ENTRYPOINT's
// node options: tools/image-layout.ts), in its own process (so its RSS and CPU are its own), started
// with the given flags and environment, ready once /readyz answers 200, and stopped with SIGTERM as
// Kubernetes stops a pod (the figure 6 restart does exactly that).
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { freePort } from '../dev/local-cluster/ports.ts';
import { backoffDelay } from '../src/lib/backoff.ts';
import { requestJson } from '../src/lib/https-json.ts';
import { retryAfterMs } from '../src/operator/runtime/kube-errors.ts';
import { imageCommand, imageEntrypoint } from '../tools/image-layout.ts';
import { sleep, until } from './scale-util.ts';

/**
 * The operator metrics the benchmark reads. It polls them (every second on the way to Online, about
 * every 250 ms after a restart), so it asks for these alone (/metrics?name[]=...): a whole scrape carries a
 * series per Connector and per gauge, which at 10,000 connectors costs the operator more CPU per poll
 * than a Prometheus scraping every 30 s ever would, and would be counted against it.
 */
export const POLLED_METRICS = [
  'vaultpam_operator_kubernetes_writes_total',
  'vaultpam_operator_kubernetes_requests_total',
  'vaultpam_operator_work_queue_depth',
  'vaultpam_operator_work_queue_in_flight',
  'vaultpam_operator_work_queue_concurrency_limit',
  'vaultpam_operator_leader',
  'vaultpam_operator_reconciles_total',
  'vaultpam_operator_reconcile_duration_seconds',
] as const;
const POLLED_QUERY = POLLED_METRICS.map((name) => `name[]=${name}`).join('&');

export interface OperatorProcess {
  child: ChildProcess;
  pid: number;
  url: string;
  /** Where /metrics listens: HTTPS, read with the launch's metrics token. */
  metricsUrl: string;
  /** The metrics of POLLED_METRICS, in the Prometheus text format. */
  metrics(): Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with how it exited. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface OperatorLaunch {
  /** Node flags before the script (heap snapshot signal, ...), after the image's own. */
  nodeArgs: string[];
  /** The operator's flags, without --listen and --metrics-listen (free loopback ports are chosen). */
  args: string[];
  /**
   * A bearer token whose user may get /metrics (the metrics-reader ClusterRole): the operator runs as
   * installed, reviewing each new token with the API server, and the benchmark reads as Prometheus.
   * Asked before each read: a source that renews the token before it expires (a run at 10,000
   * Connectors lasts longer than a token's hour).
   */
  metricsToken: () => Promise<string>;
  env: NodeJS.ProcessEnv;
  /** Where stdout and stderr go (appended). */
  logFile: string;
  /** Called with the child as soon as it exists, so the benchmark's cleanup can stop it. */
  register(child: ChildProcess): void;
  /** Bound of the wait for /readyz to answer 200 (a leader answers it once its informers synced). */
  readyWithinMs: number;
}

export async function startOperatorProcess(launch: OperatorLaunch): Promise<OperatorProcess> {
  const port = await freePort();
  const metricsPort = await freePort();
  const child = spawn(
    process.execPath,
    [
      ...(await imageCommand('operator', launch.nodeArgs)),
      ...launch.args,
      `--listen=127.0.0.1:${port}`,
      `--metrics-listen=127.0.0.1:${metricsPort}`,
    ],
    // The image's ENV first (NODE_ENV, glibc's malloc settings), as a pod's own env overrides it.
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...imageEntrypoint('operator').env, ...launch.env } },
  );
  launch.register(child);
  const log = createWriteStream(launch.logFile, { flags: 'a' });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => done({ code, signal })),
  );
  const url = `http://127.0.0.1:${port}`;
  await until('the operator to be ready', launch.readyWithinMs, async () => {
    if (child.exitCode !== null)
      throw new Error(
        `the operator exited ${child.exitCode}: ${readFileSync(launch.logFile, 'utf8').slice(-2000)}`,
      );
    return (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200;
  });
  return {
    child,
    pid: child.pid ?? 0,
    url,
    metricsUrl: `https://127.0.0.1:${metricsPort}`,
    metrics: () =>
      readOperatorMetrics(`https://127.0.0.1:${metricsPort}`, METRICS_READ_ATTEMPTS, launch.metricsToken),
    async stop(graceMs = 30_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const how = await exited;
      clearTimeout(timer);
      return how;
    },
  };
}

/** Attempts of one metrics read before its transport failure, 429 or 503 fails the benchmark. */
export const METRICS_READ_ATTEMPTS = 6;
/** One read's deadline: connect, handshake, the operator's review of the token, the answer. */
const METRICS_READ_TIMEOUT_MS = 30_000;
/** The polled metrics are a few KiB; a whole scrape at 10,000 Connectors some MiB. */
const METRICS_MAX_BYTES = 64 * 1024 * 1024;
/**
 * The operator's self-signed certificate is not verified, as the shipped ServiceMonitor does not:
 * the read is encrypted, the loopback server is the benchmark's own.
 */
const httpsAgent = new HttpsAgent({ rejectUnauthorized: false });
const httpAgent = new HttpAgent();

/**
 * POLLED_METRICS from the operator at `url` (https:// with `token`, or plain http://), through the
 * package's one HTTPS helper. Made again after a growing delay (lib/backoff.ts): a request that
 * fails in transport (the connection refused, reset, or closed by the server's keep-alive timer just
 * as the next poll reuses it: at 10,000 connectors the operator's event loop is busy for seconds
 * after a restart, and one such failure ended the whole run before figure 6 was measured), and an
 * answer 429 or 503 (the operator could not review the token just then: too many reviews, or the API
 * server unreachable), waiting at least its Retry-After. Any other answer but 200 is the operator
 * saying no: not retried. Giving up names the cause.
 */
export async function readOperatorMetrics(
  url: string,
  attempts = METRICS_READ_ATTEMPTS,
  token?: () => Promise<string>,
): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    let answer: { status: number; text: string; retryAfter?: string | string[] };
    try {
      const bearer = token ? await token() : undefined;
      const got = await requestJson({
        method: 'GET',
        url: `${url}/metrics?${POLLED_QUERY}`,
        agent: url.startsWith('https:') ? httpsAgent : httpAgent,
        headers: bearer ? { authorization: `Bearer ${bearer}` } : {},
        timeoutMs: METRICS_READ_TIMEOUT_MS,
        maxAnswerBytes: METRICS_MAX_BYTES,
      });
      answer = { status: got.status, text: got.text, retryAfter: got.headers['retry-after'] };
    } catch (error) {
      if (attempt >= attempts) {
        const code = (error as { code?: unknown }).code;
        throw new Error(
          `reading the operator's /metrics at ${url} failed ${attempts} times in a row (${String(error)}${typeof code === 'string' ? `, ${code}` : ''})`,
          { cause: error },
        );
      }
      await sleep(backoffDelay(attempt, { baseMs: 250, capMs: 4_000 }));
      continue;
    }
    if (answer.status === 429 || answer.status === 503) {
      if (attempt >= attempts)
        throw new Error(
          `the operator's /metrics answered ${answer.status} ${attempts} times in a row: ${answer.text}`,
        );
      const backoff = backoffDelay(attempt, { baseMs: 250, capMs: 4_000 });
      await sleep(Math.max(backoff, retryAfterMs(answer.retryAfter) ?? 0));
      continue;
    }
    if (answer.status !== 200)
      throw new Error(`the operator's /metrics answered ${answer.status}: ${answer.text}`);
    return answer.text;
  }
}
