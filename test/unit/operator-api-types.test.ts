import test from 'ava';
import { isCodedError } from '../../src/lib/errors.ts';
import {
  ownedObjectLabels,
  RESERVED_POD_LABEL_KEYS,
  selectorLabels,
} from '../../src/operator/api/constants.ts';
import { type Connector, type ConnectorSpec, defaultedSpec } from '../../src/operator/api/types.ts';
import {
  compareQuantities,
  isAnnotationKey,
  isContainerResourceName,
  isDnsLabel,
  isDnsSubdomain,
  isImageReference,
  isLabelKey,
  isLabelValue,
  isWholeBytes,
  MAX_POD_ANNOTATIONS_BYTES,
  parseQuantity,
} from '../../src/operator/api/validation.ts';

function connector(spec: Partial<ConnectorSpec> = {}, name = 'dc1'): Pick<Connector, 'metadata' | 'spec'> {
  return {
    metadata: { namespace: 'pam', name },
    spec: { connector: { org: 'acme', endpointId: 'ep-1' }, ...spec },
  };
}

test('defaultedSpec reads tokenTTL in the CRD spelling: hours, minutes and seconds in order', (t) => {
  for (const [ttl, seconds] of [
    ['4h', 14400],
    ['30m', 1800],
    ['1h30m', 5400],
    ['300s', 300],
    ['1h2m3s', 3723],
  ] as const) {
    t.is(defaultedSpec(connector({ enrollment: { tokenTTL: ttl } })).tokenTTLSeconds, seconds, ttl);
  }
});

test('defaultedSpec refuses a tokenTTL the CRD refuses, naming the grammar', (t) => {
  // Each is a duration to the flags' grammar, but not in the CRD's spelling of the field.
  for (const bad of ['', '3600', '30m1h', '1d', '1.5h', '-5m', '4H', ' 4h', '1234567h', '3600000ms']) {
    const error = t.throws(() => defaultedSpec(connector({ enrollment: { tokenTTL: bad } })), undefined, bad);
    t.true(isCodedError(error, 'INVALID_SPEC'), bad);
    t.regex(error?.message ?? '', /^spec\.enrollment\.tokenTTL: .*e\.g\. 30m, 4h or 1h30m$/, bad);
  }
});

test('defaultedSpec applies every default to a minimal spec', (t) => {
  const spec = defaultedSpec(connector());
  t.deepEqual(spec, {
    namespace: 'pam',
    name: 'dc1',
    connector: { id: 'pam.dc1', org: 'acme', endpointId: 'ep-1', allowedNetworks: [] },
    imagePullPolicy: 'IfNotPresent',
    storage: { kind: 'OperatorClaim', size: '1Gi' },
    tokenTTLSeconds: 14400,
    recovery: { policy: 'Manual', validateRestart: true },
    deletionPolicy: 'Release',
    paused: false,
  });
});

test('defaultedSpec keeps what the spec sets and fills in reference keys', (t) => {
  const spec = defaultedSpec(
    connector({
      controlPlaneRef: { name: 'prod' },
      connector: { id: 'custom', org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] },
      image: 'vaultpam-connector:1',
      imagePullPolicy: 'Always',
      enrollment: { tokenTTL: '30m' },
      recovery: { policy: 'Automatic', requestId: 'incident-1', validateRestart: false },
      deletionPolicy: 'Retain',
      paused: true,
    }),
  );
  t.deepEqual(spec.controlPlaneRef, { kind: 'ControlPlane', name: 'prod' }, 'kind defaults to ControlPlane');
  t.is(spec.connector.id, 'custom');
  t.deepEqual(spec.connector.allowedNetworks, ['10.0.0.0/8']);
  t.is(spec.image, 'vaultpam-connector:1');
  t.is(spec.imagePullPolicy, 'Always');
  t.is(spec.tokenTTLSeconds, 1800);
  t.deepEqual(spec.recovery, { policy: 'Automatic', requestId: 'incident-1', validateRestart: false });
  t.is(spec.deletionPolicy, 'Retain');
  t.true(spec.paused);
});

test('defaultedSpec turns each storage choice into one plan', (t) => {
  t.deepEqual(defaultedSpec(connector({ storage: { size: '5Gi', storageClassName: 'fast' } })).storage, {
    kind: 'OperatorClaim',
    size: '5Gi',
    storageClassName: 'fast',
  });
  t.deepEqual(defaultedSpec(connector({ storage: { existingClaim: 'old-data' } })).storage, {
    kind: 'ExistingClaim',
    claimName: 'old-data',
  });
  t.deepEqual(defaultedSpec(connector({ storage: { ephemeral: true } })).storage, { kind: 'EmptyDir' });
  t.deepEqual(defaultedSpec(connector({ storage: { ephemeral: true, size: '100Mi' } })).storage, {
    kind: 'EmptyDir',
    sizeLimit: '100Mi',
  });
  t.deepEqual(defaultedSpec(connector({ storage: { ephemeral: false } })).storage, {
    kind: 'OperatorClaim',
    size: '1Gi',
  });
  const adopted = defaultedSpec(connector({ workloadRef: { kind: 'Deployment', name: 'legacy' } }));
  t.deepEqual(adopted.storage, { kind: 'Adopted' });
  t.deepEqual(adopted.workloadRef, { kind: 'Deployment', name: 'legacy' });
});

test('defaultedSpec refuses, permanently and by field, what slipped past validation', (t) => {
  const cases: Array<[Partial<ConnectorSpec>, string]> = [
    [{ enrollment: { tokenTTL: '5h' } }, 'spec.enrollment.tokenTTL: "5h" is outside 5m..4h'],
    [{ enrollment: { tokenTTL: '1m' } }, 'spec.enrollment.tokenTTL: "1m" is outside 5m..4h'],
    [{ enrollment: { tokenTTL: 'soon' } }, 'spec.enrollment.tokenTTL: "soon" is not a duration'],
    [{ storage: { existingClaim: 'x', size: '1Gi' } }, 'spec.storage: existingClaim cannot be combined'],
    [{ storage: { ephemeral: true, storageClassName: 'fast' } }, 'spec.storage: ephemeral: true cannot be'],
    [{ workloadRef: { kind: 'StatefulSet', name: 'x' }, storage: {} }, 'spec.storage: workloadRef adopts'],
    [
      { workloadRef: { kind: 'StatefulSet', name: 'x' }, image: 'i', nodeSelector: {} },
      'spec.workloadRef: adopts an existing workload, so the operator builds no pod template; remove spec.image, spec.nodeSelector',
    ],
    [
      { connector: { id: 'Upper_Case', org: 'acme', endpointId: 'ep' } },
      'spec.connector.id: "Upper_Case" must be lower-case',
    ],
  ];
  for (const [spec, start] of cases) {
    const error = t.throws(() => defaultedSpec(connector(spec)));
    t.true(isCodedError(error, 'INVALID_SPEC'));
    t.false(isCodedError(error) && error.temporary);
    t.true(error?.message.startsWith(start), `${error?.message} should start with ${start}`);
  }
  const nameless = { metadata: { name: 'x' }, spec: connector().spec };
  t.true(
    isCodedError(
      t.throws(() => defaultedSpec(nameless)),
      'INVALID_SPEC',
    ),
  );
});

test('defaultedSpec accepts each checked field at the edge Kubernetes allows', (t) => {
  const edges: Array<Partial<ConnectorSpec>> = [
    // 253 UTF-16 code units, as the control plane counts; any characters.
    { connector: { org: `${'o'.repeat(251)}😀`, endpointId: 'dc1 linux fleet / ünïcode' } },
    { controlPlaneRef: { kind: 'ClusterControlPlane', name: `a.b-c.${'d'.repeat(247)}` } },
    { image: `registry.example.com:5000/vaultpam/connector_agent:1.2.3@sha256:${'a'.repeat(64)}` },
    { imagePullSecrets: [{ name: 'registry-pull.v1' }] },
    { resources: { requests: { cpu: '50m', memory: 67108864 }, limits: { cpu: 1, 'example.com/gpu': '1' } } },
    { nodeSelector: { 'node.example.com/empty': '' } },
    { tolerations: [{ operator: 'Exists' }, { key: 'k', effect: 'NoExecute', tolerationSeconds: 1 }] },
    { tolerations: [{ key: 'k', effect: 'NoExecute', tolerationSeconds: Number.MAX_SAFE_INTEGER }] },
    { priorityClassName: 'system-node-critical', serviceAccountName: 'vaultpam.connector' },
    { podLabels: { [`${'p'.repeat(253)}/${'n'.repeat(63)}`]: 'v'.repeat(63) } },
    { podAnnotations: { 'Example.COM/Owner': 'x'.repeat(4096), note: '' } },
    { storage: { size: '1.5Gi', storageClassName: 'fast.ssd' } },
    { storage: { existingClaim: 'data-dc1.v2' } },
    { storage: { ephemeral: true, size: '1000m' } },
    { workloadRef: { kind: 'Deployment', name: 'legacy.v2' } },
    { workloadRef: { kind: 'StatefulSet', name: 'n'.repeat(63) } },
  ];
  for (const edge of edges)
    t.notThrows(() => defaultedSpec(connector(edge)), JSON.stringify(edge).slice(0, 100));
  t.notThrows(() => defaultedSpec(connector({}, 'a'.repeat(52))));
});

test('defaultedSpec refuses what the CRD syntax rules refuse, naming the field', (t) => {
  const cases: Array<[Partial<ConnectorSpec>, string, string?]> = [
    [{}, 'metadata.name: "dc1.connector" is not a DNS label', 'dc1.connector'],
    [{}, 'metadata.name: "', 'a'.repeat(53)],
    [
      { connector: { org: 'acme', endpointId: '😀'.repeat(127) } },
      'spec.connector.endpointId: is longer than',
    ],
    [{ connector: { org: '😀'.repeat(127), endpointId: 'ep' } }, 'spec.connector.org: is longer than'],
    [{ controlPlaneRef: { name: 'Prod_CP' } }, 'spec.controlPlaneRef.name: "Prod_CP" is not a DNS subdomain'],
    // A Connector stored before spec.controlPlane was removed is refused by name, never used.
    [
      { controlPlane: { url: 'https://x', credentialSecretRef: { name: 'app-db', key: 'password' } } },
      'spec.controlPlane: this field was removed: a Connector no longer carries a URL or credential; ask an admin for a ControlPlane in this namespace or a ClusterControlPlane and set spec.controlPlaneRef',
    ],
    [{ image: 'vaultpam connector:1' }, 'spec.image: "vaultpam connector:1" contains whitespace'],
    [{ image: 'Vaultpam/Connector:1' }, 'spec.image: "Vaultpam/Connector:1" is not an image reference'],
    [{ imagePullSecrets: [{ name: 'ok' }, { name: 'Not_OK' }] }, 'spec.imagePullSecrets[1].name: "Not_OK"'],
    [
      { resources: { requests: { cpu: '-1' } } },
      'spec.resources.requests.cpu: "-1" is not a quantity greater than zero',
    ],
    [
      { resources: { limits: { memory: 0 } } },
      'spec.resources.limits.memory: "0" is not a quantity greater than zero',
    ],
    [
      { resources: { limits: { gpu: '1' } } },
      'spec.resources.limits: "gpu" is not a container resource name',
    ],
    [
      { resources: { requests: { memory: '1Gi' }, limits: { memory: '512Mi' } } },
      'spec.resources.requests.memory: is larger than its limit',
    ],
    [
      { nodeSelector: { 'kubernetes.io/os': 'linux os' } },
      'spec.nodeSelector.kubernetes.io/os: "linux os" is not a label value',
    ],
    [{ tolerations: [{ key: 'bad key' }] }, 'spec.tolerations[0].key: "bad key" is not a label key'],
    [
      { tolerations: [{ operator: 'Equal', value: 'x' }] },
      'spec.tolerations[0]: an empty key needs operator Exists',
    ],
    [
      { tolerations: [{ key: 'k', operator: 'Exists', value: 'x' }] },
      'spec.tolerations[0]: operator Exists takes no value',
    ],
    [
      { tolerations: [{ key: 'k', tolerationSeconds: 5 }] },
      'spec.tolerations[0]: tolerationSeconds needs effect NoExecute',
    ],
    [
      // Stored before the CRD's maximum: 9223372036854775807, as JSON.parse reads it (rounded up).
      {
        tolerations: [
          { key: 'k', effect: 'NoExecute', tolerationSeconds: JSON.parse('9223372036854775807') },
        ],
      },
      'spec.tolerations[0].tolerationSeconds: is more than 9007199254740991',
    ],
    [
      { priorityClassName: 'High_Priority' },
      'spec.priorityClassName: "High_Priority" is not a DNS subdomain',
    ],
    [{ serviceAccountName: 'svc account' }, 'spec.serviceAccountName: "svc account" is not a DNS subdomain'],
    [
      { podLabels: { team: 'platform security' } },
      'spec.podLabels.team: "platform security" is not a label value',
    ],
    [{ podLabels: { 'bad key': 'x' } }, 'spec.podLabels: "bad key" is not a label key'],
    [{ podAnnotations: { 'a/b/c': 'x' } }, 'spec.podAnnotations: "a/b/c" is not an annotation key'],
    [
      {
        podAnnotations: Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, 'é'.repeat(2100)])),
      },
      'spec.podAnnotations: keys and values take 268982 bytes, more than 261120',
    ],
    [{ storage: { size: '100m' } }, 'spec.storage.size: "100m" is not a whole number of bytes'],
    [{ storage: { size: '-1Gi' } }, 'spec.storage.size: "-1Gi" is not a whole number of bytes'],
    [
      { storage: { existingClaim: 'Old_Data' } },
      'spec.storage.existingClaim: "Old_Data" is not a DNS subdomain',
    ],
    [{ storage: { storageClassName: 'fast ssd' } }, 'spec.storage.storageClassName: "fast ssd"'],
    [
      { workloadRef: { kind: 'StatefulSet', name: 'legacy.v2' } },
      'spec.workloadRef.name: "legacy.v2" is not a DNS label',
    ],
  ];
  for (const [spec, start, name] of cases) {
    const error = t.throws(() => defaultedSpec(connector(spec, name)), undefined, start);
    t.true(isCodedError(error, 'INVALID_SPEC'), start);
    t.true(error?.message.startsWith(start), `${error?.message} should start with ${start}`);
  }
});

test('the name, label and image patterns take what Kubernetes takes', (t) => {
  for (const name of ['a', 'dc1-connector', '0', 'a'.repeat(63)]) t.true(isDnsLabel(name), name);
  for (const name of ['', 'a.b', '-a', 'a-', 'A', 'a'.repeat(64)]) t.false(isDnsLabel(name), name);
  for (const name of ['a.b-c.d', 'a'.repeat(253)]) t.true(isDnsSubdomain(name), name);
  for (const name of ['a..b', '.a', 'a_b', 'a'.repeat(254)]) t.false(isDnsSubdomain(name), name);
  for (const key of ['a', 'A_b.c-d', 'example.com/Name', `${'p'.repeat(253)}/n`])
    t.true(isLabelKey(key), key);
  for (const key of ['', '/a', 'a/', 'a/b/c', 'Example.com/a', `${'p'.repeat(254)}/n`, 'n'.repeat(64), '_a'])
    t.false(isLabelKey(key), key);
  for (const key of ['Example.COM/Owner', 'a']) t.true(isAnnotationKey(key), key);
  for (const key of ['a b', 'x/y/z']) t.false(isAnnotationKey(key), key);
  for (const value of ['', 'a', 'a.b_c-d', 'v'.repeat(63)]) t.true(isLabelValue(value), value);
  for (const value of [' a', 'a ', '-a', 'a_', 'v'.repeat(64)]) t.false(isLabelValue(value), value);
  const digest = `sha256:${'0'.repeat(64)}`;
  for (const image of [
    'busybox',
    'vaultpam-connector:0.1.0',
    'library/busybox:latest',
    'localhost/app',
    'localhost:5000/app:v1',
    'registry:5000/team/app',
    '[::1]:5000/app',
    'REGISTRY.example.com/a__b/c---d:Tag_1.x',
    `app@${digest}`,
    `ghcr.io/org/app:1@${digest}`,
  ])
    t.true(isImageReference(image), image);
  for (const image of [
    '',
    'App',
    'Team/app',
    'a:b:c',
    'a/:b',
    'a@sha256:short',
    `a:${'t'.repeat(129)}`,
    'a b',
  ])
    t.false(isImageReference(image), image);
  for (const name of ['cpu', 'memory', 'ephemeral-storage', 'hugepages-2Mi', 'example.com/gpu'])
    t.true(isContainerResourceName(name), name);
  for (const name of ['gpu', 'storage', 'hugepages-', 'hugepages-big', 'a/b/c'])
    t.false(isContainerResourceName(name), name);
  t.is(MAX_POD_ANNOTATIONS_BYTES, 256 * 1024 - 1024);
});

test('the pattern checks take linear time on long hostile input', (t) => {
  const started = performance.now();
  for (const text of [
    'a'.repeat(1024),
    `${'a.'.repeat(511)}!`,
    `${'a-'.repeat(511)}!`,
    `${'a_'.repeat(511)}!`,
  ]) {
    isImageReference(text);
    isLabelKey(text);
    isDnsSubdomain(text);
  }
  t.true(performance.now() - started < 500);
});

test('quantities parse and compare exactly, as CEL quantity() does', (t) => {
  const q = (text: string | number) => {
    const parsed = parseQuantity(text);
    if (parsed === undefined) throw new Error(`${text} is no quantity`);
    return parsed;
  };
  for (const bad of ['', 'lots', '1 Gi', ' 1Gi', '1GiB', '1K', 'Mi', '1e', '1.5.5', '1e1001'])
    t.is(parseQuantity(bad), undefined, bad);
  t.is(parseQuantity(1.5), undefined);
  t.is(q('-1').sign, -1);
  t.is(q('0Gi').sign, 0);
  t.is(q('+.5').sign, 1);
  t.is(compareQuantities(q('1Gi'), q('1024Mi')), 0);
  t.is(compareQuantities(q('200M'), q('0.2G')), 0);
  t.is(compareQuantities(q('1e3'), q('1k')), 0);
  t.is(compareQuantities(q('500m'), q(1)), -1);
  t.is(compareQuantities(q('1Ki'), q('1k')), 1);
  for (const whole of ['1Gi', '1.5Gi', '1000m', '0.5Ki', '1e3', '1.5k', '900Ti', '999999999999999', 100])
    t.true(isWholeBytes(q(whole)), String(whole));
  for (const refused of ['100m', '1.5', '1u', '1P', '1Pi', '8Ei', '1e19', '1000000000000000000m'])
    t.false(isWholeBytes(q(refused)), refused);
});

test('owned objects carry the selector labels, and those are the reserved pod label keys', (t) => {
  const selector = selectorLabels('dc1');
  t.deepEqual(selector, {
    'app.kubernetes.io/name': 'vaultpam-connector',
    'app.kubernetes.io/instance': 'dc1',
    'vaultpam.io/connector': 'dc1',
  });
  const owned = ownedObjectLabels('dc1', 'data');
  t.like(owned, selector);
  t.is(owned['app.kubernetes.io/managed-by'], 'vaultpam-connector-operator');
  t.is(owned['vaultpam.io/component'], 'data');
  for (const key of Object.keys(selector)) t.true(RESERVED_POD_LABEL_KEYS.includes(key), key);
  t.true(RESERVED_POD_LABEL_KEYS.includes('app.kubernetes.io/managed-by'));
});
