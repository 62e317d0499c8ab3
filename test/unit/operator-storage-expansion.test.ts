// Growing storage: spec.storage.size grows, the StatefulSet's claim template stays as it was created
// (Kubernetes refuses to change it), and the claim itself is grown, only when its StorageClass allows
// it. Plan-level table tests with a fixed clock; the real API server's side is in
// test/cluster/operator-storage.test.ts.
import test from 'ava';
import type { Connector, ConnectorStatus } from '../../src/operator/api/types.ts';
import { defaultedSpec } from '../../src/operator/api/types.ts';
import { desiredStatefulSet } from '../../src/operator/reconcile/desired-objects.ts';
import { driftOf } from '../../src/operator/reconcile/drift.ts';
import type { ClaimFacts, Observed, StorageClassFacts } from '../../src/operator/reconcile/observed.ts';
import { sizeToGrowTo } from '../../src/operator/reconcile/storage-expansion.ts';
import { CLAIM_UID, claim, connector, observed } from '../helpers/observed-builder.ts';
import { planView } from '../helpers/plan-view.ts';

const NOW = new Date('2026-01-01T00:00:10Z');
const condition = (status: ConnectorStatus, type: string) => status.conditions?.find((c) => c.type === type);

/** The StatefulSet as the API server holds it: created at `size`, its template carrying a status. */
function liveStatefulSet(c: Connector, size: string) {
  const created = { ...c, spec: { ...c.spec, storage: { size, storageClassName: 'fast' } } };
  const sts = desiredStatefulSet(created, defaultedSpec(created), {
    image: 'vaultpam-connector:test',
    replicas: 1,
    configHash: 'h',
    restartedFor: undefined,
  });
  for (const template of sts.spec?.volumeClaimTemplates ?? []) {
    template.status = { phase: 'Pending' };
    if (template.spec) template.spec.volumeMode = 'Filesystem';
  }
  return sts;
}

/** A Connector grown to `size` whose StatefulSet was created at 1Gi, with its claim and class as given. */
function grown(
  options: {
    size?: string;
    claim?: Partial<ClaimFacts>;
    storageClass?: StorageClassFacts | undefined;
    status?: ConnectorStatus;
    paused?: boolean;
  } = {},
): Observed {
  const c = connector({
    spec: {
      storage: { size: options.size ?? '2Gi', storageClassName: 'fast' },
      ...(options.paused ? { paused: true } : {}),
    },
    ...(options.status ? { status: options.status } : {}),
  });
  const o = observed({
    connector: c,
    claims: [claim({ requested: '1Gi', capacity: '1Gi', storageClassName: 'fast', ...options.claim })],
  });
  if (o.workload) o.workload.object = liveStatefulSet(c, '1Gi');
  const storageClass =
    'storageClass' in options ? options.storageClass : { name: 'fast', allowVolumeExpansion: true };
  return storageClass ? { ...o, storageClass } : o;
}

test('sizes are compared by value, whatever their suffix', (t) => {
  const grow = (size: string, requested: string) =>
    sizeToGrowTo({ kind: 'OperatorClaim', size }, claim({ requested }));
  t.is(grow('2Gi', '1Gi'), '2Gi');
  t.is(grow('2048Mi', '2Gi'), undefined, 'the API server stores 2048Mi as 2Gi: no growth');
  t.is(grow('1.5Gi', '1536Mi'), undefined);
  t.is(grow('1Gi', '1G'), '1Gi', 'Gi is binary, G decimal');
  t.is(grow('1500M', '1G'), '1500M');
  t.is(grow('lots', '1Gi'), undefined);
  t.is(sizeToGrowTo({ kind: 'ExistingClaim', claimName: 'mine' }, claim({ requested: '1Gi' })), undefined);
});

test('a larger size grows the claim; the StatefulSet keeps the claim template it was created with', (t) => {
  const o = grown();
  const result = planView(o, NOW);
  t.deepEqual(result.expandClaim, { name: 'data-edge-0', uid: CLAIM_UID, size: '2Gi' });
  const template = result.statefulSet?.spec?.volumeClaimTemplates?.[0];
  t.is(template?.spec?.resources?.requests?.storage, '1Gi', 'the template keeps its size');
  t.is(template?.spec?.volumeMode, 'Filesystem', 'kept as the live StatefulSet has it');
  t.is(template?.status, undefined, 'without the status the server adds');
  t.is(
    driftOf(
      { spec: { volumeClaimTemplates: result.statefulSet?.spec?.volumeClaimTemplates } },
      o.workload?.object,
    ),
    undefined,
    'the templates are those of the live StatefulSet: applying them changes nothing there',
  );
  t.is(condition(result.status, 'Reconciling')?.reason, 'ExpandingStorage');
  t.regex(condition(result.status, 'Reconciling')?.message ?? '', /data-edge-0 from 1Gi to 2Gi/);
  t.is(condition(result.status, 'Stalled'), undefined);
  t.true(result.events.some((e) => e.reason === 'StorageExpansionRequested'));
});

test('drift never asks to write a StatefulSet for its claim templates: Kubernetes refuses to change them', (t) => {
  const c = connector({ spec: { storage: { size: '2Gi', storageClassName: 'fast' } } });
  const wanted = desiredStatefulSet(c, defaultedSpec(c), {
    image: 'vaultpam-connector:test',
    replicas: 1,
    configHash: 'h',
    restartedFor: undefined,
  });
  const live = liveStatefulSet(c, '1Gi');
  t.is(driftOf(wanted, live), undefined);
  const changed = { ...wanted, spec: { ...wanted.spec, replicas: 0 } };
  t.is(driftOf(changed, live), '.spec.replicas', 'other fields still count');
});

test('a StorageClass without allowVolumeExpansion: Stalled naming the class and the fix, nothing patched, one Warning', (t) => {
  const result = planView(grown({ storageClass: { name: 'fast', allowVolumeExpansion: false } }), NOW);
  t.is(result.expandClaim, undefined);
  const stalled = condition(result.status, 'Stalled');
  t.is(stalled?.reason, 'StorageExpansionUnsupported');
  t.regex(stalled?.message ?? '', /StorageClass fast does not allow volume expansion/);
  t.regex(stalled?.message ?? '', /set allowVolumeExpansion: true on StorageClass fast/);
  t.regex(stalled?.message ?? '', /stays at 1Gi although spec.storage.size asks for 2Gi/);
  t.is(condition(result.status, 'Ready')?.reason, 'StorageExpansionUnsupported');
  t.is(result.statefulSet?.spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.storage, '1Gi');
  const warnings = result.events.filter((e) => e.reason === 'StorageExpansionUnsupported');
  t.is(warnings.length, 1);
  t.is(warnings[0]?.type, 'Warning');
  const again = planView(
    grown({ storageClass: { name: 'fast', allowVolumeExpansion: false }, status: result.status }),
    NOW,
  );
  t.is(condition(again.status, 'Stalled')?.reason, 'StorageExpansionUnsupported');
  t.false(
    again.events.some((e) => e.reason === 'StorageExpansionUnsupported'),
    'reported once, not every pass',
  );
});

test('a missing StorageClass, or a claim without one, cannot grow either', (t) => {
  const missing = planView(grown({ storageClass: undefined }), NOW);
  t.is(missing.expandClaim, undefined);
  t.regex(condition(missing.status, 'Stalled')?.message ?? '', /StorageClass fast does not exist/);
  const classless = planView(grown({ claim: { storageClassName: undefined }, storageClass: undefined }), NOW);
  t.is(classless.expandClaim, undefined);
  t.regex(condition(classless.status, 'Stalled')?.message ?? '', /has no StorageClass/);
});

test('an expansion under way is reported as it is; one that finished is reported once', (t) => {
  const waiting = planView(grown({ claim: { requested: '2Gi', capacity: '1Gi' } }), NOW);
  t.is(waiting.expandClaim, undefined, 'asked already: no second patch');
  t.is(condition(waiting.status, 'Reconciling')?.reason, 'ExpandingStorage');
  t.regex(
    condition(waiting.status, 'Reconciling')?.message ?? '',
    /asks for 2Gi and has 1Gi: waiting for the storage provider/,
  );
  const resizing = planView(
    grown({ claim: { requested: '2Gi', capacity: '1Gi', resizeConditions: [{ type: 'Resizing' }] } }),
    NOW,
  );
  t.regex(condition(resizing.status, 'Reconciling')?.message ?? '', /being resized from 1Gi to 2Gi/);
  const fileSystem = planView(
    grown({
      claim: { requested: '2Gi', capacity: '1Gi', resizeConditions: [{ type: 'FileSystemResizePending' }] },
    }),
    NOW,
  );
  t.regex(condition(fileSystem.status, 'Reconciling')?.message ?? '', /FileSystemResizePending/);
  const failing = planView(
    grown({
      claim: {
        requested: '2Gi',
        capacity: '1Gi',
        resizeConditions: [{ type: 'ControllerResizeError', message: 'quota exceeded' }],
      },
    }),
    NOW,
  );
  t.regex(condition(failing.status, 'Reconciling')?.message ?? '', /failed \(ControllerResizeError: quota/);

  const done = planView(grown({ claim: { requested: '2Gi', capacity: '2Gi' }, status: waiting.status }), NOW);
  t.is(condition(done.status, 'Reconciling'), undefined);
  t.true(done.events.some((e) => e.reason === 'StorageExpanded' && /grown to 2Gi/.test(e.message)));
  const later = planView(grown({ claim: { requested: '2Gi', capacity: '2Gi' }, status: done.status }), NOW);
  t.false(later.events.some((e) => e.reason === 'StorageExpanded'));
});

test('a claim that is not Bound yet is grown once bound, never patched before', (t) => {
  const result = planView(grown({ claim: { phase: 'Pending', capacity: undefined } }), NOW);
  t.is(result.expandClaim, undefined);
  t.regex(condition(result.status, 'Reconciling')?.message ?? '', /is Pending.*grown once bound/);
});

test('nothing shrinks, an existing claim is never touched, and a paused Connector only observes', (t) => {
  const smaller = planView(grown({ size: '500Mi' }), NOW);
  t.is(smaller.expandClaim, undefined);
  t.is(condition(smaller.status, 'Reconciling'), undefined);
  t.is(condition(smaller.status, 'Stalled'), undefined);

  const existing = observed({
    connector: connector({ spec: { storage: { existingClaim: 'mine' } } }),
    claims: [claim({ name: 'mine', requested: '1Gi', capacity: '1Gi', storageClassName: 'fast' })],
    pods: [],
  });
  const result = planView({ ...existing, storageClass: { name: 'fast', allowVolumeExpansion: true } }, NOW);
  t.is(result.expandClaim, undefined);
  t.false(result.events.some((e) => e.reason.startsWith('StorageExpansion')));

  const paused = planView(grown({ paused: true }), NOW);
  t.is(paused.expandClaim, undefined);
  t.false(paused.events.some((e) => e.reason.startsWith('Storage')));
});
