// The Connector CRD as a client-node model, for tests that install it through client-node's typed API.
// The operator itself never sends a CRD, so this lives with the tests (src/operator/api/crd.ts reads
// the same file with js-yaml).
import { readFile } from 'node:fs/promises';
import { loadYaml, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { CONNECTOR_CRD_PATH, loadConnectorCrd } from '../../src/operator/api/crd.ts';

/**
 * The CRD as a client-node model, ready for ApiextensionsV1Api. Always send this, never the plain
 * parsed YAML: the client's serializer writes model properties (`_enum`, `x_kubernetes_validations`,
 * `x_kubernetes_int_or_string`, ...) under their JSON names and silently drops plain keys such as
 * `enum` and `x-kubernetes-validations`, which installs a CRD without its validation.
 */
export async function loadConnectorCrdModel(
  path: string = CONNECTOR_CRD_PATH,
): Promise<V1CustomResourceDefinition> {
  await loadConnectorCrd(path);
  return loadYaml<V1CustomResourceDefinition>(await readFile(path, 'utf8'));
}
