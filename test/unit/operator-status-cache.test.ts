// The reconciler plans from the status it last wrote until the informer's cache holds that write
// (or a later one): an earlier write of its own arriving late must not count as caught up.
import test from 'ava';
import { cacheCaughtUp } from '../../src/operator/reconciler.ts';

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
