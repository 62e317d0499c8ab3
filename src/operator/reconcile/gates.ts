// The gates of a pass, read before anything is decided and handed to every phase: whether the
// Connector is paused, what blocks it, and whether the control plane could be asked. A phase that
// is held returns no action and no Event that announces one, and says nothing will happen that
// does not (plan.ts). An invalid spec is the gate before these: nothing is planned at all.
import { ADOPTED_BY_LABEL } from '../api/constants.ts';
import type { DefaultedSpec } from '../api/types.ts';
import { StalledReasons } from '../conditions.ts';
import { adoptionNotConsentedMessage } from './adoption-consent.ts';
import type { Observed } from './observed.ts';
import { ownershipConflictMessage } from './ownership.ts';
import { podReferenceBlocker } from './pod-references.ts';
import { recoveryUnderway } from './recovery-stages.ts';

export interface Blocker {
  reason: string;
  message: string;
}

export interface Gates {
  /** spec.paused: observe and report only. */
  paused: boolean;
  /** What stops the pass from deciding anything (a Stalled reason and its message). */
  blocker?: Blocker;
  /** The control plane answered this pass: its record is known, and it can be called. */
  controlPlaneReachable: boolean;
  /**
   * spec.controlPlaneRef (or the operator's default) led to a usable control plane this pass, so
   * its URL and CA are known. Without it the workload phase writes nothing (workload.ts): a
   * ConfigMap without the URL would stop the agent from starting, and an existing one losing it
   * would restart a running connector into the same failure.
   */
  controlPlaneResolved: boolean;
}

/** Whether nothing may be decided this pass: paused, or blocked. */
export function held(gates: Gates): boolean {
  return gates.paused || gates.blocker !== undefined;
}

/** Why actions wait, in words for a message about what would otherwise happen. */
export function heldBecause(gates: Gates): string | undefined {
  if (gates.paused) return 'spec.paused is true';
  if (gates.blocker) return `the Connector is Stalled (${gates.blocker.reason})`;
  return undefined;
}

export function gatesOf(observed: Observed, spec: DefaultedSpec): Gates {
  const blocker = blockingReason(observed, spec);
  return {
    paused: spec.paused,
    ...(blocker ? { blocker } : {}),
    controlPlaneReachable: observed.controlPlane.reachable,
    controlPlaneResolved: observed.controlPlaneUrl !== undefined,
  };
}

/**
 * What stops this pass from deciding anything, before anything is decided: an object with a child's
 * name that is not ours, an adopted workload that does not exist or has not consented to adoption,
 * an existing claim that does not exist, a PriorityClass or ServiceAccount the pod names that does
 * not exist (or cannot be read) while no pod runs. Minting a token (or scaling, or creating a workload) for a
 * connector that cannot run would be a side effect before its precondition, and scaling a workload
 * that did not consent would make the operator the deputy of whoever wrote the Connector.
 */
function blockingReason(observed: Observed, spec: DefaultedSpec): Blocker | undefined {
  const foreign = observed.foreign ?? [];
  if (foreign.length > 0) {
    return {
      reason: StalledReasons.OwnershipConflict,
      message: ownershipConflictMessage(spec.namespace, foreign),
    };
  }
  const idConflict = connectorIdConflict(observed, spec);
  if (idConflict) return idConflict;
  if (spec.workloadRef && !observed.workload) {
    const { kind, name } = spec.workloadRef;
    return {
      reason: StalledReasons.WorkloadNotFound,
      message: `spec.workloadRef: ${kind} ${spec.namespace}/${name} does not exist; create it (labelled ${ADOPTED_BY_LABEL}=${spec.name}, its consent to adoption) or fix the name`,
    };
  }
  const adopted = observed.workload;
  if (spec.workloadRef && adopted && adopted.consented !== true) {
    return {
      reason: StalledReasons.AdoptionNotConsented,
      message: adoptionNotConsentedMessage({
        namespace: spec.namespace,
        kind: spec.workloadRef.kind,
        name: spec.workloadRef.name,
        connectorName: spec.name,
        adoptedBy: adopted.adoptedBy,
      }),
    };
  }
  const step = observed.connector.status?.recovery?.step;
  // During a recovery the StorageReady step reports a missing claim itself, as the attempt's outcome.
  if (
    spec.storage.kind === 'ExistingClaim' &&
    !recoveryUnderway(step) &&
    !observed.claims.has(spec.storage.claimName)
  ) {
    return {
      reason: StalledReasons.ClaimNotFound,
      message: `spec.storage.existingClaim: PersistentVolumeClaim ${spec.namespace}/${spec.storage.claimName} does not exist; create it (or restore the original identity volume under that name)`,
    };
  }
  return podReferenceBlocker(observed.podReferences, spec);
}

/** Why the fix of a ConnectorIdConflict is a new Connector: the CRD refuses a change of the id. */
const FIXED_ID = 'this Connector cannot change its spec.connector.id (fixed at creation)';

/**
 * The control plane's record of this connector id is another Connector's: owned by another UID, or
 * let go of for another namespace. Judged on its own as well as among the blockers: whatever blocker
 * comes first (a foreign child's OwnershipConflict), that record is not this Connector's to show.
 */
export function connectorIdConflict(observed: Observed, spec: DefaultedSpec): Blocker | undefined {
  const record = observed.controlPlane.reachable ? observed.controlPlane.record : undefined;
  const owner = record?.ownerUid;
  if (typeof owner === 'string' && owner !== observed.connector.metadata.uid) {
    return {
      reason: StalledReasons.ConnectorIdConflict,
      message: `connector id ${spec.connector.id} belongs to another Connector in the control plane; ${FIXED_ID}: create a new Connector with another spec.connector.id and delete this one (its deletion leaves the other's record alone), or delete the other Connector (with deletionPolicy Retain, when it is in this namespace, to hand its record over to this one)`,
    };
  }
  // A record let go of for another namespace is not ours to claim (nor to mint or recover for): the
  // control plane would refuse the claim too; saying so here keeps every side effect from starting.
  const handover = record?.ownerUid === null ? record.handoverNamespace : undefined;
  if (typeof handover === 'string' && handover !== spec.namespace) {
    return {
      reason: StalledReasons.ConnectorIdConflict,
      message: `connector id ${spec.connector.id} was kept by a Connector deleted with deletionPolicy Retain for a Connector of another namespace to claim, not this one; ${FIXED_ID}: create a new Connector with another spec.connector.id and delete this one (its deletion leaves the kept record alone; a kept record and its identity stay in the namespace of the Connector that had them)`,
    };
  }
  return undefined;
}
