// Which watch events are the echoes of the operator's own writes (src/operator/runtime/own-versions.ts).
// An event is an echo exactly when one of the operator's writes produced its version, whether the
// watch delivers it before or after that write's answer, and every event is decided once: news or echo.
import test from 'ava';
import fc from 'fast-check';
import { OwnVersions } from '../../src/operator/runtime/own-versions.ts';

/** Judges one event of Connector a/edge, and says how it was decided. */
function judged(versions: OwnVersions, version: string, decisions: Map<string, string[]>): void {
  versions.judge(
    'Connector',
    'a',
    'edge',
    version,
    () => decisions.set(version, [...(decisions.get(version) ?? []), 'news']),
    () => decisions.set(version, [...(decisions.get(version) ?? []), 'echo']),
  );
}

test('an echo is a version our own write produced, answered once; anything else is news', (t) => {
  const versions = new OwnVersions(['Connector']);
  const decisions = new Map<string, string[]>();
  versions.writing('Connector', 'a', 'edge')('263');
  judged(versions, '270', decisions);
  judged(versions, '263', decisions);
  judged(versions, '263', decisions);
  t.deepEqual(decisions.get('270'), ['news'], 'a version no write of ours produced');
  t.deepEqual(decisions.get('263'), ['echo', 'news'], 'the same version again is looked at');
  t.is(versions.size(), 0);
});

test('the echo can come before the write has answered: it waits for the answer', (t) => {
  const versions = new OwnVersions(['Connector']);
  const decisions = new Map<string, string[]>();
  const answered = versions.writing('Connector', 'a', 'edge');
  judged(versions, '5', decisions);
  t.is(decisions.size, 0, 'undecided while the write is in flight');
  answered('5');
  t.deepEqual(decisions.get('5'), ['echo']);
  const failed = versions.writing('Connector', 'a', 'edge');
  judged(versions, '6', decisions);
  failed(undefined);
  t.deepEqual(decisions.get('6'), ['news'], 'the write failed: the event was someone else');
  t.is(versions.size(), 0);
});

test('kinds the operator does not watch and objects gone hold nothing; news held for a gone object is given', (t) => {
  const versions = new OwnVersions(['Connector']);
  versions.writing('Secret', 'a', 'edge-enrollment-token')('5');
  t.is(versions.size(), 0);
  const decisions = new Map<string, string[]>();
  versions.writing('Connector', 'a', 'edge');
  judged(versions, '7', decisions);
  versions.forget('Connector', 'a', 'edge');
  t.deepEqual(decisions.get('7'), ['news']);
  t.is(versions.size(), 0);
});

test('a version seen steps over older ones; versions whose event never comes are bounded per object', (t) => {
  const versions = new OwnVersions(['Connector']);
  const decisions = new Map<string, string[]>();
  for (const v of ['1', '2', '3']) versions.writing('Connector', 'a', 'edge')(v);
  judged(versions, '2', decisions);
  judged(versions, '1', decisions);
  judged(versions, '3', decisions);
  t.deepEqual(Object.fromEntries(decisions), { 1: ['news'], 2: ['echo'], 3: ['echo'] });
  for (let v = 10; v < 30; v++) versions.writing('Connector', 'a', 'edge')(String(v));
  decisions.clear();
  judged(versions, '10', decisions);
  judged(versions, '29', decisions);
  t.deepEqual(Object.fromEntries(decisions), { 10: ['news'], 29: ['echo'] });
});

test('in any order of writes, answers and watch events, an event is an echo exactly when our write produced it', (t) => {
  // Versions 1..n of one object, each written by the operator or by someone else, delivered by the
  // watch in order. Each write of ours starts before its version exists and answers at any point
  // after that (before or after its event); some writes of ours fail and produce no version.
  const history = fc.array(
    fc.record({
      ours: fc.boolean(),
      answerDelay: fc.integer({ min: -1, max: 4 }),
      failedBefore: fc.boolean(),
    }),
    { minLength: 1, maxLength: 12 },
  );
  fc.assert(
    fc.property(history, (versions) => {
      const own = new OwnVersions(['Connector']);
      const decisions = new Map<string, string[]>();
      const actions: Array<{ at: number; run: () => void }> = [];
      versions.forEach((v, i) => {
        const version = String(i + 1);
        if (v.failedBefore) {
          let failed: ((version: string | undefined) => void) | undefined;
          actions.push({ at: 2 * i - 0.2, run: () => (failed = own.writing('Connector', 'a', 'edge')) });
          actions.push({ at: 2 * i + 2.2, run: () => failed?.(undefined) });
        }
        if (v.ours) {
          let answered: ((version: string | undefined) => void) | undefined;
          actions.push({ at: 2 * i, run: () => (answered = own.writing('Connector', 'a', 'edge')) });
          // -1: between the write's start and its event; k >= 0: after the event and k more.
          const answerAt = v.answerDelay === -1 ? 2 * i + 0.5 : 2 * i + 1 + 2 * v.answerDelay + 0.5;
          actions.push({ at: answerAt, run: () => answered?.(version) });
        }
        actions.push({ at: 2 * i + 1, run: () => judged(own, version, decisions) });
      });
      for (const action of actions.sort((a, b) => a.at - b.at)) action.run();
      versions.forEach((v, i) => {
        t.deepEqual(decisions.get(String(i + 1)), [v.ours ? 'echo' : 'news'], `version ${i + 1}`);
      });
      t.is(own.size(), 0, 'nothing left held or pending');
    }),
  );
});
