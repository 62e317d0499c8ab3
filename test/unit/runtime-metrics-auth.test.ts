// The /metrics authorizer's cache and bounds, with a stand-in for the API server's two reviews (the
// reviews themselves are tested against the real API server in test/cluster/metrics-auth.test.ts),
// on a FakeClock: how long a decision is kept, that a 503 is not, that one token is reviewed once at
// a time, and that a flood of made-up tokens neither grows the cache past its bound, nor sends
// reviews faster than its address's and the global bounds allow, nor pushes out an allowed decision.
import test from 'ava';
import { FakeClock } from '../../src/lib/clock.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import type { KubeClient, KubeRequest } from '../../src/operator/runtime/kube-client.ts';
import {
  ALLOW_TTL_MS,
  bearerToken,
  DENY_TTL_MS,
  MAX_ALLOWED_ENTRIES,
  MAX_REFUSED_ENTRIES,
  MAX_REVIEWS_IN_FLIGHT,
  MetricsAuthorizer,
  RE_REVIEWS_PER_SECOND,
  REVIEWS_PER_ADDRESS,
  REVIEWS_PER_SECOND,
  STALE_ALLOWED_MS,
} from '../../src/operator/runtime/metrics-auth.ts';

/** Answers TokenReviews (valid: tokens starting with "good" or "stranger") and SubjectAccessReviews. */
function fakeApiServer(options: { down?: () => boolean; hold?: Promise<void> } = {}) {
  const requests: string[] = [];
  const kc = {
    async request(request: KubeRequest) {
      requests.push(request.path);
      await options.hold;
      if (options.down?.()) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      const body = request.body as { spec: { token?: string; user?: string } };
      if (request.path.endsWith('/tokenreviews')) {
        const token = body.spec.token ?? '';
        const authenticated = token.startsWith('good') || token.startsWith('stranger');
        return { status: { authenticated, ...(authenticated ? { user: { username: token } } : {}) } };
      }
      return { status: { allowed: (body.spec.user ?? '').startsWith('good') } };
    },
  } as unknown as KubeClient;
  return { kc, requests };
}

test('the bearer token is read from the header, nothing else is one', (t) => {
  t.is(bearerToken('Bearer abc'), 'abc');
  t.is(bearerToken('bearer  abc '), 'abc');
  for (const header of [undefined, '', 'Bearer', 'Bearer a b', 'Basic YTpi', 'abc'])
    t.is(bearerToken(header), undefined);
});

/** A distinct IPv4 address for each i (each its own budget of reviews). */
const address = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

test('decisions are kept 60 s when allowed, 10 s when refused, and a 503 not at all', async (t) => {
  const clock = new FakeClock(0);
  const at = (ms: number) => clock.set(ms);
  let down = false;
  const api = fakeApiServer({ down: () => down });
  const auth = new MetricsAuthorizer({ kc: api.kc, logger: silentLogger(), clock });
  t.is((await auth.authorize('Bearer good-1')).decision, 'allowed');
  t.is((await auth.authorize('Bearer stranger-1')).decision, 'forbidden');
  t.is((await auth.authorize('Bearer made-up')).decision, 'unauthenticated');
  t.is(auth.reviews, 3);
  at(DENY_TTL_MS - 1);
  await auth.authorize('Bearer good-1');
  await auth.authorize('Bearer stranger-1');
  t.is(auth.reviews, 3, 'all three cached');
  at(DENY_TTL_MS + 1);
  await auth.authorize('Bearer stranger-1');
  await auth.authorize('Bearer good-1');
  t.is(auth.reviews, 4, 'the refusal asked again, the allowed one not');
  at(ALLOW_TTL_MS + 1);
  down = true;
  t.is(
    (await auth.authorize('Bearer good-1')).decision,
    'unavailable',
    'expired, and the API server is down',
  );
  t.is((await auth.authorize('Bearer good-1')).decision, 'unavailable', 'not cached: asked again');
  t.is(auth.reviews, 6);
  down = false;
  at(ALLOW_TTL_MS + 2_000);
  t.is((await auth.authorize('Bearer good-1')).decision, 'allowed', 'back as soon as the API server is');
  t.is((await auth.authorize(undefined)).decision, 'unauthenticated');
  t.is(auth.reviews, 7, 'no token, no review');
});

test('a flood of made-up tokens from many addresses keeps the cache bounded', async (t) => {
  const clock = new FakeClock(0);
  const auth = new MetricsAuthorizer({ kc: fakeApiServer().kc, logger: silentLogger(), clock });
  for (let i = 0; i < MAX_REFUSED_ENTRIES * 3; i += 1) {
    t.is((await auth.authorize(`Bearer random-${i}`, address(i))).decision, 'unauthenticated');
    clock.advance(REVIEWS_PER_SECOND.refillEveryMs);
  }
  t.is(auth.cachedDecisions, MAX_REFUSED_ENTRIES);
  t.is(auth.reviews, MAX_REFUSED_ENTRIES * 3);
});

test('reviews at once are bounded; the same token waits for the review under way', async (t) => {
  let release = () => {};
  const hold = new Promise<void>((resolve) => {
    release = resolve;
  });
  const api = fakeApiServer({ hold });
  const held = new MetricsAuthorizer({ kc: api.kc, logger: silentLogger(), clock: new FakeClock(0) });
  const answers = Array.from({ length: 40 }, (_, i) => held.authorize(`Bearer random-${i}`, address(i)));
  const same = [held.authorize('Bearer random-0', address(100)), held.authorize('Bearer random-0')];
  release();
  const decisions = (await Promise.all(answers)).map((a) => a.decision);
  t.is(decisions.filter((d) => d === 'busy').length, 40 - MAX_REVIEWS_IN_FLIGHT);
  t.is(held.reviews, MAX_REVIEWS_IN_FLIGHT, 'the same token waits for its review under way');
  t.deepEqual(
    (await Promise.all(same)).map((a) => a.decision),
    ['unauthenticated', 'unauthenticated'],
  );
});

// Before: an IPv6 caller was counted by its /64, and an IPv6 pod network puts many pods in one /64,
// Prometheus' among them: its neighbours' made-up tokens spent its budget.
test('an IPv6 caller is its address, not its /64', async (t) => {
  const auth = new MetricsAuthorizer({
    kc: fakeApiServer().kc,
    logger: silentLogger(),
    clock: new FakeClock(0),
  });
  const pods = [];
  for (let i = 0; i < 10; i += 1)
    pods.push((await auth.authorize(`Bearer pod-${i}`, `fd00:10:244:1::${i + 2}`)).decision);
  t.deepEqual(pods, Array(10).fill('unauthenticated'), 'ten pods of one /64, each its own budget');
  const onePod = [];
  for (let i = 0; i < 10; i += 1)
    onePod.push((await auth.authorize(`Bearer one-${i}`, 'fd00:10:244:1::aa')).decision);
  t.is(onePod.filter((d) => d === 'busy').length, 10 - REVIEWS_PER_ADDRESS.burst, 'one pod: its burst');
});

// Before: one address sent reviews as fast as it sent tokens (thousands a second, 16 at a time).
test('one address causes at most its burst of reviews, then one a second; others are not held back by it', async (t) => {
  const clock = new FakeClock(0);
  const auth = new MetricsAuthorizer({ kc: fakeApiServer().kc, logger: silentLogger(), clock });
  const flood = async (count: number, from: string) => {
    const decisions: string[] = [];
    for (let i = 0; i < count; i += 1)
      decisions.push(
        (await auth.authorize(`Bearer junk-${from}-${clock.now().getTime()}-${i}`, from)).decision,
      );
    return decisions;
  };
  const first = await flood(100, '192.0.2.7');
  t.is(first.filter((d) => d === 'unauthenticated').length, REVIEWS_PER_ADDRESS.burst);
  t.is(first.filter((d) => d === 'busy').length, 100 - REVIEWS_PER_ADDRESS.burst);
  t.is(auth.reviews, REVIEWS_PER_ADDRESS.burst);
  t.is((await auth.authorize('Bearer good-prom', '192.0.2.9')).decision, 'allowed', 'another address');
  clock.advance(REVIEWS_PER_ADDRESS.refillEveryMs);
  const later = await flood(10, '192.0.2.7');
  t.is(later.filter((d) => d === 'unauthenticated').length, 1, 'one more a second');
});

test('reviews in all are bounded, whatever the number of addresses', async (t) => {
  const clock = new FakeClock(0);
  const auth = new MetricsAuthorizer({ kc: fakeApiServer().kc, logger: silentLogger(), clock });
  const decisions: string[] = [];
  for (let i = 0; i < 200; i += 1)
    decisions.push((await auth.authorize(`Bearer junk-${i}`, address(i))).decision);
  t.is(auth.reviews, REVIEWS_PER_SECOND.burst);
  t.is(decisions.filter((d) => d === 'busy').length, 200 - REVIEWS_PER_SECOND.burst);
  clock.advance(1000);
  for (let i = 200; i < 400; i += 1) await auth.authorize(`Bearer junk-${i}`, address(i));
  t.is(auth.reviews, REVIEWS_PER_SECOND.burst + 1000 / REVIEWS_PER_SECOND.refillEveryMs, 'then 10 a second');
});

// Before: decisions were one store evicted in insertion order, a hit not refreshing: 1,024 made-up
// tokens pushed out Prometheus' allowed decision, and it was answered 429 while the flood went on.
test('made-up tokens never push out an allowed decision, which is still served while no review may be sent', async (t) => {
  const clock = new FakeClock(0);
  const api = fakeApiServer();
  const auth = new MetricsAuthorizer({ kc: api.kc, logger: silentLogger(), clock });
  const prometheus = '10.200.0.1';
  t.is((await auth.authorize('Bearer good-prom', prometheus)).decision, 'allowed');
  for (let i = 0; i < MAX_REFUSED_ENTRIES + 100; i += 1) {
    t.is((await auth.authorize(`Bearer junk-${i}`, address(i))).decision, 'unauthenticated');
    clock.advance(REVIEWS_PER_SECOND.refillEveryMs);
    // Prometheus reads within its decision's minute: from the cache.
    if (i % 100 === 0 && i < 500)
      t.is((await auth.authorize('Bearer good-prom', prometheus)).decision, 'allowed');
  }
  t.is(auth.reviews, 1 + MAX_REFUSED_ENTRIES + 100);
  t.is(auth.cachedDecisions, MAX_REFUSED_ENTRIES + 1, 'every refusal slot full, and the allowed one kept');
  // Use up the global bound: more made-up tokens at once than its burst.
  const burst = [];
  for (let i = 0; i <= REVIEWS_PER_SECOND.burst; i += 1)
    burst.push((await auth.authorize(`Bearer junk-burst-${i}`, address(50_000 + i))).decision);
  t.is(burst.at(-1), 'busy');
  const reviews = auth.reviews;
  t.true(clock.now().getTime() > ALLOW_TTL_MS && clock.now().getTime() < STALE_ALLOWED_MS);
  t.deepEqual(
    await auth.authorize('Bearer good-prom', prometheus),
    { decision: 'allowed', user: 'good-prom' },
    'past its minute, with the global bound used up: reviewed again within its own budget',
  );
  t.is(auth.reviews, reviews + 1);
  t.is(
    (await auth.authorize('Bearer good-never-seen', prometheus)).decision,
    'busy',
    'a token never allowed is not',
  );
  t.is(auth.reviews, reviews + 1);
});

// The reviewer's reproduction. Before: re-reviews competed with the flood for the global bound, the
// allowed decision was served stale for STALE_ALLOWED_MS, then every scrape was answered 429.
test('a sustained flood from 20 pods, each within its own budget, never keeps Prometheus out, and costs the API server no more than the bounds', async (t) => {
  const clock = new FakeClock(0);
  const auth = new MetricsAuthorizer({ kc: fakeApiServer().kc, logger: silentLogger(), clock });
  const prometheus = '10.200.0.1';
  t.is((await auth.authorize('Bearer good-prom', prometheus)).decision, 'allowed');
  const scrapes: string[] = [];
  let n = 0;
  const minutes = 10;
  // Each pod sends one made-up token a second, in all twice the global bound.
  for (let ms = 0; ms <= minutes * 60_000; ms += 50) {
    clock.set(ms);
    await auth.authorize(`Bearer made-up-${n++}`, address((ms / 50) % 20));
    if (ms % 30_000 === 0 && ms > 0)
      scrapes.push((await auth.authorize('Bearer good-prom', prometheus)).decision);
  }
  t.deepEqual(new Set(scrapes), new Set(['allowed']), 'every scrape answered');
  // The global bound (burst, then 10 a second) for the flood, and Prometheus' one a minute.
  const bound =
    REVIEWS_PER_SECOND.burst + (minutes * 60_000) / REVIEWS_PER_SECOND.refillEveryMs + 1 + minutes;
  t.true(auth.reviews <= bound, `${auth.reviews} reviews, at most ${bound}`);
});

test('past its own budget a token allowed a moment ago is served as it was, for STALE_ALLOWED_MS at the most', async (t) => {
  const clock = new FakeClock(0);
  const auth = new MetricsAuthorizer({ kc: fakeApiServer().kc, logger: silentLogger(), clock });
  const scrapers = 2 * RE_REVIEWS_PER_SECOND.burst;
  const scrape = async (i: number) => (await auth.authorize(`Bearer good-${i}`, address(1000 + i))).decision;
  for (let i = 0; i < scrapers; i += 1) t.is(await scrape(i), 'allowed');
  const useUpGlobalBound = async (tag: string) => {
    for (let i = 0; i <= REVIEWS_PER_SECOND.burst; i += 1)
      await auth.authorize(`Bearer junk-${tag}-${i}`, address(i));
  };
  clock.set(ALLOW_TTL_MS + 1);
  await useUpGlobalBound('a');
  let reviews = auth.reviews;
  for (let i = 0; i < scrapers; i += 1) t.is(await scrape(i), 'allowed', `scraper ${i}`);
  t.is(
    auth.reviews,
    reviews + RE_REVIEWS_PER_SECOND.burst,
    'as many reviewed again as the budget allows, the others served from their decision',
  );
  // Past STALE_ALLOWED_MS from their decision, those never reviewed again are not served.
  clock.set(STALE_ALLOWED_MS);
  await useUpGlobalBound('b');
  reviews = auth.reviews;
  const late = [];
  for (let i = 0; i < scrapers; i += 1) late.push(await scrape(i));
  t.deepEqual(late, [
    ...Array(RE_REVIEWS_PER_SECOND.burst).fill('allowed'),
    ...Array(scrapers - RE_REVIEWS_PER_SECOND.burst).fill('busy'),
  ]);
  t.is(auth.reviews, reviews + RE_REVIEWS_PER_SECOND.burst, 'those reviewed a minute later: again');
});

test('allowed decisions are dropped least recently used first: a scraper that keeps reading stays', async (t) => {
  const clock = new FakeClock(0);
  const api = fakeApiServer();
  const auth = new MetricsAuthorizer({ kc: api.kc, logger: silentLogger(), clock });
  t.is((await auth.authorize('Bearer good-prom', '10.200.0.1')).decision, 'allowed');
  for (let i = 0; i < MAX_ALLOWED_ENTRIES; i += 1) {
    t.is((await auth.authorize(`Bearer good-${i}`, address(i))).decision, 'allowed');
    await auth.authorize('Bearer good-prom', '10.200.0.1');
    clock.advance(REVIEWS_PER_SECOND.refillEveryMs);
  }
  const reviews = auth.reviews;
  await auth.authorize('Bearer good-prom', '10.200.0.1');
  t.is(auth.reviews, reviews, 'used all along: kept');
  await auth.authorize('Bearer good-0', address(0));
  t.is(auth.reviews, reviews + 1, 'the least recently used one was dropped');
});

// A review: re-reviews of allowed tokens, under way at once, counted against the 16 slots of first
// reviews, so a new scraper was answered 429 while the API server was slow to answer them.
test('re-reviews under way do not take the slots of first reviews', async (t) => {
  const slow: { hold?: Promise<void> } = {};
  const api = fakeApiServer(slow);
  const clock = new FakeClock(0);
  const authorizer = new MetricsAuthorizer({ kc: api.kc, logger: silentLogger(), clock });
  const scrapers = Array.from({ length: 20 }, (_, i) => `Bearer good-${i}`);
  for (const [i, token] of scrapers.entries()) {
    t.is((await authorizer.authorize(token, address(i))).decision, 'allowed');
  }
  clock.advance(ALLOW_TTL_MS + 1);
  let release = () => {};
  slow.hold = new Promise<void>((resolve) => {
    release = resolve;
  });
  // The API server is slow: the scrapers' re-reviews pile up within their own budget.
  const reReviews: Promise<unknown>[] = [];
  for (const [i, token] of scrapers.entries()) {
    if (i > 0 && i % RE_REVIEWS_PER_SECOND.burst === 0) clock.advance(1_000);
    reReviews.push(authorizer.authorize(token, address(i)));
  }
  t.true(
    api.requests.length - scrapers.length * 2 >= MAX_REVIEWS_IN_FLIGHT,
    'as many re-reviews under way as the first-review slots',
  );
  const newcomer = authorizer.authorize('Bearer good-new', address(500));
  release();
  t.is((await newcomer).decision, 'allowed', 'a new scraper is reviewed, not answered 429');
  await Promise.all(reReviews);
});
