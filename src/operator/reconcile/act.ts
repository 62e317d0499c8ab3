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
import { invalidSpecFromRefusal } from './spec-fields.ts';

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
  // Every call that changes the control-plane record names this Connector as its owner: the control
  // plane refuses it (409 CONNECTOR_ID_CONFLICT) when another Connector owns the same connector id.
  const owner = { ownerUid: connector.metadata.uid ?? '' };
  if (plan.controlPlane.length > 0 && !client) {
    throw new CodedError('CONTROL_PLANE_CREDENTIAL_MISSING', 'cannot call the control plane: no credential', {
      temporary: true,
    });
  }
  const mints = plan.controlPlane.filter((a) => a.kind === 'mintToken');
  // No side effect before its precondition: a token is minted only for a workload Kubernetes will
  // accept. A dry run of what this pass applies finds a refusal (a label or quantity the CRD could
  // not check) before the token exists, and names the Connector field to fix.
  if (mints.length > 0) {
    await applyOwned(ctx, plan.configMap, undefined, { dryRun: true });
    await applyOwned(ctx, plan.statefulSet, undefined, { dryRun: true });
  }
  for (const action of plan.controlPlane) {
    if (!client || action.kind === 'mintToken') continue;
    switch (action.kind) {
      case 'ensureConnector': {
        const { connector: record } = await client.ensureConnector(action.connectorId, action.config, owner);
        connection?.follower.remember(record);
        break;
      }
      case 'beginRecovery':
        connection?.follower.remember(
          await client.beginRecovery(action.connectorId, action.requestId, owner),
        );
        break;
      case 'revokeTokens':
        await client.revokeTokens(action.connectorId, owner);
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
      ...owner,
    });
    // The token goes from the control plane's answer straight into the Secret; it is logged nowhere.
    await ctx.writer.apply(
      desiredTokenSecret(connector, spec, {
        value: minted.token,
        mintKey: mint.idempotencyKey,
        expiresAt: minted.expiresAt,
      }),
    );
    // The follower learns of the mint from the change stream a moment later; until then a pass
    // would judge the fresh Secret against a record without a live token (revoked, delete it).
    // One read per mint keeps the record as new as the Secret.
    connection?.follower.remember(await client.getConnector(mint.connectorId));
    if (minted.created) ctx.metrics.enrollmentTokensMinted.inc();
    ctx.logger.info(
      { tokenId: minted.tokenId, expiresAt: minted.expiresAt, created: minted.created },
      'enrollment token stored in its Secret',
    );
  }
  await applyOwned(ctx, plan.configMap, live.configMap);
  await applyOwned(ctx, plan.statefulSet, live.statefulSet);
  if (plan.expandClaim) {
    // The claim the StatefulSet made grows; its template cannot (storage-expansion.ts).
    const { name, uid, size } = plan.expandClaim;
    await ctx.writer.mergePatch(
      RESOURCE_TYPES.persistentVolumeClaim,
      { namespace, name, uid },
      { spec: { resources: { requests: { storage: size } } } },
    );
  }
  if (plan.scaleAdopted) {
    // Last, after every other effect of the pass: the plan asks for it only for a workload that
    // consented to adoption, and only during a recovery (down, up to pair, back to what it had).
    const { kind, name, replicas } = plan.scaleAdopted;
    ctx.logger.info({ kind, namespace, name, replicas }, 'scaling the adopted workload');
    await ctx.scale(kind, namespace, name, replicas);
  }
}

/**
 * Applies an owned object when it differs from the live one (or, as a dry run, always), and turns
 * Kubernetes' refusal of it into InvalidSpec naming the Connector field it came from.
 */
async function applyOwned(
  ctx: ActContext,
  desired: KubernetesObject | undefined,
  live: object | undefined,
  options: { dryRun?: boolean } = {},
): Promise<void> {
  if (!desired) return;
  if (!options.dryRun) {
    const drift = driftOf(desired, live);
    if (drift === undefined) return;
    ctx.logger.debug(
      { kind: desired.kind, name: desired.metadata?.name, field: drift },
      'applying: field differs',
    );
  }
  try {
    await ctx.writer.apply(desired, options);
  } catch (error) {
    throw invalidSpecFromRefusal(desired.kind ?? 'object', error) ?? error;
  }
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
      ...(event.priority ? { priority: event.priority } : {}),
    });
  }
}
