// How the agent retries while the control plane cannot be reached (pairing or paired): capped
// exponential backoff with equal jitter (src/lib/backoff.ts), so a fleet that lost the control plane
// at once does not come back in lockstep, and --give-up-after, which turns an outage that lasts too
// long into exit 14, and --give-up-on-refusal-after, which does the same sooner for tries the server
// at the control plane's URL refused by a TLS alert about the client certificate (a proxy trusting
// another CA): no outage, and by default the only way its cause reaches the pod's termination message
// (the operator runs the agent without --give-up-after). The kubelet's restart is then the retry, so
// a proxy fixed later is still picked up. Each retry loop keeps one of these and starts it over when a try succeeds.
import { type BackoffPolicy, backoffDelay } from '../lib/backoff.ts';
import type { Clock } from '../lib/clock.ts';
import type { CodedError } from '../lib/errors.ts';
import type { AgentConfig } from './config.ts';
import { gaveUpFailure } from './failure.ts';

/** connection-errors.ts: the server at the URL refused the client certificate by a TLS alert. */
const CERTIFICATE_REFUSED = 'TLS_CLIENT_CERTIFICATE_REJECTED';

export interface OutageRetriesOptions {
  config: Pick<AgentConfig, 'retryInitialMs' | 'retryMaxMs' | 'giveUpAfterMs' | 'giveUpOnRefusalAfterMs'>;
  clock: Clock;
  /** [0, 1), for the jitter. */
  random: () => number;
  /** Whether the agent paired: giving up is a Reconnect failure then, a FirstBootBootstrap one before. */
  paired: boolean;
}

export class OutageRetries {
  private readonly options: OutageRetriesOptions;
  private failures = 0;
  /**
   * The start of the first failed try of the outage, not the moment it failed: a try that hangs
   * until the request timeout counts toward --give-up-after from its first second.
   */
  private since: Date | undefined;
  /**
   * The start of the first try of the unbroken run of certificate refusals up to the last failure;
   * undefined when the last failure was anything else (an unreachable try breaks the run: only a
   * server that answered nothing but such refusals for --give-up-on-refusal-after ends the agent).
   */
  private refusedSince: Date | undefined;

  constructor(options: OutageRetriesOptions) {
    this.options = options;
  }

  /** Failed tries since the last success. */
  get attempts(): number {
    return this.failures;
  }

  /**
   * A try that started at `triedAt` failed with `error`: throws exit 14 (failure.ts gaveUpFailure:
   * CONTROL_PLANE_UNREACHABLE, or what `error` says when the address was reached) once
   * --give-up-after has passed since the outage began, or --give-up-on-refusal-after since the tries
   * began to be refused by nothing but a TLS alert about the client certificate; else returns how
   * long to wait before the next try. The wait is cut so the next try starts by the nearer deadline
   * at the latest: the agent then gives up when that try fails, within the limit plus one request
   * timeout, whatever --retry-max says.
   */
  failed(triedAt: Date, error: CodedError): number {
    const { config, clock, paired } = this.options;
    this.failures += 1;
    this.since ??= triedAt;
    this.refusedSince = error.code === CERTIFICATE_REFUSED ? (this.refusedSince ?? triedAt) : undefined;
    const now = clock.now().getTime();
    const deadlines = [
      this.deadline(this.since, config.giveUpAfterMs),
      this.deadline(this.refusedSince, config.giveUpOnRefusalAfterMs),
    ].filter((at): at is { since: Date; at: number } => at !== undefined);
    const passed = deadlines.find(({ at }) => now >= at);
    if (passed) throw gaveUpFailure(paired, error, now - passed.since.getTime());
    const delay = backoffDelay(this.failures, this.policy());
    return Math.max(0, Math.min(delay, ...deadlines.map(({ at }) => at - now)));
  }

  /** When a limit of `limitMs` (0: none) counted from `since` runs out. */
  private deadline(since: Date | undefined, limitMs: number): { since: Date; at: number } | undefined {
    return since && limitMs > 0 ? { since, at: since.getTime() + limitMs } : undefined;
  }

  /** A try succeeded: the next failure starts a new outage. */
  succeeded(): void {
    this.failures = 0;
    this.since = undefined;
    this.refusedSince = undefined;
  }

  private policy(): BackoffPolicy {
    return {
      baseMs: this.options.config.retryInitialMs,
      capMs: this.options.config.retryMaxMs,
      jitter: 'equal',
      random: this.options.random,
    };
  }
}
