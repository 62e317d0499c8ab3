// What the operator's and the control plane's /metrics say passes Prometheus's own lint (`promtool
// check metrics`: naming, units, counter and gauge conventions), with a series of every metric.
// prom-client's process and Node metrics, which the control plane's CLI adds, are left out: their
// names are prom-client's (nodejs_active_handles_total is a gauge), not this project's to change.
import test from 'ava';
import { createMetrics } from '../../src/controlplane/metrics.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import { createOperatorMetrics } from '../../src/operator/runtime/metrics.ts';
import { promtool } from './promtool.ts';

test("the operator's metrics, a Connector's included, pass promtool check metrics", async (t) => {
  const metrics = createOperatorMetrics();
  const connector = {
    apiVersion: 'vaultpam.io/v1alpha1',
    kind: 'Connector',
    metadata: { namespace: 'team-a', name: 'db' },
    spec: {},
    status: {
      phase: 'Enrolling',
      enrollment: {
        tokenSecretName: 'db-enrollment-token',
        tokenMintedAt: '2026-12-02T08:00:00Z',
        tokenExpiresAt: '2026-12-02T12:00:00Z',
      },
      identity: { notAfter: '2026-12-03T08:00:00Z' },
      conditions: [{ type: 'Stalled', status: 'True', reason: 'InvalidSpec', lastTransitionTime: '' }],
    },
  } as Connector;
  metrics.setConnectorSource(() => [connector]);
  metrics.observeReconcile('error', 0.2, 'CONTROL_PLANE_UNAVAILABLE');
  metrics.recoveries.inc({ outcome: 'failed' });
  metrics.countThrottled({ verb: 'patch', resource: 'connectors.vaultpam.io' });
  metrics.setConcurrencyLimitSource(() => 4);
  const text = await metrics.registry.metrics();
  t.true(text.includes('vaultpam_operator_kubernetes_throttled_total{'));
  t.true(text.includes('vaultpam_operator_connector_token_expiry_timestamp_seconds{'));
  const lint = await promtool(['check', 'metrics'], undefined, text);
  t.is(lint.code, 0, lint.stdout + lint.stderr);
});

test("the control plane's own metrics pass promtool check metrics", async (t) => {
  const metrics = createMetrics(() => new Map([['online', 3]]));
  metrics.enrollmentFailures.inc({ reason: 'retired' });
  metrics.requestDuration.observe({ route: '/v1/heartbeat', status: '200' }, 0.01);
  const lint = await promtool(['check', 'metrics'], undefined, await metrics.registry.metrics());
  t.is(lint.code, 0, lint.stdout + lint.stderr);
});

test('promtool check metrics refuses what breaks the conventions', async (t) => {
  const lint = await promtool(
    ['check', 'metrics'],
    undefined,
    '# HELP x_total A gauge.\n# TYPE x_total gauge\nx_total 1\n',
  );
  t.not(lint.code, 0);
  t.regex(lint.stdout + lint.stderr, /non-counter metrics should not have "_total" suffix/);
});
