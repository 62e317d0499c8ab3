// Guided recovery, the runbook's branch 3, as a crash-safe state machine. The step in
// status.recovery is the step being taken: it is written before its side effects happen, every
// side effect is idempotent (scale to N, begin recovery by request id, mint by an idempotency key
// derived from the request id), and a step advances only when its outcome is observed. A restarted
// operator therefore resumes where it was and never repeats an effect twice: one request mints at
// most one token, and that token pairs at most once. A failed pairing ends the attempt as Failed;
// it does not loop.
//
// No side effect before its precondition: the first step, Checking, asks the control plane whether
// it would begin this recovery (a dry run, recovery-check.ts) and a refusal ends the attempt before
// anything is scaled. What a recovery scales it gives back: the replicas the workload had are
// recorded with the request, and an attempt that fails or is abandoned after scaling down scales
// the workload back to them (the operator's own StatefulSet to its one replica).
//
// This module is the gate the planner calls; the recovery is built from one module per job:
//   recovery-requests.ts    which request runs (spec or incident), the ids handled before, abandonment
//   recovery-machine.ts     the step machine: what each recorded step decides this pass
//   recovery-outcomes.ts    how a step ends: advance, stay, fail, complete
//   recovery-evidence.ts    the evidence recorded: before, after, proof, the audit of the window
//   recovery-stages.ts      what a recorded step means: under way, replicas held, given back
//   recovery-plan-steps.ts  the steps the plan gets from a decision (recoverySteps)
//   recovery-types.ts       the input and the decision
import { type Gates, held } from './gates.ts';
import { planRecovery } from './recovery-machine.ts';
import { recoveryUnderway, replicasDuring } from './recovery-stages.ts';
import type { RecoveryDecision, RecoveryInput } from './recovery-types.ts';

/**
 * The recovery of this pass under its gates. Held (paused, blocked) or without an answer from the
 * control plane, a recovery under way keeps its step and the replicas that step holds the workload
 * at, and none starts: no step is taken, no Event announces one.
 */
export function recoveryPhase(input: RecoveryInput, gates: Gates): RecoveryDecision {
  if (!held(gates) && gates.controlPlaneReachable) return planRecovery(input);
  const step = input.previous?.step;
  const underway = recoveryUnderway(step);
  const replicas = underway && step ? replicasDuring(step) : undefined;
  return {
    status: input.previous,
    inProgress: underway,
    controlPlane: [],
    deleteSecret: false,
    events: [],
    ...(replicas !== undefined ? { replicas } : {}),
  };
}
