// Issue 12, item 9: handshake failures read "tls handshake failed: <plain cause>" and TLS alerts
// about the client certificate read like the guide ("client certificate required", "client
// certificate rejected: ..."), never with OpenSSL's raw text (source paths, a literal "\n"). Real
// servers: a plain HTTP port, a TLS server that offers only old versions, node mTLS servers, and
// `openssl s_server` (which sends the alerts node's servers never send).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import { issueConnectorCert, makeCa, type TestCa } from './fixtures.ts';
import { agentConfig, prepareConnector, runAgent, startTestControlPlane } from './harness.ts';
import {
  alertingPort,
  clientFor,
  endsWithin,
  heartbeat,
  isPlainLine,
  opensslVerifyingServer,
  plainHttpPort,
  rejection,
  serverCertificate,
  tlsPort,
  urlOf,
} from './transport-servers.ts';

let serverCa: TestCa;
let clientCa: TestCa;
test.before(async () => {
  serverCa = await makeCa('Handshake Server CA');
  clientCa = await makeCa('Handshake Client CA');
});

/** Whether this OpenSSL still lets a server offer TLS 1.1 (at security level 0). */
function oldTlsAvailable(): boolean {
  try {
    createSecureContext({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
    return true;
  } catch {
    return false;
  }
}

const ENDS_WITHIN_MS = 20_000;

test('a plain HTTP port: "tls handshake failed: ... does not speak TLS (plain HTTP port?)", no OpenSSL text', async (t) => {
  const port = await plainHttpPort(t);
  const client = clientFor(t, urlOf(port), { caPem: serverCa.certPem });
  const error = await rejection(client.heartbeat(heartbeat));
  t.is(error.code, 'TLS_HANDSHAKE_FAILED');
  t.true(error.temporary);
  t.true(
    error.message.startsWith(
      `tls handshake failed: the server at 127.0.0.1:${port} does not speak TLS (plain HTTP port?)`,
    ),
    error.message,
  );
  t.true(isPlainLine(error.message), error.message);
});

test('first boot against a plain HTTP port: the termination message is one plain line', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.plain-http';
  const prepared = await prepareConnector(t, control, connectorId);
  const port = await plainHttpPort(t);
  const config = agentConfig({
    connectorId,
    controlPlaneUrl: urlOf(port),
    caFile: control.caFile,
    tokenFile: prepared.tokenFile,
    dataDir: prepared.dataDir,
    terminationLog: join(prepared.dataDir, 'termination-log'),
    giveUpAfterMs: 200,
    retryInitialMs: 10,
    retryMaxMs: 40,
  });
  const { agent, logs } = runAgent(t, config);
  const outcome = await endsWithin(agent.done, ENDS_WITHIN_MS, 'the agent');
  t.is(outcome.exitCode, 14);
  const text = await readFile(config.terminationLog, 'utf8');
  const reason = (JSON.parse(text) as { reason: string }).reason;
  t.regex(
    reason,
    /last error TLS_HANDSHAKE_FAILED: tls handshake failed: the server at .* does not speak TLS/,
  );
  t.true(isPlainLine(reason), reason);
  t.true(
    logs.records().every((record) => isPlainLine(String(record.msg))),
    'no OpenSSL text in any log line either',
  );
  assertNoSecrets(t, 'termination message', text, [prepared.token]);
});

(oldTlsAvailable() ? test : test.skip)(
  'a server that offers only TLS 1.1: "tls handshake failed: no TLS version in common", naming the version it offers',
  async (t) => {
    const port = await tlsPort(t, {
      ...(await serverCertificate(serverCa)),
      minVersion: 'TLSv1',
      maxVersion: 'TLSv1.1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    const client = clientFor(t, urlOf(port), { caPem: serverCa.certPem });
    const error = await rejection(client.heartbeat(heartbeat));
    t.is(error.code, 'TLS_HANDSHAKE_FAILED');
    t.is(
      error.message,
      `tls handshake failed: no TLS version in common: the server at 127.0.0.1:${port} offers TLSv1.1 at most ` +
        'and this agent requires TLSv1.2 or later',
    );
  },
);

/** A node TLS server that requires a client certificate of clientCa, at most `version`. */
async function requiringClientCertificate(
  t: ExecutionContext,
  version: 'TLSv1.2' | 'TLSv1.3',
): Promise<number> {
  return tlsPort(t, {
    ...(await serverCertificate(serverCa)),
    requestCert: true,
    rejectUnauthorized: true,
    ca: clientCa.certPem,
    maxVersion: version,
  });
}

test('a server that requires a client certificate in the TLSv1.3 handshake, before pairing: "client certificate required", not retried', async (t) => {
  // TLS 1.3: the server reads the client's certificate after this agent verified it, and its alert
  // is encrypted: the server's own word, which retrying cannot change.
  const port = await requiringClientCertificate(t, 'TLSv1.3');
  const client = clientFor(t, urlOf(port), { caPem: serverCa.certPem });
  const error = await rejection(client.heartbeat(heartbeat));
  t.is(error.code, 'CLIENT_CERTIFICATE_REQUIRED');
  t.false(error.temporary, 'the server asks for what this agent does not have: retrying cannot change it');
  t.is(
    error.message,
    `client certificate required: the server at 127.0.0.1:${port} asked for a client certificate in the TLS ` +
      'handshake and received none (TLS alert 116: certificate required): this agent has no certificate ' +
      'before it pairs, so the enrollment request must be let through without one',
  );
  t.true(isPlainLine(error.message), error.message);
});

test('a server that requires a client certificate in the TLSv1.2 handshake: worded so, but retried, since its alert comes before the server proved itself', async (t) => {
  const port = await requiringClientCertificate(t, 'TLSv1.2');
  const client = clientFor(t, urlOf(port), { caPem: serverCa.certPem });
  const error = await rejection(client.heartbeat(heartbeat));
  t.is(error.code, 'TLS_CLIENT_CERTIFICATE_REQUIRED');
  t.true(error.temporary);
  t.regex(
    error.message,
    /^client certificate required: the server at 127\.0\.0\.1:\d+ refused the TLS handshake with alert 40 \(handshake failure\) before it had proved itself/,
  );
  t.true(isPlainLine(error.message), error.message);
});

test('found by the review of dbedb55: one forged alert 116 answering the ClientHello stops no agent, paired or pairing; it is retried', async (t) => {
  // Anyone on the network path can send a plain-text alert record before the server proved itself:
  // read as the server's demand, it stopped a paired agent for good (exit 12) and failed a recovery.
  const port = await alertingPort(t, 116);
  const pairing = clientFor(t, urlOf(port), { caPem: serverCa.certPem });
  const paired = clientFor(t, urlOf(port), { caPem: serverCa.certPem });
  paired.setIdentity(await issueConnectorCert(clientCa, { connectorId: 'team-a.forged-alert' }));
  for (const [who, client] of [
    ['pairing', pairing],
    ['paired', paired],
  ] as const) {
    const error = await rejection(client.heartbeat(heartbeat));
    t.is(error.code, 'TLS_CLIENT_CERTIFICATE_REQUIRED', who);
    t.true(error.temporary, `${who}: retried`);
    t.regex(
      error.message,
      /before it had proved itself, so anyone on the network path could have sent it/,
      who,
    );
  }
});

test('TLS 1.2 handshake_failure before any key (no cipher suite in common) is not read as client certificate required, though the server requires one', async (t) => {
  const port = await tlsPort(t, {
    ...(await serverCertificate(serverCa)),
    requestCert: true,
    rejectUnauthorized: true,
    ca: clientCa.certPem,
    maxVersion: 'TLSv1.2',
    // RSA key exchange with an EC certificate: no cipher suite the server can use.
    ciphers: 'AES128-SHA',
  });
  const client = clientFor(t, urlOf(port), { caPem: serverCa.certPem });
  const error = await rejection(client.heartbeat(heartbeat));
  t.is(error.code, 'TLS_HANDSHAKE_FAILED');
  t.true(error.temporary);
  t.regex(
    error.message,
    /aborted the handshake \(alert handshake failure\): no cipher suite or signature algorithm in common/,
  );
});

test('a node mTLS server that refuses the client certificate closes the connection: "tls handshake failed" naming the certificate', async (t) => {
  const port = await tlsPort(t, {
    ...(await serverCertificate(serverCa)),
    requestCert: true,
    rejectUnauthorized: true,
    ca: clientCa.certPem,
  });
  const foreignCa = await makeCa('Some Other Client CA');
  const identity = await issueConnectorCert(foreignCa, { connectorId: 'team-a.foreign' });
  const client = clientFor(t, urlOf(port), { caPem: serverCa.certPem });
  client.setIdentity(identity);
  const error = await rejection(client.heartbeat(heartbeat));
  t.is(error.code, 'TLS_HANDSHAKE_FAILED');
  t.true(error.temporary, 'a closed connection is not read as the server requiring a certificate');
  t.regex(
    error.message,
    new RegExp(
      `^tls handshake failed: the server at 127\\.0\\.0\\.1:${port} closed the connection .*it probably refused this connector's client certificate`,
    ),
  );
  assertNoSecrets(t, 'error message', error.message, [identity.keyPem]);
});

test('a TLS alert "unknown ca" for the client certificate: "client certificate rejected: certificate signed by unknown authority"', async (t) => {
  const server = await serverCertificate(serverCa);
  const port = await opensslVerifyingServer(
    t,
    { certPem: server.cert, keyPem: server.key },
    clientCa.certPem,
  );
  const foreignCa = await makeCa('Unknown Client CA');
  const client = clientFor(t, urlOf(port), { caPem: serverCa.certPem });
  client.setIdentity(await issueConnectorCert(foreignCa, { connectorId: 'team-a.unknown-ca' }));
  const error = await rejection(client.heartbeat(heartbeat));
  t.is(error.code, 'TLS_CLIENT_CERTIFICATE_REJECTED');
  t.true(
    error.message.startsWith('client certificate rejected: certificate signed by unknown authority'),
    error.message,
  );
  t.regex(
    error.message,
    new RegExp(
      `the TLS handshake was refused by the peer at 127\\.0\\.0\\.1:${port} with alert 48 \\(unknown ca\\): ` +
        'the certificate was not accepted \\(e\\.g\\. a proxy terminating TLS, or a control plane trusting another CA\\)',
    ),
  );
  t.true(error.temporary, 'retried: a proxy or CA rollout may be fixed');
  t.true(isPlainLine(error.message), error.message);
});

test('a TLS alert "certificate expired" for the client certificate: "client certificate rejected: certificate expired"', async (t) => {
  const server = await serverCertificate(serverCa);
  const port = await opensslVerifyingServer(
    t,
    { certPem: server.cert, keyPem: server.key },
    clientCa.certPem,
  );
  const client = clientFor(t, urlOf(port), { caPem: serverCa.certPem });
  client.setIdentity(
    await issueConnectorCert(clientCa, {
      connectorId: 'team-a.expired',
      notBefore: new Date(Date.now() - 7_200_000),
      notAfter: new Date(Date.now() - 3_600_000),
    }),
  );
  const error = await rejection(client.heartbeat(heartbeat));
  t.is(error.code, 'TLS_CLIENT_CERTIFICATE_REJECTED');
  t.true(error.message.startsWith('client certificate rejected: certificate expired'), error.message);
  t.true(isPlainLine(error.message), error.message);
});

// Each alert a server refusing the client certificate may send, as node 26 raises it (e.g.
// ERR_SSL_SSL/TLS_ALERT_BAD_CERTIFICATE, "ssl/tls alert bad certificate ... SSL alert number 42"):
// the reason says the handshake was refused with that alert and the certificate was not accepted,
// and the error stays retried (a proxy's client CA may be fixed).
for (const [alert, name, cause] of [
  [42, 'bad certificate', "bad certificate: the server refused this connector's certificate"],
  [
    44,
    'certificate revoked',
    "certificate revoked: the server says this connector's certificate was revoked",
  ],
  [46, 'certificate unknown', "certificate unknown: the server refused this connector's certificate"],
  [49, 'access denied', "access denied: the server refused this connector's certificate"],
] as const) {
  test(`a TLS alert ${alert} (${name}) for the client certificate: "client certificate rejected", refused by the peer with that alert, retried`, async (t) => {
    const port = await alertingPort(t, alert);
    const client = clientFor(t, urlOf(port), { caPem: serverCa.certPem });
    client.setIdentity(await issueConnectorCert(clientCa, { connectorId: `team-a.alert-${alert}` }));
    const error = await rejection(client.heartbeat(heartbeat));
    t.is(error.code, 'TLS_CLIENT_CERTIFICATE_REJECTED');
    t.true(error.temporary);
    t.is(
      error.message,
      `client certificate rejected: ${cause}: the TLS handshake was refused by the peer at 127.0.0.1:${port} ` +
        `with alert ${alert} (${name}): the certificate was not accepted (e.g. a proxy terminating TLS, or a ` +
        'control plane trusting another CA)',
    );
    t.true(isPlainLine(error.message), error.message);
  });
}

// While pairing the agent has no certificate and presents none: the same alerts refuse no
// certificate of the connector's, and said "the certificate was not accepted".
for (const [alert, name] of [
  [42, 'bad certificate'],
  [46, 'certificate unknown'],
  [49, 'access denied'],
] as const) {
  test(`a TLS alert ${alert} (${name}) to an agent without a certificate (pairing): no certificate presented, the handshake refused with that alert, retried`, async (t) => {
    const port = await alertingPort(t, alert);
    const client = clientFor(t, urlOf(port), { caPem: serverCa.certPem });
    const error = await rejection(client.heartbeat(heartbeat));
    t.is(error.code, 'TLS_CLIENT_CERTIFICATE_REJECTED');
    t.true(error.temporary);
    t.true(
      error.message.startsWith(
        'tls handshake refused: this agent presented no client certificate (it has none before it pairs), and ' +
          `the server at 127.0.0.1:${port} refused the handshake with alert ${alert} (${name}): `,
      ),
      error.message,
    );
    t.notRegex(error.message, /certificate was not accepted|this connector's certificate/);
    t.true(isPlainLine(error.message), error.message);
  });
}
