// The operator as the scale benchmark runs it: as its image runs it (compiled, with the ENTRYPOINT's
// node options: tools/image-layout.ts), in its own process (so its RSS and CPU are its own), started
// with the given flags and environment, ready once /readyz answers 200, and stopped with SIGTERM as
// Kubernetes stops a pod (the figure 6 restart does exactly that).
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { freePort } from '../dev/local-cluster/ports.ts';
import { backoffDelay } from '../src/lib/backoff.ts';
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
   */
  metricsToken: string;
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

/** Attempts of one metrics read before its transport failure fails the benchmark. */
export const METRICS_READ_ATTEMPTS = 6;

/**
 * POLLED_METRICS from the operator at `url`. A request that fails in transport (the connection
 * refused, reset, or closed by the server's keep-alive timer just as the next poll reuses it) is
 * made again after a growing delay: at 10,000 connectors the operator's event loop is busy for
 * seconds after a restart, and one such failure ended the whole run ("fetch failed") before
 * figure 6 was measured. An HTTP answer other than 200 is not retried: the operator said no.
 * Giving up names the cause, which fetch keeps apart from its message.
 */
export async function readOperatorMetrics(
  url: string,
  attempts = METRICS_READ_ATTEMPTS,
  token?: string,
): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    let answer: { ok: boolean; status: number; text(): Promise<string> };
    try {
      const target = `${url}/metrics?${POLLED_QUERY}`;
      answer = url.startsWith('https:') ? await httpsGet(target, token) : await fetch(target);
    } catch (error) {
      if (attempt >= attempts) {
        const cause =
          error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
        throw new Error(
          `reading the operator's /metrics at ${url} failed ${attempts} times in a row (${String(error)}${cause})`,
          { cause: error },
        );
      }
      await sleep(backoffDelay(attempt, { baseMs: 250, capMs: 4_000 }));
      continue;
    }
    if (!answer.ok)
      throw new Error(`the operator's /metrics answered ${answer.status}: ${await answer.text()}`);
    return answer.text();
  }
}

/**
 * GET over HTTPS with a bearer token. The operator's self-signed certificate is not verified, as the
 * shipped ServiceMonitor does not: the scrape is encrypted, the loopback server is the benchmark's own.
 */
function httpsGet(url: string, token: string | undefined) {
  return new Promise<{ ok: boolean; status: number; text(): Promise<string> }>((resolve, reject) => {
    const request = httpsRequest(
      url,
      { rejectUnauthorized: false, headers: token ? { authorization: `Bearer ${token}` } : {} },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const status = response.statusCode ?? 0;
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({ ok: status >= 200 && status < 300, status, text: async () => body });
        });
      },
    );
    request.on('error', reject);
    request.end();
  });
}
