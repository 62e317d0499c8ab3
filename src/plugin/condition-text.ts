// A condition as the plugin quotes it. Its reason and message are cluster text: the operator writes
// them, but so may anyone with the right to write connectors/status, and a message carries what a
// control plane or a pod said. So both are cleaned as a server's answer is (untrusted-text.ts)
// before a terminal shows them: one line, no escape sequences, credential-shaped text redacted.
import type { Condition } from '../operator/api/types.ts';
import { untrustedText } from '../operator/reconcile/untrusted-text.ts';

/**
 * More than the 300 characters kept of a server's answer: the operator's own messages carry the way
 * on (a failed recovery's reason and what to set next), which a cut at 300 would lose.
 */
const CONDITION_MESSAGE_MAX = 1024;

export const conditionReason = (c: Pick<Condition, 'reason'>): string => untrustedText(c.reason, 64);

export const conditionMessage = (c: Pick<Condition, 'message'>): string =>
  untrustedText(c.message, CONDITION_MESSAGE_MAX);

/** `Type=Status (Reason): message`, cleaned. */
export function describeCondition(c: Pick<Condition, 'type' | 'status' | 'reason' | 'message'>): string {
  return `${c.type}=${c.status} (${conditionReason(c)}): ${conditionMessage(c)}`;
}
