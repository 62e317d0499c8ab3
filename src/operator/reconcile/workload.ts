// The workload phase: the ConfigMap and the operator's StatefulSet to apply (an adopted workload is
// the user's: only a recovery scales it, recovery.ts), and the claim to grow when spec.storage.size
// grew (storage-expansion.ts). Held (paused, blocked), it writes nothing.
import { ANNOTATIONS } from '../api/constants.ts';
import type { Connector, DefaultedSpec } from '../api/types.ts';
import {
  childNames,
  configHash,
  configuredControlPlane,
  desiredConfigMap,
  desiredStatefulSet,
} from './desired-objects.ts';
import { type Gates, held } from './gates.ts';
import type { ClaimFacts, Observed } from './observed.ts';
import type { PlanStep } from './plan-types.ts';
import type { RecoveryDecision } from './recovery-types.ts';
import { type ExpansionDecision, planStorageExpansion } from './storage-expansion.ts';

export interface WorkloadPhase {
  /** In act order: the ConfigMap, the StatefulSet, the claim's growth. */
  steps: PlanStep[];
  /**
   * What a mint checks first (plan.ts): the dry run of the StatefulSet, the object that starts the
   * agent. The ConfigMap is not dry-run: it holds nothing a mint guards, so a pass that mints
   * applies it before the mint instead, one write where a dry run and an apply were two.
   */
  dryRuns: PlanStep[];
  expansion: ExpansionDecision;
}

export function workloadPhase(
  observed: Observed,
  spec: DefaultedSpec,
  gates: Gates,
  recovery: Pick<RecoveryDecision, 'inProgress' | 'replicas' | 'restartFor'>,
): WorkloadPhase {
  const connector: Connector = observed.connector;
  const names = childNames(spec.name);
  const expansion = planStorageExpansion({
    storage: spec.storage,
    claim: ownDataClaim(observed.claims.get(names.claim), spec.name),
    storageClass: observed.storageClass,
    previousConditions: connector.status?.conditions,
    held: held(gates),
  });
  if (held(gates)) return { steps: [], dryRuns: [], expansion };
  // No control plane resolved this pass (the one spec.controlPlaneRef names is not Ready, or gone):
  // the agent keeps the URL and CA it was given. Dropped, they would roll a running agent into a pod
  // that cannot start (its URL comes from this ConfigMap), and lose the one record of where the
  // connector was last registered, which its deletion names (reconciler.ts).
  const configMap = desiredConfigMap(
    connector,
    spec,
    observed.controlPlaneUrl === undefined
      ? configuredControlPlane(observed.configMap)
      : { url: observed.controlPlaneUrl, caPem: observed.caPem },
  );
  const steps: PlanStep[] = [{ action: { kind: 'applyConfigMap', object: configMap } }];
  const dryRuns: PlanStep[] = [];
  if (!spec.workloadRef) {
    const statefulSet = desiredStatefulSet(connector, spec, {
      image: spec.image ?? observed.defaultImage,
      replicas: recovery.inProgress && recovery.replicas !== undefined ? recovery.replicas : 1,
      configHash: configHash(configMap),
      restartedFor: recovery.restartFor ?? observed.workload?.templateAnnotations[ANNOTATIONS.restartedFor],
      liveClaimTemplates: observed.workload?.object?.spec?.volumeClaimTemplates,
    });
    steps.push({ action: { kind: 'applyStatefulSet', object: statefulSet } });
    dryRuns.push({ action: { kind: 'dryRun', object: statefulSet } });
  }
  if (expansion.step) steps.push(expansion.step);
  return { steps, dryRuns, expansion };
}

/** The data claim when its labels say it is this Connector's (ClaimFacts.labelledFor); else none to grow. */
function ownDataClaim(claim: ClaimFacts | undefined, connectorName: string): ClaimFacts | undefined {
  return claim?.labelledFor === connectorName ? claim : undefined;
}
