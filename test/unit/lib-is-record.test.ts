// isRecord: the one check that a value read from elsewhere is a JSON object before its fields are read.
import test from 'ava';
import { isRecord } from '../../src/lib/is-record.ts';

test('a JSON object is a record; null, arrays, strings, numbers and undefined are not', (t) => {
  t.true(isRecord({}));
  t.true(isRecord({ a: 1 }));
  t.true(isRecord(Object.create(null)));
  for (const value of [null, undefined, [], [1], 'x', 1, true]) t.false(isRecord(value), String(value));
});
