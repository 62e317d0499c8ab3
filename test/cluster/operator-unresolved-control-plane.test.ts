// A Connector whose spec.controlPlaneRef cannot be resolved (a ControlPlane that does not exist, was
// deleted or renamed, or is not Ready): the operator takes no side effect before its precondition,
// so a new Connector gets no children at all, and a running one keeps its workload exactly as it
// was; its status says so, once, and its repeated passes do not say it again. Against the real API
// server with the operator as its ServiceAccount and the reference control plane.
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import type { Connector } from '../../src/operator/api/types.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { connectorEvents, tallyEvents } from '../helpers/connector-events.ts';
import { eventually, isGone } from '../helpers/eventually.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import {
  connectors,
  controlPlaneResources,
  createControlPlaneFor,
  type OperatorEnvironment,
  startOperatorEnvironment,
} from '../helpers/operator-env.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;
const logs = captureLogs('operator-unresolved-control-plane', 'debug');

test.serial.before(async () => {
  env = await startOperatorEnvironment(cluster(), { logger: logs.logger });
  // A short periodic look: a stalled Connector is passed over many times within a test.
  await env.startOperator({ resyncMs: 500 });
});
test.after.always(async () => {
  await env?.stop();
});

const connectorSpec = { connector: { org: 'acme', endpointId: 'ep-1' } };
const condition = (c: Connector, type: string) => c.status?.conditions?.find((x) => x.type === type);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** pino's level numbers. */
const WARN = 40;
const ERROR = 50;

/** Log lines about the Connector `key` at `level` or above. */
function logLinesAbout(key: string, level: number) {
  return logs.records().filter((r) => (r.connector === key || r.object === key) && Number(r.level) >= level);
}

/** What exists of the children of Connector `name`: names of those that do. */
async function childrenOf(namespace: string, name: string): Promise<string[]> {
  const { kc } = cluster();
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const present: string[] = [];
  const check = async (what: string, read: () => Promise<unknown>) => {
    if (!(await isGone(read))) present.push(what);
  };
  await check('StatefulSet', () => apps.readNamespacedStatefulSet({ namespace, name }));
  await check('ConfigMap', () => core.readNamespacedConfigMap({ namespace, name: `${name}-config` }));
  await check('PersistentVolumeClaim', () =>
    core.readNamespacedPersistentVolumeClaim({ namespace, name: `data-${name}-0` }),
  );
  await check('token Secret', () =>
    core.readNamespacedSecret({ namespace, name: `${name}-enrollment-token` }),
  );
  return present;
}

/** A ControlPlane `name` in `namespace` for the reference control plane, with its Secret and CA. */
const createControlPlane = (namespace: string, name: string) => createControlPlaneFor(env, namespace, name);

/**
 * Waits until the Events about Connector `name` count at least `events` (by reason) and the ERROR
 * lines about it at least `errors`: both come after the status that says the same (the Event is
 * written beside the pass, the ERROR line once it failed), and on a loaded machine later than a
 * fixed sleep. That nothing more is said is then shown by the sleep after it.
 */
const saidAtLeast = (namespace: string, name: string, events: Record<string, number>, errors: number) =>
  eventually(
    async () => {
      const tally = tallyEvents(await connectorEvents(cluster().kc, namespace, name));
      return (
        Object.entries(events).every(([reason, n]) => (tally[reason] ?? 0) >= n) &&
        logLinesAbout(`${namespace}/${name}`, ERROR).length >= errors
      );
    },
    { description: `Events ${JSON.stringify(events)} and ${errors} ERROR line(s)`, timeoutMs: 60_000 },
  );

const stalledOn = (t: ExecutionContext, namespace: string, name: string, pattern: RegExp) =>
  eventually(
    () =>
      connectors(cluster().kc)
        .get(namespace, name)
        .then((c) => (pattern.test(condition(c, 'Stalled')?.message ?? '') ? c : undefined)),
    { description: `Stalled matching ${pattern}` },
  ).then((c) => {
    t.is(condition(c, 'Stalled')?.reason, 'ControlPlaneConfigInvalid');
    return c;
  });

test.serial(
  "the review's reproduction: a Connector naming a ControlPlane that does not exist gets no children, and says so once",
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'cp-typo');
    const key = `${namespace}/edge`;
    await connectors(kc).create(namespace, {
      metadata: { name: 'edge', namespace },
      spec: { ...connectorSpec, controlPlaneRef: { name: 'vaultpm' }, storage: { size: '1Gi' } },
    });
    const stalled = await stalledOn(t, namespace, 'edge', /vaultpm/);
    await saidAtLeast(namespace, 'edge', { ReconcileStalled: 1 }, 1);
    // Many periodic looks (every 500 ms) later, nothing was created and nothing said again.
    await sleep(5_000);
    t.deepEqual(await childrenOf(namespace, 'edge'), [], 'no StatefulSet, ConfigMap, claim or token Secret');

    const expected = `spec.controlPlaneRef: ControlPlane ${namespace}/vaultpm does not exist; ask an admin to create it (or fix the name)`;
    t.true(
      condition(stalled, 'Stalled')?.message.startsWith(expected),
      `the reason is not repeated in the message: ${condition(stalled, 'Stalled')?.message}`,
    );
    t.true(condition(stalled, 'Ready')?.message.startsWith(`Stalled: ${expected}`));
    t.is(condition(stalled, 'Ready')?.reason, 'ControlPlaneConfigInvalid');

    const tally = tallyEvents(await connectorEvents(kc, namespace, 'edge'));
    t.is(tally.ReconcileStalled, 1, `one Event for one cause: ${JSON.stringify(tally)}`);
    t.is(logLinesAbout(key, ERROR).length, 1, 'one ERROR line for one cause');
    t.is(logLinesAbout(key, WARN).length, 2, 'and its one WARN line');

    // A new cause is said again: the ControlPlane exists now, but is not Ready (no Secret).
    await controlPlaneResources(kc).create(namespace, 'vaultpm', {
      url: env.controlPlane.url,
      caConfigMapRef: { name: 'vaultpm-ca' },
      credentialSecretRef: { name: 'vaultpm-admin' },
    });
    await stalledOn(t, namespace, 'edge', /is not Ready/);
    await saidAtLeast(namespace, 'edge', { ReconcileStalled: 2 }, 2);
    await sleep(2_000);
    t.deepEqual(await childrenOf(namespace, 'edge'), []);
    t.is(tallyEvents(await connectorEvents(kc, namespace, 'edge')).ReconcileStalled, 2);
    t.is(logLinesAbout(key, ERROR).length, 2);

    // Resolved: the Connector proceeds and gets its children, the URL in its ConfigMap.
    await controlPlaneResources(kc).delete(namespace, 'vaultpm');
    await createControlPlane(namespace, 'vaultpm');
    await eventually(
      () =>
        childrenOf(namespace, 'edge').then((c) => c.includes('token Secret') && c.includes('StatefulSet')),
      { description: 'children created once it resolves', timeoutMs: 30_000 },
    );
    const configMap = await kc
      .makeApiClient(CoreV1Api)
      .readNamespacedConfigMap({ namespace, name: 'edge-config' });
    t.is(configMap.data?.['control-plane-url'], env.controlPlane.url);
  },
);

test.serial(
  'a running Connector whose ControlPlane is deleted or renamed keeps its workload as it is, and its status says so',
  async (t) => {
    const { kc } = cluster();
    const apps = kc.makeApiClient(AppsV1Api);
    const core = kc.makeApiClient(CoreV1Api);
    const namespace = await createTestNamespace(kc, 'cp-gone');
    await createControlPlane(namespace, 'team');
    const api = connectors(kc);
    await api.create(namespace, {
      metadata: { name: 'edge', namespace },
      spec: { ...connectorSpec, controlPlaneRef: { name: 'team' } },
    });
    await eventually(() => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' }), {
      description: 'token minted',
      timeoutMs: 30_000,
    });
    const agent = await env.runAgent(namespace, 'edge');
    t.teardown(() => agent.stop());
    await eventually(() => api.get(namespace, 'edge').then((c) => c.status?.phase === 'Online'), {
      description: 'Online',
      timeoutMs: 30_000,
    });
    // The StatefulSet's spec (its generation: its status moves with its pod) and the ConfigMap.
    const unchanged = async () => ({
      statefulSet: (await apps.readNamespacedStatefulSet({ namespace, name: 'edge' })).metadata?.generation,
      configMap: (await core.readNamespacedConfigMap({ namespace, name: 'edge-config' })).metadata
        ?.resourceVersion,
    });
    const before = await unchanged();

    // Deleted: Stalled, and the workload is left running as it is.
    await controlPlaneResources(kc).delete(namespace, 'team');
    const gone = await stalledOn(t, namespace, 'edge', /team does not exist/);
    await sleep(3_000);
    t.deepEqual(await unchanged(), before, 'StatefulSet and ConfigMap untouched');
    t.is(
      condition(gone, 'Stalled')?.message,
      `spec.controlPlaneRef: ControlPlane ${namespace}/team does not exist; ask an admin to create it (or fix the name); StatefulSet edge and its ConfigMap edge-config (control-plane URL ${env.controlPlane.url}) are left as they are, and nothing is applied until it resolves`,
    );

    // (A rename is a delete for the Connector: the CRD refuses another spec.controlPlaneRef once it
    // reached its control plane.) Back, then not Ready (its credential Secret deleted): the same.
    await createControlPlane(namespace, 'team');
    await eventually(() => api.get(namespace, 'edge').then((c) => condition(c, 'Stalled') === undefined), {
      description: 'resolves again',
      timeoutMs: 30_000,
    });
    t.deepEqual(await unchanged(), before, 'resolved again, the same workload is applied: no change');
    await core.deleteNamespacedSecret({ namespace, name: 'team-admin' });
    await controlPlaneResources(kc).patch(namespace, 'team', {
      metadata: { annotations: { 'vaultpam.io/recheck': '1' } },
    });
    const notReady = await stalledOn(t, namespace, 'edge', /team is not Ready \(CredentialMissing/);
    t.regex(
      condition(notReady, 'Stalled')?.message ?? '',
      /; StatefulSet edge and its ConfigMap edge-config/,
    );
    await saidAtLeast(namespace, 'edge', {}, 2);
    await sleep(2_000);
    t.deepEqual(await unchanged(), before, 'StatefulSet and ConfigMap untouched');
    t.is(notReady.status?.phase, 'Online', 'the phase last seen stays');
    t.is(
      logs.records().filter((r) => r.object === `${namespace}/edge` && Number(r.level) >= ERROR).length,
      2,
      'one ERROR line per cause',
    );
  },
);

test.serial(
  'a blocker and an unresolved control plane together: each cause is said once, not the blocker at every look',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'cp-blocked');
    const key = `${namespace}/edge`;
    // Two causes at once: the ServiceAccount the pod names does not exist (a blocker, Stalled
    // ServiceAccountNotFound) and the ControlPlane does not either (ControlPlaneConfigInvalid).
    await connectors(kc).create(namespace, {
      metadata: { name: 'edge', namespace },
      spec: { ...connectorSpec, controlPlaneRef: { name: 'vaultpm' }, serviceAccountName: 'nosuch' },
    });
    const stalled = await stalledOn(t, namespace, 'edge', /vaultpm/);
    // The status names both: the blocker is not lost behind the control plane's error.
    t.regex(
      condition(stalled, 'Stalled')?.message ?? '',
      /vaultpm does not exist.*; besides, Stalled ServiceAccountNotFound: spec\.serviceAccountName: ServiceAccount \S+\/nosuch does not exist/,
    );
    await saidAtLeast(namespace, 'edge', { ServiceAccountNotFound: 1, ReconcileStalled: 1 }, 1);
    // Many periodic looks (every 500 ms) later, neither cause was said again.
    await sleep(5_000);
    const tally = tallyEvents(await connectorEvents(kc, namespace, 'edge'));
    t.is(tally.ServiceAccountNotFound, 1, `the blocker said once: ${JSON.stringify(tally)}`);
    t.is(tally.ReconcileStalled, 1, `the unresolved control plane said once: ${JSON.stringify(tally)}`);
    t.is(logLinesAbout(key, ERROR).length, 1, 'one ERROR line for the unresolved control plane');
  },
);
