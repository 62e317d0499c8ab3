// `kubectl vaultpam recover` writes spec.recovery.requestId only while the Connector is as it judged
// it (its resourceVersion): a status the operator wrote meanwhile (a crash-looping agent's restarts
// move it) made it give up at once with "changed while this ran" (a CI run caught it). It now reads
// and judges again, a few times, before it leaves the Connector to a person. The dry run does the
// same (its write holds on the Connector as read, too).
import test from 'ava';
import type { Connector } from '../../src/operator/api/types.ts';
import { judgeAndWrite, recoverCommand } from '../../src/plugin/commands/recover.ts';
import type { CommandContext } from '../../src/plugin/context.ts';
import type { KubeApi } from '../../src/plugin/kube-api.ts';
import { parseCommandLine } from '../../src/plugin/options.ts';

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

test('recover --dry-run reads and judges again when the operator wrote the status meanwhile (409)', async (t) => {
  // A CI run caught it: the dry run's write held on the Connector as first read, and a status
  // written between the read and the write ended the command with "HTTP 409 ... has been modified".
  const parsed = parseCommandLine(['recover', 'lost', '-n', 'ns', '--dry-run', '--request-id', 'r-1'], {});
  if (parsed.help) throw new Error('asked for help');
  let stored = 1;
  const asked: Array<{ resourceVersion?: string; dryRun: boolean }> = [];
  const lost = (): Connector =>
    ({
      metadata: { name: 'lost', namespace: 'ns', uid: 'u-1', resourceVersion: String(stored) },
      spec: {},
      status: { phase: 'NeedsRecovery', controlPlaneState: 'needs_recovery' },
    }) as unknown as Connector;
  const api = {
    getConnector: async () => lost(),
    setRecoveryRequest: async (
      _ns: string,
      _name: string,
      _id: string,
      resourceVersion: string | undefined,
      dryRun: boolean,
    ) => {
      asked.push({ resourceVersion, dryRun });
      // The operator writes the status between the first read and the first write.
      if (asked.length === 1) stored += 1;
      if (resourceVersion !== String(stored)) throw conflict();
      return lost();
    },
  } as unknown as KubeApi;
  const out: string[] = [];
  const code = await recoverCommand({
    io: {
      stdout: { write: (s: string) => out.push(s) > 0 },
      stderr: { write: (s: string) => out.push(s) > 0 },
      env: {},
      program: 'kubectl vaultpam',
      now: () => new Date('2026-12-06T00:00:00Z'),
    },
    options: parsed.options,
    api,
    namespace: 'ns',
  } as CommandContext);
  t.deepEqual(asked, [
    { resourceVersion: '1', dryRun: true },
    { resourceVersion: '2', dryRun: true },
  ]);
  t.regex(out.join(''), /the API server accepts the change \(dry run; nothing stored\)/);
  t.regex(out.join(''), /Nothing was changed/);
  t.regex(out.join(''), /the control plane: not asked/);
  t.is(code, 0);
});
