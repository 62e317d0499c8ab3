// Ownership: the operator writes only objects its Connector controls (a controller owner reference
// with the Connector's UID). An object that already has a child's name but belongs to someone else
// (a user's ConfigMap, Secret or StatefulSet, or another Connector's) is never written: server-side
// apply with force would silently take it over. Observe finds such objects before anything is
// decided, and the planner stalls with OwnershipConflict naming them.
//
// The informers only see objects that carry the operator's labels, so a name missing from the cache
// is read from the API before the operator would create it. The token Secret has no informer at all
// (the operator does not list or watch Secrets): it is read by name only on a pass where it may
// exist or matter (token-secret.ts), and judged here like the others.
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ForeignObject } from './observed.ts';

/** The controller owner reference of an object, if any. */
function controllerOf(object: KubernetesObject) {
  return object.metadata?.ownerReferences?.find((ref) => ref.controller === true);
}

/** Whether `object` is controlled by the Connector with this UID. */
export function controlledBy(object: KubernetesObject, connectorUID: string): boolean {
  return connectorUID !== '' && controllerOf(object)?.uid === connectorUID;
}

/** `object` as a ForeignObject when it exists and this Connector does not control it. */
export function foreignObject(
  kind: ForeignObject['kind'],
  object: KubernetesObject | undefined,
  connectorUID: string,
): ForeignObject | undefined {
  if (!object || controlledBy(object, connectorUID)) return undefined;
  const controller = controllerOf(object);
  return {
    kind,
    name: object.metadata?.name ?? '',
    ...(controller ? { controller: `${controller.kind}/${controller.name}` } : {}),
  };
}

/** The Stalled message for foreign objects: what is in the way and how to clear it. */
export function ownershipConflictMessage(namespace: string, foreign: readonly ForeignObject[]): string {
  const names = foreign
    .map(
      (f) =>
        `${f.kind} ${namespace}/${f.name} (${f.controller ? `controlled by ${f.controller}` : 'not created by this Connector'})`,
    )
    .join(', ');
  return `${names} already exist${foreign.length === 1 ? 's' : ''} and this Connector does not control ${foreign.length === 1 ? 'it' : 'them'}; the operator will not take over another owner's object: rename or delete ${foreign.length === 1 ? 'it' : 'them'}, or rename the Connector`;
}
