// A rule added to the Connector CRD must not trap objects stored before it: the API server ratchets
// (an update that leaves a field as it was is not judged by that field's new rules), so such a
// Connector keeps its other updates (its finalizer can be removed), while a change of the field
// itself is judged, and the operator reports the stored value as InvalidSpec. Shown for the rules on
// spec.resources and spec.affinity, by installing the CRD without them, storing a Connector they
// refuse, and then installing the CRD as it ships.
import {
  ApiextensionsV1Api,
  CustomObjectsApi,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import test from 'ava';
import { isCodedError } from '../../src/lib/errors.ts';
import { CRD_NAME, GROUP, PLURAL, VERSION } from '../../src/operator/api/constants.ts';
import { type Connector, type ConnectorSpec, defaultedSpec } from '../../src/operator/api/types.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { loadConnectorCrdModel } from '../helpers/crd-model.ts';
import { eventually } from '../helpers/eventually.ts';

const cluster = useCluster(test);

/** The messages of the rules this test removes: those on spec.resources and spec.affinity that came later. */
const LATER_RULES = [
  /^spec\.affinity\./,
  /cannot be overcommitted/,
  /hugepages need a cpu/,
  /is counted in whole units/,
  /takes a whole multiple of its page size/,
  /an extended resource name \(outside kubernetes\.io\)/,
];

/**
 * The CRD as it was before those rules: each node of the schema without them. The client model
 * keeps `items` as plain YAML (its type is any), so a rule list is under either name.
 */
function withoutLaterRules(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) withoutLaterRules(item);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const schema = node as Record<string, unknown>;
  for (const key of ['x_kubernetes_validations', 'x-kubernetes-validations']) {
    const rules = schema[key] as Array<{ message?: string }> | undefined;
    if (rules)
      schema[key] = rules.filter((rule) => !LATER_RULES.some((later) => later.test(rule.message ?? '')));
  }
  for (const value of Object.values(schema)) withoutLaterRules(value);
}

const refused: ConnectorSpec = {
  connector: { org: 'acme', endpointId: 'ep-1' },
  resources: { limits: { memory: '256Mi', 'example.com/gpu': '0.5' } },
  affinity: {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In' }] }],
      },
    },
  },
};

test('a Connector stored before the resources and affinity rules keeps its other updates, and its fields are judged when they change', async (t) => {
  const { kc } = cluster();
  const crds = kc.makeApiClient(ApiextensionsV1Api);
  const api = kc.makeApiClient(CustomObjectsApi);
  const earlier = await loadConnectorCrdModel();
  withoutLaterRules(earlier.spec);
  await crds.createCustomResourceDefinition({ body: earlier });
  await eventually(
    async () =>
      (await crds.readCustomResourceDefinition({ name: CRD_NAME })).status?.conditions?.some(
        (c) => c.type === 'Established' && c.status === 'True',
      ),
    { description: `${CRD_NAME} established` },
  );
  const namespace = await createTestNamespace(kc, 'ratchet');
  const ref = { group: GROUP, version: VERSION, namespace, plural: PLURAL };
  const body = (name: string, spec: ConnectorSpec, finalizers: string[] = []) => ({
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'Connector',
    metadata: { name, namespace, finalizers },
    spec,
  });
  const stored = await eventually(
    () =>
      api
        .createNamespacedCustomObject({ ...ref, body: body('stored', refused, ['vaultpam.io/test']) })
        .then((created) => created as Connector)
        .catch(() => undefined),
    { description: 'a Connector stored under the earlier CRD' },
  );

  const current: V1CustomResourceDefinition = await loadConnectorCrdModel();
  current.metadata = {
    ...current.metadata,
    resourceVersion: (await crds.readCustomResourceDefinition({ name: CRD_NAME })).metadata?.resourceVersion,
  };
  await crds.replaceCustomResourceDefinition({ name: CRD_NAME, body: current });
  // The new rules are in force once a new Connector with the same spec is refused.
  await eventually(
    () =>
      api.createNamespacedCustomObject({ ...ref, dryRun: 'All', body: body('fresh', refused) }).then(
        () => false,
        () => true,
      ),
    { description: 'the shipped rules in force' },
  );

  // Another field changed and the finalizer removed: the stored resources and affinity are not judged.
  const updated = structuredClone(stored);
  updated.spec.paused = true;
  updated.metadata.labels = { team: 'platform' };
  const paused = (await api.replaceNamespacedCustomObject({
    ...ref,
    name: 'stored',
    body: updated,
  })) as Connector;
  t.true(paused.spec.paused);
  const released = structuredClone(paused);
  released.metadata.finalizers = [];
  const unfinalized = (await api.replaceNamespacedCustomObject({
    ...ref,
    name: 'stored',
    body: released,
  })) as Connector;
  t.deepEqual(unfinalized.metadata.finalizers ?? [], []);

  // Changing the field itself is judged by its rule, naming it.
  const changed = structuredClone(unfinalized);
  changed.spec.resources = { limits: { memory: '256Mi', 'example.com/gpu': '0.25' } };
  const error = await t.throwsAsync(
    api.replaceNamespacedCustomObject({ ...ref, name: 'stored', body: changed }),
  );
  t.regex(
    String((error as { body?: unknown }).body),
    /spec\.resources\.limits: example\.com\/gpu is an extended resource, counted in whole units/,
  );

  // The operator does not use what admission refuses: InvalidSpec, naming the field.
  try {
    defaultedSpec(paused);
    t.fail('defaultedSpec accepted a spec the shipped CRD refuses');
  } catch (problem) {
    t.true(isCodedError(problem), String(problem));
    t.regex((problem as Error).message, /spec\.resources\.limits\.example\.com\/gpu/);
  }
});
