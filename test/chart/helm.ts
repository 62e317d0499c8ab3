// The real helm for the chart tests: built from the Go module pinned in tools/helm by its build
// script (instant when its cache is warm), which also writes the ServiceMonitor and PrometheusRule
// CRDs generated from the Prometheus operator's API types. Plus the two renderings the tests compare:
// the chart through `helm template` and the kustomize overlays through the pinned kustomize.
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { type KubernetesObject, loadYaml } from '@kubernetes/client-node';
import * as yaml from 'js-yaml';
import { ensureClusterBinaries } from '../../dev/local-cluster/binaries.ts';
import { repoRoot } from '../helpers/cluster.ts';
import { builtToolDirectory, type ProgramResult, runProgram } from '../helpers/go-tools.ts';

export const CHART_DIR = join(repoRoot, 'charts', 'vaultpam-connector-operator');
/** The namespace the kustomize install hard-codes; the chart installs into the release namespace. */
export const RELEASE_NAMESPACE = 'vaultpam-system';
export const RELEASE_NAME = 'vaultpam-connector-operator';

const buildScript = join(repoRoot, 'tools', 'helm', 'build.sh');
/** The directory holding helm, controller-gen and monitoring-crds/ (built once per process). */
export function helmTools(): Promise<string> {
  return builtToolDirectory(buildScript);
}

export type HelmResult = ProgramResult;

/**
 * The environment helm runs in: HELM_* homes in a throwaway place, so no repository list or cache of
 * the machine's user is read.
 */
export function helmEnvironment(): NodeJS.ProcessEnv {
  const home = join(tmpdir(), `vaultpam-helm-home-${process.pid}`);
  return {
    ...process.env,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
    NO_COLOR: '1',
  };
}

/** Runs the real helm; a non-zero exit is returned, not thrown (the tests read helm's refusals). */
export async function helm(args: string[]): Promise<HelmResult> {
  const binary = join(await helmTools(), 'helm');
  return runProgram(binary, args, { cwd: repoRoot, env: helmEnvironment() });
}

/**
 * The values files of the chart's ci/ folder (the Helm convention for files a chart is tested with).
 * Read synchronously: ava needs a test per file declared before the test file's module finishes.
 */
export function ciValuesFiles(): string[] {
  return readdirSync(join(CHART_DIR, 'ci'))
    .filter((name) => name.endsWith('-values.yaml'))
    .sort()
    .map((name) => join(CHART_DIR, 'ci', name));
}

export const chartPath = (file: string) => relative(repoRoot, file);

function objectsOf(text: string): KubernetesObject[] {
  return yaml.loadAll(text).filter((doc): doc is KubernetesObject => typeof doc === 'object' && doc !== null);
}

export interface TemplateOptions {
  valuesFiles?: string[];
  /** --set-json entries: path=JSON. */
  setJson?: string[];
  namespace?: string;
}

/** `helm template` of the chart with its CRDs, as objects; throws with helm's words when it refuses. */
export async function templateChart(options: TemplateOptions = {}): Promise<KubernetesObject[]> {
  const result = await helm(templateArgs(options));
  if (result.code !== 0) throw new Error(`helm template exited ${result.code}: ${result.stderr}`);
  return objectsOf(result.stdout);
}

export function templateArgs({ valuesFiles = [], setJson = [], namespace }: TemplateOptions): string[] {
  return [
    'template',
    RELEASE_NAME,
    CHART_DIR,
    '--namespace',
    namespace ?? RELEASE_NAMESPACE,
    '--include-crds',
    ...valuesFiles.flatMap((file) => ['--values', file]),
    ...setJson.flatMap((entry) => ['--set-json', entry]),
  ];
}

/**
 * The pinned kustomize's rendering of an overlay, with components added the way a user's overlay adds
 * them (a kustomization in a temporary folder that names the overlay and the components).
 */
export async function renderKustomize(
  overlay: string,
  components: string[] = [],
): Promise<KubernetesObject[]> {
  const kustomize = join(await ensureClusterBinaries(), 'kustomize');
  const dir = await mkdtemp(join(tmpdir(), 'vaultpam-chart-kustomize-'));
  try {
    const from = (path: string) => relative(dir, join(repoRoot, path));
    await writeFile(
      join(dir, 'kustomization.yaml'),
      yaml.dump({
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        resources: [from(overlay)],
        ...(components.length > 0 ? { components: components.map(from) } : {}),
      }),
    );
    const { stdout } = await promisify(execFile)(kustomize, ['build', dir], { maxBuffer: 16 * 1024 * 1024 });
    return objectsOf(stdout);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Objects as client-node's models, for sending to the API server: its serializer writes a model's
 * fields by their camelCase names, so a plain parsed CustomResourceDefinition would lose its
 * x-kubernetes-* schema keys on the way (loadYaml maps them, as dev/local-cluster/install.ts does).
 */
export function asModels(objects: KubernetesObject[]): KubernetesObject[] {
  return objects.map((object) => loadYaml<KubernetesObject>(yaml.dump(object)));
}

export function identity(object: KubernetesObject): string {
  const namespace = object.metadata?.namespace ? `${object.metadata.namespace}/` : '';
  return `${object.apiVersion} ${object.kind} ${namespace}${object.metadata?.name}`;
}
