// One real Kubernetes control plane per test file (ava runs each file in its own process), started
// before the file's tests and stopped after them, even when a test fails.
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  type KubeConfig,
  loadAllYaml,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import type { TestFn } from 'ava';
import { type LocalCluster, startLocalCluster } from '../../src/local-cluster/cluster.ts';
import { eventually } from './eventually.ts';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ClusterContext {
  cluster: LocalCluster;
  kc: KubeConfig;
}

/**
 * Registers before/after hooks on `test` that start a local cluster for this file. Returns a getter
 * for the running cluster (valid inside tests).
 */
export function useCluster(test: TestFn<unknown>): () => ClusterContext {
  let context: ClusterContext | undefined;
  test.serial.before(async () => {
    const cluster = await startLocalCluster();
    context = { cluster, kc: cluster.adminKubeConfig() };
  });
  test.after.always(async () => {
    await context?.cluster.stop();
  });
  return () => {
    if (!context) throw new Error('the local cluster is not running (did test.before fail?)');
    return context;
  };
}

let namespaceCounter = 0;

/** Creates a uniquely named namespace for one test; the namespace controller removes it afterwards. */
export async function createTestNamespace(kc: KubeConfig, prefix = 't'): Promise<string> {
  namespaceCounter += 1;
  const name = `${prefix}-${process.pid}-${namespaceCounter}`.slice(0, 63);
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
  return name;
}

/**
 * The CRDs in crds/, as client-node models. client-node's own loader maps the YAML's JSON names
 * (`x-kubernetes-validations`, `enum`, ...) onto its model fields; a plain YAML parse would hand the
 * typed API objects whose validation keys its serializer silently drops.
 */
export async function loadCrds(): Promise<V1CustomResourceDefinition[]> {
  const dir = join(repoRoot, 'crds');
  const names = (await readdir(dir)).filter(
    (name) => (name.endsWith('.yaml') || name.endsWith('.yml')) && !name.startsWith('kustomization'),
  );
  const documents = await Promise.all(
    names.map(async (name) => loadAllYaml(await readFile(join(dir, name), 'utf8'))),
  );
  return documents.flat().filter((doc): doc is V1CustomResourceDefinition => {
    return (
      typeof doc === 'object' &&
      doc !== null &&
      (doc as { kind?: string }).kind === 'CustomResourceDefinition'
    );
  });
}

/** Applies every CRD in crds/ and waits until each one is Established. */
export async function installCrds(kc: KubeConfig): Promise<V1CustomResourceDefinition[]> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  const crds = await loadCrds();
  for (const crd of crds) await api.createCustomResourceDefinition({ body: crd });
  for (const crd of crds) {
    const name = crd.metadata?.name ?? '';
    await eventually(
      async () => {
        const current = await api.readCustomResourceDefinition({ name });
        return current.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
      },
      { description: `CRD ${name} established` },
    );
  }
  return crds;
}
