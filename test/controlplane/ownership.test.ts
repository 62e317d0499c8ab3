// One control-plane record, one owning Connector: the record knows its owner's UID, a Connector
// with another UID (any namespace, same connector id) can change nothing about it, and a record
// given up (deletionPolicy Retain) can be claimed by a new Connector.
import test from 'ava';
import { CONFIG, enrolledAgent, type Harness, jsonRequest, makeAgent, raw, startHarness } from './helpers.ts';

const UID_A = '1b4e28ba-2fa1-11d2-883f-0016d3cca427';
const UID_B = '6fa459ea-ee8a-3ca4-894e-db77e160355e';

async function snapshot(h: Harness, connectorId: string) {
  const { cursor } = await h.admin.listConnectors();
  return {
    connector: await h.admin.getConnector(connectorId),
    cursor,
    audit: (await h.admin.audit({ limit: 1000 })).length,
  };
}

test('a Connector with another UID can change nothing about an owned record: 409 CONNECTOR_ID_CONFLICT', async (t) => {
  const h = await startHarness(t);
  const created = await h.admin.ensureConnector('team-a.db', CONFIG, { ownerUid: UID_A });
  t.true(created.created);
  t.is(created.connector.ownerUid, UID_A);
  t.is((await h.admin.getConnector('team-a.db')).ownerUid, UID_A);
  const minted = await h.admin.mintToken('team-a.db', { idempotencyKey: 'k', ownerUid: UID_A });
  const before = await snapshot(h, 'team-a.db');

  const conflicts: Array<[string, () => Promise<unknown>]> = [
    ['PUT', () => h.admin.ensureConnector('team-a.db', { ...CONFIG, org: 'other' }, { ownerUid: UID_B })],
    ['DELETE', () => h.admin.deleteConnector('team-a.db', { ownerUid: UID_B })],
    ['mint', () => h.admin.mintToken('team-a.db', { idempotencyKey: 'b', ownerUid: UID_B })],
    ['mint retry', () => h.admin.mintToken('team-a.db', { idempotencyKey: 'k', ownerUid: UID_B })],
    ['revoke', () => h.admin.revokeTokens('team-a.db', { ownerUid: UID_B })],
    ['recovery', () => h.admin.beginRecovery('team-a.db', 'r', { ownerUid: UID_B })],
    ['disown', () => h.admin.disownConnector('team-a.db', UID_B)],
  ];
  for (const [name, call] of conflicts) {
    const error = await t.throwsAsync(call(), undefined, name);
    t.like(error, { code: 'CONNECTOR_ID_CONFLICT', httpStatus: 409, temporary: false }, name);
    t.regex(error?.message ?? '', /team-a\.db is owned by another Connector/, name);
    t.false(error?.message.includes(UID_A), `${name}: the owner is not revealed`);
    t.deepEqual((error as { details?: unknown }).details, { connectorId: 'team-a.db' }, name);
  }
  t.deepEqual(await snapshot(h, 'team-a.db'), before, 'nothing changed: record, change feed, audit');
  t.is(before.connector.liveToken?.tokenId, minted.tokenId);

  // The owner itself goes on as before; a client that names no owner is not checked.
  t.false((await h.admin.ensureConnector('team-a.db', CONFIG, { ownerUid: UID_A })).created);
  t.deepEqual(await h.admin.revokeTokens('team-a.db', { ownerUid: UID_A }), { revoked: 1 });
  t.deepEqual(await h.admin.revokeTokens('team-a.db'), { revoked: 0 });
  await h.admin.deleteConnector('team-a.db', { ownerUid: UID_A });
  t.like(await t.throwsAsync(h.admin.getConnector('team-a.db')), { code: 'CONNECTOR_NOT_FOUND' });
  await h.admin.deleteConnector('team-a.db', { ownerUid: UID_B }); // absent: 204 as before
});

test('a record nobody owns is claimed by PUT only; the other mutations change it without claiming', async (t) => {
  const h = await startHarness(t);
  t.is((await h.admin.ensureConnector('legacy.db', CONFIG)).connector.ownerUid, null);
  await h.admin.mintToken('legacy.db', { idempotencyKey: 'k', ownerUid: UID_B });
  t.deepEqual(await h.admin.revokeTokens('legacy.db', { ownerUid: UID_B }), { revoked: 1 });
  t.is((await h.admin.getConnector('legacy.db')).ownerUid, null, 'mint and revoke do not claim');

  const { cursor } = await h.admin.listConnectors();
  const claimed = await h.admin.ensureConnector('legacy.db', CONFIG, { ownerUid: UID_A });
  t.false(claimed.created);
  t.is(claimed.connector.ownerUid, UID_A);
  const [change] = (await h.admin.changes(cursor)).changes;
  t.is(change?.connector?.ownerUid, UID_A, 'the claim is published');
  const entries = await h.admin.audit({ connectorId: 'legacy.db' });
  t.like(entries.at(-1), { type: 'connector.claimed', details: { ownerUid: UID_A } });
  t.like(await t.throwsAsync(h.admin.ensureConnector('legacy.db', CONFIG, { ownerUid: UID_B })), {
    code: 'CONNECTOR_ID_CONFLICT',
  });
});

test('disowning keeps the identity; a new Connector with the same id claims the retained record', async (t) => {
  const h = await startHarness(t);
  await h.admin.ensureConnector('team-a.edge', CONFIG, { ownerUid: UID_A });
  const minted = await h.admin.mintToken('team-a.edge', { idempotencyKey: 'first', ownerUid: UID_A });
  const agent = await makeAgent(h, 'team-a.edge');
  t.is((await agent.enroll(minted.token)).status, 201);
  t.is((await agent.heartbeat()).json.state, 'online');
  const before = await h.admin.getConnector('team-a.edge');

  // The Connector is deleted with deletionPolicy Retain.
  await h.admin.disownConnector('team-a.edge', UID_A);
  const retained = await h.admin.getConnector('team-a.edge');
  t.is(retained.ownerUid, null);
  t.deepEqual(retained.certificate, before.certificate, 'identity kept');
  t.is(retained.state, 'online');
  t.true(retained.bootstrapRetired);
  t.is((await agent.heartbeat()).status, 200, 'the agent keeps working on its identity');
  await h.admin.disownConnector('team-a.edge', UID_B); // nobody owns it: 204, nothing changes
  t.is((await h.admin.getConnector('team-a.edge')).revision, retained.revision);
  const disowned = (await h.admin.audit({ connectorId: 'team-a.edge' })).filter(
    (e) => e.type === 'connector.disowned',
  );
  t.deepEqual(
    disowned.map((e) => e.details),
    [{ ownerUid: UID_A }],
  );

  // A new Connector (new UID) with the same id reattaches the retained record.
  const reattached = await h.admin.ensureConnector('team-a.edge', CONFIG, { ownerUid: UID_B });
  t.false(reattached.created);
  t.is(reattached.connector.ownerUid, UID_B);
  t.deepEqual(reattached.connector.certificate, before.certificate);
  t.is((await agent.heartbeat()).json.state, 'online');
  t.like(await t.throwsAsync(h.admin.disownConnector('team-a.edge', UID_A)), {
    code: 'CONNECTOR_ID_CONFLICT',
  });
  t.like(await t.throwsAsync(h.admin.disownConnector('team-a.missing', UID_A)), {
    code: 'CONNECTOR_NOT_FOUND',
    httpStatus: 404,
  });
  // Recovery by the new owner works; by the old one it does not.
  t.like(await t.throwsAsync(h.admin.beginRecovery('team-a.edge', 'rq', { ownerUid: UID_A })), {
    code: 'CONNECTOR_ID_CONFLICT',
  });
  t.like(await t.throwsAsync(h.admin.beginRecovery('team-a.edge', 'rq', { ownerUid: UID_B })), {
    code: 'RECOVERY_NOT_NEEDED',
  });
});

test('ownerUid is validated: named field, at most 128 characters, required to disown', async (t) => {
  const h = await startHarness(t);
  const headers = { authorization: `Bearer ${h.cp.adminCredential}` };
  await enrolledAgent(h, 'ns.v');
  const cases: Array<
    [string, Promise<{ status: number; json: { error: { code: string; details?: unknown } } }>]
  > = [
    [
      'PUT too long',
      raw(
        h,
        '/v1/connectors/ns.v',
        jsonRequest('PUT', { ...CONFIG, ownerUid: 'u'.repeat(129) }, { headers }),
      ),
    ],
    [
      'PUT not a string',
      raw(h, '/v1/connectors/ns.v', jsonRequest('PUT', { ...CONFIG, ownerUid: 7 }, { headers })),
    ],
    ['DELETE empty', raw(h, '/v1/connectors/ns.v?ownerUid=', { method: 'DELETE', headers })],
    [
      'revoke too long',
      raw(h, `/v1/connectors/ns.v/tokens?ownerUid=${'u'.repeat(129)}`, { method: 'DELETE', headers }),
    ],
    ['disown without ownerUid', raw(h, '/v1/connectors/ns.v/owner', { method: 'DELETE', headers })],
  ];
  for (const [name, pending] of cases) {
    const res = await pending;
    t.is(res.status, 400, name);
    t.is(res.json.error.code, 'INVALID_REQUEST', name);
    t.deepEqual(res.json.error.details, { field: 'ownerUid' }, name);
  }
  t.is((await h.admin.getConnector('ns.v')).ownerUid, null);
  const exact = await h.admin.ensureConnector('ns.v', CONFIG, { ownerUid: 'u'.repeat(128) });
  t.is(exact.connector.ownerUid, 'u'.repeat(128));
});
