// What every part of a running agent shares: its configuration, logger, clock and randomness, the
// status it reports, the control-plane client once it is set up, and the stop request that ends
// every wait and every retry.
import type { Clock } from '../lib/clock.ts';
import { CodedError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { AgentConfig } from './config.ts';
import type { AgentApi } from './control-plane-client.ts';
import { heartbeatIntervalFor } from './heartbeat-interval.ts';

const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;

export type AgentPhase = 'starting' | 'enrolling' | 'connecting' | 'connected' | 'stopped' | 'failed';

export interface AgentStatus {
  phase: AgentPhase;
  /** The control plane's state from the last accepted heartbeat. */
  state: string | undefined;
  lastAcceptedAt: Date | undefined;
  heartbeatIntervalMs: number;
  serial: string | undefined;
  notAfter: Date | undefined;
  heartbeatsAccepted: number;
  renewals: number;
}

/** Thrown out of a wait or a retry once a stop is requested; the run loop ends with exit 0. */
export class StopRequested extends Error {}

export class AgentSession {
  readonly config: AgentConfig;
  readonly logger: Logger;
  /** The time and the timers of every wait (backoff, heartbeat interval, renewal). */
  readonly clock: Clock;
  /** [0, 1), for backoff jitter. */
  readonly random: () => number;
  /** What status() reports; each part of the agent keeps its own fields up to date. */
  readonly status: AgentStatus;
  /** Set up once the identity is loaded: its CA bundle may be what verifies the control plane. */
  client: AgentApi | undefined;
  private stopping = false;
  private wake: (() => void) | undefined;
  /** The last interval note logged, so a note is logged once and not at every heartbeat. */
  private intervalNote: string | undefined;

  constructor(config: AgentConfig, logger: Logger, clock: Clock, random: () => number) {
    this.config = config;
    this.logger = logger;
    this.clock = clock;
    this.random = random;
    this.status = {
      phase: 'starting',
      state: undefined,
      lastAcceptedAt: undefined,
      heartbeatIntervalMs: config.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
      serial: undefined,
      notAfter: undefined,
      heartbeatsAccepted: 0,
      renewals: 0,
    };
  }

  get stopRequested(): boolean {
    return this.stopping;
  }

  /** Ends the current wait; returns false when a stop was already requested. */
  requestStop(): boolean {
    if (this.stopping) return false;
    this.stopping = true;
    this.wake?.();
    return true;
  }

  throwIfStopping(): void {
    if (this.stopping) throw new StopRequested('stop requested');
  }

  /** Waits on the session's clock; a stop request ends the wait at once. */
  sleep(milliseconds: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const handle = this.clock.setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, milliseconds);
      this.wake = () => {
        this.clock.clearTimeout(handle);
        this.wake = undefined;
        resolve();
      };
    });
  }

  requireClient(): AgentApi {
    if (!this.client) throw new CodedError('INTERNAL_ERROR', 'the control-plane client is not set up');
    return this.client;
  }

  /**
   * The interval the control plane answered with, or --heartbeat-interval when it is shorter
   * (heartbeat-interval.ts); why it is neither is logged once for each answer that differs.
   */
  followHeartbeatInterval(seconds: number): void {
    const interval = heartbeatIntervalFor(seconds, this.config.heartbeatIntervalMs);
    this.status.heartbeatIntervalMs = interval.ms;
    if (interval.note && interval.note !== this.intervalNote) this.logger.warn(interval.note);
    this.intervalNote = interval.note;
  }
}
