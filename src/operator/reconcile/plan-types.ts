// What a reconcile pass decided: the objects to apply, the control-plane calls to make, what to
// delete, the new status, the Events to record and when to look again. The act layer carries it
// out in a fixed order; nothing in here has run yet.
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

export interface PlannedEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  /**
   * `always` for Events that must never be dropped: a phase change and an outcome (a recovery
   * succeeded or failed). The recorder writes them past its per-object rate limit; the rest are
   * steps, limited and folded beyond the budget (runtime/events.ts, docs/operator-runtime.md).
   */
  priority?: EventPriority;
}

export interface Plan {
  /** Owned objects to server-side apply (absent: leave as is). */
  configMap?: V1ConfigMap;
  statefulSet?: V1StatefulSet;
  /** Replicas to set through the scale subresource of an adopted workload. */
  scaleAdopted?: { kind: 'StatefulSet' | 'Deployment'; name: string; replicas: number };
  controlPlane: ControlPlaneAction[];
  /** Delete the token Secret (retired, consumed, expired or revoked). */
  deleteTokenSecret?: string;
  /** Grow the operator's own claim (that uid only) to spec.storage.size (storage-expansion.ts). */
  expandClaim?: { name: string; uid: string; size: string };
  status: ConnectorStatus;
  /** Events for actions this plan takes (recorded only once they happened). */
  events: PlannedEvent[];
  /**
   * Events for what changed since the stored status (phase, mode, storage, diagnosis): recorded
   * whenever the status is written, even when an action failed.
   */
  transitions?: PlannedEvent[];
  /** Look again after this long even if nothing changes (token expiry, recovery polling). */
  requeueAfterMs?: number;
}
