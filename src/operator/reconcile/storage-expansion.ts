// Growing the data volume when spec.storage.size grows. A StatefulSet's volumeClaimTemplates cannot
// change after creation (the API server refuses the whole update), so the template keeps the claim
// it was created with (desired-objects.ts reuses the live one) and the claim it made is grown
// instead: its spec.resources.requests.storage is raised, which Kubernetes admits only for a Bound
// claim whose StorageClass has `allowVolumeExpansion: true`. The class is checked first, so a class
// that cannot expand is a Stalled reason that says what to do, not a refused write retried forever.
//
// Only the operator's own claim (the StatefulSet's `data-<name>-0`) is ever grown: never an
// existingClaim (the user's), never an adopted workload's. Nothing shrinks: a smaller size is left
// as it is (the CRD refuses a smaller spec.storage.size). Pure: observe.ts reads the claim and its
// class, act.ts makes the one write.
import type { Condition, StoragePlan } from '../api/types.ts';
import { compareQuantities, parseQuantity } from '../api/validation.ts';
import { CONDITION_TYPES, findCondition, ReconcilingReasons, StalledReasons } from '../conditions.ts';
import type { ClaimFacts, StorageClassFacts } from './observed.ts';
import type { PlannedEvent, PlanStep } from './plan-types.ts';

/** Claim conditions (status True) that tell of a resize under way or failing. */
export const RESIZE_CONDITIONS: ReadonlySet<string> = new Set([
  'Resizing',
  'FileSystemResizePending',
  'ControllerResizeError',
  'NodeResizeError',
]);

export interface ExpansionInput {
  storage: StoragePlan;
  /** The operator's own claim (`data-<name>-0`), if it exists. */
  claim: ClaimFacts | undefined;
  /** Its StorageClass, read when the claim should grow; absent: not found. */
  storageClass: StorageClassFacts | undefined;
  /** The conditions of the stored status: whether an expansion or a refusal was reported already. */
  previousConditions: readonly Condition[] | undefined;
  /** Paused or blocked (gates.ts): observe and report only. */
  held: boolean;
}

export interface ExpansionDecision {
  /** Raise the claim's request to spec.storage.size (the claim judged, by uid), and say so. */
  step?: PlanStep;
  /** Reconciling=True while the claim grows (when nothing more telling holds). */
  reconciling?: { reason: string; message: string };
  /** Stalled=True: the claim cannot grow until a person changes something. */
  stalled?: { reason: string; message: string };
  /** Events that report what is, announcing no action. */
  notices: PlannedEvent[];
}

/** -1, 0 or 1 as size `a` is less than, equal to or more than `b` (by value: 2048Mi is 2Gi). */
function compareSizes(a: string, b: string): -1 | 0 | 1 | undefined {
  const x = parseQuantity(a);
  const y = parseQuantity(b);
  return x && y ? compareQuantities(x, y) : undefined;
}

/** The size the claim should grow to: spec.storage.size when it is more than the claim asks for. */
export function sizeToGrowTo(storage: StoragePlan, claim: ClaimFacts | undefined): string | undefined {
  if (storage.kind !== 'OperatorClaim' || !claim?.requested || claim.deleting) return undefined;
  return compareSizes(storage.size, claim.requested) === 1 ? storage.size : undefined;
}

/** Why Kubernetes would refuse to grow the claim, with what to do about it; undefined when it can. */
function refusal(claim: ClaimFacts, storageClass: StorageClassFacts | undefined, size: string) {
  const stays = `claim ${claim.name} stays at ${claim.requested} although spec.storage.size asks for ${size}; the connector keeps running on it meanwhile`;
  const className = claim.storageClassName;
  if (!className) {
    return `${stays}. The claim has no StorageClass, and Kubernetes expands only a claim whose StorageClass has allowVolumeExpansion: true`;
  }
  if (!storageClass) {
    return `${stays}. Its StorageClass ${className} does not exist, and Kubernetes expands only a claim whose StorageClass has allowVolumeExpansion: true`;
  }
  if (!storageClass.allowVolumeExpansion) {
    return `${stays}. Its StorageClass ${className} does not allow volume expansion: set allowVolumeExpansion: true on StorageClass ${className} (if its provisioner can expand volumes) and the operator grows the claim`;
  }
  return undefined;
}

/** What a claim's status says about a resize under way, or undefined when none is. */
export function expansionInProgress(claim: ClaimFacts): string | undefined {
  const conditions = claim.resizeConditions ?? [];
  const failed = conditions.find((c) => c.type.endsWith('ResizeError'));
  if (failed) {
    return `growing claim ${claim.name} to ${claim.requested} failed (${failed.type}${failed.message ? `: ${failed.message}` : ''}); the storage provider retries`;
  }
  if (conditions.some((c) => c.type === 'FileSystemResizePending')) {
    return `the volume of claim ${claim.name} was expanded to ${claim.requested}; the file system grows when the node next mounts it or resizes it online (FileSystemResizePending)`;
  }
  if (conditions.some((c) => c.type === 'Resizing')) {
    return `claim ${claim.name} is being resized from ${claim.capacity ?? 'its current size'} to ${claim.requested} (Resizing)`;
  }
  if (claim.capacity && claim.requested && compareSizes(claim.capacity, claim.requested) === -1) {
    return `claim ${claim.name} asks for ${claim.requested} and has ${claim.capacity}: waiting for the storage provider to expand the volume`;
  }
  return undefined;
}

export function planStorageExpansion(input: ExpansionInput): ExpansionDecision {
  const { claim } = input;
  const notices: PlannedEvent[] = [];
  if (input.held || !claim) return { notices };
  const expanding = (message: string) => ({ reason: ReconcilingReasons.ExpandingStorage, message });
  const size = sizeToGrowTo(input.storage, claim);
  if (size) {
    if (claim.phase !== 'Bound') {
      return {
        reconciling: expanding(
          `spec.storage.size asks for ${size}; claim ${claim.name} (${claim.requested}) is ${claim.phase}, and Kubernetes grows only a Bound claim: it is grown once bound`,
        ),
        notices,
      };
    }
    const refused = refusal(claim, input.storageClass, size);
    if (refused) {
      const before = findCondition(input.previousConditions, CONDITION_TYPES.Stalled);
      if (before?.reason !== StalledReasons.StorageExpansionUnsupported) {
        notices.push({
          type: 'Warning',
          reason: StalledReasons.StorageExpansionUnsupported,
          message: refused,
        });
      }
      return { stalled: { reason: StalledReasons.StorageExpansionUnsupported, message: refused }, notices };
    }
    return {
      step: {
        action: { kind: 'expandClaim', name: claim.name, uid: claim.uid, size },
        events: [
          {
            type: 'Normal',
            reason: 'StorageExpansionRequested',
            message: `growing claim ${claim.name} from ${claim.requested} to ${size} (StorageClass ${claim.storageClassName} allows volume expansion)`,
          },
        ],
      },
      reconciling: expanding(
        `asked to grow claim ${claim.name} from ${claim.requested} to ${size}; waiting for the storage provider`,
      ),
      notices,
    };
  }
  const progress = expansionInProgress(claim);
  if (progress) return { reconciling: expanding(progress), notices };
  const before = findCondition(input.previousConditions, CONDITION_TYPES.Reconciling);
  if (before?.reason === ReconcilingReasons.ExpandingStorage && claim.capacity) {
    notices.push({
      type: 'Normal',
      reason: 'StorageExpanded',
      message: `claim ${claim.name} has grown to ${claim.capacity}`,
    });
  }
  return { notices };
}
