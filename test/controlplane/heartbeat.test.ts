import test from 'ava';
import { createCsrPem, generateKeyPairPem, parseCertificateFacts } from '../../src/lib/pki.ts';
import {
  CONFIG,
  type CraftedCertificateOptions,
  craftedCertificate,
  enrolledAgent,
  heartbeatWith,
  jsonRequest,
  makeAgent,
  metricValue,
  raw,
  startHarness,
} from './helpers.ts';

test('missed heartbeats move a connector offline (sweep on the injected clock) and count a timeout', async (t) => {
  const h = await startHarness(t, { heartbeatIntervalSeconds: 10 });
  const agent = await enrolledAgent(h, 'ns.off');
  await agent.heartbeat();
  h.clock.advance(29_000);
  t.is(h.cp.sweep(), 0, 'not yet: offline after 3 intervals');
  t.is((await agent.heartbeat()).json.state, 'online');
  h.clock.advance(30_000);
  t.is(h.cp.sweep(), 1);
  t.is(h.cp.sweep(), 0, 'counted once');
  const connector = await h.admin.getConnector('ns.off');
  t.is(connector.state, 'offline');
  t.is(await metricValue(h, 'cp_tunnel_heartbeat_timeouts_total'), 1);
  t.is(await metricValue(h, 'cp_connectors', 'state="offline"'), 1);
  const changed = (await h.admin.audit({ connectorId: 'ns.off' })).filter(
    (e) => e.type === 'endpoint.state_changed',
  );
  t.like(changed.at(-1)?.details, { from: 'online', to: 'offline', reason: 'heartbeat timeout' });

  // The next heartbeat brings it back; an enrolled-but-silent connector is never swept.
  t.is((await agent.heartbeat()).json.state, 'online');
  await enrolledAgent(h, 'ns.silent');
  h.clock.advance(120_000);
  t.is(h.cp.sweep(), 1);
  t.is((await h.admin.getConnector('ns.silent')).state, 'enrolling');
});

test('an offline threshold can be configured apart from the interval', async (t) => {
  const h = await startHarness(t, { heartbeatIntervalSeconds: 5, offlineAfterSeconds: 7 });
  const agent = await enrolledAgent(h, 'ns.cfg');
  const beat = await agent.heartbeat();
  t.is(beat.json.heartbeatIntervalSeconds, 5);
  h.clock.advance(6_999);
  t.is(h.cp.sweep(), 0);
  h.clock.advance(1);
  t.is(h.cp.sweep(), 1);
});

test('one unhealthy path means degraded; healthy again means online', async (t) => {
  const h = await startHarness(t);
  const agent = await enrolledAgent(h, 'ns.deg');
  t.is((await agent.heartbeat()).json.state, 'online');
  const degraded = await agent.heartbeat([
    { name: 'tunnel', healthy: true },
    { name: 'database', healthy: false, detail: 'connection refused' },
  ]);
  t.is(degraded.json.state, 'degraded');
  const connector = await h.admin.getConnector('ns.deg');
  t.is(connector.state, 'degraded');
  t.deepEqual(connector.paths[1], { name: 'database', healthy: false, detail: 'connection refused' });
  t.is((await agent.heartbeat()).json.state, 'online');
  const bad = await agent.heartbeat([{ name: 'tunnel', healthy: 'yes' } as never]);
  t.is(bad.status, 400);
  t.is(bad.json.error.code, 'INVALID_REQUEST');
  t.is(bad.json.error.details.field, 'paths[0].healthy');
});

test('renewal issues a new certificate, records endpoint.cert_renewed, and retires the old one', async (t) => {
  const h = await startHarness(t);
  const agent = await enrolledAgent(h, 'ns.ren');
  await agent.heartbeat();
  const oldCert = agent.certPem as string;
  const oldSerial = parseCertificateFacts(oldCert).serial;
  const renewed = await agent.renew();
  t.is(renewed.status, 200);
  t.not(renewed.json.serial, oldSerial);
  t.is(renewed.json.caPem, h.cp.caPem);
  const connector = await h.admin.getConnector('ns.ren');
  t.is(connector.certificate?.serial, renewed.json.serial);
  const entry = (await h.admin.audit({ connectorId: 'ns.ren' })).find(
    (e) => e.type === 'endpoint.cert_renewed',
  );
  t.like(entry?.details, { oldSerial, serial: renewed.json.serial });
  t.is(await metricValue(h, 'cp_cert_renewals_total'), 1);
  t.is((await agent.heartbeat()).status, 200, 'the new certificate works');

  const stale = await raw(
    h,
    '/v1/heartbeat',
    jsonRequest('POST', { paths: [] }, { key: agent.keyPem, cert: oldCert }),
  );
  t.is(stale.status, 401);
  t.is(stale.json.error.code, 'CLIENT_CERTIFICATE_SUPERSEDED');

  // A renewal CSR for another connector's name is refused.
  const key = await generateKeyPairPem('ec-p256');
  const wrong = await raw(
    h,
    '/v1/renew',
    jsonRequest(
      'POST',
      { csrPem: createCsrPem(key.privateKeyPem, 'ns.someone-else') },
      { key: agent.keyPem, cert: agent.certPem },
    ),
  );
  t.is(wrong.status, 400);
  t.is(wrong.json.error.code, 'CSR_SUBJECT_MISMATCH');
});

test('mTLS routes: no certificate, a foreign CA, an expired or not yet valid certificate, a non-connector certificate, each with its code', async (t) => {
  const h = await startHarness(t, { certificateLifetimeSeconds: 3600 });
  const agent = await enrolledAgent(h, 'ns.tls');
  const hour = 3_600_000;
  const crafted = (options: CraftedCertificateOptions) =>
    craftedCertificate(h, agent.keyPem, 'ns.tls', options);
  const serverTime = () => h.clock.now().toISOString();
  const dates = (cert: string) => {
    const facts = parseCertificateFacts(cert);
    return { notBefore: facts.notBefore.toISOString(), notAfter: facts.notAfter.toISOString() };
  };

  const none = await raw(h, '/v1/heartbeat', jsonRequest('POST', { paths: [] }));
  t.is(none.status, 401);
  t.is(none.json.error.code, 'CLIENT_CERTIFICATE_REQUIRED');
  t.regex(none.json.error.message, /^client certificate required/, "the troubleshooting guide's wording");

  // A certificate with the right names from another CA.
  const foreign = await heartbeatWith(h, agent, await crafted({ issuer: 'other' }));
  t.is(foreign.status, 401);
  t.is(foreign.json.error.code, 'CLIENT_CERTIFICATE_UNTRUSTED');
  t.regex(
    foreign.json.error.message,
    /^client certificate rejected: certificate signed by unknown authority \([A-Z_]+\)$/,
  );
  t.regex(foreign.json.error.details.reason, /^UNABLE_TO_|_SELF_SIGNED_/);

  // Signed by the right CA but without the connector SAN URI: the guide's SAN fragment first.
  const notConnector = await heartbeatWith(h, agent, await crafted({ noSan: true }));
  t.is(notConnector.json.error.code, 'CLIENT_CERTIFICATE_REJECTED');
  t.true(
    notConnector.json.error.message.startsWith(
      'client certificate rejected: certificate SAN does not match expected pattern: expected a URI SAN spiffe://vaultpam.local/connector/<connector id>',
    ),
    notConnector.json.error.message,
  );
  t.deepEqual(notConnector.json.error.details, {
    expectedSanUriPrefix: 'spiffe://vaultpam.local/connector/',
  });

  // Issued by the right CA, but outside its real dates: TLS refuses it, and the answer names the
  // certificate's dates and the control plane's time.
  const pastCert = await crafted({ validFrom: -2 * hour, validTo: -hour });
  const tlsExpired = await heartbeatWith(h, agent, pastCert);
  t.is(tlsExpired.status, 401);
  t.is(tlsExpired.json.error.code, 'CLIENT_CERTIFICATE_EXPIRED');
  t.regex(
    tlsExpired.json.error.message,
    /^client certificate rejected: certificate has expired or is not yet valid: it expired at .*; the control plane's time is .* \(CERT_HAS_EXPIRED\)$/,
  );
  t.deepEqual(tlsExpired.json.error.details, { ...dates(pastCert), serverTime: serverTime() });
  const futureCert = await crafted({ validFrom: hour, validTo: 2 * hour });
  const tlsEarly = await heartbeatWith(h, agent, futureCert);
  t.is(tlsEarly.json.error.code, 'CLIENT_CERTIFICATE_NOT_YET_VALID');
  t.regex(
    tlsEarly.json.error.message,
    /^client certificate rejected: certificate has expired or is not yet valid: it is valid from /,
  );
  t.deepEqual(tlsEarly.json.error.details, { ...dates(futureCert), serverTime: serverTime() });

  // The control plane's own clock says the certificate is not valid yet (it runs 10 minutes behind
  // the clock that issued it, more than the 5-minute back-dating), then that it has expired.
  t.is((await agent.heartbeat()).status, 200);
  h.clock.advance(-10 * 60_000);
  const early = await agent.heartbeat();
  t.is(early.json.error.code, 'CLIENT_CERTIFICATE_NOT_YET_VALID');
  t.deepEqual(early.json.error.details, { ...dates(agent.certPem as string), serverTime: serverTime() });
  h.clock.advance(10 * 60_000 + hour);
  const expired = await agent.heartbeat();
  t.is(expired.status, 401);
  t.is(expired.json.error.code, 'CLIENT_CERTIFICATE_EXPIRED');
  t.regex(
    expired.json.error.message,
    /^client certificate rejected: certificate has expired or is not yet valid: /,
  );
  t.deepEqual(expired.json.error.details, { ...dates(agent.certPem as string), serverTime: serverTime() });
  t.is((await raw(h, '/healthz')).status, 200, 'the server keeps serving');

  // Enrolling a second agent for an unknown connector with a real cert does not grant anything.
  const stranger = await makeAgent(h, 'ns.nobody');
  t.is((await stranger.enroll('vpe_x')).json.error.code, 'ENROLLMENT_TOKEN_INVALID');
});

test('a revoked, a replaced and an unknown certificate each get their code, before the body is read', async (t) => {
  const h = await startHarness(t, { heartbeatIntervalSeconds: 10 });
  const agent = await enrolledAgent(h, 'ns.cases');
  const firstCert = agent.certPem as string;

  // Paired again by another copy of the agent before the first ever beat: the first copy is replaced.
  const token = await h.admin.mintToken('ns.cases', { idempotencyKey: 'second' });
  const copy = await makeAgent(h, 'ns.cases');
  t.is((await copy.enroll(token.token)).status, 201);
  const pairedAt = h.clock.now().toISOString();
  const replaced = await heartbeatWith(h, agent, firstCert);
  t.is(replaced.json.error.code, 'CLIENT_CERTIFICATE_SUPERSEDED');
  t.regex(
    replaced.json.error.message,
    /^client certificate rejected: the client certificate was replaced by a newer one \(/,
  );
  t.deepEqual(replaced.json.error.details, { replacedAt: pairedAt });
  // Refused before the body is read: a body the route would refuse changes nothing about that.
  t.is(
    (await heartbeatWith(h, agent, firstCert, { paths: 'not a list' })).json.error.code,
    'CLIENT_CERTIFICATE_SUPERSEDED',
  );

  // A guided recovery revokes the current certificate; before and after the next pairing, and
  // after a restart, that certificate is told it was revoked, by which recovery and when.
  t.is((await copy.heartbeat()).json.state, 'online');
  h.clock.advance(60_000);
  t.is(h.cp.sweep(), 1, 'offline');
  const revokedCert = copy.certPem as string;
  await h.admin.beginRecovery('ns.cases', 'rq-7');
  const revokedAt = h.clock.now().toISOString();
  const expectRevoked = async (what: string) => {
    const res = await heartbeatWith(h, copy, revokedCert);
    t.is(res.status, 401, what);
    t.is(res.json.error.code, 'CLIENT_CERTIFICATE_REVOKED', what);
    t.is(
      res.json.error.message,
      `client certificate rejected: revoked by guided recovery rq-7 at ${revokedAt}`,
      what,
    );
    t.deepEqual(res.json.error.details, { revokedAt, requestId: 'rq-7' }, what);
  };
  await expectRevoked('while recovering');
  const recoveryToken = await h.admin.mintToken('ns.cases', { idempotencyKey: 'rq-7' });
  const recovered = await makeAgent(h, 'ns.cases');
  t.is((await recovered.enroll(recoveryToken.token)).status, 201);
  t.is((await recovered.heartbeat()).json.state, 'online');
  await expectRevoked('after the recovery paired');
  await h.restart();
  await expectRevoked('after a restart');
  t.is(
    (await heartbeatWith(h, agent, firstCert)).json.error.code,
    'CLIENT_CERTIFICATE_SUPERSEDED',
    'a certificate replaced before the recovery is not called revoked',
  );

  // The record deleted (and created again): its certificates belong to no enrolled connector.
  await h.admin.deleteConnector('ns.cases');
  const { connector: created } = await h.admin.ensureConnector('ns.cases', CONFIG);
  const unknown = await recovered.heartbeat();
  t.is(unknown.json.error.code, 'CLIENT_CERTIFICATE_UNKNOWN');
  t.is(
    unknown.json.error.message,
    'client certificate rejected: the client certificate belongs to no enrolled connector',
  );
  t.is((await heartbeatWith(h, copy, revokedCert)).json.error.code, 'CLIENT_CERTIFICATE_UNKNOWN');
  const pending = await h.admin.getConnector('ns.cases');
  t.is(pending.state, 'pending');
  t.is(pending.revision, created.revision, 'refusals wrote nothing to the record');
});

test('a refused certificate is logged at warn and audited with its code, connector, serial and address, never the certificate', async (t) => {
  const h = await startHarness(t);
  const agent = await enrolledAgent(h, 'ns.seen');
  await agent.heartbeat();
  const stale = agent.certPem as string;
  t.is((await agent.renew()).status, 200);
  const foreign = await craftedCertificate(h, agent.keyPem, 'ns.seen', { issuer: 'other' });
  const staleSerial = parseCertificateFacts(stale).serial;
  const foreignSerial = parseCertificateFacts(foreign).serial;
  const { cursor } = await h.admin.listConnectors();

  t.is((await heartbeatWith(h, agent, stale)).json.error.code, 'CLIENT_CERTIFICATE_SUPERSEDED');
  t.is((await heartbeatWith(h, agent, foreign)).json.error.code, 'CLIENT_CERTIFICATE_UNTRUSTED');
  t.is((await raw(h, '/v1/heartbeat', jsonRequest('POST', { paths: [] }))).status, 401, 'no certificate');

  const warnings = h.logs
    .records()
    .filter((r) => r.level === 40 && String(r.msg).startsWith('client certificate rejected'));
  t.is(warnings.length, 2, 'one line per refused certificate; none for a request without one');
  t.like(warnings[0], {
    code: 'CLIENT_CERTIFICATE_SUPERSEDED',
    connectorId: 'ns.seen',
    serial: staleSerial,
    remoteAddress: '127.0.0.1',
  });
  t.regex(
    String(warnings[0]?.msg),
    /^client certificate rejected: the client certificate was replaced by a newer one/,
  );
  t.like(warnings[1], {
    code: 'CLIENT_CERTIFICATE_UNTRUSTED',
    connectorId: 'ns.seen',
    serial: foreignSerial,
    remoteAddress: '127.0.0.1',
  });
  t.regex(String(warnings[1]?.msg), /^client certificate rejected: certificate signed by unknown authority/);
  t.false(h.logs.text().includes('BEGIN CERTIFICATE'), 'no certificate in the log');

  const refused = (await h.admin.audit({ limit: 1000 })).filter(
    (e) => e.type === 'endpoint.certificate_refused',
  );
  t.is(refused.length, 2);
  t.is(refused[0]?.connectorId, 'ns.seen', 'a certificate of this CA is filed under its connector');
  t.like(refused[0]?.details, {
    code: 'CLIENT_CERTIFICATE_SUPERSEDED',
    serial: staleSerial,
    remoteAddress: '127.0.0.1',
  });
  t.is(refused[1]?.connectorId, null, "another CA's certificate only claims a connector");
  t.like(refused[1]?.details, {
    code: 'CLIENT_CERTIFICATE_UNTRUSTED',
    serial: foreignSerial,
    claimedConnectorId: 'ns.seen',
  });
  t.false(JSON.stringify(refused).includes('BEGIN CERTIFICATE'));
  t.deepEqual((await h.admin.changes(cursor)).changes, [], 'no connector changed');
  t.is(
    await metricValue(h, 'cp_client_certificate_refusals_total', 'code="CLIENT_CERTIFICATE_SUPERSEDED"'),
    1,
  );
  t.is(
    await metricValue(h, 'cp_client_certificate_refusals_total', 'code="CLIENT_CERTIFICATE_UNTRUSTED"'),
    1,
  );
});

test('renewAfter is two thirds into the lifetime granted at issuance, also for a short one', async (t) => {
  const h = await startHarness(t, { certificateLifetimeSeconds: 60 });
  const agent = await enrolledAgent(h, 'ns.short');
  // The certificate's notAfter has whole seconds: two thirds of what is left from issuance.
  const twoThirdsFrom = (issuedAt: number) => {
    const notAfter = parseCertificateFacts(agent.certPem as string).notAfter.getTime();
    return new Date(issuedAt + Math.floor(((notAfter - issuedAt) * 2) / 3)).toISOString();
  };
  const issuedAt = h.clock.now().getTime();
  const beat = await agent.heartbeat();
  t.is(beat.json.renewAfter, twoThirdsFrom(issuedAt));
  t.true(
    Date.parse(beat.json.renewAfter) >= issuedAt + 39_000,
    'about 40 s after issuance, not a minute before it (two thirds from the back-dated notBefore)',
  );
  h.clock.advance(30_000);
  t.is((await agent.renew()).status, 200);
  t.is((await agent.heartbeat()).json.renewAfter, twoThirdsFrom(issuedAt + 30_000));
});

test('path names and details are bounded in UTF-8 bytes, each and all together; a refusal names its field and changes nothing', async (t) => {
  const h = await startHarness(t);
  const agent = await enrolledAgent(h, 'ns.bytes');
  t.is((await agent.heartbeat()).status, 200);
  const before = await h.admin.getConnector('ns.bytes');
  // '€' is one UTF-16 unit and three bytes: 43 of them are 43 characters and 129 bytes.
  const refusals: Array<[string, Array<{ name: string; healthy: boolean; detail?: string }>, string]> = [
    ['a name of 129 bytes', [{ name: '€'.repeat(43), healthy: true }], 'paths[0].name'],
    [
      'a detail of 1026 bytes',
      [
        { name: 'tunnel', healthy: true },
        { name: 'db', healthy: false, detail: '€'.repeat(342) },
      ],
      'paths[1].detail',
    ],
    [
      'paths of more than 32 KiB together',
      Array.from({ length: 32 }, (_, i) => ({ name: `p${i}`, healthy: true, detail: 'd'.repeat(1023) })),
      'paths',
    ],
  ];
  for (const [what, paths, field] of refusals) {
    const res = await agent.heartbeat(paths);
    t.is(res.status, 400, what);
    t.is(res.json.error.code, 'INVALID_REQUEST', what);
    t.is(res.json.error.details.field, field, what);
    t.regex(res.json.error.message, /bytes \(UTF-8\)/, what);
  }
  const after = await h.admin.getConnector('ns.bytes');
  t.is(after.revision, before.revision, 'no refusal changed the record');
  t.deepEqual(after.paths, before.paths);

  // At the bounds: 128 bytes of name (42 '€' and 2 more), 1024 of detail, 32 KiB in all.
  const atBounds = [
    { name: `${'€'.repeat(42)}ab`, healthy: true, detail: `${'€'.repeat(341)}a` },
    ...Array.from({ length: 30 }, (_, i) => ({ name: `p${i}`, healthy: true, detail: 'd'.repeat(1024) })),
    { name: 'p30', healthy: true, detail: 'd'.repeat(813) },
  ];
  const total = atBounds.reduce((sum, p) => sum + Buffer.byteLength(p.name) + Buffer.byteLength(p.detail), 0);
  t.is(total, 32 * 1024);
  t.is((await agent.heartbeat(atBounds)).status, 200);
  t.deepEqual(
    (await h.admin.getConnector('ns.bytes')).paths.map((p) => p.name),
    atBounds.map((p) => p.name),
  );
});
