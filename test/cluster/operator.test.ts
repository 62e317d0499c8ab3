// The operator against the real API server and the real control plane, running as its
// ServiceAccount with the shipped RBAC: what it creates, what it writes into status, when it
// deletes the token, that it stays quiet when nothing changes, and what its finalizer does.
import { AppsV1Api, CoreV1Api, EventsV1Api } from '@kubernetes/client-node';
import test from 'ava';
import { usableAdminCredential } from '../../src/controlplane/server.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import type { RunningOperator } from '../../src/operator/operator.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually, isGone } from '../helpers/eventually.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { connectors, type OperatorEnvironment, startOperatorEnvironment } from '../helpers/operator-env.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;
let operator: RunningOperator;

// Every log line of the operator and the control plane, at debug level, to scan for secrets.
const logs = captureLogs('operator-test', 'debug');

test.serial.before(async () => {
  env = await startOperatorEnvironment(cluster(), { logger: logs.logger });
  operator = await env.startOperator();
});
test.after.always(async () => {
  await env?.stop();
});

const spec = { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] } };
const condition = (c: Connector, type: string) => c.status?.conditions?.find((x) => x.type === type);

/** The Event with this reason recorded for the Connector "edge" in the namespace, if there is one. */
async function connectorEvent(namespace: string, reason: string) {
  const list = await cluster().kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
  return list.items.find((e) => e.regarding?.name === 'edge' && e.reason === reason);
}

test.serial(
  'apply a Connector: ConfigMap, StatefulSet with a claim, token Secret, Pending status',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'op');
    const api = connectors(kc);
    await api.create(namespace, { metadata: { name: 'edge', namespace }, spec });
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);

    const secret = await eventually(
      () => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' }),
      {
        description: 'token Secret',
      },
    );
    const token = Buffer.from(secret.data?.token ?? '', 'base64').toString();
    t.regex(token, /^vpe_[0-9a-f]{16}_/);
    t.truthy(secret.metadata?.annotations?.['vaultpam.io/token-expires-at']);
    t.is(secret.metadata?.ownerReferences?.[0]?.kind, 'Connector');

    // The pass writes the token Secret before the workload (plan.ts: the agent's first start finds
    // its token), so the ConfigMap and StatefulSet may still be on their way when the Secret is seen.
    const configMap = await eventually(
      () => core.readNamespacedConfigMap({ namespace, name: 'edge-config' }),
      {
        description: 'ConfigMap',
      },
    );
    t.is(configMap.data?.['connector-id'], `${namespace}.edge`);
    t.is(configMap.data?.['ca.crt'], env.controlPlane.caPem);
    const sts = await eventually(() => apps.readNamespacedStatefulSet({ namespace, name: 'edge' }), {
      description: 'StatefulSet',
    });
    t.is(sts.spec?.replicas, 1);
    t.is(sts.spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.storage, '1Gi');
    const podSpec = sts.spec?.template?.spec;
    const agent = podSpec?.containers?.find((c) => c.name === 'connector');
    t.true(agent?.securityContext?.readOnlyRootFilesystem);
    t.is(agent?.securityContext?.allowPrivilegeEscalation, false);
    t.deepEqual(agent?.securityContext?.capabilities?.drop, ['ALL']);
    t.true(podSpec?.securityContext?.runAsNonRoot);
    t.is(agent?.env?.find((e) => e.name === 'PAM_AGENT_DATA_DIR')?.value, '/data');
    const dataMount = agent?.volumeMounts?.find((m) => m.mountPath === '/data');
    t.is(sts.spec?.volumeClaimTemplates?.[0]?.metadata?.name, dataMount?.name, '/data is the claim template');
    t.false(
      (podSpec?.volumes ?? []).some((v) => v.name === dataMount?.name),
      'no pod volume shadows the claim at /data',
    );
    const tokenVolume = podSpec?.volumes?.find((v) => v.secret?.secretName === 'edge-enrollment-token');
    t.true(tokenVolume?.secret?.optional, 'the token Secret is an optional mount: the pod starts without it');
    t.true(agent?.volumeMounts?.some((m) => m.name === tokenVolume?.name && m.readOnly));
    t.is(agent?.readinessProbe?.httpGet?.path, '/readyz');
    t.is(agent?.livenessProbe?.httpGet?.path, '/healthz');
    t.is(agent?.startupProbe?.httpGet?.path, '/healthz');
    t.false(podSpec?.automountServiceAccountToken, 'the agent gets no Kubernetes credential');
    await eventually(() => core.readNamespacedPersistentVolumeClaim({ namespace, name: 'data-edge-0' }), {
      description: 'the StatefulSet controller creates the claim',
    });

    const record = await env.admin.getConnector(`${namespace}.edge`);
    t.is(record.state, 'pending');
    t.deepEqual(record.allowedNetworks, ['10.0.0.0/8']);
    t.truthy(record.liveToken);

    const connector = await eventually(
      async () => {
        const c = await api.get(namespace, 'edge');
        return condition(c, 'Enrolled')?.reason === 'TokenMinted' ? c : undefined;
      },
      { description: 'status shows the minted token' },
    );
    t.is(connector.status?.phase, 'Pending');
    t.is(connector.status?.observedGeneration, connector.metadata.generation);
    t.true(connector.metadata.finalizers?.includes('vaultpam.io/connector-cleanup'));
    t.is(connector.status?.enrollment?.tokenSecretName, 'edge-enrollment-token');

    // The metrics follow what the operator did and saw.
    // (the phase gauge reads the informer cache, which may trail the read above by a moment).
    const sample = (scrape: string, name: string) =>
      Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(scrape)?.[1] ?? 'NaN');
    const scrape = await eventually(
      async () => {
        const text = await operator.metrics.registry.metrics();
        return sample(text, 'vaultpam_operator_connectors\\{phase="Pending"\\}') >= 1 ? text : undefined;
      },
      { description: 'the Pending Connector counted by phase' },
    );
    t.true(sample(scrape, 'vaultpam_operator_enrollment_tokens_minted_total') >= 1, 'the mint was counted');
    t.true(sample(scrape, 'vaultpam_operator_work_queue_depth') >= 0, 'the queue depth is exposed');

    // The token is in the Secret and nowhere else the operator writes.
    const events = await kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
    assertNoSecrets(
      t,
      'status, ConfigMap, StatefulSet and Events',
      JSON.stringify([connector, configMap, sts, events.items]),
      [token],
    );
    t.true(logs.lines().length > 10, 'the operator logged at debug level');
    assertNoSecrets(t, 'operator and control-plane logs', logs.text(), [
      token,
      usableAdminCredential(env.controlPlane),
    ]);
  },
);

test.serial(
  'the agent pairs: status goes Online, bootstrap retires, the token Secret is deleted',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'pair');
    const api = connectors(kc);
    await api.create(namespace, { metadata: { name: 'edge', namespace }, spec });
    const core = kc.makeApiClient(CoreV1Api);
    await eventually(() => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' }), {
      description: 'token Secret',
    });
    const pod = await env.runAgent(namespace, 'edge');
    t.teardown(() => pod.stop());

    const online = await eventually(
      async () => {
        const c = await api.get(namespace, 'edge');
        return c.status?.phase === 'Online' && c.status.enrollment?.retired ? c : undefined;
      },
      { description: 'Connector Online and retired' },
    );
    t.is(condition(online, 'Enrolled')?.reason, 'BootstrapRetired');
    t.is(condition(online, 'Healthy')?.status, 'True');
    t.truthy(online.status?.identity?.certificateSerial);
    t.is(online.status?.lastHeartbeatTime, undefined, 'no time shown while heartbeats arrive');
    await eventually(
      () => isGone(() => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' })),
      { description: 'token Secret deleted on retirement' },
    );
    const record = await env.admin.getConnector(`${namespace}.edge`);
    t.is(record.liveToken, null);

    // Every transition left an Event on the Connector, in order.
    let seen: string[] = [];
    const reasons = await eventually(
      async () => {
        const list = await kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
        seen = list.items
          .filter((e) => e.regarding?.kind === 'Connector' && e.regarding.name === 'edge')
          .sort((a, b) => new Date(a.eventTime ?? 0).getTime() - new Date(b.eventTime ?? 0).getTime())
          .map((e) => e.reason ?? '');
        // The Secret goes once its token is spent: TokenConsumed when a pass saw the pairing before
        // the first heartbeat, BootstrapRetired when the first pass after it already saw the record
        // retired (the token is minted in the first pass, so a fast agent pairs and beats between
        // two passes: found in CI under load).
        const secretGone = seen.includes('TokenConsumed') || seen.includes('BootstrapRetired');
        return seen.includes('PhaseOnline') && secretGone ? seen : undefined;
      },
      { description: 'phase and token Events' },
    ).catch((error: Error) => {
      throw new Error(`${error.message}; Events seen: ${seen.join(', ')}`);
    });
    // A new Connector starts Pending: no Event for that, the TokenMinted of its first pass says it.
    t.false(reasons.includes('PhasePending'), reasons.join(', '));
    t.true(reasons.includes('TokenMinted'), reasons.join(', '));
    t.true(reasons.indexOf('TokenMinted') < reasons.indexOf('PhaseOnline'), reasons.join(', '));
    // Enrolling shows when a pass happened to see the connector between pairing and first heartbeat.
    if (reasons.includes('PhaseEnrolling')) {
      t.true(reasons.indexOf('TokenMinted') < reasons.indexOf('PhaseEnrolling'), reasons.join(', '));
      t.true(reasons.indexOf('PhaseEnrolling') < reasons.indexOf('PhaseOnline'), reasons.join(', '));
    }

    // The operator never writes spec: its field manager owns status and the finalizer, nothing else.
    const managed = (await api.get(namespace, 'edge')).metadata.managedFields ?? [];
    const operatorFields = managed.filter((m) => m.manager === 'vaultpam-connector-operator');
    t.true(operatorFields.length > 0, 'the operator applied something');
    for (const entry of operatorFields) {
      t.false(
        JSON.stringify(entry.fieldsV1 ?? {}).includes('"f:spec"'),
        `${entry.subresource ?? 'main'} has no spec`,
      );
    }
  },
);

test.serial(
  'the token Secret deleted by hand before the agent pairs: its live token is stored again, no new one minted',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'resecret');
    const api = connectors(kc);
    await api.create(namespace, { metadata: { name: 'edge', namespace }, spec });
    const core = kc.makeApiClient(CoreV1Api);
    const name = 'edge-enrollment-token';
    const tokenOf = (secret: { data?: Record<string, string> }) =>
      Buffer.from(secret.data?.token ?? '', 'base64').toString();
    const first = await eventually(() => core.readNamespacedSecret({ namespace, name }), {
      description: 'token Secret',
    });
    // A pass saw the token live: its expiry is in the status.
    await eventually(
      async () => {
        const c = await api.get(namespace, 'edge');
        return c.status?.enrollment?.tokenSecretName && c.status.enrollment.tokenExpiresAt ? c : undefined;
      },
      { description: 'status names the live token' },
    );
    const live = (await env.admin.getConnector(`${namespace}.edge`)).liveToken;
    t.truthy(live);
    await core.deleteNamespacedSecret({ namespace, name });
    // The operator reads its Secret on a pass, without watching Secrets: a change to the Connector
    // (or its periodic look) brings that pass.
    await api.patchSpec(namespace, 'edge', { metadata: { annotations: { 'example.com/poke': '1' } } });
    const again = await eventually(
      async () => {
        const secret = await core.readNamespacedSecret({ namespace, name }).catch(() => undefined);
        return secret && secret.metadata?.uid !== first.metadata?.uid ? secret : undefined;
      },
      { description: 'the token Secret written again' },
    );
    t.is(tokenOf(again), tokenOf(first), 'the same token');
    t.is(
      again.metadata?.annotations?.['vaultpam.io/token-expires-at'],
      first.metadata?.annotations?.['vaultpam.io/token-expires-at'],
    );
    const record = await env.admin.getConnector(`${namespace}.edge`);
    t.is(record.liveToken?.tokenId, live?.tokenId, 'no new token in the control plane');
    const restored = await eventually(() => connectorEvent(namespace, 'TokenSecretRestored'), {
      description: 'the TokenSecretRestored Event',
    });
    t.regex(restored.note ?? '', /no new token was minted/);
    const connector = await eventually(
      async () => {
        const c = await api.get(namespace, 'edge');
        return c.status?.enrollment?.tokenSecretName ? c : undefined;
      },
      { description: 'status names the Secret again' },
    );
    t.is(connector.status?.enrollment?.mintCount, 1);
    t.is(condition(connector, 'Enrolled')?.reason, 'TokenMinted');

    // The agent pairs with it.
    const pod = await env.runAgent(namespace, 'edge');
    t.teardown(() => pod.stop());
    await eventually(
      async () => {
        const c = await api.get(namespace, 'edge');
        return c.status?.phase === 'Online' ? c : undefined;
      },
      { description: 'Connector Online' },
    );
  },
);

test.serial('deleting a Connector revokes and releases it in the control plane', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'del');
  const api = connectors(kc);
  await api.create(namespace, { metadata: { name: 'edge', namespace }, spec });
  await eventually(() => env.admin.getConnector(`${namespace}.edge`).then((r) => r.liveToken !== null), {
    description: 'record with a live token',
  });
  await api.delete(namespace, 'edge');
  await eventually(() => isGone(() => api.get(namespace, 'edge')), {
    description: 'Connector gone after the finalizer ran',
  });
  const error = await t.throwsAsync(() => env.admin.getConnector(`${namespace}.edge`));
  t.is((error as { code?: string }).code, 'CONNECTOR_NOT_FOUND');
  const released = await eventually(() => connectorEvent(namespace, 'ConnectorReleased'), {
    description: 'ConnectorReleased Event',
  });
  t.regex(released.note ?? '', new RegExp(`released ${namespace}\\.edge in the control plane`));
});

test.serial('a release the control plane answers with no record says so, not that it released', async (t) => {
  // Paused (no pass registers it again), its record deleted on the control plane, then deleted:
  // the release's 404 used to read "revoked live tokens and released", also of a record that is
  // still on another control plane (a legacy Connector's inline one).
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'gone');
  const api = connectors(kc);
  const id = `${namespace}.edge`;
  await api.create(namespace, { metadata: { name: 'edge', namespace }, spec });
  await eventually(() => env.admin.getConnector(id).then((r) => r.liveToken !== null), {
    description: 'record with a live token',
  });
  await api.patchSpec(namespace, 'edge', { spec: { paused: true } });
  await eventually(async () => (await api.get(namespace, 'edge')).status?.observedGeneration === 2, {
    description: 'the pause observed',
  });
  await env.admin.deleteConnector(id);
  await api.delete(namespace, 'edge');
  await eventually(() => isGone(() => api.get(namespace, 'edge')), { description: 'Connector gone' });
  const released = await eventually(() => connectorEvent(namespace, 'ConnectorReleased'), {
    description: 'ConnectorReleased Event',
  });
  t.is(
    released.note,
    `the control plane has no record of ${id}: nothing left to revoke or release there (released before, deleted there, or never registered there)`,
  );
});

test.serial('deletionPolicy Retain keeps the control-plane record but revokes its token', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'keep');
  const api = connectors(kc);
  await api.create(namespace, {
    metadata: { name: 'edge', namespace },
    spec: { ...spec, deletionPolicy: 'Retain' },
  });
  await eventually(() => env.admin.getConnector(`${namespace}.edge`).then((r) => r.liveToken !== null), {
    description: 'record with a live token',
  });
  await api.delete(namespace, 'edge');
  await eventually(() => isGone(() => api.get(namespace, 'edge')), {
    description: 'Connector gone after the finalizer ran',
  });
  const record = await env.admin.getConnector(`${namespace}.edge`);
  t.is(record.liveToken, null, 'no live token outlives the Connector');
  t.is(record.org, 'acme', 'the configuration is kept in the control plane');
  t.is(record.ownerUid, null, 'the record is let go of, so a new Connector of the id can claim it');
  const retained = await eventually(() => connectorEvent(namespace, 'ConnectorRetained'), {
    description: 'ConnectorRetained Event',
  });
  t.regex(retained.note ?? '', /deletionPolicy Retain/);
});

test.serial('a Connector deleted right after it was created goes away without error log lines', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'quick');
  const api = connectors(kc);
  const from = logs.lines().length;
  // Deleted before the operator's cache has seen its finalizer: the next pass must not try to add
  // the finalizer to an object being deleted (the API server refuses that with 422).
  for (let i = 0; i < 5; i += 1) {
    await api.create(namespace, { metadata: { name: `gone-${i}`, namespace }, spec });
    await api.delete(namespace, `gone-${i}`);
  }
  for (let i = 0; i < 5; i += 1) {
    await eventually(() => isGone(() => api.get(namespace, `gone-${i}`)), {
      description: `Connector gone-${i} gone`,
    });
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const errors = logs
    .lines()
    .slice(from)
    .map((line) => JSON.parse(line) as { level: number; msg?: string; err?: string })
    .filter((record) => record.level >= 50);
  t.deepEqual(errors, [], 'no error-level line');
});
