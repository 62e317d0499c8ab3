// The periodic look against the real API server: each Connector is looked at again on its own timer
// (reconciler.ts, periodicLookMs), so one whose pass ended on a refusal that no watched event will
// lift is tried again. The Connector informer has no resync of every Connector any more; before it
// went, that resync was what tried again.
import { AdmissionregistrationV1Api, CustomObjectsApi, EventsV1Api } from '@kubernetes/client-node';
import test from 'ava';
import { FINALIZER } from '../../src/operator/api/constants.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { connectors, type OperatorEnvironment, startOperatorEnvironment } from '../helpers/operator-env.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;

test.before(async () => {
  env = await startOperatorEnvironment(cluster());
  await env.startOperator({ resyncMs: 500 });
});
test.after.always(async () => {
  await env?.stop();
});

test('a Connector whose finalizer an admission policy refuses gets it once the policy goes, with no event of its own', async (t) => {
  const { kc } = cluster();
  const admission = kc.makeApiClient(AdmissionregistrationV1Api);
  const namespace = await createTestNamespace(kc, 'look');
  const policy = `refuse-finalizers-${namespace}`;
  await admission.createValidatingAdmissionPolicy({
    body: {
      metadata: { name: policy },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: {
          resourceRules: [
            {
              apiGroups: ['vaultpam.io'],
              apiVersions: ['*'],
              operations: ['CREATE', 'UPDATE'],
              resources: ['connectors'],
            },
          ],
        },
        validations: [
          {
            expression: '!has(object.metadata.finalizers) || size(object.metadata.finalizers) == 0',
            message: 'no finalizers on Connectors in this namespace',
          },
        ],
      },
    },
  });
  await admission.createValidatingAdmissionPolicyBinding({
    body: {
      metadata: { name: policy },
      spec: {
        policyName: policy,
        validationActions: ['Deny'],
        matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } } },
      },
    },
  });
  t.teardown(async () => {
    await admission.deleteValidatingAdmissionPolicyBinding({ name: policy }).catch(() => {});
    await admission.deleteValidatingAdmissionPolicy({ name: policy }).catch(() => {});
  });
  const api = connectors(kc);
  const spec = { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: [] } };
  // The policy is in force once a Connector that carries a finalizer is refused (a dry run: admission
  // judges it, nothing is stored).
  const custom = kc.makeApiClient(CustomObjectsApi);
  await eventually(
    async () => {
      try {
        await custom.createNamespacedCustomObject({
          group: 'vaultpam.io',
          version: 'v1alpha1',
          namespace,
          plural: 'connectors',
          dryRun: 'All',
          body: {
            apiVersion: 'vaultpam.io/v1alpha1',
            kind: 'Connector',
            metadata: { name: 'probe', namespace, finalizers: ['example.com/probe'] },
            spec,
          },
        });
        return false;
      } catch (error) {
        return String(error).includes(policy);
      }
    },
    { description: 'the admission policy refuses a finalizer' },
  );

  await api.create(namespace, { metadata: { name: 'edge', namespace }, spec });
  // The operator's passes are refused the finalizer; it takes no other step before it.
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const refused = await api.get(namespace, 'edge');
  t.deepEqual(refused.metadata.finalizers ?? [], [], 'the finalizer is refused while the policy holds');
  t.is(refused.status, undefined, 'no pass went past the finalizer');
  // A person sees why: a Warning on the Connector quoting the refusal.
  const warning = await eventually(
    () =>
      kc
        .makeApiClient(EventsV1Api)
        .listNamespacedEvent({ namespace })
        .then((list) =>
          list.items.find(
            (e) =>
              e.regarding?.name === 'edge' &&
              e.reason === 'ReconcileStalled' &&
              e.note?.includes('no finalizers on Connectors in this namespace'),
          ),
        ),
    { description: 'a ReconcileStalled Event quoting the refusal' },
  );
  t.is(warning.type, 'Warning');
  t.regex(
    warning.note ?? '',
    /refused the finalizer vaultpam.io\/connector-cleanup, .*\(tried again every --resync\)/,
  );

  // The policy goes: nothing about the Connector changes, so only a look of the operator's own
  // accord can add the finalizer now.
  await admission.deleteValidatingAdmissionPolicyBinding({ name: policy });
  const accepted = await eventually(
    () =>
      api.get(namespace, 'edge').then((c) => (c.metadata.finalizers?.includes(FINALIZER) ? c : undefined)),
    { description: 'the finalizer added at a periodic look', timeoutMs: 15_000 },
  );
  t.true(accepted.metadata.finalizers?.includes(FINALIZER));
});
