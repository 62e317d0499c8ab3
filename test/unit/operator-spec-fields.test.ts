// Kubernetes' refusal of an owned object, read back into the Connector field a person must fix.
import test from 'ava';
import { CodedError } from '../../src/lib/errors.ts';
import { connectorFieldFor, invalidSpecFromRefusal } from '../../src/operator/reconcile/spec-fields.ts';
import { writeError } from '../../src/operator/runtime/apply.ts';

const refusal = (causes: Array<{ field: string; message: string }>, code = 422) =>
  writeError(
    'server-side apply of StatefulSet prod/edge',
    Object.assign(new Error('HTTP-Code: 422'), {
      code,
      body: JSON.stringify({
        kind: 'Status',
        message: 'StatefulSet.apps "edge" is invalid',
        details: { causes: causes.map((c) => ({ reason: 'FieldValueInvalid', ...c })) },
      }),
    }),
  );

test('each StatefulSet field the operator fills maps to the Connector field it comes from', (t) => {
  const cases: Array<[string, string]> = [
    ['spec.template.metadata.labels', 'spec.podLabels'],
    ['spec.template.metadata.annotations', 'spec.podAnnotations'],
    ['spec.template.spec.containers[0].image', 'spec.image'],
    ['spec.template.spec.containers[0].resources.requests[cpu]', 'spec.resources'],
    ['spec.template.spec.priorityClassName', 'spec.priorityClassName'],
    ['spec.template.spec.affinity.nodeAffinity', 'spec.affinity'],
    ['spec.volumeClaimTemplates[0].spec.resources.requests[storage]', 'spec.storage'],
  ];
  for (const [owned, source] of cases) t.is(connectorFieldFor(owned), source, owned);
  t.is(connectorFieldFor('spec.minReadySeconds'), undefined);
});

test('a 422 becomes a permanent InvalidSpec naming the Connector field, the owned field and the cause', (t) => {
  const error = invalidSpecFromRefusal(
    'StatefulSet',
    refusal([
      { field: 'spec.template.metadata.labels', message: 'Invalid value: "a b": a valid label must be ...' },
    ]),
  );
  t.truthy(error);
  t.is(error?.code, 'InvalidSpec');
  t.false(error?.temporary);
  t.regex(
    error?.message ?? '',
    /^Kubernetes refuses the StatefulSet built from this Connector: spec\.podLabels/,
  );
  t.regex(error?.message ?? '', /fix spec\.podLabels$/);
});

test('anything but a refusal (conflict, forbidden, network) is not an InvalidSpec', (t) => {
  t.is(invalidSpecFromRefusal('StatefulSet', refusal([], 409)), undefined);
  t.is(invalidSpecFromRefusal('StatefulSet', new CodedError('KUBERNETES_FORBIDDEN', 'no')), undefined);
  t.is(invalidSpecFromRefusal('StatefulSet', new Error('socket hang up')), undefined);
});
