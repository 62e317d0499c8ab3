// The dry run of beginRecovery (`POST /v1/connectors/{id}/recovery?dryRun=true`): the operator asks
// it before it scales a connector down, so it must answer exactly what beginning would answer and
// write nothing at all, whatever it is asked.
import test from 'ava';
import {
  ControlPlaneAdminClient,
  ControlPlaneAnswerError,
} from '../../src/operator/control-plane/admin-client.ts';
import { CONFIG, enrolledAgent, type Harness, jsonRequest, makeAgent, raw, startHarness } from './helpers.ts';

const OWNER = '1b4e28ba-2fa1-11d2-883f-0016d3cca427';
const OTHER = '6fa459ea-ee8a-3ca4-894e-db77e160355e';

/** Everything a write would move: the record, the change feed, the audit log, live tokens. */
async function snapshot(h: Harness) {
  const { connectors, cursor } = await h.admin.listConnectors();
  return { connectors, cursor, audit: (await h.admin.audit({ limit: 1000 })).length };
}

test('the recovery dry run answers what beginRecovery would, and writes nothing', async (t) => {
  const h = await startHarness(t);
  await h.admin.ensureConnector('ns.fresh', CONFIG, { ownerUid: OWNER });
  const live = await h.admin.mintToken('ns.fresh', { idempotencyKey: 'first', ownerUid: OWNER });
  const online = await enrolledAgent(h, 'ns.online');
  await online.heartbeat();
  const lost = await enrolledAgent(h, 'ns.lost');
  await lost.heartbeat();
  await (await makeAgent(h, 'ns.lost')).enroll(lost.pairedWith as string); // -> needs_recovery
  const before = await snapshot(h);

  // Refusals: the codes, statuses and messages beginRecovery gives.
  const refusals: Array<[string, () => Promise<unknown>, object]> = [
    [
      'never paired',
      () => h.admin.checkRecovery('ns.fresh', 'r1', { ownerUid: OWNER }),
      { code: 'RECOVERY_NOT_NEEDED', httpStatus: 409, details: { state: 'pending' } },
    ],
    [
      'online',
      () => h.admin.checkRecovery('ns.online', 'r1'),
      { code: 'RECOVERY_NOT_NEEDED', httpStatus: 409, details: { state: 'online' } },
    ],
    [
      'owned by another Connector',
      () => h.admin.checkRecovery('ns.fresh', 'r1', { ownerUid: OTHER }),
      { code: 'CONNECTOR_ID_CONFLICT', httpStatus: 409 },
    ],
    [
      'no record',
      () => h.admin.checkRecovery('ns.absent', 'r1'),
      { code: 'CONNECTOR_NOT_FOUND', httpStatus: 404 },
    ],
  ];
  for (const [what, call, expected] of refusals) {
    const error = await t.throwsAsync(call(), undefined, what);
    t.like(error, expected, what);
  }
  const notNeeded = await t.throwsAsync(h.admin.checkRecovery('ns.fresh', 'r1', { ownerUid: OWNER }));
  const begun = await t.throwsAsync(h.admin.beginRecovery('ns.fresh', 'r1', { ownerUid: OWNER }));
  t.is(notNeeded?.message, begun?.message, 'the same words as beginRecovery');

  t.deepEqual(await h.admin.checkRecovery('ns.lost', 'r1'), {
    dryRun: true,
    allowed: true,
    requestId: 'r1',
    state: 'needs_recovery',
    sameRequest: false,
  });
  t.deepEqual(await snapshot(h), before, 'no record, change, audit entry or token moved');
  t.is(
    (await h.admin.getConnector('ns.fresh')).liveToken?.tokenId,
    live.tokenId,
    'the live token stays live',
  );
  t.is((await lost.heartbeat()).status, 200, "the lost connector's certificate was not revoked");

  // Once begun, the dry run of the same request says so; another request would start over.
  await h.admin.beginRecovery('ns.lost', 'r1');
  const afterBegin = await snapshot(h);
  t.like(await h.admin.checkRecovery('ns.lost', 'r1'), { allowed: true, sameRequest: true });
  t.like(await h.admin.checkRecovery('ns.lost', 'r2'), { allowed: true, sameRequest: false });
  t.deepEqual(await snapshot(h), afterBegin);
});

test('the recovery dry run refuses a caller without the admin credential and validates like beginRecovery', async (t) => {
  const h = await startHarness(t);
  const lost = await enrolledAgent(h, 'ns.lost');
  await lost.heartbeat();
  await (await makeAgent(h, 'ns.lost')).enroll(lost.pairedWith as string);
  const before = await snapshot(h);
  const path = '/v1/connectors/ns.lost/recovery';
  const admin = { headers: { authorization: `Bearer ${h.cp.adminCredential}` } };

  const strangers: Array<Record<string, string>> = [{}, { authorization: 'Bearer wrong' }];
  for (const headers of strangers) {
    const res = await raw(h, `${path}?dryRun=true`, jsonRequest('POST', { requestId: 'r' }, { headers }));
    t.is(res.status, 401);
    t.is(res.json.error.code, 'UNAUTHORIZED');
  }
  const cases: Array<[string, string, unknown, string]> = [
    ['no requestId', `${path}?dryRun=true`, {}, 'requestId'],
    ['an empty requestId', `${path}?dryRun=true`, { requestId: '' }, 'requestId'],
    ['a dryRun that is not a boolean', `${path}?dryRun=yes`, { requestId: 'r' }, 'dryRun'],
    ['an empty ownerUid', `${path}?dryRun=true&ownerUid=`, { requestId: 'r' }, 'ownerUid'],
  ];
  for (const [what, target, body, field] of cases) {
    const res = await raw(h, target, jsonRequest('POST', body, admin));
    t.is(res.status, 400, what);
    t.is(res.json.error.code, 'INVALID_REQUEST', what);
    t.true(JSON.stringify(res.json.error).includes(field), `${what}: names ${field}`);
  }
  t.deepEqual(await snapshot(h), before, 'nothing written by any of them');
  const allowed = await raw(h, `${path}?dryRun=false`, jsonRequest('POST', { requestId: 'r' }, admin));
  t.is(allowed.json.state, 'recovering', 'dryRun=false is the ordinary call');
});

test('the admin client: a control plane that predates the dry run reads as allowed with dryRun false; a refusal stays a refusal', async (t) => {
  const answers: Array<{ status: number; body: string }> = [];
  const seen: string[] = [];
  const client = new ControlPlaneAdminClient({
    url: 'https://old.example',
    caPem: '',
    credential: 'c3cr3t-admin-credential',
    fetch: async (_method, url) => {
      seen.push(url);
      return answers.shift() ?? { status: 500, body: '' };
    },
  });
  answers.push({ status: 200, body: JSON.stringify({ connectorId: 'ns.a', state: 'recovering' }) });
  t.deepEqual(await client.checkRecovery('ns.a', 'r1', { ownerUid: OWNER }), {
    dryRun: false,
    allowed: true,
    requestId: 'r1',
    state: 'recovering',
    sameRequest: false,
  });
  t.is(seen[0], `https://old.example/v1/connectors/ns.a/recovery?ownerUid=${OWNER}&dryRun=true`);
  answers.push({
    status: 409,
    body: JSON.stringify({
      error: { code: 'RECOVERY_NOT_NEEDED', message: 'no: Bearer c3cr3t-admin-credential' },
    }),
  });
  const refused = await t.throwsAsync(client.checkRecovery('ns.a', 'r1'));
  t.true(refused instanceof ControlPlaneAnswerError, 'marked as the server’s words');
  t.like(refused, { code: 'RECOVERY_NOT_NEEDED', httpStatus: 409, temporary: false });
  t.false(refused?.message.includes('c3cr3t-admin-credential'), 'an echoed credential is cut out');
});
