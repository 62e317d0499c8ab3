// A Connector deleted in the middle of a guided recovery of an adopted workload: the attempt held the
// workload at 0 (or 1) replicas, and nothing else gives them back once the Connector is gone. The
// workload's owner consented to be recovered, not to be left scaled down by whoever deletes the
// Connector (who may have no right to scale it), so the deletion gives back the replicas recorded
// with the request, as an abandoned attempt does (docs/security.md). The operator's own StatefulSet
// needs none: it goes with the Connector.
import type { Connector } from '../api/types.ts';
import { adoptionConsented } from './adoption-consent.ts';
import { replicasDuring, restoredReplicas } from './recovery-stages.ts';

/** The replicas a Connector being deleted owes its adopted workload, and the ones the attempt set. */
export interface WorkloadOwed {
  kind: 'StatefulSet' | 'Deployment';
  name: string;
  /** What the attempt recorded before it scaled (evidence.replicasBefore). */
  replicas: number;
  /** What the recorded step holds the workload at. */
  heldAt: number;
}

export function workloadOwed(connector: Connector): WorkloadOwed | undefined {
  const ref = connector.spec?.workloadRef;
  const recovery = connector.status?.recovery;
  if (!ref || !recovery?.step) return undefined;
  const replicas = restoredReplicas(recovery);
  const heldAt = replicasDuring(recovery.step);
  if (replicas === undefined || heldAt === undefined) return undefined;
  return { kind: ref.kind, name: ref.name, replicas, heldAt };
}

/** What the workload is found as when the Connector goes: what to do with it. */
export type GiveBackDecision =
  | { scale: number; says: string }
  | { scale?: undefined; says: string; warning: boolean };

export function giveBackDecision(
  owed: WorkloadOwed,
  workload: { replicas: number; labels: Record<string, string> | undefined } | undefined,
  connectorName: string,
): GiveBackDecision {
  const which = `${owed.kind} ${owed.name}`;
  if (!workload) return { says: `the adopted ${which} no longer exists`, warning: false };
  if (!adoptionConsented(workload.labels, connectorName))
    return {
      says: `the adopted ${which} no longer consents to adoption, so it is left at ${workload.replicas} replicas: give it back its ${owed.replicas} yourself`,
      warning: true,
    };
  // A finalizer run again after the scale (the operator restarted before it let go) finds it done.
  if (workload.replicas === owed.replicas)
    return {
      says: `the adopted ${which} has the ${owed.replicas} replicas it had before the recovery`,
      warning: false,
    };
  if (workload.replicas !== owed.heldAt)
    return {
      says: `the adopted ${which} has ${workload.replicas} replicas, not the ${owed.heldAt} the recovery held it at: left as it is`,
      warning: false,
    };
  return {
    scale: owed.replicas,
    says: `gave the adopted ${which} back the ${owed.replicas} replicas it had before the recovery`,
  };
}
