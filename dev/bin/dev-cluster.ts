#!/usr/bin/env node
// `vaultpam-dev-cluster` (`npm run dev-cluster`): starts the local Kubernetes control plane (etcd,
// kube-apiserver, kube-controller-manager built from the pinned Go modules) and the local pod runner,
// installs the CRDs from crds/, prints the kubeconfig path, and keeps running until SIGTERM/SIGINT,
// when it stops every process. `npm start` runs the whole system on top of the same pieces.
import { join } from 'node:path';
import { stopOnSignalOrOrphaned } from '../../src/bin/shutdown.ts';
import { helpText, parseFlags } from '../../src/lib/cli.ts';
import { createLogger, isLogLevel } from '../../src/lib/logger.ts';
import { startLocalCluster } from '../local-cluster/cluster.ts';
import { installCrds } from '../local-cluster/install.ts';
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
stopOnSignalOrOrphaned(async () => {
  // Pods first, so no connector process outlives the API it reports to.
  if (podRunner) {
    log.info('stopping the local pod runner');
    await podRunner.stop();
  }
  log.info('stopping the local cluster');
  await cluster.stop();
});
await podRunner?.start();

for (const crd of await installCrds(cluster.adminKubeConfig())) {
  log.info({ crd: crd.metadata?.name }, 'installed CRD');
}
log.info(
  { kubeconfig: cluster.kubeconfigPath, server: cluster.server, runPods: podRunner !== undefined },
  'local cluster ready; SIGINT (Ctrl-C) stops it',
);
