// The reconciler plans from the status it last wrote until the informer's cache holds that write
// (or a later one): an earlier write of its own arriving late must not count as caught up. And the
// echo of that write (the cache moving from exactly the version planned from to exactly the version
// written, nothing else changed) queues no pass of its own.
import test from 'ava';
import type { Connector } from '../../src/operator/api/types.ts';
import { cacheCaughtUp, isEchoOf, sameButStatus } from '../../src/operator/reconciler.ts';

test('an earlier write of ours delivered late is not caught up; our write or a later one is', (t) => {
  // Planned from 256, wrote 263; meanwhile the cache receives 260 (the previous pass's write).
  const mine = { basedOn: '256', writtenAs: '263' };
  t.false(cacheCaughtUp('256', mine), 'the version we planned from');
  t.false(cacheCaughtUp('260', mine), 'an earlier write of ours, older than the one we made');
  t.true(cacheCaughtUp('263', mine), 'our own write');
  t.true(cacheCaughtUp('270', mine), 'anything after it');
  t.true(cacheCaughtUp('1000', { basedOn: '999', writtenAs: '1000' }));
  t.false(cacheCaughtUp('999', { basedOn: '998', writtenAs: '1000' }), 'compared as numbers, not as strings');
  t.true(cacheCaughtUp('10', { basedOn: '8', writtenAs: '9' }), '10 > 9 although "10" < "9" as text');
});

test('opaque versions: only our own version, or anything but the one we planned from', (t) => {
  const mine = { basedOn: 'a1', writtenAs: 'b2' };
  t.false(cacheCaughtUp('a1', mine));
  t.true(cacheCaughtUp('b2', mine));
  t.true(cacheCaughtUp('c3', mine));
});

test('an echo is exactly our write: planned-from version to written version', (t) => {
  const mine = { basedOn: '256', writtenAs: '263' };
  t.true(isEchoOf(mine, '256', '263'));
  t.false(isEchoOf(mine, '260', '263'), 'another version came first: someone wrote in between');
  t.false(isEchoOf(mine, '256', '270'), 'a later version: another write after ours');
  t.false(isEchoOf(mine, '263', '263'), 'a resync delivers the same version twice');
  t.false(isEchoOf({ basedOn: '', writtenAs: '263' }, '', '263'), 'no version planned from');
  t.false(isEchoOf({ basedOn: '5', writtenAs: '5' }, '5', '5'));
});

test('only a status change is an echo: spec, labels, finalizers or deletion are changes to reconcile', (t) => {
  const base: Connector = {
    apiVersion: 'vaultpam.io/v1alpha1',
    kind: 'Connector',
    metadata: {
      name: 'edge',
      namespace: 'a',
      uid: 'u',
      resourceVersion: '1',
      generation: 1,
      finalizers: ['f'],
    },
    spec: { connector: { org: 'acme', endpointId: 'ep-1' } },
    status: { phase: 'Pending' },
  };
  const statusOnly = {
    ...base,
    metadata: { ...base.metadata, resourceVersion: '2' },
    status: { phase: 'Online' },
  };
  t.true(sameButStatus(base, statusOnly as Connector));
  const changes: Array<[string, Partial<Connector['metadata']>, Partial<Connector['spec']>]> = [
    ['a spec change', { generation: 2 }, { connector: { org: 'acme', endpointId: 'ep-2' } }],
    ['a label', { labels: { team: 'x' } }, {}],
    ['an annotation', { annotations: { 'vaultpam.io/x': 'y' } }, {}],
    ['a finalizer removed', { finalizers: [] }, {}],
    ['deletion', { deletionTimestamp: new Date('2026-01-01T00:00:00Z') }, {}],
  ];
  for (const [what, metadata, spec] of changes) {
    const changed = {
      ...statusOnly,
      metadata: { ...statusOnly.metadata, ...metadata },
      spec: { ...base.spec, ...spec },
    } as Connector;
    t.false(sameButStatus(base, changed), what);
  }
});
