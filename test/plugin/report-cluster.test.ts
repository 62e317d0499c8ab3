// `kubectl vaultpam report` against the real API server, with what a namespace's other users can put
// in its way: a pod or claim whose long name the bundle must hold, read back by the real tar. No
// operator runs here: the report reads what the API server has, which is all these tests need.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import test from 'ava';
import { selectorLabels } from '../../src/operator/api/constants.ts';
import { createTestNamespace, installCrds, useCluster } from '../helpers/cluster.ts';
import { connectors } from '../helpers/operator-env.ts';
import { listFiles, type Run, runPluginProcess, runProcess } from '../helpers/plugin-process.ts';

const cluster = useCluster(test);

let namespace: string;
let work: string;

test.serial.before(async () => {
  const { kc } = cluster();
  await installCrds(kc);
  namespace = await createTestNamespace(kc, 'report');
  work = await mkdtemp(join(tmpdir(), 'report-cluster-'));
});

test.after.always(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

function plugin(args: string[], cwd?: string): Promise<Run> {
  return runPluginProcess(args, {
    kubeconfig: cluster().cluster.kubeconfigPath,
    home: work,
    ...(cwd ? { cwd } : {}),
  });
}

/** `report NAME` into a file, extracted by the real tar: the bundle's files by their path in it. */
async function reportFiles(t: import('ava').ExecutionContext, name: string): Promise<Map<string, string>> {
  const bundle = join(work, `${name}.tar.gz`);
  const report = await plugin(['report', name, '-n', namespace, '-f', bundle]);
  t.is(report.code, 0, report.stderr);
  const out = join(work, `${name}-extracted`);
  await mkdir(out);
  const extracted = await runProcess('tar', ['-xzf', bundle, '-C', out], { PATH: process.env.PATH }, work);
  t.is(extracted.code, 0, extracted.stderr);
  const [top = ''] = (await listFiles(out)).map((path) => path.split('/')[0] ?? '');
  const files = new Map<string, string>();
  for (const path of await listFiles(join(out, top)))
    files.set(path, await readFile(join(out, top, path), 'utf8'));
  return files;
}

test.serial(
  'long names: a pod and a claim of legal length are in the bundle under their full names',
  async (t) => {
    const { kc } = cluster();
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'default' } } });
    // Anyone who may create a pod in the namespace may give it the Connector's labels: the report
    // collects it, and its name (here 126 characters) must not stop the bundle.
    const pod = `plain-${'a'.repeat(120)}`;
    await connectors(kc).create(namespace, {
      metadata: { name: 'plain', namespace },
      spec: { connector: { org: 'acme', endpointId: 'ep-1' } },
    });
    await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: pod, labels: selectorLabels('plain') },
        spec: { containers: [{ name: 'connector', image: 'busybox' }] },
      },
    });
    // A person's own claim, named as a DNS subdomain may be (95 characters).
    const claim = `data.${'b'.repeat(90)}`;
    await core.createNamespacedPersistentVolumeClaim({
      namespace,
      body: {
        metadata: { name: claim },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
      },
    });
    await connectors(kc).create(namespace, {
      metadata: { name: 'longclaim', namespace },
      spec: { connector: { org: 'acme', endpointId: 'ep-1' }, storage: { existingClaim: claim } },
    });

    const plain = await reportFiles(t, 'plain');
    t.regex(plain.get(`objects/pod-${pod}.yaml`) ?? '', new RegExp(`name: ${pod}\n`));
    t.regex(plain.get('README.txt') ?? '', new RegExp(`^ {2}objects/pod-${pod}\\.yaml$`, 'm'));
    const longclaim = await reportFiles(t, 'longclaim');
    t.regex(
      longclaim.get(`objects/persistentvolumeclaim-${claim}.yaml`) ?? '',
      new RegExp(`name: ${claim}\n`),
    );

    // A file that cannot be written is named whole in the error: the default name is the bundle's
    // own (here in /proc, where nobody may create a file), not "[REDACTED].tar.gz".
    const unwritable = await plugin(['report', 'plain', '-n', namespace], '/proc');
    t.is(unwritable.code, 3);
    t.regex(
      unwritable.stderr,
      new RegExp(`^error: cannot write vaultpam-report-${namespace}-plain-\\d{8}-\\d{6}\\.tar\\.gz: `),
    );
    t.false(unwritable.stderr.includes('[REDACTED]'), unwritable.stderr);
  },
);
