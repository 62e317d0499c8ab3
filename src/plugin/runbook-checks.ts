// `diagnose`: the connector-offline runbook walked for one Connector, check by check, from what the
// cluster and the control plane show (ConnectorFacts), with each result and the next step. Pure: the
// same facts always give the same checks, so the table tests in test/plugin/ cover every branch.
//
// The checks follow the runbook's "Quick checks" and "Identify the failure class" in order: is the
// pod scheduled and running (the host up), can the operator reach the control plane, is the token
// valid or retired, is durable storage intact and the claim the one the connector paired on, and
// which failure class applies; last, the operator's own verdict (Stalled, Ready), which can say
// "stuck" while every runbook question has a good answer (an Online connector whose recovery
// failed). The operator's own words (conditions, status.diagnosis) are quoted, cleaned, where it
// already judged; the plugin adds what only it sees together (the claim's UID now, the control
// plane asked from here).
import { REATTACH_STEPS } from '../operator/api/constants.ts';
import type { Condition } from '../operator/api/types.ts';
import { RECOVERY_STEPS } from '../operator/api/types.ts';
import { EnrolledReasons, HealthyReasons, StalledReasons } from '../operator/conditions.ts';
import { liveTokenOf } from '../operator/reconcile/live-token.ts';
import { conditionMessage, conditionReason, describeCondition } from './condition-text.ts';
import type { ConnectorFacts, PodFacts } from './connector-facts.ts';
import { relativeTime } from './time-text.ts';

export type CheckResult = 'ok' | 'failed' | 'warning';

export interface RunbookCheck {
  /** The runbook's question. */
  title: string;
  result: CheckResult;
  /** What was found. */
  detail: string;
  /** What to do about it, when something is to be done. */
  nextStep?: string;
}

export interface DiagnoseReport {
  namespace: string;
  name: string;
  connectorId: string;
  phase: string;
  /** Online and no check failed. */
  healthy: boolean;
  checks: RunbookCheck[];
  /** The one next step: the operator's diagnosis, else the first failed check's. */
  nextStep?: string;
}

const condition = (facts: ConnectorFacts, type: string): Condition | undefined =>
  facts.connector.status?.conditions?.find((c) => c.type === type);

/** Recovery steps during which the workload is scaled to zero on purpose. */
const SCALED_DOWN_STEPS = new Set(['ScalingDown', 'StorageReady', 'TokensRevoked', 'TokenMinted']);

function recoveryStep(facts: ConnectorFacts): string | undefined {
  const step = facts.connector.status?.recovery?.step;
  return step && step !== 'Completed' && step !== 'Failed' ? step : undefined;
}

function describePod(pod: PodFacts): string {
  const agent = pod.agent;
  const where = pod.nodeName ? ` on node ${pod.nodeName}` : '';
  const ready = agent.ready ? 'ready' : 'not ready';
  return `${pod.name}${where}: ${pod.phase}, agent ${pod.agentState}, ${ready}, ${agent.restartCount} restart(s)`;
}

function describeTermination(pod: PodFacts): string | undefined {
  const t = pod.agent.termination;
  if (!t) return undefined;
  const parts = [`exit ${t.exitCode}`, t.failureClass, t.code].filter(Boolean).join(' ');
  return `last termination${t.finishedAt ? ` at ${t.finishedAt}` : ''}: ${parts}${t.reason ? `: ${t.reason}` : ''}`;
}

function podCheck(facts: ConnectorFacts): RunbookCheck {
  const title = 'Pod scheduled and running';
  const { namespace, name } = facts.connector.metadata;
  if (!facts.pods.ok) return { title, result: 'warning', detail: `cannot list the pods: ${facts.pods.why}` };
  const pods = facts.pods.value ?? [];
  const step = recoveryStep(facts);
  const workload = facts.workload.ok ? facts.workload.value : undefined;
  const workloadName = workload ? `${workload.kind} ${namespace}/${workload.name}` : 'the workload';
  if (pods.length === 0) {
    if (step && SCALED_DOWN_STEPS.has(step)) {
      return {
        title,
        result: 'ok',
        detail: `no pod: the recovery scaled ${workloadName} to zero (step ${step})`,
      };
    }
    if (facts.workload.ok && !workload?.object) {
      return {
        title,
        result: 'failed',
        detail: `${workloadName} does not exist`,
        nextStep: workload?.adopted
          ? `create it (labelled vaultpam.io/adopted-by=${name}) or fix spec.workloadRef`
          : 'the operator creates it: see its Reconciling and Stalled conditions',
      };
    }
    const replicas = workload?.object?.spec?.replicas;
    if (replicas === 0) {
      return {
        title,
        result: 'failed',
        detail: `${workloadName} is scaled to 0 replicas`,
        nextStep: `kubectl -n ${namespace} scale ${workload?.kind.toLowerCase()} ${workload?.name} --replicas=1`,
      };
    }
    return {
      title,
      result: 'failed',
      detail: `no pod of ${workloadName} exists`,
      nextStep: `kubectl -n ${namespace} describe ${workload?.kind.toLowerCase() ?? 'statefulset'} ${workload?.name ?? name}`,
    };
  }
  const named = facts.connector.status?.storage?.podName;
  const pod = pods.find((p) => p.name === named) ?? pods.find((p) => !p.deleting) ?? (pods[0] as PodFacts);
  const termination = describeTermination(pod);
  if (!pod.scheduled) {
    return {
      title,
      result: 'failed',
      detail: `${pod.name} is not scheduled${pod.scheduleMessage ? `: ${pod.scheduleMessage}` : ''}`,
      nextStep: `kubectl -n ${namespace} describe pod ${pod.name} (node selector, tolerations, affinity, the claim's node)`,
    };
  }
  if (pod.agent.running && pod.agent.ready) return { title, result: 'ok', detail: describePod(pod) };
  if (pod.agent.running) {
    return {
      title,
      result: 'warning',
      detail: `${describePod(pod)}: the agent runs but is not ready (not connected to the control plane yet)`,
    };
  }
  const next = pod.agent.termination?.nextStep ?? facts.connector.status?.diagnosis?.nextStep;
  return {
    title,
    result: step ? 'warning' : 'failed',
    detail: [describePod(pod), termination].filter(Boolean).join('; '),
    ...(next ? { nextStep: next } : { nextStep: `kubectl -n ${namespace} logs ${pod.name} -c connector` }),
  };
}

/** What to do about a Connector stalled on its control plane, by what the reference leads to. */
function fixControlPlane(facts: ConnectorFacts): string {
  const { source } = facts.controlPlane;
  const namespace = facts.connector.metadata.namespace ?? '';
  if (source.kind === 'default') {
    return "change what the Stalled message names: name a ControlPlane or ClusterControlPlane in spec.controlPlaneRef, or fix the operator's default control plane (its --control-plane-url and credential)";
  }
  const cluster = source.kind === 'ClusterControlPlane';
  const [get, resource] = cluster
    ? ['kubectl get clustercontrolplanes', `clustercontrolplane ${source.name}`]
    : [`kubectl -n ${namespace} get controlplanes`, `controlplane ${source.name?.split('/')[1] ?? ''}`];
  // A name that leads nowhere is most often a typo: "why it is not Ready" would send the person
  // to look at a resource that does not exist.
  if (source.missing) {
    return `${source.kind} ${source.name} does not exist: fix spec.controlPlaneRef (${get} lists those there are), or ask an admin to create it`;
  }
  // Not Ready is its admin's to fix (its CA, Secret or URL), whoever runs this: say who must act.
  return `an admin of ${source.kind} ${source.name} must fix it, not the Connector's spec: kubectl${cluster ? '' : ` -n ${namespace}`} describe ${resource} shows why it is not Ready`;
}

function controlPlaneCheck(facts: ConnectorFacts): RunbookCheck {
  const title = 'Control plane reachable from the operator';
  const view = facts.controlPlane;
  const source = view.source;
  const which =
    source.kind === 'default'
      ? `the operator's default control plane${source.url ? ` ${source.url}` : ''}`
      : `${source.kind} ${source.name}${source.url ? ` (${source.url})` : ''}`;
  const fromHere = view.record
    ? `; asked from here too: state ${view.record.state}`
    : view.askFailed
      ? `; asked from here: ${view.askFailed}`
      : `; not asked from here: ${view.unavailable}`;
  const stalled = condition(facts, 'Stalled');
  if (stalled && /^ControlPlane/.test(stalled.reason)) {
    return { title, result: 'failed', detail: describeCondition(stalled), nextStep: fixControlPlane(facts) };
  }
  if (source.ready && source.ready.status !== 'True') {
    return {
      title,
      result: 'failed',
      detail: `${which} is not Ready (${conditionReason(source.ready)}): ${conditionMessage(source.ready)}`,
      nextStep: 'the operator makes no call to it until it is Ready; fix what its Ready condition names',
    };
  }
  const unreachable = [condition(facts, 'Enrolled'), condition(facts, 'Healthy')].find(
    (c) => c?.reason === 'ControlPlaneUnreachable',
  );
  if (unreachable) {
    return {
      title,
      result: 'failed',
      detail: `${describeCondition(unreachable)}${fromHere}`,
      nextStep: `restore HTTPS from the operator's namespace to ${source.url ?? 'the control plane'} (curl -v ${source.url ?? 'https://<control-plane-host>'}/healthz from there)`,
    };
  }
  const state = facts.connector.status?.controlPlaneState;
  if (!state) {
    return {
      title,
      result: 'warning',
      detail: `the operator has not read the record from ${which} yet${fromHere}`,
    };
  }
  // The status is only as new as the operator's last pass: with the operator down it still says
  // online after the connector went offline. The plugin's own answer is the newer word, so when it
  // says otherwise the check fails (and with it the verdict) instead of quoting it beside an [ok].
  const operatorSays = `the operator's status says it reads state ${state} from ${which}`;
  const stale = "the status may be stale (it is only as new as the operator's last pass)";
  const record = view.record;
  if (record && heartbeatsArrive(state) && !heartbeatsArrive(record.state)) {
    return {
      title,
      result: 'failed',
      detail: `${operatorSays}, but asked from here the control plane says state ${record.state}: ${stale}`,
      nextStep: `check the operator: ${CHECK_OPERATOR}`,
    };
  }
  if (view.askFailed && view.askAnswered) {
    return {
      title,
      result: 'failed',
      detail: `${operatorSays}, but asked from here ${view.askFailed}: ${stale}`,
      nextStep: `fix what the answer names (a record that is gone, a credential refused) and check the operator: ${CHECK_OPERATOR}`,
    };
  }
  if (view.askFailed) {
    // No answer came to this machine: its network is not the operator's, so this proves nothing.
    return {
      title,
      result: 'warning',
      detail: `the operator reads the record from ${which}: state ${state}${fromHere} (from this machine, which says nothing of the operator's network)`,
    };
  }
  return {
    title,
    result: 'ok',
    detail: `the operator reads the record from ${which}: state ${state}${fromHere}`,
  };
}

/** The control plane's states in which heartbeats arrive (the status names no heartbeat time then). */
const heartbeatsArrive = (state: string | undefined) => state === 'online' || state === 'degraded';

/** Where to look when the operator's status may be stale. */
const CHECK_OPERATOR =
  "is its pod running (kubectl get pods -n vaultpam-system, or the namespace it runs in) and what does its log say of this Connector? Until it writes the status again, the control plane's answer is the newer word";

function tokenCheck(facts: ConnectorFacts): RunbookCheck {
  const title = 'Enrollment token valid, or retired';
  const status = facts.connector.status ?? {};
  const enrollment = status.enrollment ?? {};
  const enrolled = condition(facts, 'Enrolled');
  const now = facts.at;
  // A guided recovery's one token in the Secret is the token the agent pairs with now, retired or
  // not; the enrollment's record names only its own last token.
  const recoveryToken = liveTokenOf(status)?.mintedFor === 'Recovery';
  if (enrollment.retired && !recoveryToken) {
    return {
      title,
      result: 'ok',
      detail:
        'bootstrap retired: the connector paired and heartbeat once; restarts use the persisted identity, never a token',
    };
  }
  if (enrolled && ['TokenExpired', 'TokenRevoked', 'EnrollmentRejected'].includes(enrolled.reason)) {
    return {
      title,
      result: 'failed',
      detail: describeCondition(enrolled),
      nextStep:
        enrolled.reason === 'EnrollmentRejected'
          ? 'fix what the refusal names (trust, CSR, clock); the operator mints a fresh token'
          : 'the operator mints a fresh token with backoff; if tokens keep expiring, the agent is not pairing: see the pod check',
    };
  }
  const expiry = recoveryToken ? liveTokenOf(status)?.expiresAt : enrollment.tokenExpiresAt;
  const expiresAt = expiry ? new Date(expiry) : undefined;
  const live = facts.controlPlane.record?.liveToken;
  if (expiresAt && expiresAt.getTime() > now.getTime()) {
    const where = `${recoveryToken ? ` of guided recovery ${status.recovery?.requestId}` : ''}${enrollment.tokenSecretName ? ` in Secret ${enrollment.tokenSecretName}` : ''}`;
    const cp = facts.controlPlane.record
      ? live
        ? '; the control plane holds it live'
        : '; the control plane holds no live token'
      : '';
    return {
      title,
      result: facts.controlPlane.record && !live ? 'failed' : 'ok',
      detail: `token${where} valid until ${expiry} (${relativeTime(expiresAt, now)})${cp}`,
    };
  }
  if (expiresAt) {
    return {
      title,
      result: 'failed',
      detail: `the last token${recoveryToken ? " (the guided recovery's one token)" : ''} expired unused at ${expiry} (${relativeTime(expiresAt, now)})`,
      nextStep: recoveryToken
        ? "the recovery ends Failed at its token's expiry and mints no other; find why the agent does not pair (pod check, its log), then set a new spec.recovery.requestId"
        : 'the operator re-mints with a growing delay; find why the agent does not pair (pod check, its log)',
    };
  }
  return {
    title,
    result: 'warning',
    detail: enrolled
      ? `no token yet: ${describeCondition(enrolled)}`
      : 'no token yet: the operator has not minted one',
  };
}

function storageCheck(facts: ConnectorFacts): RunbookCheck {
  const title = 'Durable storage intact, the same claim as at pairing';
  const durable = condition(facts, 'DurableStorage');
  const storage = facts.connector.status?.storage ?? {};
  const claim = facts.claim?.ok ? facts.claim.value : undefined;
  if (claim && storage.claimUID && claim.uid && claim.uid !== storage.claimUID) {
    return {
      title,
      result: 'failed',
      detail: `claim ${claim.name} now has UID ${claim.uid}; the connector's identity was on UID ${storage.claimUID}: the claim was recreated, the identity is gone`,
      nextStep: `reattach the original volume if it still exists (${REATTACH_STEPS}); otherwise a guided recovery: kubectl vaultpam recover`,
    };
  }
  if (!durable)
    return {
      title,
      result: 'warning',
      detail: 'the operator has not judged the storage yet (no DurableStorage condition)',
    };
  if (durable.status === 'True') {
    const which = claim ? `; claim ${claim.name} (UID ${claim.uid}, ${claim.phase})` : '';
    return { title, result: 'ok', detail: `${describeCondition(durable)}${which}` };
  }
  if (durable.reason === 'EphemeralByChoice') {
    return {
      title,
      result: 'warning',
      detail: `${describeCondition(durable)}: every restart loses the identity and needs a guided recovery`,
    };
  }
  if (durable.status === 'Unknown') return { title, result: 'warning', detail: describeCondition(durable) };
  return {
    title,
    result: 'failed',
    detail: describeCondition(durable),
    nextStep:
      'mount a durable claim at /data (the runbook: "confirm the pod still mounts the expected PVC"); a connector that lost its identity then needs a guided recovery',
  };
}

function failureClassCheck(facts: ConnectorFacts): RunbookCheck {
  const title = 'Failure class';
  const status = facts.connector.status ?? {};
  const diagnosis = status.diagnosis;
  const phase = status.phase ?? 'unknown';
  if (diagnosis?.failureClass) {
    const evidence = diagnosis.evidence?.length ? ` (${diagnosis.evidence.join('; ')})` : '';
    return {
      title,
      result: 'failed',
      detail: `${diagnosis.failureClass}: ${diagnosis.reason ?? ''}${evidence}${diagnosis.since ? `, since ${diagnosis.since}` : ''}`,
      ...(diagnosis.nextStep ? { nextStep: diagnosis.nextStep } : {}),
    };
  }
  const step = recoveryStep(facts);
  if (step) {
    const at = RECOVERY_STEPS.indexOf(step as (typeof RECOVERY_STEPS)[number]) + 1;
    return {
      title,
      result: 'warning',
      detail: `a guided recovery is under way: request ${status.recovery?.requestId}, step ${step} (${at} of ${RECOVERY_STEPS.length - 1})`,
      nextStep: `follow it: kubectl vaultpam status ${facts.connector.metadata.name} -n ${facts.connector.metadata.namespace}`,
    };
  }
  if (phase === 'Online') return { title, result: 'ok', detail: 'none applies: the connector is Online' };
  const healthy = condition(facts, 'Healthy');
  const ready = condition(facts, 'Ready');
  const why = healthy && healthy.status !== 'True' ? healthy : ready;
  return {
    title,
    result: phase === 'Pending' || phase === 'Enrolling' ? 'warning' : 'failed',
    detail: `phase ${phase}, no failure class diagnosed${why ? `: ${describeCondition(why)}` : ''}`,
  };
}

/**
 * The reasons Ready=False carries while the connector is on its way rather than stuck: no token
 * minted yet, a token waiting for the agent, a recovery running. The checks above follow each; any
 * other reason is something to fix.
 */
const READY_PROGRESS_REASONS: ReadonlySet<string> = new Set([
  EnrolledReasons.AwaitingEnrollment,
  EnrolledReasons.TokenMinted,
  HealthyReasons.Recovering,
]);

/** Stalls a new guided recovery answers: the last one failed, or the policy waits for a person. */
const RECOVERY_STALLS: ReadonlySet<string> = new Set([
  StalledReasons.RecoveryFailed,
  StalledReasons.RecoveryRequired,
]);

function operatorVerdictCheck(facts: ConnectorFacts): RunbookCheck {
  const title = 'Operator not Stalled, Connector Ready';
  const { namespace, name } = facts.connector.metadata;
  const describe = `kubectl -n ${namespace} describe connector ${name}`;
  const stalled = condition(facts, 'Stalled');
  if (stalled?.status === 'True') {
    return {
      title,
      result: 'failed',
      detail: `${describeCondition(stalled)}; the operator makes no progress until that is changed`,
      nextStep: RECOVERY_STALLS.has(stalled.reason)
        ? `a guided recovery with a new request id: kubectl vaultpam recover ${name} -n ${namespace}`
        : `change what the Stalled message names; ${describe} shows the operator's next pass`,
    };
  }
  const ready = condition(facts, 'Ready');
  if (!ready) {
    return { title, result: 'warning', detail: 'the operator has not judged Ready yet (no Ready condition)' };
  }
  if (ready.status === 'True') return { title, result: 'ok', detail: describeCondition(ready) };
  if (ready.status === 'False' && !READY_PROGRESS_REASONS.has(ready.reason)) {
    return {
      title,
      result: 'failed',
      detail: describeCondition(ready),
      nextStep: `fix the condition Ready names; ${describe} shows them all`,
    };
  }
  const why = ready.status === 'False' ? 'on its way, nothing to fix yet' : 'the operator cannot tell yet';
  return { title, result: 'warning', detail: `${describeCondition(ready)}: ${why}` };
}

/** The runbook's checks for one Connector, and whether it is healthy. */
export function runbookChecks(facts: ConnectorFacts): DiagnoseReport {
  const checks = [
    podCheck(facts),
    controlPlaneCheck(facts),
    tokenCheck(facts),
    storageCheck(facts),
    failureClassCheck(facts),
    operatorVerdictCheck(facts),
  ];
  const phase = facts.connector.status?.phase ?? 'unknown';
  const healthy = phase === 'Online' && checks.every((c) => c.result !== 'failed');
  // A Stalled operator makes no progress, so a pod it left waiting (no token, no control-plane
  // URL in its config) is a consequence: its logs, empty, are not where the fix is.
  const stalledWithPod =
    condition(facts, 'Stalled')?.status === 'True' && facts.pods.ok && (facts.pods.value ?? []).length > 0;
  const [podResult, ...rest] = checks;
  const byPriority = stalledWithPod && podResult ? [...rest, podResult] : checks;
  const nextStep =
    facts.connector.status?.diagnosis?.nextStep ??
    byPriority.find((c) => c.result === 'failed' && c.nextStep)?.nextStep;
  return {
    namespace: facts.connector.metadata.namespace ?? '',
    name: facts.connector.metadata.name ?? '',
    connectorId: facts.connectorId,
    phase,
    healthy,
    checks,
    ...(healthy || !nextStep ? {} : { nextStep }),
  };
}
