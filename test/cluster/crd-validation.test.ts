// The Connector CRD's validation, against a real kube-apiserver: each invalid Connector is refused
// with its own message, each forbidden change is refused on update, the allowed changes pass, the
// schema defaults appear, and a fully populated status survives the status subresource unpruned.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiextensionsV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import test from 'ava';
import * as yaml from 'js-yaml';
import { CRD_NAME, GROUP, PLURAL, VERSION } from '../../src/operator/api/constants.ts';
import { loadConnectorCrdModel } from '../../src/operator/api/crd.ts';
import type { Connector, ConnectorSpec, ConnectorStatus } from '../../src/operator/api/types.ts';
import { createTestNamespace, repoRoot, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';

const cluster = useCluster(test);
let namespace = '';
let api: CustomObjectsApi;
let counter = 0;

// ava runs before hooks concurrently, so the cluster's own hook may not have finished in another
// hook; every test awaits this one-time setup instead (tests start after all hooks).
let setupDone: Promise<void> | undefined;
function setup(): Promise<void> {
  setupDone ??= (async () => {
    const { kc } = cluster();
    // Installed from the client model (see loadConnectorCrdModel): plain parsed YAML would reach the
    // API server without its validation rules and enums.
    const crds = kc.makeApiClient(ApiextensionsV1Api);
    await crds.createCustomResourceDefinition({ body: await loadConnectorCrdModel() });
    await eventually(
      async () => {
        const crd = await crds.readCustomResourceDefinition({ name: CRD_NAME });
        return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
      },
      { description: `${CRD_NAME} established` },
    );
    namespace = await createTestNamespace(kc, 'crdv');
    api = kc.makeApiClient(CustomObjectsApi);
  })();
  return setupDone;
}

const ref = () => ({ group: GROUP, version: VERSION, namespace, plural: PLURAL });

function validSpec(): ConnectorSpec {
  return { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] } };
}

function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${counter}`;
}

async function create(spec: ConnectorSpec, name = uniqueName('c')): Promise<Connector> {
  await setup();
  return (await api.createNamespacedCustomObject({
    ...ref(),
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'Connector', metadata: { name }, spec },
  })) as Connector;
}

async function update(existing: Connector, change: (spec: ConnectorSpec) => void): Promise<Connector> {
  const body = structuredClone(existing);
  change(body.spec);
  return (await api.replaceNamespacedCustomObject({
    ...ref(),
    name: existing.metadata.name ?? '',
    body,
  })) as Connector;
}

/** The API server's answer to a refused write: HTTP status and the Status message. */
async function refusal(write: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await write;
  } catch (error) {
    const { code, body } = error as { code?: number; body?: unknown };
    const parsed =
      typeof body === 'string' ? (JSON.parse(body) as { message?: string }) : (body as { message?: string });
    return { code: code ?? 0, message: parsed?.message ?? String(error) };
  }
  throw new Error('the API server accepted a write that should have been refused');
}

const createCases: Array<[string, () => ConnectorSpec, string, string?]> = [
  [
    'an http control-plane URL',
    () => ({
      ...validSpec(),
      controlPlane: { url: 'http://cp.example.com', credentialSecretRef: { name: 'admin' } },
    }),
    'spec.controlPlane.url must be an absolute https:// URL such as https://vaultpam.example.com',
  ],
  [
    'a connector id with upper case and underscores',
    () => ({ ...validSpec(), connector: { id: 'Bad_Id', org: 'acme', endpointId: 'ep' } }),
    "spec.connector.id must be 1-253 lower-case letters, digits, '.' or '-'",
  ],
  [
    'an allowed network that is not a CIDR',
    () => ({
      ...validSpec(),
      connector: { org: 'acme', endpointId: 'ep', allowedNetworks: ['10.0.0.300/8'] },
    }),
    'spec.connector.allowedNetworks: "10.0.0.300/8" is not a CIDR',
  ],
  [
    'an allowed network with host bits set',
    () => ({ ...validSpec(), connector: { org: 'acme', endpointId: 'ep', allowedNetworks: ['10.1.2.3/8'] } }),
    'spec.connector.allowedNetworks: "10.1.2.3/8" has host bits set after the prefix; write the network address',
  ],
  [
    'an existing claim with a size',
    () => ({ ...validSpec(), storage: { existingClaim: 'old-data', size: '1Gi' } }),
    'spec.storage: existingClaim cannot be combined with size, storageClassName or ephemeral: true',
  ],
  [
    'ephemeral storage with a storage class',
    () => ({ ...validSpec(), storage: { ephemeral: true, storageClassName: 'fast' } }),
    'spec.storage: ephemeral: true cannot be combined with storageClassName',
  ],
  [
    'a size that is not a quantity',
    () => ({ ...validSpec(), storage: { size: 'lots' } }),
    'spec.storage.size must be a Kubernetes quantity such as 1Gi or 500Mi',
  ],
  [
    'a zero size',
    () => ({ ...validSpec(), storage: { size: '0Gi' } }),
    'spec.storage.size must be greater than zero',
  ],
  [
    'a token TTL that is not a duration',
    () => ({ ...validSpec(), enrollment: { tokenTTL: '1d' } }),
    'spec.enrollment.tokenTTL must be a duration such as 30m, 4h or 1h30m',
  ],
  [
    'a token TTL over 4h',
    () => ({ ...validSpec(), enrollment: { tokenTTL: '4h1m' } }),
    'spec.enrollment.tokenTTL must be at most 4h',
  ],
  [
    'a token TTL under 5m',
    () => ({ ...validSpec(), enrollment: { tokenTTL: '90s' } }),
    'spec.enrollment.tokenTTL must be at least 5m',
  ],
  [
    'an adopted workload with storage',
    () => ({
      ...validSpec(),
      workloadRef: { kind: 'StatefulSet', name: 'legacy' },
      storage: { size: '1Gi' },
    }),
    'spec: workloadRef adopts an existing workload whose volumes the operator does not manage, so storage must not be set',
  ],
  [
    'an adopted workload with image and pod settings',
    () => ({
      ...validSpec(),
      workloadRef: { kind: 'Deployment', name: 'legacy' },
      image: 'vaultpam-connector:1',
      podLabels: { team: 'x' },
    }),
    'spec: workloadRef adopts an existing workload, so the operator builds no pod template; remove spec.image, spec.podLabels, or remove spec.workloadRef',
  ],
  [
    'a pod label the operator owns',
    () => ({ ...validSpec(), podLabels: { 'app.kubernetes.io/name': 'mine' } }),
    'spec.podLabels must not set app.kubernetes.io/name',
  ],
  [
    'a recovery request id with spaces',
    () => ({ ...validSpec(), recovery: { requestId: 'incident 4711' } }),
    "spec.recovery.requestId must be 1-63 letters, digits, '.', '_' or '-'",
  ],
  [
    'a name too long for the StatefulSet it names',
    validSpec,
    'metadata.name must be at most 52 characters',
    'n'.repeat(53),
  ],
  [
    'an unknown recovery policy',
    () => ({ ...validSpec(), recovery: { policy: 'Sometimes' as 'Manual' } }),
    'spec.recovery.policy: Unsupported value: "Sometimes"',
  ],
  [
    'a connector without an org',
    () => ({ connector: { endpointId: 'ep' } as ConnectorSpec['connector'] }),
    'spec.connector.org: Required value',
  ],
];

for (const [what, spec, expected, name] of createCases) {
  test(`refuses ${what}`, async (t) => {
    const { code, message } = await refusal(create(spec(), name));
    t.is(code, 422);
    t.true(message.includes(expected), `expected "${expected}" in: ${message}`);
  });
}

const updateCases: Array<[string, () => ConnectorSpec, (spec: ConnectorSpec) => void, string]> = [
  [
    'changing the endpoint id',
    validSpec,
    (s) => {
      s.connector.endpointId = 'ep-2';
    },
    'spec.connector.endpointId is immutable',
  ],
  [
    'adding a connector id after creation',
    validSpec,
    (s) => {
      s.connector.id = 'late.id';
    },
    'spec.connector.id cannot be added, changed or removed after creation',
  ],
  [
    'changing the storage class',
    () => ({ ...validSpec(), storage: { storageClassName: 'standard' } }),
    (s) => {
      s.storage = { storageClassName: 'fast' };
    },
    'spec.storage.storageClassName cannot be added, changed or removed after creation',
  ],
  [
    'switching a durable connector to an existing claim',
    validSpec,
    (s) => {
      s.storage = { existingClaim: 'other-data' };
    },
    'spec.storage.existingClaim cannot be added, changed or removed after creation',
  ],
  [
    'turning a durable connector ephemeral',
    validSpec,
    (s) => {
      s.storage = { ephemeral: true };
    },
    'spec.storage.ephemeral cannot be turned on for a Connector created with durable storage',
  ],
  [
    'shrinking the claim',
    () => ({ ...validSpec(), storage: { size: '2Gi' } }),
    (s) => {
      s.storage = { size: '1Gi' };
    },
    'spec.storage.size cannot shrink',
  ],
  [
    'adopting a workload after creation',
    validSpec,
    (s) => {
      s.workloadRef = { kind: 'StatefulSet', name: 'legacy' };
    },
    'spec.workloadRef cannot be added or removed after creation',
  ],
  [
    're-pointing the adopted workload',
    () => ({ ...validSpec(), workloadRef: { kind: 'StatefulSet', name: 'legacy' } }),
    (s) => {
      s.workloadRef = { kind: 'StatefulSet', name: 'other' };
    },
    'spec.workloadRef is immutable',
  ],
];

for (const [what, initial, change, expected] of updateCases) {
  test(`refuses ${what}`, async (t) => {
    const created = await create(initial());
    const { code, message } = await refusal(update(created, change));
    t.is(code, 422);
    t.true(message.includes(expected), `expected "${expected}" in: ${message}`);
  });
}

test('every refusal above has a message of its own', (t) => {
  const messages = [...createCases.map((c) => c[2]), ...updateCases.map((c) => c[3])];
  t.is(new Set(messages).size, messages.length);
  t.true(messages.length >= 12);
});

test('allows the changes that keep the identity: ephemeral to durable, growing, a new recovery request', async (t) => {
  const ephemeral = await create({ ...validSpec(), storage: { ephemeral: true } });
  const reattached = await update(ephemeral, (s) => {
    s.storage = { existingClaim: 'original-data' };
  });
  t.deepEqual(reattached.spec.storage, { existingClaim: 'original-data' });

  const ephemeral2 = await create({ ...validSpec(), storage: { ephemeral: true, size: '100Mi' } });
  const durable = await update(ephemeral2, (s) => {
    s.storage = { storageClassName: 'fast', size: '1Gi' };
  });
  t.deepEqual(durable.spec.storage, { storageClassName: 'fast', size: '1Gi' });

  const grown = await update(durable, (s) => {
    s.storage = { storageClassName: 'fast', size: '2Gi' };
    s.recovery = { requestId: 'incident-1' };
  });
  const again = await update(grown, (s) => {
    s.recovery = { requestId: 'incident-2' };
    s.paused = true;
  });
  t.is(again.spec.recovery?.requestId, 'incident-2');
  t.true(again.spec.paused);
});

test('the schema fills in its defaults and the sample manifest is accepted', async (t) => {
  const created = await create(validSpec());
  t.deepEqual(created.spec.enrollment, { tokenTTL: '4h' });
  t.deepEqual(created.spec.recovery, { policy: 'Manual', validateRestart: true });
  t.is(created.spec.deletionPolicy, 'Release');
  t.false(created.spec.paused);
  t.is(created.spec.storage, undefined, 'storage defaults are the operator’s, so existingClaim stays usable');

  const sample = yaml.load(
    await readFile(join(repoRoot, 'manifests', 'samples', 'connector.yaml'), 'utf8'),
  ) as Connector;
  const accepted = await create(sample.spec, sample.metadata.name);
  t.deepEqual(accepted.spec, sample.spec);
});

test('a fully populated status is stored without losing a field', async (t) => {
  const created = await create(validSpec());
  const at = '2026-01-01T00:00:00Z';
  const status: ConnectorStatus = {
    observedGeneration: created.metadata.generation ?? 1,
    phase: 'Online',
    mode: 'Autonomous',
    connectorId: `${namespace}.${created.metadata.name}`,
    controlPlaneState: 'online',
    lastHeartbeatTime: at,
    identity: { certificateSerial: '0a1b', notAfter: at, fingerprintSHA256: 'ab'.repeat(32) },
    enrollment: {
      tokenExpiresAt: at,
      tokenMintedAt: at,
      tokenSecretName: 'x',
      retired: true,
      mintCount: 1,
      lastMintKey: 'k',
    },
    storage: {
      volumeName: 'data',
      source: 'PersistentVolumeClaim',
      claimName: 'data-x-0',
      claimUID: '6c1a8a0e-0f1e-4c59-9d1c-3f0e5c2b7a10',
      claimPhase: 'Bound',
      podName: 'x-0',
    },
    recovery: {
      requestId: 'incident-1',
      step: 'Completed',
      attempts: 1,
      startedAt: at,
      finishedAt: at,
      outcome: 'Succeeded',
      reason: 'reconnected',
      mintKey: 'm',
      evidence: {
        phaseBefore: 'NeedsRecovery',
        phaseAfter: 'Online',
        controlPlaneStateBefore: 'needs_recovery',
        controlPlaneStateAfter: 'online',
        proof: 'endpoint.enrolled seq 3',
        auditEntries: [{ type: 'endpoint.enrolled', at, seq: 3 }],
        windowStart: at,
        windowEnd: at,
      },
    },
    diagnosis: { failureClass: 'IdentityLoss', reason: 'r', evidence: ['e'], nextStep: 'n', since: at },
    conditions: [
      {
        type: 'Ready',
        status: 'True',
        observedGeneration: 1,
        lastTransitionTime: at,
        reason: 'Ready',
        message: 'ok',
      },
    ],
  };
  const written = (await api.replaceNamespacedCustomObjectStatus({
    ...ref(),
    name: created.metadata.name ?? '',
    body: { ...created, status },
  })) as Connector;
  t.deepEqual(written.status, status);
  const { code, message } = await refusal(
    api.replaceNamespacedCustomObjectStatus({
      ...ref(),
      name: created.metadata.name ?? '',
      body: { ...written, status: { ...status, phase: 'Sleeping' } },
    }),
  );
  t.is(code, 422);
  t.true(message.includes('status.phase: Unsupported value: "Sleeping"'), message);
});
