// The runbook's evidence of a recovery, as status.recovery.evidence records it: what was before (the
// phase, the control plane's state, the workload's replicas) with the request, and at the end what
// is after, the proof line, the audit entries of the window and the window itself. Also what a pod
// shows about the attempt: an agent that failed closed during it ends it.
import type { V1Pod } from '@kubernetes/client-node';
import { isFailClosedExit } from '../../contract/agent-process.ts';
import type { AuditEntryRef, RecoveryEvidence, RecoveryStatus } from '../api/types.ts';
import { statusTime } from '../conditions.ts';
import type { AuditEntry } from '../control-plane/admin-client.ts';
import type { ControlPlaneConnector } from './observed.ts';
import { agentPodFacts } from './pod-facts.ts';
import type { RecoveryInput } from './recovery-types.ts';
import { untrustedTime } from './untrusted-text.ts';

/** The audit entries that tell a recovery's story; the others (heartbeats, ...) are noise here. */
const EVIDENCE_TYPES = new Set([
  'endpoint.enrolled',
  'endpoint.bootstrap_retired',
  'gateway.enrollment_failed',
  'endpoint.cert_renewed',
  'recovery.started',
  'recovery.completed',
]);
/** The newest entries kept: the window of a long recovery must not grow the status without bound. */
const AUDIT_ENTRIES_KEPT = 20;

/** A time in the recovery record: RFC 3339, whole seconds, UTC. */

/** The evidence recorded with the request: what was before, and where the window starts. */
export function openingEvidence(input: RecoveryInput): RecoveryEvidence {
  return {
    // The status shows NeedsRecovery whenever the diagnosis is identity loss (plan.ts), even
    // when the previous status, written before the diagnosis, did not yet.
    ...(input.identityLoss
      ? { phaseBefore: 'NeedsRecovery' }
      : input.phaseBefore
        ? { phaseBefore: input.phaseBefore }
        : {}),
    ...(input.record ? { controlPlaneStateBefore: input.record.state } : {}),
    // What a failed or abandoned attempt scales the workload back to. Recorded with the
    // request, in a pass that scales nothing, so a replayed pass cannot record the zero it set.
    ...(input.workload ? { replicasBefore: input.workload.replicas } : {}),
    windowStart: statusTime(input.now),
  };
}

/** The evidence of an attempt that ends now: what is after, the proof, the audit of the window. */
export function closingEvidence(
  input: RecoveryInput,
  status: RecoveryStatus,
  after: { phaseAfter?: string; proof?: string | undefined } = {},
): RecoveryEvidence {
  return {
    ...status.evidence,
    ...(after.phaseAfter ? { phaseAfter: after.phaseAfter } : {}),
    ...(input.record ? { controlPlaneStateAfter: input.record.state } : {}),
    ...(after.proof ? { proof: after.proof } : {}),
    auditEntries: auditRefs(input.audit, status.startedAt),
    windowEnd: statusTime(input.now),
  };
}

/** The evidence-worthy audit entries since the attempt started, the newest AUDIT_ENTRIES_KEPT. */
export function auditRefs(audit: AuditEntry[] | undefined, since: string | undefined): AuditEntryRef[] {
  if (!Array.isArray(audit) || !since) return [];
  const from = new Date(since).getTime();
  // The control plane's answer: an entry is kept only when it is what it says (a known type, an
  // RFC 3339 time, a whole sequence number), so status.recovery.evidence never carries its text.
  return audit
    .filter(
      (e): e is AuditEntry =>
        typeof e === 'object' &&
        e !== null &&
        EVIDENCE_TYPES.has(e.type) &&
        untrustedTime(e.at) !== undefined &&
        Number.isSafeInteger(e.seq) &&
        new Date(e.at).getTime() >= from,
    )
    .map((e) => ({ type: e.type, at: e.at, seq: e.seq }))
    .slice(-AUDIT_ENTRIES_KEPT);
}

/** The first pod whose agent failed closed since the attempt started, with that termination. */
export function failedClosedSince(pods: V1Pod[], since: string | undefined) {
  if (!since) return undefined;
  const from = new Date(since).getTime();
  for (const pod of pods) {
    const t = agentPodFacts(pod).termination;
    // Only a fail-closed exit (10-13: the agent refused to go on) ends a recovery; a pod killed by a
    // signal or a probe (143, 137) is restarted by Kubernetes and may still pair, and so may an agent
    // that exits 14 (the control plane unreachable, or CLOCK_SKEW: the identity is intact and a
    // restart once the clocks agree brings it online). Unpaired, the token's expiry bounds the wait;
    // paired, the wait has no bound and the conditions say why it lasts (recovery-progress.ts).
    const failedClosed = t !== undefined && isFailClosedExit(t.exitCode);
    if (t?.finishedAt && failedClosed && new Date(t.finishedAt).getTime() >= from) {
      return { pod: pod.metadata?.name ?? '', termination: t };
    }
  }
  return undefined;
}

/** The proof of a validation restart: the restarted pod reconnected with the persisted identity. */
export function restartProof(
  podName: string,
  startedAt: number,
  record: ControlPlaneConnector | undefined,
): string {
  return `after the validation restart, pod ${podName} (started ${new Date(startedAt).toISOString()}) reconnected with the persisted identity (certificate ${record?.certificate?.serial ?? 'unknown'}) and heartbeat at ${record?.lastHeartbeatAt}; no token was mounted`;
}

/** The proof of a recovery that completes without a validation restart, and why there was none. */
export function skippedValidationProof(input: RecoveryInput): string {
  const why =
    input.storage.kind === 'EmptyDir'
      ? 'spec.storage.ephemeral is true, so a restart would lose the identity by design'
      : input.storage.kind === 'Adopted'
        ? 'the workload is adopted, so the operator does not restart it'
        : 'spec.recovery.validateRestart is false';
  return `connector paired with the recovery token and is ${input.record?.state} (certificate ${input.record?.certificate?.serial ?? 'unknown'}); restart validation skipped: ${why}`;
}
