// `kubectl vaultpam recover` writes spec.recovery.requestId only while the Connector is as it judged
// it (its resourceVersion): a status the operator wrote meanwhile (a crash-looping agent's restarts
// move it) made it give up at once with "changed while this ran" (a CI run caught it). It now reads
// and judges again, a few times, before it leaves the Connector to a person.
import test from 'ava';
import type { Connector } from '../../src/operator/api/types.ts';
import { judgeAndWrite } from '../../src/plugin/commands/recover.ts';

const conflict = () => Object.assign(new Error('Conflict'), { code: 409 });
const version = (resourceVersion: string) => ({ metadata: { name: 'lost', resourceVersion } }) as Connector;

function steps(versions: string[], writes: Array<'conflict' | 'ok' | Error>) {
  const judged: string[] = [];
  const written: string[] = [];
  return {
    judged,
    written,
    run: () =>
      judgeAndWrite({
        read: async () => version(versions.shift() ?? 'last'),
        judge: (c) => {
          judged.push(c.metadata.resourceVersion ?? '');
        },
        write: async (c) => {
          written.push(c.metadata.resourceVersion ?? '');
          const answer = writes.shift();
          if (answer === 'conflict') throw conflict();
          if (answer instanceof Error) throw answer;
          return c;
        },
        failed: (error) => new Error(`failed: ${(error as Error).message}`),
        keptChanging: (tries) => new Error(`kept changing, ${tries} times`),
      }),
  };
}

test('a Connector that changed since it was read is read, judged and written again', async (t) => {
  const s = steps(['1', '2'], ['conflict', 'ok']);
  const written = await s.run();
  t.is(written.metadata.resourceVersion, '2');
  t.deepEqual(s.judged, ['1', '2'], 'judged afresh each time');
});

test('one that keeps changing is left to a person; another failure is not retried', async (t) => {
  const changing = steps(['1', '2', '3', '4'], ['conflict', 'conflict', 'conflict', 'ok']);
  await t.throwsAsync(changing.run(), { message: 'kept changing, 3 times' });
  t.deepEqual(changing.written, ['1', '2', '3']);
  const forbidden = steps(['1'], [Object.assign(new Error('Forbidden'), { code: 403 })]);
  await t.throwsAsync(forbidden.run(), { message: 'failed: Forbidden' });
  t.deepEqual(forbidden.written, ['1']);
});
