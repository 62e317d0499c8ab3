// The informer's restart policy, with time driven by a FakeClock: an API server that refuses
// connections (a real closed port) makes every attempt fail, and each restart waits twice as long as
// the one before, up to the cap. Nothing here sleeps; the test advances time itself.
import { KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import test from 'ava';
import { FakeClock } from '../../src/lib/clock.ts';
import { Informer } from '../../src/operator/runtime/informers.ts';
import { createOperatorMetrics } from '../../src/operator/runtime/metrics.ts';
import { RESOURCE_TYPES } from '../../src/operator/runtime/resources.ts';
import { checkLiveness } from '../../src/operator/runtime/server.ts';
import { eventually } from '../helpers/eventually.ts';
import { captureLogs } from '../helpers/log-capture.ts';

function unreachableKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'closed', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'u', token: 'unused' }],
    contexts: [{ name: 'closed', cluster: 'closed', user: 'u' }],
    currentContext: 'closed',
  });
  return kc;
}

test('restarts back off exponentially up to the cap, are counted, and stop() cancels the pending one', async (t) => {
  const clock = new FakeClock();
  const metrics = createOperatorMetrics();
  const logs = captureLogs();
  const informer = new Informer<V1ConfigMap>({
    kc: unreachableKubeConfig(),
    type: RESOURCE_TYPES.configMap,
    namespace: 'default',
    logger: logs.logger,
    metrics,
    clock,
    restartBackoff: { baseMs: 100, capMs: 500 },
  });
  t.teardown(() => informer.stop());
  const sync = informer.waitForSync();
  informer.start();

  const delays: number[] = [];
  for (let attempt = 1; attempt <= 5; attempt += 1) {
    // Each attempt fails on the refused connection and leaves exactly one restart timer behind.
    const due = await eventually(() => (clock.pendingTimers === 1 ? clock.nextDueIn() : undefined), {
      description: `failure ${attempt} scheduled a restart`,
    });
    delays.push(due);
    t.is(informer.status().state, 'backing-off');
    t.is(informer.status().restarts, attempt - 1);
    clock.advance(due);
  }
  t.deepEqual(delays, [100, 200, 400, 500, 500]);

  await eventually(() => clock.pendingTimers === 1, { description: 'sixth failure scheduled' });
  const status = informer.status();
  t.is(status.restarts, 5);
  t.false(status.synced);
  t.is(
    status.failingForMs,
    100 + 200 + 400 + 500 + 500,
    'failing since the first failure, on the injected clock',
  );
  t.regex(status.lastError ?? '', /ECONNREFUSED|fetch failed/);
  t.false(checkLiveness([status], 1000).ok, 'failing longer than the threshold reads as wedged');

  const errors = (await metrics.informerWatchErrors.get()).values[0]?.value;
  const restarts = (await metrics.informerRestarts.get()).values[0]?.value;
  t.is(errors, 6);
  t.is(restarts, 5);
  t.is(
    logs.records().filter((r) => r.msg === 'informer list/watch failed; restarting with backoff').length,
    6,
  );

  informer.stop();
  t.is(clock.pendingTimers, 0, 'stop() cancels the pending restart');
  t.is(informer.status().state, 'stopped');
  const rejected = await t.throwsAsync(sync);
  t.is((rejected as { code?: string }).code, 'INFORMER_STOPPED');
});

test('invalid backoff or resync settings are refused with the values named', (t) => {
  const base = {
    kc: unreachableKubeConfig(),
    type: RESOURCE_TYPES.configMap,
    logger: captureLogs().logger,
  };
  t.throws(() => new Informer({ ...base, restartBackoff: { baseMs: 500, capMs: 100 } }), {
    message: /baseMs 500 and capMs 100/,
  });
  t.throws(() => new Informer({ ...base, resyncPeriodMs: -1 }), { message: /resyncPeriodMs .* got -1/ });
});
