// Benchmark: what each kind of request the operator sends costs the API server, in its own CPU
// (kube-apiserver's process group, and etcd's), per request. The scale benchmark says how many of
// each the operator sends (figure 1, "the operator's requests"); this says which of them are worth
// sending fewer of. A local Kubernetes control plane of its own, nothing else running in it:
//
//   npx node bench/api-request-costs.ts [--requests 1000] [--concurrency 16] [--rounds 2]
//
// Each kind is sent --requests times, --concurrency at once, --rounds times in a row (the spread
// between rounds is the noise), through the operator's own client and writer. The Connector
// statuses are the ones the operator writes on the way to Online (the Argo CD health check's test
// data, which the operator's own code produced), in that order.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import * as yaml from 'js-yaml';
import { startLocalCluster } from '../dev/local-cluster/cluster.ts';
import { installCrds } from '../dev/local-cluster/install.ts';
import { silentLogger } from '../src/lib/logger.ts';
import { type Connector, defaultedSpec } from '../src/operator/api/types.ts';
import {
  configHash,
  desiredConfigMap,
  desiredStatefulSet,
} from '../src/operator/reconcile/desired-objects.ts';
import { KubeWriter } from '../src/operator/runtime/apply.ts';
import { EventRecorder } from '../src/operator/runtime/events.ts';
import { kubeClientOf } from '../src/operator/runtime/kube-access.ts';
import { RESOURCE_TYPES } from '../src/operator/runtime/resources.ts';
import { benchArgs, positiveFlag } from './bench-args.ts';
import { cpuBetween, cpuSnapshot } from './process-usage.ts';
import { BENCH_IMAGE } from './scale-floors.ts';
import { pool, round, say, sleep } from './scale-util.ts';

const PROGRAM = 'bench/api-request-costs.ts';
const args = benchArgs(PROGRAM, {
  options: {
    requests: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '2' },
    out: { type: 'string', default: join(import.meta.dirname, 'results') },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.values.help) {
  process.stdout.write(`Usage: npx node ${PROGRAM} [--requests N] [--concurrency C] [--rounds R] [--out DIR]

What each kind of request the operator sends costs kube-apiserver (and etcd) in CPU, per request,
on a local Kubernetes control plane of its own. Figures go to <out>/api-request-costs.json and .md.
`);
  process.exit(0);
}
const N = Math.round(positiveFlag(PROGRAM, 'requests', args.values.requests));
const CONCURRENCY = Math.round(positiveFlag(PROGRAM, 'concurrency', args.values.concurrency));
const ROUNDS = Math.round(positiveFlag(PROGRAM, 'rounds', args.values.rounds));
const NAMESPACE = 'costs';
/** A pause between rounds for the cluster's own work on the round before to end. */
const QUIET_MS = 15_000;

const CHECK_DATA = join(
  import.meta.dirname,
  '../gitops/argocd/resource_customizations/vaultpam.io/Connector/testdata',
);
const STATUSES = await Promise.all(
  ['progressing-pending-enrolling', 'progressing-enrolling', 'healthy-online'].map(
    async (file) =>
      (yaml.load(await readFile(join(CHECK_DATA, `${file}.yaml`), 'utf8')) as Connector).status ?? {},
  ),
);

say(
  `API request costs: ${N} requests of each kind, ${CONCURRENCY} at once, ${ROUNDS} rounds, ${cpus().length} cores`,
);
say('local Kubernetes control plane (a cold first run builds its binaries from Go modules)');
const cluster = await startLocalCluster({
  workDir: join(tmpdir(), `vaultpam-costs-${process.pid}`),
  removeOnStop: true,
});
try {
  const admin = cluster.adminKubeConfig();
  await installCrds(admin);
  const kube = kubeClientOf(admin);
  const writer = new KubeWriter({ kc: admin, logger: silentLogger() });
  const events = new EventRecorder({ kc: admin, logger: silentLogger(), identity: 'costs' });
  await admin.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NAMESPACE } } });
  const groups = cluster.processGroups();
  const components = {
    'kube-apiserver': { processGroup: groups['kube-apiserver'] ?? 0 },
    etcd: { processGroup: groups.etcd ?? 0 },
  };

  // Connectors made by name, as their apply made them, per round.
  const connectorsOf = async (prefix: string, count = N): Promise<Connector[]> => {
    const names = Array.from({ length: count }, (_, i) => `${prefix}${i}`);
    const made: Connector[] = [];
    await pool(names, CONCURRENCY, async (name) => {
      made.push(
        await kube.create<Connector>(RESOURCE_TYPES.connector, {
          apiVersion: 'vaultpam.io/v1alpha1',
          kind: 'Connector',
          metadata: { name, namespace: NAMESPACE },
          spec: { connector: { org: 'acme', endpointId: name } },
        }),
      );
    });
    return made;
  };

  type Kind = { name: string; send: (c: Connector, i: number) => Promise<unknown> };
  const ref = (c: Connector) => ({ namespace: NAMESPACE, name: c.metadata.name ?? '' });
  const childrenOf = (c: Connector) => {
    const spec = defaultedSpec(c);
    const configMap = desiredConfigMap(c, spec, { url: 'https://cp.example:8443', caPem: undefined });
    const statefulSet = desiredStatefulSet(c, spec, {
      image: BENCH_IMAGE,
      replicas: 1,
      configHash: configHash(configMap),
      restartedFor: undefined,
    });
    return { configMap, statefulSet };
  };
  const kinds: Kind[] = [
    { name: 'GET a Connector (200)', send: (c) => kube.get(RESOURCE_TYPES.connector, ref(c)) },
    {
      name: 'GET a ConfigMap that does not exist (404)',
      send: (c) => kube.get(RESOURCE_TYPES.configMap, ref(c)).catch(() => undefined),
    },
    {
      name: 'Connector status, server-side apply (3 statuses in turn)',
      send: (c, i) =>
        writer.applyStatus(RESOURCE_TYPES.connector, ref(c), STATUSES[i % STATUSES.length] ?? {}),
    },
    {
      name: 'Connector status, server-side apply, phase only (3 phases in turn)',
      send: (c, i) =>
        writer.applyStatus(RESOURCE_TYPES.connector, ref(c), {
          phase: ['Pending', 'Enrolling', 'Online'][i % 3],
        }),
    },
    {
      name: 'Connector status, merge patch (the same 3, removed fields as null)',
      send: (c, i) => {
        const next: Record<string, unknown> = { ...(STATUSES[i % STATUSES.length] ?? {}) };
        for (const key of Object.keys(STATUSES[(i + 2) % STATUSES.length] ?? {}))
          if (!(key in next)) next[key] = null;
        return kube.patch(
          RESOURCE_TYPES.connector,
          ref(c),
          { status: next },
          { patch: 'merge', subresource: 'status' },
        );
      },
    },
    {
      name: 'Connector metadata, merge patch (a label; the finalizer is such a patch)',
      send: (c, i) =>
        kube.patch(
          RESOURCE_TYPES.connector,
          ref(c),
          { metadata: { labels: { cost: String(i) } } },
          { patch: 'merge' },
        ),
    },
    {
      name: 'Event create (events.k8s.io/v1)',
      send: (c, i) =>
        events.record(
          {
            apiVersion: 'vaultpam.io/v1alpha1',
            kind: 'Connector',
            ...ref(c),
            ...(c.metadata.uid ? { uid: c.metadata.uid } : {}),
          },
          {
            type: 'Normal',
            reason: `Cost${i}`,
            action: 'Reconcile',
            note: `cost of one Event ${i}`,
            priority: 'always',
          },
        ),
    },
    { name: 'ConfigMap, server-side apply (create)', send: (c) => writer.apply(childrenOf(c).configMap) },
    {
      name: 'StatefulSet, server-side apply dry run',
      send: (c) => writer.apply(childrenOf(c).statefulSet, { dryRun: true }),
    },
    { name: 'StatefulSet, server-side apply (create)', send: (c) => writer.apply(childrenOf(c).statefulSet) },
  ];

  const rows: Array<{
    kind: string;
    rounds: Array<{ seconds: number; apiServerMs: number; etcdMs: number }>;
  }> = kinds.map((k) => ({ kind: k.name, rounds: [] }));
  for (let r = 0; r < ROUNDS; r += 1) {
    // What the round before set going (kube-controller-manager's pods and claims for its
    // StatefulSets) must not land in this round's first kinds.
    if (r > 0) await sleep(QUIET_MS);
    const connectors = await connectorsOf(`r${r}-`);
    for (const [index, kind] of kinds.entries()) {
      // Connector writes go to Connectors of their own, three to each (one of each status), in
      // three sweeps: every write changes something, and never two to one Connector at once (the
      // operator never sends those; they would conflict and be retried inside the API server).
      const own = kind.name.startsWith('Connector')
        ? await connectorsOf(`r${r}-k${index}-`, Math.ceil(N / 3))
        : undefined;
      const sends = own ? [...own, ...own, ...own].slice(0, N) : connectors;
      const counter = new Map<string, number>();
      const before = cpuSnapshot();
      const started = Date.now();
      await pool(sends, CONCURRENCY, async (c) => {
        const n = counter.get(c.metadata.name ?? '') ?? 0;
        counter.set(c.metadata.name ?? '', n + 1);
        await kind.send(c, n);
      });
      const seconds = (Date.now() - started) / 1000;
      const spent = cpuBetween(before, cpuSnapshot(), components).components;
      const row = rows[index];
      const result = {
        seconds: round(seconds, 2),
        apiServerMs: round(((spent['kube-apiserver'] ?? 0) * 1000) / sends.length, 2),
        etcdMs: round(((spent.etcd ?? 0) * 1000) / sends.length, 2),
      };
      row?.rounds.push(result);
      say(
        `  round ${r + 1}: ${kind.name}: ${result.apiServerMs} ms API server, ${result.etcdMs} ms etcd per request (${sends.length} in ${result.seconds} s)`,
      );
    }
  }

  const table = [
    '| request | kube-apiserver CPU per request, each round | etcd CPU per request, each round |',
    '| --- | --- | --- |',
    ...rows.map(
      (row) =>
        `| ${row.kind} | ${row.rounds.map((r) => `${r.apiServerMs} ms`).join(', ')} | ${row.rounds.map((r) => `${r.etcdMs} ms`).join(', ')} |`,
    ),
  ].join('\n');
  await mkdir(args.values.out, { recursive: true });
  const figures = {
    date: new Date().toISOString(),
    cores: cpus().length,
    node: process.version,
    requests: N,
    concurrency: CONCURRENCY,
    rows,
  };
  await writeFile(join(args.values.out, 'api-request-costs.json'), `${JSON.stringify(figures, null, 2)}\n`);
  await writeFile(
    join(args.values.out, 'api-request-costs.md'),
    `# API request costs (${figures.date}, ${figures.cores} cores, Node ${figures.node}; ${N} requests of each kind, ${CONCURRENCY} at once)\n\n${table}\n`,
  );
  say(`\n${table}\nfigures written to ${join(args.values.out, 'api-request-costs.json')} and .md`);
} finally {
  await cluster.stop();
}
