// Act: carry out a plan, in an order that keeps every invariant: the control-plane record exists
// before a token is minted for it; a stale token Secret is gone before a fresh one is written; the
// configuration exists before the workload that mounts it. Every step is idempotent (server-side
// apply, delete of what may already be gone, mint by idempotency key), so a pass that fails half
// way is simply repeated.

import type { KubernetesObject } from '@kubernetes/client-node';
import { CodedError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import type { Connector, DefaultedSpec } from '../api/types.ts';
import type { ControlPlaneConnection } from '../control-plane/connections.ts';
import type { KubeWriter } from '../runtime/apply.ts';
import type { EventRecorder } from '../runtime/events.ts';
import type { OperatorMetrics } from '../runtime/metrics.ts';
import { RESOURCE_TYPES } from '../runtime/resources.ts';
import { desiredTokenSecret } from './desired-objects.ts';
import { driftOf } from './drift.ts';
import type { Plan, PlannedEvent } from './plan-types.ts';

export interface ActContext {
  writer: KubeWriter;
  recorder: EventRecorder;
  metrics: OperatorMetrics;
  logger: Logger;
  /** Scales an adopted workload through its scale subresource. */
  scale(kind: 'StatefulSet' | 'Deployment', namespace: string, name: string, replicas: number): Promise<void>;
}

export async function act(
  ctx: ActContext,
  connector: Connector,
  spec: DefaultedSpec,
  plan: Plan,
  connection: ControlPlaneConnection | undefined,
  live: { configMap?: object | undefined; statefulSet?: object | undefined; tokenSecretUID?: string } = {},
): Promise<void> {
  const namespace = spec.namespace;
  const client = connection?.client();
  if (plan.controlPlane.length > 0 && !client) {
    throw new CodedError('CONTROL_PLANE_CREDENTIAL_MISSING', 'cannot call the control plane: no credential', {
      temporary: true,
    });
  }
  const mints = plan.controlPlane.filter((a) => a.kind === 'mintToken');
  for (const action of plan.controlPlane) {
    if (!client || action.kind === 'mintToken') continue;
    switch (action.kind) {
      case 'ensureConnector': {
        const { connector: record } = await client.ensureConnector(action.connectorId, action.config);
        connection?.follower.remember(record);
        break;
      }
      case 'beginRecovery':
        connection?.follower.remember(await client.beginRecovery(action.connectorId, action.requestId));
        break;
      case 'revokeTokens':
        await client.revokeTokens(action.connectorId);
        break;
    }
  }
  if (plan.deleteTokenSecret) {
    // Only the Secret the plan judged: when the cache still shows a Secret this operator has just
    // replaced (a re-mint a moment ago), the name already belongs to the fresh token, which stays.
    await ctx.writer.delete(
      RESOURCE_TYPES.secret,
      { namespace, name: plan.deleteTokenSecret },
      live.tokenSecretUID ? { uid: live.tokenSecretUID } : {},
    );
  }
  for (const mint of mints) {
    if (!client || mint.kind !== 'mintToken') continue;
    const minted = await client.mintToken(mint.connectorId, {
      idempotencyKey: mint.idempotencyKey,
      ttlSeconds: mint.ttlSeconds,
    });
    // The token goes from the control plane's answer straight into the Secret; it is logged nowhere.
    await ctx.writer.apply(
      desiredTokenSecret(connector, spec, {
        value: minted.token,
        mintKey: mint.idempotencyKey,
        expiresAt: minted.expiresAt,
      }),
    );
    if (minted.created) ctx.metrics.enrollmentTokensMinted.inc();
    ctx.logger.info(
      { tokenId: minted.tokenId, expiresAt: minted.expiresAt, created: minted.created },
      'enrollment token stored in its Secret',
    );
  }
  await applyIfChanged(ctx, plan.configMap, live.configMap);
  await applyIfChanged(ctx, plan.statefulSet, live.statefulSet);
  if (plan.scaleAdopted) {
    await ctx.scale(plan.scaleAdopted.kind, namespace, plan.scaleAdopted.name, plan.scaleAdopted.replicas);
  }
}

async function applyIfChanged(
  ctx: ActContext,
  desired: KubernetesObject | undefined,
  live: object | undefined,
): Promise<void> {
  if (!desired) return;
  const drift = driftOf(desired, live);
  if (drift === undefined) return;
  ctx.logger.debug(
    { kind: desired.kind, name: desired.metadata?.name, field: drift },
    'applying: field differs',
  );
  await ctx.writer.apply(desired);
}

/**
 * Hands the plan's Events to the recorder without waiting for their writes (as client-go's event
 * broadcaster does): an Event is a courtesy, so a burst of transitions (every connector going
 * Offline when a network link drops) must not hold reconcile slots while Events are written. The
 * recorder never rejects, orders repeats of one Event, and rate-limits per Connector.
 */
export function recordEvents(ctx: ActContext, connector: Connector, events: readonly PlannedEvent[]): void {
  const subject = {
    apiVersion: connector.apiVersion,
    kind: connector.kind,
    name: connector.metadata.name ?? '',
    namespace: connector.metadata.namespace ?? '',
    ...(connector.metadata.uid ? { uid: connector.metadata.uid } : {}),
  };
  for (const event of events) {
    void ctx.recorder.record(subject, {
      type: event.type,
      reason: event.reason,
      action: 'Reconcile',
      note: event.message,
    });
  }
}
