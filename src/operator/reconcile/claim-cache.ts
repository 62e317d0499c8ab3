// What the operator's claim cache keeps of each claim it owns: the fields a pass reads (observe.ts
// claimFacts), nothing else. Besides the memory, this is what lets an update that changes none of
// them wake nobody (runtime/owned-events.ts): binding sets a claim's volumeName and the binder's
// annotations in one write and its phase in the next; only the second is news to a Connector.
// Kept, and read by claimFacts:
//   metadata (all but annotations)      name, uid, labels (the cache's index), deletionTimestamp
//   spec.resources.requests.storage,
//   spec.storageClassName               what growing it needs (storage-expansion.ts)
//   status.phase, .capacity.storage     bound or not, and its size
//   status.conditions                   only the resize conditions that are True
// Reading another claim field means keeping it here first; test/unit/claim-cache.test.ts holds that
// the facts of a cached claim are those of the full one.
import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { RESIZE_CONDITIONS } from './storage-expansion.ts';

export function claimAsCached(claim: V1PersistentVolumeClaim): V1PersistentVolumeClaim {
  const cached: V1PersistentVolumeClaim = {};
  if (claim.apiVersion !== undefined) cached.apiVersion = claim.apiVersion;
  if (claim.kind !== undefined) cached.kind = claim.kind;
  if (claim.metadata !== undefined) {
    const { annotations: _annotations, ...metadata } = claim.metadata;
    cached.metadata = metadata;
  }
  const storage = claim.spec?.resources?.requests?.storage;
  const storageClassName = claim.spec?.storageClassName;
  if (claim.spec !== undefined) {
    cached.spec = {};
    if (storage !== undefined) cached.spec.resources = { requests: { storage } };
    if (storageClassName !== undefined) cached.spec.storageClassName = storageClassName;
  }
  if (claim.status !== undefined) {
    const { phase, capacity, conditions } = claim.status;
    cached.status = {};
    if (phase !== undefined) cached.status.phase = phase;
    if (capacity?.storage !== undefined) cached.status.capacity = { storage: capacity.storage };
    const resizing = conditions?.filter((c) => c.status === 'True' && RESIZE_CONDITIONS.has(c.type));
    if (resizing !== undefined && resizing.length > 0) cached.status.conditions = resizing;
  }
  return cached;
}
