import test from 'ava';
import { isCodedError } from '../../src/lib/errors.ts';
import {
  ownedObjectLabels,
  RESERVED_POD_LABEL_KEYS,
  selectorLabels,
} from '../../src/operator/api/constants.ts';
import {
  type Connector,
  type ConnectorSpec,
  defaultedSpec,
  formatDuration,
  parseDuration,
} from '../../src/operator/api/types.ts';

function connector(spec: Partial<ConnectorSpec> = {}, name = 'dc1'): Pick<Connector, 'metadata' | 'spec'> {
  return {
    metadata: { namespace: 'pam', name },
    spec: { connector: { org: 'acme', endpointId: 'ep-1' }, ...spec },
  };
}

test('parseDuration reads hours, minutes and seconds in order', (t) => {
  t.is(parseDuration('4h'), 14400);
  t.is(parseDuration('30m'), 1800);
  t.is(parseDuration('1h30m'), 5400);
  t.is(parseDuration('90s'), 90);
  t.is(parseDuration('1h2m3s'), 3723);
  t.is(parseDuration('0s'), 0);
});

test('parseDuration refuses what the CRD refuses, naming the grammar', (t) => {
  for (const bad of ['', '4', '30m1h', '1d', '1.5h', '-5m', '4H', ' 4h', '1234567h']) {
    const error = t.throws(() => parseDuration(bad), undefined, bad);
    t.true(isCodedError(error, 'INVALID_DURATION'), bad);
    t.regex(error?.message ?? '', /e\.g\. 30m, 4h or 1h30m/);
  }
});

test('formatDuration writes the shortest form and round-trips', (t) => {
  t.is(formatDuration(14400), '4h');
  t.is(formatDuration(5400), '1h30m');
  t.is(formatDuration(61), '1m1s');
  t.is(formatDuration(0), '0s');
  for (const seconds of [1, 59, 60, 3599, 3600, 3661, 14400])
    t.is(parseDuration(formatDuration(seconds)), seconds);
  t.throws(() => formatDuration(1.5));
  t.throws(() => formatDuration(-1));
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
      controlPlane: {
        url: 'https://cp.example.com',
        caConfigMapRef: { name: 'ca' },
        credentialSecretRef: { name: 'admin', key: 'token' },
      },
      connector: { id: 'custom', org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] },
      image: 'vaultpam-connector:1',
      imagePullPolicy: 'Always',
      enrollment: { tokenTTL: '30m' },
      recovery: { policy: 'Automatic', requestId: 'incident-1', validateRestart: false },
      deletionPolicy: 'Retain',
      paused: true,
    }),
  );
  t.deepEqual(spec.controlPlane, {
    url: 'https://cp.example.com',
    caConfigMapRef: { name: 'ca', key: 'ca.crt' },
    credentialSecretRef: { name: 'admin', key: 'token' },
  });
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
