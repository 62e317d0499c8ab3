// Who may read the operator's /metrics: the caller's bearer token is authenticated by the API server
// (a TokenReview) and the user it names is authorized for `get` on the non-resource URL /metrics (a
// SubjectAccessReview), both sent through the operator's own Kubernetes client. The same delegation
// Kubernetes' own components and controller-runtime's metrics filter use, so a scraper is allowed by
// an ordinary RBAC rule (the ClusterRole vaultpam-connector-operator-metrics-reader bound to
// Prometheus' ServiceAccount) and by nothing else: /metrics names every tenant's Connectors.
//
// Answers:
//   allowed          200, the metrics
//   unauthenticated  401: no bearer token, or one the API server does not accept
//   forbidden        403: a real user without the permission
//   unavailable      503: the API server could not be asked (down, refused the review, timed out);
//                    never "allowed": an outage of the API server must not open the metrics
//   busy             429: too many different tokens being reviewed at once (see below)
//
// Cache: a decision is kept by the token's SHA-256 (the token itself is never kept, nor logged), an
// `allowed` one for ALLOW_TTL_MS and a refusal (401 or 403) for DENY_TTL_MS. Prometheus scrapes each
// replica every 30 s with the same token, so with a minute's cache a scraper costs the API server
// two reviews a minute per replica instead of four, and a revoked binding or token stops working
// within a minute (controller-runtime keeps authentications for a minute too). A refusal is kept
// shorter (10 s) so that a scraper whose binding was just created is let in soon, while one
// misconfigured scraper does not send two reviews per scrape. An `unavailable` answer is not kept:
// the next scrape asks again. The cache holds at most MAX_ENTRIES decisions and drops the oldest
// first, so a flood of made-up tokens cannot grow memory; at most MAX_REVIEWS_IN_FLIGHT different
// tokens are reviewed at once (the same token waits for the review under way), the rest are answered
// 429 at once: a flood cannot turn into a flood of reviews that the API server's fairness would count
// against the operator's own requests.
import { createHash } from 'node:crypto';
import { errorMessage } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import type { KubeClient } from './kube-client.ts';

export const METRICS_PATH = '/metrics';
export const ALLOW_TTL_MS = 60_000;
export const DENY_TTL_MS = 10_000;
export const MAX_ENTRIES = 1024;
export const MAX_REVIEWS_IN_FLIGHT = 16;
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
  kc: KubeClient;
  logger: Logger;
  /** Milliseconds now; Date.now when omitted (tests move it). */
  now?: () => number;
}

/** The bearer token of an Authorization header, or undefined when there is none. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  return match?.[1];
}

export class MetricsAuthorizer {
  private readonly kc: KubeClient;
  private readonly logger: Logger;
  private readonly now: () => number;
  /** By the token's hash, oldest first (a Map keeps insertion order). */
  private readonly decisions = new Map<string, { access: MetricsAccess; until: number }>();
  private readonly inFlight = new Map<string, Promise<MetricsAccess>>();
  /** How many reviews reached the API server (tests check that the cache spares it). */
  reviews = 0;

  constructor(options: MetricsAuthorizerOptions) {
    this.kc = options.kc;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
  }

  /** Decides on one request's Authorization header. Never throws. */
  async authorize(authorization: string | undefined): Promise<MetricsAccess> {
    const token = bearerToken(authorization);
    if (token === undefined) return { decision: 'unauthenticated', reason: 'no bearer token' };
    const key = createHash('sha256').update(token).digest('hex');
    const cached = this.decisions.get(key);
    if (cached && cached.until > this.now()) return cached.access;
    if (cached) this.decisions.delete(key);
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    if (this.inFlight.size >= MAX_REVIEWS_IN_FLIGHT) return { decision: 'busy' };
    const review = this.review(token).then((access) => {
      this.inFlight.delete(key);
      this.remember(key, access);
      return access;
    });
    this.inFlight.set(key, review);
    return review;
  }

  /** Number of decisions cached now (bounded by MAX_ENTRIES). */
  get cachedDecisions(): number {
    return this.decisions.size;
  }

  private remember(key: string, access: MetricsAccess): void {
    const ttl =
      access.decision === 'allowed'
        ? ALLOW_TTL_MS
        : access.decision === 'unauthenticated' || access.decision === 'forbidden'
          ? DENY_TTL_MS
          : 0;
    if (ttl === 0) return;
    this.decisions.delete(key);
    while (this.decisions.size >= MAX_ENTRIES) {
      const oldest = this.decisions.keys().next().value;
      if (oldest === undefined) break;
      this.decisions.delete(oldest);
    }
    this.decisions.set(key, { access, until: this.now() + ttl });
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
