// What the guided recovery decides from, and what it decides: the data between the planner and the
// recovery's modules (recovery.ts and the recovery-*.ts it is built from), kept apart so that none
// of them imports another's logic only for a type.
import type { V1Pod } from '@kubernetes/client-node';
import type { RecoveryPolicy, RecoveryStatus, StoragePlan } from '../api/types.ts';
import type { AuditEntry } from '../control-plane/admin-client.ts';
import type {
  ClaimFacts,
  ControlPlaneConnector,
  RecoveryCheck,
  TokenSecretFacts,
  WorkloadFacts,
} from './observed.ts';
import type { ControlPlaneAction, PlannedEvent } from './plan-types.ts';

export interface RecoveryInput {
  connectorId: string;
  policy: RecoveryPolicy;
  requestedId: string | undefined;
  validateRestart: boolean;
  storage: StoragePlan;
  previous: RecoveryStatus | undefined;
  record: ControlPlaneConnector | undefined;
  /** The current diagnosis says the identity is lost (for the Automatic policy). */
  identityLoss: boolean;
  /**
   * The agent of a connector that never paired stopped because the control plane refused the
   * identity in its data directory (assessment.ts, refusedIdentityOfNeverPaired): a recovery is
   * what fixes it, although the record is pending.
   */
  identityRefused?: boolean;
  phaseBefore: string | undefined;
  workload: WorkloadFacts | undefined;
  pods: V1Pod[];
  tokenSecret: TokenSecretFacts | undefined;
  claims: Map<string, ClaimFacts>;
  audit: AuditEntry[] | undefined;
  /** The control plane's dry-run answer while the recorded step is Checking (recovery-check.ts). */
  check?: RecoveryCheck | undefined;
  /**
   * A mint key the control plane refused as consumed in the last pass (status.enrollment
   * consumedMintKey): at TokenMinted, this recovery's token was minted and is spent unstored.
   */
  consumedMintKey?: string | undefined;
  now: Date;
}

export interface RecoveryDecision {
  status: RecoveryStatus | undefined;
  inProgress: boolean;
  /**
   * Replicas the workload must have now: 0 while scaled down, 1 to pair, and back to the replicas it
   * had when an attempt that scaled it down ends. Undefined: the recovery asks nothing of the
   * workload (an adopted one is left as it is; the operator's own StatefulSet keeps its replica).
   */
  replicas?: number;
  /** Restart marker for the pod template (validation restart). */
  restartFor?: string;
  controlPlane: ControlPlaneAction[];
  deleteSecret: boolean;
  mintKey?: string;
  /**
   * The mint with `mintKey` stores this recovery's one token again, live until `expiresAt`, in a
   * Secret someone deleted before the agent paired (token-restore.ts): no new token.
   */
  restoresSecret?: { expiresAt: string };
  events: PlannedEvent[];
  requeueAfterMs?: number;
}
