// What may differ between the chart's objects and the kustomize install's, and nothing else: the
// labels Helm adds (which release and chart version wrote an object), and how each install rolls the
// operator when its settings change (kustomize renames the settings ConfigMap with a content hash;
// the chart keeps one name and puts a checksum of the settings on the pod template). The drift
// tests compare what is left, field by field.
import type { KubernetesObject } from '@kubernetes/client-node';

/** The labels only the chart sets (Helm's conventions), by name. */
export const HELM_LABELS = [
  'helm.sh/chart',
  'app.kubernetes.io/managed-by',
  'app.kubernetes.io/instance',
  'app.kubernetes.io/version',
] as const;

export const SETTINGS_CONFIGMAP = 'vaultpam-connector-operator-config';
export const SETTINGS_CHECKSUM_ANNOTATION = 'checksum/settings';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const isObject = (value: Json | undefined): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** kustomize's generated name of the settings ConfigMap (`<name>-<10-character hash>`), unhashed. */
function unhashed(name: string): string {
  return name.startsWith(`${SETTINGS_CONFIGMAP}-`) &&
    /^[a-z0-9]{10}$/.test(name.slice(SETTINGS_CONFIGMAP.length + 1))
    ? SETTINGS_CONFIGMAP
    : name;
}

function dropHelmLabels(metadata: JsonObject): void {
  const labels = metadata.labels;
  if (!isObject(labels)) return;
  for (const name of HELM_LABELS) delete labels[name];
}

/** The operator's pod template: its settings reference and its annotations. */
function normalisePodTemplate(template: JsonObject): void {
  const metadata = template.metadata;
  if (isObject(metadata) && isObject(metadata.annotations)) {
    delete metadata.annotations[SETTINGS_CHECKSUM_ANNOTATION];
    if (Object.keys(metadata.annotations).length === 0) delete metadata.annotations;
  }
  const spec = template.spec;
  if (!isObject(spec) || !Array.isArray(spec.containers)) return;
  for (const container of spec.containers) {
    if (!isObject(container) || !Array.isArray(container.envFrom)) continue;
    for (const source of container.envFrom) {
      if (isObject(source) && isObject(source.configMapRef) && typeof source.configMapRef.name === 'string') {
        source.configMapRef.name = unhashed(source.configMapRef.name);
      }
    }
  }
}

/** A deep copy of `object` without the differences this module allows. */
export function normalise(object: KubernetesObject): JsonObject {
  const copy = JSON.parse(JSON.stringify(object)) as JsonObject;
  const metadata = copy.metadata;
  if (isObject(metadata)) {
    dropHelmLabels(metadata);
    if (copy.kind === 'ConfigMap' && typeof metadata.name === 'string')
      metadata.name = unhashed(metadata.name);
  }
  const spec = copy.spec;
  if (copy.kind === 'Deployment' && isObject(spec) && isObject(spec.template))
    normalisePodTemplate(spec.template);
  return copy;
}

/** The first path at which two JSON values differ, with both sides, or undefined when equal. */
export function firstDifference(left: Json, right: Json, path = ''): string | undefined {
  if (Array.isArray(left) && Array.isArray(right)) {
    for (let index = 0; index < Math.max(left.length, right.length); index += 1) {
      const found = firstDifference(left[index] ?? null, right[index] ?? null, `${path}[${index}]`);
      if (found) return found;
    }
    return undefined;
  }
  if (isObject(left) && isObject(right)) {
    for (const key of [...new Set([...Object.keys(left), ...Object.keys(right)])].sort()) {
      const found = firstDifference(left[key] ?? null, right[key] ?? null, `${path}.${key}`);
      if (found) return found;
    }
    return undefined;
  }
  return left === right ? undefined : `${path || '.'}: ${JSON.stringify(left)} != ${JSON.stringify(right)}`;
}
