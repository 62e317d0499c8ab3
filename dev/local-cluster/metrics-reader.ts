// A ServiceAccount token that may read the operator's /metrics, as Prometheus' own: the ServiceAccount
// is created, the ClusterRole vaultpam-connector-operator-metrics-reader (manifests/rbac.yaml) bound to
// it, and a token requested with the TokenRequest API. Shared by the tests and the scale benchmark,
// which read the operator's metrics as an installed Prometheus does.
import {
  AuthorizationV1Api,
  CoreV1Api,
  type KubeConfig,
  RbacAuthorizationV1Api,
} from '@kubernetes/client-node';

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
  { reader }: { reader: boolean },
): Promise<string> {
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
  const answer = await core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const token = answer.status?.token;
  if (!token) throw new Error(`no token for ${namespace}/${name}`);
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
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return token;
}
