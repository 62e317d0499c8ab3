// A ServiceAccount token that may read the operator's /metrics, as Prometheus' own: the ServiceAccount
// is created, the ClusterRole vaultpam-connector-operator-metrics-reader (manifests/rbac.yaml) bound to
// it, and a token requested with the TokenRequest API. Shared by the tests and the scale benchmark,
// which read the operator's metrics as an installed Prometheus does. A token expires (an hour here);
// a reader that runs longer (the benchmark at 10,000 Connectors) asks metricsTokenSource, which
// requests a new one before the old one's end, as kubelet renews a pod's projected token.
import {
  AuthorizationV1Api,
  CoreV1Api,
  type KubeConfig,
  RbacAuthorizationV1Api,
} from '@kubernetes/client-node';
import { backgroundClock, type Clock } from '../../src/lib/clock.ts';

export const METRICS_READER_ROLE = 'vaultpam-connector-operator-metrics-reader';

/**
 * A ServiceAccount `name` in `namespace` (created, with the namespace, if missing) and a token of it
 * from the TokenRequest API, as Prometheus' pod has; with `reader`, the ClusterRole
 * vaultpam-connector-operator-metrics-reader bound to it first (manifests/rbac.yaml ships the role).
 * Waits until the API server's authorizer sees the binding, so the first scrape is not refused.
 */
export async function serviceAccountToken(
  kc: KubeConfig,
  namespace: string,
  name: string,
  { reader, clock = backgroundClock }: { reader: boolean; clock?: Clock },
): Promise<string> {
  return (await serviceAccountTokenWithExpiry(kc, namespace, name, { reader, clock })).token;
}

/** How long a token is asked for. */
export const TOKEN_LIFETIME_SECONDS = 3600;
/** A token is renewed once this share of its life has passed (kubelet's own rule for projected tokens). */
const RENEW_AT_FRACTION = 0.8;

/**
 * The token of serviceAccountToken, renewed: each call answers the current token, after requesting a
 * new one when 80% of the current one's life has passed (the ServiceAccount and its binding are made
 * once).
 */
export function metricsTokenSource(
  kc: KubeConfig,
  namespace: string,
  name: string,
  options: { reader: boolean; clock?: Clock },
): () => Promise<string> {
  const clock = options.clock ?? backgroundClock;
  return renewedToken(
    (first) =>
      (first
        ? serviceAccountTokenWithExpiry(kc, namespace, name, { reader: options.reader, clock })
        : requestToken(kc, namespace, name, clock)
      ).then(({ token, issuedAt, expiresAt }) => ({ token, lifetimeMs: expiresAt - issuedAt })),
    clock,
  );
}

/**
 * A token from `ask`, asked again once RENEW_AT_FRACTION of its lifetime (counted on `clock` from
 * when it was asked for) has passed. Calls while a request is under way wait for it; a failed
 * request is made again by the next call.
 */
export function renewedToken(
  ask: (first: boolean) => Promise<{ token: string; lifetimeMs: number }>,
  clock: Clock,
): () => Promise<string> {
  let current: Promise<{ token: string; renewAt: number }> | undefined;
  let asked = false;
  const request = () => {
    const at = clock.now().getTime();
    const first = !asked;
    asked = true;
    const pending = ask(first).then(({ token, lifetimeMs }) => ({
      token,
      renewAt: at + lifetimeMs * RENEW_AT_FRACTION,
    }));
    current = pending;
    pending.catch(() => {
      if (current === pending) current = undefined;
      if (first) asked = false;
    });
    return pending;
  };
  return async () => {
    const pending = current ?? request();
    const held = await pending;
    if (clock.now().getTime() < held.renewAt) return held.token;
    // Another call may have started the renewal already: wait for that one.
    const renewal = current && current !== pending ? current : request();
    return (await renewal).token;
  };
}

async function requestToken(
  kc: KubeConfig,
  namespace: string,
  name: string,
  clock: Clock,
): Promise<{ token: string; issuedAt: number; expiresAt: number }> {
  const issuedAt = clock.now().getTime();
  const answer = await kc.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: [], expirationSeconds: TOKEN_LIFETIME_SECONDS } },
  });
  const token = answer.status?.token;
  if (!token) throw new Error(`no token for ${namespace}/${name}`);
  // The API server may shorten the lifetime it was asked for: its own answer says when it ends.
  const expiresAt = answer.status?.expirationTimestamp
    ? new Date(answer.status.expirationTimestamp).getTime()
    : issuedAt + TOKEN_LIFETIME_SECONDS * 1000;
  return { token, issuedAt, expiresAt };
}

async function serviceAccountTokenWithExpiry(
  kc: KubeConfig,
  namespace: string,
  name: string,
  { reader, clock }: { reader: boolean; clock: Clock },
): Promise<{ token: string; issuedAt: number; expiresAt: number }> {
  const core = kc.makeApiClient(CoreV1Api);
  const ignoreConflict = (error: unknown) => {
    if ((error as { code?: number }).code !== 409) throw error;
  };
  await core.createNamespace({ body: { metadata: { name: namespace } } }).catch(ignoreConflict);
  await core
    .createNamespacedServiceAccount({ namespace, body: { metadata: { name } } })
    .catch(ignoreConflict);
  if (reader) {
    await kc
      .makeApiClient(RbacAuthorizationV1Api)
      .createClusterRoleBinding({
        body: {
          metadata: { name: `${METRICS_READER_ROLE}-${namespace}-${name}` },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: METRICS_READER_ROLE },
          subjects: [{ kind: 'ServiceAccount', name, namespace }],
        },
      })
      .catch(ignoreConflict);
  }
  const issued = await requestToken(kc, namespace, name, clock);
  if (reader) {
    const authz = kc.makeApiClient(AuthorizationV1Api);
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const review = await authz.createSubjectAccessReview({
        body: {
          spec: {
            user: `system:serviceaccount:${namespace}:${name}`,
            groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
            nonResourceAttributes: { path: '/metrics', verb: 'get' },
          },
        },
      });
      if (review.status?.allowed) break;
      await new Promise<void>((resolve) => clock.setTimeout(resolve, 100));
    }
  }
  return issued;
}
