// A guided recovery's one token and its Secret, against the real API server and control plane: the
// Secret deleted by hand after the mint and before the agent paired is stored again with that very
// token (asked again with the recovery's mint key, as the enrollment restores its own), never a
// second token; a token no longer live fails the recovery with the truth instead of waiting; and the
// token-expiry gauge shows the recovery's token while its Secret holds it, as kubectl get's Token
// Expiry column and the minted gauge do.
import { CoreV1Api, EventsV1Api } from '@kubernetes/client-node';
import test from 'ava';
import type { Connector } from '../../src/operator/api/types.ts';
import type { RunningOperator } from '../../src/operator/operator.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { kubectlGetConnector, tableRow } from '../helpers/kubectl-get.ts';
import { connectors, type OperatorEnvironment, startOperatorEnvironment } from '../helpers/operator-env.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;
let operator: RunningOperator;

test.serial.before(async () => {
  env = await startOperatorEnvironment(cluster());
  operator = await env.startOperator({ resyncMs: 60_000 });
});
test.after.always(async () => {
  await env?.stop();
});

const SECRET = 'edge-enrollment-token';
const spec = {
  connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] },
  // The validation restart needs a kubelet to restart the pod; there is none here.
  recovery: { validateRestart: false },
  enrollment: { tokenTTL: '5m' },
};

const tokenOf = (secret: { data?: Record<string, string> }) =>
  Buffer.from(secret.data?.token ?? '', 'base64').toString();

/** The Events of the Connector "edge" with this reason. */
async function events(namespace: string, reason: string) {
  const list = await cluster().kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
  return list.items.filter((e) => e.regarding?.name === 'edge' && e.reason === reason);
}

/** The token-expiry gauge's value for namespace/edge, undefined when it has no series. */
async function tokenExpiryGauge(namespace: string): Promise<number | undefined> {
  const metric = operator.metrics.registry.getSingleMetric(
    'vaultpam_operator_connector_token_expiry_timestamp_seconds',
  );
  const values = (await metric?.get())?.values ?? [];
  return values.find((v) => v.labels.namespace === namespace && v.labels.name === 'edge')?.value;
}

/**
 * The Connector "edge" pairs (the real agent with the operator's token), is Online and retired, goes
 * silent until the control plane says offline, and a guided recovery is asked for: returned once the
 * recovery waits at AwaitingOnline with its one token in the Secret.
 */
async function recoveryAwaitingPairing(prefix: string) {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, prefix);
  const api = connectors(kc);
  const core = kc.makeApiClient(CoreV1Api);
  await api.create(namespace, { metadata: { name: 'edge', namespace }, spec });
  await eventually(() => core.readNamespacedSecret({ namespace, name: SECRET }), { description: 'token' });
  const first = await env.runAgent(namespace, 'edge');
  await eventually(
    () =>
      api
        .get(namespace, 'edge')
        .then((c) => c.status?.phase === 'Online' && c.status.enrollment?.retired === true),
    { description: 'paired and online' },
  );
  await first.stop();
  await eventually(() => api.get(namespace, 'edge').then((c) => c.status?.controlPlaneState === 'offline'), {
    description: 'offline',
  });
  await api.patchSpec(namespace, 'edge', { spec: { recovery: { requestId: 'r1' } } });
  await eventually(
    () =>
      api.get(namespace, 'edge').then((c) => (c.status?.recovery?.step === 'AwaitingOnline' ? c : undefined)),
    { description: 'scaled down, token minted, scaled up to pair', timeoutMs: 60_000 },
  );
  const secret = await core.readNamespacedSecret({ namespace, name: SECRET });
  return { namespace, api, core, secret };
}

/** The Connector "edge" once its recovery ended Failed (its record said, should it not). */
function recoveryFailed(api: ReturnType<typeof connectors>, namespace: string): Promise<Connector> {
  return eventually(
    () => api.get(namespace, 'edge').then((c) => (c.status?.recovery?.step === 'Failed' ? c : undefined)),
    { description: 'the recovery fails', timeoutMs: 30_000 },
  ).catch(async (error: Error) => {
    const c = await api.get(namespace, 'edge');
    throw new Error(`${error.message}; recovery ${JSON.stringify(c.status?.recovery)}`);
  });
}

test.serial(
  "a recovery's token Secret deleted by hand before the agent paired: that token is stored again, no second one, and the agent pairs once",
  async (t) => {
    const { namespace, api, core, secret } = await recoveryAwaitingPairing('rtoken');
    t.is(secret.metadata?.annotations?.['vaultpam.io/mint-key'], 'recovery-r1');
    const connectorId = `${namespace}.edge`;
    const expiresAt = secret.metadata?.annotations?.['vaultpam.io/token-expires-at'] ?? '';
    t.truthy(expiresAt);
    // The gauge shows the recovery's token while its Secret holds it.
    const shown = await eventually(() => tokenExpiryGauge(namespace), {
      description: 'the token-expiry gauge shows the recovery token',
    });
    t.is(shown, Date.parse(expiresAt) / 1000);
    const live = (await env.admin.getConnector(connectorId)).liveToken;
    t.truthy(live);
    const mintsBefore = (await env.admin.audit({ connectorId })).filter(
      (e) => e.type === 'token.minted',
    ).length;

    await core.deleteNamespacedSecret({ namespace, name: SECRET });
    const again = await eventually(
      async () => {
        const s = await core.readNamespacedSecret({ namespace, name: SECRET }).catch(() => undefined);
        return s && s.metadata?.uid !== secret.metadata?.uid ? s : undefined;
      },
      { description: 'the token Secret written again' },
    ).catch(async (error: Error) => {
      const c = await api.get(namespace, 'edge');
      throw new Error(`${error.message}; recovery ${JSON.stringify(c.status?.recovery)}`);
    });
    t.is(tokenOf(again), tokenOf(secret), 'the same token');
    t.is(again.metadata?.annotations?.['vaultpam.io/mint-key'], 'recovery-r1');
    t.is(again.metadata?.annotations?.['vaultpam.io/token-expires-at'], expiresAt);
    t.is((await env.admin.getConnector(connectorId)).liveToken?.tokenId, live?.tokenId, 'no new token');
    // The agent (its data directory lost) pairs once with it; the recovery completes.
    const pod = await env.runAgent(namespace, 'edge');
    t.teardown(() => pod.stop());
    const done = await eventually(
      () =>
        api
          .get(namespace, 'edge')
          .then((c: Connector) => (c.status?.recovery?.step === 'Completed' ? c : undefined)),
      { description: 'recovery completed' },
    );
    t.is(done.status?.recovery?.outcome, 'Succeeded');
    // The recovery's step Events used this Connector's Event budget, so the recorder may have folded
    // this one into the summary it publishes before the next phase Event; either way it is there in full.
    const restored = await eventually(
      async () => {
        const notes = [
          ...(await events(namespace, 'TokenSecretRestored')).map((e) => e.note ?? ''),
          ...(await events(namespace, 'EventsFolded')).map((e) => e.note ?? ''),
        ];
        return notes.find((note) => /TokenSecretRestored|token Secret .* was deleted/.test(note));
      },
      { description: 'the TokenSecretRestored Event' },
    );
    t.regex(
      restored,
      /the enrollment token Secret edge-enrollment-token was deleted while the one token of recovery r1 was live and unused: .*key recovery-r1 .*no new token was minted/,
    );
    t.false(restored.includes(tokenOf(secret)), 'the Event holds no token');
    const audit = await env.admin.audit({ connectorId });
    t.is(audit.filter((e) => e.type === 'token.minted').length, mintsBefore, 'one token for the request');
    // Spent and its Secret gone: the gauge has no series.
    await eventually(async () => (await tokenExpiryGauge(namespace)) === undefined, {
      description: 'the gauge cleared',
    });
  },
);

test.serial(
  "a recovery's token Secret deleted by hand, and its token revoked before the agent paired: the recovery fails and says why, no token minted again",
  async (t) => {
    const { namespace, api, core } = await recoveryAwaitingPairing('rtoken-gone');
    const connectorId = `${namespace}.edge`;
    const mintsBefore = (await env.admin.audit({ connectorId })).filter(
      (e) => e.type === 'token.minted',
    ).length;
    await env.admin.revokeTokens(connectorId);
    await core.deleteNamespacedSecret({ namespace, name: SECRET });
    const failed = await recoveryFailed(api, namespace);
    t.regex(failed.status?.recovery?.reason ?? '', /token Secret .*deleted.*no longer live/);
    const audit = await env.admin.audit({ connectorId });
    t.is(audit.filter((e) => e.type === 'token.minted').length, mintsBefore, 'no token minted again');
    t.is(await tokenExpiryGauge(namespace), undefined);
  },
);

test.serial(
  "a recovery's token Secret deleted by hand, and its token expired before the agent paired: the recovery fails at that expiry instead of waiting for good",
  async (t) => {
    const { namespace, api, core, secret } = await recoveryAwaitingPairing('rtoken-exp');
    const expiresAt = secret.metadata?.annotations?.['vaultpam.io/token-expires-at'] ?? '';
    // The operator stops seeing Secrets for a moment: deleted, and the token expired, both before
    // a pass could store it again.
    await operator.stop({ release: true });
    await core.deleteNamespacedSecret({ namespace, name: SECRET });
    env.clock.offsetMs += 6 * 60_000;
    t.teardown(() => {
      env.clock.offsetMs -= 6 * 60_000;
    });
    operator = await env.startOperator({ resyncMs: 60_000 });
    const failed = await recoveryFailed(api, namespace);
    t.is(
      failed.status?.recovery?.reason,
      `the recovery token expired at ${expiresAt} before the connector paired; set a new spec.recovery.requestId to try again`,
    );
  },
);

/** `kubectl get connectors edge -o wide`'s row, column by column. */
async function kubectlGetWide(namespace: string): Promise<Record<string, string>> {
  return tableRow(
    await kubectlGetConnector(cluster().cluster.kubeconfigPath, namespace, 'edge', '-o', 'wide'),
  );
}

/** The token gauges' series of namespace/edge, as `labels value` for both metrics. */
async function tokenSeries(namespace: string): Promise<Record<string, unknown>> {
  const series: Record<string, unknown> = {};
  for (const name of [
    'vaultpam_operator_connector_token_expiry_timestamp_seconds',
    'vaultpam_operator_connector_token_minted_timestamp_seconds',
  ]) {
    const values = (await operator.metrics.registry.getSingleMetric(name)?.get())?.values ?? [];
    series[name] = values
      .filter((v) => v.labels.namespace === namespace && v.labels.name === 'edge')
      .map((v) => ({ labels: v.labels, value: v.value }));
  }
  return series;
}

test.serial(
  "a recovery's token waiting unused: kubectl get's Token Expiry, status.liveToken and both token gauges name it",
  async (t) => {
    // Before: the column read status.enrollment.tokenExpiresAt, empty for this retired connector
    // while the recovery's token waited in the Secret, and the minted gauge had no series for that
    // token, so VaultpamConnectorTokenExpiringUnused could never fire for it.
    const { namespace, api, secret } = await recoveryAwaitingPairing('rtoken-col');
    const expiresAt = secret.metadata?.annotations?.['vaultpam.io/token-expires-at'] ?? '';
    const storedAt = new Date(secret.metadata?.creationTimestamp ?? 0).toISOString();
    const connector = await eventually(
      () => api.get(namespace, 'edge').then((c) => (c.status?.liveToken ? c : undefined)),
      { description: 'status.liveToken written' },
    );
    t.true(connector.status?.enrollment?.retired);
    t.deepEqual(connector.status?.liveToken, { expiresAt, mintedAt: storedAt, mintedFor: 'Recovery' });
    t.is(connector.status?.recovery?.tokenMintedAt, storedAt);
    t.is((await kubectlGetWide(namespace))['TOKEN EXPIRY'], expiresAt);
    const labels = { namespace, name: 'edge', minted_for: 'recovery' };
    t.deepEqual(await tokenSeries(namespace), {
      vaultpam_operator_connector_token_expiry_timestamp_seconds: [
        { labels, value: Date.parse(expiresAt) / 1000 },
      ],
      vaultpam_operator_connector_token_minted_timestamp_seconds: [
        { labels, value: Date.parse(storedAt) / 1000 },
      ],
    });

    // Paired: no live token, and the column and gauges say so.
    const agent = await env.runAgent(namespace, 'edge');
    t.teardown(() => agent.stop());
    const after = await eventually(
      () =>
        api
          .get(namespace, 'edge')
          .then((c) => (c.status?.phase === 'Online' && !c.status.liveToken ? c : undefined)),
      { description: 'paired: no live token', timeoutMs: 60_000 },
    );
    t.is(after.status?.enrollment?.tokenSecretName, undefined);
    t.is((await kubectlGetWide(namespace))['TOKEN EXPIRY'], '', 'an empty cell');
    t.deepEqual(await tokenSeries(namespace), {
      vaultpam_operator_connector_token_expiry_timestamp_seconds: [],
      vaultpam_operator_connector_token_minted_timestamp_seconds: [],
    });
  },
);
