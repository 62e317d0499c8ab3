// Figure 7 of the scale benchmark (issue 11): the reference control plane alone with a fleet of N
// agents (default 10,000). One command: `npx node bench/control-plane-scale.ts --agents 10000`.
//
// Separate processes: the control plane (src/bin/control-plane.ts compiled and started as its image
// starts it, tools/image-layout.ts, so its RSS and CPU are its own, read from /proc) and the load generator (bench/control-plane-agents.ts,
// forked --workers times), whose agents use the real agent client. In order:
//
//   1. the connectors are created and their tokens minted over the admin API (not a figure);
//   2. every agent enrolls, --enroll-concurrency at a time across the load generator: enrollments/s;
//   3. the agents start heartbeating at the interval the control plane answers, their first beats
//      spread over --ramp-seconds (a fleet does not start in one second), then one settle interval;
//   4. the steady window (--steady-seconds): heartbeats/s the control plane counted, the agents'
//      latency p50/p99 (connect, TLS and answer, as an agent sees it) beside the control plane's own
//      handler time, its RSS (VmRSS, and VmHWM: the peak of the whole run) and CPU, its open
//      connections (sampled every second from /proc/net/tcp), its TLS handshakes (full or resumed).
//
// Figures go to <out>/control-plane-<N>.json and .md (or --name) and are printed; nothing is asserted
// on time.
// Every process it starts is stopped on exit, on failure and on Ctrl-C. Traffic goes to loopback only,
// and every wait is bounded.
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { benchArgs, positiveFlag } from './bench-args.ts';
import type { AgentsBeaten, AgentsCommand, AgentsEnrolled, AgentsReport } from './control-plane-agents.ts';
import {
  type ControlPlaneProcess,
  gauge,
  post,
  prepareConnectors,
  serverPercentiles,
  startControlPlaneProcess,
  summarize,
  type Target,
} from './control-plane-common.ts';
import { processUsage } from './process-usage.ts';
import { round, say, sleep, writeResult } from './scale-util.ts';

const PROGRAM = 'bench/control-plane-scale.ts';
const { values: args } = benchArgs(PROGRAM, {
  options: {
    agents: { type: 'string', default: '10000' },
    workers: { type: 'string', default: '2' },
    'enroll-concurrency': { type: 'string', default: '32' },
    'heartbeat-interval': { type: 'string', default: '10s' },
    'ramp-seconds': { type: 'string', default: '60' },
    'steady-seconds': { type: 'string', default: '60' },
    'control-plane-arg': { type: 'string', multiple: true, default: [] },
    'control-plane-node-arg': { type: 'string', multiple: true, default: [] },
    out: { type: 'string', default: join(import.meta.dirname, 'results') },
    name: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(
    [
      'npx node bench/control-plane-scale.ts [flags]   figure 7: the control plane alone at N agents',
      '  --agents N                 fleet size (10000)',
      '  --workers N                load-generator processes (2)',
      '  --enroll-concurrency N     enrollments in flight across the load generator (32)',
      '  --heartbeat-interval D     the control plane --heartbeat-interval the agents follow (10s)',
      '  --ramp-seconds S           the first heartbeats are spread over this long (60)',
      '  --steady-seconds S         the measured window (60)',
      '  --control-plane-arg A      one more control-plane flag, repeatable (e.g. --control-plane-arg=--keep-alive-timeout=65s)',
      '  --control-plane-node-arg A a node flag for the control plane, repeatable (e.g. --control-plane-node-arg=--cpu-prof)',
      '  --out DIR                  where the figures go (bench/results)',
      '  --name NAME                their file name, without .json and .md (control-plane-<N>)',
      '',
    ].join('\n'),
  );
  process.exit(0);
}
const positive = (name: keyof typeof args) => positiveFlag(PROGRAM, name, args[name]);
const N = Math.floor(positive('agents'));
const workers = Math.min(N, Math.floor(positive('workers')));
const enrollConcurrency = Math.floor(positive('enroll-concurrency'));
const rampSeconds = positive('ramp-seconds');
const steadySeconds = positive('steady-seconds');
const heartbeatInterval = args['heartbeat-interval'] as string;
const controlPlaneArgs = (args['control-plane-arg'] ?? []).flatMap((arg) => {
  const [flag, ...value] = arg.split('=');
  return value.length > 0 ? [flag as string, value.join('=')] : [flag as string];
});

const mib = (bytes: number | undefined) => (bytes === undefined ? null : round(bytes / 2 ** 20));

// ---- processes, and stopping every one of them ------------------------------------------------

let controlPlane: ControlPlaneProcess | undefined;
const children: ChildProcess[] = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const child of children) if (child.connected) child.send({ type: 'exit' } satisfies AgentsCommand);
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
            child.once('exit', () => {
              clearTimeout(timer);
              done();
            });
          }),
      ),
    );
    if (controlPlane) await Promise.race([controlPlane.stop(), sleep(10_000)]);
    controlPlane?.child.kill('SIGKILL');
  })();
  return cleaning;
}
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) {
      for (const child of children) child.kill('SIGKILL');
      controlPlane?.child.kill('SIGKILL');
      process.exit(130);
    }
    interrupted = true;
    say(`\n${signal}: stopping every process this benchmark started (again to kill at once)…`);
    void cleanup().then(() => process.exit(130));
  });
}

/** The next report of each load-generator process of the given type; fails when one exits first. */
function reports<T extends AgentsReport>(type: T['type'], timeoutMs: number): Promise<T[]> {
  return Promise.all(
    children.map(
      (child) =>
        new Promise<T>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`no ${type} report within ${timeoutMs / 1000} s`)),
            timeoutMs,
          );
          const onExit = (code: number | null) => {
            clearTimeout(timer);
            reject(new Error(`a load-generator process exited (${code}) before its ${type} report`));
          };
          const onMessage = (report: AgentsReport) => {
            if (report.type !== type) return;
            clearTimeout(timer);
            child.off('message', onMessage);
            child.off('exit', onExit);
            resolve(report as T);
          };
          child.on('message', onMessage);
          child.once('exit', onExit);
        }),
    ),
  );
}

/** Established TCP connections whose local port is the control plane's: its open connections. */
function openConnections(port: number): number {
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  let count = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      // "  sl  local_address rem_address   st ...": st 01 is ESTABLISHED.
      const fields = line.trim().split(/\s+/);
      if (fields[3] === '01' && fields[1]?.endsWith(`:${portHex}`)) count += 1;
    }
  }
  return count;
}

/** One sample of a Prometheus text series with exactly these labels, or undefined. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const prefix = labels ? `${name}{${labels}} ` : `${name} `;
  const line = text.split('\n').find((candidate) => candidate.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(prefix.length));
}

const metricsOf = async (target: Target) =>
  (await post(target, '/metrics', undefined, { method: 'GET' })).body;

// ---- the run --------------------------------------------------------------------------------------

const started = Date.now();
try {
  say(
    `control plane at ${N} agents (figure 7): ${workers} load-generator processes, heartbeat ${heartbeatInterval}`,
  );
  controlPlane = await startControlPlaneProcess(
    ['--heartbeat-interval', heartbeatInterval, ...controlPlaneArgs],
    args['control-plane-node-arg'] ?? [],
  );
  const pid = controlPlane.child.pid as number;
  const port = Number(new URL(controlPlane.url).port);
  const target: Target = {
    url: controlPlane.url,
    caPem: controlPlane.caPem,
    credential: controlPlane.credential,
  };
  await sleep(1_000);
  const atStart = processUsage(pid);
  say(`1/4 control plane ${controlPlane.url} (pid ${pid}), ${atStart.rssMiB} MiB`);

  const ids = Array.from({ length: N }, (_, i) => `bench.cp-${String(i).padStart(5, '0')}`);
  const prepareStarted = performance.now();
  const prepared = await prepareConnectors(target, ids, 32);
  const prepareSeconds = (performance.now() - prepareStarted) / 1000;
  const afterPrepare = processUsage(pid);
  say(
    `    ${N} connectors created and tokens minted in ${round(prepareSeconds)} s (${Math.round((2 * N) / prepareSeconds)} admin requests/s), ${afterPrepare.rssMiB} MiB`,
  );

  const perWorker = Math.ceil(N / workers);
  for (let w = 0; w < workers; w++) {
    const child = fork(join(import.meta.dirname, 'control-plane-agents.ts'), [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.push(child);
    child.send({
      type: 'init',
      url: controlPlane.url,
      caPem: controlPlane.caPem,
      agents: prepared.slice(w * perWorker, (w + 1) * perWorker),
      firstIndex: w * perWorker,
      total: N,
    } satisfies AgentsCommand);
  }
  await reports('prepared', 600_000);
  say('2/4 keys and CSRs made; enrolling');

  const beforeEnroll = processUsage(pid);
  for (const child of children) {
    child.send({
      type: 'enroll',
      concurrency: Math.ceil(enrollConcurrency / workers),
    } satisfies AgentsCommand);
  }
  const enrolledReports = await reports<AgentsEnrolled>('enrolled', 1_800_000);
  const afterEnroll = processUsage(pid);
  const enrollWindow =
    (Math.max(...enrolledReports.map((r) => r.endedAt)) -
      Math.min(...enrolledReports.map((r) => r.startedAt))) /
    1000;
  const enrollFailures = enrolledReports.reduce((n, r) => n + r.failures, 0);
  const enrollLatency = summarize(enrolledReports.flatMap((r) => r.latencies));
  const enrollment = {
    enrollments: N - enrollFailures,
    failures: enrollFailures,
    ...(enrollFailures > 0 ? { lastError: enrolledReports.find((r) => r.lastError)?.lastError } : {}),
    concurrency: enrollConcurrency,
    seconds: round(enrollWindow, 2),
    perSecond: round((N - enrollFailures) / enrollWindow),
    p50Ms: enrollLatency.p50,
    p99Ms: enrollLatency.p99,
    maxMs: enrollLatency.max,
    controlPlaneCpuPercentOfCore: round(
      ((afterEnroll.cpuSeconds - beforeEnroll.cpuSeconds) / enrollWindow) * 100,
    ),
    controlPlaneRssMiB: afterEnroll.rssMiB,
  };
  say(
    `    ${enrollment.enrollments} enrolled in ${enrollment.seconds} s: ${enrollment.perSecond}/s, p50 ${enrollment.p50Ms} ms, p99 ${enrollment.p99Ms} ms, ${enrollFailures} failures; ${afterEnroll.rssMiB} MiB`,
  );

  const intervalMs = (enrolledReports[0]?.intervalSeconds ?? 10) * 1000;
  const firstAt = Date.now() + 2_000;
  const rampMs = rampSeconds * 1000;
  const measureFrom = firstAt + rampMs + intervalMs;
  const measureUntil = measureFrom + steadySeconds * 1000;
  for (const child of children) {
    child.send({
      type: 'beat',
      firstAt,
      rampMs,
      measureFrom,
      measureUntil,
      stopAt: measureUntil,
    } satisfies AgentsCommand);
  }
  const beaten = reports<AgentsBeaten>('beaten', measureUntil - Date.now() + 120_000);
  say(
    `3/4 heartbeating every ${intervalMs / 1000} s; first beats over ${rampSeconds} s, then one interval to settle`,
  );
  const samples: Array<{ at: number; rssMiB: number; connections: number }> = [];
  const sampler = setInterval(() => {
    samples.push({ at: Date.now(), rssMiB: processUsage(pid).rssMiB, connections: openConnections(port) });
  }, 1_000);
  await sleep(measureFrom - Date.now());
  const steadyStart = processUsage(pid);
  const generatorStart = children.map((child) => processUsage(child.pid as number).cpuSeconds);
  const metricsBefore = await metricsOf(target);
  say(`4/4 steady window of ${steadySeconds} s`);
  await sleep(measureUntil - Date.now());
  const steadyEnd = processUsage(pid);
  const generatorCpuSeconds = children.reduce(
    (sum, child, i) => sum + processUsage(child.pid as number).cpuSeconds - (generatorStart[i] ?? 0),
    0,
  );
  const metricsAfter = await metricsOf(target);
  clearInterval(sampler);
  const beatReports = await beaten;
  const windowSeconds = (steadyEnd.at - steadyStart.at) / 1000;
  const inWindow = samples.filter((s) => s.at >= measureFrom && s.at < measureUntil);
  const delta = (name: string, labels = '') =>
    (sample(metricsAfter, name, labels) ?? Number.NaN) - (sample(metricsBefore, name, labels) ?? Number.NaN);
  const latency = summarize(beatReports.flatMap((r) => r.latencies));
  const errors: Record<string, number> = {};
  for (const report of beatReports) {
    for (const [code, count] of Object.entries(report.errors)) errors[code] = (errors[code] ?? 0) + count;
  }
  const server = serverPercentiles(metricsBefore, metricsAfter, '/v1/heartbeat');
  const handshakesFull = delta('cp_http_tls_handshakes_total', 'resumed="false"');
  const handshakesResumed = delta('cp_http_tls_handshakes_total', 'resumed="true"');
  const steady = {
    seconds: round(windowSeconds),
    heartbeatsPerSecond: round(delta('cp_heartbeats_total') / windowSeconds),
    agentAcceptedPerSecond: round(latency.count / windowSeconds),
    errors,
    p50Ms: latency.p50,
    p99Ms: latency.p99,
    maxMs: latency.max,
    serverHandlerP50Ms: server.p50,
    serverHandlerP99Ms: server.p99,
    eventLoopLagP99Ms: round((gauge(metricsAfter, 'nodejs_eventloop_lag_p99_seconds') ?? Number.NaN) * 1000),
    controlPlaneCpuPercentOfCore: round(
      ((steadyEnd.cpuSeconds - steadyStart.cpuSeconds) / windowSeconds) * 100,
    ),
    loadGeneratorCpuPercentOfCore: round((generatorCpuSeconds / windowSeconds) * 100),
    controlPlaneRssMiB: steadyEnd.rssMiB,
    controlPlaneRssMaxInWindowMiB: Math.max(...inWindow.map((s) => s.rssMiB)),
    controlPlanePeakRssMiB: steadyEnd.hwmMiB,
    heapUsedMiB: mib(gauge(metricsAfter, 'nodejs_heap_size_used_bytes')),
    externalMiB: mib(gauge(metricsAfter, 'nodejs_external_memory_bytes')),
    openConnectionsMean: round(
      inWindow.reduce((n, s) => n + s.connections, 0) / Math.max(1, inWindow.length),
    ),
    openConnectionsMax: Math.max(...inWindow.map((s) => s.connections)),
    // Absent (null) on a control plane that does not count them.
    tlsHandshakesPerSecond: Number.isNaN(handshakesFull)
      ? null
      : { full: round(handshakesFull / windowSeconds), resumed: round(handshakesResumed / windowSeconds) },
    heartbeatTimeoutsTotal: sample(metricsAfter, 'cp_tunnel_heartbeat_timeouts_total') ?? null,
    onlineAtEnd: sample(metricsAfter, 'cp_connectors', 'state="online"') ?? null,
    heartbeatsSentWholeRun: beatReports.reduce((n, r) => n + r.sent, 0),
    heartbeatsFailedWholeRun: beatReports.reduce((n, r) => n + r.failed, 0),
    loadAverage1m: round(loadavg()[0] ?? 0),
  };

  const result = {
    benchmark: 'bench/control-plane-scale.ts',
    figure: 7,
    date: new Date().toISOString(),
    agents: N,
    machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown' },
    versions: { node: process.version },
    settings: {
      workers,
      heartbeatInterval,
      heartbeatIntervalAnsweredSeconds: intervalMs / 1000,
      rampSeconds,
      steadySeconds,
      enrollConcurrency,
      controlPlaneArgs,
    },
    controlPlaneAtStart: { rssMiB: atStart.rssMiB },
    admin: { seconds: round(prepareSeconds, 2), requests: 2 * N, controlPlaneRssMiB: afterPrepare.rssMiB },
    enrollment,
    steady,
    totalSeconds: round((Date.now() - started) / 1000),
  };
  await writeResult(args.out as string, args.name ?? `control-plane-${N}`, result, markdown(result));
} catch (error) {
  // After Ctrl-C, a request to a process that is stopping fails: that is no failure of the run.
  if (interrupted) await new Promise(() => {});
  process.stderr.write(
    `control-plane benchmark failed: ${error instanceof Error ? error.stack : String(error)}\n`,
  );
  process.exitCode = 1;
}
await cleanup();
process.exit(process.exitCode ?? 0);

interface ResultForTable {
  date: string;
  agents: number;
  machine: { cores: number; cpu: string };
  versions: { node: string };
  settings: {
    workers: number;
    heartbeatIntervalAnsweredSeconds: number;
    rampSeconds: number;
    controlPlaneArgs: string[];
  };
  controlPlaneAtStart: { rssMiB: number };
  admin: { controlPlaneRssMiB: number };
  enrollment: {
    enrollments: number;
    failures: number;
    concurrency: number;
    seconds: number;
    perSecond: number;
    p50Ms: number;
    p99Ms: number;
    controlPlaneCpuPercentOfCore: number;
    controlPlaneRssMiB: number;
  };
  steady: {
    seconds: number;
    heartbeatsPerSecond: number;
    errors: Record<string, number>;
    p50Ms: number;
    p99Ms: number;
    maxMs: number;
    serverHandlerP50Ms: string;
    serverHandlerP99Ms: string;
    controlPlaneCpuPercentOfCore: number;
    loadGeneratorCpuPercentOfCore: number;
    controlPlaneRssMiB: number;
    controlPlaneRssMaxInWindowMiB: number;
    controlPlanePeakRssMiB: number;
    heapUsedMiB: number | null;
    externalMiB: number | null;
    openConnectionsMean: number;
    openConnectionsMax: number;
    tlsHandshakesPerSecond: { full: number; resumed: number } | null;
    heartbeatTimeoutsTotal: number | null;
    onlineAtEnd: number | null;
    loadAverage1m: number;
  };
}

function markdown(r: ResultForTable): string {
  const s = r.steady;
  const e = r.enrollment;
  const errors =
    Object.entries(s.errors)
      .map(([code, count]) => `${count} ${code}`)
      .join(', ') || '0';
  const rows: Array<[string, string, string]> = [
    [
      '(7) heartbeats/s sustained',
      `${s.heartbeatsPerSecond} /s`,
      `over ${s.seconds} s, every agent every ${r.settings.heartbeatIntervalAnsweredSeconds} s; errors ${errors}; ${s.onlineAtEnd} online at the end, ${s.heartbeatTimeoutsTotal} heartbeat timeouts in the run`,
    ],
    [
      '(7) heartbeat latency, as the agents see it',
      `p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms`,
      `max ${s.maxMs} ms; the control plane's own handler time p50 ${s.serverHandlerP50Ms} ms, p99 ${s.serverHandlerP99Ms} ms (bucket bounds)`,
    ],
    [
      `(7) enrollments/s (${e.enrollments + e.failures} enrollments)`,
      `${e.perSecond} /s`,
      `${e.seconds} s, ${e.concurrency} in flight, p50 ${e.p50Ms} ms, p99 ${e.p99Ms} ms, ${e.failures} failures; control-plane CPU ${e.controlPlaneCpuPercentOfCore} % of a core`,
    ],
    [
      '(7) control-plane RSS',
      `${s.controlPlaneRssMiB} MiB`,
      `VmHWM (peak of the run) ${s.controlPlanePeakRssMiB} MiB; max in the window ${s.controlPlaneRssMaxInWindowMiB} MiB; ${r.controlPlaneAtStart.rssMiB} MiB at start, ${r.admin.controlPlaneRssMiB} MiB with the ${r.agents} records, ${e.controlPlaneRssMiB} MiB after enrollment; V8 heap used ${s.heapUsedMiB} MiB, external ${s.externalMiB} MiB`,
    ],
    [
      '(7) control-plane CPU',
      `${s.controlPlaneCpuPercentOfCore} % of a core`,
      `over the window; the load generator (same cores) ${s.loadGeneratorCpuPercentOfCore} %; 1-minute load average ${s.loadAverage1m}`,
    ],
    [
      '(7) open connections',
      `mean ${s.openConnectionsMean}, max ${s.openConnectionsMax}`,
      s.tlsHandshakesPerSecond
        ? `TLS handshakes ${s.tlsHandshakesPerSecond.resumed} /s resumed, ${s.tlsHandshakesPerSecond.full} /s full`
        : 'TLS handshakes not counted by this control plane',
    ],
  ];
  return [
    `# Control plane at ${r.agents} agents (figure 7)`,
    '',
    `${r.date}; ${r.machine.cores} cores (${r.machine.cpu}); Node ${r.versions.node};`,
    `${r.settings.workers} load-generator processes (the agent's own client) on the same machine; first heartbeats spread over ${r.settings.rampSeconds} s;`,
    `control-plane flags beyond the benchmark's: ${r.settings.controlPlaneArgs.join(' ') || 'none'}.`,
    '',
    '| figure | value | beside it |',
    '| --- | --- | --- |',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
    '',
  ].join('\n');
}
