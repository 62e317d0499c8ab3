// The informers' string pool (src/operator/runtime/string-pool.ts): interning never changes a value,
// the pool stays bounded whatever it is fed, a string that keeps recurring stays pooled, and one that
// does not leaves it within two generations. Whether it saves memory is measured, not asserted:
// docs/performance.md, "Seventh increment".
import test from 'ava';
import fc from 'fast-check';
import { StringPool } from '../../src/operator/runtime/string-pool.ts';

const runs = { numRuns: Number(process.env.PROPERTY_RUNS ?? 200) };

test('interning any JSON value, even with generations rolling over inside it, leaves it deep-equal', (t) => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.integer({ min: 1, max: 8 }), (value, generationSize) => {
      const pool = new StringPool({ generationSize });
      const copy = structuredClone(value);
      return JSON.stringify(pool.internAll(copy)) === JSON.stringify(value);
    }),
    runs,
  );
  t.pass();
});

test('the pool holds at most two generations, whatever strings it is fed', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.string({ maxLength: 6 }), { maxLength: 300 }),
      fc.integer({ min: 1, max: 20 }),
      (values, generationSize) => {
        const pool = new StringPool({ generationSize });
        for (const value of values) {
          t.is(pool.intern(value), value);
          if (pool.size > 2 * generationSize) return false;
        }
        return true;
      },
    ),
    runs,
  );
  t.pass();
});

test('a string asked for again within every generation stays pooled; one never asked for again leaves within two', (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 50 }),
      fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: 1, maxLength: 400 }),
      (generationSize, others) => {
        const pool = new StringPool({ generationSize });
        pool.intern('recurring');
        pool.intern('once');
        let sinceRecurring = 0;
        for (const [i, other] of others.entries()) {
          pool.intern(`other-${i}-${other}`);
          if (!pool.has('recurring')) return false;
          sinceRecurring += 1;
          // Asked for again before a generation's worth of other strings has gone by.
          if (sinceRecurring >= generationSize - 1) {
            pool.intern('recurring');
            sinceRecurring = 0;
          }
        }
        for (let i = 0; i < 2 * generationSize; i++) pool.intern(`filler-${i}`);
        return !pool.has('once');
      },
    ),
    runs,
  );
  t.pass();
});

test('strings longer than the limit are returned as they are and never pooled', (t) => {
  const pool = new StringPool({ maxLength: 10 });
  const long = 'x'.repeat(11);
  t.is(pool.intern(long), long);
  t.false(pool.has(long));
  t.is(pool.intern('x'.repeat(10)), 'x'.repeat(10));
  t.true(pool.has('x'.repeat(10)));
});

test('a generation size that is not a whole number >= 1 is refused, naming the option', (t) => {
  for (const generationSize of [0, -1, 1.5, Number.NaN])
    t.throws(() => new StringPool({ generationSize }), { message: /generationSize/ });
});
