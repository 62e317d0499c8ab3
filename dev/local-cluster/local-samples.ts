// Makes manifests/samples/ usable on the `npm start` system. The samples describe a production
// setup: Connectors in the namespace `vaultpam` naming the ControlPlane `vaultpam` (or the
// ClusterControlPlane `vaultpam-shared`), whose CA ConfigMap and credential Secret an admin creates
// first, at https://vaultpam.example.com. The local run has none of that, so here it:
// - creates every namespace the samples use, and each CA ConfigMap and credential Secret the
//   control-plane samples name (where the operator looks for them: the ControlPlane's namespace, or
//   the operator's own for a ClusterControlPlane), holding the local control plane's CA and admin
//   credential, each Secret annotated vaultpam.io/control-plane-url with the local URL its control
//   plane has, as the samples' comments tell an admin to do (else the operator sends it nowhere);
// - writes the local variant of the samples: the same files, comments and all, with the
//   placeholder URL replaced by the local control plane's (its port changes from run to run);
// - applies the control-plane samples' local variants, so each Connector sample applies as it is.
// The names come from the sample files themselves, so a renamed sample cannot leave this behind.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, type KubeConfig, type KubernetesObject, loadAllYaml } from '@kubernetes/client-node';
import { createAll, loadManifests, repoRoot } from './install.ts';

export const SAMPLES_DIR = join(repoRoot, 'manifests', 'samples');
/**
 * Where a credential Secret's owner says it may be sent: the operator's annotation
 * (src/operator/api/constants.ts, which dev/local-cluster may not import; the e2e test of the
 * samples sees them Ready, so a rename there cannot go unnoticed here).
 */
const CONTROL_PLANE_URL_ANNOTATION = 'vaultpam.io/control-plane-url';
/** The URL the control-plane samples carry; the local variant replaces it. */
export const SAMPLE_CONTROL_PLANE_URL = 'https://vaultpam.example.com';

const CONTROL_PLANE_KINDS = new Set(['ControlPlane', 'ClusterControlPlane']);

interface NamedRef {
  name?: string;
  key?: string;
}
interface ControlPlaneSample extends KubernetesObject {
  spec?: { url?: string; caConfigMapRef?: NamedRef; credentialSecretRef?: NamedRef };
}

export interface SampleFile {
  /** File name in manifests/samples/. */
  file: string;
  objects: KubernetesObject[];
}

export async function readSamples(dir = SAMPLES_DIR): Promise<SampleFile[]> {
  const files = (await readdir(dir)).filter((file) => file.endsWith('.yaml')).sort();
  return Promise.all(
    files.map(async (file) => ({
      file,
      objects: (loadAllYaml(await readFile(join(dir, file), 'utf8')) as KubernetesObject[]).filter(Boolean),
    })),
  );
}

/** Whether a sample file defines a control plane (the ones with a URL the local run must replace). */
export const isControlPlaneSample = (sample: SampleFile) =>
  sample.objects.some((object) => CONTROL_PLANE_KINDS.has(object.kind ?? ''));

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

function asIfApplied(object: KubernetesObject): KubernetesObject {
  const annotations = { ...object.metadata?.annotations, [LAST_APPLIED]: `${JSON.stringify(object)}\n` };
  return { ...object, metadata: { ...object.metadata, annotations } };
}

export interface LocalControlPlane {
  url: string;
  caPem: string;
  credential: string;
}

export interface PreparedSamples {
  /** The local variant: every sample file, the placeholder URL replaced. */
  dir: string;
  namespaces: string[];
  /** "ControlPlane vaultpam/vaultpam", ..., as applied. */
  controlPlanes: string[];
}

/** A sample's text (or URL) with the placeholder URL replaced by the local control plane's. */
const localUrl = (text: string, url: string) => text.replaceAll(SAMPLE_CONTROL_PLANE_URL, url);

const isConflict = (error: unknown) => (error as { code?: number }).code === 409;
const ignoreConflict = (error: unknown) => {
  if (!isConflict(error)) throw error;
};

/**
 * Creates what the samples assume exists, writes their local variant into `outDir` and applies
 * its control planes. `clusterResourceNamespace` is where the operator reads a
 * ClusterControlPlane's ConfigMap and Secret (its --cluster-resource-namespace).
 */
export async function prepareSamples(
  kc: KubeConfig,
  options: { controlPlane: LocalControlPlane; clusterResourceNamespace: string; outDir: string },
): Promise<PreparedSamples> {
  const samples = await readSamples();
  const core = kc.makeApiClient(CoreV1Api);
  const namespaces = [
    ...new Set(
      samples.flatMap((s) => s.objects.flatMap((o) => (o.metadata?.namespace ? [o.metadata.namespace] : []))),
    ),
  ];
  for (const namespace of namespaces) {
    await core.createNamespace({ body: { metadata: { name: namespace } } }).catch(ignoreConflict);
  }
  const controlPlanes = samples.flatMap((s) =>
    s.objects.filter((o): o is ControlPlaneSample => CONTROL_PLANE_KINDS.has(o.kind ?? '')),
  );
  for (const sample of controlPlanes) {
    const namespace =
      sample.kind === 'ClusterControlPlane' ? options.clusterResourceNamespace : sample.metadata?.namespace;
    const ca = sample.spec?.caConfigMapRef;
    const credential = sample.spec?.credentialSecretRef;
    if (!namespace) continue;
    if (ca?.name) {
      await core
        .createNamespacedConfigMap({
          namespace,
          body: { metadata: { name: ca.name }, data: { [ca.key ?? 'ca.crt']: options.controlPlane.caPem } },
        })
        .catch(ignoreConflict);
    }
    if (credential?.name) {
      // Where the credential may be sent: the URL of the sample's local variant.
      const url = localUrl(sample.spec?.url ?? SAMPLE_CONTROL_PLANE_URL, options.controlPlane.url);
      await core
        .createNamespacedSecret({
          namespace,
          body: {
            metadata: { name: credential.name, annotations: { [CONTROL_PLANE_URL_ANNOTATION]: url } },
            stringData: { [credential.key ?? 'credential']: options.controlPlane.credential },
          },
        })
        .catch(ignoreConflict);
    }
  }

  await mkdir(options.outDir, { recursive: true });
  for (const { file } of samples) {
    const text = await readFile(join(SAMPLES_DIR, file), 'utf8');
    await writeFile(join(options.outDir, file), localUrl(text, options.controlPlane.url), 'utf8');
  }
  const applied: string[] = [];
  for (const sample of samples.filter(isControlPlaneSample)) {
    // Created as `kubectl apply` would (its last-applied annotation), so applying the local variant
    // again later is an ordinary apply, without kubectl's warning about a missing annotation.
    const local = (await loadManifests(join(options.outDir, sample.file))).map(asIfApplied);
    await createAll(kc, local);
    for (const object of local) {
      const where = object.metadata?.namespace ? `${object.metadata.namespace}/` : '';
      applied.push(`${object.kind} ${where}${object.metadata?.name}`);
    }
  }
  return { dir: options.outDir, namespaces, controlPlanes: applied };
}
