import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import test from 'ava';
import {
  ADMIN_CREDENTIAL_HASH_FILE,
  INITIAL_ADMIN_CREDENTIAL_FILE,
  usableAdminCredential,
} from '../../src/controlplane/server.ts';
import { CONFIG, enrolledAgent, makeAgent, raw, startHarness } from './helpers.ts';

test('a restart on the same data dir keeps connectors, tokens, CA, audit, credential and cursor', async (t) => {
  const h = await startHarness(t);
  const agent = await enrolledAgent(h, 'ns.keep');
  await agent.heartbeat([{ name: 'tunnel', healthy: true, detail: 'first' }]);
  await agent.heartbeat([{ name: 'tunnel', healthy: true, detail: 'batched' }]);
  await h.admin.ensureConnector('ns.waiting', CONFIG);
  const pendingToken = await h.admin.mintToken('ns.waiting', { idempotencyKey: 'w1', ttlSeconds: 3600 });
  const before = {
    caPem: h.cp.caPem,
    credential: h.cp.adminCredential,
    list: await h.admin.listConnectors(),
    audit: await h.admin.audit({ limit: 1000 }),
  };
  const credentialPath = h.cp.adminCredentialPath as string;
  t.is(statSync(credentialPath).mode & 0o777, 0o600);
  t.is(statSync(`${h.dataDir}/ca-key.pem`).mode & 0o777, 0o600);

  h.clock.advance(1000);
  await h.restart();

  t.is(h.cp.caPem, before.caPem, 'same CA');
  t.is(h.cp.adminCredential, before.credential, 'same generated admin credential');
  const after = await h.admin.listConnectors();
  t.is(after.cursor, before.list.cursor, 'same cursor');
  t.deepEqual(
    after.connectors,
    before.list.connectors,
    'same connectors, including the batched heartbeat time',
  );
  t.is(after.connectors.find((c) => c.connectorId === 'ns.keep')?.paths[0]?.detail, 'batched');
  t.deepEqual(await h.admin.audit({ limit: 1000 }), before.audit, 'same audit log');

  // The old certificate still works after the restart, the live token still pairs, and the
  // idempotent mint still answers the same token (its key survived).
  t.is((await agent.heartbeat()).json.state, 'online');
  const retried = await h.admin.mintToken('ns.waiting', { idempotencyKey: 'w1' });
  t.is(retried.token, pendingToken.token);
  t.false(retried.created);
  const waiting = await makeAgent(h, 'ns.waiting');
  t.is((await waiting.enroll(pendingToken.token)).status, 201);
  const reuse = await (await makeAgent(h, 'ns.waiting')).enroll(pendingToken.token);
  t.is(reuse.json.error.code, 'ENROLLMENT_TOKEN_INVALID');

  // The change feed continues from the old cursor without a gap.
  const { changes } = await h.admin.changes(before.list.cursor);
  t.true(changes.length > 0);
  t.is(changes[0]?.cursor, before.list.cursor + 1);
});

test('a restart gives connectors a fresh offline grace period', async (t) => {
  const h = await startHarness(t);
  const agent = await enrolledAgent(h, 'ns.grace');
  await agent.heartbeat();
  h.clock.advance(25_000);
  await h.restart();
  h.clock.advance(25_000);
  t.is(h.cp.sweep(), 0, '50 s since the beat, but only 25 s since the restart');
  h.clock.advance(5_000);
  t.is(h.cp.sweep(), 1);
});

test('the change stream resumes from a cursor and misses nothing', async (t) => {
  const h = await startHarness(t);
  const start = (await h.admin.listConnectors()).cursor;
  await h.admin.ensureConnector('ns.c1', CONFIG);
  await h.admin.ensureConnector('ns.c2', CONFIG);
  const page1 = await h.admin.changes(start);
  t.deepEqual(
    page1.changes.map((c) => [c.connectorId, c.state]),
    [
      ['ns.c1', 'pending'],
      ['ns.c2', 'pending'],
    ],
  );
  t.is(page1.changes[0]?.connector?.org, 'acme');
  // Changes made while "disconnected" are all there on reconnect.
  await h.admin.ensureConnector('ns.c1', { ...CONFIG, endpointId: 'ep-2' });
  await h.admin.deleteConnector('ns.c2');
  const page2 = await h.admin.changes(page1.cursor);
  t.deepEqual(
    page2.changes.map((c) => [c.connectorId, c.state, c.connector?.endpointId ?? null]),
    [
      ['ns.c1', 'pending', 'ep-2'],
      ['ns.c2', 'deleted', null],
    ],
  );
  const empty = await h.admin.changes(page2.cursor);
  t.deepEqual(empty, { changes: [], cursor: page2.cursor });
  await t.throwsAsync(h.admin.getConnector('ns.c2'), { message: /does not exist/ });
});

test('a long-poll wakes on a change and times out empty', async (t) => {
  const h = await startHarness(t);
  const cursor = (await h.admin.listConnectors()).cursor;
  const started = Date.now();
  const waiting = h.admin.changes(cursor, 10);
  await new Promise((resolve) => setTimeout(resolve, 200));
  await h.admin.ensureConnector('ns.wake', CONFIG);
  const woke = await waiting;
  t.true(Date.now() - started < 5000, 'answered on the change, not at the timeout');
  t.is(woke.changes[0]?.connectorId, 'ns.wake');

  const quietStart = Date.now();
  const quiet = await h.admin.changes(woke.cursor, 1);
  t.deepEqual(quiet.changes, []);
  t.true(Date.now() - quietStart >= 900);
});

test('a cursor older than what is kept answers 410 CURSOR_EXPIRED', async (t) => {
  const h = await startHarness(t, { changeRetention: 5 });
  for (let i = 0; i < 12; i++) await h.admin.ensureConnector(`ns.r${i}`, CONFIG);
  const error = await t.throwsAsync(h.admin.changes(0));
  t.like(error, { code: 'CURSOR_EXPIRED', httpStatus: 410 });
  const snapshot = await h.admin.listConnectors();
  t.is(snapshot.connectors.length, 12);
  t.deepEqual((await h.admin.changes(snapshot.cursor)).changes, []);
  t.like(await t.throwsAsync(h.admin.changes(snapshot.cursor + 100)), { code: 'CURSOR_EXPIRED' });
});

test('the audit log is queryable by connector and time', async (t) => {
  const h = await startHarness(t);
  await h.admin.ensureConnector('ns.a1', CONFIG);
  const middle = h.clock.advance(60_000);
  await h.admin.ensureConnector('ns.a2', CONFIG);
  await h.admin.mintToken('ns.a1', { idempotencyKey: 'k' });
  t.deepEqual(
    (await h.admin.audit({ connectorId: 'ns.a1' })).map((e) => e.type),
    ['connector.created', 'token.minted'],
  );
  t.deepEqual(
    (await h.admin.audit({ since: middle })).map((e) => [e.type, e.connectorId]),
    [
      ['connector.created', 'ns.a2'],
      ['token.minted', 'ns.a1'],
    ],
  );
  t.deepEqual(
    (await h.admin.audit({ until: new Date(middle.getTime() - 1) })).map((e) => e.connectorId),
    ['ns.a1'],
  );
  t.is((await h.admin.audit({ limit: 1 })).length, 1);
  const seqs = (await h.admin.audit()).map((e) => e.seq);
  t.deepEqual(
    seqs,
    [...seqs].sort((a, b) => a - b),
  );
});

/** Every file under dir (SQLite database, WAL, keys, ...) as raw bytes, with its path. */
function filesUnder(dir: string): Array<[string, Buffer]> {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => {
      const path = join(entry.parentPath, entry.name);
      return [path, readFileSync(path)] as [string, Buffer];
    });
}

test('only a hash of the generated admin credential is kept; it still works once the hand-over file is gone', async (t) => {
  const h = await startHarness(t);
  const credential = usableAdminCredential(h.cp);
  const handOver = join(h.dataDir, INITIAL_ADMIN_CREDENTIAL_FILE);
  t.is(h.cp.adminCredentialPath, handOver);
  t.is(statSync(handOver).mode & 0o777, 0o600);
  t.regex(readFileSync(join(h.dataDir, ADMIN_CREDENTIAL_HASH_FILE), 'utf8'), /^sha256:[0-9a-f]{64}\n$/);

  // The operator has the credential now; the hand-over file is deleted and the control plane restarts.
  rmSync(handOver);
  await h.restart();
  t.is(h.cp.adminCredential, undefined);
  t.is(h.cp.adminCredentialPath, undefined);
  t.throws(() => usableAdminCredential(h.cp), { message: /holds only hashes .*initial-admin-credential/ });
  t.is((await h.admin.listConnectors()).connectors.length, 0, 'the handed-over credential still works');
  for (const [path, bytes] of filesUnder(h.dataDir)) {
    t.false(bytes.includes(credential), `${path} does not hold the admin credential`);
  }
});

test('configured credential files may hold sha256 hashes only', async (t) => {
  const { createHash } = await import('node:crypto');
  const credential = 'a-credential-only-its-owner-knows';
  const h = await startHarness(t, {
    adminCredentials: [`sha256:${createHash('sha256').update(credential).digest('hex')}`, 'plain-second-one'],
  });
  t.is(h.cp.adminCredential, 'plain-second-one', 'the first usable (non-hash) line');
  const res = await raw(h, '/v1/connectors', { headers: { authorization: `Bearer ${credential}` } });
  t.is(res.status, 200);
  const wrong = await raw(h, '/v1/connectors', { headers: { authorization: 'Bearer sha256:whatever' } });
  t.is(wrong.status, 401);
});

test('the database and every file in the data dir hold token hashes, never a token', async (t) => {
  const h = await startHarness(t);
  await h.admin.ensureConnector('ns.used', CONFIG);
  await h.admin.ensureConnector('ns.live', CONFIG);
  const used = await h.admin.mintToken('ns.used', { idempotencyKey: 'u' });
  const live = await h.admin.mintToken('ns.live', { idempotencyKey: 'l' });
  const revokedFirst = await h.admin.mintToken('ns.live', { idempotencyKey: 'l0' });
  t.is((await (await makeAgent(h, 'ns.used')).enroll(used.token)).status, 201);
  h.cp.flush();
  const tokens = [used.token, live.token, revokedFirst.token];
  // vpe_<16 hex>_<secret>; the secret is base64url, so it may itself contain '_'.
  const secretPart = (token: string) => {
    const secret = /^vpe_[0-9a-f]{16}_(.{43})$/.exec(token)?.[1];
    if (!secret) throw new Error('unexpected token format');
    return secret;
  };
  for (const [path, bytes] of filesUnder(h.dataDir)) {
    for (const token of tokens) {
      t.false(bytes.includes(secretPart(token)), `${path} does not hold a token's secret part`);
    }
  }
});

test('a database from before record ownership opens: its records are unowned until a PUT claims them', async (t) => {
  const h = await startHarness(t);
  const agent = await enrolledAgent(h, 'ns.old');
  await agent.heartbeat();
  const { cursor } = await h.admin.listConnectors();
  await h.cp.close();

  // Turn the database back into what the previous release wrote: schema version 1, no owner column,
  // no ownerUid in the stored records and change-feed snapshots.
  const db = new DatabaseSync(join(h.dataDir, 'control-plane.sqlite'));
  const strip = (json: string) => {
    const { ownerUid: _dropped, ...rest } = JSON.parse(json) as Record<string, unknown>;
    return JSON.stringify(rest);
  };
  for (const row of db.prepare('SELECT id, record FROM connectors').all()) {
    db.prepare('UPDATE connectors SET record = ? WHERE id = ?').run(
      strip(String(row.record)),
      String(row.id),
    );
  }
  for (const row of db.prepare('SELECT cursor, connector FROM changes WHERE connector IS NOT NULL').all()) {
    db.prepare('UPDATE changes SET connector = ? WHERE cursor = ?').run(
      strip(String(row.connector)),
      Number(row.cursor),
    );
  }
  db.exec('ALTER TABLE connectors DROP COLUMN owner_uid');
  db.exec('PRAGMA user_version = 1');
  const mentions = db
    .prepare(
      "SELECT (SELECT COUNT(*) FROM connectors WHERE record LIKE '%ownerUid%') + (SELECT COUNT(*) FROM changes WHERE connector LIKE '%ownerUid%') AS n",
    )
    .get();
  t.is(Number(mentions?.n), 0);
  db.close();

  await h.restart();
  const loaded = await h.admin.getConnector('ns.old');
  t.is(loaded.ownerUid, null);
  t.is(loaded.state, 'online');
  t.is((await h.admin.changes(0)).changes.at(-1)?.connector?.ownerUid, null, 'old feed rows too');
  t.is((await agent.heartbeat()).status, 200);
  const claimed = await h.admin.ensureConnector('ns.old', CONFIG, { ownerUid: 'uid-new' });
  t.is(claimed.connector.ownerUid, 'uid-new');
  t.is((await h.admin.changes(cursor)).changes.at(-1)?.connector?.ownerUid, 'uid-new');

  await h.restart();
  t.is((await h.admin.getConnector('ns.old')).ownerUid, 'uid-new', 'the owner survives a restart');
  const reopened = new DatabaseSync(join(h.dataDir, 'control-plane.sqlite'), { readOnly: true });
  t.is(Number(reopened.prepare('PRAGMA user_version').get()?.user_version), 2);
  t.is(reopened.prepare('SELECT owner_uid FROM connectors WHERE id = ?').get('ns.old')?.owner_uid, 'uid-new');
  reopened.close();
});

test('records from before revoked certificates and issue times were kept open: heartbeats work, the next recovery is remembered', async (t) => {
  const h = await startHarness(t, { heartbeatIntervalSeconds: 10 });
  const agent = await enrolledAgent(h, 'ns.older');
  await agent.heartbeat();
  await h.cp.close();

  // What the previous release wrote: no revokedCertificates, no certificate.issuedAt.
  const db = new DatabaseSync(join(h.dataDir, 'control-plane.sqlite'));
  const row = db.prepare('SELECT record FROM connectors WHERE id = ?').get('ns.older');
  const { revokedCertificates: _list, ...record } = JSON.parse(String(row?.record)) as Record<
    string,
    unknown
  >;
  const { issuedAt: _issuedAt, ...certificate } = record.certificate as Record<string, unknown>;
  db.prepare('UPDATE connectors SET record = ? WHERE id = ?').run(
    JSON.stringify({ ...record, certificate }),
    'ns.older',
  );
  db.close();

  await h.restart();
  const beat = await agent.heartbeat();
  t.is(beat.status, 200);
  // Without an issue time, two thirds from notBefore: as before, never later than from issuance.
  const notBefore = Number(certificate.notBefore);
  const notAfter = Number(certificate.notAfter);
  t.is(
    beat.json.renewAfter,
    new Date(notBefore + Math.floor(((notAfter - notBefore) * 2) / 3)).toISOString(),
  );

  h.clock.advance(60_000);
  t.is(h.cp.sweep(), 1);
  await h.admin.beginRecovery('ns.older', 'rq-old');
  const refused = await agent.heartbeat();
  t.is(refused.json.error.code, 'CLIENT_CERTIFICATE_REVOKED');
  t.is(refused.json.error.details.requestId, 'rq-old');
});
