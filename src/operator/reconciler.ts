// One skeleton for every reconcile (Cluster API, Tailscale's operator): get (gone: done); deleting:
// finalize until done; finalizer missing: add it and return; otherwise observe, plan, act, and
// write the status once at the end, only if it changed, with observedGeneration. Errors come in two
// kinds: temporary ones are retried with backoff, permanent ones stall until something changes.
import { isDeepStrictEqual } from 'node:util';
import type { Clock } from '../lib/clock.ts';
import { CodedError, errorMessage, isCodedError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { AdoptionWatches } from './adoption-watches.ts';
import { FINALIZER } from './api/constants.ts';
import type { Condition, Connector, ConnectorStatus } from './api/types.ts';
import { defaultedSpec } from './api/types.ts';
import {
  CONDITION_TYPES,
  clearReconciling,
  markReconciling,
  markStalled,
  ReconcilingReasons,
  StalledReasons,
  setCondition,
  withReady,
} from './conditions.ts';
import type { ControlPlaneRegistry } from './control-plane/registry.ts';
import { type ActContext, act, recordEvents } from './reconcile/act.ts';
import { type ObserveContext, observe, resolveConnection } from './reconcile/observe.ts';
import type { Observed } from './reconcile/observed.ts';
import { plan } from './reconcile/plan.ts';
import { cleanedError, errorMessageText, errorText, untrustedCode } from './reconcile/untrusted-text.ts';
import { RESOURCE_TYPES } from './runtime/resources.ts';
import type { ReconcileResult } from './runtime/work-queue.ts';
import { splitKey } from './runtime/work-queue.ts';

export interface ReconcilerContext extends ObserveContext, ActContext {
  clock: Clock;
  logger: Logger;
  /** The Connector as the informer last saw it. */
  getConnector(namespace: string, name: string): Connector | undefined;
  /** Narrow watches on adopted workloads and their pods (absent: they are seen on resync only). */
  adoption?: Pick<AdoptionWatches, 'ensure' | 'release'>;
  controlPlanes: Pick<ControlPlaneRegistry, 'resolve' | 'suspect'>;
}

/** Control-plane answers that no retry can fix: stall with the reason until the spec or credential changes. */
const STALLING_CODES: Record<string, string> = {
  UNAUTHORIZED: StalledReasons.ControlPlaneUnauthorized,
  TTL_TOO_LONG: StalledReasons.ControlPlaneRejected,
  INVALID_REQUEST: StalledReasons.ControlPlaneRejected,
  RECOVERY_REQUIRED: StalledReasons.ControlPlaneRejected,
  [StalledReasons.ControlPlaneConfigInvalid]: StalledReasons.ControlPlaneConfigInvalid,
  // Kubernetes refused an object built from the spec: the spec must change (spec-fields.ts).
  [StalledReasons.InvalidSpec]: StalledReasons.InvalidSpec,
  // Another Connector owns the control-plane record of this connector id.
  CONNECTOR_ID_CONFLICT: StalledReasons.ConnectorIdConflict,
};

/** The status after a failed act: observed facts kept, progress records unchanged, the error in a condition. */
/** The status of a Connector being deleted: Reconciling and Ready say Finalizing, the rest stays. */
export function finalizingStatus(connector: Connector, now: Date): ConnectorStatus {
  const previous = connector.status ?? {};
  const generation = connector.metadata.generation;
  const g = generation !== undefined ? { observedGeneration: generation } : {};
  const message = `the Connector is being deleted: revoking live tokens and ${connector.spec?.deletionPolicy === 'Retain' ? 'keeping' : 'releasing'} the control-plane record before the finalizer is removed`;
  const conditions = markReconciling(
    previous.conditions,
    { reason: ReconcilingReasons.Finalizing, message, ...g },
    now,
  );
  return {
    ...previous,
    conditions: setCondition(
      conditions,
      { type: CONDITION_TYPES.Ready, status: 'False', reason: ReconcilingReasons.Finalizing, message, ...g },
      now,
    ),
  };
}

export function statusAfterError(
  previous: ConnectorStatus,
  planned: ConnectorStatus,
  error: CodedError,
  now: Date,
  generation: number | undefined,
): ConnectorStatus {
  const status: ConnectorStatus = { ...planned };
  // Counters and the recovery record advance only when their step's effects happened.
  if (previous.enrollment)
    status.enrollment = {
      ...planned.enrollment,
      mintCount: previous.enrollment.mintCount ?? 0,
      ...(previous.enrollment.lastMintKey ? { lastMintKey: previous.enrollment.lastMintKey } : {}),
    };
  if (previous.recovery) status.recovery = previous.recovery;
  else delete status.recovery;
  const g = generation !== undefined ? { observedGeneration: generation } : {};
  let conditions: Condition[] = planned.conditions ?? [];
  // The code is looked up as data (a code such as "__proto__" finds nothing), and the message goes
  // into the condition bounded, on one line and redacted: the control plane chose its words.
  const stall = Object.hasOwn(STALLING_CODES, error.code) ? STALLING_CODES[error.code] : undefined;
  const message = errorText(error);
  if (stall || !error.temporary) {
    conditions = markStalled(
      clearReconciling(conditions),
      { reason: stall ?? StalledReasons.ControlPlaneRejected, message, ...g },
      now,
    );
  } else {
    conditions = markReconciling(
      conditions,
      { reason: ReconcilingReasons.RetryingAfterError, message, ...g },
      now,
    );
  }
  status.conditions = withReady(conditions, generation, now);
  return status;
}

function asCoded(error: unknown): CodedError {
  if (isCodedError(error)) return error;
  return new CodedError('RECONCILE_FAILED', errorMessage(error), { temporary: true, cause: error });
}

export class ConnectorReconciler {
  private readonly ctx: ReconcilerContext;
  /**
   * The status this operator last wrote per Connector, the resourceVersion that write produced, and
   * that of the cached object it was planned from. The informer may not have delivered that write
   * yet when the next pass runs; planning from the older cached status would regress carried-over
   * progress (the mint counter, a recovery step), repeat a side effect, and write again for nothing.
   */
  private readonly written = new Map<
    string,
    { basedOn: string; writtenAs: string; status: ConnectorStatus }
  >();

  constructor(ctx: ReconcilerContext) {
    this.ctx = ctx;
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const cached = this.ctx.getConnector(namespace, name);
    if (!cached) {
      this.written.delete(key);
      this.ctx.adoption?.release(key);
      return {};
    }
    const connector = this.withOwnStatus(key, cached);
    const log = this.ctx.logger.child({ connector: key });
    if (connector.metadata.deletionTimestamp) {
      this.ctx.adoption?.release(key);
      return this.finalize(connector, log);
    }
    if (!(connector.metadata.finalizers ?? []).includes(FINALIZER)) {
      if (!(await this.applyFinalizers(connector, [FINALIZER]))) {
        log.debug('not adding the finalizer: the Connector is being deleted or gone');
        return {};
      }
      log.debug('finalizer added');
      return {};
    }

    const now = this.ctx.clock.now();
    const { observed, connection } = await observe(this.ctx, connector);
    this.followAdoptedWorkload(key, namespace, observed);
    const planned = plan(observed, now);
    let failure: CodedError | undefined;
    if (observed.spec.ok) {
      try {
        await act(this.ctx, connector, observed.spec.value, planned, connection, {
          configMap: observed.configMap,
          statefulSet: observed.workload?.object,
          ...(observed.tokenSecret?.uid ? { tokenSecretUID: observed.tokenSecret.uid } : {}),
        });
      } catch (error) {
        failure = asCoded(error);
      }
    }
    if (!failure && !observed.controlPlane.reachable && observed.spec.ok)
      failure = observed.controlPlane.error;
    const previous = connector.status ?? {};
    const status = failure
      ? statusAfterError(previous, planned.status, failure, now, connector.metadata.generation)
      : planned.status;
    if (!isDeepStrictEqual(normalise(previous), normalise(status))) {
      let applied: Connector;
      try {
        applied = await this.ctx.writer.applyStatus<Connector>(
          RESOURCE_TYPES.connector,
          { namespace, name },
          status,
        );
      } catch (error) {
        // Deleted since the cache saw it: there is no status left to write, and nothing failed.
        if (!isCodedError(error, 'KUBERNETES_NOT_FOUND')) throw error;
        log.debug('status not written: the Connector is gone');
        return {};
      }
      this.written.set(key, {
        basedOn: cached.metadata.resourceVersion ?? '',
        writtenAs: applied.metadata?.resourceVersion ?? '',
        status,
      });
      log.debug({ phase: status.phase }, 'status written');
    }
    if (!failure) {
      const outcome = status.recovery?.outcome;
      if (
        outcome &&
        previous.recovery?.outcome === undefined &&
        status.recovery?.requestId === previous.recovery?.requestId
      ) {
        this.ctx.metrics.recoveries.inc({ outcome: outcome === 'Succeeded' ? 'succeeded' : 'failed' });
      }
      recordEvents(this.ctx, connector, [...planned.events, ...(planned.transitions ?? [])]);
      return planned.requeueAfterMs === undefined ? {} : { requeueAfterMs: planned.requeueAfterMs };
    }
    // The planned actions did not all happen: only what the written status says changed, and the error.
    recordEvents(this.ctx, connector, [
      ...(planned.transitions ?? []),
      {
        type: 'Warning',
        reason: failure.temporary ? 'ReconcileError' : 'ReconcileStalled',
        message: errorText(failure),
      },
    ]);
    // Refused by a control-plane resource: its credential may have been rotated; check it now
    // rather than at its next periodic check (its status and every Connector of it follow).
    if (failure.code === 'UNAUTHORIZED' && connection && connection.key !== 'default')
      this.ctx.controlPlanes.suspect(connection.key);
    log.warn(
      { code: untrustedCode(failure.code), err: errorMessageText(failure), temporary: failure.temporary },
      'reconcile failed',
    );
    throw cleanedError(failure);
  }

  /** Keeps the narrow watches on an adopted workload in step with spec.workloadRef. */
  private followAdoptedWorkload(key: string, namespace: string, observed: Observed): void {
    const ref = observed.spec.ok ? observed.spec.value.workloadRef : undefined;
    if (!ref) {
      this.ctx.adoption?.release(key);
      return;
    }
    this.ctx.adoption?.ensure(key, {
      namespace,
      kind: ref.kind,
      name: ref.name,
      podSelector: observed.workload?.podSelector,
    });
  }

  /**
   * Says in status that the Connector is being deleted, once: a deleting connector is not Online
   * and not Ready, whatever the last pass saw (kubectl, kstatus, Argo CD and Flux read this).
   */
  private async markFinalizing(connector: Connector): Promise<void> {
    const previous = connector.status ?? {};
    const reconciling = previous.conditions?.find((c) => c.type === 'Reconciling');
    if (reconciling?.reason === ReconcilingReasons.Finalizing) return;
    try {
      await this.ctx.writer.applyStatus(
        RESOURCE_TYPES.connector,
        { namespace: connector.metadata.namespace ?? '', name: connector.metadata.name ?? '' },
        finalizingStatus(connector, this.ctx.clock.now()),
      );
    } catch (error) {
      // Gone already: nothing left to describe.
      if (!isCodedError(error, 'KUBERNETES_NOT_FOUND')) throw error;
    }
  }

  /** The cached Connector, with the status this operator wrote if the cache has not caught up yet. */
  private withOwnStatus(key: string, cached: Connector): Connector {
    const mine = this.written.get(key);
    if (!mine) return cached;
    if (!cacheCaughtUp(cached.metadata.resourceVersion ?? '', mine))
      return { ...cached, status: mine.status };
    // The cache holds our write or a later one: it is the truth again.
    this.written.delete(key);
    return cached;
  }

  /** Deleting: revoke live tokens, release (or keep) the control-plane record, then let go of the object. */
  private async finalize(connector: Connector, log: Logger): Promise<ReconcileResult> {
    if (!(connector.metadata.finalizers ?? []).includes(FINALIZER)) return {};
    await this.markFinalizing(connector);
    let spec: ReturnType<typeof defaultedSpec> | undefined;
    try {
      spec = defaultedSpec(connector);
    } catch {
      spec = undefined;
    }
    const resolved = spec ? await resolveConnection(this.ctx, spec) : undefined;
    // A Connector that never reached its control plane (its status names no control-plane state)
    // has no record there to release: a control plane that is missing or not Ready does not hold
    // up its deletion. One that did reach it waits for it, as its record may hold live tokens.
    const neverReached =
      resolved !== undefined && 'error' in resolved && connector.status?.controlPlaneState === undefined;
    if (neverReached) log.info('nothing to release: the Connector never reached a control plane');
    if (spec && resolved && !neverReached) {
      if ('error' in resolved) throw resolved.error;
      const client = resolved.connection.client();
      if (!client)
        throw new CodedError(
          'CONTROL_PLANE_CREDENTIAL_MISSING',
          'cannot release the connector: no control-plane credential',
          { temporary: true },
        );
      // Only the record this Connector owns is revoked, released or disowned: a Connector that lost
      // the connector id to another one (ConnectorIdConflict) leaves that one's record alone.
      const owner = { ownerUid: connector.metadata.uid ?? '' };
      let notOurs = false;
      try {
        await client.revokeTokens(spec.connector.id, owner);
        if (spec.deletionPolicy === 'Release') {
          await client.deleteConnector(spec.connector.id, owner);
          resolved.connection.follower.forget(spec.connector.id);
        } else {
          // Retain keeps the identity and lets go of the record, so a new Connector with the same
          // id (reattaching the claim) can claim it.
          await client.disownConnector(spec.connector.id, owner.ownerUid);
        }
      } catch (error) {
        if (isCodedError(error, 'CONNECTOR_ID_CONFLICT')) notOurs = true;
        else if (!isCodedError(error, 'CONNECTOR_NOT_FOUND')) throw asCoded(error);
      }
      const released = spec.deletionPolicy === 'Release';
      const message = notOurs
        ? `left the control-plane record of ${spec.connector.id} alone: another Connector owns it`
        : released
          ? `revoked live tokens and released ${spec.connector.id} in the control plane`
          : `revoked live tokens; kept the control-plane record of ${spec.connector.id} and let go of it, so a new Connector with that id can claim it (deletionPolicy Retain)`;
      log.info({ deletionPolicy: spec.deletionPolicy }, message);
      recordEvents(this.ctx, connector, [
        { type: 'Normal', reason: released ? 'ConnectorReleased' : 'ConnectorRetained', message },
      ]);
    }
    await this.applyFinalizers(connector, []);
    return {};
  }

  /**
   * Sets this operator's finalizers on the Connector (server-side apply of metadata.finalizers
   * only). Resolves false when the Connector is going or gone: the cache may lag a deletion, and
   * then the API server refuses a new finalizer on an object being deleted (422), or, the object
   * gone, apply would create it and fails on its missing spec (422) or answers 404. Nothing is left
   * to hold; the watch delivers the deletion.
   */
  private async applyFinalizers(connector: Connector, finalizers: string[]): Promise<boolean> {
    try {
      await this.ctx.writer.apply({
        apiVersion: connector.apiVersion,
        kind: connector.kind,
        metadata: {
          name: connector.metadata.name,
          namespace: connector.metadata.namespace,
          ...(finalizers.length > 0 ? { finalizers } : {}),
        },
      });
      return true;
    } catch (error) {
      if (isCodedError(error, 'KUBERNETES_INVALID') || isCodedError(error, 'KUBERNETES_NOT_FOUND'))
        return false;
      throw error;
    }
  }
}

/**
 * Whether a cached object reflects our last status write. Several passes can write before the
 * informer delivers the first of those writes, so "the cache changed" is not enough: the cache may
 * show an earlier write of ours (or someone's spec change from before our write), whose status is
 * older than ours. Resource versions are etcd revisions, integers that only grow, on the API servers
 * this operator runs against; for one that is not, seeing our own version (or anything but the
 * version we planned from) has to do.
 */
export function cacheCaughtUp(cachedVersion: string, mine: { basedOn: string; writtenAs: string }): boolean {
  if (cachedVersion === mine.writtenAs) return true;
  const integer = /^\d+$/;
  if (integer.test(cachedVersion) && integer.test(mine.writtenAs)) {
    return BigInt(cachedVersion) > BigInt(mine.writtenAs);
  }
  return cachedVersion !== mine.basedOn;
}

/** Status as compared for "did anything change": JSON round trip drops undefined and Date objects. */
function normalise(status: ConnectorStatus): unknown {
  return JSON.parse(JSON.stringify(status ?? {}));
}
