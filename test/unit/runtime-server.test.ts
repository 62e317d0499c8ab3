// The operator's probe server and its metrics server (here without authentication: the metrics'
// access is tested against a real API server in test/cluster/metrics-auth.test.ts), over real
// sockets on 127.0.0.1.
import type { AddressInfo } from 'node:net';
import test from 'ava';
import type { ConnectorPhase } from '../../src/operator/api/types.ts';
import type { InformerStatus } from '../../src/operator/runtime/informers.ts';
import { createOperatorMetrics } from '../../src/operator/runtime/metrics.ts';
import {
  checkLiveness,
  checkReadiness,
  createMetricsServer,
  createRuntimeServer,
  type HealthSource,
} from '../../src/operator/runtime/server.ts';
import { captureLogs } from '../helpers/log-capture.ts';

function informer(overrides: Partial<InformerStatus> = {}): InformerStatus {
  return {
    resource: 'connectors.vaultpam.io',
    state: 'watching',
    synced: true,
    restarts: 0,
    failingForMs: 0,
    ...overrides,
  };
}

async function serve(t: import('ava').ExecutionContext, health: HealthSource, wedgedAfterMs = 60_000) {
  const metrics = createOperatorMetrics();
  const logs = captureLogs();
  const probes = createRuntimeServer({ health, logger: logs.logger, wedgedAfterMs });
  const metricsServer = createMetricsServer({ metrics, logger: logs.logger });
  const ports: number[] = [];
  for (const { server, close } of [probes, metricsServer]) {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(close);
    ports.push((server.address() as AddressInfo).port);
  }
  const [probePort, metricsPort] = ports;
  /** /metrics from the metrics server, anything else from the probe server, unless `on` says. */
  const get = async (path: string, method = 'GET', on?: 'probes' | 'metrics') => {
    const port =
      (on ?? (path.startsWith('/metrics') ? 'metrics' : 'probes')) === 'metrics' ? metricsPort : probePort;
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { method });
    return {
      status: response.status,
      type: response.headers.get('content-type') ?? '',
      text: await response.text(),
    };
  };
  return { metrics, get };
}

test('liveness fails only when an informer has been failing for longer than the threshold', (t) => {
  t.true(checkLiveness([informer(), informer({ state: 'backing-off', failingForMs: 1000 })], 5000).ok);
  const wedged = checkLiveness(
    [informer({ state: 'backing-off', failingForMs: 5001, lastError: 'HTTP 403' })],
    5000,
  );
  t.false(wedged.ok);
  t.is(wedged.status, 'wedged');
  t.true(checkLiveness([], 5000).ok, 'a standby replica with no informers is alive');
});

test('readiness: the leader needs every informer synced; a standby replica is ready', (t) => {
  t.deepEqual(checkReadiness([informer(), informer({ synced: false })], true).status, 'not-ready');
  t.deepEqual(checkReadiness([informer()], true).status, 'ready');
  t.deepEqual(
    checkReadiness([informer()], undefined).status,
    'ready',
    'leader election off: same rule as a leader',
  );
  t.deepEqual(checkReadiness([informer({ synced: false, state: 'idle' })], false).status, 'standby');
  t.true(checkReadiness([informer({ synced: false })], false).ok);
});

test('every operator metric is exposed with the vaultpam_operator_ prefix and live sources are read at scrape time', async (t) => {
  let depth = 3;
  let leading = true;
  let limit = 8;
  const { metrics, get } = await serve(t, { informers: () => [informer()] });
  metrics.setWorkQueueSource(() => ({ depth, inFlight: 2, delayed: 0, failing: 0 }));
  metrics.setLeaderSource(() => leading);
  metrics.setConnectorPhaseSource(
    () =>
      new Map<ConnectorPhase, number>([
        ['Online', 4],
        ['NeedsRecovery', 1],
      ]),
  );
  metrics.observeReconcile('success', 0.02);
  metrics.observeReconcile('error', 0.5, 'CONTROL_PLANE_UNAVAILABLE');
  metrics.enrollmentTokensMinted.inc();
  metrics.recoveries.inc({ outcome: 'succeeded' });
  metrics.countWrite('StatefulSet', 'patch');
  metrics.informerRestarts.inc({ resource: 'pods' });
  metrics.setConcurrencyLimitSource(() => limit);
  metrics.countThrottled({ verb: 'patch', resource: 'connectors.vaultpam.io' });
  metrics.countThrottled({ verb: 'patch', resource: 'connectors.vaultpam.io' });
  // A kind outside the operator's table is counted as other: the label set stays bounded.
  metrics.countThrottled({ verb: 'get', resource: 'widgets.example.com' });
  metrics.countThrottled({ verb: 'get', resource: '' });
  metrics.countAnswered({ verb: 'get', resource: 'configmaps' }, 404);
  metrics.countAnswered({ verb: 'get', resource: 'configmaps' }, 404);
  metrics.countAnswered({ verb: 'get', resource: 'configmaps' }, 200);
  metrics.countAnswered({ verb: 'list', resource: 'widgets.example.com' }, 200);

  const first = await get('/metrics');
  t.is(first.status, 200);
  t.true(first.type.startsWith('text/plain'));
  for (const name of [
    'vaultpam_operator_reconciles_total{result="success"} 1',
    'vaultpam_operator_reconciles_total{result="error"} 1',
    'vaultpam_operator_reconcile_errors_total{code="CONTROL_PLANE_UNAVAILABLE"} 1',
    'vaultpam_operator_reconcile_duration_seconds_count 2',
    'vaultpam_operator_work_queue_depth 3',
    'vaultpam_operator_work_queue_in_flight 2',
    'vaultpam_operator_connectors{phase="Online"} 4',
    'vaultpam_operator_connectors{phase="NeedsRecovery"} 1',
    'vaultpam_operator_connectors{phase="Pending"} 0',
    'vaultpam_operator_enrollment_tokens_minted_total 1',
    'vaultpam_operator_recoveries_total{outcome="succeeded"} 1',
    // Exported at 0 before its first increment, so increase() counts the first failed recovery.
    'vaultpam_operator_recoveries_total{outcome="failed"} 0',
    'vaultpam_operator_kubernetes_writes_total{kind="StatefulSet",verb="patch"} 1',
    'vaultpam_operator_informer_restarts_total{resource="pods"} 1',
    'vaultpam_operator_leader 1',
    'vaultpam_operator_work_queue_concurrency_limit 8',
    'vaultpam_operator_kubernetes_throttled_total{verb="patch",resource="connectors.vaultpam.io"} 2',
    'vaultpam_operator_kubernetes_throttled_total{verb="get",resource="other"} 2',
    'vaultpam_operator_kubernetes_requests_total{verb="get",resource="configmaps",code="404"} 2',
    'vaultpam_operator_kubernetes_requests_total{verb="get",resource="configmaps",code="200"} 1',
    'vaultpam_operator_kubernetes_requests_total{verb="list",resource="other",code="200"} 1',
  ]) {
    t.true(first.text.includes(name), `missing: ${name}`);
  }
  const names = [...first.text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1] ?? '');
  t.true(names.length >= 12);
  t.true(
    names.every((name) => name.startsWith('vaultpam_operator_')),
    names.join(', '),
  );

  t.false(first.text.includes('widgets'));
  depth = 0;
  leading = false;
  limit = 2;
  const second = await get('/metrics');
  t.true(second.text.includes('vaultpam_operator_work_queue_concurrency_limit 2'));
  t.true(second.text.includes('vaultpam_operator_work_queue_depth 0'));
  t.true(second.text.includes('vaultpam_operator_leader 0'));
});

test('name[] limits /metrics to the metrics named; an unknown name is refused with its name', async (t) => {
  const { metrics, get } = await serve(t, { informers: () => [informer()] });
  metrics.setWorkQueueSource(() => ({ depth: 5, inFlight: 1, delayed: 0, failing: 0 }));
  metrics.setLeaderSource(() => true);
  metrics.countWrite('Connector', 'patch');
  const some = await get(
    '/metrics?name[]=vaultpam_operator_kubernetes_writes_total&name[]=vaultpam_operator_work_queue_depth',
  );
  t.is(some.status, 200);
  t.true(some.type.startsWith('text/plain'));
  t.deepEqual(
    [...some.text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]),
    ['vaultpam_operator_kubernetes_writes_total', 'vaultpam_operator_work_queue_depth'],
  );
  t.true(some.text.includes('vaultpam_operator_kubernetes_writes_total{kind="Connector",verb="patch"} 1\n'));
  t.true(some.text.endsWith('vaultpam_operator_work_queue_depth 5\n'));
  t.false(some.text.includes('vaultpam_operator_leader'));
  const twice = await get('/metrics?name[]=vaultpam_operator_leader&name[]=vaultpam_operator_leader');
  t.is([...twice.text.matchAll(/^# TYPE /gm)].length, 1, 'a name given twice is answered once');

  const typo = await get('/metrics?name[]=vaultpam_operator_leader&name[]=vaultpam_operator_leadr');
  t.is(typo.status, 400);
  const answer = JSON.parse(typo.text) as { code: string; message: string };
  t.is(answer.code, 'UNKNOWN_METRIC');
  t.regex(answer.message, /no metric vaultpam_operator_leadr \(name\[\]\)/);
  t.false(answer.message.includes('vaultpam_operator_leader,'), 'only the unknown name is named');
  // And the server keeps serving the whole set.
  t.true((await get('/metrics')).text.includes('vaultpam_operator_leader 1'));
});

test('totalWrites sums every write and can leave out kinds such as Lease renewals', async (t) => {
  const metrics = createOperatorMetrics();
  t.is(await metrics.totalWrites(), 0);
  metrics.countWrite('Lease', 'update');
  metrics.countWrite('Lease', 'update');
  metrics.countWrite('ConfigMap', 'patch');
  metrics.countWrite('Secret', 'delete');
  t.is(await metrics.totalWrites(), 4);
  t.is(await metrics.totalWrites({ excludeKinds: ['Lease'] }), 2);
});

test('/healthz and /readyz answer from the health source over HTTP', async (t) => {
  let statuses = [informer({ synced: false, state: 'listing' })];
  let leader: boolean | undefined = true;
  const { get } = await serve(t, { informers: () => statuses, isLeader: () => leader ?? true }, 10_000);

  let live = await get('/healthz');
  t.is(live.status, 200);
  t.is(JSON.parse(live.text).status, 'alive');
  let ready = await get('/readyz');
  t.is(ready.status, 503);
  t.is(JSON.parse(ready.text).status, 'not-ready');
  t.is(JSON.parse(ready.text).informers[0].resource, 'connectors.vaultpam.io');

  statuses = [informer()];
  ready = await get('/readyz');
  t.is(ready.status, 200);
  t.is(JSON.parse(ready.text).status, 'ready');

  leader = false;
  statuses = [informer({ synced: false, state: 'idle' })];
  ready = await get('/readyz');
  t.is(ready.status, 200);
  t.is(JSON.parse(ready.text).status, 'standby');

  statuses = [informer({ state: 'backing-off', failingForMs: 10_001, lastError: 'HTTP 403' })];
  live = await get('/healthz');
  t.is(live.status, 503);
  t.is(JSON.parse(live.text).status, 'wedged');
  t.is(JSON.parse(live.text).informers[0].lastError, 'HTTP 403');
});

test('unknown paths get 404 and other methods 405, and the server keeps serving', async (t) => {
  const { get } = await serve(t, { informers: () => [] });
  const missing = await get('/nope');
  t.is(missing.status, 404);
  t.regex(JSON.parse(missing.text).message, /\/healthz/);
  const post = await get('/metrics', 'POST');
  t.is(post.status, 405);
  t.is((await get('/healthz', 'POST')).status, 405);
  // Each listener serves its own paths only: the probes never show the metrics, and the metrics
  // listener (the one with authentication) serves nothing else.
  const metricsOnProbes = await get('/metrics', 'GET', 'probes');
  t.is(metricsOnProbes.status, 404);
  t.regex(JSON.parse(metricsOnProbes.text).message, /--metrics-listen/);
  t.false(metricsOnProbes.text.includes('vaultpam_operator_'));
  t.is((await get('/healthz', 'GET', 'metrics')).status, 404);
  const head = await get('/healthz', 'HEAD');
  t.is(head.status, 200);
  t.is(head.text, '');
  t.is((await get('/healthz')).status, 200);
});
