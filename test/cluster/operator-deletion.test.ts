// Deleting never hangs: a Connector's finalizer releases its control-plane record with what the
// deletion does not remove (the credential the connection last used, kept in memory), retries a
// control plane that cannot be reached only until the release timeout, and then lets go anyway with
// a trace (ReleaseAbandoned Event, metric, warn log). Against the real API server and the namespace
// controller of the real controller-manager: `kubectl delete namespace` finishes.

import type { AddressInfo } from 'node:net';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { CoreV1Api, EventsV1Api } from '@kubernetes/client-node';
import test from 'ava';
import { usableAdminCredential } from '../../src/controlplane/server.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import type { RunningOperator } from '../../src/operator/operator.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually, isGone } from '../helpers/eventually.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import {
  connectors,
  controlPlaneResources,
  type OperatorEnvironment,
  readyOf,
  startOperatorEnvironment,
} from '../helpers/operator-env.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;
let operator: RunningOperator;
const logs = captureLogs('operator-deletion', 'debug');

/** Short, so a test of the bound takes seconds; the default is 5 minutes. */
const RELEASE_TIMEOUT_MS = 4_000;
/** The documented bound plus what the API server, the informers and the namespace controller take. */
const SLACK_MS = 60_000;

test.serial.before(async () => {
  env = await startOperatorEnvironment(cluster(), { logger: logs.logger });
  operator = await env.startOperator({ releaseTimeoutMs: RELEASE_TIMEOUT_MS });
});
/** Relays still up when the file ends. */
const relays: Array<() => Promise<void>> = [];
test.after.always(async () => {
  for (const down of relays) await down();
  await env?.stop();
});

/** A TCP relay to the reference control plane: the ControlPlane's URL, and a switch to take it down. */
interface Relay {
  url: string;
  down(): Promise<void>;
}

async function startRelay(targetUrl: string): Promise<Relay> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let closed = false;
  const down = async () => {
    if (closed) return;
    closed = true;
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  relays.push(down);
  return { url: `https://127.0.0.1:${port}`, down };
}

const spec = { connector: { org: 'acme', endpointId: 'ep-1' } };
const condition = (c: Connector, type: string) => c.status?.conditions?.find((x) => x.type === type);

/**
 * A namespace with its own ControlPlane (credential Secret and CA ConfigMap beside it, its URL the
 * relay) and a Connector "edge" that names it and has reached it (its record holds a live token).
 */
async function namespaceWithOwnControlPlane(
  prefix: string,
  connectorSpec: Record<string, unknown> = {},
): Promise<{ namespace: string; relay: Relay }> {
  const { kc } = cluster();
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = await createTestNamespace(kc, prefix);
  const relay = await startRelay(env.controlPlane.url);
  await core.createNamespacedSecret({
    namespace,
    body: {
      // The credential may be sent to the relay's URL, where the ControlPlane points.
      metadata: { name: 'cp-admin', annotations: { 'vaultpam.io/control-plane-url': relay.url } },
      stringData: { credential: usableAdminCredential(env.controlPlane) },
    },
  });
  await core.createNamespacedConfigMap({
    namespace,
    body: { metadata: { name: 'cp-ca' }, data: { 'ca.crt': env.controlPlane.caPem } },
  });
  await controlPlaneResources(kc).create(namespace, 'own', {
    url: relay.url,
    caConfigMapRef: { name: 'cp-ca' },
    credentialSecretRef: { name: 'cp-admin' },
  });
  await connectors(kc).create(namespace, {
    metadata: { name: 'edge', namespace },
    spec: { ...spec, controlPlaneRef: { kind: 'ControlPlane', name: 'own' }, ...connectorSpec },
  });
  await eventually(
    async () => {
      const record = await env.admin.getConnector(`${namespace}.edge`);
      const c = await connectors(kc).get(namespace, 'edge');
      return record.liveToken !== null && c.status?.controlPlaneState !== undefined;
    },
    { description: 'the Connector reached its own control plane (record with a live token)' },
  );
  return { namespace, relay };
}

/** Connector "edge" of `namespace` once its status says Terminating (read every 50 ms). */
function terminatingStatus(namespace: string): Promise<Connector> {
  return eventually(
    async () => {
      const c = await connectors(cluster().kc).get(namespace, 'edge');
      return c.status?.phase === 'Terminating' ? c : undefined;
    },
    { description: 'phase Terminating', intervalMs: 50 },
  );
}

async function deleteNamespaceAndWait(namespace: string): Promise<number> {
  const core = cluster().kc.makeApiClient(CoreV1Api);
  const started = Date.now();
  await core.deleteNamespace({ name: namespace });
  await eventually(() => isGone(() => core.readNamespace({ name: namespace })), {
    description: `namespace ${namespace} deleted`,
    timeoutMs: RELEASE_TIMEOUT_MS + SLACK_MS,
    intervalMs: 250,
  });
  return Date.now() - started;
}

async function abandoned(policy: string, reason: string): Promise<number> {
  const text = await operator.metrics.registry.metrics();
  const line = new RegExp(
    `^vaultpam_operator_connector_releases_abandoned_total\\{deletion_policy="${policy}",reason="${reason}"\\} (\\S+)$`,
    'm',
  ).exec(text);
  return Number(line?.[1] ?? 0);
}

/** Warn-level (40) log records whose message contains `text`. */
const warnings = (text: string, from = 0) =>
  logs
    .records()
    .slice(from)
    .filter((r) => Number(r.level) >= 40 && String(r.msg ?? '').includes(text));

/**
 * Nothing was created in a terminating namespace: no refusal for it was ever met, but for Events
 * (Kubernetes accepts none there either; they are logged at debug level, not as warnings).
 */
const refusedInTerminatingNamespace = (from: number) =>
  logs
    .records()
    .slice(from)
    .filter((r) => JSON.stringify(r).includes('because it is being terminated'))
    .filter((r) => Number(r.level) >= 40 || !String(r.err ?? '').startsWith('events.events.k8s.io'));

test.serial(
  'deleting the namespace of a Connector and its own ControlPlane, the control plane up: released, the namespace goes',
  async (t) => {
    const from = logs.lines().length;
    const before = await abandoned('Release', 'timeout');
    const { namespace } = await namespaceWithOwnControlPlane('ns-up');
    const took = await deleteNamespaceAndWait(namespace);
    t.true(took < RELEASE_TIMEOUT_MS + SLACK_MS, `took ${took} ms`);
    const error = await t.throwsAsync(() => env.admin.getConnector(`${namespace}.edge`));
    t.is((error as { code?: string }).code, 'CONNECTOR_NOT_FOUND', 'the record was released');
    t.is(await abandoned('Release', 'timeout'), before, 'nothing was abandoned');
    t.deepEqual(
      refusedInTerminatingNamespace(from),
      [],
      'nothing was applied into the terminating namespace',
    );
  },
);

test.serial(
  'deleting the namespace with its control plane down: status says Terminating, the finalizer goes after the release timeout, and says what it left',
  async (t) => {
    const { kc } = cluster();
    const from = logs.lines().length;
    const before = await abandoned('Release', 'timeout');
    const { namespace, relay } = await namespaceWithOwnControlPlane('ns-down');
    await relay.down();
    const core = kc.makeApiClient(CoreV1Api);
    const started = Date.now();
    await core.deleteNamespace({ name: namespace });
    // While the release is retried, the status says the Connector is being deleted, not Online.
    const terminating = await terminatingStatus(namespace);
    t.is(condition(terminating, 'Ready')?.reason, 'Finalizing');
    t.is(condition(terminating, 'Reconciling')?.reason, 'Finalizing');
    t.regex(condition(terminating, 'Ready')?.message ?? '', /the finalizer is removed anyway/);
    await eventually(() => isGone(() => core.readNamespace({ name: namespace })), {
      description: `namespace ${namespace} deleted`,
      timeoutMs: RELEASE_TIMEOUT_MS + SLACK_MS,
      intervalMs: 250,
    });
    const took = Date.now() - started;
    t.true(took >= RELEASE_TIMEOUT_MS - 1_000, `waited for the release timeout (${took} ms)`);
    t.true(took < RELEASE_TIMEOUT_MS + SLACK_MS, `took ${took} ms`);
    // The trace: the metric and a warn line name the record left behind and the policy asked.
    t.is(await abandoned('Release', 'timeout'), before + 1);
    const lines = warnings('removed the finalizer without releasing', from);
    t.is(lines.length, 1);
    t.like(lines[0], {
      connectorId: `${namespace}.edge`,
      controlPlane: `ControlPlane ${namespace}/own`,
      deletionPolicy: 'Release',
      reason: 'timeout',
    });
    t.true(warnings('could not release the connector', from).length >= 1, 'each failed attempt was logged');
    const record = await env.admin.getConnector(`${namespace}.edge`);
    t.not(record.liveToken, null, 'the record is left as it was, as the trace says');
    t.deepEqual(
      refusedInTerminatingNamespace(from),
      [],
      'nothing was applied into the terminating namespace',
    );
  },
);

test.serial(
  'deleting the namespace after its credential Secret went: released with the credential the connection last used',
  async (t) => {
    const { kc } = cluster();
    const before = await abandoned('Release', 'timeout');
    const { namespace } = await namespaceWithOwnControlPlane('ns-nosecret');
    await kc.makeApiClient(CoreV1Api).deleteNamespacedSecret({ namespace, name: 'cp-admin' });
    // The operator sees the Secret gone at its next check of the ControlPlane: ask for one now.
    await controlPlaneResources(kc).patch(namespace, 'own', {
      metadata: { annotations: { 'test/touch': String(Date.now()) } },
    });
    await eventually(
      async () => readyOf(await controlPlaneResources(kc).get(namespace, 'own'))?.status === 'False',
      { description: 'the ControlPlane is not Ready without its Secret' },
    );
    await deleteNamespaceAndWait(namespace);
    const error = await t.throwsAsync(() => env.admin.getConnector(`${namespace}.edge`));
    t.is((error as { code?: string }).code, 'CONNECTOR_NOT_FOUND', 'the record was released');
    t.is(await abandoned('Release', 'timeout'), before, 'nothing was abandoned');
  },
);

/** The per-connector stalled series of Connector "edge" of `namespace`, as a scrape shows them. */
async function stalledSeries(namespace: string): Promise<string[]> {
  const text = await operator.metrics.registry.metrics();
  return text
    .split('\n')
    .filter(
      (line) =>
        line.startsWith('vaultpam_operator_connector_stalled{') &&
        line.includes(`namespace="${namespace}"`) &&
        line.includes('name="edge"'),
    );
}

test.serial(
  'deleting a Stalled Connector, its control plane down: Terminating says Finalizing only, with no stale Stalled and no stalled series',
  async (t) => {
    const { kc } = cluster();
    const { namespace, relay } = await namespaceWithOwnControlPlane('del-stalled');
    // The CRD checks the affinity's shape, not that a requirement's key is a label key (a rule per
    // key would exceed CEL's cost budget): the StatefulSet's own validation refuses it, and the
    // Connector stalls with InvalidSpec.
    await connectors(kc).patchSpec(namespace, 'edge', {
      spec: {
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                { matchExpressions: [{ key: 'no such zone!', operator: 'In', values: ['a'] }] },
              ],
            },
          },
        },
      },
    });
    await eventually(
      async () => condition(await connectors(kc).get(namespace, 'edge'), 'Stalled')?.reason === 'InvalidSpec',
      { description: 'edge Stalled InvalidSpec' },
    );
    t.is((await stalledSeries(namespace)).length, 1, 'the stalled series is there while it is Stalled');
    // The control plane down keeps the release retrying until the release timeout: long enough to
    // read the status of the Connector being deleted.
    await relay.down();
    await connectors(kc).delete(namespace, 'edge');
    const terminating = await terminatingStatus(namespace);
    t.is(condition(terminating, 'Reconciling')?.reason, 'Finalizing');
    t.is(condition(terminating, 'Ready')?.reason, 'Finalizing');
    t.is(condition(terminating, 'Stalled'), undefined, 'the fix the stall asked for no longer matters');
    // The informer delivers the Terminating status to the cache the gauges read, and the series
    // goes while the Connector is still there (not only once it is gone).
    await eventually(async () => (await stalledSeries(namespace)).length === 0, {
      description: 'no stalled series for the Connector being deleted',
      timeoutMs: RELEASE_TIMEOUT_MS,
      intervalMs: 50,
    });
    t.is((await connectors(kc).get(namespace, 'edge')).status?.phase, 'Terminating', 'still being deleted');
    await eventually(() => isGone(() => connectors(kc).get(namespace, 'edge')), {
      description: 'Connector gone',
      timeoutMs: RELEASE_TIMEOUT_MS + SLACK_MS,
      intervalMs: 250,
    });
    t.pass();
  },
);

/** The ReleaseAbandoned Event of Connector "edge", once written. */
async function abandonedEvent(namespace: string) {
  const list = await cluster().kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
  return list.items.find((e) => e.regarding?.name === 'edge' && e.reason === 'ReleaseAbandoned');
}

for (const policy of ['Release', 'Retain'] as const) {
  test.serial(
    `deleting a Connector with deletionPolicy ${policy}, its control plane down: gone within the release timeout, with a ReleaseAbandoned Event`,
    async (t) => {
      const { kc } = cluster();
      const before = await abandoned(policy, 'timeout');
      const { namespace, relay } = await namespaceWithOwnControlPlane(`del-${policy.toLowerCase()}`, {
        deletionPolicy: policy,
      });
      await relay.down();
      const started = Date.now();
      await connectors(kc).delete(namespace, 'edge');
      await eventually(() => isGone(() => connectors(kc).get(namespace, 'edge')), {
        description: 'Connector gone',
        timeoutMs: RELEASE_TIMEOUT_MS + SLACK_MS,
        intervalMs: 250,
      });
      const took = Date.now() - started;
      t.true(took >= RELEASE_TIMEOUT_MS - 1_000 && took < RELEASE_TIMEOUT_MS + SLACK_MS, `took ${took} ms`);
      const event = await eventually(() => abandonedEvent(namespace), {
        description: 'ReleaseAbandoned Event',
      });
      t.is(event.type, 'Warning');
      t.regex(event.note ?? '', new RegExp(`${namespace}\\.edge in ControlPlane ${namespace}/own`));
      t.regex(event.note ?? '', new RegExp(`deletionPolicy ${policy} was asked`));
      t.is(await abandoned(policy, 'timeout'), before + 1);
      const record = await env.admin.getConnector(`${namespace}.edge`);
      t.not(record.ownerUid, null, 'the record is left as it was (still owned), as the trace says');
    },
  );
}

test.serial(
  'the annotation vaultpam.io/skip-release lets a Connector go at once, its control plane up, with the same trace',
  async (t) => {
    const { kc } = cluster();
    const before = await abandoned('Retain', 'skipped');
    const { namespace } = await namespaceWithOwnControlPlane('skip', { deletionPolicy: 'Retain' });
    await connectors(kc).patchSpec(namespace, 'edge', {
      metadata: { annotations: { 'vaultpam.io/skip-release': 'true' } },
    });
    const started = Date.now();
    await connectors(kc).delete(namespace, 'edge');
    await eventually(() => isGone(() => connectors(kc).get(namespace, 'edge')), {
      description: 'Connector gone',
      intervalMs: 100,
    });
    t.true(Date.now() - started < RELEASE_TIMEOUT_MS, 'no release was tried or waited for');
    const event = await eventually(() => abandonedEvent(namespace), {
      description: 'ReleaseAbandoned Event',
    });
    t.regex(event.note ?? '', /vaultpam\.io\/skip-release asked to skip it/);
    t.is(await abandoned('Retain', 'skipped'), before + 1);
    const record = await env.admin.getConnector(`${namespace}.edge`);
    t.not(record.liveToken, null, 'the record and its live token are left as they were');
  },
);
