// How long a control-plane transition takes to reach a Connector's status, and how many API writes
// the operator makes at steady state. Runs the real pieces on loopback: a local Kubernetes control
// plane, the reference control plane, the operator (as its ServiceAccount) and N in-process agents.
// Prints figures; asserts nothing. Usage: node bench/operator-status-latency.ts [connectors=40]
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { startLocalCluster } from '../dev/local-cluster/cluster.ts';
import { installCrds, installOperatorAccess } from '../dev/local-cluster/install.ts';
import { type RunningAgent, startAgent } from '../src/agent/agent.ts';
import { DEFAULT_SAN_URI_PREFIX } from '../src/agent/config.ts';
import { startControlPlane, usableAdminCredential } from '../src/controlplane/server.ts';
import { systemClock } from '../src/lib/clock.ts';
import { silentLogger } from '../src/lib/logger.ts';
import type { Connector } from '../src/operator/api/types.ts';
import { ControlPlaneAdminClient } from '../src/operator/control-plane/admin-client.ts';
import { startOperator } from '../src/operator/operator.ts';

const count = Number(process.argv[2] ?? 40);
const namespace = 'bench';
const ref = { group: 'vaultpam.io', version: 'v1alpha1', namespace, plural: 'connectors' };
const say = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
};

const dir = await mkdtemp(join(tmpdir(), 'vaultpam-bench-'));
const cluster = await startLocalCluster();
const kc = cluster.adminKubeConfig();
await installCrds(kc);
await installOperatorAccess(kc);
const controlPlane = await startControlPlane({
  dataDir: join(dir, 'cp'),
  host: '127.0.0.1',
  port: 0,
  heartbeatIntervalSeconds: 2,
});
const core = kc.makeApiClient(CoreV1Api);
await core.createNamespacedSecret({
  namespace: 'vaultpam-system',
  body: {
    metadata: { name: 'vaultpam-operator-credential' },
    stringData: { credential: usableAdminCredential(controlPlane) },
  },
});
await core.createNamespace({ body: { metadata: { name: namespace } } });
const operator = await startOperator({
  kc: await cluster.serviceAccountKubeConfig('vaultpam-system', 'vaultpam-connector-operator'),
  logger: silentLogger(),
  controlPlane: {
    url: controlPlane.url,
    caPem: controlPlane.caPem,
    credentialSecret: {
      namespace: 'vaultpam-system',
      name: 'vaultpam-operator-credential',
      key: 'credential',
    },
  },
  connectorImage: 'vaultpam-connector:bench',
  concurrency: Number(process.env.BENCH_CONCURRENCY) || 4,
});
const caFile = join(dir, 'ca.crt');
await writeFile(caFile, controlPlane.caPem);
const api = kc.makeApiClient(CustomObjectsApi);

// The time each Connector's status first shows a phase, from a list every 100 ms (so figures are
// accurate to about 100 ms plus one list).
const seen = new Map<string, Map<string, number>>();
let polling = true;
const poller = (async () => {
  while (polling) {
    const list = (await api.listNamespacedCustomObject({ ...ref }).catch(() => ({ items: [] }))) as {
      items: Connector[];
    };
    const now = Date.now();
    for (const c of list.items) {
      const phase = c.status?.phase;
      if (!phase) continue;
      const phases = seen.get(c.metadata.name ?? '') ?? new Map<string, number>();
      if (!phases.has(phase)) phases.set(phase, now);
      seen.set(c.metadata.name ?? '', phases);
    }
    await sleep(100);
  }
})();

say(`local cluster, control plane and operator running; creating ${count} Connectors`);
const names = Array.from({ length: count }, (_, i) => `c${i}`);
const started = Date.now();
for (const name of names) {
  await api.createNamespacedCustomObject({
    ...ref,
    body: {
      apiVersion: 'vaultpam.io/v1alpha1',
      kind: 'Connector',
      metadata: { name, namespace },
      spec: { connector: { org: 'acme', endpointId: name } },
    },
  });
}
// Each "pod": the agent with the token the operator put in its Secret.
const agents: RunningAgent[] = [];
for (const name of names) {
  let token: string | undefined;
  while (!token) {
    const secret = await core
      .readNamespacedSecret({ namespace, name: `${name}-enrollment-token` })
      .catch(() => undefined);
    token = secret?.data?.token;
    if (!token) await sleep(100);
  }
  const tokenFile = join(dir, `${name}.token`);
  await writeFile(tokenFile, Buffer.from(token, 'base64'), { mode: 0o600 });
  agents.push(
    startAgent({
      clock: systemClock,
      logger: silentLogger(),
      config: {
        connectorId: `${namespace}.${name}`,
        controlPlaneUrl: controlPlane.url,
        caFile,
        tokenFile,
        dataDir: join(dir, name),
        terminationLog: join(dir, `${name}.term`),
        healthListen: { host: '127.0.0.1', port: 0 },
        heartbeatIntervalMs: 2_000,
        renewAtFraction: 0.5,
        pathChecks: [],
        giveUpAfterMs: 0,
        giveUpOnRefusalAfterMs: 300_000,
        retryInitialMs: 200,
        retryMaxMs: 2_000,
        requestTimeoutMs: 10_000,
        sanUriPrefix: DEFAULT_SAN_URI_PREFIX,
        logLevel: 'silent',
      },
    }),
  );
}
say(`${count} agents started; waiting for every Connector to go Online`);
await waitForPhase('Online');
say(`${count} Connectors created, paired and Online in ${((Date.now() - started) / 1000).toFixed(1)} s`);

// Steady state: once the StatefulSet controller has made every pod and claim (the world is still),
// count the operator's API writes (Lease renewals aside) over 30 s of heartbeats.
for (;;) {
  const list = (await api.listNamespacedCustomObject({ ...ref })) as { items: Connector[] };
  if (list.items.every((c) => c.status?.storage?.claimUID && c.status.storage.podName)) break;
  await sleep(500);
}
await sleep(5_000);
const kinds = async () =>
  Object.fromEntries(
    (await operator.metrics.kubernetesWrites.get()).values
      .filter((v) => v.labels.kind !== 'Lease')
      .map((v) => [`${v.labels.kind}/${v.labels.verb}`, v.value]),
  );
const kindsBefore = await kinds();
const writesBefore = await operator.metrics.totalWrites({ excludeKinds: ['Lease'] });
await sleep(30_000);
const steadyWrites = (await operator.metrics.totalWrites({ excludeKinds: ['Lease'] })) - writesBefore;
say(`steady state: ${steadyWrites} API writes in 30 s with ${count} connectors heartbeating every 2 s`);
if (steadyWrites > 0)
  say(`  writes by kind before ${JSON.stringify(kindsBefore)}, after ${JSON.stringify(await kinds())}`);

// Transition latency: stop every agent; the control plane marks each offline after 3 missed beats.
await Promise.all(agents.map((a) => a.stop()));
await waitForPhase('Offline');
const latencies: number[] = [];
for (const name of names) {
  const record = await controlPlaneRecord(`${namespace}.${name}`);
  latencies.push((seen.get(name)?.get('Offline') ?? 0) - new Date(record.stateChangedAt).getTime());
}
say(
  `control plane offline -> status Offline: p50 ${percentile(latencies, 50)} ms, p95 ${percentile(latencies, 95)} ms, max ${Math.max(...latencies)} ms (target: within 2,000 ms)`,
);

/** Waits until every Connector has shown `phase`; says which do not when it takes long. */
async function waitForPhase(phase: string) {
  const deadline = Date.now() + (Number(process.env.BENCH_PHASE_TIMEOUT_MS) || 180_000);
  while (names.some((n) => !seen.get(n)?.has(phase))) {
    if (Date.now() > deadline) {
      const missing = names.filter((n) => !seen.get(n)?.has(phase));
      const sampleName = missing[0] ?? '';
      const sample = (await api.getNamespacedCustomObject({ ...ref, name: sampleName })) as Connector;
      throw new Error(
        `${missing.length} Connectors never showed ${phase}; ${sampleName}: ${JSON.stringify(sample.status)}`,
      );
    }
    await sleep(100);
  }
}

async function controlPlaneRecord(id: string) {
  const client = new ControlPlaneAdminClient({
    url: controlPlane.url,
    caPem: controlPlane.caPem,
    credential: usableAdminCredential(controlPlane),
  });
  try {
    return await client.getConnector(id);
  } finally {
    client.close();
  }
}

polling = false;
await poller;
await operator.stop();
await controlPlane.close();
await cluster.stop();
await rm(dir, { recursive: true, force: true });
process.exit(0);
