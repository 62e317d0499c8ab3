// Installing the project into a cluster the way `kubectl apply` would: the CRDs from crds/ (waiting
// until they are Established) and the operator's manifests (namespace, ServiceAccount, RBAC). Shared
// by the local run, the dev cluster and the tests, so all of them install exactly what ships.
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ApiextensionsV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  loadAllYaml,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const isConflict = (error: unknown) => (error as { code?: number }).code === 409;

/** Objects in a YAML file, as client-node models (its loader keeps x-kubernetes-* schema keys). */
export async function loadManifests(path: string): Promise<KubernetesObject[]> {
  return (loadAllYaml(await readFile(path, 'utf8')) as KubernetesObject[]).filter(Boolean);
}

/** Creates each object; one that already exists is left as it is. */
export async function createAll(kc: KubeConfig, objects: KubernetesObject[]): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  for (const object of objects) {
    await api.create(object).catch((error: unknown) => {
      if (!isConflict(error)) throw error;
    });
  }
}

/**
 * Installs every CRD in crds/ (Connector, ControlPlane, ClusterControlPlane: each file there) and
 * waits until each is Established.
 */
export async function installCrds(kc: KubeConfig, timeoutMs = 30_000): Promise<V1CustomResourceDefinition[]> {
  const dir = join(repoRoot, 'crds');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml') && !f.startsWith('kustomization'));
  const crds = (await Promise.all(files.map((f) => loadManifests(join(dir, f)))))
    .flat()
    .filter((o): o is V1CustomResourceDefinition => o.kind === 'CustomResourceDefinition');
  await createAll(kc, crds);
  const api = kc.makeApiClient(ApiextensionsV1Api);
  const deadline = Date.now() + timeoutMs;
  for (const crd of crds) {
    const name = crd.metadata?.name ?? '';
    for (;;) {
      const current = await api.readCustomResourceDefinition({ name });
      const established = current.status?.conditions?.some(
        (c) => c.type === 'Established' && c.status === 'True',
      );
      // Established is not yet served: right after it, requests may still get 429 "storage is
      // (re)initializing". A successful list means the resource is usable.
      if (established && (await listable(kc, crd))) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} was not Established within ${timeoutMs} ms`);
      await new Promise((done) => setTimeout(done, 100));
    }
  }
  return crds;
}

async function listable(kc: KubeConfig, crd: V1CustomResourceDefinition): Promise<boolean> {
  const version = crd.spec.versions.find((v) => v.served)?.name ?? '';
  try {
    await kc
      .makeApiClient(CustomObjectsApi)
      .listClusterCustomObject({ group: crd.spec.group, version, plural: crd.spec.names.plural, limit: 1 });
    return true;
  } catch {
    return false;
  }
}

/** The operator's namespace, ServiceAccount and RBAC, and the aggregated roles for people, from manifests/. */
export async function installOperatorAccess(kc: KubeConfig): Promise<void> {
  for (const file of ['namespace.yaml', 'serviceaccount.yaml', 'rbac.yaml', 'user-roles.yaml']) {
    await createAll(kc, await loadManifests(join(repoRoot, 'manifests', file)));
  }
}
