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
    ['spec.template.spec.containers[name="agent"].resources', 'spec.resources'],
    ['spec.template.spec.containers[0].imagePullPolicy', 'spec.imagePullPolicy'],
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

/**
 * The API server's answer to a server-side apply whose body does not fit the StatefulSet's schema,
 * as kube-apiserver 1.37 gives it: HTTP 500, no causes, the fields only in the message.
 */
const misfit = (errors: string) =>
  writeError(
    'server-side apply (dry run) of StatefulSet prod/edge',
    Object.assign(new Error('HTTP-Code: 500'), {
      code: 500,
      body: JSON.stringify({
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: `failed to create typed patch object (prod/edge; apps/v1, Kind=StatefulSet): ${errors}`,
        code: 500,
      }),
    }),
  );

test('a body that does not fit the schema (HTTP 500, typed patch) is a permanent InvalidSpec naming the Connector field', (t) => {
  // The three shapes of a wrong spec.affinity an outsider review found retried forever.
  const shapes: Array<[string, string]> = [
    [
      '.spec.template.spec.affinity.nodeAfinity: field not declared in schema',
      'field not declared in schema',
    ],
    [
      '.spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution: expected list, got &{map[topologyKey:x]}',
      'expected list, got',
    ],
    ['.spec.template.spec.affinity.nodeAffinity: expected map, got &{yes}', 'expected map, got &{yes}'],
  ];
  for (const [errors, cause] of shapes) {
    const error = invalidSpecFromRefusal('StatefulSet', misfit(errors));
    t.is(error?.code, 'InvalidSpec', errors);
    t.false(error?.temporary, errors);
    t.regex(
      error?.message ?? '',
      /^Kubernetes refuses the StatefulSet built from this Connector: spec\.affinity \(StatefulSet spec\.template\.spec\.affinity\./,
    );
    t.true(error?.message.includes(cause), `${cause} in ${error?.message}`);
    t.regex(error?.message ?? '', /fix spec\.affinity$/);
  }
  // Several errors come as a list, a keyed list item by its key.
  const several = invalidSpecFromRefusal(
    'StatefulSet',
    misfit(
      'errors:\n  .spec.template.spec.affinity.nodeAfinity: field not declared in schema\n  .spec.template.spec.containers[name="agent"].resources.claimz: field not declared in schema',
    ),
  );
  t.deepEqual(several?.details?.fields, ['spec.affinity', 'spec.resources']);
});

test('anything but a refusal (conflict, forbidden, network) is not an InvalidSpec', (t) => {
  t.is(invalidSpecFromRefusal('StatefulSet', refusal([], 409)), undefined);
  t.is(invalidSpecFromRefusal('StatefulSet', new CodedError('KUBERNETES_FORBIDDEN', 'no')), undefined);
  t.is(invalidSpecFromRefusal('StatefulSet', new Error('socket hang up')), undefined);
});
