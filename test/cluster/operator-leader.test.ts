// The operator binary leads, serves its probes and, on SIGTERM, releases its Lease and exits 0. Two
// operator replicas: only the Lease holder acts; when the leader dies without releasing the Lease,
// the standby takes over after it expires and carries on from the cluster's state alone.
import { mkdtemp, rm } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinationV1Api, CoreV1Api } from '@kubernetes/client-node';
import test from 'ava';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';
import {
  connectors,
  LEASE_NAME,
  OPERATOR_NAMESPACE,
  type OperatorEnvironment,
  operatorProgramSetup,
  startOperatorEnvironment,
} from '../helpers/operator-env.ts';
import { runProgram } from '../helpers/program.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;

test.serial.before(async () => {
  env = await startOperatorEnvironment(cluster());
});
test.after.always(async () => {
  await env?.stop();
});

const spec = { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: [] } };

async function reconcileCount(metrics: {
  registry: {
    getSingleMetric(name: string): { get(): Promise<{ values: Array<{ value: number }> }> } | undefined;
  };
}) {
  const metric = await metrics.registry.getSingleMetric('vaultpam_operator_reconciles_total')?.get();
  return metric?.values.reduce((sum, v) => sum + v.value, 0) ?? 0;
}

function httpStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

// First in the file: no in-process operator holds the Lease yet.
test.serial(
  'the operator binary leads, serves probes, and on SIGTERM releases its Lease and exits 0',
  async (t) => {
    const { kc } = cluster();
    const dir = await mkdtemp(join(tmpdir(), 'operator-bin-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const setup = await operatorProgramSetup(env, dir);
    const program = runProgram(t, 'src/bin/operator.ts', setup.args, {
      env: { PATH: process.env.PATH ?? '', ...setup.env, POD_NAME: 'binary-replica' },
    });
    const started = await eventually(
      () => {
        const line = program
          .output()
          .split('\n')
          .find((l) => l.includes('"operator started"'));
        return line
          ? (JSON.parse(line) as { listen: { host: string; port: number }; metrics: string })
          : undefined;
      },
      { description: 'the operator started' },
    );
    const base = `http://${started.listen.host}:${started.listen.port}`;
    t.is(await httpStatus(`${base}/healthz`), 200);
    // /metrics on its own listener, with the certificate of --metrics-cert-dir, for Prometheus' token only.
    const metrics = { url: started.metrics, certificatePem: setup.metrics.certificatePem };
    t.regex(metrics.url, /^https:/);
    t.is((await scrapeMetrics(metrics)).status, 401);
    const scraped = await scrapeMetrics(metrics, { token: await env.metricsReaderToken() });
    t.is(scraped.status, 200);
    t.true(scraped.text.includes('vaultpam_operator_leader '));
    const leases = kc.makeApiClient(CoordinationV1Api);
    await eventually(
      async () =>
        (
          await leases.readNamespacedLease({ namespace: OPERATOR_NAMESPACE, name: LEASE_NAME })
        ).spec?.holderIdentity?.startsWith('binary-replica_'),
      { description: 'the binary holds the Lease (identity: pod name and a random suffix)' },
    );
    await eventually(async () => (await httpStatus(`${base}/readyz`)) === 200, { description: 'ready' });

    program.child.kill('SIGTERM');
    const code = await Promise.race([
      program.closed,
      new Promise<string>((resolve) => setTimeout(() => resolve('still running after 15 s'), 15_000)),
    ]);
    t.is(code, 0, program.output().slice(-2000));
    const lease = await leases.readNamespacedLease({ namespace: OPERATOR_NAMESPACE, name: LEASE_NAME });
    t.falsy(
      lease.spec?.holderIdentity,
      'the Lease was released, so a successor need not wait for it to expire',
    );
    t.regex(program.output(), /"stopping"/);
  },
);

test.serial(
  'a standby replica does nothing while the leader holds the lease; killing the leader hands over',
  async (t) => {
    const { kc } = cluster();
    const core = kc.makeApiClient(CoreV1Api);
    const api = connectors(kc);
    const first = await env.startOperator();
    await eventually(() => first.isLeader(), { description: 'first replica leads' });
    const second = await env.startOperator();
    await second.ready();

    const namespace = await createTestNamespace(kc, 'lead');
    await api.create(namespace, { metadata: { name: 'one', namespace }, spec });
    await eventually(() => core.readNamespacedSecret({ namespace, name: 'one-enrollment-token' }), {
      description: 'leader acted',
    });
    t.false(second.isLeader());
    t.is(await reconcileCount(second.metrics as never), 0, 'the standby reconciled nothing');
    t.is(await second.metrics.totalWrites({ excludeKinds: ['Lease'] }), 0, 'and wrote nothing');

    // The leader dies: it stops renewing and never releases the lease.
    await first.stop({ release: false });
    await eventually(() => second.isLeader(), {
      description: 'standby takes over after the lease expires',
      timeoutMs: 20_000,
    });
    await api.create(namespace, { metadata: { name: 'two', namespace }, spec });
    await eventually(() => core.readNamespacedSecret({ namespace, name: 'two-enrollment-token' }), {
      description: 'new leader acted',
    });
    // A pass is counted when it ends, after the Secret it wrote: wait for the count, not just the Secret.
    t.true(
      await eventually(async () => (await reconcileCount(second.metrics as never)) > 0, {
        description: 'the new leader counted its passes',
      }),
    );
    const lease = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({
      namespace: 'vaultpam-system',
      name: 'vaultpam-connector-operator',
    });
    t.is(lease.spec?.holderIdentity, 'operator-2');
    t.true((lease.spec?.leaseTransitions ?? 0) >= 1);
  },
);
