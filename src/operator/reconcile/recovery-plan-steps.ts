// The steps a recovery decision puts into the plan, for act.ts to run: the token's (begin the
// recovery, revoke, delete the Secret, mint) where the enrollment's would be, and last in the pass
// the record of where the recovery is, with its Events and the scaling of an adopted workload.
import { isDeepStrictEqual } from 'node:util';
import type { EnrollmentStatus, RecoveryStatus } from '../api/types.ts';
import { deleteTokenSecretStep } from './enrollment.ts';
import type { PlanStep } from './plan-types.ts';
import type { RecoveryDecision } from './recovery-types.ts';
import { restoreTokenSecretStep } from './token-restore.ts';

export interface RecoveryStepsInput {
  decision: RecoveryDecision;
  /** The recovery record as the stored status has it. */
  previous: RecoveryStatus | undefined;
  connectorId: string;
  ttlSeconds: number;
  tokenSecretName: string;
  /** The enrollment status as it stands (the token Secret a delete removes from it). */
  enrollment: EnrollmentStatus;
  /** The adopted workload, when there is one that consented: scaled when the recovery asks. */
  adopted?: { kind: 'StatefulSet' | 'Deployment'; name: string; replicas: number } | undefined;
}

export interface RecoverySteps {
  /** The token's steps, in act order: begin the recovery, revoke, delete the Secret, mint. */
  tokens: PlanStep[];
  /**
   * Last in the pass, after the workload is applied: the recovery record and its Events (with the
   * scaling of an adopted workload it asks for), so a step is recorded only once every effect of
   * the pass that took it happened (the replicas given back when an attempt ends among them). The
   * record of a recovery the pass opens takes no action: plan.ts writes it with the report.
   */
  record: PlanStep[];
}

/** The token steps of a recovery in progress, and the step that records where it is. */
export function recoverySteps(input: RecoveryStepsInput): RecoverySteps {
  const { decision, connectorId } = input;
  const tokens: PlanStep[] = [];
  if (decision.inProgress) {
    for (const call of decision.controlPlane) tokens.push({ action: call });
    if (decision.deleteSecret) tokens.push(deleteTokenSecretStep(input.tokenSecretName, input.enrollment));
    const restored = decision.restoresSecret;
    if (decision.mintKey && restored) {
      tokens.push(
        restoreTokenSecretStep({
          connectorId,
          idempotencyKey: decision.mintKey,
          ttlSeconds: input.ttlSeconds,
          tokenSecretName: input.tokenSecretName,
          token: `the one token of recovery ${decision.status?.requestId ?? ''}`,
          expiresAt: restored.expiresAt,
        }),
      );
    } else if (decision.mintKey) {
      tokens.push({
        action: {
          kind: 'mintToken',
          connectorId,
          idempotencyKey: decision.mintKey,
          ttlSeconds: input.ttlSeconds,
        },
      });
    }
  }
  // An adopted workload is scaled only when a recovery asks for a number: down, up to pair, or back
  // to the replicas it had when an attempt that scaled it ends. Otherwise it is the user's.
  const adopted = input.adopted;
  const wanted = decision.replicas;
  const scale =
    adopted && wanted !== undefined && adopted.replicas !== wanted
      ? {
          action: {
            kind: 'scaleAdopted' as const,
            workloadKind: adopted.kind,
            name: adopted.name,
            replicas: wanted,
          },
        }
      : {};
  const changed = !isDeepStrictEqual(decision.status, input.previous);
  const record: PlanStep[] =
    changed || decision.events.length > 0 || 'action' in scale
      ? [
          {
            ...scale,
            ...(changed && decision.status ? { status: { recovery: decision.status } } : {}),
            events: decision.events,
          },
        ]
      : [];
  return { tokens, record };
}
