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

function phaseEvent(input: TransitionInput): PlannedEvent | undefined {
  const { previous, phase, diagnosis } = input;
  if (previous.phase === phase) return undefined;
  const change = previous.phase ? `phase ${previous.phase} -> ${phase}` : `phase ${phase}`;
  return {
    type: WARNING_PHASES.has(phase) ? 'Warning' : 'Normal',
    reason: `Phase${phase}`,
    message: `${change}${diagnosis?.reason ? `: ${diagnosis.reason}` : ''}`,
  };
}

function modeEvent(input: TransitionInput): PlannedEvent | undefined {
  const { previous, mode, posture } = input;
  // The first mode is reported by the storage Event when it is not durable; a change is news.
  if (!mode || !previous.mode || previous.mode === mode) return undefined;
  return {
    type: mode === 'GuidedRecovery' ? 'Warning' : 'Normal',
    reason: `Mode${mode}`,
    message: `mode ${previous.mode} -> ${mode}: ${postureWithPod(posture)}`,
  };
}

function storageEvent(input: TransitionInput): PlannedEvent | undefined {
  const { previous, posture } = input;
  if (posture.status !== 'False') return undefined;
  const before = findCondition(previous.conditions, CONDITION_TYPES.DurableStorage);
  if (before?.status === 'False' && before.reason === posture.reason) return undefined;
  return { type: 'Warning', reason: `Storage${posture.reason}`, message: postureWithPod(posture) };
}

function diagnosisEvent(input: TransitionInput): PlannedEvent | undefined {
  const { previous, diagnosis } = input;
  if (!diagnosis?.failureClass) return undefined;
  const before = previous.diagnosis;
  if (before?.failureClass === diagnosis.failureClass && before.reason === diagnosis.reason) return undefined;
  const next = diagnosis.nextStep ? `; next step: ${diagnosis.nextStep}` : '';
  return {
    type: 'Warning',
    reason: `Diagnosed${diagnosis.failureClass}`,
    message: `${diagnosis.reason ?? diagnosis.failureClass}${next}`,
  };
}

export function transitionEvents(input: TransitionInput): PlannedEvent[] {
  return [phaseEvent(input), modeEvent(input), storageEvent(input), diagnosisEvent(input)].filter(
    (event): event is PlannedEvent => event !== undefined,
  );
}
