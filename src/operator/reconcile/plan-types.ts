// What a reconcile pass decided, as ordered steps: each an action (or none), the status fields it
// sets, and the Events that say what it did. The act layer runs the steps in the plan's order and
// stops at the first that fails; a step's status change and Events count only once its action ran
// (pass-status.ts). Nothing in here has run yet.
import type { V1ConfigMap, V1StatefulSet } from '@kubernetes/client-node';
import type { ConnectorStatus } from '../api/types.ts';
import type { EventPriority } from '../runtime/events.ts';

export type ControlPlaneAction =
  | {
      kind: 'ensureConnector';
      connectorId: string;
      config: { org: string; endpointId: string; allowedNetworks: string[] };
    }
  | { kind: 'revokeTokens'; connectorId: string }
  | { kind: 'beginRecovery'; connectorId: string; requestId: string }
  /** Mint (idempotent by key) and store the token in the connector's token Secret. */
  | { kind: 'mintToken'; connectorId: string; idempotencyKey: string; ttlSeconds: number };

export type PlannedAction =
  /**
   * Ask Kubernetes whether it accepts an owned object, writing nothing: a refusal becomes
   * InvalidSpec naming the Connector field, before a token exists for a workload that cannot run.
   */
  | { kind: 'dryRun'; object: V1ConfigMap | V1StatefulSet }
  | ControlPlaneAction
  /** Delete the token Secret (retired, consumed, expired or revoked): only the one the plan judged. */
  | { kind: 'deleteTokenSecret'; name: string }
  /** Server-side apply of an owned object, when a field the operator sets differs (drift.ts). */
  | { kind: 'applyConfigMap'; object: V1ConfigMap }
  | { kind: 'applyStatefulSet'; object: V1StatefulSet }
  /** Grow the operator's own claim (that uid only) to spec.storage.size (storage-expansion.ts). */
  | { kind: 'expandClaim'; name: string; uid: string; size: string }
  /** Replicas to set through the scale subresource of an adopted workload. */
  | { kind: 'scaleAdopted'; workloadKind: 'StatefulSet' | 'Deployment'; name: string; replicas: number };

export interface PlannedEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  /**
   * `always` for Events that must never be dropped: a phase change and an outcome (a recovery
   * succeeded, failed or was not needed). The recorder writes them past its per-object rate limit;
   * the rest are steps, limited and folded beyond the budget (runtime/events.ts,
   * docs/operator-runtime.md).
   */
  priority?: EventPriority;
}

/**
 * Status fields a step sets, each as a whole value: a later step that sets the same field gives it
 * the value it has once both ran, so the status of the steps that ran is their changes in order.
 */
export type StatusChange = Partial<ConnectorStatus>;

export interface PlanStep {
  /** The side effect; absent: a step that only reports or records. */
  action?: PlannedAction;
  /** Written only when this step and every step before it ran. */
  status?: StatusChange;
  /** Recorded only when this step and every step before it ran. */
  events?: PlannedEvent[];
}

export interface Plan {
  /**
   * In the order they run. The first is the report (observed facts, conditions, the carried-over
   * records as they stood); a step without an action commits once every step before it ran.
   */
  steps: PlanStep[];
  /**
   * Events for what changed since the stored status (phase, mode, storage, diagnosis): recorded
   * whenever the status is written, even when an action failed.
   */
  transitions: PlannedEvent[];
  /** Look again after this long even if nothing changes (token expiry, recovery polling). */
  requeueAfterMs?: number;
}
