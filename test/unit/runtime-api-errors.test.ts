// How the runtime reads client-node errors, and how a failed write becomes a coded error.
import { ApiException } from '@kubernetes/client-node';
import test from 'ava';
import { CodedError } from '../../src/lib/errors.ts';
import { invalidSpecFromRefusal } from '../../src/operator/reconcile/spec-fields.ts';
import { apiErrorMessage, describeApiError, httpStatusOf } from '../../src/operator/runtime/api-errors.ts';
import { controllerOwnerReference, writeError } from '../../src/operator/runtime/apply.ts';
import { schemaMisfit } from '../../src/operator/runtime/schema-misfit.ts';

function apiException(code: number, message: string): ApiException<string> {
  const body = JSON.stringify({ kind: 'Status', status: 'Failure', message, code });
  return new ApiException(
    code,
    `HTTP-Code: ${code}\nMessage: Unknown API Status Code!\nBody: ${body}\nHeaders: {}`,
    body,
    {},
  );
}

test('an ApiException is reduced to its HTTP status and the Status message', (t) => {
  const error = apiException(403, 'configmaps is forbidden: User "x" cannot list resource "configmaps"');
  t.is(httpStatusOf(error), 403);
  t.is(apiErrorMessage(error), 'configmaps is forbidden: User "x" cannot list resource "configmaps"');
  t.is(
    describeApiError(error),
    'HTTP 403: configmaps is forbidden: User "x" cannot list resource "configmaps"',
  );
});

test('watch errors carry statusCode; transport errors keep their cause', (t) => {
  t.is(httpStatusOf(Object.assign(new Error('Gone'), { statusCode: 410 })), 410);
  t.is(httpStatusOf(Object.assign(new Error('reset'), { code: 'ECONNRESET' })), undefined);
  const fetchFailure = new TypeError('fetch failed', {
    cause: new Error('connect ECONNREFUSED 127.0.0.1:1'),
  });
  t.is(describeApiError(fetchFailure), 'fetch failed: connect ECONNREFUSED 127.0.0.1:1');
});

test('write failures are classified: conflicts and refusals are temporary, invalid or missing objects permanent', (t) => {
  const cases: Array<[number, string, boolean]> = [
    [409, 'KUBERNETES_CONFLICT', true],
    [403, 'KUBERNETES_FORBIDDEN', true],
    [500, 'KUBERNETES_WRITE_FAILED', true],
    [429, 'KUBERNETES_WRITE_FAILED', true],
    [422, 'KUBERNETES_INVALID', false],
    [400, 'KUBERNETES_INVALID', false],
    [404, 'KUBERNETES_NOT_FOUND', false],
  ];
  for (const [status, code, temporary] of cases) {
    const error = writeError('server-side apply of ConfigMap ns/a', apiException(status, 'why'));
    t.is(error.code, code, `HTTP ${status}`);
    t.is(error.temporary, temporary, `HTTP ${status}`);
    t.is(error.httpStatus, status);
    t.is(error.message, `server-side apply of ConfigMap ns/a failed (HTTP ${status}): why`);
  }
  // A body that does not fit the schema is refused with 500, and sending it again changes nothing;
  // nor can any apply succeed to a stored object that does not fit (stored before its CRD's schema
  // covered the field).
  const misfits: Array<[string, string, string]> = [
    [
      'patch',
      'failed to create typed patch object (ns/a; apps/v1, Kind=StatefulSet): .spec.template.spec.affinity.nodeAfinity: field not declared in schema',
      'spec.template.spec.affinity.nodeAfinity',
    ],
    [
      'live',
      'failed to create typed live object (ns/a; vaultpam.io/v1alpha1, Kind=Connector): .spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution: expected list, got &{map[]}',
      'spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution',
    ],
  ];
  for (const [object, message, field] of misfits) {
    const misfit = writeError('server-side apply of X ns/a', apiException(500, message));
    t.is(misfit.code, 'KUBERNETES_INVALID', object);
    t.false(misfit.temporary, object);
    t.is(misfit.httpStatus, 500);
    t.is(misfit.details?.misfit, object);
    t.deepEqual(
      (misfit.details?.causes as Array<{ field: string }> | undefined)?.map((c) => c.field),
      [field],
    );
  }
  const network = writeError('delete of Secret ns/b', new TypeError('fetch failed'));
  t.is(network.code, 'KUBERNETES_WRITE_FAILED');
  t.true(network.temporary);
});

test('a write error never repeats a token the API server quoted back', (t) => {
  const token = `vpe_${'0123456789abcdef'}_${'A'.repeat(43)}`;
  const error = writeError(
    'server-side apply of Secret ns/t',
    apiException(422, `data[token]: Invalid value: "${token}"`),
  );
  t.false(error.message.includes(token));
  t.true(error.message.includes('vpe_[REDACTED]'));
});

test('an owner reference needs a uid and names what is missing', (t) => {
  const error = t.throws(() =>
    controllerOwnerReference({
      apiVersion: 'vaultpam.io/v1alpha1',
      kind: 'Connector',
      metadata: { name: 'c' },
    }),
  );
  t.is((error as { code?: string }).code, 'INVALID_OWNER');
  t.regex(error?.message ?? '', /uid=\(none\)/);
  t.deepEqual(
    controllerOwnerReference({
      apiVersion: 'vaultpam.io/v1alpha1',
      kind: 'Connector',
      metadata: { name: 'c', uid: 'u1' },
    }),
    {
      apiVersion: 'vaultpam.io/v1alpha1',
      kind: 'Connector',
      name: 'c',
      uid: 'u1',
      controller: true,
      blockOwnerDeletion: true,
    },
  );
});

test('a misfit message: a line a quoted value holds is no cause, and a stored object that does not fit is no InvalidSpec', (t) => {
  const forged = schemaMisfit(
    'failed to create typed patch object (p/e; apps/v1, Kind=StatefulSet): .spec.template.spec.affinity.nodeAffinity: expected map, got &{x\n.spec.template.metadata.labels: must not contain app.kubernetes.io/name}',
  );
  t.deepEqual(
    forged?.causes.map((c) => c.field),
    ['spec.template.spec.affinity.nodeAffinity'],
  );
  const live = new CodedError('KUBERNETES_INVALID', 'x', { details: { misfit: 'live', causes: [] } });
  t.is(
    invalidSpecFromRefusal('StatefulSet', live),
    undefined,
    'someone edited the StatefulSet: not the spec',
  );
  const patch = new CodedError('KUBERNETES_INVALID', 'x', {
    details: {
      misfit: 'patch',
      causes: [{ field: 'spec.template.spec.affinity', message: 'expected list' }],
    },
  });
  t.is(invalidSpecFromRefusal('StatefulSet', patch)?.code, 'InvalidSpec');
});
