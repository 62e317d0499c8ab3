// The PriorityClass and ServiceAccount a Connector's pod names, against the real API server: the
// StatefulSet's dry run does not look them up (the pod's admission does), so a Connector naming one
// that does not exist used to get a token minted and a StatefulSet whose every pod Kubernetes
// refused (FailedCreate), while its status said it waited for the agent to pair. Now it is Stalled
// naming the field, with nothing minted, and goes on by itself once the object is created (the
// blocker's recheck: the periodic look here is a minute away). Kubernetes forbidding the read is
// not reported as "missing".
import {
  CoreV1Api,
  type KubeConfig,
  RbacAuthorizationV1Api,
  SchedulingV1Api,
  type V1ClusterRoleBinding,
} from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import type { Connector } from '../../src/operator/api/types.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually, isGone } from '../helpers/eventually.ts';
import { connectors, type OperatorEnvironment, startOperatorEnvironment } from '../helpers/operator-env.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;

test.serial.before(async () => {
  env = await startOperatorEnvironment(cluster());
  // The periodic look is far off: what wakes a blocked Connector is its own recheck.
  await env.startOperator({ resyncMs: 600_000 });
});
test.after.always(async () => {
  await env?.stop();
});

const connectorSpec = { org: 'acme', endpointId: 'ep-1', allowedNetworks: [] };
const stalledOf = (c: Connector) => c.status?.conditions?.find((x) => x.type === 'Stalled');

/** Waits for the Connector to be Stalled with `reason`, and returns its Stalled condition. */
async function stalledWith(kc: KubeConfig, namespace: string, reason: string) {
  const c = await eventually(
    () =>
      connectors(kc)
        .get(namespace, 'edge')
        .then((x) => stalledOf(x)?.reason === reason && x),
    { description: `Stalled ${reason}` },
  );
  return { connector: c, stalled: stalledOf(c) };
}

/** Nothing was minted: no token Secret, and the control plane holds no record (so no token). */
async function nothingMinted(t: ExecutionContext, kc: KubeConfig, namespace: string) {
  const core = kc.makeApiClient(CoreV1Api);
  t.true(
    await isGone(() => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' })),
    'no token Secret',
  );
  const id = `${namespace}.edge`;
  const record = await env.admin.getConnector(id).catch((error: { code?: string }) => error.code);
  t.is(record, 'CONNECTOR_NOT_FOUND', 'nothing registered, so nothing minted');
  const audit = await env.admin.audit({ connectorId: id });
  t.deepEqual(
    audit.filter((entry) => entry.type === 'token.minted'),
    [],
    'the control plane minted no token for it',
  );
}

/** The Connector proceeds by itself: a token is stored and the StatefulSet controller creates the pod. */
async function proceeds(t: ExecutionContext, kc: KubeConfig, namespace: string) {
  const core = kc.makeApiClient(CoreV1Api);
  await eventually(() => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' }), {
    description: 'a token minted once the object exists',
    timeoutMs: 45_000,
  });
  const pod = await eventually(() => core.readNamespacedPod({ namespace, name: 'edge-0' }), {
    description: 'the pod Kubernetes now admits',
  });
  const c = await eventually(
    () =>
      connectors(kc)
        .get(namespace, 'edge')
        .then((x) => stalledOf(x) === undefined && x),
    { description: 'no longer Stalled' },
  );
  t.is(stalledOf(c), undefined);
  return pod;
}

test.serial(
  'a missing PriorityClass: Stalled naming spec.priorityClassName, no token; goes on once it is created',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'prio');
    const className = `prio-${namespace}`;
    await connectors(kc).create(namespace, {
      metadata: { name: 'edge', namespace },
      spec: { connector: connectorSpec, priorityClassName: className },
    });
    const { connector, stalled } = await stalledWith(kc, namespace, 'PriorityClassNotFound');
    t.regex(
      stalled?.message ?? '',
      new RegExp(`^spec\\.priorityClassName: PriorityClass ${className} does not exist`),
    );
    t.regex(stalled?.message ?? '', /create the PriorityClass/);
    t.is(connector.status?.phase, 'Pending');
    t.is(connector.status?.enrollment?.mintCount ?? 0, 0, 'no mint counted');
    await nothingMinted(t, kc, namespace);

    const scheduling = kc.makeApiClient(SchedulingV1Api);
    await scheduling.createPriorityClass({ body: { metadata: { name: className }, value: 1000 } });
    t.teardown(() => scheduling.deletePriorityClass({ name: className }).catch(() => {}));
    const pod = await proceeds(t, kc, namespace);
    t.is(pod.spec?.priorityClassName, className);

    // Deleted later: the running pod was admitted with it, so nothing changes while it exists; once
    // the pod is gone the StatefulSet controller cannot replace it, and the Connector says why.
    await scheduling.deletePriorityClass({ name: className });
    await kc
      .makeApiClient(CoreV1Api)
      .deleteNamespacedPod({ namespace, name: 'edge-0', gracePeriodSeconds: 0 });
    const again = await stalledWith(kc, namespace, 'PriorityClassNotFound');
    t.regex(again.stalled?.message ?? '', /does not exist/);
  },
);

test.serial(
  'a missing ServiceAccount: Stalled naming spec.serviceAccountName, no token; goes on once it is created',
  async (t) => {
    const { kc } = cluster();
    const core = kc.makeApiClient(CoreV1Api);
    const namespace = await createTestNamespace(kc, 'sa');
    await connectors(kc).create(namespace, {
      metadata: { name: 'edge', namespace },
      spec: { connector: connectorSpec, serviceAccountName: 'connector-runner' },
    });
    const { stalled } = await stalledWith(kc, namespace, 'ServiceAccountNotFound');
    t.regex(
      stalled?.message ?? '',
      new RegExp(`^spec\\.serviceAccountName: ServiceAccount ${namespace}/connector-runner does not exist`),
    );
    t.regex(stalled?.message ?? '', /create the ServiceAccount connector-runner in namespace/);
    await nothingMinted(t, kc, namespace);

    await core.createNamespacedServiceAccount({
      namespace,
      body: { metadata: { name: 'connector-runner' } },
    });
    const pod = await proceeds(t, kc, namespace);
    t.is(pod.spec?.serviceAccountName, 'connector-runner');
  },
);

test.serial(
  'a PriorityClass the operator may not read: Stalled PodReferenceForbidden (not "missing"), no token; goes on once granted',
  async (t) => {
    const { kc } = cluster();
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    const scheduling = kc.makeApiClient(SchedulingV1Api);
    const className = `readable-${process.pid}`;
    await scheduling.createPriorityClass({ body: { metadata: { name: className }, value: 1000 } });
    t.teardown(() => scheduling.deletePriorityClass({ name: className }).catch(() => {}));
    // The grant every install binds, taken away (a namespaced install an admin trimmed).
    const bindingName = 'vaultpam-connector-operator-priorityclasses';
    const binding: V1ClusterRoleBinding = await rbac.readClusterRoleBinding({ name: bindingName });
    const restore = () =>
      rbac
        .createClusterRoleBinding({
          body: {
            metadata: { name: bindingName },
            roleRef: binding.roleRef,
            subjects: binding.subjects ?? [],
          },
        })
        .catch((error: { code?: number }) => {
          if (error.code !== 409) throw error;
        });
    await rbac.deleteClusterRoleBinding({ name: bindingName });
    t.teardown(restore);

    const namespace = await createTestNamespace(kc, 'forbid');
    await connectors(kc).create(namespace, {
      metadata: { name: 'edge', namespace },
      spec: { connector: connectorSpec, priorityClassName: className },
    });
    const { stalled } = await stalledWith(kc, namespace, 'PodReferenceForbidden');
    t.regex(stalled?.message ?? '', /^spec\.priorityClassName: the operator may not read PriorityClass /);
    t.regex(stalled?.message ?? '', /forbidden/);
    t.regex(stalled?.message ?? '', /vaultpam-connector-operator-priorityclasses/);
    t.notRegex(stalled?.message ?? '', /does not exist/);
    await nothingMinted(t, kc, namespace);
    // An operator upgraded before its RBAC: a Connector that names no PriorityClass reads none, so
    // the missing grant does not hold it.
    await connectors(kc).create(namespace, {
      metadata: { name: 'plain', namespace },
      spec: { connector: { ...connectorSpec, endpointId: 'ep-plain' } },
    });
    await eventually(
      () => kc.makeApiClient(CoreV1Api).readNamespacedSecret({ namespace, name: 'plain-enrollment-token' }),
      { description: 'a Connector without spec.priorityClassName minted for', timeoutMs: 45_000 },
    );
    t.is(stalledOf(await connectors(kc).get(namespace, 'plain')), undefined);

    await restore();
    const pod = await proceeds(t, kc, namespace);
    t.is(pod.spec?.priorityClassName, className);
  },
);
