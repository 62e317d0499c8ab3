// The report phase: what is, as the status says it, written whatever happens to the pass's
// actions (plan.ts puts it first). Observed facts are rebuilt from the world on every pass: the
// phase, storage, identity, heartbeat and diagnosis, and the conditions (connector-conditions.ts);
// the carried-over records (enrollment counters, the recovery record) are as they stood, and the
// steps that change them come later in the plan. With it, the Events for what changed since the
// stored status (transition-events.ts).
import type { V1Pod, V1PodSpec } from '@kubernetes/client-node';
import type { ConnectorStatus, DefaultedSpec, Diagnosis } from '../api/types.ts';
import { statusTime } from '../conditions.ts';
import { isIdentityLoss, phaseOf, withSince } from './assessment.ts';
import { connectorConditions } from './connector-conditions.ts';
import { childNames } from './desired-objects.ts';
import type { EnrollmentDecision } from './enrollment.ts';
import type { Gates } from './gates.ts';
import type { ControlPlaneConnector, Observed } from './observed.ts';
import type { PlannedEvent } from './plan-types.ts';
import type { AgentPodFacts } from './pod-facts.ts';
import type { RecoveryDecision } from './recovery-types.ts';
import type { ExpansionDecision } from './storage-expansion.ts';
import { modeOf, type StoragePosture, storagePosture } from './storage-posture.ts';
import { transitionEvents } from './transition-events.ts';

export interface ReportInput {
  observed: Observed;
  spec: DefaultedSpec;
  gates: Gates;
  /** The control plane's record, its free text cleaned (untrusted-text.ts); undefined when unreachable. */
  record: ControlPlaneConnector | undefined;
  agent: AgentPodFacts | undefined;
  /** The pod that runs (or last ran) the agent. */
  pod: V1Pod | undefined;
  /** What backs the data directory, judged against the claim the stored status names. */
  posture: StoragePosture;
  /** Bootstrap retired, by the record or (while it cannot be read) the stored status. */
  retired: boolean;
  lostPairing: boolean;
  enrollment: EnrollmentDecision;
  /** The assessment's diagnosis (assessment.ts), before a recovery in progress hides it. */
  diagnosis: Omit<Diagnosis, 'since'> | undefined;
  recovery: RecoveryDecision;
  expansion: ExpansionDecision;
  now: Date;
}

export function reportPhase(input: ReportInput): { status: ConnectorStatus; transitions: PlannedEvent[] } {
  const { observed, spec, gates, record, recovery, enrollment, now, posture, retired } = input;
  const previous: ConnectorStatus = observed.connector.status ?? {};
  const generation = observed.connector.metadata.generation;
  // The agent's fail-closed exit (or a replaced claim) proves the identity is gone before the
  // control plane's heartbeat timeout can: show NeedsRecovery at once, not Online or Offline.
  const identityLost = !recovery.inProgress && isIdentityLoss(input.diagnosis);
  // Unreachable: the last phase seen stays (nothing newer is known); Ready says Unknown.
  const phase = !gates.controlPlaneReachable
    ? (previous.phase ?? 'Pending')
    : identityLost
      ? 'NeedsRecovery'
      : phaseOf(record, recovery.inProgress);
  const diagnosis = withSince(recovery.inProgress ? undefined : input.diagnosis, previous.diagnosis, now);
  const recoveryDone = recovery.status?.step === 'Completed' && previous.recovery?.step !== 'Completed';
  const claimUID = identityClaimUID(posture, retired, previous.storage?.claimUID, recoveryDone);
  // The pass that completes a recovery moves the identity to the claim it paired on, so the storage
  // it reports (mode, DurableStorage, Ready) is judged against that claim: the replaced one is gone.
  const shownPosture =
    recoveryDone && claimUID !== previous.storage?.claimUID
      ? postureFor(observed, spec, input.pod, claimUID)
      : posture;
  const mode = modeOf(shownPosture);
  const lastHeartbeatTime = heartbeatToShow(
    record?.lastHeartbeatAt,
    previous.lastHeartbeatTime,
    record?.state === 'online' || record?.state === 'degraded',
  );
  const report: ConnectorStatus = {
    observedGeneration: generation ?? 0,
    phase,
    connectorId: spec.connector.id,
    enrollment: enrollment.status,
    storage: {
      ...(posture.volumeName ? { volumeName: posture.volumeName } : {}),
      source: posture.source,
      ...(posture.claimName ? { claimName: posture.claimName } : {}),
      ...(claimUID ? { claimUID } : {}),
      ...(posture.claim?.phase ? { claimPhase: posture.claim.phase } : {}),
      ...(posture.podName ? { podName: posture.podName } : {}),
    },
  };
  if (mode) report.mode = mode;
  if (record) report.controlPlaneState = record.state;
  if (lastHeartbeatTime) report.lastHeartbeatTime = lastHeartbeatTime;
  if (record?.certificate) {
    // Cleaned (untrustedRecord): a field that was not what it says is empty, and left out.
    const { serial, notAfter, fingerprintSha256 } = record.certificate;
    report.identity = {
      ...(serial ? { certificateSerial: serial } : {}),
      ...(notAfter ? { notAfter } : {}),
      ...(fingerprintSha256 ? { fingerprintSHA256: fingerprintSha256 } : {}),
    };
  }
  if (previous.recovery) report.recovery = previous.recovery;
  if (diagnosis) report.diagnosis = diagnosis;
  report.conditions = connectorConditions({
    observed,
    spec,
    gates,
    previous,
    generation,
    record,
    agent: input.agent,
    posture: shownPosture,
    enrollment,
    identityLost,
    lostPairing: input.lostPairing,
    recovery,
    nextStep: diagnosis?.nextStep,
    expansion: input.expansion,
    now,
  });
  return {
    status: report,
    transitions: transitionEvents({ previous, phase, mode, posture: shownPosture, diagnosis }),
  };
}

/**
 * The heartbeat time to show: the control plane's last, once heartbeats have stopped (offline,
 * needs recovery), exact, so it agrees with every message that names the last heartbeat. While
 * they arrive (online, degraded) none is shown: that they arrive is what the phase, the Ready
 * condition and controlPlaneState say, and a time that moved with them would be a status write
 * per connector every few minutes whose state did not change (at 10,000 connectors up to 33 writes/s),
 * which is also what a restarted operator would pay again for every connector. Kubernetes moved
 * node heartbeats out of Node status for the same reason. Without the record (control plane
 * unreachable) the shown time stays as it was, as the phase does: Ready says Unknown
 * (ControlPlaneUnreachable) meanwhile, in the READY printer column beside them.
 */
export function heartbeatToShow(
  latest: string | null | undefined,
  shown: string | undefined,
  beating: boolean,
): string | undefined {
  if (beating) return undefined;
  if (!latest) return shown;
  return statusTime(new Date(latest));
}

/** What backs the data directory of the pod (or, without one, of the workload's template). */
export function postureFor(
  observed: Observed,
  spec: DefaultedSpec,
  pod: V1Pod | undefined,
  identityClaimUID = observed.connector.status?.storage?.claimUID,
): StoragePosture {
  const template = observed.workload?.object?.spec?.template?.spec as V1PodSpec | undefined;
  const names = childNames(spec.name);
  const claimTemplates = new Set(
    observed.workload?.object?.spec?.volumeClaimTemplates?.map((t) => t.metadata?.name ?? '') ?? [],
  );
  return storagePosture({
    podSpec: pod?.spec ?? template,
    ...(pod?.metadata?.name ? { podName: pod.metadata.name } : {}),
    fromPod: pod !== undefined,
    claims: observed.claims,
    // Claims of a StatefulSet's template are named <template>-<statefulset>-0: the adopted one's name
    // when a StatefulSet is adopted, the operator's own otherwise.
    claimForTemplateVolume: (mount) =>
      claimTemplates.has(mount) ? `${mount}-${observed.workload?.name ?? names.statefulSet}-0` : undefined,
    identityClaimUID,
    ephemeralByChoice: spec.storage.kind === 'EmptyDir',
  });
}

/** The claim UID the identity lives on: remembered once the connector is retired, moved by a recovery. */
function identityClaimUID(
  posture: StoragePosture,
  retired: boolean,
  previous: string | undefined,
  recoveryDone: boolean,
): string | undefined {
  const current = posture.claim?.uid;
  if (!retired) return current ?? previous;
  if (!previous || recoveryDone) return current ?? previous;
  return previous;
}
