// What callers without an admin credential can make the control plane write, bounded in one place.
//
// The enrollment endpoint is unauthenticated and the agent routes are authenticated only by a
// connector's own certificate, so without bounds anyone who reaches the port (or one compromised
// connector) could grow the append-only audit log, push real history out of the change feed (its
// followers then get 410) and keep every long-poll follower awake. Each budget is a token bucket
// on the injected clock: a burst, then one write per refill period. What is over budget is still
// counted in the metrics; it is just not written.
import type { Counter } from 'prom-client';
import type { Clock } from '../lib/clock.ts';
import { PerKeyRateLimiter } from '../lib/rate-limiter.ts';

export interface Budget {
  burst: number;
  refillEveryMs: number;
}

export interface WriteBudgets {
  /**
   * `gateway.enrollment_failed` entries for refusals of callers that proved nothing, per existing
   * connector; every unknown connector id shares one bucket, so inventing ids buys nothing.
   */
  anonymousAudit: Budget;
  /** The same entries for all such callers together, so many connectors do not multiply the budget. */
  anonymousAuditTotal: Budget;
  /** `gateway.enrollment_failed` entries for refusals of callers holding one of the connector's own tokens. */
  provenAudit: Budget;
  /**
   * `endpoint.certificate_refused` entries for certificates this CA issued to an existing connector
   * (revoked, replaced, expired), per connector. The sender proved, in the TLS handshake, that it
   * holds a key this CA certified for that connector, which no one else can present; refusals that
   * prove nothing (forged enrollments naming the connector) spend the anonymous budgets and cannot
   * spend this one, so they cannot keep a real refusal of the connector's own certificate out of
   * the audit log.
   */
  certificateAudit: Budget;
  /**
   * Updates of `lastEnrollmentFailure` (a record write, a revision and a change-feed row) that do
   * not change the state, per connector: a crash-looping agent with its own spent token does not
   * flood the feed. A move to needs_recovery never waits for this budget.
   */
  failureRecord: Budget;
  /** Certificate renewals per connector (each one issues a certificate and writes audit and feed). */
  renewal: Budget;
  /**
   * Heartbeats that change path health (and so publish a change) per connector: a flapping agent is
   * published at most this often; the beats in between still count as alive.
   */
  healthChange: Budget;
}

export const DEFAULT_BUDGETS: WriteBudgets = {
  anonymousAudit: { burst: 20, refillEveryMs: 3_000 },
  anonymousAuditTotal: { burst: 100, refillEveryMs: 1_000 },
  provenAudit: { burst: 20, refillEveryMs: 3_000 },
  certificateAudit: { burst: 20, refillEveryMs: 3_000 },
  failureRecord: { burst: 5, refillEveryMs: 60_000 },
  renewal: { burst: 5, refillEveryMs: 60_000 },
  healthChange: { burst: 20, refillEveryMs: 10_000 },
};

/** Connectors whose buckets are remembered; beyond that the least recently used are forgotten. */
const MAX_KEYS = 100_000;
const UNKNOWN_CONNECTORS = '\0unknown';

export type BudgetName = keyof WriteBudgets;

export class WriteBudget {
  private readonly limiters: { [K in BudgetName]: PerKeyRateLimiter };
  private readonly exceeded: Counter<'budget'>;

  /** `exceeded` counts every write a budget declined, labelled with the budget's name. */
  constructor(clock: Clock, exceeded: Counter<'budget'>, overrides: Partial<WriteBudgets> = {}) {
    this.exceeded = exceeded;
    const limiter = (name: BudgetName, maxKeys = MAX_KEYS) =>
      new PerKeyRateLimiter({ ...DEFAULT_BUDGETS[name], ...overrides[name], clock, maxKeys });
    this.limiters = {
      anonymousAudit: limiter('anonymousAudit'),
      anonymousAuditTotal: limiter('anonymousAuditTotal', 1),
      provenAudit: limiter('provenAudit'),
      certificateAudit: limiter('certificateAudit'),
      failureRecord: limiter('failureRecord'),
      renewal: limiter('renewal'),
      healthChange: limiter('healthChange'),
    };
  }

  /** `existing`: the connector id names a record (else it shares the unknown ids' bucket). */
  anonymousAudit(connectorId: string, existing: boolean): boolean {
    return (
      this.tryTake('anonymousAudit', existing ? connectorId : UNKNOWN_CONNECTORS) &&
      this.tryTake('anonymousAuditTotal', 'all')
    );
  }

  /** One write for this connector from a per-connector budget; false (and counted) when it is spent. */
  take(name: Exclude<BudgetName, 'anonymousAudit' | 'anonymousAuditTotal'>, connectorId: string): boolean {
    return this.tryTake(name, connectorId);
  }

  private tryTake(name: BudgetName, key: string): boolean {
    const allowed = this.limiters[name].tryTake(key);
    if (!allowed) this.exceeded.inc({ budget: name });
    return allowed;
  }
}
