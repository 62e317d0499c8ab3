// Leader election on a coordination.k8s.io/v1 Lease, in the manner of client-go's leaderelection:
// a candidate takes the lease when it is free (no holder) or expired, the leader renews it every
// retryPeriod, and every write carries the resourceVersion it read, so of two racing candidates the
// API server lets exactly one win (409 Conflict for the other).
//
// Expiry is judged the way client-go judges it: not by comparing the holder's renewTime with our
// wall clock (clocks differ between nodes) but by how long *we* have watched the lease go unchanged.
// The leader gives up after renewDeadline without a successful renew, which is shorter than
// leaseDuration, so it has stopped acting before any candidate can consider the lease expired.
// Leadership ends at once: the AbortSignal handed to onStartedLeading fires the moment a renew
// deadline passes or another holder is seen. A clean stop releases the lease (empty holderIdentity)
// so a successor takes over on its next retry instead of waiting for expiry.
import { randomBytes } from 'node:crypto';
import type { V1LeaseSpec, V1ObjectMeta } from '@kubernetes/client-node';
import { backgroundClock, type Clock } from '../../lib/clock.ts';
import { CodedError, errorMessage } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { apiErrorMessage, httpStatusOf } from './api-errors.ts';
import { type KubeAccess, kubeClientOf } from './kube-access.ts';
import type { KubeClient } from './kube-client.ts';
import { microTime } from './kube-time.ts';
import type { OperatorMetrics } from './metrics.ts';
import { RESOURCE_TYPES } from './resources.ts';

/** A Lease as the API server's JSON has it: acquireTime and renewTime are MicroTime strings (kube-time.ts). */
interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata?: V1ObjectMeta;
  spec?: Omit<V1LeaseSpec, 'acquireTime' | 'renewTime'> & { acquireTime?: string; renewTime?: string };
}

export interface LeaderElectionOptions {
  /** The operator's client, or a client-node KubeConfig to build it from (kube-access.ts). */
  kc: KubeAccess;
  namespace: string;
  /** Name of the Lease object. */
  name: string;
  /** Unique per process; see leaderIdentity(). */
  identity: string;
  logger: Logger;
  /** How long a lease is valid after its last renewal, as seen by candidates. Default 15 s. */
  leaseDurationMs?: number;
  /** The leader gives up if it could not renew for this long. Default 10 s. */
  renewDeadlineMs?: number;
  /** Time between acquire attempts (candidates) and renewals (leader). Default 2 s. */
  retryPeriodMs?: number;
  /**
   * Called when this process becomes the leader. Do the leader's work until `signal` aborts. If it
   * returns a promise, a clean stop() waits for it before releasing the lease, so the successor
   * never overlaps with this process's work.
   */
  onStartedLeading(signal: AbortSignal): void | Promise<void>;
  /** Called when leadership ends (lost or stopped), after the signal aborted. */
  onStoppedLeading?(): void;
  /** Called when a different holder is first observed. */
  onNewLeader?(identity: string): void;
  metrics?: OperatorMetrics;
  /** The lease's acquireTime/renewTime, the time that expiry is measured with, and timers. */
  clock?: Clock;
}

export interface StopOptions {
  /**
   * true (default): clear holderIdentity so a successor can take over at once. false: just stop
   * renewing, as a killed process would; candidates take over when the lease expires.
   */
  release?: boolean;
}

export const DEFAULT_LEASE_DURATION_MS = 15_000;
export const DEFAULT_RENEW_DEADLINE_MS = 10_000;
export const DEFAULT_RETRY_PERIOD_MS = 2_000;

/** Identity of one operator process: the pod name plus a random suffix, so a restarted pod is a new holder. */
export function leaderIdentity(podName: string): string {
  return `${podName}_${randomBytes(5).toString('hex')}`;
}

export class LeaderElector {
  readonly identity: string;
  private readonly kube: KubeClient;
  private readonly namespace: string;
  private readonly name: string;
  private readonly logger: Logger;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly options: LeaderElectionOptions;
  private readonly clock: Clock;

  private running = false;
  private leading = false;
  private leadership: AbortController | undefined;
  private work: Promise<void> = Promise.resolve();
  private tickTimer: unknown;
  private deadlineTimer: unknown;
  private attempt: Promise<void> | undefined;
  /** resourceVersion of the lease as last seen, and when (on our clock) it was first seen. */
  private observedVersion: string | undefined;
  private observedAt = 0;
  private observedHolder: string | undefined;

  constructor(options: LeaderElectionOptions) {
    this.options = options;
    this.identity = options.identity;
    this.namespace = options.namespace;
    this.name = options.name;
    this.leaseDurationMs = options.leaseDurationMs ?? DEFAULT_LEASE_DURATION_MS;
    this.renewDeadlineMs = options.renewDeadlineMs ?? DEFAULT_RENEW_DEADLINE_MS;
    this.retryPeriodMs = options.retryPeriodMs ?? DEFAULT_RETRY_PERIOD_MS;
    this.clock = options.clock ?? backgroundClock;
    this.logger = options.logger.child({ lease: `${this.namespace}/${this.name}`, identity: this.identity });
    if (!options.identity)
      throw new CodedError('INVALID_ARGUMENT', 'leader election needs a non-empty identity');
    if (!(this.retryPeriodMs > 0 && this.renewDeadlineMs > this.retryPeriodMs)) {
      throw new CodedError(
        'INVALID_ARGUMENT',
        `leader election needs 0 < retryPeriodMs < renewDeadlineMs, got ${this.retryPeriodMs} and ${this.renewDeadlineMs}`,
      );
    }
    if (!(this.leaseDurationMs > this.renewDeadlineMs && this.leaseDurationMs >= 1000)) {
      throw new CodedError(
        'INVALID_ARGUMENT',
        `leader election needs leaseDurationMs >= 1000 and > renewDeadlineMs (the leader must stop acting before the lease can expire), got ${this.leaseDurationMs} and ${this.renewDeadlineMs}`,
      );
    }
    this.kube = kubeClientOf(options.kc);
  }

  /** Starts competing for the lease in the background. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.logger.info('leader election started; candidate');
    this.tick();
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** Holder last seen on the lease (may be this process), or undefined before the first read. */
  observedLeader(): string | undefined {
    return this.observedHolder;
  }

  /**
   * Stops competing. If leading: aborts the leader's signal, waits for onStartedLeading's promise to
   * settle, then (unless release is false) clears holderIdentity so a successor takes over at once.
   */
  async stop(options: StopOptions = {}): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.clock.clearTimeout(this.tickTimer);
    this.tickTimer = undefined;
    const wasLeading = this.leading;
    this.endLeadership('stopping');
    await this.work;
    // Let an acquire/renew in flight finish so the release does not race our own write.
    await this.attempt;
    if (options.release === false) {
      this.logger.info('leader election stopped without releasing the lease');
      return;
    }
    if (wasLeading || this.observedHolder === this.identity) await this.release();
  }

  private tick(): void {
    if (!this.running) return;
    this.attempt = this.acquireOrRenew()
      .then((held) => {
        if (!this.running) return;
        if (held) this.onHeld();
        else if (this.leading)
          this.endLeadership(`lease taken by ${this.observedHolder ?? 'another holder'}`);
      })
      .catch((error: unknown) => {
        // Not fatal: a leader keeps trying until its renew deadline passes; a candidate just retries.
        this.logger.warn(
          { status: httpStatusOf(error), err: apiErrorMessage(error), leading: this.leading },
          this.leading ? 'lease renewal failed; retrying' : 'lease acquire attempt failed; retrying',
        );
      })
      .finally(() => {
        this.attempt = undefined;
        if (this.running) this.tickTimer = this.clock.setTimeout(() => this.tick(), this.retryPeriodMs);
      });
  }

  private onHeld(): void {
    this.clock.clearTimeout(this.deadlineTimer);
    this.deadlineTimer = this.clock.setTimeout(
      () => this.endLeadership(`no successful renewal for ${this.renewDeadlineMs} ms`),
      this.renewDeadlineMs,
    );
    if (this.leading) return;
    this.leading = true;
    const leadership = new AbortController();
    this.leadership = leadership;
    this.logger.info('became the leader');
    // A term begins only once the previous term's work has stopped: after a lost renewal the old
    // term may still be finishing passes it began, and two terms acting on one object at once would
    // undo each other's writes (a scale planned before the loss landing after the new term's).
    this.work = this.work
      .then(() => (leadership.signal.aborted ? undefined : this.options.onStartedLeading(leadership.signal)))
      .catch((error: unknown) => {
        this.logger.error({ err: errorMessage(error) }, 'leader work failed');
      });
  }

  private endLeadership(reason: string): void {
    this.clock.clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    if (!this.leading) return;
    this.leading = false;
    if (reason === 'stopping') this.logger.info('stepping down');
    else this.logger.warn({ reason }, 'leadership lost; stopping leader work at once');
    this.leadership?.abort(
      new CodedError('LEADERSHIP_LOST', `leadership ended: ${reason}`, { temporary: true }),
    );
    this.leadership = undefined;
    try {
      this.options.onStoppedLeading?.();
    } catch (error) {
      this.logger.error({ err: errorMessage(error) }, 'onStoppedLeading failed');
    }
  }

  /** One attempt: true when this process holds the lease afterwards. */
  private async acquireOrRenew(): Promise<boolean> {
    let lease: Lease;
    try {
      lease = await this.kube.get<Lease>(RESOURCE_TYPES.lease, {
        namespace: this.namespace,
        name: this.name,
      });
    } catch (error) {
      if (httpStatusOf(error) !== 404) throw error;
      return this.create();
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    this.observe(lease);
    const validForMs = (spec.leaseDurationSeconds ?? Math.ceil(this.leaseDurationMs / 1000)) * 1000;
    if (
      holder !== '' &&
      holder !== this.identity &&
      this.observedAt + validForMs > this.clock.now().getTime()
    ) {
      return false;
    }
    const now = microTime(this.clock.now().getTime());
    const takingOver = holder !== this.identity;
    const body: Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { ...lease.metadata, name: this.name, namespace: this.namespace },
      spec: {
        holderIdentity: this.identity,
        leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
        acquireTime: takingOver || spec.acquireTime === undefined ? now : spec.acquireTime,
        renewTime: now,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver ? 1 : 0),
      },
    };
    try {
      this.options.metrics?.countWrite('Lease', 'update');
      const updated = await this.kube.replace<Lease>(
        RESOURCE_TYPES.lease,
        { namespace: this.namespace, name: this.name },
        body,
      );
      if (takingOver) this.logger.info({ previousHolder: holder || undefined }, 'lease acquired');
      this.observe(updated);
      return true;
    } catch (error) {
      if (httpStatusOf(error) === 409) return false; // another candidate wrote first
      throw error;
    }
  }

  private async create(): Promise<boolean> {
    const now = microTime(this.clock.now().getTime());
    try {
      this.options.metrics?.countWrite('Lease', 'create');
      const created = await this.kube.create<Lease>(RESOURCE_TYPES.lease, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.name, namespace: this.namespace },
        spec: {
          holderIdentity: this.identity,
          leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
          acquireTime: now,
          renewTime: now,
          leaseTransitions: 0,
        },
      });
      this.logger.info('lease created and acquired');
      this.observe(created);
      return true;
    } catch (error) {
      if (httpStatusOf(error) === 409) return false; // another candidate created it first
      throw error;
    }
  }

  private observe(lease: Lease): void {
    const version = lease.metadata?.resourceVersion;
    if (version !== this.observedVersion) {
      this.observedVersion = version;
      this.observedAt = this.clock.now().getTime();
    }
    const holder = lease.spec?.holderIdentity || undefined;
    if (holder !== this.observedHolder) {
      this.observedHolder = holder;
      if (holder !== undefined && holder !== this.identity) {
        this.logger.info({ leader: holder }, 'observed a new leader');
        try {
          this.options.onNewLeader?.(holder);
        } catch (error) {
          this.logger.error({ err: errorMessage(error) }, 'onNewLeader failed');
        }
      }
    }
  }

  private async release(): Promise<void> {
    try {
      const ref = { namespace: this.namespace, name: this.name };
      const lease = await this.kube.get<Lease>(RESOURCE_TYPES.lease, ref);
      if (lease.spec?.holderIdentity !== this.identity) return;
      const now = microTime(this.clock.now().getTime());
      this.options.metrics?.countWrite('Lease', 'update');
      await this.kube.replace<Lease>(RESOURCE_TYPES.lease, ref, {
        ...lease,
        spec: {
          ...lease.spec,
          holderIdentity: '',
          leaseDurationSeconds: 1,
          renewTime: now,
        },
      });
      this.observedHolder = undefined;
      this.logger.info('lease released');
    } catch (error) {
      // The lease will expire on its own; a failed release only delays the successor.
      this.logger.warn(
        { status: httpStatusOf(error), err: apiErrorMessage(error) },
        'releasing the lease failed',
      );
    }
  }
}
