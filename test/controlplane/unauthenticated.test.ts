// What a caller without an admin credential or a valid connector certificate can make the control
// plane do: refuse, count, and write within a budget; never change a connector. Every test here
// runs over real HTTPS/mTLS sockets. docs/control-plane.md ("What an unauthenticated caller can
// cause") points at these tests by title.
import test from 'ava';
import { ROUTES } from '../../src/controlplane/http/routes.ts';
import { ENROLLMENT_FAILURE_REASONS } from '../../src/controlplane/metrics.ts';
import { issueCertificatePem } from '../../src/lib/pki.ts';
import {
  adminHeaders,
  CONFIG,
  enrolledAgent,
  flood,
  type Harness,
  heartbeatWith,
  jsonRequest,
  makeAgent,
  metricValue,
  type RawOptions,
  raw,
  rawTls,
  startHarness,
} from './helpers.ts';

const JUNK_TOKEN = `vpe_0123456789abcdef_${'A'.repeat(43)}`;

function enrollRequest(connectorId: string, token: string, options: RawOptions = {}) {
  return { path: '/v1/enroll', options: jsonRequest('POST', { connectorId, token, csrPem: 'x' }, options) };
}

function refusalsAudited(h: Harness, connectorId?: string) {
  return h.admin
    .audit({ connectorId, limit: 1000 })
    .then((entries) => entries.filter((e) => e.type === 'gateway.enrollment_failed'));
}

/** Log lines at warn or above: what an operator's log pipeline keeps. */
function loudLines(h: Harness): Array<Record<string, unknown>> {
  return h.logs.records().filter((r) => Number(r.level) >= 40);
}

test('3000 forged enrollments leave a heartbeating connector online: no state, revision, change, token or certificate change', async (t) => {
  const h = await startHarness(t);
  // A retired, heartbeating connector that still has a live token (minted before its first beat).
  const agent = await enrolledAgent(h, 'ns.victim');
  const spare = await h.admin.mintToken('ns.victim', { idempotencyKey: 'spare' });
  t.is((await agent.heartbeat()).json.state, 'online');
  // Another connector, whose genuine token an attacker might have got hold of.
  await h.admin.ensureConnector('ns.other', CONFIG);
  const othersToken = (await h.admin.mintToken('ns.other', { idempotencyKey: 'o' })).token;

  const before = await h.admin.getConnector('ns.victim');
  t.true(before.bootstrapRetired);
  t.is(before.liveToken?.tokenId, spare.tokenId);
  const { cursor } = await h.admin.listConnectors();
  const auditBefore = (await h.admin.audit({ limit: 1000 })).length;

  // Anything but one of the victim's own tokens: junk, a well-formed unknown token, the victim's
  // real token id with a wrong secret, another connector's genuine token.
  const forged = ['x', JUNK_TOKEN, `${agent.pairedWith?.slice(0, 21)}${'Z'.repeat(43)}`, othersToken];
  const answers = await flood(h, 3000, (i) =>
    enrollRequest('ns.victim', forged[i % forged.length] as string),
  );

  t.deepEqual([...new Set(answers.map((res) => res.status))], [401]);
  const unknownBody = (await (await makeAgent(h, 'ns.nobody')).enroll(JUNK_TOKEN)).text;
  t.deepEqual([...new Set(answers.map((res) => res.text))], [unknownBody], 'the answer of an unknown token');

  const after = await h.admin.getConnector('ns.victim');
  t.is(after.state, 'online');
  t.is(after.revision, before.revision);
  t.is(after.lastEnrollmentFailure, null);
  t.deepEqual(after.liveToken, before.liveToken, 'the live token is not revoked');
  t.deepEqual(after.certificate, before.certificate);
  t.deepEqual((await h.admin.changes(cursor)).changes, [], 'no change-feed row');
  t.is((await h.admin.listConnectors()).cursor, cursor);

  // Counted in full, audited within the per-connector budget (20 by default), logged no more.
  t.is(
    (await metricValue(h, 'cp_enrollment_failures_total', 'reason="unknown"')) +
      (await metricValue(h, 'cp_enrollment_failures_total', 'reason="wrong_connector"')),
    3001,
  );
  const audited = await refusalsAudited(h, 'ns.victim');
  t.is(audited.length, 20);
  t.is((await h.admin.audit({ limit: 1000 })).length - auditBefore, 21, 'and one for ns.nobody');
  t.false(
    (await h.admin.audit({ limit: 1000 })).some((e) => e.type === 'token.revoked'),
    'no token revoked',
  );
  t.is(loudLines(h).length, 21, 'one warning per audited refusal');

  const beat = await agent.heartbeat();
  t.is(beat.status, 200, 'the certificate still works');
  t.is(beat.json.state, 'online');
});

test('a flood of refused enrollments wakes no change follower and pushes no history out of the feed', async (t) => {
  // A short feed: before the fix, each refusal against an existing connector appended a change, so
  // a dozen refusals already pushed the follower's cursor out (410 CURSOR_EXPIRED).
  const h = await startHarness(t, { changeRetention: 10 });
  await h.admin.ensureConnector('ns.pending', CONFIG);
  const pendingToken = (await h.admin.mintToken('ns.pending', { idempotencyKey: 'p' })).token;
  await enrolledAgent(h, 'ns.enrolling');
  const online = await enrolledAgent(h, 'ns.online');
  await online.heartbeat();
  const { cursor } = await h.admin.listConnectors();

  // A follower long-polling from the snapshot's cursor, one second at a time, while the flood runs.
  let flooding = true;
  const polls: Array<{ status: number; changes: number; ms: number }> = [];
  const follower = (async () => {
    while (flooding) {
      const started = Date.now();
      const res = await raw(h, `/v1/changes?since=${cursor}&waitSeconds=1`, { headers: adminHeaders(h) });
      polls.push({ status: res.status, changes: res.json?.changes?.length ?? -1, ms: Date.now() - started });
    }
  })();
  // Junk, and a genuine token of ns.pending sent for every other connector.
  const attempts: Array<[string, string]> = [
    ['ns.pending', JUNK_TOKEN],
    ['ns.enrolling', pendingToken],
    ['ns.online', 'x'],
    ['ns.online', pendingToken],
    ['ns.invented', pendingToken],
    ['ns.enrolling', JUNK_TOKEN],
  ];
  const answers = await flood(h, 1500, (i) =>
    enrollRequest(...(attempts[i % attempts.length] as [string, string])),
  );
  flooding = false;
  await follower;

  t.deepEqual([...new Set(answers.map((res) => res.json.error.code))], ['ENROLLMENT_TOKEN_INVALID']);
  t.true(polls.length >= 1);
  for (const poll of polls) {
    t.is(poll.status, 200, 'never 410');
    t.is(poll.changes, 0);
    t.true(poll.ms >= 900, `the follower was woken after ${poll.ms} ms`);
  }
  const feed = await h.admin.changes(cursor);
  t.deepEqual(feed.changes, [], 'no change-feed row');
  for (const id of ['ns.pending', 'ns.enrolling', 'ns.online']) {
    t.is((await h.admin.getConnector(id)).lastEnrollmentFailure, null, id);
  }
  // Audited within the budgets: 20 per existing connector, 20 for all unknown ids together.
  t.is((await refusalsAudited(h)).length, 4 * 20);

  // The feed still holds what came before, and a real change wakes a waiting follower at once.
  const waiting = h.admin.changes(feed.cursor, 10);
  const started = Date.now();
  await h.admin.ensureConnector('ns.pending', { ...CONFIG, endpointId: 'ep-2' });
  const woken = await waiting;
  t.true(Date.now() - started < 5_000);
  t.is(woken.changes.length, 1);
  t.is(woken.changes[0]?.connector?.endpointId, 'ep-2');
});

test("a retired connector's own spent token: needs_recovery once, later refusals recorded within a budget", async (t) => {
  const h = await startHarness(t);
  const agent = await enrolledAgent(h, 'ns.lost');
  await agent.heartbeat();
  const { cursor } = await h.admin.listConnectors();
  const answers = await flood(h, 200, () => enrollRequest('ns.lost', agent.pairedWith as string));
  t.true(answers.every((res) => res.json.error.details?.previouslyPaired === true));

  const connector = await h.admin.getConnector('ns.lost');
  t.is(connector.state, 'needs_recovery');
  const changes = (await h.admin.changes(cursor)).changes;
  // The move to needs_recovery, then lastEnrollmentFailure updates within their budget of 5.
  t.is(changes.length, 6);
  t.is(changes[0]?.state, 'needs_recovery');
  // The first refusal is always audited; then the budget for this connector (20).
  t.is((await refusalsAudited(h, 'ns.lost')).length, 21);
  t.is(await metricValue(h, 'cp_enrollment_failures_total', 'reason="retired"'), 200);
  t.is(await metricValue(h, 'cp_budget_exceeded_total', 'budget="failureRecord"'), 194);

  // The budget refills: a minute later one more refusal is recorded.
  h.clock.advance(60_000);
  const again = enrollRequest('ns.lost', agent.pairedWith as string);
  await raw(h, again.path, again.options);
  const later = await h.admin.getConnector('ns.lost');
  t.is(later.revision, connector.revision + 1);
  t.is(later.lastEnrollmentFailure?.at, h.clock.now().toISOString());
});

// Found by reading: forged enrollments naming a connector and the refusals of its own certificates
// drew on one budget, so about 20 forgeries, then one every 3 s, kept every endpoint.certificate_refused
// of that connector out of the audit log. A certificate this CA issued to it is proven (its holder
// has the key): it has a budget of its own, which no caller without that key can spend.
test('forged enrollments naming a connector cannot keep the refusals of its own certificates out of the audit log', async (t) => {
  const h = await startHarness(t);
  const agent = await enrolledAgent(h, 'ns.b');
  await agent.heartbeat();
  const stale = agent.certPem as string;
  t.is((await agent.renew()).status, 200);

  // A stranger spends every anonymous entry naming ns.b (its bucket holds 20) and keeps going.
  const forger = await makeAgent(h, 'ns.b');
  for (let i = 0; i < 30; i++) {
    t.is((await forger.enroll(JUNK_TOKEN)).json.error.code, 'ENROLLMENT_TOKEN_INVALID');
  }
  t.is((await refusalsAudited(h, 'ns.b')).length, 20, 'the forgeries are audited within their budget');

  // ns.b's replaced certificate, presented by a holder of its key over mTLS: refused, and audited.
  const loudBefore = loudLines(h).length;
  t.is((await heartbeatWith(h, agent, stale)).json.error.code, 'CLIENT_CERTIFICATE_SUPERSEDED');
  const certificateRefusals = () =>
    h.admin
      .audit({ connectorId: 'ns.b', limit: 1000 })
      .then((entries) => entries.filter((e) => e.type === 'endpoint.certificate_refused'));
  t.like((await certificateRefusals())[0]?.details, { code: 'CLIENT_CERTIFICATE_SUPERSEDED' });
  t.regex(String(loudLines(h).slice(loudBefore)[0]?.msg), /^client certificate rejected: /);

  // Still bounded: a flood of that certificate is audited within the connector's own budget (20).
  await flood(h, 100, () => ({
    path: '/v1/heartbeat',
    options: jsonRequest('POST', { paths: [] }, { key: agent.keyPem, cert: stale }),
  }));
  t.is((await certificateRefusals()).length, 20);
  t.is(await metricValue(h, 'cp_budget_exceeded_total', 'budget="certificateAudit"'), 81);
  // And it spends nothing of the anonymous budgets: forgeries naming another connector are audited.
  await enrolledAgent(h, 'ns.c');
  await (await makeAgent(h, 'ns.c')).enroll(JUNK_TOKEN);
  t.is((await refusalsAudited(h, 'ns.c')).length, 1);
  t.is((await agent.heartbeat()).status, 200, 'the current certificate still works');
});

test('a flood of refused client certificates is logged and audited within the anonymous budget and changes nothing', async (t) => {
  const h = await startHarness(t);
  const agent = await enrolledAgent(h, 'ns.flooded');
  await agent.heartbeat();
  const stale = agent.certPem as string;
  t.is((await agent.renew()).status, 200);
  const foreign = await foreignCertificate('ns.flooded', agent.keyPem);
  const before = await h.admin.getConnector('ns.flooded');
  const { cursor } = await h.admin.listConnectors();
  const loudBefore = loudLines(h).length;

  const count = 300;
  const answers = await flood(h, 2 * count, (i) => ({
    path: '/v1/heartbeat',
    options: jsonRequest('POST', { paths: [] }, { key: agent.keyPem, cert: i % 2 === 0 ? stale : foreign }),
  }));
  t.is(answers.filter((res) => res.json.error.code === 'CLIENT_CERTIFICATE_SUPERSEDED').length, count);
  t.is(answers.filter((res) => res.json.error.code === 'CLIENT_CERTIFICATE_UNTRUSTED').length, count);

  // The replaced certificate of this CA spends the connector's bucket (20); another CA's certificate
  // only claims the connector and spends the bucket shared by unknown callers (20).
  const refused = (await h.admin.audit({ limit: 1000 })).filter(
    (e) => e.type === 'endpoint.certificate_refused',
  );
  t.is(refused.filter((e) => e.connectorId === 'ns.flooded').length, 20);
  t.is(refused.filter((e) => e.connectorId === null).length, 20);
  const warnings = loudLines(h).slice(loudBefore);
  t.is(warnings.length, refused.length, 'one warning per audited refusal');
  t.true(
    warnings.every(
      (line) => Number(line.level) === 40 && String(line.msg).startsWith('client certificate rejected: '),
    ),
  );
  t.is(await metricValue(h, 'cp_audit_suppressed_total'), 2 * count - 40);
  t.is(
    await metricValue(h, 'cp_client_certificate_refusals_total', 'code="CLIENT_CERTIFICATE_SUPERSEDED"'),
    count,
  );

  const after = await h.admin.getConnector('ns.flooded');
  t.is(after.revision, before.revision);
  t.deepEqual((await h.admin.changes(cursor)).changes, []);
  t.is((await agent.heartbeat()).status, 200, 'the current certificate still works');
});

/** A client certificate for the connector's name from a CA the control plane does not know. */
async function foreignCertificate(connectorId: string, keyPem: string): Promise<string> {
  const { createPrivateKey, createPublicKey } = await import('node:crypto');
  const now = Date.now();
  return issueCertificatePem({
    issuerKeyPem: createPrivateKey(keyPem),
    subjectPublicKey: createPublicKey(keyPem),
    subject: [{ shortName: 'CN', value: connectorId }],
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3_600_000),
    sanUris: [`spiffe://vaultpam.local/connector/${connectorId}`],
    extendedKeyUsage: ['clientAuth'],
  });
}

/** A plausible body for each route, so that only authentication can stop the request. */
const BODIES: Record<string, unknown> = {
  'PUT /v1/connectors/{connectorId}': { ...CONFIG, ownerUid: 'intruder' },
  'POST /v1/connectors/{connectorId}/tokens': { idempotencyKey: 'intruder' },
  'POST /v1/connectors/{connectorId}/recovery': { requestId: 'intruder' },
  'POST /v1/enroll': { connectorId: 'ns.target', token: JUNK_TOKEN, csrPem: 'x' },
  'POST /v1/heartbeat': { paths: [{ name: 'tunnel', healthy: false }] },
  'POST /v1/renew': { csrPem: 'x' },
};

test('every route refuses a caller without the admin credential or the current certificate, and writes nothing', async (t) => {
  const h = await startHarness(t);
  const agent = await enrolledAgent(h, 'ns.target');
  await agent.heartbeat();
  const stale = agent.certPem as string;
  t.is((await agent.renew()).status, 200, 'the first certificate is now replaced');
  const before = await h.admin.getConnector('ns.target');
  const { cursor } = await h.admin.listConnectors();
  const auditBefore = (await h.admin.audit({ limit: 1000 })).length;
  const loudBefore = loudLines(h).length;
  const foreign = await foreignCertificate('ns.target', agent.keyPem);

  const callers: Array<[string, RawOptions]> = [
    ['nobody', {}],
    ['a wrong admin credential', { headers: { authorization: 'Bearer wrong' } }],
    ['a certificate from another CA', { key: agent.keyPem, cert: foreign }],
    ["the connector's replaced certificate", { key: agent.keyPem, cert: stale }],
  ];
  let checked = 0;
  for (const route of ROUTES) {
    const key = `${route.method} ${route.path}`;
    const path = route.path.replace('{connectorId}', 'ns.target');
    for (const [who, credentials] of callers) {
      const body = BODIES[key];
      const options: RawOptions =
        route.method === 'GET' || route.method === 'DELETE' || body === undefined
          ? { method: route.method, ...credentials }
          : jsonRequest(route.method, body, credentials);
      const res = await raw(h, `${path}?ownerUid=intruder`, options);
      const what = `${key} by ${who}`;
      t.is(res.status, route.auth === 'public' ? 200 : 401, what);
      if (route.auth === 'admin') t.is(res.json.error.code, 'UNAUTHORIZED', what);
      if (route.auth === 'mtls')
        t.regex(res.json.error.code, /^CLIENT_CERTIFICATE_(REQUIRED|UNTRUSTED|SUPERSEDED)$/, what);
      checked += 1;
    }
  }
  t.is(checked, ROUTES.length * callers.length);

  const after = await h.admin.getConnector('ns.target');
  t.is(after.revision, before.revision);
  t.is(after.state, 'online');
  t.deepEqual(after.paths, before.paths);
  t.deepEqual((await h.admin.changes(cursor)).changes, []);
  // The enrollments were refused as unknown tokens and the certificates as another CA's or replaced:
  // audited (within budgets) and logged once each at warn, nothing else.
  const newEntries = (await h.admin.audit({ limit: 1000 })).slice(auditBefore);
  t.deepEqual([...new Set(newEntries.map((e) => e.type))].sort(), [
    'endpoint.certificate_refused',
    'gateway.enrollment_failed',
  ]);
  t.is(loudLines(h).length - loudBefore, newEntries.length);
  t.is((await agent.heartbeat()).status, 200, 'the current certificate still works');
});

test('metric labels keep a fixed set of values whatever paths, methods and tokens callers send', async (t) => {
  const h = await startHarness(t);
  await enrolledAgent(h, 'ns.m');
  const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];
  await flood(h, 600, (i) =>
    i % 3 === 0
      ? enrollRequest(`ns.invented-${i}`, `token-${i}`)
      : {
          path: i % 3 === 1 ? `/v1/nothing-${i}/x?y=${i}` : `/v1/connectors/ns.id-${i}/tokens`,
          options: { method: methods[i % methods.length] as string },
        },
  );
  const text = await h.cp.metrics.registry.metrics();
  const values = (metric: string, label: string) =>
    new Set(
      text
        .split('\n')
        .filter((line) => line.startsWith(`${metric}{`))
        .map((line) => new RegExp(`${label}="([^"]*)"`).exec(line)?.[1]),
    );
  const routes = new Set([...ROUTES.map((r) => r.path), 'unmatched']);
  for (const route of values('cp_http_request_duration_seconds_count', 'route')) {
    t.true(routes.has(route as string), `route label ${route}`);
  }
  for (const status of values('cp_http_request_duration_seconds_count', 'status')) {
    t.regex(status as string, /^(200|201|204|400|401|404|405)$/);
  }
  // The reason label is bounded (every reason is there from the start, at 0), and the flood of
  // unknown ids counted only under 'unknown'.
  t.deepEqual(
    [...values('cp_enrollment_failures_total', 'reason')].sort(),
    [...ENROLLMENT_FAILURE_REASONS].sort(),
  );
  for (const reason of ENROLLMENT_FAILURE_REASONS) {
    const expected = reason === 'unknown' ? 200 : 0;
    t.is(await metricValue(h, 'cp_enrollment_failures_total', `reason="${reason}"`), expected, reason);
  }
});

test('broken, aborted and oversized requests get JSON errors and write no warning or error log line', async (t) => {
  const h = await startHarness(t);
  const loudBefore = loudLines(h).length;

  // Header fields over Node's 16 KiB limit: 431 with the standard error body.
  const big = await raw(h, '/healthz', { headers: { 'x-padding': 'a'.repeat(20 * 1024) } });
  t.is(big.status, 431);
  t.deepEqual(big.json, {
    error: {
      code: 'HEADERS_TOO_LARGE',
      message: 'the request header fields are larger than the server accepts',
    },
  });

  // Bytes that are not HTTP.
  const garbage = await rawTls(h, 'HELLO THERE\r\n\r\n');
  t.regex(garbage, /^HTTP\/1\.1 400 Bad Request\r\n/);
  t.regex(garbage, /connection: close/i);
  t.is(JSON.parse(garbage.split('\r\n\r\n')[1] as string).error.code, 'MALFORMED_REQUEST');

  // A target Node's parser lets through but no URL parser accepts: a 400, not an internal error.
  const target = await rawTls(h, 'GET http://[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.regex(target, /^HTTP\/1\.1 400 /);
  t.is(JSON.parse(target.split('\r\n\r\n')[1] as string).error.code, 'MALFORMED_REQUEST');

  // Uploads cut off half way by the client: nobody to answer, nothing to log above debug.
  for (let i = 0; i < 20; i++) {
    const upload = 'POST /v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n';
    await rawTls(h, `${upload}Content-Length: 1000\r\n\r\n{"conn`, true).catch(() => '');
  }
  // The server noticed every one of them before the check below.
  await new Promise((resolve) => setTimeout(resolve, 200));

  t.deepEqual(loudLines(h).slice(loudBefore), []);
  t.is((await raw(h, '/healthz')).json.status, 'ok', 'the server keeps serving');
});
