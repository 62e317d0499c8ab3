// The record repository's stage-commit-swap rule on a real Store: a staged copy is invisible until its
// commit succeeds, a live record object never changes, a rolled-back commit runs none of its
// after-commit steps and wakes no long-poll, and one operation cannot open a commit inside another.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { ChangeFeed } from '../../src/controlplane/change-feed.ts';
import { cpError } from '../../src/controlplane/errors.ts';
import { ConnectorRepository } from '../../src/controlplane/records.ts';
import type { ConnectorRecord } from '../../src/controlplane/state.ts';
import { Store } from '../../src/controlplane/store.ts';
import { isCodedError } from '../../src/lib/errors.ts';
import { silentLogger } from '../../src/lib/logger.ts';

const T0 = Date.parse('2026-03-01T00:00:00Z');

function open(t: ExecutionContext): { store: Store; feed: ChangeFeed; records: ConnectorRepository } {
  const dataDir = mkdtempSync(join(tmpdir(), 'cp-records-'));
  const store = new Store(dataDir);
  t.teardown(() => {
    store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const feed = new ChangeFeed(store);
  return { store, feed, records: new ConnectorRepository(store, feed, silentLogger()) };
}

function newRecord(connectorId: string): ConnectorRecord {
  return {
    connectorId,
    org: 'acme',
    endpointId: 'ep-1',
    allowedNetworks: ['10.0.0.0/8'],
    state: 'pending',
    bootstrapRetired: false,
    lastHeartbeatAt: null,
    stateChangedAt: T0,
    enrolledAt: null,
    paths: [],
    certificate: null,
    revokedCertificates: [],
    liveToken: null,
    recovery: null,
    lastEnrollmentFailure: null,
    ownerUid: null,
    handoverNamespace: null,
    revision: 0,
    createdAt: T0,
  };
}

test('a staged copy is invisible until its commit succeeds, and the live object it replaces never changes', (t) => {
  const { store, records } = open(t);
  records.commit((tx) => tx.create(newRecord('ns.a'), T0));
  const before = records.require('ns.a');
  const snapshot = structuredClone(before);

  records.commit((tx) => {
    tx.update('ns.a', T0 + 1, (draft) => tx.moveTo(draft, 'enrolling', T0 + 1, 'enrolled'));
    t.is(tx.current('ns.a')?.state, 'enrolling', 'the commit itself sees its staged copy');
    t.is(records.require('ns.a').state, 'pending', 'until it commits, the live record is as it was');
  });

  const after = records.require('ns.a');
  t.is(after.state, 'enrolling');
  t.is(after.revision, 2);
  t.not(after, before, 'the staged copy was swapped in');
  t.deepEqual(before, snapshot, 'the object that was live is unchanged');
  t.deepEqual(store.loadConnectors(), [after]);
});

test('a commit that throws swaps nothing in, runs no after-commit step, wakes no long-poll, and says so', async (t) => {
  const { store, feed, records } = open(t);
  records.commit((tx) => tx.create(newRecord('ns.a'), T0));
  const cursor = store.latestCursor();
  const waiting = feed.waitForChanges(cursor, 60_000);
  const before = records.require('ns.a');
  let ranAfterCommit = false;

  const error = t.throws(() =>
    records.commit((tx) => {
      tx.update('ns.a', T0 + 1, (draft) => {
        draft.org = 'other';
        tx.afterCommit(() => {
          ranAfterCommit = true;
        });
      });
      throw new Error('disk full');
    }),
  );
  t.regex(String(error?.message), /^write not committed \(rolled back, nothing changed\): disk full$/);
  t.is(records.require('ns.a'), before, 'the live record is the same object');
  t.is(records.require('ns.a').org, 'acme');
  t.deepEqual(store.loadConnectors(), [before], 'disk as memory');
  t.false(ranAfterCommit);
  // Let any wake-up the failed commit might have queued run before the next, successful one.
  await new Promise((resolve) => setImmediate(resolve));

  records.commit((tx) => tx.update('ns.a', T0 + 2, (draft) => tx.moveTo(draft, 'enrolling', T0 + 2, 'x')));
  const answer = await waiting;
  t.deepEqual(
    answer.changes.map((change) => change.state),
    ['enrolling'],
    'the long-poll woke for the committed change only',
  );
});

test('a refusal the operation throws on purpose passes through the rollback unchanged', (t) => {
  const { records } = open(t);
  records.commit((tx) => tx.create(newRecord('ns.a'), T0));
  const refusal = cpError('ENROLLMENT_TOKEN_INVALID', 'the enrollment token is not valid');
  const error = t.throws(() =>
    records.commit((tx) => {
      tx.update('ns.a', T0, (draft) => {
        draft.enrolledAt = T0;
      });
      throw refusal;
    }),
  );
  t.is(error, refusal);
  t.true(isCodedError(error, 'ENROLLMENT_TOKEN_INVALID'));
  t.is(records.require('ns.a').enrolledAt, null);
});

test('one operation cannot open a commit inside another (its inner swap would precede the outer commit)', (t) => {
  const { records } = open(t);
  const error = t.throws(() =>
    records.commit(() => records.commit((tx) => tx.create(newRecord('ns.a'), T0))),
  );
  t.regex(String(error?.message), /a commit is under way/);
  t.false(records.has('ns.a'));
});

test('a routine heartbeat replaces the record in memory only, until the batched flush writes it', (t) => {
  const { store, records } = open(t);
  records.commit((tx) => tx.create(newRecord('ns.a'), T0));
  const before = records.require('ns.a');
  const paths = [{ name: 'tunnel', healthy: true, detail: 'ok' }];

  records.touch('ns.a', T0 + 5000, paths);
  t.is(before.lastHeartbeatAt, null, 'the old object is unchanged');
  t.is(records.require('ns.a').lastHeartbeatAt, T0 + 5000);
  t.is(store.loadConnectors()[0]?.lastHeartbeatAt, null, 'not yet on disk: the documented exception');
  t.is(records.pendingFlush(), 1);

  t.is(records.flushBatch(1000), 1);
  t.deepEqual(store.loadConnectors(), [records.require('ns.a')]);
  t.is(records.pendingFlush(), 0);
});
