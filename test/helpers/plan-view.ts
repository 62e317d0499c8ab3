// A plan as the planner's tests read it: every action by kind, every Event of its steps, and the
// status once every step ran. The steps themselves stay on it, for tests of their order.
import type { V1ConfigMap, V1StatefulSet } from '@kubernetes/client-node';
import type { ConnectorStatus } from '../../src/operator/api/types.ts';
import type { Observed } from '../../src/operator/reconcile/observed.ts';
import { eventsOfSteps, statusOfSteps } from '../../src/operator/reconcile/pass-status.ts';
import { plan } from '../../src/operator/reconcile/plan.ts';
import type {
  ControlPlaneAction,
  Plan,
  PlannedAction,
  PlannedEvent,
} from '../../src/operator/reconcile/plan-types.ts';

export interface PlanView extends Plan {
  /** The action kinds in the order act runs them. */
  order: PlannedAction['kind'][];
  controlPlane: ControlPlaneAction[];
  dryRuns: (V1ConfigMap | V1StatefulSet)[];
  deleteTokenSecret?: string;
  configMap?: V1ConfigMap;
  statefulSet?: V1StatefulSet;
  expandClaim?: { name: string; uid: string; size: string };
  scaleAdopted?: { kind: 'StatefulSet' | 'Deployment'; name: string; replicas: number };
  events: PlannedEvent[];
  status: ConnectorStatus;
}

export function viewOf(planned: Plan): PlanView {
  const actions = planned.steps.flatMap((step) => (step.action ? [step.action] : []));
  const view: PlanView = {
    ...planned,
    order: actions.map((a) => a.kind),
    controlPlane: actions.filter(
      (a): a is ControlPlaneAction =>
        a.kind === 'ensureConnector' ||
        a.kind === 'beginRecovery' ||
        a.kind === 'revokeTokens' ||
        a.kind === 'mintToken',
    ),
    dryRuns: [],
    events: eventsOfSteps(planned.steps),
    status: statusOfSteps(planned.steps),
  };
  for (const a of actions) {
    if (a.kind === 'dryRun') view.dryRuns.push(a.object);
    else if (a.kind === 'deleteTokenSecret') view.deleteTokenSecret = a.name;
    else if (a.kind === 'applyConfigMap') view.configMap = a.object;
    else if (a.kind === 'applyStatefulSet') view.statefulSet = a.object;
    else if (a.kind === 'expandClaim') view.expandClaim = { name: a.name, uid: a.uid, size: a.size };
    else if (a.kind === 'scaleAdopted')
      view.scaleAdopted = { kind: a.workloadKind, name: a.name, replicas: a.replicas };
  }
  return view;
}

/** plan(), seen through viewOf. */
export function planView(observed: Observed, now: Date): PlanView {
  return viewOf(plan(observed, now));
}
