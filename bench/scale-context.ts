// What the scale benchmark's later phases (bench/scale-flapping.ts, scale-recovery.ts,
// scale-restart.ts) are handed: the Connectors' watch, the fleet, the control plane's records, the
// operator's metrics and the Kubernetes API, so each phase is a function of its own module.
import type { CustomObjectsApi, EventsV1Api } from '@kubernetes/client-node';
import type { FleetCommand, FleetStats } from './fleet-simulator.ts';
import type { ConnectorObserver } from './scale-observer.ts';

export interface ControlPlaneRecord {
  state: string;
  stateChangedAt: string;
}

export interface PhaseContext {
  namespace: string;
  /** Every Connector of the fleet, by name. */
  names: string[];
  observer: ConnectorObserver;
  command(message: FleetCommand): void;
  fleet(): FleetStats | undefined;
  /** The control plane's record of a connector id (`<namespace>.<name>`). */
  record(connectorId: string): Promise<ControlPlaneRecord>;
  operatorMetrics(): Promise<string>;
  /** Requests the control plane served that were not agents' (nor /metrics): the operator's, and the benchmark's record reads. */
  controlPlaneOperatorRequests(): Promise<number>;
  objects: CustomObjectsApi;
  events: EventsV1Api;
  /** Bound of each wait, in ms. */
  timeoutMs: number;
}

export const connectorIdOf = (ctx: PhaseContext, name: string) => `${ctx.namespace}.${name}`;

/** Events about Connectors recorded at or after `since`, counted by the Connector they regard. */
export async function connectorEventsSince(ctx: PhaseContext, since: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const list = await ctx.events.listNamespacedEvent({ namespace: ctx.namespace });
  for (const event of list.items) {
    if (event.regarding?.kind !== 'Connector') continue;
    const at = new Date(
      (event.series?.lastObservedTime ?? event.eventTime ?? event.metadata?.creationTimestamp ?? 0) as
        | string
        | Date,
    ).getTime();
    if (at < since) continue;
    const name = event.regarding.name ?? '';
    out.set(name, (out.get(name) ?? 0) + 1);
  }
  return out;
}
