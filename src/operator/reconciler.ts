// One skeleton for every reconcile (Cluster API, Tailscale's operator): get (gone: done); deleting:
// finalize until done; finalizer missing: add it and go on; then observe, plan, act, and
// write the status once at the end, only if it changed, with observedGeneration. Errors come in two
// kinds: temporary ones are retried with backoff, permanent ones stall until something changes.
import { isDeepStrictEqual } from 'node:util';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { type BackoffPolicy, backoffDelay, jitteredPeriod } from '../lib/backoff.ts';
import type { Clock } from '../lib/clock.ts';
import { asCodedError, CodedError, errorMessage, isCodedError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { AdoptionWatches } from './adoption-watches.ts';
import { ANNOTATIONS, DEFAULT_RELEASE_TIMEOUT_MS, FINALIZER } from './api/constants.ts';
import type { Connector, ConnectorStatus, DeletionPolicy } from './api/types.ts';
import { defaultConnectorId, defaultedSpec, reachedControlPlane } from './api/types.ts';
import {
  CONDITION_TYPES,
  clearReconciling,
  clearStalled,
  findCondition,
  markReconciling,
  markStalled,
  observedGenerationOf,
  ReconcilingReasons,
  StalledReasons,
  setCondition,
  withReady,
} from './conditions.ts';
import type { ReleaseHandle } from './control-plane/connections.ts';
import { controlPlaneUrlIdentity } from './control-plane/credential-url.ts';
import type { ControlPlaneRegistry } from './control-plane/registry.ts';
import {
  type ControlPlaneId,
  controlPlaneKey,
  describeControlPlane,
  referencedControlPlane,
} from './control-plane/status.ts';
import { type ActContext, act, recordEvents } from './reconcile/act.ts';
import { childNames, configuredControlPlane } from './reconcile/desired-objects.ts';
import { type ObserveContext, observe } from './reconcile/observe.ts';
import type { Observed } from './reconcile/observed.ts';
import { controlledBy } from './reconcile/ownership.ts';
import { eventsOfSteps, stalledAlready, statusOfPass } from './reconcile/pass-status.ts';
import { plan } from './reconcile/plan.ts';
import { giveBackDecision, type WorkloadOwed, workloadOwed } from './reconcile/recovery-giveback.ts';
import {
  cleanedError,
  errorMessageText,
  errorText,
  untrustedCode,
  untrustedText,
} from './reconcile/untrusted-text.ts';
import { RECOVERY_OUTCOME_LABELS } from './runtime/metrics.ts';
import { RESOURCE_TYPES } from './runtime/resources.ts';
import type { ReconcileResult } from './runtime/work-queue.ts';
import { alreadyReported, objectKey, splitKey } from './runtime/work-queue.ts';

export interface ReconcilerContext extends ObserveContext, ActContext {
  clock: Clock;
  logger: Logger;
  /** The Connector as the informer last saw it. */
  getConnector(namespace: string, name: string): Connector | undefined;
  /** Narrow watches on adopted workloads and their pods (absent: they are seen at the periodic look only). */
  adoption?: Pick<AdoptionWatches, 'ensure' | 'release'>;
  controlPlanes: Pick<ControlPlaneRegistry, 'resolve' | 'suspect' | 'forRelease' | 'urlOf'>;
  /**
   * How long a finalizer retries releasing the control-plane record, counted from the Connector's
   * deletionTimestamp (so a restart does not reset it), before it removes itself anyway and says
   * what it left behind. Default 5 minutes (--release-timeout).
   */
  releaseTimeoutMs?: number;
  /**
   * Every Connector is looked at again this long after its last pass, plus up to PERIODIC_LOOK_SPREAD
   * of it, even without an event (control-plane drift, a user's object the operator does not watch),
   * or sooner when its plan has something timed. Default 10 minutes (--resync).
   */
  periodicLookMs?: number;
  /** [0, 1), for the periodic look's spread; Math.random when omitted. */
  random?: () => number;
}

/** The periodic look's default period (--resync). */
export const DEFAULT_PERIODIC_LOOK_MS = 10 * 60_000;
/**
 * Each periodic look comes up to this fraction of the period later, at random: passes made together
 * (the operator's first, a GitOps apply's) would otherwise come back together at every period.
 */
export const PERIODIC_LOOK_SPREAD = 0.1;

/**
 * How often the finalizer patch of a Connector apply cannot type is read and tried again when the
 * Connector changed since it was read (the plugin's recover holds its write the same way, 3 times).
 */
const FINALIZER_PATCH_TRIES = 3;

/** Retries of a release that failed: 1 s doubling to 30 s, never past the release deadline. */
const RELEASE_RETRY: BackoffPolicy = { baseMs: 1_000, capMs: 30_000 };

/** Thrown by the guarded writer of a pass that learns mid-way that its Connector is being deleted. */
const DELETING = 'CONNECTOR_DELETING';
const TERM_ENDED = 'LEADERSHIP_TERM_ENDED';

/** What a finalizer needs to release a Connector's record, read without the rest of its spec. */
export interface ReleaseTarget {
  connectorId: string;
  deletionPolicy: DeletionPolicy;
  /**
   * With Retain: the namespace whose Connector alone may claim the record, the deleted Connector's
   * own. Not a spec field on purpose: a handover to another namespace could push an identity its
   * author controls onto a Connector there whose author never asked for it.
   */
  handoverNamespace: string;
  /** The control plane spec.controlPlaneRef names; undefined: the operator's default. */
  controlPlane: ControlPlaneId | undefined;
}

/**
 * The connector id, deletion policy and control plane of a Connector being deleted. From the
 * defaulted spec when the current rules accept it; otherwise from the raw fields (a stored spec that
 * newer rules refuse is still released): the connector id the status recorded, else the spec's,
 * else the default one.
 */
export function releaseTarget(connector: Connector): ReleaseTarget {
  try {
    const spec = defaultedSpec(connector);
    return {
      connectorId: spec.connector.id,
      deletionPolicy: spec.deletionPolicy,
      handoverNamespace: spec.namespace,
      controlPlane: referencedControlPlane(spec),
    };
  } catch {
    const namespace = connector.metadata.namespace ?? '';
    const raw = connector.spec as Partial<Connector['spec']> | undefined;
    const ref = raw?.controlPlaneRef;
    const rawId = raw?.connector?.id;
    return {
      connectorId:
        connector.status?.connectorId ??
        (typeof rawId === 'string' && rawId
          ? rawId
          : defaultConnectorId(namespace, connector.metadata.name ?? '')),
      deletionPolicy: raw?.deletionPolicy === 'Retain' ? 'Retain' : 'Release',
      handoverNamespace: namespace,
      controlPlane: ref?.name
        ? ref.kind === 'ClusterControlPlane'
          ? { kind: 'ClusterControlPlane', name: ref.name }
          : { kind: 'ControlPlane', namespace, name: ref.name }
        : undefined,
    };
  }
}

/** When the finalizer stops trying to release: metadata.deletionTimestamp plus the release timeout. */
export function releaseDeadline(connector: Connector, releaseTimeoutMs: number): number {
  const since = connector.metadata.deletionTimestamp;
  const at = since ? new Date(since as unknown as string).getTime() : Number.NaN;
  return (Number.isFinite(at) ? at : Date.now()) + releaseTimeoutMs;
}

const describeTarget = (target: ReleaseTarget) =>
  target.controlPlane ? describeControlPlane(target.controlPlane) : "the operator's default control plane";

/** Where a Connector's record was last registered, and the URL of the control plane its release goes through. */
export interface RecordPlace {
  /** The control-plane URL its ConfigMap gives the agent. */
  registeredAt?: string;
  configMap?: string;
  /** The URL the release target names (undefined: none this operator knows, or it is gone). */
  targetUrl?: string;
}

/**
 * The Connector's control-plane record, and where it is. The operator writes the ConfigMap's
 * control-plane URL with the connection it registers through, and keeps it while no control plane
 * is resolved (workload.ts): so it says where the record was last registered. That place is named
 * apart from the control plane the release goes through when that one names another URL, or none:
 * a Connector migrated from the removed spec.controlPlane to a ControlPlane that never became Ready
 * was registered at the field's URL and never through that ControlPlane.
 */
export function describeRecord(target: ReleaseTarget, place: RecordPlace = {}): string {
  const named = describeTarget(target);
  const record = `the control-plane record of ${target.connectorId}`;
  const at = place.registeredAt;
  if (at === undefined) return `${record} in ${named}`;
  const here = controlPlaneUrlIdentity(at);
  if (place.targetUrl !== undefined && here === controlPlaneUrlIdentity(place.targetUrl))
    return `${record} in ${named}`;
  const through = place.targetUrl
    ? `names ${untrustedText(place.targetUrl)}`
    : 'names no URL this operator knows';
  return `${record} at ${at} (where it was last registered, as the control-plane URL of its ConfigMap ${place.configMap ?? ''} says; ${named}, which the release goes through, ${through})`;
}

/** The URL a ConfigMap of the operator's gives the agent, when it is one an admin API could be at. */
function registeredUrl(configMap: V1ConfigMap | undefined): string | undefined {
  const url = configuredControlPlane(configMap).url;
  if (url === undefined || controlPlaneUrlIdentity(url) === undefined) return undefined;
  // Anyone who may edit the ConfigMap chose it last: no credential in it goes into status or an Event.
  const parsed = new URL(url);
  return parsed.username || parsed.password ? undefined : untrustedText(url, 512);
}

/**
 * The status of a Connector being deleted: phase Terminating; Reconciling and Ready say Finalizing;
 * Stalled goes (what it asked a person to fix no longer matters, kstatus reads Reconciling before
 * it, and the stalled metric would keep its alerts firing for a Connector being deleted); the rest
 * stays.
 */
export function finalizingStatus(
  connector: Connector,
  now: Date,
  release: {
    target?: ReleaseTarget;
    deadline?: number;
    lastError?: string;
    /** The release `ended`, and Kubernetes `refused` to remove the finalizer. */
    settled?: { ended: ReleaseEnd; refused: string };
    /**
     * The operator's finalizer is not on the Connector: Kubernetes `refused` it, someone removed it,
     * or the operator did once its release `ended`; the operator takes no step (no further one);
     * `others` are the finalizers that hold it.
     */
    unheld?: { refused: boolean; others: string[]; ended?: ReleaseEnd };
    /** Where the record was last registered (describeRecord). */
    place?: RecordPlace;
  } = {},
): ConnectorStatus {
  const previous = connector.status ?? {};
  const generation = connector.metadata.generation;
  const g = observedGenerationOf(generation);
  const target = release.target ?? releaseTarget(connector);
  const where = describeRecord(target, release.place);
  const bound =
    release.deadline !== undefined
      ? `; if that cannot be done by ${new Date(release.deadline).toISOString()}, the finalizer is removed anyway and the record left behind`
      : '';
  const last = release.lastError ? ` (last attempt: ${release.lastError})` : '';
  const message = release.unheld
    ? unheldMessage(connector, target, where, release.unheld)
    : release.settled
      ? `the Connector is being deleted: the release is over (${releaseEndText(release.settled.ended)}), but ${release.settled.refused}; tried again until it is accepted`
      : `the Connector is being deleted: revoking live tokens and ${target.deletionPolicy === 'Retain' ? 'keeping' : 'releasing'} ${where} before the finalizer is removed${bound}${last}`;
  const conditions = markReconciling(
    clearStalled(previous.conditions),
    { reason: ReconcilingReasons.Finalizing, message, ...g },
    now,
  );
  return {
    ...previous,
    // The deletion bumped the generation; this status describes it, as its conditions say.
    ...g,
    phase: 'Terminating',
    conditions: setCondition(
      conditions,
      { type: CONDITION_TYPES.Ready, status: 'False', reason: ReconcilingReasons.Finalizing, message, ...g },
      now,
    ),
  };
}

/** How the operator's release ended: what it did, or why the finalizer went without releasing. */
export type ReleaseEnd = { released: string } | { abandoned: string };

/** A release's end in a few words, as the Events and the status of a refused removal quote it. */
export const releaseEndText = (end: ReleaseEnd): string =>
  'released' in end ? end.released : `abandoned: ${end.abandoned}`;

/**
 * What a Connector being deleted without the operator's finalizer is waiting for: nothing the
 * operator does (it no longer may add the finalizer, and releases only under it; or it removed the
 * finalizer itself once its release ended), so what was released or is left behind.
 */
function unheldMessage(
  connector: Connector,
  target: ReleaseTarget,
  where: string,
  unheld: { refused: boolean; others: string[]; ended?: ReleaseEnd },
): string {
  const left = reachedControlPlane(connector.status)
    ? `${where} is not released: revoke its tokens and ${target.deletionPolicy === 'Release' ? 'delete' : 'disown'} it by hand`
    : 'it never reached a control plane: there is nothing to release';
  const until =
    unheld.others.length > 0
      ? `the finalizers ${unheld.others.join(', ')} are removed`
      : 'Kubernetes removes it';
  const { ended } = unheld;
  if (ended && 'released' in ended)
    return `the Connector is being deleted: the operator's release is over (${ended.released}) and it removed its finalizer ${FINALIZER}, so it takes no further step for it; it goes once ${until}`;
  if (ended)
    return `the Connector is being deleted: the operator removed its finalizer ${FINALIZER} without releasing (${ended.abandoned}), so it takes no further step for it; ${left}; it goes once ${until}`;
  const why = unheld.refused ? 'Kubernetes refused it' : 'it was removed by someone else';
  return `the Connector is being deleted without the operator's finalizer ${FINALIZER} (${why}), so the operator takes no step for it; ${left}; it goes once ${until}`;
}

/** What a refused finalizer means, around the refusal's own (cleaned) words. */
export function finalizerRefusedMessage(refusal: string): string {
  return `Kubernetes refused the finalizer ${FINALIZER}, which the operator sets before it acts: ${refusal}; nothing is done until it is accepted (tried again every --resync)`;
}

/**
 * The status of a Connector whose finalizer Kubernetes refused (it is not being deleted): Stalled
 * with reason FinalizerRefused and the refusal, Ready False with it; the rest as it stood, since no
 * pass looked further. The next pass that gets the finalizer builds the whole status again.
 */
export function finalizerRefusedStatus(connector: Connector, now: Date, message: string): ConnectorStatus {
  const previous = connector.status ?? {};
  const generation = connector.metadata.generation;
  const g = observedGenerationOf(generation);
  const conditions = markStalled(
    clearReconciling(previous.conditions),
    { reason: StalledReasons.FinalizerRefused, message, ...g },
    now,
  );
  return { ...previous, ...g, conditions: withReady(conditions, generation, now) };
}

/** Kubernetes refused to create something because the namespace is being deleted (NamespaceLifecycle). */
function isNamespaceTerminating(error: CodedError): boolean {
  return error.code === 'KUBERNETES_FORBIDDEN' && /because it is being terminated/.test(error.message);
}

function asCoded(error: unknown): CodedError {
  return asCodedError(error, 'RECONCILE_FAILED');
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

  /** Failed release attempts per Connector being deleted, and the last error (for its status). */
  private readonly releaseAttempts = new Map<string, number>();
  private readonly releaseErrors = new Map<string, string>();
  /**
   * The uid of a Connector whose finalizer this operator removed, and how its release ended, until
   * the cache says it is gone: a pass on the stale cached object must not release again or leave a
   * second trace; one that other finalizers still hold says in status how it ended.
   */
  private readonly finalized = new Map<string, { uid: string; ended: ReleaseEnd }>();
  /**
   * A Connector being deleted whose release is done (or abandoned) but whose finalizer Kubernetes
   * refused to remove (an admission policy): its uid and what the release did. The removal alone is
   * tried again; the release is not run again, nor its Event recorded twice.
   */
  private readonly settled = new Map<string, { uid: string; ended: ReleaseEnd; refusals: number }>();

  constructor(ctx: ReconcilerContext) {
    this.ctx = ctx;
  }

  /**
   * One pass over a Connector. `term` is the leadership term it runs in: once aborted (another
   * replica may lead now), the pass applies and writes nothing more.
   */
  async reconcile(key: string, term?: AbortSignal): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const cached = this.ctx.getConnector(namespace, name);
    if (!cached) {
      this.written.delete(key);
      this.forgetRelease(key);
      this.finalized.delete(key);
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
      const refusal = await this.applyFinalizers(connector, [FINALIZER]);
      if (refusal) {
        // Gone or going: its delete event comes. Refused otherwise (an admission policy, a stored
        // object a newer schema refuses): say so, and look again later, as nothing else would.
        if (this.deleting(namespace, name) || isNamespaceTerminating(refusal)) {
          log.debug('not adding the finalizer: the Connector is being deleted or gone');
          return {};
        }
        const message = finalizerRefusedMessage(errorText(refusal));
        // Said once per cause: a look that meets the same refusal the status already says (in the
        // same words) logs at debug and records no Event, as a pass that stalls again does.
        const repeated = stalledAlready(connector.status?.conditions, {
          reason: StalledReasons.FinalizerRefused,
          message,
        });
        const fields = { code: untrustedCode(refusal.code), err: errorMessageText(refusal) };
        if (repeated) log.debug(fields, 'the finalizer was refused again');
        else {
          log.warn(fields, 'the finalizer was refused');
          recordEvents(this.ctx, connector, [{ type: 'Warning', reason: 'ReconcileStalled', message }]);
        }
        const stalled = finalizerRefusedStatus(connector, this.ctx.clock.now(), message);
        if (!isDeepStrictEqual(normaliseJson(connector.status), normaliseJson(stalled))) {
          // The Event and the log say it already; a refused status write does not fail the pass.
          await this.writeStatus(connector, stalled).catch((error: unknown) =>
            log.warn({ err: errorMessage(error) }, 'could not say in status that the finalizer was refused'),
          );
        }
        return { requeueAfterMs: this.periodicLookMs() };
      }
      // The pass goes on: the finalizer is in place before any side effect, and waiting for its echo
      // from the watch would cost every new Connector one more queue wait and pass (at 100 applied at
      // once, one pass in five was this; docs/performance.md).
      log.debug('finalizer added');
    }

    const now = this.ctx.clock.now();
    const { observed, connection } = await observe(this.ctx, connector);
    this.followAdoptedWorkload(key, namespace, observed);
    const planned = plan(observed, now);
    // Observing took time: a deletion seen since then is finalized, and nothing is applied.
    if (this.deleting(namespace, name)) return this.reconcile(key, term);
    if (term?.aborted) return this.termEnded(log);
    // An invalid spec plans no action: its one step, the report, stands.
    const acted = observed.spec.ok
      ? await act(
          this.guarded(namespace, name, term),
          connector,
          observed.spec.value,
          planned.steps,
          connection,
          {
            configMap: observed.configMap,
            statefulSet: observed.workload?.object,
            ...(observed.tokenSecret?.uid ? { tokenSecretUID: observed.tokenSecret.uid } : {}),
          },
        )
      : { ran: planned.steps.length };
    let failure = acted.error === undefined ? undefined : asCoded(acted.error);
    if (failure?.code === DELETING) {
      log.debug('the Connector is being deleted: nothing more is applied; finalizing');
      return this.reconcile(key, term);
    }
    if (failure?.code === TERM_ENDED || term?.aborted) return this.termEnded(log);
    if (failure && isNamespaceTerminating(failure)) {
      // The namespace is being deleted and the Connector's deletion is on its way: wait for it.
      log.debug('the namespace is being deleted: nothing is created in it');
      return { requeueAfterMs: RELEASE_RETRY.baseMs };
    }
    if (!failure && !observed.controlPlane.reachable && observed.spec.ok)
      failure = observed.controlPlane.error;
    const previous = connector.status ?? {};
    const status = statusOfPass(
      planned,
      { ran: acted.ran, ...(failure ? { error: failure } : {}) },
      now,
      connector.metadata.generation,
    );
    // What the steps that ran did, and what changed since the stored status.
    const events = [...eventsOfSteps(planned.steps, acted.ran), ...planned.transitions];
    if (!isDeepStrictEqual(normaliseJson(previous), normaliseJson(status))) {
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
        this.ctx.metrics.recoveries.inc({ outcome: RECOVERY_OUTCOME_LABELS[outcome] });
      }
      recordEvents(this.ctx, connector, events);
      return {
        requeueAfterMs: Math.min(planned.requeueAfterMs ?? Number.POSITIVE_INFINITY, this.periodicLookMs()),
      };
    }
    // A permanent failure whose stall the stored status already says, in the same words, was
    // reported (Event, logs) by the pass that found it: this pass says it again at debug only.
    const repeated =
      !failure.temporary &&
      stalledAlready(previous.conditions, findCondition(status.conditions, CONDITION_TYPES.Stalled));
    // The steps after the one that failed did not run: their Events are not recorded, the error is.
    recordEvents(this.ctx, connector, [
      ...events,
      ...(repeated
        ? []
        : [
            {
              type: 'Warning' as const,
              reason: failure.temporary ? 'ReconcileError' : 'ReconcileStalled',
              message: errorText(failure),
            },
          ]),
    ]);
    // Refused by a control-plane resource: its credential may have been rotated; check it now
    // rather than at its next periodic check (its status and every Connector of it follow).
    if (failure.code === 'UNAUTHORIZED' && connection && connection.key !== 'default')
      this.ctx.controlPlanes.suspect(connection.key);
    // Kubernetes refused the Connector's ConfigMap for the control plane's CA bundle or URL
    // (config-map-refusal.ts): its check measures those, so its status says so now, and its
    // Connectors stall on it before writing, rather than at its next periodic check.
    if (failure.details?.recheckControlPlane === true && connection && connection.key !== 'default')
      this.ctx.controlPlanes.suspect(connection.key);
    log[repeated ? 'debug' : 'warn'](
      { code: untrustedCode(failure.code), err: errorMessageText(failure), temporary: failure.temporary },
      repeated ? 'reconcile failed again for the cause its status says' : 'reconcile failed',
    );
    throw repeated ? alreadyReported(cleanedError(failure)) : cleanedError(failure);
  }

  /**
   * When to look at a Connector again without news: the period, spread (PERIODIC_LOOK_SPREAD). Each
   * Connector keeps its own timer rather than all being delivered again at once by the informer: at
   * 10,000 that delivery was 10,000 passes in a few seconds every period (docs/performance.md).
   */
  periodicLookMs(): number {
    return jitteredPeriod(
      this.ctx.periodicLookMs ?? DEFAULT_PERIODIC_LOOK_MS,
      PERIODIC_LOOK_SPREAD,
      this.ctx.random,
    );
  }

  /**
   * The leadership term of a pass ended while it ran: another replica may lead now and act on the
   * same Connector, so this pass stops without writing its status (the next leader plans afresh).
   */
  private termEnded(log: Logger): ReconcileResult {
    log.debug('leadership ended during the pass: nothing more is applied or written');
    return {};
  }

  /** Whether the cache now shows the Connector being deleted (or gone). */
  private deleting(namespace: string, name: string): boolean {
    const latest = this.ctx.getConnector(namespace, name);
    return !latest || Boolean(latest.metadata.deletionTimestamp);
  }

  /**
   * The act context of one pass, whose writes (apply, merge patch, delete, scale; not status) and
   * control-plane calls (register, mint, revoke, begin a recovery: act asks mayAct before each step)
   * are refused once the cache shows the Connector being deleted (a pass that began before the
   * deletion was seen creates and applies nothing after it is: the finalizer takes over) or once the
   * pass's leadership term has ended (a deposed leader's pass must not mint after the new leader
   * has acted: closing the control-plane clients ends only the calls in flight).
   */
  private guarded(namespace: string, name: string, term: AbortSignal | undefined): ActContext {
    const refuse = () => {
      if (term?.aborted)
        throw new CodedError(TERM_ENDED, 'this replica stopped leading: nothing is applied', {
          temporary: true,
        });
      if (this.deleting(namespace, name))
        throw new CodedError(DELETING, 'the Connector is being deleted: nothing is applied', {
          temporary: true,
        });
    };
    const writer = this.ctx.writer;
    const guardedWriter = new Proxy(writer, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver);
        if (typeof value !== 'function') return value;
        if (property === 'apply' || property === 'mergePatch' || property === 'delete')
          return (...args: unknown[]) => {
            refuse();
            return value.apply(target, args);
          };
        return value.bind(target);
      },
    });
    return {
      ...this.ctx,
      writer: guardedWriter,
      scale: (kind, ns, workload, replicas) => {
        refuse();
        return this.ctx.scale(kind, ns, workload, replicas);
      },
      mayAct: refuse,
    };
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
   * Says in status that the Connector is being deleted (phase Terminating, Reconciling and Ready
   * Finalizing), whatever the last pass saw: a deleting connector is not Online and not Ready
   * (kubectl, kstatus, Argo CD and Flux read this). Written before the control plane is called, so
   * it holds even while the control plane cannot be reached; again only when its message changes.
   */
  private async markFinalizing(connector: Connector, status: ConnectorStatus): Promise<void> {
    const previous = connector.status ?? {};
    const before = previous.conditions?.find((c) => c.type === 'Reconciling');
    const after = status.conditions?.find((c) => c.type === 'Reconciling');
    if (
      previous.phase === status.phase &&
      before?.reason === after?.reason &&
      before?.message === after?.message
    )
      return;
    try {
      await this.writeStatus(connector, status);
    } catch (error) {
      // Any refusal (an older CRD without the phase Terminating, an API server that cannot be
      // reached) does not hold up the release.
      this.ctx.logger.warn(
        {
          connector: `${connector.metadata.namespace}/${connector.metadata.name}`,
          err: errorMessage(error),
        },
        'could not say in status that the Connector is being deleted',
      );
    }
  }

  /** Writes the Connector's status: one gone meanwhile has nothing left to describe, and no error. */
  private async writeStatus(connector: Connector, status: ConnectorStatus): Promise<void> {
    try {
      await this.ctx.writer.applyStatus(
        RESOURCE_TYPES.connector,
        { namespace: connector.metadata.namespace ?? '', name: connector.metadata.name ?? '' },
        status,
      );
    } catch (error) {
      if (!isCodedError(error, 'KUBERNETES_NOT_FOUND')) throw error;
    }
  }

  /**
   * The cache now holds a version of this Connector that a write of this operator produced, with
   * nothing else changed (an echo, runtime/own-versions.ts): once that is the status it last wrote
   * or a later one, the record of that write is dropped, as the next pass would.
   */
  ownWriteSeen(key: string, version: string): void {
    const mine = this.written.get(key);
    if (mine && cacheCaughtUp(version, mine)) this.written.delete(key);
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

  /**
   * Deleting: revoke live tokens, release (or keep) the control-plane record, then let go of the
   * object. Bounded: a release that fails is retried with backoff until the release deadline
   * (deletionTimestamp + release timeout); then, or at once when the skip-release annotation asks,
   * the finalizer is removed anyway and what was left behind is said (Event, metric, warn log).
   */
  private async finalize(connector: Connector, log: Logger): Promise<ReconcileResult> {
    const key = objectKey(connector.metadata.namespace ?? '', connector.metadata.name ?? '');
    const ours = (connector.metadata.finalizers ?? []).includes(FINALIZER);
    const finalized = this.finalized.get(key);
    if (finalized?.uid === (connector.metadata.uid ?? ''))
      // Once the cache shows the finalizer gone, and only other finalizers hold the Connector.
      return ours ? {} : this.unheld(connector, finalized.ended);
    if (!ours) return this.unheld(connector);
    const target = releaseTarget(connector);
    const place = this.recordPlace(connector, target);
    const deadline = releaseDeadline(connector, this.ctx.releaseTimeoutMs ?? DEFAULT_RELEASE_TIMEOUT_MS);
    const now = this.ctx.clock.now();
    const settled = this.settled.get(key);
    if (settled?.uid === (connector.metadata.uid ?? '')) return this.letGo(connector, log, settled.ended);
    const lastError = this.releaseErrors.get(key);
    await this.markFinalizing(
      connector,
      finalizingStatus(connector, now, { target, deadline, place, ...(lastError ? { lastError } : {}) }),
    );
    if (connector.metadata.annotations?.[ANNOTATIONS.skipRelease] === 'true')
      return this.abandon(
        connector,
        { target, place },
        log,
        'skipped',
        `the annotation ${ANNOTATIONS.skipRelease} asked to skip it`,
      );
    let outcome: string;
    try {
      outcome = await this.release(connector, target, log);
      // After the release: the recovery's tokens are revoked before its workload runs again.
      const owed = workloadOwed(connector);
      if (owed) outcome = `${outcome}; ${await this.giveBack(connector, owed, log)}`;
    } catch (error) {
      const failure = asCoded(error);
      const remaining = deadline - now.getTime();
      if (remaining <= 0)
        return this.abandon(
          connector,
          { target, place },
          log,
          'timeout',
          `the release timeout passed (last attempt: ${errorText(failure)})`,
        );
      const attempt = (this.releaseAttempts.get(key) ?? 0) + 1;
      this.releaseAttempts.set(key, attempt);
      this.releaseErrors.set(key, errorText(failure));
      const retryInMs = Math.min(backoffDelay(attempt, RELEASE_RETRY), Math.max(remaining, 1));
      log.warn(
        {
          code: untrustedCode(failure.code),
          err: errorMessageText(failure),
          attempt,
          retryInMs,
          abandonAt: new Date(deadline).toISOString(),
        },
        'could not release the connector; retrying until the release timeout',
      );
      if (failure.code === 'UNAUTHORIZED' && target.controlPlane)
        this.ctx.controlPlanes.suspect(controlPlaneKey(target.controlPlane));
      await this.markFinalizing(
        connector,
        finalizingStatus(connector, now, { target, deadline, place, lastError: errorText(failure) }),
      );
      return { requeueAfterMs: retryInMs };
    }
    return this.letGo(connector, log, { released: outcome });
  }

  /** Where the Connector's record was last registered (its ConfigMap), and the release target's URL. */
  private recordPlace(connector: Connector, target: ReleaseTarget): RecordPlace {
    const namespace = connector.metadata.namespace ?? '';
    const name = childNames(connector.metadata.name ?? '').configMap;
    const configMap = this.ctx.reader.ownedConfigMap(namespace, name);
    const registeredAt =
      configMap && controlledBy(configMap, connector.metadata.uid ?? '')
        ? registeredUrl(configMap)
        : undefined;
    const targetUrl = target.controlPlane
      ? this.ctx.controlPlanes.urlOf(target.controlPlane)
      : this.ctx.defaultConnection?.url;
    return {
      ...(registeredAt ? { registeredAt, configMap: name } : {}),
      ...(targetUrl ? { targetUrl } : {}),
    };
  }

  /**
   * A Connector being deleted without the operator's finalizer, held by other finalizers: the
   * status this operator wrote before would go on saying what no longer holds (Stalled
   * FinalizerRefused, what a pass saw, or its own release under way: "revoking live tokens ...
   * before the finalizer is removed"), so it says the deletion as it stands instead. With `ended`,
   * this operator removed the finalizer once its release ended. Without, it was refused or removed
   * by someone else: not when the status already says the deletion (phase Terminating: this, or the
   * release of an operator that removed the finalizer before a restart, whose end is not known),
   * nor when this operator never wrote one.
   */
  private async unheld(connector: Connector, ended?: ReleaseEnd): Promise<ReconcileResult> {
    const status = connector.status;
    if (!ended && (!status?.conditions?.length || status.phase === 'Terminating')) return {};
    const refused =
      status?.conditions?.find((c) => c.type === CONDITION_TYPES.Stalled)?.reason ===
      StalledReasons.FinalizerRefused;
    const others = (connector.metadata.finalizers ?? []).filter((f) => f !== FINALIZER);
    await this.markFinalizing(
      connector,
      finalizingStatus(connector, this.ctx.clock.now(), {
        unheld: { refused, others, ...(ended ? { ended } : {}) },
        place: this.recordPlace(connector, releaseTarget(connector)),
      }),
    );
    return {};
  }

  /**
   * Removes the finalizer, once per Connector object. `ended` says how the release ended. A removal
   * Kubernetes refuses while the Connector is still there (an admission policy) is said (a Warning
   * Event, the status, a warn log) and tried again with backoff; nothing else would try it again,
   * and the Connector would stay Terminating until the operator restarted.
   */
  private async letGo(connector: Connector, log: Logger, ended: ReleaseEnd): Promise<ReconcileResult> {
    const namespace = connector.metadata.namespace ?? '';
    const name = connector.metadata.name ?? '';
    const key = objectKey(namespace, name);
    const uid = connector.metadata.uid ?? '';
    const refusal = await this.applyFinalizers(connector, []);
    // A refusal of an object gone meanwhile (apply then creates, refused for its missing spec) is
    // no refusal: the API server, not the cache that may lag, says whether the finalizer is held.
    const held =
      refusal && refusal.code !== 'KUBERNETES_NOT_FOUND' && !isNamespaceTerminating(refusal)
        ? await this.ctx.reader
            .readConnector(namespace, name)
            .catch(() => this.ctx.getConnector(namespace, name))
        : undefined;
    if (refusal && held?.metadata.uid === uid && (held.metadata.finalizers ?? []).includes(FINALIZER)) {
      // Its own count: the backoff of the removal starts at 1 s, whatever the release went through.
      const before = this.settled.get(key);
      const attempt = (before?.uid === uid ? before.refusals : 0) + 1;
      this.settled.set(key, { uid, ended, refusals: attempt });
      const retryInMs = backoffDelay(attempt, RELEASE_RETRY);
      const refused = `Kubernetes refused to remove the finalizer ${FINALIZER}: ${errorText(refusal)}`;
      log.warn(
        { code: untrustedCode(refusal.code), err: errorMessageText(refusal), attempt, retryInMs },
        'the finalizer removal was refused; trying again',
      );
      recordEvents(this.ctx, connector, [
        {
          type: 'Warning',
          reason: 'ReconcileStalled',
          message: `${refused}; the release is over (${releaseEndText(ended)}) and the Connector stays until the removal is accepted (tried again with backoff, at most every ${RELEASE_RETRY.capMs / 1000} s)`,
        },
      ]);
      await this.markFinalizing(
        connector,
        finalizingStatus(connector, this.ctx.clock.now(), { settled: { ended, refused } }),
      );
      return { requeueAfterMs: retryInMs };
    }
    this.forgetRelease(key);
    this.finalized.set(key, { uid, ended });
    return {};
  }

  /** The client a release uses: the named control plane's (even after it went), or the default's. */
  private async releaseHandle(target: ReleaseTarget): Promise<ReleaseHandle | { error: CodedError }> {
    if (target.controlPlane) return this.ctx.controlPlanes.forRelease(target.controlPlane);
    const connection = this.ctx.defaultConnection;
    const client = connection?.client();
    if (connection && client)
      return { client, fromMemory: false, forget: (id) => connection.follower.forget(id), close: () => {} };
    return {
      error: new CodedError(
        'CONTROL_PLANE_CREDENTIAL_MISSING',
        connection
          ? "the operator's default control-plane credential Secret is missing or empty"
          : 'spec.controlPlaneRef is not set and the operator has no default control plane',
        { temporary: true },
      ),
    };
  }

  /**
   * Revokes live tokens and releases (or disowns) the record; returns what it did, throws what kept
   * it from doing so.
   */
  private async release(connector: Connector, target: ReleaseTarget, log: Logger): Promise<string> {
    const handle = await this.releaseHandle(target);
    if ('error' in handle) {
      // A Connector that never reached its control plane (its status names no control-plane state
      // and no mint) has no record there to release: a control plane that is missing or not Ready
      // does not hold up its deletion. One that did reach it waits for it, as its record may hold
      // live tokens (a first pass's status has its mint before any state).
      if (!reachedControlPlane(connector.status)) {
        const nothing = 'nothing to release: the Connector never reached a control plane';
        log.info(nothing);
        return nothing;
      }
      throw handle.error;
    }
    // Only the record this Connector owns is revoked, released or disowned: a Connector that lost
    // the connector id to another one (ConnectorIdConflict) leaves that one's record alone.
    const owner = { ownerUid: connector.metadata.uid ?? '' };
    const id = target.connectorId;
    let notOurs = false;
    /** The control plane answered that it has no such record. */
    let absent = false;
    /** The control plane kept the record but cannot say for whom (it predates handovers). */
    let keptForAnyone = false;
    try {
      try {
        await handle.client.revokeTokens(id, owner);
        if (target.deletionPolicy === 'Release') {
          await handle.client.deleteConnector(id, owner);
          handle.forget(id);
        } else {
          // Retain keeps the identity and lets go of the record, for a new Connector of this
          // namespace with the same id (reattaching the claim) to claim.
          await handle.client.disownConnector(id, owner.ownerUid, target.handoverNamespace);
          keptForAnyone = (await handle.client.getConnector(id)).handoverNamespace === undefined;
        }
      } catch (error) {
        if (!isCodedError(error, 'CONNECTOR_ID_CONFLICT')) throw error;
        // A Retain release retried after its disown went through (an answer lost, a restart) is
        // refused now that nobody owns the record: it is done, not someone else's.
        notOurs = !(target.deletionPolicy === 'Retain' && (await this.keptFor(handle, id, target)));
      }
    } catch (error) {
      if (!isCodedError(error, 'CONNECTOR_NOT_FOUND')) throw asCoded(error);
      absent = true;
    } finally {
      handle.close();
    }
    const released = target.deletionPolicy === 'Release';
    // A 404 is the end of a release retried after its answer was lost, or a record deleted there
    // (or never made there): either way nothing was revoked or released by this one, and saying so
    // keeps a record left on another control plane from reading as released.
    const message = absent
      ? `the control plane has no record of ${id}: nothing left to revoke or release there (released before, deleted there, or never registered there)`
      : notOurs
        ? `left the control-plane record of ${id} alone: this Connector does not own it`
        : released
          ? `revoked live tokens and released ${id} in the control plane`
          : keptForAnyone
            ? `revoked live tokens; kept the control-plane record of ${id} and let go of it, but that control plane does not record for which namespace (it predates handovers): a Connector of any namespace naming ${id} can claim it; delete the record there if none should (deletionPolicy Retain)`
            : `revoked live tokens; kept the control-plane record of ${id} and let go of it, so a new Connector with that id in namespace ${target.handoverNamespace} can claim it, and none of another namespace (deletionPolicy Retain)`;
    log[keptForAnyone ? 'warn' : 'info'](
      { deletionPolicy: target.deletionPolicy, ...(handle.fromMemory ? { credential: 'last used' } : {}) },
      message,
    );
    // The last Event of the Connector's life, and the record of what happened to its identity:
    // never held back by the rate limit (a stalled Connector may have spent its budget, and no later
    // token would ever publish a folded summary for an object that is gone).
    recordEvents(this.ctx, connector, [
      {
        type: keptForAnyone ? 'Warning' : 'Normal',
        reason: released ? 'ConnectorReleased' : 'ConnectorRetained',
        message,
        priority: 'always',
      },
    ]);
    return message;
  }

  /** Whether the record is already let go of for the target's namespace, as a Retain release leaves it. */
  private async keptFor(handle: ReleaseHandle, id: string, target: ReleaseTarget): Promise<boolean> {
    const record = await handle.client.getConnector(id).catch(() => undefined);
    return record?.ownerUid === null && record.handoverNamespace === target.handoverNamespace;
  }

  /** Lets go of the Connector without releasing its record, and says what was left behind. */
  private async abandon(
    connector: Connector,
    { target, place }: { target: ReleaseTarget; place: RecordPlace },
    log: Logger,
    reason: 'timeout' | 'skipped',
    why: string,
  ): Promise<ReconcileResult> {
    const action = target.deletionPolicy === 'Release' ? 'delete' : 'disown';
    // Not given back: the recovery's token may still be live, and the workload would run to pair with it.
    const owed = workloadOwed(connector);
    const workload = owed
      ? `; the adopted ${owed.kind} ${owed.name}, which the recovery under way held at ${owed.heldAt} replicas, is left so: give it back its ${owed.replicas} once the tokens are revoked`
      : '';
    const record = describeRecord(target, place);
    const message = `removed the finalizer without releasing: ${why}. ${record[0]?.toUpperCase()}${record.slice(1)} is left as it was, live tokens included (deletionPolicy ${target.deletionPolicy} was asked): revoke its tokens and ${action} it by hand${workload}`;
    log.warn(
      {
        connectorId: target.connectorId,
        controlPlane: describeTarget(target),
        deletionPolicy: target.deletionPolicy,
        reason,
      },
      message,
    );
    this.ctx.metrics.releasesAbandoned.inc({ deletion_policy: target.deletionPolicy, reason });
    recordEvents(this.ctx, connector, [
      { type: 'Warning', reason: 'ReleaseAbandoned', message, priority: 'always' },
    ]);
    return this.letGo(connector, log, { abandoned: why });
  }

  /**
   * Gives an adopted workload back the replicas a recovery under way had taken
   * (recovery-giveback.ts); a failed scale is thrown, and retried with the release.
   */
  private async giveBack(connector: Connector, owed: WorkloadOwed, log: Logger): Promise<string> {
    const namespace = connector.metadata.namespace ?? '';
    const workload = await this.ctx.reader.readWorkload(namespace, owed.kind, owed.name);
    const decision = giveBackDecision(
      owed,
      workload && { replicas: workload.spec?.replicas ?? 1, labels: workload.metadata?.labels },
      connector.metadata.name ?? '',
    );
    if (decision.scale !== undefined) await this.ctx.scale(owed.kind, namespace, owed.name, decision.scale);
    log.info({ workload: `${owed.kind}/${owed.name}` }, decision.says);
    recordEvents(this.ctx, connector, [
      {
        type: decision.scale === undefined && decision.warning ? 'Warning' : 'Normal',
        reason: 'RecoveryAbandoned',
        message: `deleted during guided recovery ${connector.status?.recovery?.requestId ?? ''}: ${decision.says}`,
        priority: 'always',
      },
    ]);
    return decision.says;
  }

  private forgetRelease(key: string): void {
    this.releaseAttempts.delete(key);
    this.releaseErrors.delete(key);
    this.settled.delete(key);
  }

  /**
   * Sets this operator's finalizers on the Connector (server-side apply of metadata.finalizers
   * only). Resolves undefined once applied, or the refusal when the Connector is going or gone: the
   * cache may lag a deletion, and then the API server refuses a new finalizer on an object being
   * deleted (422), or, the object gone, apply would create it and fails on its missing spec (422) or
   * answers 404; nothing is left to hold and the watch delivers the deletion. A 422 or 403 may also
   * be an admission policy's or webhook's refusal of a Connector that stays: the caller tells the
   * two apart.
   */
  private async applyFinalizers(connector: Connector, finalizers: string[]): Promise<CodedError | undefined> {
    try {
      const applied: Connector | undefined = await this.ctx.writer
        .apply<Connector>({
          apiVersion: connector.apiVersion,
          kind: connector.kind,
          metadata: {
            name: connector.metadata.name,
            namespace: connector.metadata.namespace,
            ...(finalizers.length > 0 ? { finalizers } : {}),
          },
        } as Connector)
        .catch((error: unknown) => {
          // A Connector stored before its CRD's schema covered a field it holds in another shape
          // cannot be applied to (apply.ts, applyStatus): without the patch below its deletion would
          // wait until someone fixed its spec.
          if (!isCodedError(error) || error.details?.misfit !== 'live') throw error;
          return undefined;
        });
      // Apply changes only what the operator's field manager owns. After such a patch the API
      // server may have dropped or kept stale managed fields, so an apply that succeeds can leave
      // our finalizer in place (the Connector would stay Terminating for good) or not add it: what
      // was stored decides, and a patch makes it so.
      const wanted = finalizers.includes(FINALIZER);
      if (applied && (applied.metadata?.finalizers ?? []).includes(FINALIZER) === wanted) return undefined;
      await this.patchOwnFinalizer(applied ?? connector, wanted);
      return undefined;
    } catch (error) {
      // In a namespace being deleted, apply to a Connector gone meanwhile is a create, refused (403).
      // Otherwise a 403 is a refusal too: an admission webhook's (Kyverno, Gatekeeper answer 403),
      // or this operator's rights taken away.
      if (
        isCodedError(error, 'KUBERNETES_INVALID') ||
        isCodedError(error, 'KUBERNETES_NOT_FOUND') ||
        isCodedError(error, 'KUBERNETES_FORBIDDEN')
      )
        return error;
      throw error;
    }
  }

  /**
   * Adds or removes this operator's finalizer with a patch that holds only at the version it was
   * read at, keeping every other finalizer; when the object moved on since (the pass wrote its
   * status meanwhile, or someone else wrote it: a 409), it is read again and patched anew, up to
   * FINALIZER_PATCH_TRIES times. Still moving after that, the conflict fails the pass as a
   * temporary error (retried with backoff), never as a refusal of the finalizer.
   */
  private async patchOwnFinalizer(base: Connector, wanted: boolean): Promise<void> {
    const namespace = base.metadata.namespace ?? '';
    const name = base.metadata.name ?? '';
    let current: Connector | undefined = base;
    for (let attempt = 1; current; attempt += 1) {
      const others = (current.metadata.finalizers ?? []).filter((f) => f !== FINALIZER);
      try {
        await this.ctx.writer.replaceFinalizers(
          RESOURCE_TYPES.connector,
          { namespace, name, resourceVersion: current.metadata.resourceVersion ?? '' },
          wanted ? [...others, FINALIZER] : others,
        );
        return;
      } catch (error) {
        if (!isCodedError(error, 'KUBERNETES_CONFLICT') || attempt >= FINALIZER_PATCH_TRIES) throw error;
        current = await this.ctx.reader.readConnector(namespace, name);
      }
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

/**
 * Whether two versions of a Connector differ at most in what this operator's own writes to it set:
 * its status, and its finalizer added (removing it is the end of a deletion, and is looked at).
 */
export function onlyOwnFieldsChanged(previous: Connector, updated: Connector): boolean {
  const ours = (c: Connector) => (c.metadata.finalizers ?? []).includes(FINALIZER);
  if (ours(previous) && !ours(updated)) return false;
  const rest = (c: Connector) => {
    const { resourceVersion: _version, managedFields: _fields, finalizers, ...metadata } = c.metadata;
    const others = (finalizers ?? []).filter((f) => f !== FINALIZER);
    return { metadata: { ...metadata, ...(others.length > 0 ? { finalizers: others } : {}) }, spec: c.spec };
  };
  return isDeepStrictEqual(normaliseJson(rest(previous)), normaliseJson(rest(updated)));
}

/** Values as JSON has them, for "did anything change": undefined dropped, Dates as strings. */
function normaliseJson(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value ?? {}));
}
