// The reconcile concurrency limit against a real kube-apiserver that says "too many" itself, through
// API Priority and Fairness: a FlowSchema sends one ServiceAccount's requests to a priority level
// with no seats of its own, none to borrow and no queues (limitResponse Reject), so the API server
// admits that ServiceAccount's requests one at a time and answers the others 429 at once. Nothing
// here fakes a 429: every one comes from APF.
//   1. The operator's client, with an observer, hears every 429 and every served answer; a burst of
//      rejections halves the limit once, the next burst after the cooldown halves it again, and
//      answers served one at a time grow it back.
//   2. A real operator whose ServiceAccount APF throttles counts the 429s in its metrics, lowers its
//      limit, and still brings every Connector to a status.
import { CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import { FakeClock } from '../../src/lib/clock.ts';
import type { RunningOperator } from '../../src/operator/operator.ts';
import { AdaptiveLimit, DEFAULT_WINDOW_MS } from '../../src/operator/runtime/adaptive-limit.ts';
import { kubeClientOf } from '../../src/operator/runtime/kube-access.ts';
import type { KubeClient, KubeRequestInfo } from '../../src/operator/runtime/kube-client.ts';
import { KubeApiError } from '../../src/operator/runtime/kube-errors.ts';
import { RESOURCE_TYPES } from '../../src/operator/runtime/resources.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import {
  connectors,
  OPERATOR_NAMESPACE,
  OPERATOR_SERVICE_ACCOUNT,
  type OperatorEnvironment,
  startOperatorEnvironment,
} from '../helpers/operator-env.ts';

const cluster = useCluster(test);
const FLOWCONTROL = '/apis/flowcontrol.apiserver.k8s.io/v1';

interface ResourceRule {
  verbs: string[];
  apiGroups: string[];
  resources: string[];
  namespaces: string[];
  clusterScope: boolean;
}

/**
 * Makes APF reject concurrent requests of one ServiceAccount (those `rules` match): a priority level
 * with nominalConcurrencyShares 0, nothing lent or borrowed, and no queues, and a FlowSchema that
 * sends the ServiceAccount there ahead of the default `service-accounts` schema (precedence 9000).
 * Both go when the test ends.
 */
async function rejectConcurrentRequests(
  t: ExecutionContext,
  name: string,
  serviceAccount: { namespace: string; name: string },
  rules: ResourceRule[],
): Promise<void> {
  const admin = kubeClientOf(cluster().kc);
  await admin.request({
    method: 'POST',
    path: `${FLOWCONTROL}/prioritylevelconfigurations`,
    body: {
      apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
      kind: 'PriorityLevelConfiguration',
      metadata: { name },
      spec: {
        type: 'Limited',
        limited: {
          nominalConcurrencyShares: 0,
          lendablePercent: 0,
          borrowingLimitPercent: 0,
          limitResponse: { type: 'Reject' },
        },
      },
    },
  });
  t.teardown(() =>
    admin.request({ method: 'DELETE', path: `${FLOWCONTROL}/prioritylevelconfigurations/${name}` }),
  );
  await admin.request({
    method: 'POST',
    path: `${FLOWCONTROL}/flowschemas`,
    body: {
      apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
      kind: 'FlowSchema',
      metadata: { name },
      spec: {
        priorityLevelConfiguration: { name },
        matchingPrecedence: 500,
        distinguisherMethod: { type: 'ByUser' },
        rules: [{ subjects: [{ kind: 'ServiceAccount', serviceAccount }], resourceRules: rules }],
      },
    },
  });
  t.teardown(() => admin.request({ method: 'DELETE', path: `${FLOWCONTROL}/flowschemas/${name}` }));
}

const EVERYTHING: ResourceRule = {
  verbs: ['*'],
  apiGroups: ['*'],
  resources: ['*'],
  namespaces: ['*'],
  clusterScope: true,
};

/** Answers the bursts got, across every burst of a test. */
const totals = { rejected: 0, served: 0 };

/**
 * `count` lists of ConfigMaps at once: how many were answered 429 and how many served. Any other
 * failure (RBAC not yet in the authorizer's cache: 403) throws, after the counts are kept.
 */
async function burst(kube: KubeClient, namespace: string, count: number) {
  const results = await Promise.allSettled(
    Array.from({ length: count }, () => kube.list(RESOURCE_TYPES.configMap, { namespace })),
  );
  const is429 = (r: PromiseSettledResult<unknown>) =>
    r.status === 'rejected' && r.reason instanceof KubeApiError && r.reason.code === 429;
  const rejected = results.filter(is429).length;
  // Served: any answer below 500 but 429, as the client's observer counts them (a 403 too).
  const served = results.filter(
    (r) =>
      r.status === 'fulfilled' ||
      (r.reason instanceof KubeApiError && r.reason.code < 500 && r.reason.code !== 429),
  ).length;
  totals.rejected += rejected;
  totals.served += served;
  const other = results.filter((r) => r.status === 'rejected' && !is429(r)) as PromiseRejectedResult[];
  if (other.length > 0) throw new Error(`not a 429: ${other.map((r) => String(r.reason)).join('; ')}`);
  return { rejected, served };
}

test.serial(
  "the API server's APF rejections reach the client's observer; a burst halves the limit once, served answers grow it back",
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'apf');
    const account = 'throttled';
    await kc
      .makeApiClient(CoreV1Api)
      .createNamespacedServiceAccount({ namespace, body: { metadata: { name: account } } });
    await kc.makeApiClient(RbacAuthorizationV1Api).createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: 'throttled-view' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
        subjects: [{ kind: 'ServiceAccount', name: account, namespace }],
      },
    });
    await rejectConcurrentRequests(t, `vaultpam-test-reject-${process.pid}`, { namespace, name: account }, [
      EVERYTHING,
    ]);

    const clock = new FakeClock(0);
    const limit = new AdaptiveLimit({ max: 16, clock });
    const throttled: Array<KubeRequestInfo & { retryAfterMs: number | undefined }> = [];
    let served = 0;
    const kube = kubeClientOf(
      await cluster().cluster.serviceAccountKubeConfig(namespace, account),
    ).withObserver({
      throttled: (request, retryAfterMs) => {
        throttled.push({ ...request, retryAfterMs });
        limit.throttled(retryAfterMs);
      },
      served: () => {
        served += 1;
        limit.served();
      },
    });

    // The API server applies a new FlowSchema a moment after it is created: burst until APF rejects.
    // Time does not move on the limit's clock meanwhile, so however many bursts that takes, the
    // rejections fall within one cooldown: one halving.
    const first = await eventually(
      async () => {
        const b = await burst(kube, namespace, 32);
        return b.rejected > 0 ? b : undefined;
      },
      { description: "APF rejects the ServiceAccount's concurrent requests", timeoutMs: 30_000 },
    );
    t.log(`first burst of 32: ${first.rejected} answered 429, ${first.served} served`);
    t.true(first.served >= 1, 'one at a time is admitted');
    t.is(throttled.length, totals.rejected, 'the observer heard every 429');
    t.is(served, totals.served, 'and every answer served');
    t.true(
      throttled.every((r) => r.verb === 'list' && r.resource === 'configmaps'),
      JSON.stringify(throttled[0]),
    );
    const retryAfters = [...new Set(throttled.map((r) => r.retryAfterMs))];
    t.log(`Retry-After of the 429s: ${retryAfters.join(', ')} ms`);
    t.true(
      retryAfters.every((ms) => typeof ms === 'number' && ms > 0),
      'APF says when to come back',
    );
    t.is(limit.current, 8, 'one burst of rejections: one halving');

    // After the cooldown (the longest Retry-After, at least a window) the next burst halves again.
    const cooldown = Math.max(DEFAULT_WINDOW_MS, ...retryAfters.map((ms) => ms ?? 0));
    clock.advance(cooldown);
    const second = await eventually(async () => {
      const b = await burst(kube, namespace, 32);
      return b.rejected > 0 ? b : undefined;
    });
    t.log(`second burst: ${second.rejected} answered 429`);
    t.is(limit.current, 4);

    // Requests one at a time are all admitted: each second with one served and no 429, one more.
    clock.advance(cooldown);
    for (const expected of [5, 6, 7]) {
      await kube.list(RESOURCE_TYPES.configMap, { namespace });
      t.is(limit.current, expected);
      clock.advance(DEFAULT_WINDOW_MS);
    }
  },
);

let env: OperatorEnvironment | undefined;
let operator: RunningOperator | undefined;
test.after.always(async () => {
  await env?.stop();
});

async function scrape(): Promise<string> {
  if (!env || !operator) throw new Error('the operator serves no /metrics');
  return (await env.scrapeMetrics(operator)).text;
}

const sample = (text: string, series: string) =>
  text
    .split('\n')
    .filter((line) => line.startsWith(series))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);

test.serial(
  'an operator that APF throttles counts the 429s, lowers its limit, and still gives every Connector a status',
  async (t) => {
    env = await startOperatorEnvironment(cluster());
    // The operator's writes: what its passes send. Not its reads (informers that cannot list
    // only delay the start, each with its own backoff) nor its Lease (a leader that cannot renew
    // stops acting, which is leader election's business, not this test's).
    await rejectConcurrentRequests(
      t,
      `vaultpam-test-operator-${process.pid}`,
      { namespace: OPERATOR_NAMESPACE, name: OPERATOR_SERVICE_ACCOUNT },
      [
        {
          ...EVERYTHING,
          verbs: ['create', 'update', 'patch', 'delete'],
          apiGroups: ['', 'apps', 'vaultpam.io', 'events.k8s.io'],
        },
      ],
    );
    // The operator may dry-run a ConfigMap in its own namespace: concurrent dry runs show when APF
    // has taken the FlowSchema in (a dry run writes nothing).
    const probe = kubeClientOf(env.operatorKubeConfig);
    await eventually(
      async () => {
        const results = await Promise.allSettled(
          Array.from({ length: 32 }, (_, i) =>
            probe.create(
              RESOURCE_TYPES.configMap,
              { metadata: { namespace: OPERATOR_NAMESPACE, name: `apf-probe-${i}` } },
              { dryRun: 'All' },
            ),
          ),
        );
        return results.some((r) => r.status === 'rejected' && (r.reason as KubeApiError).code === 429);
      },
      { description: "APF rejects the operator's concurrent writes" },
    );

    const namespace = await createTestNamespace(cluster().kc, 'apf-op');
    const names = Array.from({ length: 12 }, (_, i) => `c${i}`);
    const logs = captureLogs('operator', 'info');
    operator = await env.startOperator({ concurrency: 16, logger: logs.logger });
    t.is(operator.concurrencyLimit.max, 16);
    const api = connectors(cluster().kc);
    await Promise.all(
      names.map((name) =>
        api.create(namespace, {
          metadata: { name, namespace },
          spec: { connector: { org: 'acme', endpointId: name, allowedNetworks: ['10.0.0.0/8'] } },
        }),
      ),
    );

    const text = await eventually(
      async () => {
        const scraped = await scrape();
        return sample(scraped, 'vaultpam_operator_kubernetes_throttled_total{') > 0 ? scraped : undefined;
      },
      { description: 'the operator counted a 429' },
    );
    t.log(
      `429s counted: ${text
        .split('\n')
        .filter((l) => l.startsWith('vaultpam_operator_kubernetes_throttled_total{'))
        .join('; ')}`,
    );
    // The limit fell, and said so; the gauge shows the limit now (which may have grown back since).
    const lowered = logs
      .records()
      .filter((r) => r.msg === 'the API server answered 429: fewer reconciles at once');
    t.true(lowered.length >= 1, logs.text());
    t.like(lowered[0], { concurrencyLimit: 8, previous: 16, max: 16 });
    const limitNow = sample(await scrape(), 'vaultpam_operator_work_queue_concurrency_limit ');
    t.true(limitNow >= 1 && limitNow <= 16, `the gauge: ${limitNow}`);

    // Throttled, the operator still gets through: every Connector has a phase.
    await eventually(
      async () => {
        for (const name of names) if (!(await api.get(namespace, name)).status?.phase) return undefined;
        return true;
      },
      { description: 'every Connector has a phase', timeoutMs: 90_000, intervalMs: 500 },
    );
    t.pass();
  },
);
