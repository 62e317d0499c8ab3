// Whether the operator is Stalled on a Connector, as the plugin's refusals say it: `recover` and
// `token` ask the operator's question ("would it act now?") with this one check, so neither starts
// what the operator itself would hold (a recovery, a mint) while a person must fix something first.
import type { Connector } from '../operator/api/types.ts';
import { conditionMessage, conditionReason } from './condition-text.ts';

/** Stalls that hold every decision of the operator (a recovery too) until someone fixes them. */
export const BLOCKING_STALLS: ReadonlySet<string> = new Set([
  'InvalidSpec',
  'ControlPlaneConfigInvalid',
  'ControlPlaneUnauthorized',
  'ControlPlaneRejected',
  'WorkloadNotFound',
  'AdoptionNotConsented',
  'OwnershipConflict',
  'ConnectorIdConflict',
  'ClaimNotFound',
  'PriorityClassNotFound',
  'ServiceAccountNotFound',
  'PodReferenceForbidden',
]);

export interface StallCheck {
  /** Only the stalls in BLOCKING_STALLS count (recover: RecoveryRequired is what it answers). */
  blockingOnly: boolean;
  /** What the operator does not do meanwhile, e.g. "starts no recovery until that is fixed". */
  meanwhile: string;
}

/** Why nothing is done while the Connector is Stalled=True, or undefined when it is not. */
export function stalledRefusal(connector: Connector, check: StallCheck): string | undefined {
  const stalled = connector.status?.conditions?.find((c) => c.type === 'Stalled' && c.status === 'True');
  if (!stalled) return undefined;
  if (check.blockingOnly && !BLOCKING_STALLS.has(stalled.reason)) return undefined;
  return `the Connector is Stalled (${conditionReason(stalled)}): ${conditionMessage(stalled)}; the operator ${check.meanwhile}`;
}
