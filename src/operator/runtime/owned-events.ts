// Which watch events of the objects a Connector owns (its ConfigMap, StatefulSet, pods, claims)
// bring a pass something it does not know. Each event that wakes a Connector costs a pass: its reads,
// its planning, and when it lands while a pass of that Connector runs, a second pass after it. At 100
// Connectors applied at once, a third of the owned events that woke one brought nothing
// (docs/performance.md, tenth increment): the add of an object the pass itself had just created,
// and updates to fields the cache does not keep (a pod bound to its node, a claim's annotations).
import { isDeepStrictEqual } from 'node:util';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { OwnVersions } from './own-versions.ts';

/** Calls `wake` unless this add is of the object at the version the operator's own write produced. */
export function unlessOwnCreation(
  ownVersions: OwnVersions,
  object: KubernetesObject,
  wake: () => void,
): void {
  const { metadata } = object;
  ownVersions.judge(object.kind ?? '', metadata?.namespace, metadata?.name, metadata?.resourceVersion, wake);
}

/**
 * An update after which the cached object is as it was but for its version: nothing a pass can read
 * changed (a pass reads only the cache), so no decision can. A redelivery of the same version (a
 * resync) is not one: it is there to be looked at again.
 */
export function isUnchangedInCache(object: KubernetesObject, previous: KubernetesObject): boolean {
  if (object.metadata?.resourceVersion === previous.metadata?.resourceVersion) return false;
  return isDeepStrictEqual(withoutVersion(object), withoutVersion(previous));
}

function withoutVersion(object: KubernetesObject): KubernetesObject {
  const { resourceVersion: _version, ...metadata } = object.metadata ?? {};
  return { ...object, metadata };
}
