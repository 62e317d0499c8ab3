// Benchmark: enrollments per second one control-plane process sustains. The connectors are created
// and their tokens minted first (admin API, not timed); client processes then make their key pairs
// and CSRs (not timed) and enroll, each enrollment on a fresh TLS connection as distinct agents
// would: token check, CSR verification, certificate issuing, one SQLite transaction.
//
//   npx node bench/control-plane-enrollments.ts [--connectors 2000] [--workers 2] [--concurrency 16]
//
// Traffic goes to 127.0.0.1 only; the run is bounded by the connector count and stops by itself.
import { fork } from 'node:child_process';
import {
  enrollConnectors,
  flag,
  type PreparedConnector,
  prepareConnectors,
  startControlPlaneProcess,
  summarize,
  type Target,
} from './control-plane-common.ts';

interface Init {
  type: 'init';
  target: Target;
  prepared: PreparedConnector[];
  concurrency: number;
}
interface Result {
  type: 'result';
  latencies: number[];
  failures: number;
  startedAt: number;
  endedAt: number;
}

async function worker(): Promise<void> {
  process.once('message', async (message: Init) => {
    // enrollConnectors makes keys and CSRs before its clock starts; wall-clock bounds are sent back
    // so the parent measures the whole enrollment window across processes.
    const { latencies, seconds, failures } = await enrollConnectors(
      message.target,
      message.prepared,
      message.concurrency,
    );
    const endedAt = Date.now();
    process.send?.({
      type: 'result',
      latencies,
      failures,
      startedAt: endedAt - seconds * 1000,
      endedAt,
    } satisfies Result);
    process.exit(0);
  });
}

async function main(): Promise<void> {
  const connectors = flag('connectors', 2000);
  const workers = flag('workers', 2);
  const concurrency = flag('concurrency', 16);
  console.log(
    `control-plane enrollment benchmark: ${connectors} connectors, ${workers} client processes x ${concurrency} in flight`,
  );
  const cp = await startControlPlaneProcess();
  const target: Target = { url: cp.url, caPem: cp.caPem, credential: cp.credential };
  try {
    const ids = Array.from({ length: connectors }, (_, i) => `bench.en-${String(i).padStart(5, '0')}`);
    const setupStarted = performance.now();
    const prepared = await prepareConnectors(target, ids, 32);
    const setupSeconds = (performance.now() - setupStarted) / 1000;
    console.log(
      `setup: ${connectors} connectors created and tokens minted in ${setupSeconds.toFixed(1)} s ` +
        `(${Math.round((2 * connectors) / setupSeconds)} admin requests/s)`,
    );
    const perWorker = Math.ceil(connectors / workers);
    const results = await Promise.all(
      Array.from({ length: workers }, (_, w) => {
        const child = fork(import.meta.filename, ['--worker'], {
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        child.send({
          type: 'init',
          target,
          prepared: prepared.slice(w * perWorker, (w + 1) * perWorker),
          concurrency,
        } satisfies Init);
        return new Promise<Result>((resolve, reject) => {
          child.once('message', (message) => resolve(message as Result));
          child.once('exit', (code) => code !== 0 && reject(new Error(`client process exited ${code}`)));
        });
      }),
    );
    const latencies = results.flatMap((r) => r.latencies);
    const failures = results.reduce((n, r) => n + r.failures, 0);
    const windowSeconds =
      (Math.max(...results.map((r) => r.endedAt)) - Math.min(...results.map((r) => r.startedAt))) / 1000;
    const summary = summarize(latencies);
    const row = {
      enrollments: latencies.length - failures,
      failures,
      seconds: Number(windowSeconds.toFixed(2)),
      perSecond: Math.round((latencies.length - failures) / windowSeconds),
      p50ms: summary.p50,
      p95ms: summary.p95,
      p99ms: summary.p99,
      maxMs: summary.max,
    };
    console.log(JSON.stringify(row));
    console.table([row]);
  } finally {
    const code = await cp.stop();
    console.log(`control plane stopped (exit ${code})`);
  }
}

if (process.argv.includes('--worker')) {
  void worker();
} else {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
