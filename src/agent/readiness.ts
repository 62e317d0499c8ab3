// Readiness: the control plane accepted a heartbeat recently (within three intervals, the control
// plane's own offline rule). /readyz answers with it (health-server.ts), and a loss of it is logged
// once, so a request still hanging on its deadline does not leave the probe's verdict unexplained.
import type { Clock } from '../lib/clock.ts';
import type { Logger } from '../lib/logger.ts';
import type { AgentStatus } from './session.ts';

export const READY_WITHIN_INTERVALS = 3;

export interface Readiness {
  ready: boolean;
  lastHeartbeatAt: string | null;
  /**
   * The state as this agent sees it: the control plane's state while heartbeats are accepted in
   * time; once they are not, "not ready" with the state the control plane gave at the last accepted
   * heartbeat and when (that state is no longer confirmed: a 503 never says "online").
   */
  state: string | null;
  /** The control plane's state from the last accepted heartbeat, however old. */
  lastReportedState: string | null;
  detail: string;
}

/** Pure readiness rule: last accepted heartbeat no older than 3 intervals. */
export function readinessAt(
  lastAcceptedAt: Date | undefined,
  intervalMs: number,
  now: Date,
  state: string | undefined,
): Readiness {
  const lastReportedState = state ?? null;
  if (!lastAcceptedAt) {
    return {
      ready: false,
      lastHeartbeatAt: null,
      state: 'not ready (no heartbeat accepted yet)',
      lastReportedState,
      detail: 'no heartbeat accepted yet',
    };
  }
  const age = now.getTime() - lastAcceptedAt.getTime();
  const limit = READY_WITHIN_INTERVALS * intervalMs;
  const lastHeartbeatAt = lastAcceptedAt.toISOString();
  if (age <= limit) {
    return {
      ready: true,
      lastHeartbeatAt,
      state: lastReportedState,
      lastReportedState,
      detail: 'last heartbeat accepted in time',
    };
  }
  return {
    ready: false,
    lastHeartbeatAt,
    state: `not ready (${lastReportedState ?? 'no state'} as of the last accepted heartbeat, ${lastHeartbeatAt})`,
    lastReportedState,
    detail: `last heartbeat accepted ${Math.round(age / 1000)} s ago, more than ${READY_WITHIN_INTERVALS} intervals`,
  };
}

export class ReadinessReport {
  private readonly status: AgentStatus;
  private readonly clock: Clock;
  private readonly logger: Logger;
  /** The readiness /readyz (or a caller) was last given, to log its loss once. */
  private lastReportedReady: boolean | undefined;

  constructor(status: AgentStatus, clock: Clock, logger: Logger) {
    this.status = status;
    this.clock = clock;
    this.logger = logger;
  }

  readiness(): Readiness {
    const readiness = readinessAt(
      this.status.lastAcceptedAt,
      this.status.heartbeatIntervalMs,
      this.clock.now(),
      this.status.state,
    );
    this.logReadinessLost(readiness);
    return readiness;
  }

  /** A /readyz that turns 503 says why in the log too, once per loss (a hung request logs nothing yet). */
  private logReadinessLost(readiness: Readiness): void {
    const wasReady = this.lastReportedReady;
    this.lastReportedReady = readiness.ready;
    if (wasReady !== true || readiness.ready) return;
    this.logger.warn(
      { lastHeartbeatAt: readiness.lastHeartbeatAt, phase: this.status.phase },
      `not ready: ${readiness.detail}; /readyz answers 503 until a heartbeat is accepted`,
    );
  }
}
