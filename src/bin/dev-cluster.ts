#!/usr/bin/env node
// `vaultpam-dev-cluster`: starts the local Kubernetes control plane (etcd, kube-apiserver,
// kube-controller-manager built from the pinned Go modules), installs the CRDs from crds/, prints
// the kubeconfig path, and keeps running until SIGTERM/SIGINT, when it stops every process.
// With --run-pods (the default) it also runs the local pod runner, so connector pods really run
// as local processes (see docs/local-pod-runner.md).
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiextensionsV1Api, loadAllYaml, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { helpText, onShutdownSignal, parseFlags } from '../lib/cli.ts';
import { createLogger, isLogLevel } from '../lib/logger.ts';
import { startLocalCluster } from '../local-cluster/cluster.ts';
import { PodRunner } from '../local-cluster/pod-runner.ts';

const flags = {
  'work-dir': {
    description: 'Directory for cluster state, logs and kubeconfig (kept after stop).',
    env: 'VAULTPAM_DEV_DIR',
  },
  'log-level': { description: 'Log level.', default: 'info', env: 'LOG_LEVEL' },
  'run-pods': {
    description:
      'Also run the local pod runner: connector pods are bound to a local node and run as processes ' +
      '(true or false).',
    default: 'true',
    env: 'VAULTPAM_DEV_RUN_PODS',
  },
};
const parsed = parseFlags(process.argv.slice(2), flags, process.env);
if (parsed.help) {
  process.stdout.write(
    `${helpText('vaultpam-dev-cluster', 'Runs a real local Kubernetes control plane for development.', flags)}\n`,
  );
  process.exit(0);
}
const level = parsed.values['log-level'] ?? 'info';
if (!isLogLevel(level)) throw new Error(`--log-level: unknown level "${level}"`);
const log = createLogger({ name: 'dev-cluster', level });
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const runPodsText = parsed.values['run-pods'] ?? 'true';
if (runPodsText !== 'true' && runPodsText !== 'false') {
  throw new Error(`--run-pods: expected true or false, got "${runPodsText}"`);
}
const workDir = parsed.values['work-dir'];
const cluster = await startLocalCluster({
  ...(workDir ? { workDir, removeOnStop: false } : {}),
  onProgress: (line) => log.info(line),
});
const podRunner =
  runPodsText === 'true'
    ? new PodRunner({
        kubeConfig: cluster.adminKubeConfig(),
        rootDir: join(cluster.workDir, 'local-pods'),
        logger: log.child({ component: 'pod-runner' }),
        baseEnv: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin' },
      })
    : undefined;
onShutdownSignal(async () => {
  // Pods first, so no connector process outlives the API it reports to.
  if (podRunner) {
    log.info('stopping the local pod runner');
    await podRunner.stop();
  }
  log.info('stopping the local cluster');
  await cluster.stop();
});
await podRunner?.start();

const api = cluster.adminKubeConfig().makeApiClient(ApiextensionsV1Api);
for (const file of (await readdir(join(repoRoot, 'crds'))).filter(
  (f) => f.endsWith('.yaml') && f !== 'kustomization.yaml',
)) {
  // client-node's loader keeps the x-kubernetes-* validation keys that a plain YAML parse would lose.
  for (const doc of loadAllYaml(await readFile(join(repoRoot, 'crds', file), 'utf8'))) {
    await api.createCustomResourceDefinition({ body: doc as V1CustomResourceDefinition });
    log.info({ file }, 'installed CRD');
  }
}
log.info(
  { kubeconfig: cluster.kubeconfigPath, server: cluster.server, runPods: podRunner !== undefined },
  'local cluster ready; SIGINT (Ctrl-C) stops it',
);
