// How the agent retries while the control plane cannot be reached (pairing or paired): capped
// exponential backoff with equal jitter (src/lib/backoff.ts), so a fleet that lost the control plane
// at once does not come back in lockstep, and --give-up-after, which turns an outage that lasts too
// long into exit 14. Each retry loop keeps one of these and starts it over when a try succeeds.
import { type BackoffPolicy, backoffDelay } from '../lib/backoff.ts';
import type { Clock } from '../lib/clock.ts';
import type { CodedError } from '../lib/errors.ts';
import type { AgentConfig } from './config.ts';
import { gaveUpFailure } from './failure.ts';

export interface OutageRetriesOptions {
  config: Pick<AgentConfig, 'retryInitialMs' | 'retryMaxMs' | 'giveUpAfterMs'>;
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

  constructor(options: OutageRetriesOptions) {
    this.options = options;
  }

  /** Failed tries since the last success. */
  get attempts(): number {
    return this.failures;
  }

  /**
   * A try that started at `triedAt` failed with `error`: throws exit 14 (CONTROL_PLANE_UNREACHABLE,
   * or what `error` says when the address was reached: failure.ts gaveUpFailure) once --give-up-after has passed since the outage began, else returns how long to wait before
   * the next try. The wait is cut so the next try starts by the give-up deadline at the latest: the
   * agent then gives up when that try fails, within --give-up-after plus one request timeout of the
   * first try, whatever --retry-max says.
   */
  failed(triedAt: Date, error: CodedError): number {
    const { config, clock, paired } = this.options;
    this.failures += 1;
    this.since ??= triedAt;
    if (config.giveUpAfterMs <= 0) return backoffDelay(this.failures, this.policy());
    const elapsed = clock.now().getTime() - this.since.getTime();
    if (elapsed >= config.giveUpAfterMs) throw gaveUpFailure(paired, error, elapsed);
    return Math.max(0, Math.min(backoffDelay(this.failures, this.policy()), config.giveUpAfterMs - elapsed));
  }

  /** A try succeeded: the next failure starts a new outage. */
  succeeded(): void {
    this.failures = 0;
    this.since = undefined;
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
