import { rmSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import test from 'ava';
import { createCsrPem } from '../../src/lib/pki.ts';
import {
  CONFIG,
  enrolledAgent,
  type Harness,
  jsonRequest,
  makeAgent,
  metricValue,
  raw,
  startHarness,
} from './helpers.ts';

const HOUR = 3_600_000;

/** GET over the real HTTPS socket, with the answer's headers (raw() keeps only status and body). */
function scrape(h: Harness, path: string): Promise<{ status: number; contentType: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${h.cp.url}${path}`, { ca: h.cp.caPem, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers['content-type']),
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample in Prometheus text format; undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('first enrollment issues a connector certificate; the first heartbeat retires bootstrap', async (t) => {
  const h = await startHarness(t);
  const created = await h.admin.ensureConnector('team-a.db', CONFIG);
  t.true(created.created);
  t.is(created.connector.state, 'pending');
  const again = await h.admin.ensureConnector('team-a.db', CONFIG);
  t.false(again.created);
  t.is(again.connector.revision, created.connector.revision, 'unchanged config is not a change');

  const minted = await h.admin.mintToken('team-a.db', { idempotencyKey: 'k1' });
  t.true(minted.created);
  t.regex(minted.token, /^vpe_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  t.is(new Date(minted.expiresAt).getTime(), h.clock.now().getTime() + 4 * HOUR, 'default TTL is 4 h');

  const agent = await makeAgent(h, 'team-a.db');
  const enrolled = await agent.enroll(minted.token);
  t.is(enrolled.status, 201);
  t.is(enrolled.json.heartbeatIntervalSeconds, 10);
  t.is(enrolled.json.caPem, h.cp.caPem);
  const { parseCertificateFacts, keyMatchesCertificate, certificateIssuedBy } = await import(
    '../../src/lib/pki.ts'
  );
  const facts = parseCertificateFacts(enrolled.json.certificatePem);
  t.is(facts.subjectCommonName, 'team-a.db');
  t.deepEqual(facts.sanUris, ['spiffe://vaultpam.local/connector/team-a.db']);
  t.is(facts.serial, enrolled.json.serial);
  t.true(keyMatchesCertificate(agent.keyPem, enrolled.json.certificatePem));
  t.true(certificateIssuedBy(enrolled.json.certificatePem, h.cp.caPem));
  t.is(facts.notAfter.toISOString(), enrolled.json.notAfter);

  let connector = await h.admin.getConnector('team-a.db');
  t.is(connector.state, 'enrolling');
  t.false(connector.bootstrapRetired);
  t.is(connector.liveToken, null);
  t.is(connector.certificate?.serial, facts.serial);

  const beat = await agent.heartbeat();
  t.is(beat.status, 200);
  t.is(beat.json.state, 'online');
  connector = await h.admin.getConnector('team-a.db');
  t.is(connector.state, 'online');
  t.true(connector.bootstrapRetired);
  const types = (await h.admin.audit({ connectorId: 'team-a.db' })).map((e) => e.type);
  for (const type of [
    'connector.created',
    'token.minted',
    'endpoint.enrolled',
    'endpoint.bootstrap_retired',
  ]) {
    t.true(types.includes(type), type);
  }
  t.is(await metricValue(h, 'cp_enrollments_total'), 1);
  t.is(await metricValue(h, 'cp_tokens_minted_total'), 1);
  t.is(await metricValue(h, 'cp_heartbeats_total'), 1);
  t.is(await metricValue(h, 'cp_connectors', 'state="online"'), 1);
});

test('at most one live token: minting revokes the previous unused one', async (t) => {
  const h = await startHarness(t);
  await h.admin.ensureConnector('ns.one', CONFIG);
  const first = await h.admin.mintToken('ns.one', { idempotencyKey: 'a' });
  const second = await h.admin.mintToken('ns.one', { idempotencyKey: 'b' });
  t.not(first.token, second.token);
  t.is((await h.admin.getConnector('ns.one')).liveToken?.tokenId, second.tokenId);
  const agent = await makeAgent(h, 'ns.one');
  const refused = await agent.enroll(first.token);
  t.is(refused.status, 401);
  t.is(refused.json.error.code, 'ENROLLMENT_TOKEN_REVOKED');
  t.is((await agent.enroll(second.token)).status, 201);
  const revoked = (await h.admin.audit({ connectorId: 'ns.one' })).filter((e) => e.type === 'token.revoked');
  t.is(revoked.length, 1);
  t.is(revoked[0]?.details.tokenId, first.tokenId);
});

test('idempotent mint: same key returns the same token; a consumed key answers 409', async (t) => {
  const h = await startHarness(t);
  await h.admin.ensureConnector('ns.idem', CONFIG);
  const first = await h.admin.mintToken('ns.idem', { idempotencyKey: 'req-1', ttlSeconds: 600 });
  const retry = await h.admin.mintToken('ns.idem', { idempotencyKey: 'req-1', ttlSeconds: 600 });
  t.true(first.created);
  t.false(retry.created);
  t.is(retry.token, first.token);
  t.is(retry.expiresAt, first.expiresAt);
  t.is(await metricValue(h, 'cp_tokens_minted_total'), 1);

  const agent = await makeAgent(h, 'ns.idem');
  t.is((await agent.enroll(first.token)).status, 201);
  const consumed = await t.throwsAsync(h.admin.mintToken('ns.idem', { idempotencyKey: 'req-1' }));
  t.like(consumed, { code: 'IDEMPOTENCY_KEY_CONSUMED', httpStatus: 409, temporary: false });

  // A revoked key's token is consumed too.
  await h.admin.ensureConnector('ns.idem2', CONFIG);
  await h.admin.mintToken('ns.idem2', { idempotencyKey: 'x' });
  t.deepEqual(await h.admin.revokeTokens('ns.idem2'), { revoked: 1 });
  t.like(await t.throwsAsync(h.admin.mintToken('ns.idem2', { idempotencyKey: 'x' })), {
    code: 'IDEMPOTENCY_KEY_CONSUMED',
  });
  t.like(await t.throwsAsync(h.admin.mintToken('ns.idem2', { idempotencyKey: 'y', ttlSeconds: 14_401 })), {
    code: 'TTL_TOO_LONG',
    httpStatus: 400,
  });
  t.like(await t.throwsAsync(h.admin.mintToken('ns.missing', { idempotencyKey: 'y' })), {
    code: 'CONNECTOR_NOT_FOUND',
    httpStatus: 404,
  });
});

test('expired, revoked, reused, unknown and wrong-connector tokens each get their code', async (t) => {
  const h = await startHarness(t);
  await h.admin.ensureConnector('ns.tok', CONFIG);
  await h.admin.ensureConnector('ns.other', CONFIG);
  const agent = await makeAgent(h, 'ns.tok');

  const expiring = await h.admin.mintToken('ns.tok', { idempotencyKey: 'e', ttlSeconds: 60 });
  h.clock.advance(60_000);
  let res = await agent.enroll(expiring.token);
  t.is(res.status, 401);
  t.is(res.json.error.code, 'ENROLLMENT_TOKEN_EXPIRED');
  t.is((await h.admin.getConnector('ns.tok')).liveToken, null, 'an expired token is not shown as live');

  const revoked = await h.admin.mintToken('ns.tok', { idempotencyKey: 'r' });
  await h.admin.revokeTokens('ns.tok');
  res = await agent.enroll(revoked.token);
  t.is(res.json.error.code, 'ENROLLMENT_TOKEN_REVOKED');
  t.is(res.status, 401);
  t.regex(res.json.error.message, /enrolment token revoked/, "the runbook's log fragment");

  res = await agent.enroll(`vpe_0123456789abcdef_${'A'.repeat(43)}`);
  t.is(res.status, 401);
  t.is(res.json.error.code, 'ENROLLMENT_TOKEN_INVALID');
  res = await agent.enroll('not-a-token-at-all');
  t.is(res.json.error.code, 'ENROLLMENT_TOKEN_INVALID');

  const others = await h.admin.mintToken('ns.other', { idempotencyKey: 'o' });
  res = await agent.enroll(others.token);
  t.is(res.json.error.code, 'ENROLLMENT_TOKEN_INVALID', 'a token of another connector');

  const good = await h.admin.mintToken('ns.tok', { idempotencyKey: 'g' });
  t.is((await agent.enroll(good.token)).status, 201);
  // Another key with the spent token (the agent itself asking again is answered: the next test).
  res = await (await makeAgent(h, 'ns.tok')).enroll(good.token);
  t.is(res.status, 401);
  t.is(res.json.error.code, 'ENROLLMENT_TOKEN_INVALID', 'a used token');

  // The other connector's token was not consumed by the failed attempt.
  const otherAgent = await makeAgent(h, 'ns.other');
  t.is((await otherAgent.enroll(others.token)).status, 201);

  const failures = (await h.admin.audit({ connectorId: 'ns.tok' })).filter(
    (e) => e.type === 'gateway.enrollment_failed',
  );
  t.deepEqual(
    failures.map((e) => e.details.reason),
    ['expired', 'revoked', 'unknown', 'unknown', 'wrong_connector', 'used'],
  );
  t.is(await metricValue(h, 'cp_enrollment_failures_total', 'reason="expired"'), 1);
  t.is((await h.admin.getConnector('ns.tok')).lastEnrollmentFailure?.code, 'ENROLLMENT_TOKEN_INVALID');
});

/** Mints a token and enrolls one agent with it, keeping the request's CSR (what a replayer could hold). */
async function pairedOnce(h: Harness, connectorId: string) {
  await h.admin.ensureConnector(connectorId, CONFIG);
  const minted = await h.admin.mintToken(connectorId, { idempotencyKey: `k-${connectorId}` });
  const agent = await makeAgent(h, connectorId);
  const csrPem = createCsrPem(agent.keyPem, connectorId);
  const enroll = (token: string, csr: string) =>
    raw(h, '/v1/enroll', jsonRequest('POST', { connectorId, token, csrPem: csr }));
  const first = await enroll(minted.token, csrPem);
  if (first.status !== 201) throw new Error(`enrollment answered ${first.status}: ${first.text}`);
  agent.certPem = first.json.certificatePem;
  return { agent, minted, csrPem, first, enroll };
}

test('a lost answer: the spent token with the same key before any heartbeat gets the same answer again, and nothing changes', async (t) => {
  const h = await startHarness(t);
  const { agent, minted, csrPem, first, enroll } = await pairedOnce(h, 'ns.lost');
  const before = await h.admin.getConnector('ns.lost');

  // The answer never reached the agent: it asks again with the key it kept and the same token.
  const again = await enroll(minted.token, createCsrPem(agent.keyPem, 'ns.lost'));
  t.is(again.status, 201, again.text);
  t.deepEqual(again.json, first.json, 'the same certificate, nothing issued');
  const after = await h.admin.getConnector('ns.lost');
  t.deepEqual(after, before, 'no state, revision or certificate change');
  t.is(await metricValue(h, 'cp_enrollments_total'), 1);
  t.is(await metricValue(h, 'cp_enrollments_answered_again_total'), 1);
  t.is(await metricValue(h, 'cp_enrollment_failures_total', 'reason="used"'), 0);
  const audit = (await h.admin.audit({ connectorId: 'ns.lost' })).filter((e) =>
    ['endpoint.enrolled', 'endpoint.enrollment_answered_again'].includes(e.type),
  );
  t.deepEqual(
    audit.map((e) => e.type),
    ['endpoint.enrolled', 'endpoint.enrollment_answered_again'],
  );
  t.deepEqual(audit[1]?.details, { tokenId: minted.tokenId, serial: first.json.serial });

  // Someone who captured the original request (token and CSR, not the key) replays it: the same
  // answer, which is useless without the key, and the agent's certificate keeps working.
  const replay = await enroll(minted.token, csrPem);
  t.is(replay.status, 201);
  t.is(replay.json.serial, first.json.serial);
  t.is((await agent.heartbeat()).status, 200, 'the certificate the agent holds was not superseded');

  // After the first heartbeat the answer is no longer awaited: the same key and token is the
  // identity-loss branch (needs_recovery), never a certificate.
  const retired = await enroll(minted.token, csrPem);
  t.is(retired.status, 401);
  t.is(retired.json.error.code, 'ENROLLMENT_TOKEN_INVALID');
  t.true(retired.json.error.details?.previouslyPaired);
  t.is((await h.admin.getConnector('ns.lost')).state, 'needs_recovery');
  t.is(await metricValue(h, 'cp_enrollments_answered_again_total'), 2);
});

test('a spent token with any other CSR is refused as it always was, while an answer is awaited', async (t) => {
  const h = await startHarness(t);
  const { minted, enroll } = await pairedOnce(h, 'ns.other-csr');
  const before = await h.admin.getConnector('ns.other-csr');
  const thief = await makeAgent(h, 'ns.other-csr');
  for (const [what, csrPem] of [
    ['another key', createCsrPem(thief.keyPem, 'ns.other-csr')],
    ['not a CSR', 'not a csr'],
    ['another subject, the same key', createCsrPem(thief.keyPem, 'ns.someone-else')],
  ] as const) {
    const res = await enroll(minted.token, csrPem);
    t.is(res.status, 401, what);
    t.is(res.json.error.code, 'ENROLLMENT_TOKEN_INVALID', what);
    t.is(res.json.error.message, 'the enrollment token was already used', what);
  }
  const after = await h.admin.getConnector('ns.other-csr');
  t.is(after.certificate?.serial, before.certificate?.serial);
  t.is(after.state, 'enrolling');
  t.is(await metricValue(h, 'cp_enrollment_failures_total', 'reason="used"'), 3);
  t.is(await metricValue(h, 'cp_enrollments_answered_again_total'), 0);
});

test("the answer is awaited no longer than the token's lifetime, nor after a renewal", async (t) => {
  const h = await startHarness(t);
  const renewed = await pairedOnce(h, 'ns.renewed');
  const renewal = await renewed.agent.renew();
  t.is(renewal.status, 200, renewal.text);
  const afterRenewal = await renewed.enroll(renewed.minted.token, renewed.csrPem);
  t.is(afterRenewal.status, 401, 'the renewed certificate is the one to use');

  const { minted, csrPem, enroll } = await pairedOnce(h, 'ns.late');
  // The harness clock, not TLS's: only the token's lifetime is judged here.
  h.clock.advance(new Date(minted.expiresAt).getTime() - h.clock.now().getTime());
  const late = await enroll(minted.token, csrPem);
  t.is(late.status, 401, 'a key and token left behind are not an identity later');
  t.is(late.json.error.code, 'ENROLLMENT_TOKEN_INVALID');
  t.is(await metricValue(h, 'cp_enrollments_answered_again_total'), 0);
});

test('an answer whose certificate no longer works is not sent again: expired, or of a CA replaced since', async (t) => {
  const short = await startHarness(t, { certificateLifetimeSeconds: 300, heartbeatIntervalSeconds: 10 });
  const expiring = await pairedOnce(short, 'ns.expired');
  short.clock.advance(300_000);
  const expired = await expiring.enroll(expiring.minted.token, expiring.csrPem);
  t.is(expired.status, 401, 'the token still lives, the certificate does not');
  t.is(expired.json.error.code, 'ENROLLMENT_TOKEN_INVALID');

  const h = await startHarness(t);
  const { minted, csrPem, enroll } = await pairedOnce(h, 'ns.new-ca');
  await h.cp.close();
  for (const file of ['ca.pem', 'ca-key.pem']) rmSync(join(h.dataDir, file));
  await h.restart();
  const otherCa = await enroll(minted.token, csrPem);
  t.is(otherCa.status, 401, 'a certificate the answered CA did not issue');
  t.is(otherCa.json.error.code, 'ENROLLMENT_TOKEN_INVALID');
  t.is(await metricValue(h, 'cp_enrollments_answered_again_total'), 0);
});

test("a recovery's pairing whose answer was lost is answered again with the recovery's token, never the old one", async (t) => {
  const h = await startHarness(t);
  const { agent, minted, csrPem, enroll } = await pairedOnce(h, 'ns.rec-lost');
  t.is((await agent.heartbeat()).status, 200);
  t.is((await enroll(minted.token, csrPem)).status, 401); // identity lost: needs_recovery
  await h.admin.beginRecovery('ns.rec-lost', 'rq-1');
  const recovery = await h.admin.mintToken('ns.rec-lost', { idempotencyKey: 'rec-1' });
  const fresh = await makeAgent(h, 'ns.rec-lost');
  const paired = await fresh.enroll(recovery.token);
  t.is(paired.status, 201);
  const again = await fresh.enroll(recovery.token);
  t.is(again.status, 201);
  t.is(again.json.serial, paired.json.serial);
  t.is((await h.admin.getConnector('ns.rec-lost')).state, 'enrolling');
  // The bootstrap token with the key it certified is still the identity-loss branch.
  t.is((await enroll(minted.token, csrPem)).status, 401);
  t.is((await h.admin.getConnector('ns.rec-lost')).state, 'needs_recovery');
});

test('a retired connector: a token of its it never paired with (revoked unused) is refused but does not move it to needs_recovery', async (t) => {
  const h = await startHarness(t);
  await h.admin.ensureConnector('ns.superseded', CONFIG);
  // The first token is superseded (revoked) before anything used it; the agent pairs with the second.
  const unused = await h.admin.mintToken('ns.superseded', { idempotencyKey: 'first', ttlSeconds: 60 });
  const used = await h.admin.mintToken('ns.superseded', { idempotencyKey: 'second' });
  const agent = await makeAgent(h, 'ns.superseded');
  t.is((await agent.enroll(used.token)).status, 201);
  t.is((await agent.heartbeat()).json.state, 'online');
  t.true((await h.admin.getConnector('ns.superseded')).bootstrapRetired);

  // Whoever holds the revoked token (a Secret kept somewhere, a backup) proves no lost identity: the
  // connector is heartbeating with its certificate. Before, this one request (with any CSR) moved it
  // to needs_recovery, where heartbeats could not bring it back, and an Automatic recovery policy
  // then revoked its working certificate.
  const holder = await makeAgent(h, 'ns.superseded');
  const refused = await holder.enroll(unused.token);
  t.is(refused.status, 401);
  t.is(refused.json.error.code, 'ENROLLMENT_TOKEN_INVALID');
  t.deepEqual(refused.json.error.details, { previouslyPaired: true }, 'answered as any of its tokens is');
  t.is((await h.admin.getConnector('ns.superseded')).state, 'online');
  t.is((await agent.heartbeat()).json.state, 'online');
  const moves = (await h.admin.audit({ connectorId: 'ns.superseded' })).filter(
    (e) => e.type === 'endpoint.state_changed' && e.details.to === 'needs_recovery',
  );
  t.deepEqual(moves, []);

  // The token it paired with still does: that is the runbook's fallback after a lost identity.
  await holder.enroll(used.token);
  t.is((await h.admin.getConnector('ns.superseded')).state, 'needs_recovery');
});

test('a retired connector: another token changes nothing; its own spent token moves it to needs_recovery', async (t) => {
  const h = await startHarness(t);
  const agent = await enrolledAgent(h, 'ns.ret');
  await agent.heartbeat();
  const retired = await h.admin.getConnector('ns.ret');
  t.true(retired.bootstrapRetired);

  const mint = await t.throwsAsync(h.admin.mintToken('ns.ret', { idempotencyKey: 'again' }));
  t.like(mint, { code: 'RECOVERY_REQUIRED', httpStatus: 409 });

  // A token that is not this connector's proves nothing: refused, audited, and nothing changes.
  const reborn = await makeAgent(h, 'ns.ret');
  const res = await reborn.enroll(`vpe_0123456789abcdef_${'B'.repeat(43)}`);
  t.is(res.status, 401);
  t.is(res.json.error.code, 'ENROLLMENT_TOKEN_INVALID');
  const stranger = await (await makeAgent(h, 'ns.never-existed')).enroll(
    `vpe_0123456789abcdef_${'B'.repeat(43)}`,
  );
  t.deepEqual(res.json.error, stranger.json.error, 'the answer does not tell a retired connector from none');
  const untouched = await h.admin.getConnector('ns.ret');
  t.is(untouched.state, 'online');
  t.is(untouched.revision, retired.revision);
  t.is(untouched.lastEnrollmentFailure, null);
  t.is(await metricValue(h, 'cp_enrollment_failures_total', 'reason="unknown"'), 2);

  // The agent lost its data dir and falls back to the token it paired with: that is the connector.
  const fallback = await reborn.enroll(agent.pairedWith as string);
  t.deepEqual(fallback.json.error.details, { previouslyPaired: true });
  const connector = await h.admin.getConnector('ns.ret');
  t.is(connector.state, 'needs_recovery');
  t.is(connector.lastEnrollmentFailure?.code, 'ENROLLMENT_TOKEN_INVALID');
  const failed = (await h.admin.audit({ connectorId: 'ns.ret' })).filter(
    (e) => e.type === 'gateway.enrollment_failed',
  );
  t.deepEqual(
    failed.map((e) => e.details.reason),
    ['unknown', 'retired'],
  );
  t.is(await metricValue(h, 'cp_enrollment_failures_total', 'reason="retired"'), 1);

  // needs_recovery is left only through an explicit recovery, not by heartbeats of the old identity.
  const beat = await agent.heartbeat();
  t.is(beat.status, 200);
  t.is(beat.json.state, 'needs_recovery');
  t.is((await h.admin.getConnector('ns.ret')).state, 'needs_recovery');
});

test('recovery: a fresh token pairs exactly once; the old identity is revoked', async (t) => {
  const h = await startHarness(t);
  const agent = await enrolledAgent(h, 'ns.rec');
  await agent.heartbeat();
  const notNeeded = await t.throwsAsync(h.admin.beginRecovery('ns.rec', 'rq-0'));
  t.like(notNeeded, { code: 'RECOVERY_NOT_NEEDED', httpStatus: 409 });
  await (await makeAgent(h, 'ns.rec')).enroll(agent.pairedWith as string); // -> needs_recovery
  t.is((await h.admin.getConnector('ns.rec')).state, 'needs_recovery');

  const recovering = await h.admin.beginRecovery('ns.rec', 'rq-1');
  t.is(recovering.state, 'recovering');
  t.is(recovering.recovery?.requestId, 'rq-1');
  t.is(recovering.certificate, null);
  const same = await h.admin.beginRecovery('ns.rec', 'rq-1');
  t.is(same.revision, recovering.revision, 'the same requestId is idempotent');

  const oldBeat = await agent.heartbeat();
  t.is(oldBeat.status, 401);
  t.is(
    oldBeat.json.error.code,
    'CLIENT_CERTIFICATE_REVOKED',
    'the old certificate is useless after recovery',
  );

  const token = await h.admin.mintToken('ns.rec', { idempotencyKey: 'rq-1' });
  const fresh = await makeAgent(h, 'ns.rec');
  t.is((await fresh.enroll(token.token)).status, 201);
  t.is((await h.admin.getConnector('ns.rec')).state, 'enrolling');
  const second = await makeAgent(h, 'ns.rec');
  const again = await second.enroll(token.token);
  t.is(again.status, 401);
  t.is(again.json.error.code, 'ENROLLMENT_TOKEN_INVALID', 'pairs once');
  t.like(await t.throwsAsync(h.admin.mintToken('ns.rec', { idempotencyKey: 'rq-1b' })), {
    code: 'RECOVERY_REQUIRED',
  });

  // The second attempt moved it back to needs_recovery; a new recovery request starts over.
  t.is((await h.admin.getConnector('ns.rec')).state, 'needs_recovery');
  await h.admin.beginRecovery('ns.rec', 'rq-2');
  const token2 = await h.admin.mintToken('ns.rec', { idempotencyKey: 'rq-2' });
  const third = await makeAgent(h, 'ns.rec');
  t.is((await third.enroll(token2.token)).status, 201);
  const beat = await third.heartbeat();
  t.is(beat.json.state, 'online');
  const connector = await h.admin.getConnector('ns.rec');
  t.is(connector.state, 'online');
  t.truthy(connector.recovery?.completedAt);
  const types = (await h.admin.audit({ connectorId: 'ns.rec' })).map((e) => e.type);
  t.true(types.includes('recovery.started'));
  t.true(types.includes('recovery.completed'));
  const retryMint = await t.throwsAsync(h.admin.mintToken('ns.rec', { idempotencyKey: 'rq-2' }));
  t.like(
    retryMint,
    { code: 'IDEMPOTENCY_KEY_CONSUMED' },
    'a restarted operator repeating its mint gets no second token',
  );
});

test('/metrics over HTTPS: Prometheus text with the heartbeat timeouts and refused enrollments caused', async (t) => {
  const h = await startHarness(t, { heartbeatIntervalSeconds: 10 });
  const before = await scrape(h, '/metrics');
  t.is(before.status, 200);
  t.is(before.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  t.true(before.text.includes('# TYPE cp_tunnel_heartbeat_timeouts_total counter'));
  t.true(before.text.includes('# TYPE cp_enrollment_failures_total counter'));
  // Nothing happened yet: so the values read afterwards are the ones this test caused.
  t.is(sample(before.text, 'cp_tunnel_heartbeat_timeouts_total'), 0);
  // Every refusal reason is there from the start at 0, so increase() counts the first refusal.
  t.is(sample(before.text, 'cp_enrollment_failures_total{reason="unknown"}'), 0);
  t.is(sample(before.text, 'cp_enrollment_failures_total{reason="revoked"}'), 0);

  // One connector goes offline: its heartbeats stop for the 3 intervals the sweep waits for.
  const agent = await enrolledAgent(h, 'ns.met');
  t.is((await agent.heartbeat()).json.state, 'online');
  h.clock.advance(30_000);
  t.is(h.cp.sweep(), 1);
  // Two enrollments with a token nobody minted, one with a revoked token.
  await h.admin.ensureConnector('ns.met2', CONFIG);
  const stranger = await makeAgent(h, 'ns.met2');
  for (const letter of ['A', 'B']) {
    t.is((await stranger.enroll(`vpe_0123456789abcdef_${letter.repeat(43)}`)).status, 401);
  }
  const revoked = await h.admin.mintToken('ns.met2', { idempotencyKey: 'r' });
  await h.admin.revokeTokens('ns.met2');
  t.is((await stranger.enroll(revoked.token)).json.error.code, 'ENROLLMENT_TOKEN_REVOKED');

  const after = await scrape(h, '/metrics');
  t.is(after.status, 200);
  t.is(after.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  t.is(sample(after.text, 'cp_tunnel_heartbeat_timeouts_total'), 1);
  t.is(sample(after.text, 'cp_enrollment_failures_total{reason="unknown"}'), 2);
  t.is(sample(after.text, 'cp_enrollment_failures_total{reason="revoked"}'), 1);
  t.is(sample(after.text, 'cp_enrollments_total'), 1);
  t.is(sample(after.text, 'cp_connectors{state="offline"}'), 1);
});

test('concurrent enrollments with one token: exactly one wins, the others are refused as used', async (t) => {
  const h = await startHarness(t);
  await h.admin.ensureConnector('ns.race', CONFIG);
  const minted = await h.admin.mintToken('ns.race', { idempotencyKey: 'race' });
  // Each contender has its own key and CSR, as separate agents racing on one token would.
  const agents = await Promise.all(Array.from({ length: 8 }, () => makeAgent(h, 'ns.race')));
  // Each enroll opens its own TLS connection (agent: false), so the requests overlap on the server.
  const answers = await Promise.all(agents.map((agent) => agent.enroll(minted.token)));

  const won = answers.filter((res) => res.status === 201);
  t.is(won.length, 1, `statuses: ${answers.map((res) => res.status).join(',')}`);
  for (const res of answers.filter((r) => r.status !== 201)) {
    t.is(res.status, 401);
    t.is(res.json?.error?.code, 'ENROLLMENT_TOKEN_INVALID');
  }
  const serial = won[0]?.json.serial;
  const connector = await h.admin.getConnector('ns.race');
  t.is(connector.state, 'enrolling');
  t.is(connector.certificate?.serial, serial, "the winner's certificate is the connector's one");
  const entries = await h.admin.audit({ connectorId: 'ns.race' });
  const enrolled = entries.filter((e) => e.type === 'endpoint.enrolled');
  t.is(enrolled.length, 1);
  t.is(enrolled[0]?.details.serial, serial);
  t.deepEqual(
    entries.filter((e) => e.type === 'gateway.enrollment_failed').map((e) => e.details.reason),
    Array(7).fill('used'),
  );
  t.is(await metricValue(h, 'cp_enrollments_total'), 1);
  t.is(await metricValue(h, 'cp_enrollment_failures_total', 'reason="used"'), 7);

  // Only the winner holds a working identity.
  const winner = agents.find((agent) => agent.certPem !== undefined);
  t.is(agents.filter((agent) => agent.certPem !== undefined).length, 1);
  t.is((await winner?.heartbeat())?.status, 200);
});

test('a retired connector presenting its own spent token is told it paired before; the audit says retired', async (t) => {
  const h = await startHarness(t);
  await h.admin.ensureConnector('ns.fallback', CONFIG);
  const minted = await h.admin.mintToken('ns.fallback', { idempotencyKey: 'first' });
  const agent = await makeAgent(h, 'ns.fallback');
  t.is((await agent.enroll(minted.token)).status, 201);
  await agent.heartbeat();
  t.true((await h.admin.getConnector('ns.fallback')).bootstrapRetired);

  // The data directory was lost; the agent falls back to the bootstrap token it still has.
  const reborn = await makeAgent(h, 'ns.fallback');
  const res = await reborn.enroll(minted.token);
  t.is(res.status, 401);
  t.is(res.json.error.code, 'ENROLLMENT_TOKEN_INVALID');
  t.deepEqual(res.json.error.details, { previouslyPaired: true });
  t.regex(res.json.error.message, /paired before/);
  t.is((await h.admin.getConnector('ns.fallback')).state, 'needs_recovery');
  const failed = (await h.admin.audit({ connectorId: 'ns.fallback' })).filter(
    (e) => e.type === 'gateway.enrollment_failed',
  );
  t.is(failed.at(-1)?.details.reason, 'retired');

  // Another connector's genuine token says nothing about this one.
  await h.admin.ensureConnector('ns.other', CONFIG);
  const foreign = await h.admin.mintToken('ns.other', { idempotencyKey: 'x' });
  const probe = await (await makeAgent(h, 'ns.fallback')).enroll(foreign.token);
  t.is(probe.json.error.code, 'ENROLLMENT_TOKEN_INVALID');
  t.is(probe.json.error.details, undefined);
});
