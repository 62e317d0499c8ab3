// Whose a refusal of a Connector's ConfigMap is: the control plane's admin's when its cause is what
// the control plane put there (the CA bundle, the URL, or the size while the bundle is its bulk),
// the Connector author's when it is a key of spec.connector, and nobody's the operator can name
// otherwise.
import test from 'ava';
import { CodedError } from '../../src/lib/errors.ts';
import { type Connector, defaultedSpec } from '../../src/operator/api/types.ts';
import {
  configMapKeyOf,
  controlPlaneContentRefusal,
} from '../../src/operator/reconcile/config-map-refusal.ts';
import { desiredConfigMap } from '../../src/operator/reconcile/desired-objects.ts';
import { invalidSpecFromRefusal } from '../../src/operator/reconcile/spec-fields.ts';
import { writeError } from '../../src/operator/runtime/apply.ts';

const refusal = (causes: Array<{ field: string; message: string }>) =>
  writeError(
    'server-side apply of ConfigMap prod/edge-config',
    Object.assign(new Error('HTTP-Code: 422'), {
      code: 422,
      body: JSON.stringify({
        kind: 'Status',
        message: 'ConfigMap "edge-config" is invalid',
        details: { causes: causes.map((c) => ({ reason: 'FieldValueInvalid', ...c })) },
      }),
    }),
  );

function connectorOn(controlPlaneRef?: {
  name: string;
  kind?: 'ControlPlane' | 'ClusterControlPlane';
}): Connector {
  return {
    apiVersion: 'vaultpam.io/v1alpha1',
    kind: 'Connector',
    metadata: { namespace: 'prod', name: 'edge', uid: 'u' },
    spec: { connector: { org: 'acme', endpointId: 'ep-1' }, ...(controlPlaneRef ? { controlPlaneRef } : {}) },
  };
}

/** The Connector's ConfigMap as the operator builds it; `null`: on the operator's default control plane. */
function built(
  caBytes: number,
  controlPlaneRef: Parameters<typeof connectorOn>[0] | null = { name: 'main' },
) {
  const connector = connectorOn(controlPlaneRef ?? undefined);
  const spec = defaultedSpec(connector);
  const desired = desiredConfigMap(connector, spec, {
    url: 'https://cp.example',
    caPem: caBytes > 0 ? '#'.repeat(caBytes) : undefined,
  });
  return { spec, desired };
}

const TOO_LONG = 'Too long: may not be more than 1048576 bytes';

test('a refused field names the ConfigMap key', (t) => {
  t.is(configMapKeyOf('data[ca.crt]'), 'ca.crt');
  t.is(configMapKeyOf('.data.ca.crt'), 'ca.crt');
  t.is(configMapKeyOf('data[control-plane-url]'), 'control-plane-url');
  t.is(configMapKeyOf('data'), undefined);
  t.is(configMapKeyOf('metadata.labels'), undefined);
});

test("a refusal of the CA key is the ControlPlane's: it names it, its admin and the fix, and asks for a check", (t) => {
  const { spec, desired } = built(2_000);
  const error = controlPlaneContentRefusal(
    refusal([{ field: 'data[ca.crt]', message: 'Invalid value: "…": not allowed here' }]),
    desired,
    spec,
  );
  t.is(error?.code, 'ControlPlaneConfigInvalid');
  t.false(error?.temporary);
  t.is(error?.details?.recheckControlPlane, true);
  t.regex(
    error?.message ?? '',
    /^spec\.controlPlaneRef: Kubernetes refuses ConfigMap prod\/edge-config for the CA bundle it copies from ControlPlane prod\/main \([\d,]+ bytes of data, a CA bundle of 2,000 bytes\): ConfigMap data\[ca\.crt\]: Invalid value/,
  );
  t.regex(error?.message ?? '', /an admin of ControlPlane prod\/main must fix it \(trim the bundle/);
  t.regex(error?.message ?? '', /not this Connector's spec; the operator checks it again now/);
  t.notRegex(error?.message ?? '', /fix the spec/);
});

test("a refusal of the URL key is the control plane's; a ClusterControlPlane is named as such", (t) => {
  const { spec, desired } = built(0, { kind: 'ClusterControlPlane', name: 'shared' });
  const error = controlPlaneContentRefusal(
    refusal([{ field: 'data[control-plane-url]', message: 'Invalid value' }]),
    desired,
    spec,
  );
  t.is(error?.code, 'ControlPlaneConfigInvalid');
  t.regex(error?.message ?? '', /for the URL it copies from ClusterControlPlane shared/);
  t.regex(error?.message ?? '', /an admin of ClusterControlPlane shared must fix it \(correct the URL\)/);
});

test("the whole object's size, while the CA bundle is its bulk, is the control plane's; without a reference, the operator's admin's", (t) => {
  for (const field of ['[]', '']) {
    const { spec, desired } = built(1_048_000);
    const error = controlPlaneContentRefusal(refusal([{ field, message: TOO_LONG }]), desired, spec);
    t.is(error?.code, 'ControlPlaneConfigInvalid', field);
    t.regex(error?.message ?? '', /a CA bundle of 1,048,000 bytes/);
  }
  const { spec, desired } = built(1_048_000, null);
  const error = controlPlaneContentRefusal(refusal([{ field: '[]', message: TOO_LONG }]), desired, spec);
  t.regex(
    error?.message ?? '',
    /^Kubernetes refuses ConfigMap prod\/edge-config for the CA bundle it copies from the operator's default control plane \(--control-plane-ca-file/,
  );
  t.regex(error?.message ?? '', /the operator's admin must fix it/);
  t.notRegex(error?.message ?? '', /checks it again/, 'the default is judged at start only');
});

test("neither a size refusal of a ConfigMap whose bulk is the Connector's, nor a whole-object refusal about something else, is the control plane's", (t) => {
  const { spec, desired } = built(100);
  // The Connector's own configuration outweighs the bundle.
  desired.data = { ...desired.data, 'allowed-networks': '10.0.0.0/8,'.repeat(100) };
  t.is(controlPlaneContentRefusal(refusal([{ field: '[]', message: TOO_LONG }]), desired, spec), undefined);
  const big = built(500_000);
  t.is(
    controlPlaneContentRefusal(
      refusal([{ field: '', message: 'this organisation is not approved' }]),
      big.desired,
      big.spec,
    ),
    undefined,
  );
  t.is(
    controlPlaneContentRefusal(
      refusal([{ field: 'data[org]', message: 'Invalid value' }]),
      big.desired,
      big.spec,
    ),
    undefined,
  );
  // Not a refusal, or not the ConfigMap: not this.
  t.is(controlPlaneContentRefusal(new CodedError('KUBERNETES_FORBIDDEN', 'no'), desired, spec), undefined);
  t.is(
    controlPlaneContentRefusal(
      refusal([{ field: 'data[ca.crt]', message: 'x' }]),
      { ...desired, kind: 'StatefulSet' },
      spec,
    ),
    undefined,
  );
});

test('each key of spec.connector in the ConfigMap maps to its field; what cannot be mapped says so, not "fix the spec"', (t) => {
  const keyed = invalidSpecFromRefusal(
    'ConfigMap',
    refusal([{ field: 'data[org]', message: 'Invalid value' }]),
  );
  t.regex(
    keyed?.message ?? '',
    /spec\.connector\.org \(ConfigMap data\[org\]\): Invalid value; fix spec\.connector\.org$/,
  );
  t.deepEqual(keyed?.details?.fields, ['spec.connector.org']);
  for (const [key, field] of [
    ['connector-id', 'spec.connector.id'],
    ['endpoint-id', 'spec.connector.endpointId'],
    ['allowed-networks', 'spec.connector.allowedNetworks'],
  ]) {
    const error = invalidSpecFromRefusal('ConfigMap', refusal([{ field: `data[${key}]`, message: 'x' }]));
    t.deepEqual(error?.details?.fields, [field], key);
  }
  for (const field of ['[]', '', 'metadata.annotations[x]']) {
    const error = invalidSpecFromRefusal('ConfigMap', refusal([{ field, message: 'refused' }]));
    t.is(error?.code, 'InvalidSpec', field);
    t.deepEqual(error?.details?.fields, [], field);
    t.notRegex(error?.message ?? '', /fix the spec|fix spec\.connector/, field);
    t.regex(
      error?.message ?? '',
      /the operator cannot tell which field of this Connector's spec causes it/,
      field,
    );
  }
  const none = invalidSpecFromRefusal('ConfigMap', refusal([]));
  t.regex(none?.message ?? '', /\(HTTP 422\) and names no field: the operator cannot tell/);
});
