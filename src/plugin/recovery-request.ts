// Whether `recover` may ask for a guided recovery of a Connector, and with which request id. Pure:
// the Connector as read decides. The request is the one GitOps makes (spec.recovery.requestId), so
// the plugin refuses exactly where that request would run nothing or do harm: nothing to recover,
// one under way or already asked, a Connector the operator will not act on, an id used before.
import type { Connector } from '../operator/api/types.ts';
import { recoveryUnderway } from '../operator/reconcile/recovery-stages.ts';
import { stalledRefusal } from './stalled.ts';

/** `recover-20261124-010856`: a request id from the time it was asked (UTC), valid by the CRD's pattern. */
export function defaultRequestId(now: Date): string {
  const iso = now.toISOString();
  return `recover-${iso.slice(0, 10).replaceAll('-', '')}-${iso.slice(11, 19).replaceAll(':', '')}`;
}

/** Every request id this Connector handled or was asked for: none of them runs again. */
export function usedRequestIds(connector: Connector): Set<string> {
  const recovery = connector.status?.recovery;
  return new Set(
    [...(recovery?.handledRequestIds ?? []), recovery?.requestId, connector.spec?.recovery?.requestId].filter(
      (id): id is string => id !== undefined,
    ),
  );
}

/** Why no recovery may be asked for now, or undefined when it may. */
export function recoveryRefusal(
  connector: Connector,
  requestId: string,
  program: string,
): string | undefined {
  const { namespace, name } = connector.metadata;
  const status = connector.status ?? {};
  const recovery = status.recovery;
  const follow = `${program} status ${name} -n ${namespace}`;
  if (connector.metadata.deletionTimestamp) return `Connector ${namespace}/${name} is being deleted`;
  if (connector.spec?.paused) {
    return 'spec.paused is true: the operator observes and reports only, and would start no recovery; set spec.paused to false first';
  }
  if (recoveryUnderway(recovery?.step)) {
    return `a recovery is running: request ${recovery?.requestId} at step ${recovery?.step}${recovery?.startedAt ? ` since ${recovery.startedAt}` : ''}; follow it with ${follow}`;
  }
  const asked = connector.spec?.recovery?.requestId;
  if (
    asked !== undefined &&
    asked !== recovery?.requestId &&
    !(recovery?.handledRequestIds ?? []).includes(asked)
  ) {
    return `a recovery is already asked for (spec.recovery.requestId=${asked}) and the operator has not started it yet; follow it with ${follow}`;
  }
  const stalled = stalledRefusal(connector, {
    blockingOnly: true,
    meanwhile: 'starts no recovery until that is fixed',
  });
  if (stalled) return stalled;
  if (usedRequestIds(connector).has(requestId)) {
    return `request id ${requestId} was handled before, and a request id runs once, ever; give a new one with --request-id`;
  }
  const needed =
    status.phase === 'NeedsRecovery' ||
    status.diagnosis?.failureClass === 'IdentityLoss' ||
    status.controlPlaneState === 'needs_recovery';
  if (needed) return undefined;
  const phase = status.phase ?? 'not yet reported';
  const diagnosis = status.diagnosis;
  if (diagnosis?.failureClass === 'Reconnect') {
    return `no recovery is needed: the connector is ${phase} with its identity intact (Reconnect), and a recovery would replace a working identity; the runbook's step: ${diagnosis.nextStep ?? 'restore its connection'}`;
  }
  if (diagnosis?.failureClass === 'FirstBootBootstrap' || status.enrollment?.retired !== true) {
    return `no recovery is needed: the connector has not paired yet (${phase}); the operator mints tokens for its first pairing, and a recovery is for an identity lost after pairing`;
  }
  return `no recovery is needed: the connector is ${phase}${recovery?.outcome ? ` (last recovery ${recovery.requestId}: ${recovery.outcome})` : ''}`;
}
