// Refusals that no watched event lifts, against the real API server and real admission policies.
// The periodic look: each Connector is looked at again on its own timer (reconciler.ts,
// periodicLookMs), so one whose finalizer was refused gets it once the refusal goes (the Connector
// informer has no resync of every Connector any more; before it went, that resync tried again).
// The finalizer's removal: refused after the release, it is said and tried again with backoff; the
// release is not run again. A Connector deleted without the operator's finalizer, or held by a
// user's after the operator removed its own, says what is, not a release under way.
import {
  AdmissionregistrationV1Api,
  CustomObjectsApi,
  EventsV1Api,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import { FINALIZER } from '../../src/operator/api/constants.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import { bindAdmissionPolicy } from '../helpers/admission-policy.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually, isGone } from '../helpers/eventually.ts';
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

/**
 * A ValidatingAdmissionPolicy bound to one namespace that refuses Connector writes for which
 * `expression` is false; removed when the test ends. Returns its name (quoted in refusals).
 */
async function admissionPolicy(
  t: ExecutionContext,
  namespace: string,
  operations: string[],
  expression: string,
  message: string,
  /** The status of the refusal: Invalid (422, the default) or Forbidden (403, as webhooks answer). */
  reason: 'Invalid' | 'Forbidden' = 'Invalid',
): Promise<string> {
  const policy = `refuse-finalizers-${namespace}`;
  await bindAdmissionPolicy(t, cluster().kc, {
    name: policy,
    namespace,
    rules: [{ apiGroups: ['vaultpam.io'], apiVersions: ['*'], operations, resources: ['connectors'] }],
    expression,
    message,
    reason,
  });
  return policy;
}

/** Waits until `policy` is in force: the dry run `probe` (nothing stored) is refused, naming it. */
function inForce(policy: string, what: string, probe: () => Promise<unknown>) {
  return eventually(
    () =>
      probe().then(
        () => false,
        (error: unknown) => String(error).includes(policy),
      ),
    { description: `the admission policy refuses ${what}` },
  );
}

/** Lifts the policy: its binding goes (the policy itself at the test's end). */
async function liftPolicy(policy: string): Promise<void> {
  await cluster()
    .kc.makeApiClient(AdmissionregistrationV1Api)
    .deleteValidatingAdmissionPolicyBinding({ name: policy });
}

/** A dry run (admission judges it, nothing is stored) of creating a Connector that carries `finalizer`. */
function createdWithFinalizer(namespace: string, finalizer: string, spec: object) {
  return cluster()
    .kc.makeApiClient(CustomObjectsApi)
    .createNamespacedCustomObject({
      group: 'vaultpam.io',
      version: 'v1alpha1',
      namespace,
      plural: 'connectors',
      dryRun: 'All',
      body: {
        apiVersion: 'vaultpam.io/v1alpha1',
        kind: 'Connector',
        metadata: { name: 'probe', namespace, finalizers: [finalizer] },
        spec,
      },
    });
}

/** Removes every finalizer of Connector `name`, a user's included: it goes, if it is being deleted. */
function dropFinalizers(namespace: string, name: string) {
  return cluster()
    .kc.makeApiClient(CustomObjectsApi)
    .patchNamespacedCustomObject(
      {
        group: 'vaultpam.io',
        version: 'v1alpha1',
        namespace,
        plural: 'connectors',
        name,
        body: [{ op: 'replace', path: '/metadata/finalizers', value: [] }],
      },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
}

/**
 * Creates Connector "edge" carrying a user's finalizer, which holds it once deleted (after the
 * operator's, if it has one); every finalizer is dropped when the test ends. Returns that finalizer.
 */
async function createHeld(t: ExecutionContext, namespace: string, spec: object): Promise<string> {
  const hold = 'example.com/hold';
  await connectors(cluster().kc).create(namespace, {
    metadata: { name: 'edge', namespace, finalizers: [hold] },
    spec: spec as Connector['spec'],
  });
  t.teardown(() => dropFinalizers(namespace, 'edge').catch(() => {}));
  return hold;
}

/** Connector "edge" of `namespace` reconciled under the operator's finalizer, its record registered. */
function registered(namespace: string) {
  return eventually(
    () =>
      connectors(cluster().kc)
        .get(namespace, 'edge')
        .then((c) => c.metadata.finalizers?.includes(FINALIZER) && c.status?.controlPlaneState !== undefined),
    { description: 'the Connector reconciled, its record registered' },
  );
}

/** The ConnectorReleased Events on Connector "edge" of `namespace`. */
function releasedEvents(namespace: string) {
  return cluster()
    .kc.makeApiClient(EventsV1Api)
    .listNamespacedEvent({ namespace })
    .then((list) =>
      list.items.filter((e) => e.regarding?.name === 'edge' && e.reason === 'ConnectorReleased'),
    );
}

/** The control plane no longer has the record of Connector "edge" of `namespace`. */
async function recordReleased(t: ExecutionContext, namespace: string): Promise<void> {
  const error = await t.throwsAsync(() => env.admin.getConnector(`${namespace}.edge`));
  t.is((error as { code?: string }).code, 'CONNECTOR_NOT_FOUND', 'the record was released');
}

/** Connector "edge" of `namespace` once its Ready message satisfies `holds` (and `also`, if given). */
function edgeWhenReady(
  namespace: string,
  holds: (message: string) => boolean,
  description: string,
  also: (c: Connector) => boolean = () => true,
) {
  return eventually(
    () =>
      connectors(cluster().kc)
        .get(namespace, 'edge')
        .then((c) =>
          also(c) && holds(c.status?.conditions?.find((x) => x.type === 'Ready')?.message ?? '')
            ? c
            : undefined,
        ),
    { description, timeoutMs: 15_000 },
  );
}

/** The Warning ReconcileStalled Event on Connector `name` whose note holds `text`. */
function stalledEvent(namespace: string, name: string, text: string) {
  return eventually(
    () =>
      cluster()
        .kc.makeApiClient(EventsV1Api)
        .listNamespacedEvent({ namespace })
        .then((list) =>
          list.items.find(
            (e) => e.regarding?.name === name && e.reason === 'ReconcileStalled' && e.note?.includes(text),
          ),
        ),
    { description: `a ReconcileStalled Event quoting "${text}"` },
  );
}

const finalizerRefused = test.macro(async (t, reason: 'Invalid' | 'Forbidden') => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'look');
  const policy = await admissionPolicy(
    t,
    namespace,
    ['CREATE', 'UPDATE'],
    '!has(object.metadata.finalizers) || size(object.metadata.finalizers) == 0',
    'no finalizers on Connectors in this namespace',
    reason,
  );
  const api = connectors(kc);
  const spec = { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: [] } };
  // The policy is in force once a Connector that carries a finalizer is refused.
  await inForce(policy, 'a finalizer', () => createdWithFinalizer(namespace, 'example.com/probe', spec));

  await api.create(namespace, { metadata: { name: 'edge', namespace }, spec });
  // The operator's passes are refused the finalizer; it takes no other step before it.
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const refused = await eventually(() => api.get(namespace, 'edge').then((c) => (c.status ? c : undefined)), {
    description: 'a status on the refused Connector',
  });
  t.deepEqual(refused.metadata.finalizers ?? [], [], 'the finalizer is refused while the policy holds');
  // The status says it (kubectl, kstatus, Argo CD, Flux read it), and no pass went past the finalizer.
  const stalled = refused.status?.conditions?.find((c) => c.type === 'Stalled');
  t.is(stalled?.status, 'True');
  t.is(stalled?.reason, 'FinalizerRefused');
  t.regex(stalled?.message ?? '', /no finalizers on Connectors in this namespace/);
  t.is(refused.status?.conditions?.find((c) => c.type === 'Ready')?.reason, 'FinalizerRefused');
  t.is(refused.status?.phase, undefined, 'nothing observed, no phase claimed');
  t.is(refused.status?.enrollment, undefined, 'nothing minted');
  // A person sees why: a Warning on the Connector quoting the refusal.
  const warning = await stalledEvent(namespace, 'edge', 'no finalizers on Connectors in this namespace');
  t.is(warning.type, 'Warning');
  t.regex(
    warning.note ?? '',
    /refused the finalizer vaultpam.io\/connector-cleanup, .*\(tried again every --resync\)/,
  );
  // Said once: the looks that meet the same refusal again (every 500 ms here) add no Event and no
  // repeat to its series.
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const warnings = (
    await cluster().kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace })
  ).items.filter((e) => e.regarding?.name === 'edge' && e.reason === 'ReconcileStalled');
  t.is(warnings.length, 1, 'one ReconcileStalled Event');
  t.is(warnings[0]?.series, undefined, 'not repeated at each look');

  // The policy goes: nothing about the Connector changes, so only a look of the operator's own
  // accord can add the finalizer now.
  await liftPolicy(policy);
  const accepted = await eventually(
    () =>
      api.get(namespace, 'edge').then((c) => (c.metadata.finalizers?.includes(FINALIZER) ? c : undefined)),
    { description: 'the finalizer added at a periodic look', timeoutMs: 15_000 },
  );
  t.true(accepted.metadata.finalizers?.includes(FINALIZER));
  // The pass that got the finalizer wrote the whole status: the stall is gone.
  const reconciled = await eventually(
    () => api.get(namespace, 'edge').then((c) => (c.status?.phase ? c : undefined)),
    { description: 'the status of a full pass' },
  );
  t.is(
    reconciled.status?.conditions?.find((c) => c.type === 'Stalled'),
    undefined,
  );
});

test(
  'a Connector whose finalizer an admission policy refuses (422) gets it once the policy goes, with no event of its own',
  finalizerRefused,
  'Invalid',
);
test(
  'a Connector whose finalizer an admission policy refuses as a webhook does (403) gets it once the policy goes',
  finalizerRefused,
  'Forbidden',
);

test('a Connector whose finalizer removal an admission webhook refuses (403) is released once, says so, and goes once the policy goes', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'letgo');
  const api = connectors(kc);
  const spec = { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: [] } };
  await api.create(namespace, { metadata: { name: 'edge', namespace }, spec });
  await registered(namespace);
  const policy = await admissionPolicy(
    t,
    namespace,
    ['UPDATE'],
    `!(has(oldObject.metadata.finalizers) && '${FINALIZER}' in oldObject.metadata.finalizers) || (has(object.metadata.finalizers) && '${FINALIZER}' in object.metadata.finalizers)`,
    'the cleanup finalizer stays on Connectors in this namespace',
    // A 403, as admission webhooks (Kyverno, Gatekeeper) answer.
    'Forbidden',
  );
  // The policy is in force once a dry run removing the finalizer is refused.
  const custom = kc.makeApiClient(CustomObjectsApi);
  await inForce(policy, 'removing the finalizer', () =>
    custom.patchNamespacedCustomObject({
      group: 'vaultpam.io',
      version: 'v1alpha1',
      namespace,
      plural: 'connectors',
      name: 'edge',
      dryRun: 'All',
      body: [{ op: 'replace', path: '/metadata/finalizers', value: [] }],
    }),
  );

  await api.delete(namespace, 'edge');
  // The release runs; the removal of the finalizer is refused, and a person sees why.
  const warning = await stalledEvent(namespace, 'edge', 'the cleanup finalizer stays on Connectors');
  t.is(warning.type, 'Warning');
  t.regex(
    warning.note ?? '',
    /refused to remove the finalizer vaultpam.io\/connector-cleanup: .*the release is over \(revoked live tokens and released /,
  );
  await recordReleased(t, namespace);
  const held = await edgeWhenReady(
    namespace,
    (message) => message.includes('refused to remove the finalizer'),
    'the status says the removal was refused',
  );
  t.is(held.status?.phase, 'Terminating');
  // Retried while refused (the policy still holds a few seconds on), not released again.
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  t.true((await api.get(namespace, 'edge')).metadata.finalizers?.includes(FINALIZER));

  await liftPolicy(policy);
  await eventually(() => isGone(() => api.get(namespace, 'edge')), {
    description: 'the Connector gone once the removal is accepted',
    timeoutMs: 45_000,
  });
  t.is((await releasedEvents(namespace)).length, 1, 'released once, not at every retry');
});

test('a Connector whose finalizer was refused and that is then deleted says it is being deleted, not Stalled', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'refused-del');
  // Refuses the operator's finalizer only: another one (a user's, here) holds the deleted Connector.
  const policy = await admissionPolicy(
    t,
    namespace,
    ['CREATE', 'UPDATE'],
    `!has(object.metadata.finalizers) || !('${FINALIZER}' in object.metadata.finalizers)`,
    'no operator finalizer on Connectors in this namespace',
  );
  const api = connectors(kc);
  const spec = { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: [] } };
  await inForce(policy, 'the finalizer', () => createdWithFinalizer(namespace, FINALIZER, spec));
  const hold = await createHeld(t, namespace, spec);
  await eventually(
    () =>
      api
        .get(namespace, 'edge')
        .then((c) => c.status?.conditions?.find((x) => x.type === 'Stalled')?.reason === 'FinalizerRefused'),
    { description: 'Stalled FinalizerRefused' },
  );

  // Deleted: the user's finalizer holds it, and the operator's was never on it.
  await api.delete(namespace, 'edge');
  const deleting = await eventually(
    () => api.get(namespace, 'edge').then((c) => (c.status?.phase === 'Terminating' ? c : undefined)),
    { description: 'the status says the Connector is being deleted' },
  );
  const conditions = deleting.status?.conditions ?? [];
  t.is(
    conditions.find((c) => c.type === 'Stalled'),
    undefined,
    'no stall is left: the finalizer it waited for can no longer be added to a Connector being deleted',
  );
  const ready = conditions.find((c) => c.type === 'Ready');
  t.is(ready?.status, 'False');
  t.is(ready?.reason, 'Finalizing');
  t.regex(ready?.message ?? '', /being deleted without the operator's finalizer/);
  t.regex(ready?.message ?? '', /never reached a control plane: there is nothing to release/);
  t.regex(ready?.message ?? '', /example\.com\/hold/, 'it names what holds the Connector');
  t.is(conditions.find((c) => c.type === 'Reconciling')?.reason, 'Finalizing');
  t.deepEqual(deleting.metadata.finalizers, [hold]);
});

test("a Connector a user's finalizer holds after the operator's release says it was released and what holds it", async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'held-after');
  const api = connectors(kc);
  const spec = { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: [] } };
  const hold = await createHeld(t, namespace, spec);
  await registered(namespace);

  // Deleted: the operator releases and removes its finalizer; the user's holds the Connector.
  await api.delete(namespace, 'edge');
  await eventually(() => releasedEvents(namespace).then((events) => events.length > 0), {
    description: 'the ConnectorReleased Event',
  });
  await recordReleased(t, namespace);
  // The status no longer says a release under way, which would wait for nothing that comes.
  const held = await edgeWhenReady(
    namespace,
    (message) => !/revoking live tokens/.test(message),
    "the status after the operator's finalizer went",
    (c) => !c.metadata.finalizers?.includes(FINALIZER),
  );
  t.deepEqual(held.metadata.finalizers, [hold]);
  t.is(held.status?.phase, 'Terminating');
  const conditions = held.status?.conditions ?? [];
  const ready = conditions.find((c) => c.type === 'Ready');
  t.is(ready?.status, 'False');
  t.is(ready?.reason, 'Finalizing');
  t.regex(ready?.message ?? '', /the operator's release is over \(revoked live tokens and released /);
  t.regex(
    ready?.message ?? '',
    /removed its finalizer vaultpam\.io\/connector-cleanup, so it takes no further step/,
  );
  t.regex(ready?.message ?? '', /it goes once the finalizers example\.com\/hold are removed/);
  const reconciling = conditions.find((c) => c.type === 'Reconciling');
  t.is(reconciling?.reason, 'Finalizing');
  t.is(reconciling?.message, ready?.message);
  t.is(
    conditions.find((c) => c.type === 'Stalled'),
    undefined,
    'never Stalled and Reconciling both',
  );

  // The user's finalizer goes: so does the Connector.
  await dropFinalizers(namespace, 'edge');
  await eventually(() => isGone(() => api.get(namespace, 'edge')), { description: 'the Connector gone' });
});
