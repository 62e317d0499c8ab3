import test from 'ava';
import {
  createCsrPem,
  generateKeyPairPem,
  issueCertificatePem,
  parseCertificateFacts,
} from '../../src/lib/pki.ts';
import { enrolledAgent, jsonRequest, makeAgent, metricValue, raw, startHarness } from './helpers.ts';

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
  t.is(stale.json.error.code, 'CLIENT_CERTIFICATE_REJECTED');

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

test('mTLS routes: no certificate, a foreign CA, an expired certificate, a non-connector certificate', async (t) => {
  const h = await startHarness(t, { certificateLifetimeSeconds: 3600 });
  const agent = await enrolledAgent(h, 'ns.tls');

  const none = await raw(h, '/v1/heartbeat', jsonRequest('POST', { paths: [] }));
  t.is(none.status, 401);
  t.is(none.json.error.code, 'CLIENT_CERTIFICATE_REQUIRED');
  t.regex(none.json.error.message, /^client certificate required/, "the troubleshooting guide's wording");

  // A certificate with the right names from another CA.
  const otherCaKey = await generateKeyPairPem('ec-p256');
  const now = new Date();
  const otherCa = issueCertificatePem({
    issuerKeyPem: otherCaKey.privateKeyPem,
    subjectPublicKey: otherCaKey.publicKeyPem,
    subject: [{ shortName: 'CN', value: 'evil CA' }],
    notBefore: now,
    notAfter: new Date(now.getTime() + 3_600_000),
    isCa: true,
  });
  // Client certificates for the agent's key, varied one way each from a valid connector certificate.
  const { createPublicKey } = await import('node:crypto');
  const { readFileSync } = await import('node:fs');
  const caKey = readFileSync(`${h.dataDir}/ca-key.pem`, 'utf8');
  const hour = 3_600_000;
  const clientCert = (options: { issuer?: 'other'; noSan?: boolean; validFrom?: number; validTo?: number }) =>
    issueCertificatePem({
      issuerKeyPem: options.issuer === 'other' ? otherCaKey.privateKeyPem : caKey,
      issuerCertPem: options.issuer === 'other' ? otherCa : h.cp.caPem,
      subjectPublicKey: createPublicKey(agent.keyPem),
      subject: [{ shortName: 'CN', value: 'ns.tls' }],
      notBefore: new Date(now.getTime() + (options.validFrom ?? 0)),
      notAfter: new Date(now.getTime() + (options.validTo ?? hour)),
      ...(options.noSan ? {} : { sanUris: ['spiffe://vaultpam.local/connector/ns.tls'] }),
      extendedKeyUsage: ['clientAuth'],
    });
  const heartbeatWith = (cert: string) =>
    raw(h, '/v1/heartbeat', jsonRequest('POST', { paths: [] }, { key: agent.keyPem, cert }));

  const foreign = await heartbeatWith(clientCert({ issuer: 'other' }));
  t.is(foreign.status, 401);
  t.is(foreign.json.error.code, 'CLIENT_CERTIFICATE_REJECTED');
  t.regex(
    foreign.json.error.message,
    /^client certificate rejected: certificate signed by unknown authority/,
  );

  // Signed by the right CA but without the connector SAN URI.
  const notConnector = await heartbeatWith(clientCert({ noSan: true }));
  t.is(notConnector.json.error.code, 'CLIENT_CERTIFICATE_REJECTED');

  // Issued by the right CA, but its real notAfter has passed: TLS verification refuses it.
  const tlsExpired = await heartbeatWith(clientCert({ validFrom: -2 * hour, validTo: -hour }));
  t.is(tlsExpired.status, 401);
  t.is(tlsExpired.json.error.code, 'CLIENT_CERTIFICATE_REJECTED');
  t.regex(tlsExpired.json.error.message, /certificate has expired or is not yet valid \(CERT_HAS_EXPIRED\)/);

  // The control plane's own clock says the certificate has expired.
  t.is((await agent.heartbeat()).status, 200);
  h.clock.advance(3_600_000);
  const expired = await agent.heartbeat();
  t.is(expired.status, 401);
  t.is(expired.json.error.code, 'CLIENT_CERTIFICATE_REJECTED');
  t.regex(expired.json.error.message, /certificate has expired or is not yet valid/);
  t.is((await raw(h, '/healthz')).status, 200, 'the server keeps serving');

  // Enrolling a second agent for an unknown connector with a real cert does not grant anything.
  const stranger = await makeAgent(h, 'ns.nobody');
  t.is((await stranger.enroll('vpe_x')).json.error.code, 'ENROLLMENT_TOKEN_INVALID');
});
