// The workload phase: the ConfigMap and the operator's StatefulSet to apply (an adopted workload is
// the user's: only a recovery scales it, recovery.ts), and the claim to grow when spec.storage.size
// grew (storage-expansion.ts). Held (paused, blocked), or without a control plane to point the
// agent at (spec.controlPlaneRef does not resolve), it writes nothing: no new child, and an
// existing workload left exactly as it runs.
import type { V1ConfigMap } from '@kubernetes/client-node';
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
import type { ClaimFacts, Observed, WorkloadFacts } from './observed.ts';
import type { PlanStep } from './plan-types.ts';
import type { RecoveryDecision } from './recovery-types.ts';
import { type ExpansionDecision, planStorageExpansion } from './storage-expansion.ts';
import { untrustedText } from './untrusted-text.ts';

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
    held: held(gates) || !gates.controlPlaneResolved,
  });
  if (held(gates) || !gates.controlPlaneResolved) return { steps: [], dryRuns: [], expansion };
  const configMap = desiredConfigMap(connector, spec, {
    url: observed.controlPlaneUrl,
    caPem: observed.caPem,
  });
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

/**
 * What stays as it is while spec.controlPlaneRef does not resolve (the workload phase writes
 * nothing then), for the message that says why: the children that exist, and the control-plane URL
 * the agent keeps using from its ConfigMap; or that none is created.
 */
export function unresolvedHold(
  connectorName: string,
  configMap: V1ConfigMap | undefined,
  workload: Pick<WorkloadFacts, 'kind' | 'name'> | undefined,
): string {
  const names = childNames(connectorName);
  if (!configMap && !workload)
    return 'no ConfigMap, StatefulSet, claim or token is created until it resolves';
  const { url } = configuredControlPlane(configMap);
  const config = configMap
    ? `ConfigMap ${names.configMap} (${url ? `control-plane URL ${untrustedText(url)}` : 'which holds no control-plane URL'})`
    : undefined;
  const held = [workload ? `${workload.kind} ${workload.name}` : undefined, config].filter(Boolean);
  return workload
    ? `${held.join(' and its ')} ${held.length > 1 ? 'are' : 'is'} left as ${held.length > 1 ? 'they are' : 'it is'}, and nothing is applied until it resolves`
    : `${config} is left as it is; no StatefulSet, claim or token is created until it resolves`;
}
