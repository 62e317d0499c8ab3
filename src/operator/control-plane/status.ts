// Pure parts of the control-plane resources: the key each one is known by, which one a Connector's
// spec.controlPlaneRef names, and the status a check outcome becomes. Table-tested without a cluster.
import { isDeepStrictEqual } from 'node:util';
import type { ControlPlaneStatus } from '../api/control-planes.ts';
import type { Connector, ControlPlaneRefKind, DefaultedSpec } from '../api/types.ts';
import { CONDITION_TYPES, observedGenerationOf, setCondition, statusTime } from '../conditions.ts';
import type { CheckOutcome } from './check.ts';

/**
 * A check that finds nothing new writes nothing, except that lastCheckTime is refreshed this often,
 * so a stale time tells that the operator stopped checking.
 */
export const LAST_CHECK_REFRESH_MS = 30 * 60_000;

export interface ControlPlaneId {
  kind: ControlPlaneRefKind;
  /** Absent for a ClusterControlPlane. */
  namespace?: string;
  name: string;
}

/** `ControlPlane/team-a/prod`, `ClusterControlPlane/prod`: one key per resource, also its connection's. */
export function controlPlaneKey(id: ControlPlaneId): string {
  return id.kind === 'ControlPlane'
    ? `ControlPlane/${id.namespace ?? ''}/${id.name}`
    : `ClusterControlPlane/${id.name}`;
}

/** `ControlPlane team-a/prod`, `ClusterControlPlane prod`: how messages name it. */
export function describeControlPlane(id: ControlPlaneId): string {
  return id.kind === 'ControlPlane'
    ? `ControlPlane ${id.namespace ?? ''}/${id.name}`
    : `ClusterControlPlane ${id.name}`;
}

/**
 * The control plane a Connector's spec names. A namespaced ControlPlane is always the one in the
 * Connector's own namespace: the reference has no namespace field, so no Connector can reach
 * another team's ControlPlane (or its Secret) by naming it.
 */
export function referencedControlPlane(
  spec: Pick<DefaultedSpec, 'namespace' | 'controlPlaneRef'>,
): ControlPlaneId | undefined {
  const ref = spec.controlPlaneRef;
  if (!ref) return undefined;
  return ref.kind === 'ControlPlane'
    ? { kind: 'ControlPlane', namespace: spec.namespace, name: ref.name }
    : { kind: 'ClusterControlPlane', name: ref.name };
}

/** The key of the control plane a Connector object names, without defaulting its whole spec. */
export function controlPlaneKeyOf(connector: Pick<Connector, 'metadata' | 'spec'>): string | undefined {
  const ref = connector.spec?.controlPlaneRef;
  if (!ref?.name) return undefined;
  return controlPlaneKey(
    ref.kind === 'ClusterControlPlane'
      ? { kind: 'ClusterControlPlane', name: ref.name }
      : { kind: 'ControlPlane', namespace: connector.metadata.namespace ?? '', name: ref.name },
  );
}

/**
 * The status a check outcome becomes: the Ready condition (lastTransitionTime kept unless it flips),
 * observedGeneration, and lastCheckTime, which moves with every change and otherwise at most every
 * LAST_CHECK_REFRESH_MS, so periodic checks that find nothing new cause no write.
 */
export function controlPlaneStatus(
  previous: ControlPlaneStatus | undefined,
  outcome: Pick<CheckOutcome, 'status' | 'reason' | 'message'>,
  generation: number | undefined,
  now: Date,
): ControlPlaneStatus {
  const g = observedGenerationOf(generation);
  const conditions = setCondition(
    previous?.conditions,
    {
      type: CONDITION_TYPES.Ready,
      status: outcome.status,
      reason: outcome.reason,
      message: outcome.message,
      ...g,
    },
    now,
  );
  const next: ControlPlaneStatus = { ...g, conditions };
  // Compared as data: the API server hands maps back with their keys sorted.
  const unchanged =
    previous?.observedGeneration === next.observedGeneration &&
    isDeepStrictEqual(previous?.conditions ?? [], JSON.parse(JSON.stringify(conditions)));
  const last = previous?.lastCheckTime ? new Date(previous.lastCheckTime).getTime() : undefined;
  next.lastCheckTime =
    unchanged && last !== undefined && now.getTime() - last < LAST_CHECK_REFRESH_MS
      ? (previous?.lastCheckTime as string)
      : statusTime(now);
  return next;
}
