// The reconciler plans from the status it last wrote until the informer's cache holds that write
// (or a later one): an earlier write of its own arriving late must not count as caught up. And the
// echo of its own write (a version one of its writes produced, test/unit/own-versions.test.ts, with
// nothing changed but what its writes set) queues no pass of its own.
import test from 'ava';
import { FINALIZER } from '../../src/operator/api/constants.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import { cacheCaughtUp, onlyOwnFieldsChanged } from '../../src/operator/reconciler.ts';

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

test('only what our writes set may change in an echo: status and our finalizer added; spec, labels, other finalizers or deletion are changes to reconcile', (t) => {
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
  t.true(onlyOwnFieldsChanged(base, statusOnly as Connector));
  const withOurs = { ...statusOnly, metadata: { ...statusOnly.metadata, finalizers: ['f', FINALIZER] } };
  t.true(onlyOwnFieldsChanged(base, withOurs as Connector), 'our finalizer added');
  t.false(onlyOwnFieldsChanged(withOurs as Connector, base), 'our finalizer removed: the end of a deletion');
  const changes: Array<[string, Partial<Connector['metadata']>, Partial<Connector['spec']>]> = [
    ['a spec change', { generation: 2 }, { connector: { org: 'acme', endpointId: 'ep-2' } }],
    ['a label', { labels: { team: 'x' } }, {}],
    ['an annotation', { annotations: { 'vaultpam.io/x': 'y' } }, {}],
    ['a finalizer removed', { finalizers: [] }, {}],
    ['another finalizer added', { finalizers: ['f', 'theirs'] }, {}],
    ['deletion', { deletionTimestamp: new Date('2026-01-01T00:00:00Z') }, {}],
  ];
  for (const [what, metadata, spec] of changes) {
    const changed = {
      ...statusOnly,
      metadata: { ...statusOnly.metadata, ...metadata },
      spec: { ...base.spec, ...spec },
    } as Connector;
    t.false(onlyOwnFieldsChanged(base, changed), what);
  }
});
