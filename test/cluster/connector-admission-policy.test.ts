// kustomize/components/connector-admission-policy on a real API server: the component is rendered by
// the pinned kustomize (alone and added to the production overlay, with an overlay's own allow
// lists patched in), applied server-side next to the Connector CRD, and then every rule is played:
// images from allowed registries or repositories pass and others are refused with a message that
// names the field, the value and how to allow it; an absent spec.image passes; serviceAccountName and
// existingClaim pass only when allowed; spec.connector.id passes when absent, of the Connector's own
// namespace (<namespace>.) or listed; spec.connector.org is unrestricted while allowedOrgs is absent
// and, once it is present, admitted only when listed for the namespace or for all; an update is judged
// only on a value it sets or changes, so a tightened list never blocks the operator's finalizer; and
// without its parameters the policy refuses everything. Bindings take effect asynchronously, so every change of policy or parameters is followed
// by polling until its effect is observed before anything is asserted.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type V1ValidatingAdmissionPolicyBinding,
} from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import * as yaml from 'js-yaml';
import { ensureClusterBinaries } from '../../dev/local-cluster/binaries.ts';
import { FINALIZER, GROUP, PLURAL, VERSION } from '../../src/operator/api/constants.ts';
import { createTestNamespace, installCrds, repoRoot, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';

const run = promisify(execFile);
const cluster = useCluster(test);

const COMPONENT = 'kustomize/components/connector-admission-policy';
const POLICY = 'vaultpam-connector-admission';
const PARAMS = 'vaultpam-connector-admission';
const PARAMS_NAMESPACE = 'vaultpam-system';
const FIELD_MANAGER = 'connector-admission-policy-test';

const ALLOWED_REPOSITORY = 'ghcr.io/vaultpam/vaultpam-connector';
const MIRROR = 'registry.example.com/mirror/';
const REFUSED_IMAGE = 'evil.example.com/connector:1.0';
/** Connector ids of another namespace, listed in the test parameters: for this one, and for all. */
const HANDED_OVER_ID = 'team-b.handed-over';
const SHARED_ID = 'shared.edge';

interface Params {
  allowedImagePrefixes?: string;
  allowedServiceAccountNames?: string;
  allowedExistingClaims?: string;
  allowedConnectorIds?: string;
  allowedOrgs?: string;
}

interface ConnectorBody {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; finalizers?: string[]; resourceVersion?: string };
  spec: Record<string, unknown> & { storage?: Record<string, unknown>; connector: Record<string, unknown> };
}

// --- rendering and applying ------------------------------------------------------------------------

let kustomize = '';
async function kustomizeBinary(): Promise<string> {
  kustomize ||= join(await ensureClusterBinaries(), 'kustomize');
  return kustomize;
}

/** `kustomize build dir`, parsed. */
async function build(dir: string): Promise<KubernetesObject[]> {
  const { stdout } = await run(await kustomizeBinary(), ['build', dir], { maxBuffer: 16 * 1024 * 1024 });
  return yaml
    .loadAll(stdout)
    .filter((doc): doc is KubernetesObject => typeof doc === 'object' && doc !== null);
}

/**
 * Renders an overlay of the kind docs/install.md shows, written to a temporary directory: `resources`
 * and the component (paths relative to the repository), and the parameters patched in.
 */
async function renderOverlay(resources: string[], params?: Params): Promise<KubernetesObject[]> {
  const dir = await mkdtemp(join(tmpdir(), 'vaultpam-admission-'));
  try {
    const at = (path: string) => relative(dir, join(repoRoot, path));
    const kustomization: Record<string, unknown> = {
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: resources.map(at),
      components: [at(COMPONENT)],
    };
    if (params) {
      const patch = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: PARAMS, namespace: PARAMS_NAMESPACE },
        data: params,
      };
      kustomization.patches = [{ patch: yaml.dump(patch) }];
    }
    await writeFile(join(dir, 'kustomization.yaml'), yaml.dump(kustomization));
    return await build(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function identity(object: KubernetesObject): string {
  const namespace = object.metadata?.namespace ? `${object.metadata.namespace}/` : '';
  return `${object.apiVersion} ${object.kind} ${namespace}${object.metadata?.name}`;
}

async function apply(objects: KubernetesObject[]): Promise<void> {
  const client = KubernetesObjectApi.makeApiClient(cluster().kc);
  for (const object of objects) {
    await client.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }
}

// --- Connectors ------------------------------------------------------------------------------------

let namespace = '';
let counter = 0;

/** The parameters the tests run with (the namespace is known once setup has created it). */
const testParams = (): Params => ({
  allowedImagePrefixes: `${ALLOWED_REPOSITORY}\n${MIRROR}`,
  allowedServiceAccountNames: `${namespace}/connector-sa, shared-sa`,
  allowedExistingClaims: `${namespace}/restored-identity`,
  allowedConnectorIds: `${namespace}/${HANDED_OVER_ID}\n${SHARED_ID}`,
});

/**
 * A valid Connector under a fresh name in the test namespace: the smallest spec the CRD accepts (no
 * control-plane reference: the operator's default applies), changed by `change`.
 */
function connector(change: (spec: ConnectorBody['spec']) => void = () => {}): ConnectorBody {
  counter += 1;
  const spec: ConnectorBody['spec'] = {
    connector: { org: 'acme', endpointId: `ep-${counter}`, allowedNetworks: ['10.20.0.0/16'] },
  };
  change(spec);
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'Connector',
    metadata: { name: `policy-${counter}`, namespace },
    spec,
  };
}

const api = () => cluster().kc.makeApiClient(CustomObjectsApi);
const ref = () => ({ group: GROUP, version: VERSION, namespace, plural: PLURAL });

function create(body: ConnectorBody, dryRun = false): Promise<ConnectorBody> {
  return api().createNamespacedCustomObject({
    ...ref(),
    body,
    ...(dryRun ? { dryRun: 'All' } : {}),
  }) as Promise<ConnectorBody>;
}

function replace(existing: ConnectorBody, change: (body: ConnectorBody) => void): Promise<ConnectorBody> {
  const body = structuredClone(existing);
  change(body);
  return api().replaceNamespacedCustomObject({
    ...ref(),
    name: body.metadata.name,
    body,
  }) as Promise<ConnectorBody>;
}

function mergePatch(name: string, body: object): Promise<ConnectorBody> {
  return api().patchNamespacedCustomObject(
    { ...ref(), name, body },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  ) as Promise<ConnectorBody>;
}

/**
 * Deletes a Connector that carries the operator's finalizer and removes it, as the operator does once
 * released, asserting the metadata patch passes and the Connector goes.
 */
async function deleteReleasingFinalizer(t: ExecutionContext, name: string): Promise<void> {
  await api().deleteNamespacedCustomObject({ ...ref(), name });
  const released = await mergePatch(name, { metadata: { finalizers: null } });
  t.deepEqual(released.metadata.finalizers ?? [], [], 'the finalizer is removed from a deleting Connector');
  await eventually(
    async () => (await refusalOf(api().getNamespacedCustomObject({ ...ref(), name })))?.code === 404,
    { description: 'the Connector is gone' },
  );
}

interface Refusal {
  code: number;
  message: string;
}

/** The API server's refusal of `write` (HTTP status and Status message), or undefined if it passed. */
async function refusalOf(write: Promise<unknown>): Promise<Refusal | undefined> {
  try {
    await write;
    return undefined;
  } catch (error) {
    const { code, body } = error as { code?: number; body?: unknown };
    if (code === undefined) throw error;
    const parsed =
      typeof body === 'string' ? (JSON.parse(body) as { message?: string }) : (body as { message?: string });
    return { code, message: parsed?.message ?? String(error) };
  }
}

const byPolicy = (refusal: Refusal | undefined) =>
  refusal?.code === 422 && refusal.message.includes(`ValidatingAdmissionPolicy '${POLICY}'`);

/**
 * Creates `body` and asserts the policy refuses it as the API server refuses a spec the CRD refuses
 * (HTTP 422), with exactly this message (`reason` after the API server's own preamble).
 */
async function assertDenied(t: ExecutionContext, body: ConnectorBody, reason: string): Promise<void> {
  const refusal = await refusalOf(create(body));
  t.is(refusal?.code, 422, 'HTTP 422 Invalid, as for a spec the CRD refuses');
  t.is(
    refusal?.message,
    `connectors.vaultpam.io "${body.metadata.name}" is forbidden: ` +
      `ValidatingAdmissionPolicy '${POLICY}' with binding '${POLICY}' denied request: ${reason}`,
  );
}

/** Polls a dry-run create until the policy refuses it (refused: true) or until it passes. */
async function untilPolicy(body: () => ConnectorBody, refused: boolean, description: string): Promise<void> {
  await eventually(
    async () => {
      const refusal = await refusalOf(create(body(), true));
      if (refusal && !byPolicy(refusal))
        throw new Error(`refused otherwise (HTTP ${refusal.code}): ${refusal.message}`);
      return byPolicy(refusal) === refused;
    },
    { timeoutMs: 60_000, intervalMs: 250, description },
  );
}

const refusedImage = () => connector((spec) => Object.assign(spec, { image: REFUSED_IMAGE }));

async function applyParams(params: Params): Promise<void> {
  await apply((await renderOverlay([], params)).filter((o) => o.kind === 'ConfigMap'));
}

// ava runs before hooks concurrently, so the cluster's own hook may not have finished in another
// hook; every test awaits this one-time setup instead (tests start after all hooks).
let setupDone: Promise<void> | undefined;
function setup(): Promise<void> {
  setupDone ??= (async () => {
    const { kc } = cluster();
    await installCrds(kc);
    await kc
      .makeApiClient(CoreV1Api)
      .createNamespace({ body: { metadata: { name: PARAMS_NAMESPACE } } })
      .catch((error: unknown) => {
        if ((error as { code?: number }).code !== 409) throw error;
      });
    namespace = await createTestNamespace(kc, 'vap');
    await apply(await renderOverlay([], testParams()));
    await untilPolicy(refusedImage, true, 'the policy refuses an image from another registry');
  })();
  return setupDone;
}

// --- tests (serial: the last ones change the parameters) -------------------------------------------

test.serial(
  'the component renders with the real kustomize: a policy, its binding and its parameters, alone and in the production overlay',
  async (t) => {
    const alone = await renderOverlay([]);
    t.deepEqual(alone.map(identity).sort(), [
      `admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy ${POLICY}`,
      `admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding ${POLICY}`,
      `v1 ConfigMap ${PARAMS_NAMESPACE}/${PARAMS}`,
    ]);
    const binding = alone.find(
      (o) => o.kind === 'ValidatingAdmissionPolicyBinding',
    ) as V1ValidatingAdmissionPolicyBinding;
    t.is(binding.spec?.policyName, POLICY);
    t.deepEqual(binding.spec?.validationActions, ['Deny']);
    t.like(binding.spec?.paramRef, {
      name: PARAMS,
      namespace: PARAMS_NAMESPACE,
      parameterNotFoundAction: 'Deny',
    });
    t.like((alone.find((o) => o.kind === 'ConfigMap') as { data?: Params }).data, {
      allowedImagePrefixes: ALLOWED_REPOSITORY,
      allowedServiceAccountNames: '',
      allowedExistingClaims: '',
      allowedConnectorIds: '',
    });
    t.false(
      'allowedOrgs' in ((alone.find((o) => o.kind === 'ConfigMap') as { data?: Params }).data ?? {}),
      'allowedOrgs is not set by default: every organisation stays allowed, as before the key existed',
    );

    const production = await renderOverlay(['kustomize/overlays/production'], {
      allowedServiceAccountNames: 'team-a/connector',
    });
    const base = (await build(join(repoRoot, 'kustomize', 'overlays', 'production'))).map(identity);
    const names = production.map(identity);
    t.deepEqual(
      names.filter((name) => !base.includes(name)).sort(),
      alone.map(identity).sort(),
      'the component adds exactly its three objects to the production overlay',
    );
    t.deepEqual(
      base.filter((name) => !names.includes(name)),
      [],
      'and keeps every object of the production overlay',
    );
    t.like(
      (production.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === PARAMS) as { data?: Params })
        .data,
      { allowedImagePrefixes: ALLOWED_REPOSITORY, allowedServiceAccountNames: 'team-a/connector' },
      "an overlay's patch replaces the keys it sets and keeps the others",
    );
  },
);

test.serial(
  'the API server type-checks the policy against the Connector schema without a warning',
  async (t) => {
    await setup();
    const admission = cluster().kc.makeApiClient(AdmissionregistrationV1Api);
    const policy = await eventually(
      async () => {
        const live = await admission.readValidatingAdmissionPolicy({ name: POLICY });
        return live.status?.observedGeneration === live.metadata?.generation && live;
      },
      { description: 'the policy has been type-checked' },
    );
    t.truthy(policy.status?.typeChecking, 'the policy has been type-checked');
    t.deepEqual(policy.status?.typeChecking?.expressionWarnings ?? [], []);
    t.deepEqual(
      policy.status?.conditions?.filter((c) => c.status !== 'True') ?? [],
      [],
      'no condition reports a problem',
    );
  },
);

test.serial(
  'an image from an allowed registry or repository is admitted; another is refused, naming the field, the value and how to allow it',
  async (t) => {
    await setup();
    for (const image of [
      `${ALLOWED_REPOSITORY}:0.1.0`,
      `${ALLOWED_REPOSITORY}@sha256:${'a'.repeat(64)}`,
      `${ALLOWED_REPOSITORY}:0.1.0@sha256:${'b'.repeat(64)}`,
      `${MIRROR}vaultpam/connector:0.1.0`,
    ]) {
      const created = await create(connector((spec) => Object.assign(spec, { image })));
      t.is(created.spec.image, image, `${image} is admitted`);
    }
    for (const image of [
      REFUSED_IMAGE,
      // Prefixes match at a '/', ':' or '@' boundary only.
      `${ALLOWED_REPOSITORY}-evil:0.1.0`,
      'registry.example.com/mirrored/connector:1',
      // A short name is not a fully qualified allowed one (the runtime resolves it elsewhere).
      'vaultpam-connector:0.1.0',
    ]) {
      const refusal = await refusalOf(create(connector((spec) => Object.assign(spec, { image }))));
      t.true(byPolicy(refusal), `${image} is refused by the policy: ${refusal?.message}`);
      t.true(refusal?.message.includes(`spec.image "${image}" is not from an allowed registry`));
    }
    const refused = refusedImage();
    await assertDenied(
      t,
      refused,
      `spec.image "${REFUSED_IMAGE}" is not from an allowed registry or repository ` +
        `(allowed: ${ALLOWED_REPOSITORY}, ${MIRROR}); leave spec.image out to run the default connector image ` +
        'of the operator, or ask a cluster admin to add its registry or repository to allowedImagePrefixes ' +
        `in the ConfigMap ${PARAMS_NAMESPACE}/${PARAMS}`,
    );
  },
);

test.serial('a Connector without spec.image (the operator default image) is admitted', async (t) => {
  await setup();
  const created = await create(connector());
  t.false('image' in created.spec);
});

test.serial(
  'spec.serviceAccountName is refused unless listed, and admitted when listed as namespace/name or as a name for every namespace',
  async (t) => {
    await setup();
    const withAccount = (name: string) =>
      connector((spec) => Object.assign(spec, { serviceAccountName: name }));
    const refusal = await refusalOf(create(withAccount('cluster-admin-sa')));
    t.true(byPolicy(refusal), `refused by the policy: ${refusal?.message}`);
    t.true(
      refusal?.message.includes(
        `spec.serviceAccountName "cluster-admin-sa" is not allowed in namespace ${namespace}: ` +
          'the connector pod would run as that ServiceAccount',
      ),
      refusal?.message,
    );
    t.true(
      refusal?.message.includes(
        `add "${namespace}/cluster-admin-sa" to allowedServiceAccountNames in the ConfigMap ${PARAMS_NAMESPACE}/${PARAMS}`,
      ),
      refusal?.message,
    );
    t.is((await create(withAccount('connector-sa'))).spec.serviceAccountName, 'connector-sa');
    t.is((await create(withAccount('shared-sa'))).spec.serviceAccountName, 'shared-sa');

    // Listed for another namespace only: refused here.
    const other = await createTestNamespace(cluster().kc, 'vap-other');
    const elsewhere = withAccount('connector-sa');
    elsewhere.metadata.namespace = other;
    const refusedElsewhere = await refusalOf(
      api().createNamespacedCustomObject({ ...ref(), namespace: other, body: elsewhere }),
    );
    t.true(byPolicy(refusedElsewhere), `connector-sa is listed for ${namespace} only`);

    // Setting one on update is judged as on create.
    const plain = await create(connector());
    const added = await refusalOf(
      replace(plain, (body) => Object.assign(body.spec, { serviceAccountName: 'cluster-admin-sa' })),
    );
    t.true(byPolicy(added), 'adding a ServiceAccount that is not listed is refused on update');
  },
);

test.serial(
  'an update that switches to a disallowed image is refused; updates that keep the image pass',
  async (t) => {
    await setup();
    const created = await create(
      connector((spec) => Object.assign(spec, { image: `${ALLOWED_REPOSITORY}:0.1.0` })),
    );
    const refusal = await refusalOf(
      replace(created, (body) => Object.assign(body.spec, { image: REFUSED_IMAGE })),
    );
    t.true(byPolicy(refusal), `refused by the policy: ${refusal?.message}`);
    t.true(refusal?.message.includes(`spec.image "${REFUSED_IMAGE}" is not from an allowed registry`));
    const patched = await refusalOf(mergePatch(created.metadata.name, { spec: { image: REFUSED_IMAGE } }));
    t.true(byPolicy(patched), 'a merge patch is refused the same way');

    const upgraded = await replace(created, (body) =>
      Object.assign(body.spec, { image: `${ALLOWED_REPOSITORY}:0.2.0` }),
    );
    t.is(upgraded.spec.image, `${ALLOWED_REPOSITORY}:0.2.0`, 'another allowed image passes');
    const paused = await mergePatch(created.metadata.name, { spec: { paused: true } });
    t.is(paused.spec.paused, true, 'a change of another field passes');
    const removed = await mergePatch(created.metadata.name, { spec: { image: null } });
    t.false('image' in removed.spec, 'removing spec.image (back to the default image) passes');
  },
);

test.serial(
  "spec.storage.existingClaim: the Connector's own claim and a listed claim are admitted; another is refused, on create and on update",
  async (t) => {
    await setup();
    const withClaim = (claim: string, name?: string) => {
      const body = connector((spec) => Object.assign(spec, { storage: { existingClaim: claim } }));
      if (name) body.metadata.name = name;
      return body;
    };
    const own = await create(withClaim('data-reattached-0', 'reattached'));
    t.is(own.spec.storage?.existingClaim, 'data-reattached-0', 'its own claim data-<name>-0');
    const listed = await create(withClaim('restored-identity'));
    t.is(listed.spec.storage?.existingClaim, 'restored-identity', 'a listed claim');

    const stranger = withClaim('data-reattached-0');
    const refusal = await refusalOf(create(stranger));
    t.true(byPolicy(refusal), "another Connector's claim is refused");
    t.true(
      refusal?.message.includes(
        `spec.storage.existingClaim "data-reattached-0" is not allowed in namespace ${namespace}: ` +
          'the connector pod would mount that claim and could read and change what it holds; ' +
          `a Connector may name its own claim, data-${stranger.metadata.name}-0, and for another one a cluster admin adds ` +
          `"${namespace}/data-reattached-0" to allowedExistingClaims in the ConfigMap ${PARAMS_NAMESPACE}/${PARAMS}`,
      ),
      refusal?.message,
    );

    // The one storage change the CRD allows: from ephemeral to durable storage, here an existing claim.
    const ephemeral = await create(
      connector((spec) => Object.assign(spec, { storage: { ephemeral: true } })),
    );
    const moved = await refusalOf(
      replace(ephemeral, (body) =>
        Object.assign(body.spec, { storage: { existingClaim: 'someone-elses-data' } }),
      ),
    );
    t.true(byPolicy(moved), `moving to a claim that is not allowed is refused: ${moved?.message}`);
    const durable = await replace(ephemeral, (body) =>
      Object.assign(body.spec, { storage: { existingClaim: 'restored-identity' } }),
    );
    t.is(durable.spec.storage?.existingClaim, 'restored-identity', 'moving to a listed claim passes');
  },
);

test.serial(
  "tightened parameters do not block updates that leave a value alone: the operator's finalizer is added and removed",
  async (t) => {
    await setup();
    const mirrored = `${MIRROR}vaultpam/connector:0.1.0`;
    const created = await create(connector((spec) => Object.assign(spec, { image: mirrored })));
    await applyParams({ ...testParams(), allowedImagePrefixes: ALLOWED_REPOSITORY });
    t.teardown(async () => {
      await applyParams(testParams());
      await untilPolicy(
        () => connector((spec) => Object.assign(spec, { image: mirrored })),
        false,
        'the mirror is allowed again',
      );
    });
    await untilPolicy(
      () => connector((spec) => Object.assign(spec, { image: mirrored })),
      true,
      'the mirror is no longer allowed for new Connectors',
    );

    // As the operator does it: the finalizer is applied to metadata, the spec is left alone.
    const finalized = await mergePatch(created.metadata.name, { metadata: { finalizers: [FINALIZER] } });
    t.deepEqual(finalized.metadata.finalizers, [FINALIZER], 'the finalizer is added');
    const paused = await mergePatch(created.metadata.name, { spec: { paused: true } });
    t.is(paused.spec.image, mirrored, 'another field changes; the grandfathered image stays');
    const changed = await refusalOf(mergePatch(created.metadata.name, { spec: { image: `${mirrored}-2` } }));
    t.true(byPolicy(changed), 'changing the image is judged by the tightened list');

    await deleteReleasingFinalizer(t, created.metadata.name);
  },
);

test.serial(
  "spec.connector.id: absent, of the Connector's own namespace or listed is admitted; another namespace's is refused, naming the field, the namespace, the prefix and how to allow it",
  async (t) => {
    await setup();
    const withId = (id: string) => connector((spec) => Object.assign(spec.connector, { id }));

    const plain = await create(connector());
    t.false('id' in plain.spec.connector, 'no spec.connector.id: the operator uses <namespace>.<name>');
    const own = await create(withId(`${namespace}.custom-edge`));
    t.is(own.spec.connector.id, `${namespace}.custom-edge`, "an id under the namespace's own prefix");
    t.is((await create(withId(HANDED_OVER_ID))).spec.connector.id, HANDED_OVER_ID, 'listed as namespace/id');
    t.is(
      (await create(withId(SHARED_ID))).spec.connector.id,
      SHARED_ID,
      'listed as an id for every namespace',
    );

    const squatter = withId('team-a.edge');
    await assertDenied(
      t,
      squatter,
      `spec.connector.id "team-a.edge" is not allowed in namespace ${namespace}: the ids of this namespace ` +
        `start with "${namespace}.", and any other may be the id of a Connector in another namespace, whose ` +
        'control-plane record this one would take on a control plane they share; leave spec.connector.id out ' +
        `(the default is ${namespace}.${squatter.metadata.name}) or start it with "${namespace}.", or ask a ` +
        `cluster admin to add "${namespace}/team-a.edge" to allowedConnectorIds in the ConfigMap ` +
        `${PARAMS_NAMESPACE}/${PARAMS}`,
    );
    for (const id of [
      // The namespace's name without the '.' boundary: a namespace whose name extends this one's.
      `${namespace}0.edge`,
      // The namespace's name alone is not under its prefix.
      namespace,
      // An entry matches the whole id, not an id that ends with it.
      `x${HANDED_OVER_ID}`,
    ]) {
      const refused = await refusalOf(create(withId(id)));
      t.true(byPolicy(refused), `${id} is refused by the policy: ${refused?.message}`);
      t.true(refused?.message.includes(`spec.connector.id "${id}" is not allowed in namespace ${namespace}`));
    }

    // Listed for this namespace only, and under the test namespace's prefix: both refused elsewhere.
    const other = await createTestNamespace(cluster().kc, 'vap-ids');
    for (const id of [HANDED_OVER_ID, `${namespace}.custom-edge`]) {
      const elsewhere = withId(id);
      elsewhere.metadata.namespace = other;
      const refused = await refusalOf(
        api().createNamespacedCustomObject({ ...ref(), namespace: other, body: elsewhere }),
      );
      t.true(byPolicy(refused), `${id} is refused in ${other}: ${refused?.message}`);
      t.true(refused?.message.includes(`add "${other}/${id}" to allowedConnectorIds`), refused?.message);
    }
  },
);

test.serial(
  'a tightened allowedConnectorIds does not block updates that leave the id alone: the finalizer is added and removed, another field changes',
  async (t) => {
    await setup();
    const handedOver = () => connector((spec) => Object.assign(spec.connector, { id: HANDED_OVER_ID }));
    const created = await create(handedOver());
    await applyParams({ ...testParams(), allowedConnectorIds: '' });
    t.teardown(async () => {
      await applyParams(testParams());
      await untilPolicy(handedOver, false, `${HANDED_OVER_ID} is allowed again`);
    });
    await untilPolicy(handedOver, true, `${HANDED_OVER_ID} is no longer allowed for new Connectors`);

    const finalized = await mergePatch(created.metadata.name, { metadata: { finalizers: [FINALIZER] } });
    t.deepEqual(finalized.metadata.finalizers, [FINALIZER], 'the finalizer is added');
    const paused = await mergePatch(created.metadata.name, { spec: { paused: true } });
    t.is(paused.spec.paused, true, 'another field changes');
    t.is(paused.spec.connector.id, HANDED_OVER_ID, 'the grandfathered id stays');

    await deleteReleasingFinalizer(t, created.metadata.name);
  },
);

test.serial(
  'spec.connector.org: without allowedOrgs in the parameters, every organisation is admitted, as before the key existed',
  async (t) => {
    await setup();
    for (const org of ['acme', 'another-team-org', 'team-b/acme']) {
      const created = await create(connector((spec) => Object.assign(spec.connector, { org })));
      t.is(created.spec.connector.org, org, `${org} is admitted`);
    }
  },
);

test.serial(
  "spec.connector.org with allowedOrgs: the namespace's own and shared organisations are admitted; another namespace's is refused, naming the field, the value, what is allowed and where",
  async (t) => {
    await setup();
    const other = await createTestNamespace(cluster().kc, 'vap-orgs');
    const withOrg = (org: string, inNamespace = namespace) => {
      const body = connector((spec) => Object.assign(spec.connector, { org }));
      body.metadata.namespace = inNamespace;
      return body;
    };
    const createIn = (body: ConnectorBody) =>
      api().createNamespacedCustomObject({
        ...ref(),
        namespace: body.metadata.namespace,
        body,
      }) as Promise<ConnectorBody>;
    const acmeAdmitted = await create(withOrg('acme'));
    await applyParams({
      ...testParams(),
      allowedOrgs: `${namespace}/team-a-org, shared-org\n${other}/team-b-org`,
    });
    t.teardown(async () => {
      await applyParams(testParams());
      await untilPolicy(() => withOrg('acme'), false, 'every organisation is allowed again');
    });
    await untilPolicy(
      () => withOrg('acme'),
      true,
      'an unlisted organisation is refused once allowedOrgs is set',
    );

    t.is((await create(withOrg('team-a-org'))).spec.connector.org, 'team-a-org', 'listed as namespace/org');
    t.is(
      (await create(withOrg('shared-org'))).spec.connector.org,
      'shared-org',
      'listed for every namespace',
    );
    t.is(
      (await createIn(withOrg('team-b-org', other))).spec.connector.org,
      'team-b-org',
      'the other namespace uses its own organisation',
    );
    t.is((await createIn(withOrg('shared-org', other))).spec.connector.org, 'shared-org');

    // The deputy review's case: a Connector author of one namespace names the organisation of another.
    const intruder = withOrg('team-b-org');
    await assertDenied(
      t,
      intruder,
      `spec.connector.org "team-b-org" is not allowed in namespace ${namespace} (allowed here: team-a-org, ` +
        'shared-org): the operator would register the connector in that organisation with the admin ' +
        'credential of its control plane; use an organisation allowed here, or ask a cluster admin to add ' +
        `"${namespace}/team-b-org" to allowedOrgs in the ConfigMap ${PARAMS_NAMESPACE}/${PARAMS}`,
    );
    const reverse = await refusalOf(createIn(withOrg('team-a-org', other)));
    t.true(byPolicy(reverse), `team-a-org is listed for ${namespace} only: ${reverse?.message}`);
    t.true(
      reverse?.message.includes(`(allowed here: shared-org, team-b-org)`) &&
        reverse.message.includes(`add "${other}/team-a-org" to allowedOrgs`),
      reverse?.message,
    );
    for (const org of [
      // An entry with a '/' is namespace/org: it does not admit an org of that whole name elsewhere.
      `${other}/team-b-org`,
      // An entry matches the whole org.
      'team-a-org-2',
      'shared',
    ]) {
      const refused = await refusalOf(create(withOrg(org)));
      t.true(byPolicy(refused), `${org} is refused: ${refused?.message}`);
      t.true(
        refused?.message.includes(`spec.connector.org "${org}" is not allowed in namespace ${namespace}`),
      );
    }

    // The operator moves a record along with a change of org, so a change is judged as a create.
    const own = await create(withOrg('team-a-org'));
    const moved = await refusalOf(
      mergePatch(own.metadata.name, { spec: { connector: { org: 'team-b-org' } } }),
    );
    t.true(byPolicy(moved), `moving to another namespace's organisation is refused: ${moved?.message}`);
    const toShared = await mergePatch(own.metadata.name, { spec: { connector: { org: 'shared-org' } } });
    t.is(toShared.spec.connector.org, 'shared-org', 'moving to an allowed one passes');
    // Created before the list, with an org it does not name: other changes still pass.
    const paused = await mergePatch(acmeAdmitted.metadata.name, { spec: { paused: true } });
    t.is(paused.spec.connector.org, 'acme', 'a change of another field leaves the grandfathered org alone');
  },
);

test.serial(
  'an allowedOrgs present but empty refuses every organisation, yet never blocks an update that leaves the org alone: the finalizer is added and removed',
  async (t) => {
    await setup();
    const created = await create(connector());
    await applyParams({ ...testParams(), allowedOrgs: '' });
    t.teardown(async () => {
      await applyParams(testParams());
      await untilPolicy(connector, false, 'every organisation is allowed again');
    });
    await untilPolicy(connector, true, 'an empty allowedOrgs refuses every new Connector');
    const refusal = await refusalOf(create(connector()));
    t.true(
      refusal?.message.includes(
        `spec.connector.org "acme" is not allowed in namespace ${namespace} (no organisation is allowed here)`,
      ),
      refusal?.message,
    );

    const finalized = await mergePatch(created.metadata.name, { metadata: { finalizers: [FINALIZER] } });
    t.deepEqual(finalized.metadata.finalizers, [FINALIZER], 'the finalizer is added');
    const paused = await mergePatch(created.metadata.name, { spec: { paused: true } });
    t.is(paused.spec.paused, true, 'another field changes');
    const changed = await refusalOf(
      mergePatch(created.metadata.name, { spec: { connector: { org: 'acme-2' } } }),
    );
    t.true(byPolicy(changed), 'changing the org is judged by the tightened list');
    await deleteReleasingFinalizer(t, created.metadata.name);
  },
);

test.serial('without its parameters ConfigMap the policy refuses every Connector write', async (t) => {
  await setup();
  const { kc } = cluster();
  const existing = await create(connector());
  await kc.makeApiClient(CoreV1Api).deleteNamespacedConfigMap({ name: PARAMS, namespace: PARAMS_NAMESPACE });
  t.teardown(async () => {
    await applyParams(testParams());
    await untilPolicy(connector, false, 'Connectors are admitted again once the parameters exist');
  });
  await untilPolicy(connector, true, 'a Connector without image is refused once the parameters are gone');
  const refusal = await refusalOf(create(connector()));
  t.true(byPolicy(refusal), refusal?.message);
  t.regex(
    refusal?.message ?? '',
    /no params found for policy binding with `Deny` parameterNotFoundAction/,
    'the refusal says the parameters are missing',
  );
  const update = await refusalOf(mergePatch(existing.metadata.name, { spec: { paused: true } }));
  t.true(byPolicy(update), 'an update is refused too (fail closed)');
});
