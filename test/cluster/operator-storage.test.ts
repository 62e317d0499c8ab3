// Storage posture and token lifecycle against the real API server: the operator judges what backs
// the data directory from the pods that exist (the StatefulSet controller creates them; nothing
// runs them here), notices a replaced claim, and re-mints an expired token (adoption has its own file).
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import test from 'ava';
import type { Connector } from '../../src/operator/api/types.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { connectors, type OperatorEnvironment, startOperatorEnvironment } from '../helpers/operator-env.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;

test.serial.before(async () => {
  env = await startOperatorEnvironment(cluster());
  await env.startOperator({ resyncMs: 500 });
});
test.after.always(async () => {
  await env?.stop();
});

const connectorSpec = { org: 'acme', endpointId: 'ep-1', allowedNetworks: [] };
const condition = (c: Connector, type: string) => c.status?.conditions?.find((x) => x.type === type);

test.serial(
  'ephemeral by choice: the pod mounts an emptyDir, mode GuidedRecovery, Ready not blocked by it',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'eph');
    const api = connectors(kc);
    await api.create(namespace, {
      metadata: { name: 'edge', namespace },
      spec: { connector: connectorSpec, storage: { ephemeral: true } },
    });
    const c = await eventually(
      () => api.get(namespace, 'edge').then((x) => (x.status?.storage?.podName ? x : undefined)),
      { description: 'posture judged from the pod' },
    );
    t.is(c.status?.mode, 'GuidedRecovery');
    t.is(c.status?.storage?.source, 'EmptyDir');
    t.is(condition(c, 'DurableStorage')?.reason, 'EphemeralByChoice');
    const sts = await kc.makeApiClient(AppsV1Api).readNamespacedStatefulSet({ namespace, name: 'edge' });
    t.is(sts.spec?.volumeClaimTemplates, undefined);
  },
);

test.serial('a claim replaced after pairing is reported as identity loss', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'claim');
  const core = kc.makeApiClient(CoreV1Api);
  const api = connectors(kc);
  await api.create(namespace, { metadata: { name: 'edge', namespace }, spec: { connector: connectorSpec } });
  await eventually(() => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' }), {
    description: 'token',
  });
  const agent = await env.runAgent(namespace, 'edge');
  const paired = await eventually(
    () =>
      api
        .get(namespace, 'edge')
        .then((x) => (x.status?.enrollment?.retired && x.status.storage?.claimUID ? x : undefined)),
    { description: 'paired with the claim remembered' },
  );
  const originalUID = paired.status?.storage?.claimUID;
  await agent.stop();
  // The claim and its pod are deleted; the StatefulSet controller recreates both: an empty new claim.
  await core.deleteNamespacedPersistentVolumeClaim({ namespace, name: 'data-edge-0' });
  await core.deleteNamespacedPod({ namespace, name: 'edge-0', gracePeriodSeconds: 0 });
  const replaced = await eventually(
    () =>
      api
        .get(namespace, 'edge')
        .then((x) => (condition(x, 'DurableStorage')?.reason === 'ClaimReplaced' ? x : undefined)),
    { description: 'replaced claim noticed', timeoutMs: 60_000 },
  );
  t.not(replaced.status?.storage?.claimUID, undefined);
  t.is(replaced.status?.storage?.claimUID, originalUID, 'the identity claim is remembered');
  t.is(replaced.status?.diagnosis?.failureClass, 'IdentityLoss');
  t.regex(replaced.status?.diagnosis?.nextStep ?? '', /reattach the original volume/);
  t.is(replaced.status?.mode, 'GuidedRecovery');
});

test.serial('a token that expires unused is deleted and a fresh one minted', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'ttl');
  const core = kc.makeApiClient(CoreV1Api);
  const api = connectors(kc);
  await api.create(namespace, {
    metadata: { name: 'edge', namespace },
    spec: { connector: connectorSpec, enrollment: { tokenTTL: '5m' } },
  });
  const first = await eventually(
    () => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' }),
    { description: 'token' },
  );
  const firstKey = first.metadata?.annotations?.['vaultpam.io/mint-key'] ?? '';
  t.regex(firstKey, /-1$/);
  // Six minutes pass for the control plane and the operator (a shifted clock: TLS stays valid).
  env.clock.offsetMs += 6 * 60_000;
  t.teardown(() => {
    env.clock.offsetMs -= 6 * 60_000;
  });
  const second = await eventually(
    async () => {
      const s = await core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' });
      return s.metadata?.annotations?.['vaultpam.io/mint-key'] !== firstKey ? s : undefined;
    },
    { description: 're-minted token' },
  );
  t.regex(second.metadata?.annotations?.['vaultpam.io/mint-key'] ?? '', /-2$/);
  t.not(second.data?.token, first.data?.token);
  // The Secret is applied before the status that counts it is written: wait for the count, not a race.
  const c = await eventually(
    () => api.get(namespace, 'edge').then((x) => (x.status?.enrollment?.mintCount === 2 ? x : undefined)),
    { description: 'status counts the second mint' },
  );
  t.is(c.status?.enrollment?.mintCount, 2);
  const record = await env.admin.getConnector(`${namespace}.edge`);
  const secondToken = Buffer.from(second.data?.token ?? '', 'base64').toString();
  t.is(record.liveToken?.tokenId, secondToken.split('_')[1], 'the live token is the one in the Secret');
});
