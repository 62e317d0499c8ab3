// The Connector CRD's validation, against a real kube-apiserver: each invalid Connector is refused
// with its own message, each forbidden change is refused on update, the allowed changes pass, the
// schema defaults appear, and a fully populated status survives the status subresource unpruned.
import { readFile } from 'node:fs/promises';
import { type RequestOptions, request } from 'node:https';
import { join } from 'node:path';
import { ApiextensionsV1Api, AppsV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import test from 'ava';
import * as yaml from 'js-yaml';
import { CRD_NAME, GROUP, PLURAL, VERSION } from '../../src/operator/api/constants.ts';
import { connectorSchema, type JsonSchema, loadConnectorCrd } from '../../src/operator/api/crd.ts';
import {
  type Connector,
  type ConnectorSpec,
  type ConnectorStatus,
  defaultedSpec,
} from '../../src/operator/api/types.ts';
import { desiredStatefulSet } from '../../src/operator/reconcile/desired-objects.ts';
import { createTestNamespace, repoRoot, useCluster } from '../helpers/cluster.ts';
import { loadConnectorCrdModel } from '../helpers/crd-model.ts';
import { eventually } from '../helpers/eventually.ts';
import { kubectlGetConnector } from '../helpers/kubectl-get.ts';

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

/**
 * Creates a Connector. `fieldValidation` as the client asks for it: the API server's default is
 * Warn (an unknown field is dropped with a warning), kubectl's is Strict (it is refused).
 */
async function create(
  spec: ConnectorSpec,
  name = uniqueName('c'),
  fieldValidation?: 'Strict' | 'Warn',
): Promise<Connector> {
  await setup();
  return (await api.createNamespacedCustomObject({
    ...ref(),
    ...(fieldValidation ? { fieldValidation } : {}),
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

/** UTF-16 code units: 127 emoji are 127 code points (within maxLength) but 254 units. */
const emoji = (count: number) => '\u{1F600}'.repeat(count);

/**
 * What Kubernetes refuses later, when the operator applies the StatefulSet built from the spec (or
 * the control plane refuses the registration): each must be refused at admission, naming the field.
 */
function syntaxCases(): Array<[string, () => ConnectorSpec, string, string?]> {
  const toleration = (t: NonNullable<ConnectorSpec['tolerations']>[number]) => ({
    ...validSpec(),
    tolerations: [t],
  });
  return [
    [
      'a name with a dot, which no StatefulSet may have',
      validSpec,
      "metadata.name: Invalid value: metadata.name must be a DNS label (lower-case letters, digits and '-'",
      'dc1.connector',
    ],
    [
      'an endpoint id longer than the control plane accepts in UTF-16 code units',
      () => ({ ...validSpec(), connector: { org: 'acme', endpointId: emoji(127) } }),
      'spec.connector.endpointId must be at most 253 UTF-16 code units',
    ],
    [
      'an org longer than the control plane accepts in UTF-16 code units',
      () => ({ ...validSpec(), connector: { org: `${'o'.repeat(252)}${emoji(1)}`, endpointId: 'ep' } }),
      'spec.connector.org must be at most 253 UTF-16 code units',
    ],
    [
      'a control-plane reference whose name is no object name',
      () => ({ ...validSpec(), controlPlaneRef: { name: 'Prod_CP' } }),
      'spec.controlPlaneRef.name must be the name of a ControlPlane or ClusterControlPlane, a DNS subdomain',
    ],
    [
      // The field that made the operator anyone's deputy: a URL and a Secret of the author's choosing.
      'a control-plane URL and credential Secret in the Connector (spec.controlPlane was removed)',
      () => ({
        ...validSpec(),
        controlPlane: {
          url: 'https://cp.example.com',
          credentialSecretRef: { name: 'app-db', key: 'password' },
        },
      }),
      'spec.controlPlane: Invalid value: spec.controlPlane was removed: a Connector no longer carries a URL or credential; ask an admin for a ControlPlane in this namespace or a ClusterControlPlane and set spec.controlPlaneRef',
    ],
    [
      'an image with a space',
      () => ({ ...validSpec(), image: 'vaultpam connector:1.0' }),
      'spec.image must not contain whitespace',
    ],
    [
      'an image that is no reference (upper-case path)',
      () => ({ ...validSpec(), image: 'registry.example.com/VaultPAM/connector:1.0' }),
      'spec.image must be an image reference [registry[:port]/]path[:tag][@digest]',
    ],
    [
      'an image pull secret name with a space',
      () => ({ ...validSpec(), imagePullSecrets: [{ name: 'registry pull' }] }),
      'spec.imagePullSecrets[0].name: Invalid value: "registry pull": spec.imagePullSecrets: name must be a Secret name',
    ],
    [
      'a negative CPU request',
      () => ({ ...validSpec(), resources: { requests: { cpu: '-500m' } } }),
      'spec.resources.requests[cpu]: Invalid value: "-500m": spec.resources.requests: "-500m" is not a quantity greater than zero',
    ],
    [
      'a zero memory limit, as an integer',
      () => ({ ...validSpec(), resources: { limits: { memory: 0 } } }),
      'spec.resources.limits: "0" is not a quantity greater than zero',
    ],
    [
      'a resource value that is no quantity',
      () => ({ ...validSpec(), resources: { limits: { memory: '256 MiB' } } }),
      'spec.resources.limits: "256 MiB" is not a quantity greater than zero',
    ],
    [
      'a resource name that is not a container resource',
      () => ({ ...validSpec(), resources: { limits: { gpu: '1' } } }),
      'spec.resources.limits: "gpu" is not a container resource name',
    ],
    [
      'a request larger than its limit',
      () => ({ ...validSpec(), resources: { requests: { memory: '1Gi' }, limits: { memory: '512Mi' } } }),
      'spec.resources: the request for memory is larger than its limit',
    ],
    [
      'an extended resource amount that is no whole number',
      () => ({ ...validSpec(), resources: { limits: { 'example.com/gpu': '0.5' } } }),
      'spec.resources.limits: example.com/gpu is an extended resource, counted in whole units: "0.5" is not a whole number below 10^15',
    ],
    [
      'an extended resource request below its limit',
      () => ({
        ...validSpec(),
        resources: { requests: { 'example.com/gpu': 1 }, limits: { 'example.com/gpu': 2 } },
      }),
      'spec.resources: example.com/gpu cannot be overcommitted, so Kubernetes requires its request to equal its limit',
    ],
    [
      'hugepages without cpu or memory',
      () => ({ ...validSpec(), resources: { limits: { 'hugepages-2Mi': '4Mi' } } }),
      'spec.resources: hugepages need a cpu or memory request or limit beside them',
    ],
    [
      'hugepages that are no whole number of pages',
      () => ({ ...validSpec(), resources: { limits: { memory: '1Gi', 'hugepages-2Mi': '3Mi' } } }),
      'spec.resources.limits: hugepages-2Mi takes a whole multiple of its page size, itself a whole number of bytes, and "3Mi" is not one',
    ],
    [
      'an extended resource named like a quota',
      () => ({ ...validSpec(), resources: { requests: { 'requests.example.com/gpu': '1' } } }),
      'spec.resources.requests: "requests.example.com/gpu" is not an extended resource name Kubernetes accepts',
    ],
    [
      'a node selector value with a space',
      () => ({ ...validSpec(), nodeSelector: { 'kubernetes.io/os': 'linux os' } }),
      'spec.nodeSelector[kubernetes.io/os]: Invalid value: "linux os": spec.nodeSelector: "linux os" is not a label value',
    ],
    [
      'a node selector key with two slashes',
      () => ({ ...validSpec(), nodeSelector: { 'a/b/c': 'x' } }),
      'spec.nodeSelector: "a/b/c" is not a label key',
    ],
    [
      'a toleration key with a space',
      () => toleration({ key: 'dedicated node', operator: 'Exists' }),
      'spec.tolerations[0]: Invalid value: spec.tolerations: key must be a label key',
    ],
    [
      'a toleration value with a space',
      () => toleration({ key: 'dedicated', value: 'pam team' }),
      'spec.tolerations: value must be a label value',
    ],
    [
      'a toleration without key or operator Exists',
      () => toleration({ operator: 'Equal', value: 'x' }),
      'spec.tolerations: a toleration without a key matches every taint and needs operator: Exists',
    ],
    [
      'a toleration with operator Exists and a value',
      () => toleration({ key: 'dedicated', operator: 'Exists', value: 'pam' }),
      'spec.tolerations: operator Exists matches any value, so value must be empty',
    ],
    [
      'a toleration with tolerationSeconds and no NoExecute effect',
      () => toleration({ key: 'dedicated', effect: 'NoSchedule', tolerationSeconds: 30 }),
      'spec.tolerations: tolerationSeconds applies only to effect NoExecute',
    ],
    [
      'a priority class name that is no DNS subdomain',
      () => ({ ...validSpec(), priorityClassName: 'High_Priority' }),
      'spec.priorityClassName must be a PriorityClass name, a DNS subdomain',
    ],
    [
      'a service account name that is no DNS subdomain',
      () => ({ ...validSpec(), serviceAccountName: 'connector sa' }),
      'spec.serviceAccountName must be a ServiceAccount name, a DNS subdomain',
    ],
    [
      'a pod label value with a space',
      () => ({ ...validSpec(), podLabels: { team: 'platform security' } }),
      'spec.podLabels[team]: Invalid value: "platform security": spec.podLabels: "platform security" is not a label value',
    ],
    [
      'a pod label key with a space',
      () => ({ ...validSpec(), podLabels: { 'owner team': 'x' } }),
      'spec.podLabels: "owner team" is not a label key',
    ],
    [
      'a pod label key with a name over 63 characters',
      () => ({ ...validSpec(), podLabels: { [`example.com/${'n'.repeat(64)}`]: 'x' } }),
      `spec.podLabels: "example.com/${'n'.repeat(64)}" is not a label key`,
    ],
    [
      'a pod annotation key with two slashes',
      () => ({ ...validSpec(), podAnnotations: { 'example.com/a/b': 'x' } }),
      'spec.podAnnotations: "example.com/a/b" is not an annotation key',
    ],
    [
      '256 KiB of pod annotations',
      () => ({
        ...validSpec(),
        podAnnotations: Object.fromEntries(
          Array.from({ length: 64 }, (_, i) => [`note-${i}`, 'x'.repeat(4096)]),
        ),
      }),
      'spec.podAnnotations: keys and values must take at most 261120 bytes (255 KiB)',
    ],
    [
      'a storage size of 100m (a tenth of a byte)',
      () => ({ ...validSpec(), storage: { size: '100m' } }),
      'spec.storage.size must be a whole number of bytes',
    ],
    [
      'a storage class name with upper case',
      () => ({ ...validSpec(), storage: { storageClassName: 'Fast' } }),
      'spec.storage.storageClassName must be a StorageClass name, a DNS subdomain',
    ],
    [
      'an existing claim name with an underscore',
      () => ({ ...validSpec(), storage: { existingClaim: 'old_data' } }),
      'spec.storage.existingClaim must be a PersistentVolumeClaim name, a DNS subdomain',
    ],
    [
      // spec.affinity was kept as it came; the StatefulSet's server-side apply refused these with an
      // HTTP 500 the operator retried forever.
      'an affinity with an object where Kubernetes has a list',
      () => ({
        ...validSpec(),
        affinity: {
          podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { topologyKey: 'x' } },
        } as unknown as ConnectorSpec['affinity'],
      }),
      'spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution: Invalid value: "object": spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution in body must be of type array',
    ],
    [
      'an affinity with a string where Kubernetes has an object',
      () => ({ ...validSpec(), affinity: { nodeAffinity: 'yes' } as unknown as ConnectorSpec['affinity'] }),
      'spec.affinity.nodeAffinity: Invalid value: "string": spec.affinity.nodeAffinity in body must be of type object',
    ],
    [
      'a node affinity operator Kubernetes does not have',
      () => ({
        ...validSpec(),
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'Near', values: ['a'] }] }],
            },
          },
        },
      }),
      'spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator: Unsupported value: "Near"',
    ],
    [
      'a preferred pod affinity term of weight 0',
      () => ({
        ...validSpec(),
        affinity: {
          podAffinity: {
            preferredDuringSchedulingIgnoredDuringExecution: [
              { weight: 0, podAffinityTerm: { topologyKey: 'x' } },
            ],
          },
        },
      }),
      'spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight in body should be greater than or equal to 1',
    ],
    // Each refused affinity variant (affinityVariants, by index) and the message naming its field.
    ...(
      [
        [
          1,
          'a node affinity requirement In without values',
          'spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchExpressions[]: operator In or NotIn needs one or more values',
        ],
        [
          9,
          'a node field selector on another field than metadata.name',
          'spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchFields[]: key must be metadata.name',
        ],
        [
          8,
          'a node field selector with two values',
          'spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchFields[]: a node field selector takes operator In or NotIn and exactly one value',
        ],
        [
          15,
          'a pod label selector Exists with values',
          'spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector.matchExpressions[]: operator In or NotIn needs one or more values, Exists or DoesNotExist none',
        ],
        [
          17,
          'an empty topologyKey',
          'spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm: topologyKey must be a node label key (not empty)',
        ],
        [
          19,
          'matchLabelKeys without a labelSelector',
          'spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm: matchLabelKeys and mismatchLabelKeys refine labelSelector, so they need one',
        ],
        [
          21,
          'a key in both matchLabelKeys and mismatchLabelKeys',
          'spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm: a key cannot be in both matchLabelKeys and mismatchLabelKeys',
        ],
        [
          23,
          'an affinity namespace that is no namespace name',
          'spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.namespaces[]: each namespace must be a namespace name',
        ],
      ] as const
    ).map(([index, what, message]): [string, () => ConnectorSpec, string] => [
      what,
      () => ({ ...validSpec(), affinity: affinityVariants()[index] }),
      message,
    ]),
    [
      'an adopted StatefulSet name with a dot',
      () => ({ ...validSpec(), workloadRef: { kind: 'StatefulSet', name: 'legacy.v2' } }),
      'spec.workloadRef.name must be a StatefulSet name, a DNS label',
    ],
    [
      'an adopted Deployment name with upper case',
      () => ({ ...validSpec(), workloadRef: { kind: 'Deployment', name: 'Legacy' } }),
      'spec.workloadRef.name must be a Deployment name, a DNS subdomain',
    ],
  ];
}

const createCases: Array<[string, () => ConnectorSpec, string, string?]> = [
  [
    'a control-plane reference of an unknown kind',
    () => ({ ...validSpec(), controlPlaneRef: { kind: 'Issuer' as 'ControlPlane', name: 'prod' } }),
    'spec.controlPlaneRef.kind: Unsupported value: "Issuer"',
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
    // The deputy review: the operator recognised a validation restart by this mark, and a Connector
    // that set it on its own pod ended a recovery Succeeded, proven by a restart never made.
    'a pod annotation the operator owns (the restart marker)',
    () => ({ ...validSpec(), podAnnotations: { 'vaultpam.io/restarted-for': 'r1' } }),
    'spec.podAnnotations must not set vaultpam.io/config-hash or vaultpam.io/restarted-for',
  ],
  [
    'a recovery request id with spaces',
    () => ({ ...validSpec(), recovery: { requestId: 'incident 4711' } }),
    "spec.recovery.requestId must be 1-63 letters, digits, '.', '_' or '-'",
  ],
  [
    'a name too long for the StatefulSet it names',
    validSpec,
    // Pointed at the field (fieldPath), not at the root, whose error read "<nil>: Invalid value".
    'metadata.name: Invalid value: metadata.name must be at most 52 characters',
    'n'.repeat(53),
  ],
  ...syntaxCases(),
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
    // Each rule's error names its field; the one error Kubernetes itself leaves without a field is
    // its note that CEL rules were skipped because the object failed the schema.
    t.notRegex(message, /<nil>: Invalid value: (?!null: some validation rules were not checked)/);
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

test('a misspelled affinity field is refused under strict field validation and dropped otherwise', async (t) => {
  // Kept as it came, it reached the StatefulSet, whose server-side apply refused it (HTTP 500).
  const misspelled = {
    ...validSpec(),
    affinity: {
      nodeAfinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } },
    } as unknown as ConnectorSpec['affinity'],
  };
  const { code, message } = await refusal(create(misspelled, uniqueName('c'), 'Strict'));
  t.is(code, 400);
  t.true(message.includes('unknown field "spec.affinity.nodeAfinity"'), message);
  const warned = await create(misspelled, uniqueName('c'), 'Warn');
  t.deepEqual(warned.spec.affinity, {}, 'pruned: the operator never sees it');
});

test('spec.affinity is core/v1 Affinity field for field, as the API server serves it', async (t) => {
  await setup();
  const served = JSON.parse(await apiGet('/openapi/v3/api/v1', 'application/json')) as {
    components: { schemas: Record<string, OpenApiSchema> };
  };
  const schemas = served.components.schemas;
  const affinity = schemas['io.k8s.api.core.v1.Affinity'];
  if (affinity === undefined) throw new Error('the API server serves no io.k8s.api.core.v1.Affinity');
  const ours = connectorSchema(await loadConnectorCrd()).properties?.spec?.properties?.affinity;
  if (ours === undefined) throw new Error('the CRD has no spec.affinity');
  const theirs = shapeOf(affinity, (name) => schemas[name]);
  t.deepEqual(
    shapeOf(ours, () => undefined),
    theirs,
  );
  t.true(Object.keys(theirs).length > 100, 'the whole tree was compared');
  const nodeOperator = (schema: OpenApiSchema | undefined) =>
    schema?.properties?.operator?.enum?.map(String).sort();
  t.deepEqual(
    nodeOperator(
      ours.properties?.nodeAffinity?.properties?.requiredDuringSchedulingIgnoredDuringExecution?.properties
        ?.nodeSelectorTerms?.items?.properties?.matchExpressions?.items,
    ),
    nodeOperator(schemas['io.k8s.api.core.v1.NodeSelectorRequirement']),
  );
});

/** A schema node of the API server's OpenAPI v3: a CRD's keywords, or a reference to another. */
interface OpenApiSchema extends Omit<JsonSchema, 'properties' | 'items' | 'additionalProperties'> {
  $ref?: string;
  allOf?: OpenApiSchema[];
  properties?: Record<string, OpenApiSchema>;
  items?: OpenApiSchema;
  additionalProperties?: OpenApiSchema | boolean;
}

/**
 * Every field under `schema` with its type, `[]` a list's items and `{}` a map's values; `named`
 * resolves the API server's references (`$ref`, alone or as the one entry of an `allOf`).
 */
function shapeOf(
  schema: OpenApiSchema,
  named: (name: string) => OpenApiSchema | undefined,
  path = '',
  out: Record<string, string> = {},
): Record<string, string> {
  const reference = schema.$ref ?? schema.allOf?.[0]?.$ref;
  const node = reference === undefined ? schema : named(reference.split('/').at(-1) ?? '');
  if (node === undefined) throw new Error(`${path}: ${reference} is not served`);
  out[path || '.'] = node.type ?? 'untyped';
  for (const [key, child] of Object.entries(node.properties ?? {}))
    shapeOf(child, named, `${path}.${key}`, out);
  if (node.items) shapeOf(node.items, named, `${path}[]`, out);
  if (typeof node.additionalProperties === 'object')
    shapeOf(node.additionalProperties, named, `${path}{}`, out);
  return out;
}

test('spec.controlPlaneRef is fixed once the connector reached its control plane, and free to fix before', async (t) => {
  // A Connector moved to another control plane left its record there with a live token, which
  // paired after the Connector was deleted: its deletion released on the new one only.
  const named = { ...validSpec(), controlPlaneRef: { kind: 'ControlPlane' as const, name: 'cp-a' } };
  const typo = await create({ ...validSpec(), controlPlaneRef: { kind: 'ControlPlane', name: 'cp-typo' } });
  const fixed = await update(typo, (s) => {
    s.controlPlaneRef = { kind: 'ControlPlane', name: 'cp-a' };
  });
  t.is(fixed.spec.controlPlaneRef?.name, 'cp-a', 'not reached yet: a typo is fixed in place');

  const reached = (await api.replaceNamespacedCustomObjectStatus({
    ...ref(),
    name: fixed.metadata.name ?? '',
    body: { ...fixed, status: { controlPlaneState: 'pending' } },
  })) as Connector;
  for (const change of [
    (s: ConnectorSpec) => {
      s.controlPlaneRef = { kind: 'ControlPlane', name: 'cp-b' };
    },
    (s: ConnectorSpec) => {
      s.controlPlaneRef = { kind: 'ClusterControlPlane', name: 'cp-a' };
    },
    (s: ConnectorSpec) => {
      delete s.controlPlaneRef;
    },
  ]) {
    const { code, message } = await refusal(update(reached, change));
    t.is(code, 422);
    t.regex(
      message,
      /spec\.controlPlaneRef: Invalid value: .*cannot be added, changed or removed once the connector has reached its control plane/,
    );
  }
  // The first pass mints before the control plane reports a state: its mint is enough.
  const minted = await create(named);
  const mintedOnly = (await api.replaceNamespacedCustomObjectStatus({
    ...ref(),
    name: minted.metadata.name ?? '',
    body: { ...minted, status: { enrollment: { lastMintKey: 'enroll-1', mintCount: 1 } } },
  })) as Connector;
  t.is(
    (
      await refusal(
        update(mintedOnly, (s) => {
          s.controlPlaneRef = { kind: 'ControlPlane', name: 'cp-b' };
        }),
      )
    ).code,
    422,
  );
  const onDefault = await create(validSpec());
  const reachedDefault = (await api.replaceNamespacedCustomObjectStatus({
    ...ref(),
    name: onDefault.metadata.name ?? '',
    body: { ...onDefault, status: { controlPlaneState: 'online' } },
  })) as Connector;
  t.is((await refusal(update(reachedDefault, (s) => Object.assign(s, named)))).code, 422, 'nor added');
  // Other changes of a reached Connector pass the rule.
  const paused = await update(reached, (s) => {
    s.paused = true;
  });
  t.true(paused.spec.paused);
});

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

test('accepts every checked field when it is valid, at the edges Kubernetes allows', async (t) => {
  const digest = `sha256:${'0123456789abcdef'.repeat(4)}`;
  const full: ConnectorSpec = {
    controlPlaneRef: { kind: 'ClusterControlPlane', name: `vaultpam.${'c'.repeat(244)}` },
    // 253 UTF-16 code units: 251 letters and one emoji (two units), the control plane's limit.
    connector: { org: `${'o'.repeat(251)}${emoji(1)}`, endpointId: 'dc1 linux fleet (ünïcode)' },
    image: `registry.example.com:5000/vaultpam/connector_agent:1.2.3@${digest}`,
    imagePullSecrets: [{ name: 'registry-pull.v1' }],
    resources: {
      requests: { cpu: '50m', memory: 67108864 },
      limits: { cpu: 1, memory: '256Mi', 'ephemeral-storage': '1Gi', 'example.com/gpu': '1' },
    },
    nodeSelector: { 'kubernetes.io/os': 'linux', 'node.example.com/pool': '' },
    tolerations: [
      {
        key: 'example.com/dedicated',
        operator: 'Equal',
        value: 'pam',
        effect: 'NoExecute',
        tolerationSeconds: 30,
      },
      { operator: 'Exists' },
    ],
    priorityClassName: 'system-node-critical',
    serviceAccountName: 'vaultpam.connector',
    podLabels: {
      team: 'platform-security',
      [`${'p'.repeat(200)}.example.com/${'n'.repeat(63)}`]: 'v'.repeat(63),
    },
    podAnnotations: {
      'Example.COM/Owner': 'x'.repeat(4096),
      note: '',
      ...Object.fromEntries(Array.from({ length: 62 }, (_, i) => [`n${i}`, 'y'.repeat(4096)])),
    },
    storage: { size: '1.5Gi', storageClassName: 'fast-ssd' },
    // Every field of core/v1 Affinity, at the bounds the schema gives it.
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            {
              matchExpressions: [
                { key: `${'z'.repeat(253)}/${'k'.repeat(63)}`, operator: 'In', values: ['a'] },
              ],
              matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['n'.repeat(253)] }],
            },
          ],
        },
        preferredDuringSchedulingIgnoredDuringExecution: [
          { weight: 100, preference: { matchExpressions: [{ key: 'disk', operator: 'Exists' }] } },
          { weight: 1, preference: { matchExpressions: [{ key: 'cores', operator: 'Gt', values: ['8'] }] } },
        ],
      },
      podAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [
          {
            topologyKey: 'topology.kubernetes.io/zone',
            labelSelector: { matchLabels: { app: 'v'.repeat(63) } },
            namespaces: ['n'.repeat(63)],
            namespaceSelector: {},
          },
        ],
      },
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          {
            weight: 50,
            podAffinityTerm: {
              topologyKey: 'kubernetes.io/hostname',
              labelSelector: { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['x'] }] },
              matchLabelKeys: ['pod-template-hash'],
              mismatchLabelKeys: ['tenant'],
            },
          },
        ],
      },
    },
  };
  // A name of 52 characters, the longest whose StatefulSet's pods and revisions fit.
  const created = await create(full, `c${'n'.repeat(49)}-${counter}`.slice(0, 52)).catch(
    (error: { body?: unknown }) => {
      throw new Error(String(error.body ?? error));
    },
  );
  t.deepEqual(created.spec.podLabels, full.podLabels);
  t.deepEqual(created.spec.affinity, full.affinity, 'nothing of the affinity was dropped');
  t.notThrows(() => defaultedSpec(created), 'the operator takes what admission took');
  for (const variant of [
    { storage: { existingClaim: 'data-dc1.v2' } },
    { storage: { ephemeral: true, size: '1000m' } },
    { workloadRef: { kind: 'StatefulSet' as const, name: 'n'.repeat(63) } },
    { workloadRef: { kind: 'Deployment' as const, name: 'legacy.v2' } },
    { image: 'localhost:5000/connector' },
    { image: `connector@${digest}` },
    { connector: { org: 'acme', endpointId: `${'e'.repeat(251)}${emoji(1)}` } },
  ]) {
    await t.notThrowsAsync(
      create({ ...validSpec(), ...variant }).catch((error: { body?: unknown }) => {
        throw new Error(String(error.body ?? error));
      }),
      JSON.stringify(variant).slice(0, 80),
    );
  }
});

/** Resource variants at the edges of what Kubernetes' validation of a container's resources takes. */
function resourceVariants(): NonNullable<ConnectorSpec['resources']>[] {
  const deep = `${'d'.repeat(63)}.${'d'.repeat(63)}.${'d'.repeat(63)}.${'d'.repeat(52)}`;
  return [
    { limits: { 'example.com/gpu': '1' } },
    { limits: { 'example.com/gpu': '1000m' } },
    { limits: { 'example.com/gpu': '1500m' } },
    { limits: { 'example.com/gpu': '0.5' } },
    { limits: { 'example.com/gpu': '1e3' } },
    { requests: { 'example.com/gpu': 2 }, limits: { 'example.com/gpu': '2' } },
    { requests: { 'example.com/gpu': 1 }, limits: { 'example.com/gpu': 2 } },
    { requests: { 'example.com/gpu': 1 } },
    { requests: { 'example.kubernetes.io/thing': '100m' } },
    { limits: { 'requests.example.com/gpu': '1' } },
    { limits: { [`${deep}/x`]: '1' } },
    { limits: { [`${deep}d/x`]: '1' } },
    { limits: { memory: '1Gi', 'hugepages-2Mi': '4Mi' } },
    { requests: { cpu: '1', 'hugepages-2Mi': '4Mi' }, limits: { 'hugepages-2Mi': '4Mi' } },
    { requests: { cpu: '1', 'hugepages-2Mi': '2Mi' }, limits: { 'hugepages-2Mi': '4Mi' } },
    { requests: { memory: '1Gi', 'hugepages-2Mi': '4Mi' } },
    { limits: { 'hugepages-2Mi': '4Mi' } },
    { limits: { memory: '1Gi', 'hugepages-2Mi': '3Mi' } },
    { limits: { memory: '1Gi', 'hugepages-1Gi': '2Gi' } },
    { limits: { memory: '1Gi', 'hugepages-1m': '1' } },
    { limits: { memory: '1Gi', 'hugepages-0': '1' } },
    { requests: { cpu: '0.0001', memory: '0.5' }, limits: { 'ephemeral-storage': '100m' } },
  ];
}

/** Affinity variants: each pod validation rule across fields, broken and kept. */
function affinityVariants(): NonNullable<ConnectorSpec['affinity']>[] {
  type NodeRequirement = {
    key: string;
    operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | 'Gt' | 'Lt';
    values?: string[];
  };
  const node = (requirement: NodeRequirement, fields = false) => ({
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [fields ? { matchFields: [requirement] } : { matchExpressions: [requirement] }],
      },
    },
  });
  type Term = NonNullable<
    NonNullable<ConnectorSpec['affinity']>['podAffinity']
  >['requiredDuringSchedulingIgnoredDuringExecution'];
  const pod = (term: NonNullable<Term>[number]) => ({
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, podAffinityTerm: term }],
    },
  });
  const selector = (operator: 'In' | 'Exists', values?: string[]) => ({
    podAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: [
        {
          topologyKey: 'k',
          labelSelector: { matchExpressions: [{ key: 'app', operator, ...(values ? { values } : {}) }] },
        },
      ],
    },
  });
  return [
    node({ key: 'zone', operator: 'In', values: ['a'] }),
    node({ key: 'zone', operator: 'In' }),
    node({ key: 'zone', operator: 'NotIn', values: [] }),
    node({ key: 'cores', operator: 'Gt', values: ['8'] }),
    node({ key: 'cores', operator: 'Lt', values: ['8', '9'] }),
    node({ key: 'disk', operator: 'Exists' }),
    node({ key: 'disk', operator: 'DoesNotExist', values: ['x'] }),
    node({ key: 'metadata.name', operator: 'In', values: ['worker-1'] }, true),
    node({ key: 'metadata.name', operator: 'NotIn', values: ['a', 'b'] }, true),
    node({ key: 'metadata.labels', operator: 'In', values: ['worker-1'] }, true),
    node({ key: 'metadata.name', operator: 'Exists' }, true),
    node({ key: 'metadata.name', operator: 'In', values: ['Worker_1'] }, true),
    selector('In', ['x']),
    selector('In'),
    selector('Exists'),
    selector('Exists', ['x']),
    pod({ topologyKey: 'kubernetes.io/hostname' }),
    pod({ topologyKey: '' }),
    pod({ topologyKey: 'zone name' }),
    pod({ topologyKey: 'k', matchLabelKeys: ['app'] }),
    pod({ topologyKey: 'k', labelSelector: {}, matchLabelKeys: ['app'], mismatchLabelKeys: ['tenant'] }),
    pod({ topologyKey: 'k', labelSelector: {}, matchLabelKeys: ['app'], mismatchLabelKeys: ['app'] }),
    pod({ topologyKey: 'k', namespaces: ['team-a'] }),
    pod({ topologyKey: 'k', namespaces: ['Team_A'] }),
  ];
}

/** The StatefulSet the operator would build from a Connector, as its spec comes (no operator check). */
function statefulSetAsSpecComes(body: Connector) {
  const spec = { ...defaultedSpec({ ...body, spec: validSpec() }), name: body.metadata.name ?? '' };
  return desiredStatefulSet(body, spec, {
    image: 'connector:1',
    replicas: 1,
    configHash: 'h',
    restartedFor: undefined,
  });
}

test("spec.resources and spec.affinity: admission refuses exactly what the StatefulSet's validation refuses", async (t) => {
  // The CRD checked resource names, positive quantities and requests <= limits only, and the
  // affinity's shape: a fractional GPU, an overcommitted one, hugepages alone or in part pages, an
  // In without values or an empty topologyKey were admitted and their StatefulSet refused, so no
  // pod ever ran (found by dry-running the StatefulSet built from each spec).
  await setup();
  const apps = cluster().kc.makeApiClient(AppsV1Api);
  const disagreements: string[] = [];
  const variants: Partial<ConnectorSpec>[] = [
    ...resourceVariants().map((resources) => ({ resources })),
    ...affinityVariants().map((affinity) => ({ affinity })),
  ];
  for (const variant of variants) {
    const name = uniqueName('kept');
    const body = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'Connector',
      metadata: { name, namespace, uid: '00000000-0000-0000-0000-000000000000' },
      spec: { ...validSpec(), ...variant },
    } as Connector;
    const admitted = await api.createNamespacedCustomObject({ ...ref(), dryRun: 'All', body }).then(
      () => true,
      () => false,
    );
    const statefulSet = statefulSetAsSpecComes(body);
    const built = await apps
      .createNamespacedStatefulSet({ namespace, dryRun: 'All', body: statefulSet })
      .then(
        () => true,
        () => false,
      );
    if (admitted !== built)
      disagreements.push(`${JSON.stringify(variant)}: admission ${admitted}, StatefulSet ${built}`);
  }
  t.deepEqual(disagreements, []);
});

test('the operator refuses exactly what the API server refuses (defaultedSpec against admission)', async (t) => {
  await setup();
  const digest = `sha256:${'ab'.repeat(32)}`;
  const variants: ConnectorSpec[] = [
    ...[
      '1Gi',
      '1.5Gi',
      '1000m',
      '100m',
      '0.5Ki',
      '1.5k',
      '1e3',
      '0',
      '-1Gi',
      '7Ei',
      '8Ei',
      '1.5Pi',
      '999999999999999',
    ].map((size) => ({ ...validSpec(), storage: { size } })),
    ...[
      'busybox',
      'a/b/c:1',
      `x@${digest}`,
      'localhost:5000/a',
      'Team/app',
      'a:b:c',
      'a b',
      'host:port/x',
      '[::1]/x',
    ].map((image) => ({ ...validSpec(), image })),
    ...[
      'a',
      'example.com/a',
      'Example.com/a',
      'a/b/c',
      '-a',
      `${'p'.repeat(254)}/a`,
      `${'p'.repeat(253)}/a`,
    ].flatMap((key) => [
      { ...validSpec(), podLabels: { [key]: 'v' } },
      { ...validSpec(), podAnnotations: { [key]: 'v' } },
    ]),
    ...['', 'a', 'a-b_c.d', '-a', 'a b', 'v'.repeat(63)].map((value) => ({
      ...validSpec(),
      podLabels: { k: value },
    })),
    ...['cpu', 'hugepages-2Mi', 'hugepages-x', 'example.com/gpu', 'gpu', 'storage'].map((name) => ({
      ...validSpec(),
      resources: { limits: { [name]: '1' } },
    })),
    ...[emoji(126), `${emoji(126)}e`, `${emoji(126)}ee`].map((endpointId) => ({
      ...validSpec(),
      connector: { org: 'acme', endpointId },
    })),
    ...['prod', 'a.b-c', 'Prod', 'a_b', `${'c'.repeat(253)}`].map((name) => ({
      ...validSpec(),
      controlPlaneRef: { name },
    })),
    ...resourceVariants().map((resources) => ({ ...validSpec(), resources })),
    { ...validSpec(), controlPlane: {} },
    // The largest tolerationSeconds the operator's numbers hold exactly, and the next one.
    ...[Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1].map((tolerationSeconds) => ({
      ...validSpec(),
      tolerations: [
        { key: 'k', operator: 'Exists' as const, effect: 'NoExecute' as const, tolerationSeconds },
      ],
    })),
  ];
  const disagreements: string[] = [];
  for (const spec of variants) {
    const name = uniqueName('same');
    const admitted = await api
      .createNamespacedCustomObject({
        ...ref(),
        dryRun: 'All',
        body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'Connector', metadata: { name }, spec },
      })
      .then(
        () => true,
        () => false,
      );
    let used = true;
    try {
      defaultedSpec({ metadata: { namespace, name }, spec });
    } catch {
      used = false;
    }
    if (admitted !== used)
      disagreements.push(`${JSON.stringify(spec).slice(0, 160)}: admission ${admitted}, operator ${used}`);
  }
  t.deepEqual(disagreements, []);
});

test('the name rules judge creation only, so an update passes them', async (t) => {
  // On update oldSelf is set and the name rules pass at once: a Connector stored before a rule
  // existed stays updatable (its finalizer can be removed).
  const created = await create(validSpec());
  const updated = await update(created, (s) => {
    s.paused = true;
  });
  t.true(updated.spec.paused);
});

test('the wide Token Expiry column shows the live token expiry, not <invalid>', async (t) => {
  const created = await create(validSpec());
  const expiresAt = new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
  await api.replaceNamespacedCustomObjectStatus({
    ...ref(),
    name: created.metadata.name ?? '',
    body: {
      ...created,
      status: {
        lastHeartbeatTime: expiresAt,
        enrollment: { tokenSecretName: 'x-enrollment-token', tokenExpiresAt: expiresAt },
        liveToken: { expiresAt, mintedFor: 'Enrollment' },
      },
    },
  });
  const table = await tableOf(created.metadata.name ?? '');
  const cell = (name: string) =>
    table.rows[0]?.cells[table.columnDefinitions.findIndex((c) => c.name === name)];
  t.is(cell('Token Expiry'), expiresAt);
  // What a date column makes of a future time, and why Token Expiry is not one.
  t.is(cell('Last Heartbeat'), '<invalid>');
});

test('kubectl get shows Ready beside the phase, and -o wide its reason: a phase kept while the control plane is unreachable reads Unknown', async (t) => {
  // The operator keeps the last phase it saw (Online) while it cannot reach the control plane, and
  // Last Heartbeat stays as it was (empty while heartbeats were arriving); Ready says it is not known.
  const created = await create(validSpec());
  const name = created.metadata.name ?? '';
  const at = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const condition = (type: string, status: string, reason: string) => ({
    type,
    status,
    reason,
    message: 'connect ECONNREFUSED 127.0.0.1:8443',
    lastTransitionTime: at,
  });
  await api.replaceNamespacedCustomObjectStatus({
    ...ref(),
    name,
    body: {
      ...created,
      status: {
        phase: 'Online',
        mode: 'Autonomous',
        connectorId: `${namespace}.${name}`,
        conditions: [
          condition('Ready', 'Unknown', 'ControlPlaneUnreachable'),
          condition('Healthy', 'Unknown', 'ControlPlaneUnreachable'),
        ],
      },
    },
  });
  const table = await tableOf(name);
  const cell = (column: string) =>
    table.rows[0]?.cells[table.columnDefinitions.findIndex((c) => c.name === column)];
  t.is(cell('Ready'), 'Unknown');
  t.is(cell('Reason'), 'ControlPlaneUnreachable');
  t.is(cell('Phase'), 'Online');

  // As the kubectl built for this cluster (1.37) prints it.
  const get = (...extra: string[]) =>
    kubectlGetConnector(cluster().cluster.kubeconfigPath, namespace, name, ...extra);
  const rows = (text: string) =>
    text
      .trimEnd()
      .split('\n')
      .map((line) => line.split(/\s{2,}/));
  const [header, row] = rows(await get());
  t.deepEqual(header, ['NAME', 'PHASE', 'READY', 'MODE', 'LAST HEARTBEAT', 'AGE']);
  t.deepEqual(row?.slice(0, 4), [name, 'Online', 'Unknown', 'Autonomous']);
  const [wideHeader, wideRow] = rows(await get('-o', 'wide'));
  t.deepEqual(wideHeader, [
    'NAME',
    'PHASE',
    'READY',
    'REASON',
    'MODE',
    'LAST HEARTBEAT',
    'AGE',
    'CONNECTOR ID',
    'TOKEN EXPIRY',
  ]);
  t.deepEqual(wideRow?.slice(0, 5), [name, 'Online', 'Unknown', 'ControlPlaneUnreachable', 'Autonomous']);
});

/**
 * One request to the API server as the admin, its body sent as written: client-node would pass it
 * through JSON.stringify, which rounds a number beyond 2^53 before the API server sees it.
 */
async function apiRequest(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; body: string }> {
  const { kc } = cluster();
  const options: RequestOptions = {};
  await kc.applyToHTTPSOptions(options);
  const url = new URL(`${kc.getCurrentCluster()?.server}${path}`);
  return new Promise((resolve, reject) => {
    request(url, { ...options, method, headers: { ...(options.headers ?? {}), ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    })
      .on('error', reject)
      .end(body);
  });
}

/** The body of a GET of `path` from the API server, as the admin, in the representation `accept`. */
async function apiGet(path: string, accept: string): Promise<string> {
  const answer = await apiRequest('GET', path, { Accept: accept });
  if (answer.status !== 200) throw new Error(`HTTP ${answer.status}: ${answer.body}`);
  return answer.body;
}

const collectionPath = () => `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}`;

/** The object as the API server prints it for kubectl get (a meta.k8s.io Table). */
async function tableOf(name: string): Promise<{
  columnDefinitions: Array<{ name: string }>;
  rows: Array<{ cells: unknown[] }>;
}> {
  const answer = await apiRequest('GET', `${collectionPath()}/${name}`, {
    Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
  });
  if (answer.status !== 200) throw new Error(`HTTP ${answer.status}: ${answer.body}`);
  return JSON.parse(answer.body);
}

test('refuses a tolerationSeconds beyond 2^53-1, which the operator could only round into a StatefulSet no controller reads', async (t) => {
  await setup();
  // As a person writes it in YAML: int64's largest, which was admitted and reached the StatefulSet
  // as -9223372036854775808. Written into the JSON text: JSON.stringify could not carry it.
  const post = (seconds: string) => {
    const name = uniqueName('toleration');
    const spec = {
      ...validSpec(),
      tolerations: [{ key: 'dedicated', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 0 }],
    };
    const text = JSON.stringify({
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'Connector',
      metadata: { name },
      spec,
    });
    const body = text.replace('"tolerationSeconds":0', `"tolerationSeconds":${seconds}`);
    return apiRequest('POST', collectionPath(), { 'Content-Type': 'application/json' }, body);
  };
  const refused = await post('9223372036854775807');
  t.is(refused.status, 422, refused.body);
  const { message } = JSON.parse(refused.body) as { message: string };
  t.true(
    message.includes(
      'spec.tolerations[0].tolerationSeconds: Invalid value: 9223372036854775807: spec.tolerations[0].tolerationSeconds in body should be less than or equal to 9007199254740991',
    ),
    message,
  );
  t.is((await post('9007199254740992')).status, 422, 'one past the bound');
  const edge = await post('9007199254740991');
  t.is(edge.status, 201, edge.body);
  const stored = JSON.parse(edge.body) as Connector;
  t.is(stored.spec.tolerations?.[0]?.tolerationSeconds, Number.MAX_SAFE_INTEGER, 'read back exactly');
  t.notThrows(() => defaultedSpec(stored), 'the operator takes what admission took');
});

test('the schema fills in its defaults and the sample manifest is accepted', async (t) => {
  const created = await create(validSpec());
  t.deepEqual(created.spec.enrollment, { tokenTTL: '4h' });
  t.deepEqual(created.spec.recovery, { policy: 'Manual', validateRestart: true });
  t.is(created.spec.deletionPolicy, 'Release');
  t.false(created.spec.paused);
  t.is(created.spec.storage, undefined, 'storage defaults are the operator’s, so existingClaim stays usable');
  const named = await create({ ...validSpec(), controlPlaneRef: { name: 'prod' } });
  t.deepEqual(named.spec.controlPlaneRef, { kind: 'ControlPlane', name: 'prod' });

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

test('the deputy review: spec.podAnnotations cannot loosen the pod security context the operator sets (AppArmor, seccomp)', async (t) => {
  // The docs say a Connector's author cannot choose the pod's security context. The API server still
  // turns the AppArmor annotation into the container's securityContext.appArmorProfile, so a
  // Connector with podAnnotations {container.apparmor.security.beta.kubernetes.io/connector:
  // unconfined} got an unconfined agent container in the pod its StatefulSet made.
  await setup();
  const core = cluster().kc.makeApiClient(CoreV1Api);
  const unconfined = { 'container.apparmor.security.beta.kubernetes.io/connector': 'unconfined' };
  const name = uniqueName('apparmor');
  const body = {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'Connector',
    metadata: { name, namespace, uid: '00000000-0000-0000-0000-000000000000' },
    spec: { ...validSpec(), podAnnotations: unconfined },
  } as Connector;
  const refusal = await api.createNamespacedCustomObject({ ...ref(), body }).then(
    () => undefined,
    (error: unknown) => String((error as { body?: unknown }).body ?? error),
  );
  t.truthy(refusal, 'the CRD refuses the annotation');
  t.regex(refusal ?? '', /spec\.podAnnotations must not set .*apparmor/);
  // A Connector stored before the rule: the pod its StatefulSet makes keeps the operator's confinement.
  const template = statefulSetAsSpecComes(body).spec?.template;
  // The ServiceAccount admission looks the pod's ServiceAccount up (no controller makes it here).
  await core
    .createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'default' } } })
    .catch((error: unknown) => {
      if ((error as { code?: number }).code !== 409) throw error;
    });
  const pod = await core.createNamespacedPod({
    namespace,
    dryRun: 'All',
    body: {
      metadata: { ...template?.metadata, name: `${name}-0` },
      // The StatefulSet controller adds the claim of the data template as the volume "data".
      spec: template?.spec && {
        ...template.spec,
        volumes: [...(template.spec.volumes ?? []), { name: 'data', emptyDir: {} }],
      },
    },
  });
  const container = pod.spec?.containers.find((c) => c.name === 'connector');
  t.not(container?.securityContext?.appArmorProfile?.type, 'Unconfined');
  t.is(pod.metadata?.annotations?.['container.apparmor.security.beta.kubernetes.io/connector'], undefined);
});
