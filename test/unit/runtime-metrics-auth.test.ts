// The /metrics authorizer's cache, with a stand-in for the API server's two reviews (the reviews
// themselves are tested against the real API server in test/cluster/metrics-auth.test.ts): how long
// a decision is kept, that a 503 is not, that one token is reviewed once at a time, and that a flood
// of made-up tokens neither grows the cache past its bound nor sends more than a few reviews at once.
import test from 'ava';
import { silentLogger } from '../../src/lib/logger.ts';
import type { KubeClient, KubeRequest } from '../../src/operator/runtime/kube-client.ts';
import {
  ALLOW_TTL_MS,
  bearerToken,
  DENY_TTL_MS,
  MAX_ENTRIES,
  MAX_REVIEWS_IN_FLIGHT,
  MetricsAuthorizer,
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

test('decisions are kept 60 s when allowed, 10 s when refused, and a 503 not at all', async (t) => {
  let now = 0;
  let down = false;
  const api = fakeApiServer({ down: () => down });
  const auth = new MetricsAuthorizer({ kc: api.kc, logger: silentLogger(), now: () => now });
  t.is((await auth.authorize('Bearer good-1')).decision, 'allowed');
  t.is((await auth.authorize('Bearer stranger-1')).decision, 'forbidden');
  t.is((await auth.authorize('Bearer made-up')).decision, 'unauthenticated');
  t.is(auth.reviews, 3);
  now = DENY_TTL_MS - 1;
  await auth.authorize('Bearer good-1');
  await auth.authorize('Bearer stranger-1');
  t.is(auth.reviews, 3, 'all three cached');
  now = DENY_TTL_MS + 1;
  await auth.authorize('Bearer stranger-1');
  await auth.authorize('Bearer good-1');
  t.is(auth.reviews, 4, 'the refusal asked again, the allowed one not');
  now = ALLOW_TTL_MS + 1;
  down = true;
  t.is(
    (await auth.authorize('Bearer good-1')).decision,
    'unavailable',
    'expired, and the API server is down',
  );
  t.is((await auth.authorize('Bearer good-1')).decision, 'unavailable', 'not cached: asked again');
  t.is(auth.reviews, 6);
  down = false;
  t.is((await auth.authorize('Bearer good-1')).decision, 'allowed', 'back as soon as the API server is');
  t.is((await auth.authorize(undefined)).decision, 'unauthenticated');
  t.is(auth.reviews, 7, 'no token, no review');
});

test('a flood of made-up tokens keeps the cache bounded and the reviews at once few', async (t) => {
  const auth = new MetricsAuthorizer({ kc: fakeApiServer().kc, logger: silentLogger() });
  for (let i = 0; i < MAX_ENTRIES * 3; i += 1) await auth.authorize(`Bearer random-${i}`);
  t.is(auth.cachedDecisions, MAX_ENTRIES);
  t.is(auth.reviews, MAX_ENTRIES * 3);

  let release = () => {};
  const hold = new Promise<void>((resolve) => {
    release = resolve;
  });
  const api = fakeApiServer({ hold });
  const held = new MetricsAuthorizer({ kc: api.kc, logger: silentLogger() });
  const answers = Array.from({ length: 40 }, (_, i) => held.authorize(`Bearer random-${i}`));
  const same = [held.authorize('Bearer random-0'), held.authorize('Bearer random-0')];
  release();
  const decisions = (await Promise.all(answers)).map((a) => a.decision);
  t.is(decisions.filter((d) => d === 'busy').length, 40 - MAX_REVIEWS_IN_FLIGHT);
  t.is(held.reviews, MAX_REVIEWS_IN_FLIGHT, 'the same token waits for its review under way');
  t.deepEqual(
    (await Promise.all(same)).map((a) => a.decision),
    ['unauthenticated', 'unauthenticated'],
  );
});
