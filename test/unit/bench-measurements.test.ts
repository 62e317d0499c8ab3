// The scale benchmark's own measuring parts: counters diffed between two scrapes (the operator's
// writes, the API server's requests and watch events), and the CPU of each component read from
// /proc, with real processes (a busy child, and one inside a process group its leader started).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import test from 'ava';
import { apiServerLoad } from '../../bench/api-server-metrics.ts';
import { cpuBetween, cpuSnapshot, processUsage } from '../../bench/process-usage.ts';
import { diffCounters, diffRequests, diffWrites, readsPerConnector } from '../../bench/scale-util.ts';

const BEFORE = `# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 10
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 5
apiserver_request_total{code="200",component="",dry_run="",group="",resource="",scope="",subresource="/metrics",verb="GET",version=""} 1
apiserver_watch_events_total{group="",resource="pods",version="v1"} 100
`;
const AFTER = `apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 14
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 2
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 5
apiserver_request_total{code="200",component="",dry_run="",group="",resource="",scope="",subresource="/metrics",verb="GET",version=""} 2
apiserver_watch_events_total{group="",resource="pods",version="v1"} 130
apiserver_watch_events_total{group="apps",resource="statefulsets",version="v1"} 7
`;

test('the API server load sums the codes of one verb and resource, and leaves out what did not grow', (t) => {
  const load = apiServerLoad(BEFORE, AFTER);
  t.deepEqual(load.requests, { 'PATCH pods/status': 6, 'GET (non-resource)//metrics': 1 });
  t.deepEqual(load.watchEventsSent, { pods: 30, statefulsets: 7 });
});

test('the API server load keeps the fifteen largest entries and sums the rest as other', (t) => {
  const line = (resource: string, n: number) =>
    `apiserver_request_total{code="200",group="",resource="${resource}",subresource="",verb="GET",version="v1"} ${n}`;
  const after = Array.from({ length: 20 }, (_, i) => line(`r${i}`, i + 1)).join('\n');
  const load = apiServerLoad('', after);
  t.is(Object.keys(load.requests).length, 16);
  t.is(load.requests['GET r19'], 20);
  t.is(load.requests['GET r5'], 6);
  t.is(load.requests['GET r4'], undefined);
  t.is(load.requests.other, 1 + 2 + 3 + 4 + 5);
});

test('diffCounters without a grouping keeps each label set; diffWrites reads the operator counter', (t) => {
  const writes = (n: number) =>
    `vaultpam_operator_kubernetes_writes_total{kind="Connector",verb="patch"} ${n}\nvaultpam_operator_kubernetes_writes_total{kind="Lease",verb="update"} 3`;
  t.deepEqual(diffWrites(writes(2), writes(9)), { 'kind=Connector,verb=patch': 7 });
  t.deepEqual(
    diffCounters(writes(2), writes(9), 'vaultpam_operator_kubernetes_writes_total', (l) => l.verb),
    { patch: 7 },
  );
});

test("diffRequests names the operator's requests by verb, resource and answer; reads per connector count get and list, the Lease's aside", (t) => {
  const scrape = (gets404: number, gets200: number, patches: number) =>
    [
      `vaultpam_operator_kubernetes_requests_total{verb="get",resource="configmaps",code="404"} ${gets404}`,
      `vaultpam_operator_kubernetes_requests_total{verb="get",resource="configmaps",code="200"} ${gets200}`,
      `vaultpam_operator_kubernetes_requests_total{verb="list",resource="pods",code="200"} 1`,
      `vaultpam_operator_kubernetes_requests_total{verb="get",resource="leases.coordination.k8s.io",code="200"} ${gets200 * 2}`,
      `vaultpam_operator_kubernetes_requests_total{verb="patch",resource="connectors.vaultpam.io",code="200"} ${patches}`,
    ].join('\n');
  const requests = diffRequests(scrape(1, 0, 2), scrape(11, 5, 30));
  t.deepEqual(requests, {
    'get configmaps 404': 10,
    'get configmaps 200': 5,
    'patch connectors.vaultpam.io 200': 28,
    'get leases.coordination.k8s.io 200': 10,
  });
  t.is(
    readsPerConnector(requests, 10),
    1.5,
    "the Lease's reads are the leader election's, not a connector's",
  );
  t.is(readsPerConnector({}, 0), 0);
});

/**
 * A Node process that spins until it has used `ms` of CPU (not of wall time: the test workers
 * share the cores), then says so and waits to be killed.
 */
const BUSY = (ms: number) =>
  `const used = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; }; const end = used() + ${ms}; while (used() < end); process.stdout.write('done\\n'); setInterval(() => {}, 1000);`;

test('cpuBetween gives a process its own CPU time, and the machine busy at least that much', async (t) => {
  const child = spawn(process.execPath, ['-e', BUSY(400)], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => child.kill('SIGKILL'));
  await once(child, 'spawn');
  const before = cpuSnapshot();
  await once(child.stdout, 'data');
  const after = cpuSnapshot();
  const breakdown = cpuBetween(before, after, { busy: { pid: child.pid ?? 0 }, nobody: { pid: 0 } });
  t.true((breakdown.components.busy ?? -1) >= 0.3, `the spinning child spent ${breakdown.components.busy} s`);
  t.is(breakdown.components.nobody, 0);
  t.true((breakdown.components.other ?? -1) >= 0);
  t.true(breakdown.machineBusyCores > 0);
  t.true(processUsage(child.pid ?? 0).cpuSeconds >= 0.3);
});

test('cpuBetween sums a process group: the CPU of a process its leader started counts for the group', async (t) => {
  // A detached shell leads its own group, as a cluster component's watchdog does; the spinning
  // Node process it starts is in that group (`; exit 0` keeps bash from exec-ing it, so the shell
  // stays the leader and the spinning process is another member).
  const leader = spawn(
    'bash',
    ['-c', `"${process.execPath}" -e "${BUSY(400).replaceAll('"', '\\"')}"; exit 0`],
    {
      detached: true,
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  t.teardown(() => {
    try {
      process.kill(-(leader.pid ?? 0), 'SIGKILL');
    } catch {
      // already gone
    }
  });
  await once(leader, 'spawn');
  const before = cpuSnapshot();
  await once(leader.stdout, 'data');
  const after = cpuSnapshot();
  const breakdown = cpuBetween(before, after, {
    group: { processGroup: leader.pid ?? 0 },
    leaderAlone: { pid: leader.pid ?? 0 },
  });
  t.true((breakdown.components.group ?? -1) >= 0.3, `the group spent ${breakdown.components.group} s`);
  t.true((breakdown.components.leaderAlone ?? 1) < 0.1, 'the shell itself hardly ran');
});
