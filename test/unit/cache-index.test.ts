// The informer's index (src/operator/runtime/cache-index.ts) against a model: after any sequence of
// adds, updates (a label changed or removed), deletes and relists, each group holds exactly the
// cached objects whose key is that group's, as a scan of the whole cache would find them.
import test from 'ava';
import fc from 'fast-check';
import { CacheIndex } from '../../src/operator/runtime/cache-index.ts';

interface Obj {
  metadata: { namespace: string; name: string; labels?: Record<string, string> };
}
const keyOf = (o: Obj) =>
  o.metadata.labels?.owner === undefined ? undefined : `${o.metadata.namespace}/${o.metadata.labels.owner}`;
const obj = (namespace: string, name: string, owner: string | undefined): Obj => ({
  metadata: { namespace, name, ...(owner ? { labels: { owner } } : {}) },
});

const namespaces = fc.constantFrom('n1', 'n2');
const names = fc.constantFrom('p1', 'p2', 'p3', 'p4');
const owners = fc.constantFrom('a', 'b', undefined);
const operation = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), namespace: namespaces, name: names, owner: owners }),
  fc.record({ kind: fc.constant('delete' as const), namespace: namespaces, name: names }),
  fc.record({
    kind: fc.constant('relist' as const),
    objects: fc.array(fc.record({ namespace: namespaces, name: names, owner: owners }), { maxLength: 6 }),
  }),
);

test('property: every group holds exactly what a scan of the cache finds', (t) => {
  fc.assert(
    fc.property(fc.array(operation, { maxLength: 40 }), (operations) => {
      const index = new CacheIndex<Obj>(keyOf);
      let cache = new Map<string, Obj>();
      for (const op of operations) {
        if (op.kind === 'set') {
          const id = `${op.namespace}/${op.name}`;
          const object = obj(op.namespace, op.name, op.owner);
          index.set(object, cache.get(id));
          cache.set(id, object);
        } else if (op.kind === 'delete') {
          const id = `${op.namespace}/${op.name}`;
          const old = cache.get(id);
          if (old) index.delete(old);
          cache.delete(id);
        } else {
          cache = new Map(
            op.objects.map((o) => [`${o.namespace}/${o.name}`, obj(o.namespace, o.name, o.owner)]),
          );
          index.replace(cache.values());
        }
        for (const key of ['n1/a', 'n1/b', 'n2/a', 'n2/b']) {
          const scanned = [...cache.values()].filter((o) => keyOf(o) === key).map((o) => o.metadata.name);
          const indexed = index.get(key).map((o) => o.metadata.name);
          if (JSON.stringify(indexed.sort()) !== JSON.stringify(scanned.sort())) {
            throw new Error(`${key}: indexed ${indexed}, the cache has ${scanned}`);
          }
        }
      }
    }),
    { numRuns: Number(process.env.PROPERTY_RUNS ?? 500) },
  );
  t.pass();
});

test('an object replaced under the same name is in its group once, as the newest version', (t) => {
  const index = new CacheIndex<Obj>(keyOf);
  const first = obj('n', 'p', 'a');
  const second = { ...obj('n', 'p', 'a'), version: 2 };
  index.set(first, undefined);
  index.set(second, first);
  t.deepEqual(index.get('n/a'), [second]);
  t.deepEqual(index.get('n/b'), []);
});
