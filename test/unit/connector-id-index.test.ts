// The index of Connectors by control-plane connector id (src/operator/connector-id-index.ts) against
// a plain model, in any order of adds, id changes and deletes.
import test from 'ava';
import fc from 'fast-check';
import { ConnectorIdIndex } from '../../src/operator/connector-id-index.ts';

test('two Connectors naming one id: deleting either leaves the other found', (t) => {
  const index = new ConnectorIdIndex();
  index.set('team-a/old', 'edge-1');
  index.set('team-a/new', 'edge-1');
  index.delete('team-a/new');
  t.deepEqual([...index.keysOf('edge-1')], ['team-a/old']);
  index.set('team-a/new', 'edge-1');
  index.delete('team-a/old');
  t.deepEqual([...index.keysOf('edge-1')], ['team-a/new']);
});

test('a Connector whose id changes is found under the new id only', (t) => {
  const index = new ConnectorIdIndex();
  index.set('ns/a', 'edge-1');
  index.set('ns/a', 'edge-2');
  t.deepEqual([...index.keysOf('edge-1')], []);
  t.deepEqual([...index.keysOf('edge-2')], ['ns/a']);
  t.deepEqual([...index.keys()], ['ns/a']);
});

test('in any order of sets and deletes, each id finds exactly the Connectors that name it now', (t) => {
  const keys = ['ns/a', 'ns/b', 'ns/c', 'other/a'];
  const ids = ['edge-1', 'edge-2', 'edge-3'];
  const operation = fc.oneof(
    fc.record({
      op: fc.constant('set' as const),
      key: fc.constantFrom(...keys),
      id: fc.constantFrom(...ids),
    }),
    fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom(...keys) }),
  );
  fc.assert(
    fc.property(fc.array(operation, { maxLength: 40 }), (operations) => {
      const index = new ConnectorIdIndex();
      const model = new Map<string, string>();
      for (const o of operations) {
        if (o.op === 'set') {
          index.set(o.key, o.id);
          model.set(o.key, o.id);
        } else {
          index.delete(o.key);
          model.delete(o.key);
        }
      }
      for (const id of ids) {
        const expected = keys.filter((k) => model.get(k) === id).sort();
        if (JSON.stringify([...index.keysOf(id)].sort()) !== JSON.stringify(expected)) return false;
      }
      return JSON.stringify([...index.keys()].sort()) === JSON.stringify([...model.keys()].sort());
    }),
  );
  t.pass();
});
