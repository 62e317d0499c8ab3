// A ControlPlane whose CA bundle is too large to hand to a connector: the operator writes the bundle
// into every Connector's own ConfigMap (ca.crt, next to the connector's configuration), and Kubernetes
// holds a ConfigMap's data to 1 MiB, so a CA ConfigMap near that limit (which Kubernetes accepts)
// makes every Connector's ConfigMap too large. That is the control plane's admin's to fix, not the
// Connector author's: the ControlPlane says its CA is unusable (which ConfigMap and key, the size,
// the limit, the fix), and the Connector is Stalled on its control-plane reference, naming who must
// act, with no side effect taken (no record, no token, no child). A bundle grown in place is noticed
// at once (its ConfigMap is watched), and a refusal of a Connector's ConfigMap for the control plane's
// content (an admission policy, the API server's own limit) names the control plane and its admin;
// one the operator cannot map says so. Against the real API server, with the operator as its
// ServiceAccount and the reference control plane.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import { isCodedError } from '../../src/lib/errors.ts';
import { COMPONENTS, LABELS } from '../../src/operator/api/constants.ts';
import { type Connector, defaultedSpec } from '../../src/operator/api/types.ts';
import { controlPlaneContentRefusal } from '../../src/operator/reconcile/config-map-refusal.ts';
import { desiredConfigMap } from '../../src/operator/reconcile/desired-objects.ts';
import { KubeWriter } from '../../src/operator/runtime/apply.ts';
import { bindAdmissionPolicy } from '../helpers/admission-policy.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually, isGone } from '../helpers/eventually.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import {
  CREDENTIAL_SECRET,
  connectors,
  controlPlaneResources,
  createControlPlaneFor,
  OPERATOR_NAMESPACE,
  type OperatorEnvironment,
  readyOf,
  startOperatorEnvironment,
} from '../helpers/operator-env.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;
const logs = captureLogs('operator-control-plane-ca-size', 'debug');

test.serial.before(async () => {
  env = await startOperatorEnvironment(cluster(), { logger: logs.logger });
  await env.startOperator({ resyncMs: 1_000 });
});
test.after.always(async () => {
  await env?.stop();
});

/** What Kubernetes allows a ConfigMap's data to hold (keys and values together), in bytes. */
const CONFIGMAP_LIMIT = 1024 * 1024;
const condition = (c: Connector, type: string) => c.status?.conditions?.find((x) => x.type === type);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The control plane's real CA, repeated and then padded with PEM explanatory text (which TLS and
 * PEM readers skip) to exactly `bytes`: a bundle that verifies the server and that Kubernetes stores.
 */
function bundleOf(caPem: string, bytes: number): string {
  const block = caPem.endsWith('\n') ? caPem : `${caPem}\n`;
  let bundle = block.repeat(Math.floor((bytes - 64) / block.length));
  const padding = bytes - bundle.length;
  bundle = `${'#'.repeat(padding - 1)}\n${bundle}`;
  return bundle;
}

test.serial(
  "a CA bundle too large for a Connector's ConfigMap: the ControlPlane says so, the Connector blames the reference and takes no side effect",
  async (t) => {
    const { kc } = cluster();
    const core = kc.makeApiClient(CoreV1Api);
    const namespace = await createTestNamespace(kc, 'ca-size');
    // The largest CA ConfigMap Kubernetes takes: its key and bundle fill the 1 MiB exactly.
    const bundle = bundleOf(env.controlPlane.caPem, CONFIGMAP_LIMIT - 'ca.crt'.length);
    await createControlPlaneFor(env, namespace, 'main', { caPem: bundle });
    await connectors(kc).create(namespace, {
      metadata: { name: 'edge', namespace },
      spec: { connector: { org: 'acme', endpointId: 'ep-1' }, controlPlaneRef: { name: 'main' } },
    });

    // The ControlPlane's own status: its CA is unusable, with where, how large, the limit and the fix.
    const ready = await eventually(
      () =>
        controlPlaneResources(kc)
          .get(namespace, 'main')
          .then((cp) => (readyOf(cp)?.status === 'False' ? readyOf(cp) : undefined)),
      { description: 'the ControlPlane is not Ready', timeoutMs: 30_000 },
    );
    t.is(ready.reason, 'CAInvalid', ready.message);
    t.true(ready.message.includes(`ConfigMap ${namespace}/main-ca`), ready.message);
    t.true(ready.message.includes('key "ca.crt"'), ready.message);
    t.true(ready.message.includes(`${bundle.length.toLocaleString('en-US')} bytes`), ready.message);
    t.regex(ready.message, /at most [\d,]+ bytes/);
    t.regex(ready.message, /trim the bundle/);

    // The Connector: Stalled on its control-plane reference, naming who must act; not InvalidSpec.
    const stalled = await eventually(
      () =>
        connectors(kc)
          .get(namespace, 'edge')
          .then((c) => condition(c, 'Stalled')),
      { description: 'the Connector stalls', timeoutMs: 30_000 },
    );
    t.is(stalled.reason, 'ControlPlaneConfigInvalid', stalled.message);
    t.true(
      stalled.message.startsWith(`spec.controlPlaneRef: ControlPlane ${namespace}/main`),
      stalled.message,
    );
    t.regex(stalled.message, /CAInvalid/);
    t.regex(stalled.message, /an admin of ControlPlane .*\/main must fix it/);
    t.notRegex(stalled.message, /fix the spec/);

    // Passes later (a periodic look every second), still no side effect: no record in the control
    // plane, no token, no ConfigMap, no StatefulSet.
    await sleep(4_000);
    const again = await connectors(kc).get(namespace, 'edge');
    t.is(condition(again, 'Stalled')?.reason, 'ControlPlaneConfigInvalid');
    const records = await env.admin.listConnectors();
    t.false(
      records.connectors.some((r) => r.connectorId === `${namespace}.edge`),
      'no record registered in the control plane',
    );
    const apps = kc.makeApiClient(AppsV1Api);
    t.true(await isGone(() => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' })));
    t.true(await isGone(() => core.readNamespacedConfigMap({ namespace, name: 'edge-config' })));
    t.true(await isGone(() => apps.readNamespacedStatefulSet({ namespace, name: 'edge' })));
  },
);

test.serial(
  'a CA bundle grown in place past the limit while its Connectors are Online: the ControlPlane says so at once, the workload is kept',
  async (t) => {
    const { kc } = cluster();
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    const namespace = await createTestNamespace(kc, 'ca-grown');
    await createControlPlaneFor(env, namespace, 'main');
    const api = connectors(kc);
    await api.create(namespace, {
      metadata: { name: 'edge', namespace },
      spec: { connector: { org: 'acme', endpointId: 'ep-1' }, controlPlaneRef: { name: 'main' } },
    });
    await eventually(() => api.get(namespace, 'edge').then((c) => c.status?.enrollment?.tokenSecretName), {
      description: 'a token Secret',
      timeoutMs: 30_000,
    });
    const pod = await env.runAgent(namespace, 'edge');
    t.teardown(() => pod.stop());
    await eventually(() => api.get(namespace, 'edge').then((c) => c.status?.phase === 'Online'), {
      description: 'Online',
      timeoutMs: 60_000,
    });
    const workloadBefore = await apps.readNamespacedStatefulSet({ namespace, name: 'edge' });

    // The admin grows the bundle in place: the ControlPlane itself does not change, so only a watch
    // of its CA ConfigMap notices before the periodic check five minutes later.
    const caMap = await core.readNamespacedConfigMap({ namespace, name: 'main-ca' });
    const bundle = bundleOf(env.controlPlane.caPem, CONFIGMAP_LIMIT - 'ca.crt'.length);
    await core.replaceNamespacedConfigMap({
      namespace,
      name: 'main-ca',
      body: { ...caMap, data: { 'ca.crt': bundle } },
    });
    const ready = await eventually(
      () =>
        controlPlaneResources(kc)
          .get(namespace, 'main')
          .then((cp) => (readyOf(cp)?.status === 'False' ? readyOf(cp) : undefined)),
      { description: 'the ControlPlane is not Ready, with no change of its own', timeoutMs: 20_000 },
    );
    t.is(ready.reason, 'CAInvalid', ready.message);
    t.true(ready.message.includes(`${bundle.length.toLocaleString('en-US')} bytes`), ready.message);
    const stalled = await eventually(() => api.get(namespace, 'edge').then((c) => condition(c, 'Stalled')), {
      description: 'the Connector stalls on its control plane',
      timeoutMs: 20_000,
    });
    t.is(stalled.reason, 'ControlPlaneConfigInvalid', stalled.message);
    t.regex(stalled.message, /an admin of ControlPlane .*\/main must fix it/);
    t.notRegex(stalled.message, /fix the spec/);

    // The running workload is kept as it was: its ConfigMap holds the bundle it had, no rollout.
    await sleep(3_000);
    const config = await core.readNamespacedConfigMap({ namespace, name: 'edge-config' });
    t.is(config.data?.['ca.crt'], env.controlPlane.caPem);
    const workloadAfter = await apps.readNamespacedStatefulSet({ namespace, name: 'edge' });
    t.is(workloadAfter.metadata?.generation, workloadBefore.metadata?.generation);

    // Trimmed back in place: Ready again as soon, and the Connector is no longer stalled.
    const grown = await core.readNamespacedConfigMap({ namespace, name: 'main-ca' });
    await core.replaceNamespacedConfigMap({
      namespace,
      name: 'main-ca',
      body: { ...grown, data: { 'ca.crt': env.controlPlane.caPem } },
    });
    await eventually(
      () =>
        controlPlaneResources(kc)
          .get(namespace, 'main')
          .then((cp) => readyOf(cp)?.status === 'True'),
      { description: 'the ControlPlane is Ready again', timeoutMs: 20_000 },
    );
    await eventually(() => api.get(namespace, 'edge').then((c) => condition(c, 'Stalled') === undefined), {
      description: 'the Connector is no longer stalled',
      timeoutMs: 20_000,
    });
  },
);

/**
 * A ValidatingAdmissionPolicy, bound to `namespace`, that refuses the Connectors' own ConfigMaps for
 * which `expression` is false, with `message` and no field (this API server stores no fieldPath);
 * in force when this returns, removed when the test ends.
 */
async function refuseConnectorConfigMaps(
  t: ExecutionContext,
  namespace: string,
  expression: string,
  message: string,
  probe: Record<string, string>,
): Promise<void> {
  const { kc } = cluster();
  const policy = `configmaps-${namespace}`;
  await bindAdmissionPolicy(t, kc, {
    name: policy,
    namespace,
    rules: [
      { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['configmaps'] },
    ],
    objectSelector: { matchLabels: { [LABELS.component]: COMPONENTS.config } },
    expression,
    message,
  });
  // In force once a dry run (nothing stored) of such a ConfigMap is refused, naming the policy.
  const core = kc.makeApiClient(CoreV1Api);
  await eventually(
    () =>
      core
        .createNamespacedConfigMap({
          namespace,
          dryRun: 'All',
          body: {
            metadata: { name: 'probe', labels: { [LABELS.component]: COMPONENTS.config } },
            data: probe,
          },
        })
        .then(
          () => false,
          (error: unknown) => String(error).includes(policy),
        ),
    { description: 'the admission policy is in force' },
  );
}

/** Connector "edge" on ControlPlane "main" in `namespace`, once it is Stalled: that condition. */
async function stalledConnector(namespace: string, caPem: string) {
  const { kc } = cluster();
  await createControlPlaneFor(env, namespace, 'main', { caPem });
  await connectors(kc).create(namespace, {
    metadata: { name: 'edge', namespace },
    spec: { connector: { org: 'acme', endpointId: 'ep-1' }, controlPlaneRef: { name: 'main' } },
  });
  return eventually(
    () =>
      connectors(kc)
        .get(namespace, 'edge')
        .then((c) => condition(c, 'Stalled')),
    { description: 'the Connector stalls', timeoutMs: 30_000 },
  );
}

test.serial(
  "a Connector's ConfigMap refused as too large for the control plane's CA bundle: the Connector names the ControlPlane and its admin, not its own spec",
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'ca-refused');
    // A bundle the ControlPlane's check accepts (well under its limit), and a cluster policy that
    // holds a workload's ConfigMap to 64 KiB, worded as Kubernetes words its own size limit: a
    // refusal the check cannot foresee, which names no field.
    const bundle = bundleOf(env.controlPlane.caPem, 100 * 1024);
    await refuseConnectorConfigMaps(
      t,
      namespace,
      '!has(object.data) || object.data.all(k, size(object.data[k]) <= 65536)',
      'Too long: a workload ConfigMap may not be more than 64 KiB',
      { 'ca.crt': bundle },
    );
    const stalled = await stalledConnector(namespace, bundle);
    t.is(stalled.reason, 'ControlPlaneConfigInvalid', stalled.message);
    t.true(
      stalled.message.startsWith(
        `spec.controlPlaneRef: Kubernetes refuses ConfigMap ${namespace}/edge-config for the CA bundle it copies from ControlPlane ${namespace}/main`,
      ),
      stalled.message,
    );
    t.true(stalled.message.includes('a CA bundle of 102,400 bytes'), stalled.message);
    t.true(stalled.message.includes('may not be more than 64 KiB'), stalled.message);
    t.regex(
      stalled.message,
      new RegExp(`an admin of ControlPlane ${namespace}/main must fix it \\(trim the bundle`),
    );
    t.notRegex(stalled.message, /fix the spec|fix spec\.connector/);
    // The ControlPlane's check found nothing it measures wrong, and says so.
    t.is(readyOf(await controlPlaneResources(kc).get(namespace, 'main'))?.status, 'True');
    // No workload was made from the refused configuration.
    const apps = kc.makeApiClient(AppsV1Api);
    t.true(await isGone(() => apps.readNamespacedStatefulSet({ namespace, name: 'edge' })));
  },
);

test.serial(
  'a Connector\'s ConfigMap refused with no field the operator can map: the Connector says it cannot tell, not "fix the spec"',
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'cm-unmapped');
    await refuseConnectorConfigMaps(
      t,
      namespace,
      "!has(object.data) || !('org' in object.data) || object.data['org'] != 'acme'",
      'this organisation is not approved in this cluster',
      { org: 'acme' },
    );
    const stalled = await stalledConnector(namespace, env.controlPlane.caPem);
    t.is(stalled.reason, 'InvalidSpec', stalled.message);
    t.true(stalled.message.includes('this organisation is not approved'), stalled.message);
    t.regex(stalled.message, /the operator cannot tell which field of this Connector's spec causes it/);
    t.notRegex(stalled.message, /fix the spec/);
  },
);

test.serial(
  "the API server's own refusal of a Connector's ConfigMap over 1 MiB is the control plane's, when its CA bundle is the bulk",
  async (t) => {
    const { kc } = cluster();
    const namespace = await createTestNamespace(kc, 'cm-limit');
    // Built as the operator builds it, with a bundle past what the check lets through (which only
    // a check of an older operator, or none, would have handed on), and applied as the operator does.
    const connector: Connector = {
      apiVersion: 'vaultpam.io/v1alpha1',
      kind: 'Connector',
      metadata: { namespace, name: 'edge', uid: '00000000-0000-0000-0000-000000000001' },
      spec: { connector: { org: 'acme', endpointId: 'ep-1' }, controlPlaneRef: { name: 'main' } },
    };
    const spec = defaultedSpec(connector);
    const desired = desiredConfigMap(connector, spec, {
      url: env.controlPlane.url,
      caPem: bundleOf(env.controlPlane.caPem, CONFIGMAP_LIMIT),
    });
    delete desired.metadata?.ownerReferences;
    const writer = new KubeWriter({ kc, logger: logs.logger });
    const error = await t.throwsAsync(writer.apply(desired));
    const refusal = controlPlaneContentRefusal(error, desired, spec);
    t.is(refusal?.code, 'ControlPlaneConfigInvalid', String(error));
    t.false(refusal?.temporary);
    t.is(refusal?.details?.recheckControlPlane, true);
    t.regex(refusal?.message ?? '', /Too long: may not be more than 1048576 bytes/);
    t.regex(refusal?.message ?? '', new RegExp(`an admin of ControlPlane ${namespace}/main must fix it`));
  },
);

test.serial(
  "the operator's default CA bundle too large for a Connector's ConfigMap: the start is refused, naming the flag",
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'ca-size-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const caFile = join(dir, 'ca.pem');
    await writeFile(caFile, bundleOf(env.controlPlane.caPem, CONFIGMAP_LIMIT - 'ca.crt'.length));
    const error = await t.throwsAsync(
      env.startOperator({
        controlPlane: {
          url: env.controlPlane.url,
          caFile,
          credentialSecret: { namespace: OPERATOR_NAMESPACE, name: CREDENTIAL_SECRET, key: 'credential' },
        },
      }),
    );
    t.true(isCodedError(error, 'INVALID_FLAGS'), String(error));
    t.regex(
      error?.message ?? '',
      new RegExp(
        `^--control-plane-ca-file: ${caFile} holds a CA bundle of 1,048,570 bytes, too large to hand to connectors: .*so the bundle may be at most 1,032,192 bytes; trim the bundle`,
      ),
    );
  },
);
