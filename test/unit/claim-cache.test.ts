// The claim cache keeps only the fields a pass reads (src/operator/reconcile/claim-cache.ts). Held
// here: for claims in any shape the API server reports them (pending, bound, being resized, being
// deleted, with the binder's annotations and any conditions), the facts a pass takes from the cached
// claim are those it takes from the full one; and binding's first write (volumeName and the binder's
// annotations) leaves the cached claim as it was, so it wakes no Connector.
import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import test from 'ava';
import fc from 'fast-check';
import { claimAsCached } from '../../src/operator/reconcile/claim-cache.ts';
import { claimFacts } from '../../src/operator/reconcile/observe.ts';
import { isUnchangedInCache } from '../../src/operator/runtime/owned-events.ts';

const condition = fc.record({
  type: fc.constantFrom(
    'Resizing',
    'FileSystemResizePending',
    'ControllerResizeError',
    'NodeResizeError',
    'ModifyingVolume',
  ),
  status: fc.constantFrom('True', 'False', 'Unknown'),
  message: fc.option(fc.string(), { nil: undefined }),
});

const claim: fc.Arbitrary<V1PersistentVolumeClaim> = fc.record(
  {
    apiVersion: fc.constant('v1'),
    kind: fc.constant('PersistentVolumeClaim'),
    metadata: fc.record(
      {
        name: fc.constantFrom('data-edge-connector-0', 'identity'),
        namespace: fc.constant('prod'),
        uid: fc.uuid(),
        resourceVersion: fc.nat().map(String),
        labels: fc.constant({ 'app.kubernetes.io/instance': 'edge' }),
        annotations: fc.dictionary(
          fc.constantFrom('pv.kubernetes.io/bind-completed', 'volume.kubernetes.io/selected-node', 'x'),
          fc.string(),
        ),
        deletionTimestamp: fc.date({
          min: new Date('2026-01-01'),
          max: new Date('2027-01-01'),
          noInvalidDate: true,
        }),
        finalizers: fc.constant(['kubernetes.io/pvc-protection']),
      },
      { requiredKeys: ['name', 'namespace', 'uid'] },
    ),
    spec: fc.record(
      {
        accessModes: fc.constant(['ReadWriteOnce']),
        resources: fc.record({ requests: fc.record({ storage: fc.constantFrom('1Gi', '2Gi', '500Mi') }) }),
        storageClassName: fc.constantFrom('standard', 'fast'),
        volumeName: fc.constantFrom('pv-1', 'pv-2'),
        volumeMode: fc.constant('Filesystem'),
      },
      { requiredKeys: [] },
    ),
    status: fc.record(
      {
        phase: fc.constantFrom('Pending', 'Bound', 'Lost'),
        accessModes: fc.constant(['ReadWriteOnce']),
        capacity: fc.record({ storage: fc.constantFrom('1Gi', '2Gi') }),
        conditions: fc.array(condition, { maxLength: 4 }),
      },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: ['metadata'] },
) as fc.Arbitrary<V1PersistentVolumeClaim>;

test('the facts a pass takes from a cached claim are those of the full claim', (t) => {
  fc.assert(
    fc.property(claim, (full) => {
      t.deepEqual(claimFacts(claimAsCached(full)), claimFacts(full));
    }),
  );
});

test("binding's first write (volumeName, the binder's annotations) leaves the cached claim unchanged; its phase does not", (t) => {
  const pending: V1PersistentVolumeClaim = {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: 'data-edge-connector-0',
      namespace: 'prod',
      uid: 'u',
      resourceVersion: '10',
      labels: { 'app.kubernetes.io/instance': 'edge' },
    },
    spec: { resources: { requests: { storage: '1Gi' } }, storageClassName: 'standard' },
    status: { phase: 'Pending' },
  };
  const volumeChosen: V1PersistentVolumeClaim = {
    ...pending,
    metadata: {
      ...pending.metadata,
      resourceVersion: '11',
      annotations: {
        'pv.kubernetes.io/bind-completed': 'yes',
        'pv.kubernetes.io/bound-by-controller': 'yes',
      },
    },
    spec: { ...pending.spec, volumeName: 'pv-1' },
  };
  const bound: V1PersistentVolumeClaim = {
    ...volumeChosen,
    metadata: { ...volumeChosen.metadata, resourceVersion: '12' },
    status: { phase: 'Bound', capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'] },
  };
  t.true(isUnchangedInCache(claimAsCached(volumeChosen), claimAsCached(pending)));
  t.false(isUnchangedInCache(claimAsCached(bound), claimAsCached(volumeChosen)));
  t.false(isUnchangedInCache(volumeChosen, pending), 'uncached, the same write is a change');
  t.false(
    isUnchangedInCache(claimAsCached(pending), claimAsCached(pending)),
    'the same version again (a resync) is looked at',
  );
});
