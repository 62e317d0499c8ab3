// Act: carry out a plan's steps in the order the plan gives them (plan.ts keeps every invariant in
// that order: the dry runs before a mint, the control-plane record before a token is minted for it,
// a stale token Secret gone before a fresh one is written, the configuration before the workload
// that mounts it), stopping at the first step that fails. Every action is idempotent (server-side
// apply, delete of what may already be gone, mint by idempotency key), so a pass that fails half
// way is simply repeated; what the steps that ran changed is written (pass-status.ts).

import type { KubernetesObject } from '@kubernetes/client-node';
import { CodedError, isCodedError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import type { Connector, DefaultedSpec } from '../api/types.ts';
import type { ControlPlaneAdminClient } from '../control-plane/admin-client.ts';
import type { ControlPlaneConnection } from '../control-plane/connections.ts';
import type { KubeWriter } from '../runtime/apply.ts';
import type { EventRecorder } from '../runtime/events.ts';
import type { OperatorMetrics } from '../runtime/metrics.ts';
import { RESOURCE_TYPES } from '../runtime/resources.ts';
import { controlPlaneContentRefusal } from './config-map-refusal.ts';
import { desiredTokenSecret } from './desired-objects.ts';
import { driftOf } from './drift.ts';
import type { PlannedAction, PlannedEvent, PlanStep } from './plan-types.ts';
import { invalidSpecFromRefusal } from './spec-fields.ts';

export interface ActContext {
  writer: KubeWriter;
  recorder: EventRecorder;
  metrics: OperatorMetrics;
  logger: Logger;
  /** Scales an adopted workload through its scale subresource. */
  scale(kind: 'StatefulSet' | 'Deployment', namespace: string, name: string, replicas: number): Promise<void>;
  /**
   * Throws when this pass may act no more (its leadership term ended, or the Connector is being
   * deleted): asked before every step, control-plane calls included, so a pass that outlived its
   * term mints, revokes or begins nothing after it (the writer and scale ask it too).
   */
  mayAct?(): void;
}

/** The live objects the plan was judged against: applied only when they differ, deleted only by uid. */
export interface LiveObjects {
  configMap?: object | undefined;
  statefulSet?: object | undefined;
  tokenSecretUID?: string;
}

/** How far act got: the number of steps that ran, and the error of the one that failed. */
export interface ActOutcome {
  ran: number;
  error?: unknown;
}

export async function act(
  ctx: ActContext,
  connector: Connector,
  spec: DefaultedSpec,
  steps: readonly PlanStep[],
  connection: ControlPlaneConnection | undefined,
  live: LiveObjects = {},
): Promise<ActOutcome> {
  for (const [index, step] of steps.entries()) {
    if (!step.action) continue;
    try {
      ctx.mayAct?.();
      await run(ctx, connector, spec, step.action, connection, live);
    } catch (error) {
      return { ran: index, error };
    }
  }
  return { ran: steps.length };
}

async function run(
  ctx: ActContext,
  connector: Connector,
  spec: DefaultedSpec,
  action: PlannedAction,
  connection: ControlPlaneConnection | undefined,
  live: LiveObjects,
): Promise<void> {
  const namespace = spec.namespace;
  switch (action.kind) {
    case 'dryRun':
      return applyOwned(ctx, spec, action.object, undefined, { dryRun: true });
    case 'ensureConnector':
    case 'beginRecovery':
    case 'revokeTokens':
    case 'mintToken':
      return callControlPlane(ctx, connector, spec, action, connection);
    case 'deleteTokenSecret':
      // Only the Secret the plan judged: when the cache still shows a Secret this operator has just
      // replaced (a re-mint a moment ago), the name already belongs to the fresh token, which stays.
      await ctx.writer.delete(
        RESOURCE_TYPES.secret,
        { namespace, name: action.name },
        live.tokenSecretUID ? { uid: live.tokenSecretUID } : {},
      );
      return;
    case 'applyConfigMap':
      return applyOwned(ctx, spec, action.object, live.configMap);
    case 'applyStatefulSet':
      return applyOwned(ctx, spec, action.object, live.statefulSet);
    case 'expandClaim':
      // The claim the StatefulSet made grows; its template cannot (storage-expansion.ts).
      await ctx.writer.mergePatch(
        RESOURCE_TYPES.persistentVolumeClaim,
        { namespace, name: action.name, uid: action.uid },
        { spec: { resources: { requests: { storage: action.size } } } },
      );
      return;
    case 'scaleAdopted': {
      // The plan asks for it only for a workload that consented to adoption, and only during a
      // recovery (down, up to pair, back to what it had).
      const { workloadKind, name, replicas } = action;
      ctx.logger.info({ kind: workloadKind, namespace, name, replicas }, 'scaling the adopted workload');
      return ctx.scale(workloadKind, namespace, name, replicas);
    }
  }
}

/** The steps that change the control plane's record. */
type ControlPlaneAction = Extract<
  PlannedAction,
  { kind: 'ensureConnector' | 'beginRecovery' | 'revokeTokens' | 'mintToken' }
>;

async function callControlPlane(
  ctx: ActContext,
  connector: Connector,
  spec: DefaultedSpec,
  action: ControlPlaneAction,
  connection: ControlPlaneConnection | undefined,
): Promise<void> {
  const client = connection?.client();
  if (!connection || !client) {
    throw new CodedError('CONTROL_PLANE_CREDENTIAL_MISSING', 'cannot call the control plane: no credential', {
      temporary: true,
    });
  }
  // The change stream carries what these calls change back to the operator: the follower reports
  // it as their echo, not as news that jumps the queue (follower.ts, `own`).
  const calls = () => changeRecord(ctx, connector, spec, action, client, connection);
  await connection.follower.own(action.connectorId, calls);
}

async function changeRecord(
  ctx: ActContext,
  connector: Connector,
  spec: DefaultedSpec,
  action: ControlPlaneAction,
  client: ControlPlaneAdminClient,
  connection: ControlPlaneConnection,
): Promise<void> {
  // Every call that changes the control-plane record names this Connector as its owner: the control
  // plane refuses it (409 CONNECTOR_ID_CONFLICT) when another Connector owns the same connector id.
  const owner = { ownerUid: connector.metadata.uid ?? '' };
  switch (action.kind) {
    case 'ensureConnector': {
      const { connector: record } = await client.ensureConnector(action.connectorId, action.config, {
        ...owner,
        ownerNamespace: connector.metadata.namespace,
      });
      connection.follower.remember(record);
      return;
    }
    case 'beginRecovery':
      connection.follower.remember(await client.beginRecovery(action.connectorId, action.requestId, owner));
      return;
    case 'revokeTokens':
      await client.revokeTokens(action.connectorId, owner);
      return;
    case 'mintToken': {
      const minted = await client
        .mintToken(action.connectorId, {
          idempotencyKey: action.idempotencyKey,
          ttlSeconds: action.ttlSeconds,
          ...owner,
        })
        .catch((error: unknown) => {
          throw consumedKeyIsNoStall(error, action.idempotencyKey);
        });
      // The token goes from the control plane's answer straight into the Secret; it is logged nowhere.
      await ctx.writer.apply(
        desiredTokenSecret(connector, spec, {
          value: minted.token,
          mintKey: action.idempotencyKey,
          expiresAt: minted.expiresAt,
        }),
      );
      // The follower learns of the mint from the change stream a moment later; until then a pass
      // would judge the fresh Secret against a record without a live token (revoked, delete it).
      // One read per mint keeps the record as new as the Secret.
      connection.follower.remember(await client.getConnector(action.connectorId));
      if (minted.created) ctx.metrics.enrollmentTokensMinted.inc();
      ctx.logger.info(
        { tokenId: minted.tokenId, expiresAt: minted.expiresAt, created: minted.created },
        'enrollment token stored in its Secret',
      );
      return;
    }
  }
}

/**
 * A mint key refused as consumed: the token this pass saw live and unused (a restore asks for it
 * again) was used, revoked or expired since the pass read the record; the agent pairing with it at
 * that moment is the common case. No person needs to act: the next pass sees what happened (the
 * pairing, or the key remembered as consumed: pass-status.ts) and decides. So the refusal is retried
 * as temporary, not a Stalled ControlPlaneRejected telling someone to use a new key. Its code stays.
 */
function consumedKeyIsNoStall(error: unknown, key: string): unknown {
  if (!isCodedError(error, 'IDEMPOTENCY_KEY_CONSUMED')) return error;
  return new CodedError(
    error.code,
    `the control plane refuses mint key ${key} as consumed: its token was used, revoked or expired since this pass looked; the next pass decides from what it sees then`,
    { httpStatus: error.httpStatus, temporary: true, cause: error },
  );
}

/**
 * Applies an owned object when it differs from the live one (or, as a dry run, always), and turns
 * Kubernetes' refusal of it into whose it is to fix: the control plane's admin for what the control
 * plane put in the ConfigMap (config-map-refusal.ts), else InvalidSpec naming the Connector field.
 */
async function applyOwned(
  ctx: ActContext,
  spec: DefaultedSpec,
  desired: KubernetesObject,
  live: object | undefined,
  options: { dryRun?: boolean } = {},
): Promise<void> {
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
    throw (
      controlPlaneContentRefusal(error, desired, spec) ??
      invalidSpecFromRefusal(desired.kind ?? 'object', error) ??
      error
    );
  }
}

/**
 * Hands a pass's Events to the recorder without waiting for their writes (as client-go's event
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
