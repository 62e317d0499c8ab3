#!/usr/bin/env node
// `vaultpam-dev-cluster`: starts the local Kubernetes control plane (etcd, kube-apiserver,
// kube-controller-manager built from the pinned Go modules), installs the CRDs from crds/, prints
// the kubeconfig path, and keeps running until SIGTERM/SIGINT, when it stops every process.
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiextensionsV1Api, loadAllYaml, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { helpText, onShutdownSignal, parseFlags } from '../lib/cli.ts';
import { createLogger, isLogLevel } from '../lib/logger.ts';
import { startLocalCluster } from '../local-cluster/cluster.ts';

const flags = {
  'work-dir': {
    description: 'Directory for cluster state, logs and kubeconfig (kept after stop).',
    env: 'VAULTPAM_DEV_DIR',
  },
  'log-level': { description: 'Log level.', default: 'info', env: 'LOG_LEVEL' },
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

const workDir = parsed.values['work-dir'];
const cluster = await startLocalCluster({
  ...(workDir ? { workDir, removeOnStop: false } : {}),
  onProgress: (line) => log.info(line),
});
onShutdownSignal(async () => {
  log.info('stopping the local cluster');
  await cluster.stop();
});

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
  { kubeconfig: cluster.kubeconfigPath, server: cluster.server },
  'local cluster ready; SIGINT (Ctrl-C) stops it',
);
