// The Events a reconcile pass records for what changed since the last status: phase, mode, storage
// posture and diagnosis. Each compares the new value with the stored status, so a pass that changes
// nothing records nothing, and a restarted operator does not repeat an Event for an old change.
import type { ConnectorMode, ConnectorPhase, ConnectorStatus, Diagnosis } from '../api/types.ts';
import { CONDITION_TYPES, findCondition } from '../conditions.ts';
import type { PlannedEvent } from './plan-types.ts';
import type { StoragePosture } from './storage-posture.ts';

export interface TransitionInput {
  previous: ConnectorStatus;
  phase: ConnectorPhase;
  mode: ConnectorMode | undefined;
  posture: StoragePosture;
  diagnosis: Diagnosis | undefined;
}

/** Phases a person should look at: recorded as Warning Events. */
const WARNING_PHASES: ReadonlySet<ConnectorPhase> = new Set(['Offline', 'Degraded', 'NeedsRecovery']);

/** The posture message, naming the pod when the message itself does not. */
function postureWithPod(posture: StoragePosture): string {
  // Posture messages name pods as "pod <name>"; a claim name such as data-edge-0 is not the pod edge-0.
  if (!posture.podName || posture.message.includes(`pod ${posture.podName}`)) return posture.message;
  return `${posture.message} (pod ${posture.podName})`;
}

/** The diagnosis when it is new or changed since the stored status. */
function changedDiagnosis(input: TransitionInput): Diagnosis | undefined {
  const { previous, diagnosis } = input;
  if (!diagnosis?.failureClass) return undefined;
  const before = previous.diagnosis;
  if (before?.failureClass === diagnosis.failureClass && before.reason === diagnosis.reason) return undefined;
  return diagnosis;
}

const nextStepOf = (diagnosis: Diagnosis | undefined) =>
  diagnosis?.nextStep ? `; next step: ${diagnosis.nextStep}` : '';

function phaseEvent(input: TransitionInput): PlannedEvent | undefined {
  const { previous, phase, diagnosis } = input;
  if (previous.phase === phase) return undefined;
  // A new Connector starts Pending: that is where every one begins, not a change, and an Event for
  // it would be one more write per Connector (at 10,000 applied at once, 10,000 Events) saying what
  // the TokenMinted Event of the same pass already shows. A first phase other than Pending (an
  // existing record, a lost identity) is news.
  if (previous.phase === undefined && phase === 'Pending') return undefined;
  const change = previous.phase ? `phase ${previous.phase} -> ${phase}` : `phase ${phase}`;
  // A diagnosis that comes with the phase change rides on this Event (one write per transition).
  const next = nextStepOf(changedDiagnosis(input));
  return {
    type: WARNING_PHASES.has(phase) ? 'Warning' : 'Normal',
    reason: `Phase${phase}`,
    message: `${change}${diagnosis?.reason ? `: ${diagnosis.reason}` : ''}${next}`,
    priority: 'always',
  };
}

function modeChange(input: TransitionInput): string | undefined {
  const { previous, mode } = input;
  // The first mode is news only through the storage Event (when it is not durable).
  if (!mode || !previous.mode || previous.mode === mode) return undefined;
  return `mode ${previous.mode} -> ${mode}`;
}

function storageEvent(input: TransitionInput): PlannedEvent | undefined {
  const { previous, posture } = input;
  if (posture.status !== 'False') return undefined;
  const before = findCondition(previous.conditions, CONDITION_TYPES.DurableStorage);
  if (before?.status === 'False' && before.reason === posture.reason) return undefined;
  const mode = modeChange(input);
  return {
    type: 'Warning',
    reason: `Storage${posture.reason}`,
    message: `${mode ? `${mode}: ` : ''}${postureWithPod(posture)}`,
  };
}

function modeEvent(input: TransitionInput): PlannedEvent | undefined {
  const change = modeChange(input);
  if (!change || !input.mode) return undefined;
  return {
    type: input.mode === 'GuidedRecovery' ? 'Warning' : 'Normal',
    reason: `Mode${input.mode}`,
    message: `${change}: ${postureWithPod(input.posture)}`,
  };
}

function diagnosisEvent(input: TransitionInput): PlannedEvent | undefined {
  const diagnosis = changedDiagnosis(input);
  if (!diagnosis?.failureClass) return undefined;
  return {
    type: 'Warning',
    reason: `Diagnosed${diagnosis.failureClass}`,
    message: `${diagnosis.reason ?? diagnosis.failureClass}${nextStepOf(diagnosis)}`,
  };
}

/**
 * At most one Event per kind of change, and no more than needed: Events are writes, and a network
 * drop turns every connector Offline at once. A diagnosis found with a phase change goes into the
 * phase Event; a mode change caused by a storage posture goes into the storage Event.
 */
export function transitionEvents(input: TransitionInput): PlannedEvent[] {
  const phase = phaseEvent(input);
  const storage = storageEvent(input);
  const events = [phase, storage];
  if (!storage) events.push(modeEvent(input));
  if (!phase) events.push(diagnosisEvent(input));
  return events.filter((event): event is PlannedEvent => event !== undefined);
}
