// Benchmark: heartbeats per second that one control-plane process sustains for N simulated
// connectors (default 10,000), each on its own kept-alive mTLS connection with its own enrolled
// certificate, driven from a pool of client processes. Each phase runs at a fixed total rate
// (connectors beat every N/rate seconds, staggered evenly) and reports achieved throughput and
// latency percentiles measured by the clients, plus the control plane's CPU use.
//
//   npx node bench/control-plane-heartbeats.ts [--connectors 10000] [--workers 2] [--duration 20]
//                                              [--rates 1000,2000]
//
// Traffic goes to 127.0.0.1 only; every phase is bounded in time and the script stops by itself.
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { loadavg } from 'node:os';
import {
  type EnrolledConnector,
  enrollConnectors,
  flag,
  gauge,
  post,
  prepareConnectors,
  serverPercentiles,
  startControlPlaneProcess,
  summarize,
  type Target,
} from './control-plane-common.ts';

interface InitMessage {
  type: 'init';
  target: Target;
  ids: string[];
  firstIndex: number;
  total: number;
}
interface PhaseMessage {
  type: 'phase';
  startAt: number;
  intervalSeconds: number;
  durationSeconds: number;
}
interface ReadyMessage {
  type: 'ready';
  enrollRate: number;
  warmup: ReturnType<typeof summarize>;
  failures: number;
}
interface PhaseResult {
  type: 'phase-result';
  latencies: number[];
  errors: number;
}

const BODY = { paths: [{ name: 'tunnel', healthy: true }], agentVersion: 'bench' };

async function worker(): Promise<void> {
  let connections: Array<{ connector: EnrolledConnector; agent: Agent; globalIndex: number }> = [];
  let target: Target | undefined;
  let total = 0;
  const send = (message: unknown) => process.send?.(message);
  process.on('message', async (message: InitMessage | PhaseMessage | { type: 'exit' }) => {
    if (message.type === 'init') {
      target = message.target;
      total = message.total;
      const prepared = await prepareConnectors(target, message.ids, 16);
      const { enrolled, failures, seconds } = await enrollConnectors(target, prepared, 16);
      const enrollRate = enrolled.length / seconds;
      connections = enrolled.map((connector, i) => ({
        connector,
        globalIndex: message.firstIndex + i,
        agent: new Agent({
          keepAlive: true,
          maxSockets: 1,
          ca: target?.caPem,
          key: connector.keyPem,
          cert: connector.certPem,
        }),
      }));
      // Warm-up: one heartbeat each (TLS handshake + bootstrap retirement), 50 at a time.
      const warmup: number[] = [];
      let next = 0;
      const run = async () => {
        while (next < connections.length) {
          const c = connections[next++];
          if (!c || !target) return;
          const res = await post(target, '/v1/heartbeat', BODY, { agent: c.agent });
          if (res.status === 200) warmup.push(res.ms);
        }
      };
      await Promise.all(Array.from({ length: 50 }, run));
      send({ type: 'ready', enrollRate, warmup: summarize(warmup), failures } satisfies ReadyMessage);
    } else if (message.type === 'phase') {
      const latencies: number[] = [];
      let errors = 0;
      let pending = 0;
      const end = message.startAt + message.durationSeconds * 1000;
      const intervalMs = message.intervalSeconds * 1000;
      await new Promise<void>((resolve) => {
        let scheduled = connections.length;
        const finishOne = () => {
          scheduled -= 1;
          if (scheduled === 0 && pending === 0) resolve();
        };
        for (const c of connections) {
          const offset = (c.globalIndex / total) * intervalMs;
          let due = message.startAt + offset;
          const fire = () => {
            if (due >= end || !target) {
              finishOne();
              return;
            }
            pending += 1;
            post(target, '/v1/heartbeat', BODY, { agent: c.agent })
              .then(
                (res) => (res.status === 200 ? latencies.push(res.ms) : errors++),
                () => errors++,
              )
              .finally(() => {
                pending -= 1;
                if (scheduled === 0 && pending === 0) resolve();
              });
            due += intervalMs;
            setTimeout(fire, Math.max(0, due - Date.now()));
          };
          setTimeout(fire, Math.max(0, due - Date.now()));
        }
      });
      send({ type: 'phase-result', latencies, errors } satisfies PhaseResult);
    } else {
      for (const c of connections) c.agent.destroy();
      process.exit(0);
    }
  });
}

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime in clock ticks (100/s)
}

function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(match?.[1] ?? 0) / 1024);
}

async function main(): Promise<void> {
  const connectors = flag('connectors', 10_000);
  const workers = flag('workers', 2);
  const durationSeconds = flag('duration', 20);
  const ratesIndex = process.argv.indexOf('--rates');
  const rates = (ratesIndex >= 0 ? (process.argv[ratesIndex + 1] ?? '') : '1000,2000')
    .split(',')
    .map(Number)
    .filter((n) => n > 0);
  const { fork } = await import('node:child_process');
  console.log(`control-plane heartbeat benchmark: ${connectors} connectors, ${workers} client processes`);
  const cp = await startControlPlaneProcess(['--heartbeat-interval', '10s', '--offline-after', '10m']);
  const pid = cp.child.pid as number;
  const target: Target = { url: cp.url, caPem: cp.caPem, credential: cp.credential };
  const ids = Array.from({ length: connectors }, (_, i) => `bench.hb-${String(i).padStart(5, '0')}`);
  const perWorker = Math.ceil(connectors / workers);
  const children = Array.from({ length: workers }, () =>
    fork(import.meta.filename, ['--worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
  );
  const nextMessage = <T>(child: (typeof children)[number]) =>
    new Promise<T>((resolve, reject) => {
      child.once('message', (message) => resolve(message as T));
      child.once('exit', (code) => reject(new Error(`client process exited ${code}`)));
    });
  try {
    const setupStarted = performance.now();
    const ready = await Promise.all(
      children.map((child, w) => {
        const slice = ids.slice(w * perWorker, (w + 1) * perWorker);
        child.send({
          type: 'init',
          target,
          ids: slice,
          firstIndex: w * perWorker,
          total: connectors,
        } satisfies InitMessage);
        return nextMessage<ReadyMessage>(child);
      }),
    );
    const failures = ready.reduce((n, r) => n + r.failures, 0);
    console.log(
      `setup: ${connectors} connectors created, minted, enrolled and connected in ${((performance.now() - setupStarted) / 1000).toFixed(1)} s` +
        ` (enrollment ${ready.map((r) => r.enrollRate.toFixed(0)).join(' + ')} /s per client process; ${failures} failures)`,
    );
    console.log(`warm-up heartbeat (new mTLS connection): ${JSON.stringify(ready[0]?.warmup)}`);
    const runPhase = (rate: number, seconds: number) => {
      const startAt = Date.now() + 1000;
      return Promise.all(
        children.map((child) => {
          child.send({
            type: 'phase',
            startAt,
            intervalSeconds: connectors / rate,
            durationSeconds: seconds,
          } satisfies PhaseMessage);
          return nextMessage<PhaseResult>(child);
        }),
      );
    };
    // Settle: the warm-up takes long enough for the first connections to sit idle past the server's
    // keep-alive timeout (65 s) and be closed; one unmeasured interval at the first rate reconnects
    // them, so the measured phases see what a running fleet (beating every interval) looks like.
    const firstRate = rates[0] ?? 1000;
    const settle = await runPhase(firstRate, connectors / firstRate);
    console.log(
      `settle: one interval at ${firstRate}/s, ${settle.reduce((n, p) => n + p.errors, 0)} errors (reconnects)`,
    );
    const results: Array<Record<string, unknown>> = [];
    for (const rate of rates) {
      const intervalSeconds = connectors / rate;
      const cpuBefore = cpuSeconds(pid);
      const metricsBefore = (await post(target, '/metrics', undefined, { method: 'GET' })).body;
      const phase = await runPhase(rate, durationSeconds);
      const cpu = (cpuSeconds(pid) - cpuBefore) / durationSeconds;
      const metricsAfter = (await post(target, '/metrics', undefined, { method: 'GET' })).body;
      const server = serverPercentiles(metricsBefore, metricsAfter, '/v1/heartbeat');
      const lagP99 = gauge(metricsAfter, 'nodejs_eventloop_lag_p99_seconds');
      const latencies = phase.flatMap((p) => p.latencies);
      const errors = phase.reduce((n, p) => n + p.errors, 0);
      const summary = summarize(latencies);
      const row = {
        targetPerSecond: rate,
        intervalSeconds: Number(intervalSeconds.toFixed(2)),
        achievedPerSecond: Math.round(latencies.length / durationSeconds),
        errors,
        p50ms: summary.p50,
        p95ms: summary.p95,
        p99ms: summary.p99,
        maxMs: summary.max,
        serverP50ms: server.p50,
        serverP99ms: server.p99,
        eventLoopLagP99ms: lagP99 === undefined ? 'n/a' : Math.round(lagP99 * 1000),
        controlPlaneCpuPercent: Math.round(cpu * 100),
        loadAverage1m: Number(loadavg()[0]?.toFixed(1)),
        controlPlaneRssMiB: rssMiB(pid),
      };
      results.push(row);
      console.log(JSON.stringify(row));
    }
    const metrics = await post(target, '/metrics', undefined, { method: 'GET' });
    const beats = /^cp_heartbeats_total (\d+)/m.exec(metrics.body)?.[1];
    console.log(
      `control plane counted ${beats} heartbeats; online: ${/cp_connectors\{state="online"\} (\d+)/.exec(metrics.body)?.[1]}`,
    );
    console.table(results);
  } finally {
    for (const child of children) child.send({ type: 'exit' });
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
