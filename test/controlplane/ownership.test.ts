// One control-plane record, one owning Connector: the record knows its owner's UID, a Connector
// with another UID (any namespace, same connector id) can change nothing about it, and a record
// given up (deletionPolicy Retain) can be claimed by a new Connector, of the namespace it was
// handed over to only.
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
    // The fix it names is one a Connector can make: its connector id cannot change once created.
    t.regex(
      error?.message ?? '',
      /a Connector cannot change its connector id once created: create a new one with another connector id, or delete the Connector that owns team-a\.db$/,
      name,
    );
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
    [{ ownerUid: UID_A, handoverNamespace: null }],
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

test('a record handed over to a namespace: only a Connector of it claims; until then no Connector naming an owner changes it', async (t) => {
  const h = await startHarness(t);
  const UID_C = '0f8fad5b-d9cb-469f-a165-70867728950e';
  await h.admin.ensureConnector('shared.edge', CONFIG, { ownerUid: UID_A, ownerNamespace: 'team-a' });
  const minted = await h.admin.mintToken('shared.edge', { idempotencyKey: 'first', ownerUid: UID_A });
  const agent = await makeAgent(h, 'shared.edge');
  t.is((await agent.enroll(minted.token)).status, 201);
  t.is((await agent.heartbeat()).json.state, 'online');

  // team-a's Connector is deleted with deletionPolicy Retain: the record is kept for team-a.
  await h.admin.disownConnector('shared.edge', UID_A, 'team-a');
  const kept = await h.admin.getConnector('shared.edge');
  t.like(kept, { ownerUid: null, handoverNamespace: 'team-a', state: 'online' });
  const before = await snapshot(h, 'shared.edge');

  // A Connector of another namespace naming the id (a squatter on a shared control plane) can
  // neither claim the record nor change it by any other call: not mint, recover, revoke or delete.
  const attempts: Array<[string, () => Promise<unknown>]> = [
    [
      'claim from team-b',
      () => h.admin.ensureConnector('shared.edge', CONFIG, { ownerUid: UID_B, ownerNamespace: 'team-b' }),
    ],
    ['claim naming no namespace', () => h.admin.ensureConnector('shared.edge', CONFIG, { ownerUid: UID_B })],
    ['mint', () => h.admin.mintToken('shared.edge', { idempotencyKey: 'squat', ownerUid: UID_B })],
    ['recovery', () => h.admin.beginRecovery('shared.edge', 'squat', { ownerUid: UID_B })],
    ['recovery dry run', () => h.admin.checkRecovery('shared.edge', 'squat', { ownerUid: UID_B })],
    ['revoke', () => h.admin.revokeTokens('shared.edge', { ownerUid: UID_B })],
    ['delete', () => h.admin.deleteConnector('shared.edge', { ownerUid: UID_B })],
  ];
  for (const [name, call] of attempts) {
    const error = await t.throwsAsync(call(), undefined, name);
    t.like(error, { code: 'CONNECTOR_ID_CONFLICT', httpStatus: 409, temporary: false }, name);
    t.false(error?.message.includes('team-a'), `${name}: where the record went is not revealed`);
    // The fix it names is one a Connector can make (its connector id cannot change once created),
    // and no handover to its own namespace, which nothing can ask for.
    t.regex(
      error?.message ?? '',
      /only one of that namespace can; a Connector cannot change its connector id once created: create a new one with another connector id$/,
      name,
    );
  }
  t.deepEqual(await snapshot(h, 'shared.edge'), before, 'nothing changed: record, change feed, audit');
  t.is((await agent.heartbeat()).status, 200, 'the agent keeps its identity');

  // The handover survives a restart of the control plane (it is part of the stored record).
  await h.restart();
  t.is((await h.admin.getConnector('shared.edge')).handoverNamespace, 'team-a');
  t.like(
    await t.throwsAsync(
      h.admin.ensureConnector('shared.edge', CONFIG, { ownerUid: UID_B, ownerNamespace: 'team-b' }),
    ),
    { code: 'CONNECTOR_ID_CONFLICT' },
  );

  // team-a's new Connector claims it; the handover is done with and the identity carries on.
  const claimed = await h.admin.ensureConnector('shared.edge', CONFIG, {
    ownerUid: UID_C,
    ownerNamespace: 'team-a',
  });
  t.like(claimed.connector, { ownerUid: UID_C, handoverNamespace: null, state: 'online' });
  t.deepEqual(claimed.connector.certificate, kept.certificate);
  const audit = await h.admin.audit({ connectorId: 'shared.edge' });
  t.like(audit.at(-1), { type: 'connector.claimed', details: { ownerUid: UID_C, ownerNamespace: 'team-a' } });
  t.like(
    audit.find((e) => e.type === 'connector.disowned'),
    { details: { ownerUid: UID_A, handoverNamespace: 'team-a' } },
  );

  // Handed over across namespaces by its owner: team-b's Connector may then claim it, team-a's not.
  await h.admin.disownConnector('shared.edge', UID_C, 'team-b');
  t.like(
    await t.throwsAsync(
      h.admin.ensureConnector('shared.edge', CONFIG, { ownerUid: UID_A, ownerNamespace: 'team-a' }),
    ),
    { code: 'CONNECTOR_ID_CONFLICT' },
  );
  t.like(
    (await h.admin.ensureConnector('shared.edge', CONFIG, { ownerUid: UID_B, ownerNamespace: 'team-b' }))
      .connector,
    {
      ownerUid: UID_B,
      handoverNamespace: null,
    },
  );
});

test('a record disowned without a namespace (as before handovers) is claimed by a Connector of any namespace', async (t) => {
  const h = await startHarness(t);
  await h.admin.ensureConnector('old.edge', CONFIG, { ownerUid: UID_A });
  await h.admin.disownConnector('old.edge', UID_A);
  t.is((await h.admin.getConnector('old.edge')).handoverNamespace, null);
  await h.admin.mintToken('old.edge', { idempotencyKey: 'k', ownerUid: UID_B });
  t.is(
    (await h.admin.ensureConnector('old.edge', CONFIG, { ownerUid: UID_B, ownerNamespace: 'anywhere' }))
      .connector.ownerUid,
    UID_B,
  );
});

test('ownerNamespace and handoverNamespace are validated as namespace names, by field', async (t) => {
  const h = await startHarness(t);
  const headers = { authorization: `Bearer ${h.cp.adminCredential}` };
  await h.admin.ensureConnector('ns.n', CONFIG, { ownerUid: UID_A });
  const cases: Array<
    [string, string, Promise<{ status: number; json: { error: { code: string; details?: unknown } } }>]
  > = [
    [
      'ownerNamespace',
      'upper case',
      raw(
        h,
        '/v1/connectors/ns.n',
        jsonRequest('PUT', { ...CONFIG, ownerUid: UID_A, ownerNamespace: 'Team-A' }, { headers }),
      ),
    ],
    [
      'ownerNamespace',
      'too long',
      raw(
        h,
        '/v1/connectors/ns.n',
        jsonRequest('PUT', { ...CONFIG, ownerUid: UID_A, ownerNamespace: 'n'.repeat(64) }, { headers }),
      ),
    ],
    [
      'ownerNamespace',
      'not a string',
      raw(
        h,
        '/v1/connectors/ns.n',
        jsonRequest('PUT', { ...CONFIG, ownerUid: UID_A, ownerNamespace: 3 }, { headers }),
      ),
    ],
    [
      'handoverNamespace',
      'a dot',
      raw(h, `/v1/connectors/ns.n/owner?ownerUid=${UID_A}&handoverNamespace=a.b`, {
        method: 'DELETE',
        headers,
      }),
    ],
    [
      'handoverNamespace',
      'empty',
      raw(h, `/v1/connectors/ns.n/owner?ownerUid=${UID_A}&handoverNamespace=`, { method: 'DELETE', headers }),
    ],
  ];
  for (const [field, name, pending] of cases) {
    const res = await pending;
    t.is(res.status, 400, name);
    t.is(res.json.error.code, 'INVALID_REQUEST', name);
    t.deepEqual(res.json.error.details, { field }, name);
  }
  t.like(await h.admin.getConnector('ns.n'), { ownerUid: UID_A, handoverNamespace: null }, 'nothing changed');
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
