// Who may read the operator's /metrics: the caller's bearer token is authenticated by the API server
// (a TokenReview) and the user it names is authorized for `get` on the non-resource URL /metrics (a
// SubjectAccessReview), both sent with the operator's credentials (through a client of their own, see
// below). The same delegation Kubernetes' own components and controller-runtime's metrics filter
// use, so a scraper is allowed by an ordinary RBAC rule (the ClusterRole
// vaultpam-connector-operator-metrics-reader bound to Prometheus' ServiceAccount) and by nothing
// else: /metrics names every tenant's Connectors.
//
// Answers:
//   allowed          200, the metrics
//   unauthenticated  401: no bearer token, or one the API server does not accept
//   forbidden        403: a real user without the permission
//   unavailable      503: the API server could not be asked (down, refused the review, timed out);
//                    never "allowed": an outage of the API server must not open the metrics
//   busy             429: no review may be sent now (too many at once, or too many from that address or
//                    in all: see below), and the token was not allowed a moment ago
//
// Cache: a decision is kept by the token's SHA-256 (the token itself is never kept, nor logged), an
// `allowed` one for ALLOW_TTL_MS and a refusal (401 or 403) for DENY_TTL_MS. Prometheus scrapes each
// replica every 30 s with the same token, so with a minute's cache a scraper costs the API server
// two reviews a minute per replica instead of four, and a revoked binding or token stops working
// within a minute (controller-runtime keeps authentications for a minute too). A refusal is kept
// shorter (10 s) so that a scraper whose binding was just created is let in soon, while one
// misconfigured scraper does not send two reviews per scrape. An `unavailable` answer is not kept:
// the next scrape asks again.
//
// A caller with no valid token (any pod that reaches the port) must neither keep Prometheus out nor
// make the operator send reviews at will under its own identity (each one a request the API server's
// fairness counts with the operator's own). What holds:
// - Allowed decisions and refusals are kept apart (MAX_ALLOWED_ENTRIES, MAX_REFUSED_ENTRIES), each
//   dropping its least recently used first (a hit counts as a use): made-up tokens, all refused,
//   only ever push out other refusals, never the scraper's allowed decision.
// - A review is sent only within three bounds: REVIEWS_PER_ADDRESS per remote address (an IPv4
//   address or IPv6 address: an IPv6 pod network puts many pods in one /64, lib/connection-limits.ts), REVIEWS_PER_SECOND in all, and
//   MAX_REVIEWS_IN_FLIGHT at once (the same token waits for the review under way). Past any of them
//   the request is answered 429 without a review, so a flood from one pod costs the API server one
//   TokenReview a second, and a flood from many at most REVIEWS_PER_SECOND.
// - A token allowed within the last STALE_ALLOWED_MS (still in the allowed store) is reviewed again
//   within a budget of its own, RE_REVIEWS_PER_SECOND, not the three above: a flood of made-up
//   tokens, however long, cannot take the reviews that keep a scraper's decision current (before,
//   re-reviews competed with the flood for the global bound, and Prometheus was answered 429 at
//   every scrape once STALE_ALLOWED_MS had passed). The budget cannot be spent by a caller without a
//   token allowed a moment ago, and one allowed once a minute per token is all a scraper spends (a
//   review answered `unavailable` is asked again at the next scrape, within the same budget), so
//   it is bounded by the allowed store: MAX_ALLOWED_ENTRIES tokens, each reviewed once a minute, fit.
//   A revoked token is refused at its next review, within a minute, flood or not.
// - Past the budgets, a token allowed within the last STALE_ALLOWED_MS is still served (its decision
//   outlived its minute only because no review could be sent), a hard cap: a revoked token then
//   works for at most STALE_ALLOWED_MS. Serving a stale decision without bound instead was rejected:
//   a revoked token would keep reading for as long as someone floods.
// - The reviews go through a client of their own (runtime/metrics-endpoint.ts): a 429 the API server
//   gives one does not lower the operator's reconcile concurrency (adaptive-limit.ts).
import { createHash } from 'node:crypto';
import { backgroundClock, type Clock } from '../../lib/clock.ts';
import { addressGroup } from '../../lib/connection-limits.ts';
import { errorMessage } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { evictOldest, PerKeyRateLimiter } from '../../lib/rate-limiter.ts';
import type { KubeClient } from './kube-client.ts';

export const METRICS_PATH = '/metrics';
export const ALLOW_TTL_MS = 60_000;
export const DENY_TTL_MS = 10_000;
/** Refusals kept (made-up tokens land here, and push out only each other). */
export const MAX_REFUSED_ENTRIES = 1024;
/** Allowed decisions kept: one per scraper token, a handful in practice. */
export const MAX_ALLOWED_ENTRIES = 256;
export const MAX_REVIEWS_IN_FLIGHT = 16;
/**
 * Reviews one remote address may cause: a burst of 5, then one a second. A scraper needs one a
 * minute per token; a pod sending made-up tokens costs the API server one TokenReview a second.
 */
export const REVIEWS_PER_ADDRESS = { burst: 5, refillEveryMs: 1_000 } as const;
/**
 * Reviews in all: a burst of 20, then 10 a second, whatever the number of addresses (a TokenReview
 * and at most one SubjectAccessReview each).
 */
export const REVIEWS_PER_SECOND = { burst: 20, refillEveryMs: 100 } as const;
/**
 * Reviews again of tokens allowed a moment ago (see the header): a burst of 5, then 5 a second,
 * enough for every one of MAX_ALLOWED_ENTRIES tokens once a minute.
 */
export const RE_REVIEWS_PER_SECOND = { burst: 5, refillEveryMs: 200 } as const;
/** Addresses whose review budget is remembered (least recently seen dropped first). */
export const MAX_ADDRESSES = 4096;
/** How long past its decision an allowed token is still served while no review may be sent. */
export const STALE_ALLOWED_MS = 5 * 60_000;
/** A review that takes longer than a scrape's timeout (Prometheus' default: 10 s) helps nobody. */
export const REVIEW_TIMEOUT_MS = 5_000;

export type MetricsAccess =
  | { decision: 'allowed'; user: string }
  | { decision: 'unauthenticated'; reason: string }
  | { decision: 'forbidden'; user: string; reason: string }
  | { decision: 'unavailable'; reason: string }
  | { decision: 'busy' };

interface UserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

interface TokenReviewAnswer {
  status?: { authenticated?: boolean; user?: UserInfo; error?: string };
}

interface SubjectAccessReviewAnswer {
  status?: { allowed?: boolean; denied?: boolean; reason?: string };
}

export interface MetricsAuthorizerOptions {
  /** Sends the reviews: a client whose answers do not feed the reconcile concurrency limit. */
  kc: KubeClient;
  logger: Logger;
  /** backgroundClock when omitted (tests move a FakeClock). */
  clock?: Clock;
}

/** The bearer token of an Authorization header, or undefined when there is none. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  return match?.[1];
}

export class MetricsAuthorizer {
  private readonly kc: KubeClient;
  private readonly logger: Logger;
  private readonly clock: Clock;
  /** Allowed decisions by the token's hash, least recently used first (a Map keeps insertion order). */
  private readonly allowed = new Map<string, { user: string; decidedAt: number }>();
  /** Refusals by the token's hash, least recently used first. */
  private readonly refused = new Map<string, { access: MetricsAccess; until: number }>();
  private readonly inFlight = new Map<string, Promise<MetricsAccess>>();
  /** How many of the reviews under way are re-reviews of a token allowed a moment ago. */
  private reReviewsInFlight = 0;
  private readonly perAddress: PerKeyRateLimiter;
  private readonly overall: PerKeyRateLimiter;
  private readonly reReviews: PerKeyRateLimiter;
  /** How many reviews reached the API server (tests check that the cache spares it). */
  reviews = 0;

  constructor(options: MetricsAuthorizerOptions) {
    this.kc = options.kc;
    this.logger = options.logger;
    this.clock = options.clock ?? backgroundClock;
    this.perAddress = new PerKeyRateLimiter({
      ...REVIEWS_PER_ADDRESS,
      clock: this.clock,
      maxKeys: MAX_ADDRESSES,
    });
    this.overall = new PerKeyRateLimiter({ ...REVIEWS_PER_SECOND, clock: this.clock, maxKeys: 1 });
    this.reReviews = new PerKeyRateLimiter({ ...RE_REVIEWS_PER_SECOND, clock: this.clock, maxKeys: 1 });
  }

  /**
   * Decides on one request's Authorization header, from `remoteAddress` (the connection's: whose
   * budget of reviews it spends). Never throws.
   */
  async authorize(authorization: string | undefined, remoteAddress = ''): Promise<MetricsAccess> {
    const token = bearerToken(authorization);
    if (token === undefined) return { decision: 'unauthenticated', reason: 'no bearer token' };
    const key = createHash('sha256').update(token).digest('hex');
    const now = this.clock.now().getTime();
    const allowed = this.allowed.get(key);
    if (allowed) {
      if (allowed.decidedAt + ALLOW_TTL_MS > now) return this.used(this.allowed, key, allowed, allowedAccess);
      if (allowed.decidedAt + STALE_ALLOWED_MS <= now) this.allowed.delete(key);
    }
    const refused = this.refused.get(key);
    if (refused) {
      if (refused.until > now) return this.used(this.refused, key, refused, (entry) => entry.access);
      this.refused.delete(key);
    }
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    // A token allowed a moment ago is reviewed again within its own budget, anything else within the
    // bounds a flood spends (see the header).
    const stale = this.allowed.get(key);
    // First reviews are capped apart from re-reviews under way: re-reviews (bounded by their own
    // budget and the allowed store) must not take the slots a new scraper's first review needs.
    const mayReview = stale
      ? this.reReviews.tryTake('all')
      : this.inFlight.size - this.reReviewsInFlight < MAX_REVIEWS_IN_FLIGHT &&
        this.perAddress.tryTake(addressGroup(remoteAddress, 'address')) &&
        this.overall.tryTake('all');
    if (!mayReview) {
      // No review may be sent now. A token allowed a moment ago keeps reading (see the header).
      return stale ? this.used(this.allowed, key, stale, allowedAccess) : { decision: 'busy' };
    }
    if (stale) this.reReviewsInFlight += 1;
    const review = this.review(token).then((access) => {
      this.inFlight.delete(key);
      if (stale) this.reReviewsInFlight -= 1;
      this.remember(key, access);
      return access;
    });
    this.inFlight.set(key, review);
    return review;
  }

  /** Number of decisions cached now (bounded by MAX_ALLOWED_ENTRIES + MAX_REFUSED_ENTRIES). */
  get cachedDecisions(): number {
    return this.allowed.size + this.refused.size;
  }

  /** A cache hit: the entry becomes the most recently used of its store. */
  private used<V>(
    store: Map<string, V>,
    key: string,
    entry: V,
    access: (entry: V) => MetricsAccess,
  ): MetricsAccess {
    store.delete(key);
    store.set(key, entry);
    return access(entry);
  }

  private remember(key: string, access: MetricsAccess): void {
    const now = this.clock.now().getTime();
    if (access.decision === 'allowed') {
      this.refused.delete(key);
      this.allowed.delete(key);
      this.allowed.set(key, { user: access.user, decidedAt: now });
      evictOldest(this.allowed, MAX_ALLOWED_ENTRIES);
      return;
    }
    if (access.decision !== 'unauthenticated' && access.decision !== 'forbidden') return;
    // A refusal replaces an allowed decision of the same token (a revoked binding).
    this.allowed.delete(key);
    this.refused.delete(key);
    this.refused.set(key, { access, until: now + DENY_TTL_MS });
    evictOldest(this.refused, MAX_REFUSED_ENTRIES);
  }

  private async review(token: string): Promise<MetricsAccess> {
    this.reviews += 1;
    let user: UserInfo;
    try {
      const answer = await this.kc.request<TokenReviewAnswer>({
        method: 'POST',
        path: '/apis/authentication.k8s.io/v1/tokenreviews',
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } },
        timeoutMs: REVIEW_TIMEOUT_MS,
      });
      // The answer echoes the token in spec: only its status is read, and nothing of it is logged.
      if (answer?.status?.authenticated !== true || !answer.status.user?.username) {
        return { decision: 'unauthenticated', reason: 'the API server did not authenticate the token' };
      }
      user = answer.status.user;
    } catch (error) {
      return this.unavailable('TokenReview', error);
    }
    const username = user.username ?? '';
    try {
      const answer = await this.kc.request<SubjectAccessReviewAnswer>({
        method: 'POST',
        path: '/apis/authorization.k8s.io/v1/subjectaccessreviews',
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            user: username,
            ...(user.uid ? { uid: user.uid } : {}),
            ...(user.groups ? { groups: user.groups } : {}),
            ...(user.extra ? { extra: user.extra } : {}),
            nonResourceAttributes: { path: METRICS_PATH, verb: 'get' },
          },
        },
        timeoutMs: REVIEW_TIMEOUT_MS,
      });
      if (answer?.status?.allowed === true && answer.status.denied !== true) {
        return { decision: 'allowed', user: username };
      }
      const reason = answer?.status?.reason || `no RBAC rule lets ${username} get ${METRICS_PATH}`;
      this.logger.debug({ user: username, reason }, 'refused a /metrics request: not authorized');
      return { decision: 'forbidden', user: username, reason };
    } catch (error) {
      return this.unavailable('SubjectAccessReview', error);
    }
  }

  private unavailable(what: string, error: unknown): MetricsAccess {
    const reason = `the ${what} failed: ${errorMessage(error)}`;
    this.logger.warn({ err: reason }, 'cannot decide who may read /metrics: answered 503');
    return { decision: 'unavailable', reason };
  }
}

function allowedAccess(entry: { user: string }): MetricsAccess {
  return { decision: 'allowed', user: entry.user };
}
