// The objects the connector's pod names that Kubernetes looks up when it creates the pod:
// spec.priorityClassName (a cluster-scoped PriorityClass) and spec.serviceAccountName (a
// ServiceAccount of the Connector's namespace). Neither is checked by the StatefulSet's dry run
// (the StatefulSet names them, the pod's admission looks them up), so without this check a
// Connector naming one that does not exist was given a token for a StatefulSet whose every pod
// Kubernetes refused (FailedCreate), and its status said it waited for the agent to pair.
//
// Read by name (get) while the Connector has no pod: before the first mint, and again whenever no
// pod runs (the object can be deleted later, or created later: the blocker's recheck sees it). A
// running pod was admitted with them, so nothing is read while one exists. No watch: the
// Connector's blocker is looked at again every BLOCKED_RECHECK_MS (plan.ts).
import type { V1Pod } from '@kubernetes/client-node';
import type { ConnectorSpec, DefaultedSpec } from '../api/types.ts';
import { StalledReasons } from '../conditions.ts';
import { apiErrorMessage, httpStatusOf } from '../runtime/api-errors.ts';
import type { Blocker } from './gates.ts';
import type { ClusterReader } from './observe.ts';
import type { PodReferenceProblem } from './observed.ts';
import { untrustedText } from './untrusted-text.ts';

/** The reads this needs: each answers undefined when the object does not exist (404). */
type PodReferenceReader = Pick<ClusterReader, 'readPriorityClass' | 'readServiceAccount'>;

/** The grant each read needs, named in the message when Kubernetes forbids it (manifests/rbac.yaml). */
function grantFor(kind: PodReferenceProblem['kind'], namespace: string): string {
  return kind === 'PriorityClass'
    ? 'get on priorityclasses.scheduling.k8s.io (the ClusterRole and ClusterRoleBinding vaultpam-connector-operator-priorityclasses of every install)'
    : `get on serviceaccounts in namespace ${namespace} (a rule of the operator's ClusterRole, or of its Role in a namespaced install)`;
}

/** Each object the pod names: the field, its kind, and how it is read. */
const REFERENCES: ReadonlyArray<{
  field: PodReferenceProblem['field'];
  kind: PodReferenceProblem['kind'];
  nameIn: (raw: ConnectorSpec) => string | undefined;
  read: (reader: PodReferenceReader, namespace: string, name: string) => Promise<unknown>;
}> = [
  {
    field: 'spec.priorityClassName',
    kind: 'PriorityClass',
    nameIn: (raw) => raw.priorityClassName,
    read: (reader, _namespace, name) => reader.readPriorityClass(name),
  },
  {
    field: 'spec.serviceAccountName',
    kind: 'ServiceAccount',
    nameIn: (raw) => raw.serviceAccountName,
    read: (reader, namespace, name) => reader.readServiceAccount(namespace, name),
  },
];

/**
 * What is wrong with the objects the pod names: each one missing (404) or that Kubernetes forbids
 * the operator to read (403: it cannot tell, so it is not said to be missing). Empty when nothing
 * is named, or a pod exists. Any other failure is thrown: a temporary error, retried.
 */
export async function observePodReferences(
  reader: PodReferenceReader,
  raw: ConnectorSpec,
  namespace: string,
  pods: readonly V1Pod[],
): Promise<PodReferenceProblem[]> {
  if (pods.length > 0) return [];
  const problems: PodReferenceProblem[] = [];
  for (const { field, kind, nameIn, read } of REFERENCES) {
    const name = nameIn(raw);
    if (!name) continue;
    try {
      if ((await read(reader, namespace, name)) === undefined)
        problems.push({ field, kind, name, state: 'missing' });
    } catch (error) {
      if (httpStatusOf(error) !== 403) throw error;
      const refusal = untrustedText(apiErrorMessage(error));
      problems.push({ field, kind, name, state: 'forbidden', refusal });
    }
  }
  return problems;
}

/** The Stalled reason and message for the first problem: what the pod names, what is wrong, the fix. */
export function podReferenceBlocker(
  problems: readonly PodReferenceProblem[] | undefined,
  spec: DefaultedSpec,
): Blocker | undefined {
  const problem = problems?.[0];
  if (!problem) return undefined;
  const what =
    problem.kind === 'PriorityClass'
      ? `PriorityClass ${problem.name}`
      : `ServiceAccount ${spec.namespace}/${problem.name}`;
  const held =
    'Kubernetes would refuse every pod of the connector, so no token is minted and no workload applied';
  if (problem.state === 'forbidden') {
    return {
      reason: StalledReasons.PodReferenceForbidden,
      message: `${problem.field}: the operator may not read ${what}, so it cannot check that it exists (${problem.refusal}); nothing is minted or applied until it can: an admin grants it ${grantFor(problem.kind, spec.namespace)}`,
    };
  }
  const fix =
    problem.kind === 'PriorityClass'
      ? `create the PriorityClass ${problem.name} (a cluster admin), or set ${problem.field} to an existing one or remove it`
      : `create the ServiceAccount ${problem.name} in namespace ${spec.namespace}, or set ${problem.field} to an existing one or remove it`;
  return {
    reason:
      problem.kind === 'PriorityClass'
        ? StalledReasons.PriorityClassNotFound
        : StalledReasons.ServiceAccountNotFound,
    message: `${problem.field}: ${what} does not exist; ${held}; ${fix}`,
  };
}
