// Each cause of the control plane refusing the connector's certificate, set up for real against the
// real control plane: a guided recovery revoking it, a renewal replacing it, the control plane's
// clock ahead or behind, a TLS-terminating proxy in between, the control plane's SAN prefix changed.
// Each fails closed with its own code, exit code and next step; only the causes that make the
// identity useless for good record the refusal (and let a later token replace the identity).
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer, Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket, TlsOptions } from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import type { AgentConfig } from '../../src/agent/config.ts';
import { ControlPlaneClient } from '../../src/agent/control-plane-client.ts';
import { NEXT_STEPS } from '../../src/agent/failure.ts';
import { identityPaths } from '../../src/agent/identity-files.ts';
import type { TerminationMessage } from '../../src/contract/agent-process.ts';
import { startControlPlane } from '../../src/controlplane/server.ts';
import { systemClock } from '../../src/lib/clock.ts';
import { createCsrPem, type KeyAlgorithm, parseCertificateFacts } from '../../src/lib/pki.ts';
import { selfSignedCertificate } from '../helpers/certificates.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import { makeCa, tempDir } from './fixtures.ts';
import {
  agentConfig,
  enrolledConnector,
  prepareConnector,
  recordsMatching,
  runAgent,
  startTestControlPlane,
  type TestControlPlane,
  waitFor,
} from './harness.ts';
import { alertingPort, opensslVerifyingServer, serverCertificate } from './transport-servers.ts';

const HOUR = 3_600_000;

async function termination(config: AgentConfig): Promise<TerminationMessage> {
  return JSON.parse(await readFile(config.terminationLog, 'utf8')) as TerminationMessage;
}

async function rejectionCode(dataDir: string): Promise<string | undefined> {
  try {
    return (JSON.parse(await readFile(identityPaths(dataDir).rejection, 'utf8')) as { code: string }).code;
  } catch {
    return undefined;
  }
}

async function setAside(dataDir: string): Promise<string[]> {
  return (await readdir(dataDir)).filter((name) => name.startsWith('identity.rejected-'));
}

/** The identity files' content, to show a refusal left them as they were. */
async function identitySnapshot(dataDir: string): Promise<string[]> {
  const paths = identityPaths(dataDir);
  return Promise.all([paths.key, paths.cert, paths.ca, paths.metadata].map((p) => readFile(p, 'utf8')));
}

/** The identity is as it was, nothing recorded against it, nothing moved aside. */
async function assertIdentityKept(t: ExecutionContext, dataDir: string, before: string[]): Promise<void> {
  t.deepEqual(await identitySnapshot(dataDir), before, 'the identity files are untouched');
  t.is(await rejectionCode(dataDir), undefined, 'no refusal is recorded against the identity');
  t.deepEqual(await setAside(dataDir), [], 'nothing is moved aside');
}

/** Lets a paired connector go offline on the control plane's clock, so a recovery may begin. */
async function offline(control: TestControlPlane, connectorId: string): Promise<void> {
  control.clock.offsetMs = 60_000;
  await waitFor('offline', async () => {
    control.cp.sweep();
    return (await control.admin.getConnector(connectorId)).state === 'offline';
  });
}

test('revoked by a guided recovery: IDENTITY_REJECTED names the recovery; its token, mounted afterwards, replaces the identity once', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.revoked';
  const paired = await enrolledConnector(t, control, connectorId);
  await rm(paired.tokenFile);
  await offline(control, connectorId);
  await control.admin.beginRecovery(connectorId, 'req-7');

  const first = runAgent(t, paired.config);
  t.is((await first.agent.done).exitCode, 13);
  const message = await termination(paired.config);
  t.is(message.code, 'IDENTITY_REJECTED');
  t.is(message.failureClass, 'IdentityLoss');
  t.regex(
    message.reason,
    /^this connector's certificate \(serial [0-9a-fA-F]+\) was revoked by guided recovery req-7 at /,
  );
  t.regex(message.reason, /401 CLIENT_CERTIFICATE_REVOKED/);
  t.is(message.nextStep, NEXT_STEPS.identityRejected);
  t.is(await rejectionCode(paired.dataDir), 'CLIENT_CERTIFICATE_REVOKED');

  const minted = await control.admin.mintToken(connectorId, { idempotencyKey: 'recovery-req-7' });
  await writeFile(paired.tokenFile, minted.token, { mode: 0o600 });
  const second = runAgent(t, paired.config);
  await waitFor('paired again and heartbeating', () => second.agent.status().heartbeatsAccepted > 0);
  t.is(second.counts.enroll, 1, 'paired exactly once');
  t.is((await setAside(paired.dataDir)).length, 1, 'the revoked identity is kept aside');
  t.is((await second.agent.stop()).exitCode, 0);
  assertNoSecrets(t, 'agent logs', first.logs.text() + second.logs.text(), [
    paired.token,
    minted.token,
    paired.keyPem,
  ]);
});

test('replaced by a newer certificate (renewed by another copy): IDENTITY_REJECTED says so', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.superseded';
  const paired = await enrolledConnector(t, control, connectorId);
  // Another copy of this identity renews: the control plane now holds a certificate this disk lacks.
  const copy = new ControlPlaneClient({
    baseUrl: control.cp.url,
    caPem: control.cp.caPem,
    caFile: undefined,
    requestTimeoutMs: 5_000,
    clock: systemClock,
  });
  copy.setIdentity({
    keyPem: paired.keyPem,
    certPem: await readFile(identityPaths(paired.dataDir).cert, 'utf8'),
  });
  await copy.renew({ csrPem: createCsrPem(paired.keyPem, connectorId) });
  copy.close();

  const { agent, counts } = runAgent(t, paired.config);
  t.is((await agent.done).exitCode, 13);
  const message = await termination(paired.config);
  t.is(message.code, 'IDENTITY_REJECTED');
  t.regex(message.reason, /was replaced by a newer certificate at .*401 CLIENT_CERTIFICATE_SUPERSEDED/);
  t.is(await rejectionCode(paired.dataDir), 'CLIENT_CERTIFICATE_SUPERSEDED');
  t.is(counts.enroll, 0);
});

for (const [direction, offsetMs, refusal] of [
  ['ahead of', 2 * HOUR, 'CLIENT_CERTIFICATE_EXPIRED'],
  ['behind', -2 * HOUR, 'CLIENT_CERTIFICATE_NOT_YET_VALID'],
] as const) {
  test(`the control plane's clock ${direction} this node's: CLOCK_SKEW, exit 14, the identity kept; with the clocks agreeing it reconnects`, async (t) => {
    // One-hour certificates: two hours apart, the clocks disagree about the validity either way.
    const control = await startTestControlPlane(t, { certificateLifetimeSeconds: 3600 });
    const connectorId = `team-a.skew-${offsetMs > 0 ? 'ahead' : 'behind'}`;
    const paired = await enrolledConnector(t, control, connectorId);
    const before = await identitySnapshot(paired.dataDir);
    const serial = parseCertificateFacts(before[1] ?? '').serial;
    control.clock.offsetMs = offsetMs;

    const { agent, logs, counts } = runAgent(t, paired.config);
    const outcome = await agent.done;
    t.is(outcome.exitCode, 14);
    const message = await termination(paired.config);
    t.is(message.failureClass, 'Reconnect', 'not IdentityLoss: the operator must not start a recovery');
    t.is(message.code, 'CLOCK_SKEW');
    t.regex(
      message.reason,
      new RegExp(
        `^certificate has expired or is not yet valid: clock skew: the control plane's clock is (2 h 0 min|1 h 59 min) ${direction} this node's`,
      ),
    );
    t.regex(message.reason, new RegExp(refusal));
    t.regex(
      message.reason,
      offsetMs > 0 ? /if this node's clock is right, the identity is intact/ : /the identity is intact/,
    );
    // Only a certificate the control plane calls expired may be gone, if the control plane's clock
    // is the right one: the next step says so instead of promising "never a recovery".
    t.is(message.nextStep, offsetMs > 0 ? NEXT_STEPS.clockSkewExpired : NEXT_STEPS.clockSkew);
    t.regex(message.nextStep, /timedatectl/);
    if (offsetMs > 0) {
      t.regex(
        message.reason,
        /if the control plane's clock is right, the certificate has expired and a guided recovery follows once the clock is fixed/,
      );
      t.notRegex(message.nextStep, /do not start a guided recovery/);
    }
    t.is(recordsMatching(logs, /^fail closed: Reconnect \(CLOCK_SKEW\)/).length, 1);
    t.is(counts.enroll, 0);
    await assertIdentityKept(t, paired.dataDir, before);

    control.clock.offsetMs = 0;
    const again = runAgent(t, paired.config);
    await waitFor('reconnected', () => again.agent.status().heartbeatsAccepted > 0);
    t.is(again.agent.status().serial, serial, 'the same identity');
    t.is(again.counts.enroll, 0);
    t.is((await again.agent.stop()).exitCode, 0);
  });
}

/** nginx's answer (ssl_verify_client) to a request whose connection carried no client certificate. */
const NGINX_NO_CERTIFICATE_PAGE = `<html>
<head><title>400 No required SSL certificate was sent</title></head>
<body>
<center><h1>400 Bad Request</h1></center>
<center>No required SSL certificate was sent</center>
<hr><center>nginx</center>
</body>
</html>
`;

/**
 * A TLS-terminating HTTPS proxy in front of the control plane: it forwards requests, not
 * certificates. With `requiresCertificate`, the paths it names are answered as nginx requiring a
 * client certificate answers them when the handshake brought none (it never asks for one here, as a
 * proxy whose certificate request is configured on another server block): its HTML 400 page.
 */
async function tlsTerminatingProxy(
  t: ExecutionContext,
  upstream: string,
  upstreamCaPem: string,
  requiresCertificate: (path: string) => boolean = () => false,
  handshake: HandshakeDemand = {},
) {
  const serving = await selfSignedCertificate({
    commonName: 'proxy',
    sanIps: ['127.0.0.1'],
    ...(handshake.keyAlgorithm ? { keyAlgorithm: handshake.keyAlgorithm } : {}),
  });
  const forward = new HttpsAgent({ ca: upstreamCaPem });
  const tls = handshake.options ?? {};
  const server = createHttpsServer({ key: serving.keyPem, cert: serving.certPem, ...tls }, (req, res) => {
    const presented = Object.keys((req.socket as TLSSocket).getPeerCertificate()).length > 0;
    if (!presented && requiresCertificate(req.url ?? '/')) {
      req.resume();
      res.writeHead(400, { 'content-type': 'text/html', server: 'nginx' }).end(NGINX_NO_CERTIFICATE_PAGE);
      return;
    }
    const target = new URL(req.url ?? '/', upstream);
    const outbound = httpsRequest(
      target,
      { method: req.method, headers: { ...req.headers, host: target.host }, agent: forward },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    outbound.on('error', () => res.writeHead(502).end());
    req.pipe(outbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    forward.destroy();
    server.closeAllConnections();
    server.close();
  });
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, caPem: serving.certPem };
}

/**
 * What the proxy asks of the TLS handshake itself (node's tls server options: requestCert and
 * rejectUnauthorized make it refuse a handshake without a client certificate by a TLS alert), and
 * the key type of its own certificate.
 */
interface HandshakeDemand {
  options?: TlsOptions;
  keyAlgorithm?: KeyAlgorithm;
}

/** A connector prepared to pair through tlsTerminatingProxy, and the agent configuration for it. */
async function behindProxy(
  t: ExecutionContext,
  control: TestControlPlane,
  connectorId: string,
  requiresCertificate?: (path: string) => boolean,
  handshake?: HandshakeDemand,
): Promise<{ prepared: Awaited<ReturnType<typeof prepareConnector>>; config: AgentConfig }> {
  const prepared = await prepareConnector(t, control, connectorId);
  const config = await proxiedConfig(t, control, connectorId, prepared, requiresCertificate, handshake);
  return { prepared, config };
}

/** The agent configuration of `files` pointed at a new tlsTerminatingProxy in front of `control`. */
async function proxiedConfig(
  t: ExecutionContext,
  control: TestControlPlane,
  connectorId: string,
  files: { tokenFile: string; dataDir: string },
  requiresCertificate?: (path: string) => boolean,
  handshake?: HandshakeDemand,
): Promise<AgentConfig> {
  const proxy = await tlsTerminatingProxy(
    t,
    control.cp.url,
    control.cp.caPem,
    requiresCertificate,
    handshake,
  );
  const proxyCaFile = join(await tempDir(t), 'proxy-ca.pem');
  await writeFile(proxyCaFile, proxy.caPem);
  return agentConfig({
    connectorId,
    controlPlaneUrl: proxy.url,
    caFile: proxyCaFile,
    tokenFile: files.tokenFile,
    dataDir: files.dataDir,
    terminationLog: join(files.dataDir, 'termination-log'),
    // Without the agent reading a proxy's page or alert, it was an error retried until this gave up
    // (exit 14).
    giveUpAfterMs: 3_000,
  });
}

// The agent had its certificate and whatever answers at --control-plane-url received none: the
// control plane's own 401 behind a proxy that terminates TLS, or the page of a proxy that requires a
// client certificate itself (before, a generic HTTP_400 retried at every heartbeat).
for (const { title, connectorId, requiresCertificate, answer } of [
  {
    title:
      'a TLS-terminating proxy drops the client certificate: CLIENT_CERTIFICATE_NOT_RECEIVED, Configuration exit 12, the identity kept',
    connectorId: 'team-a.behind-proxy',
    requiresCertificate: undefined,
    answer: /received no client certificate.*401 CLIENT_CERTIFICATE_REQUIRED/,
  },
  {
    title:
      "a proxy's HTML page for a missing client certificate on a heartbeat: the guide's client certificate required, exit 12, not a retried HTTP_400",
    connectorId: 'team-a.behind-nginx',
    requiresCertificate: (path: string) => path !== '/v1/enroll',
    answer:
      /a proxy in front of the control plane answered \/v1\/heartbeat with HTTP 400 "No required SSL certificate was sent"/,
  },
]) {
  test(title, async (t) => {
    const control = await startTestControlPlane(t);
    const { prepared, config } = await behindProxy(t, control, connectorId, requiresCertificate);
    // Pairing needs no client certificate and passes; the first heartbeat arrives without one.
    const { agent, logs, counts } = runAgent(t, config);
    t.is((await agent.done).exitCode, 12);
    t.is(counts.enroll, 1);
    const message = await termination(config);
    t.is(message.code, 'CLIENT_CERTIFICATE_NOT_RECEIVED');
    t.is(String(message.failureClass), 'Configuration');
    t.regex(
      message.reason,
      /^client certificate required: the control plane at https:\/\/127\.0\.0\.1:\d+ received no client certificate/,
    );
    t.regex(message.reason, answer);
    t.notRegex(message.reason, /HTTP_400|<html|<center/i, 'no generic code, no markup');
    // The proxy never asked for the certificate: the agent had one to present, it did not present it.
    t.regex(message.reason, /although this agent had this connector's certificate \(serial \w+\) to present/);
    t.notRegex(message.reason, /agent presented/);
    t.is(message.nextStep, NEXT_STEPS.clientCertificateNotReceived);
    t.regex(message.nextStep, /TLS passthrough/);
    t.is(recordsMatching(logs, /^heartbeat failed: /).length, 0, 'failed closed at once, not retried');
    t.is(await rejectionCode(prepared.dataDir), undefined);
    t.deepEqual(await setAside(prepared.dataDir), []);
    t.truthy(await stat(identityPaths(prepared.dataDir).key), 'the identity stays');
    assertNoSecrets(t, 'agent logs', logs.text(), [prepared.token]);
  });
}

/**
 * The agent behind a proxy requiring a client certificate on the enrollment stops at its first try
 * with exit 11 CLIENT_CERTIFICATE_REQUIRED, its reason matching `reason`, and the token unspent.
 */
async function assertEnrollmentNeedsNoCertificate(
  t: ExecutionContext,
  control: TestControlPlane,
  connectorId: string,
  { prepared, config }: { prepared: { token: string }; config: AgentConfig },
  reason: RegExp,
): Promise<void> {
  const { agent, logs, counts } = runAgent(t, config);
  t.is((await agent.done).exitCode, 11);
  const message = await termination(config);
  t.is(message.code, 'CLIENT_CERTIFICATE_REQUIRED');
  t.is(String(message.failureClass), 'FirstBootBootstrap');
  t.regex(message.reason, reason);
  t.notRegex(message.reason, /SSL routines|\.c:\d+|<html/, 'no OpenSSL text, no markup');
  t.is(message.nextStep, NEXT_STEPS.enrollmentClientCertificateRequired);
  t.regex(message.nextStep, /token is unspent/);
  t.is(counts.enroll, 1, 'not retried');
  t.is(recordsMatching(logs, /^enrollment request/).length, 0, 'no retry announced');
  const record = await control.admin.getConnector(connectorId);
  t.is(record.state, 'pending', 'the control plane never saw the request');
  assertNoSecrets(t, 'agent logs', logs.text(), [prepared.token]);
}

test("a proxy's HTML page for a missing client certificate on the enrollment: client certificate required, exit 11, the token unspent", async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.enroll-behind-nginx';
  await assertEnrollmentNeedsNoCertificate(
    t,
    control,
    connectorId,
    await behindProxy(t, control, connectorId, () => true),
    /^client certificate required: a proxy in front of the control plane answered \/v1\/enroll with HTTP 400 "No required SSL certificate was sent"/,
  );
});

// The same refusal as a TLS alert: a proxy (node's tls server with requestCert and
// rejectUnauthorized) that requires a client certificate in the handshake and receives none aborts it
// with certificate_required (116, TLS 1.3) or, in TLS 1.2, handshake_failure (40) after the key
// exchange. Node 26 raises ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED ("tlsv13 alert certificate
// required ... SSL alert number 116") after the client's handshake completed, and EPROTO ("ssl/tls
// alert handshake failure ... SSL alert number 40") during it. Both were retried until
// --give-up-after (exit 14, CONTROL_PLANE_UNREACHABLE) while the HTTP forms stop at once.
// Only TLS 1.3's: there the alert comes after the agent verified the server, encrypted. TLS 1.2's
// comes before the server's Finished, in plain text anyone on the path could send, so it is retried
// (transport-tls.test.ts: a forged alert stops no agent).
for (const { version, alert } of [{ version: 'TLSv1.3', alert: '116: certificate required' }] as const) {
  test(`a proxy that requires a client certificate in the ${version} handshake, on the enrollment: client certificate required, exit 11, the token unspent`, async (t) => {
    const control = await startTestControlPlane(t);
    const connectorId = `team-a.enroll-alert-${version === 'TLSv1.3' ? '13' : '12'}`;
    await assertEnrollmentNeedsNoCertificate(
      t,
      control,
      connectorId,
      await behindProxy(t, control, connectorId, undefined, {
        options: { requestCert: true, rejectUnauthorized: true, ca: control.cp.caPem, maxVersion: version },
      }),
      new RegExp(
        '^enrollment impossible: client certificate required: the server at 127\\.0\\.0\\.1:\\d+ asked for a ' +
          `client certificate in the TLS handshake and received none \\(TLS alert ${alert}\\)`,
      ),
    );
  });
}

test("a paired agent whose certificate the proxy's TLS 1.3 certificate request does not admit: client certificate required, exit 12, the identity kept", async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.alert-not-admitted';
  const paired = await enrolledConnector(t, control, connectorId);
  const before = await identitySnapshot(paired.dataDir);
  // An RSA proxy that accepts only RSA signatures: OpenSSL has nothing to sign with the connector's
  // EC key, so it sends an empty Certificate and the proxy answers certificate_required.
  const config = await proxiedConfig(t, control, connectorId, paired, undefined, {
    keyAlgorithm: 'rsa-2048',
    options: {
      requestCert: true,
      rejectUnauthorized: true,
      ca: control.cp.caPem,
      sigalgs: 'rsa_pss_rsae_sha256:RSA+SHA256',
    },
  });
  const { agent, logs } = runAgent(t, config);
  t.is((await agent.done).exitCode, 12);
  const message = await termination(config);
  t.is(message.code, 'CLIENT_CERTIFICATE_NOT_RECEIVED');
  t.is(String(message.failureClass), 'Configuration');
  t.regex(
    message.reason,
    /^client certificate required: the server at 127\.0\.0\.1:\d+ asked for a client certificate in the TLS handshake and received none \(TLS alert 116: certificate required\), although this agent had this connector's certificate \(serial \w+\) to present/,
  );
  t.is(message.nextStep, NEXT_STEPS.clientCertificateNotAdmitted);
  t.is(recordsMatching(logs, /^heartbeat failed: /).length, 0, 'failed closed at once, not retried');
  await assertIdentityKept(t, paired.dataDir, before);
});

/**
 * A paired connector whose agent is pointed at openssl s_server verifying client certificates
 * against another CA (it refuses the connector's certificate with alert 48), and its configuration.
 */
async function behindAlertingServer(
  t: ExecutionContext,
  connectorId: string,
  limits: Pick<AgentConfig, 'giveUpAfterMs'> & Partial<Pick<AgentConfig, 'giveUpOnRefusalAfterMs'>>,
) {
  const control = await startTestControlPlane(t);
  const paired = await enrolledConnector(t, control, connectorId);
  const before = await identitySnapshot(paired.dataDir);
  const serverCa = await makeCa('Terminating Proxy CA');
  const server = await serverCertificate(serverCa);
  const otherClientCa = await makeCa('Another Client CA');
  const port = await opensslVerifyingServer(
    t,
    { certPem: server.cert, keyPem: server.key },
    otherClientCa.certPem,
  );
  const caFile = join(await tempDir(t), 'proxy-ca.pem');
  await writeFile(caFile, serverCa.certPem);
  const config = agentConfig({
    connectorId,
    controlPlaneUrl: `https://127.0.0.1:${port}`,
    caFile,
    dataDir: paired.dataDir,
    terminationLog: join(paired.dataDir, 'termination-log'),
    ...limits,
  });
  return { paired, before, port, config };
}

// A server in front of the control plane that verifies client certificates against another CA
// (openssl s_server: node's own servers close the connection instead of sending the alert) refuses
// the paired connector's certificate with the TLS alert unknown_ca (48): on node 26,
// ERR_SSL_TLSV1_ALERT_UNKNOWN_CA, "tlsv1 alert unknown ca ... SSL alert number 48". The agent
// retried it, rightly (a proxy's client CA may be fixed), but gave up with exit 14
// CONTROL_PLANE_UNREACHABLE and the next step "restore reachability", although the address answered.
test('a paired agent whose certificate a server trusting another CA refuses by TLS alert 48: retried with that reason, then exit 14 TLS_CLIENT_CERTIFICATE_REJECTED, not unreachable, the identity kept', async (t) => {
  const { paired, before, port, config } = await behindAlertingServer(t, 'team-a.alert-unknown-ca', {
    giveUpAfterMs: 2_000,
  });
  const { agent, logs } = runAgent(t, config);
  t.is((await agent.done).exitCode, 14);
  const message = await termination(config);
  t.is(message.code, 'TLS_CLIENT_CERTIFICATE_REJECTED');
  t.is(String(message.failureClass), 'Reconnect');
  t.regex(
    message.reason,
    new RegExp(
      "^gave up after \\d+ s: the control plane's address was reached, and client certificate rejected: " +
        'certificate signed by unknown authority: .*: the TLS handshake was refused by the peer at ' +
        `127\\.0\\.0\\.1:${port} with alert 48 \\(unknown ca\\): the certificate was not accepted \\(e\\.g\\. a ` +
        'proxy terminating TLS, or a control plane trusting another CA\\)',
    ),
  );
  t.notRegex(message.reason, /without reaching|SSL routines|\.c:\d+/);
  t.is(message.nextStep, NEXT_STEPS.clientCertificateRefusedInHandshake);
  t.notRegex(message.nextStep, /reachability|outbound HTTPS/);
  const retried = recordsMatching(logs, /^heartbeat failed: client certificate rejected: /);
  t.true(retried.length >= 2, 'retried, each time with the alert as the reason');
  t.true(
    retried.every((line) => line.code === 'TLS_CLIENT_CERTIFICATE_REJECTED'),
    'logged with its code',
  );
  await assertIdentityKept(t, paired.dataDir, before);
  assertNoSecrets(t, 'agent logs', logs.text(), [paired.keyPem]);
});

// As under the operator: no --give-up-after (the default, never). The agent retried the alert for
// ever, so the pod's termination message, all the operator reads, never named it and the Connector
// kept the offline record's "restore outbound HTTPS". --give-up-on-refusal-after ends a run of
// nothing but such refusals with the same exit 14 the kubelet restarts.
test('without --give-up-after, a paired agent refused by TLS alert 48 for --give-up-on-refusal-after exits 14 TLS_CLIENT_CERTIFICATE_REJECTED, the identity kept', async (t) => {
  const { paired, before, config } = await behindAlertingServer(t, 'team-a.alert-refusal-limit', {
    giveUpAfterMs: 0,
    giveUpOnRefusalAfterMs: 1_500,
  });
  const { agent, logs } = runAgent(t, config);
  const exited = await Promise.race([
    agent.done,
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 30_000).unref()),
  ]);
  t.is(exited?.exitCode, 14, 'ended by --give-up-on-refusal-after, not retried for ever');
  const message = await termination(config);
  t.is(message.code, 'TLS_CLIENT_CERTIFICATE_REJECTED');
  t.is(String(message.failureClass), 'Reconnect');
  t.regex(
    message.reason,
    /^gave up after \d+ s: the control plane's address was reached, and client certificate rejected: certificate signed by unknown authority: .* with alert 48 \(unknown ca\)/,
  );
  t.is(message.nextStep, NEXT_STEPS.clientCertificateRefusedInHandshake);
  t.true(
    recordsMatching(logs, /^heartbeat failed: client certificate rejected: /).length >= 2,
    'retried first',
  );
  await assertIdentityKept(t, paired.dataDir, before);
});

// While pairing the agent has no certificate, so an alert 42 to 49 refused none of the connector's:
// it said "the certificate was not accepted". A server that answers a missing client certificate
// with bad_certificate (42) rather than certificate_required, as some TLS stacks do.
test('while pairing, a TLS alert 42 is worded as a handshake refused with no certificate presented, retried, then exit 14 FirstBootBootstrap with the token unspent', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.alert-while-pairing';
  const prepared = await prepareConnector(t, control, connectorId);
  const port = await alertingPort(t, 42);
  const config = agentConfig({
    connectorId,
    controlPlaneUrl: `https://127.0.0.1:${port}`,
    caFile: control.caFile,
    tokenFile: prepared.tokenFile,
    dataDir: prepared.dataDir,
    terminationLog: join(prepared.dataDir, 'termination-log'),
    giveUpOnRefusalAfterMs: 1_000,
  });
  const { agent, logs, counts } = runAgent(t, config);
  t.is((await agent.done).exitCode, 14);
  const message = await termination(config);
  t.is(message.code, 'TLS_CLIENT_CERTIFICATE_REJECTED');
  t.is(String(message.failureClass), 'FirstBootBootstrap');
  t.regex(
    message.reason,
    new RegExp(
      "^gave up after \\d+ s: the control plane's address was reached, and tls handshake refused: this agent " +
        `presented no client certificate \\(it has none before it pairs\\), and the server at 127\\.0\\.0\\.1:${port} ` +
        'refused the handshake with alert 42 \\(bad certificate\\): ',
    ),
  );
  t.regex(message.reason, /the enrollment request did not reach the control plane, so the token is unspent$/);
  t.notRegex(message.reason, /certificate was not accepted|this connector's certificate/);
  t.is(message.nextStep, NEXT_STEPS.handshakeRefusedWhilePairing);
  t.true(counts.enroll >= 2, 'retried');
  t.true(
    recordsMatching(logs, /^enrollment request did not reach the control plane: tls handshake refused: /)
      .length >= 1,
  );
  t.is(
    (await control.admin.getConnector(connectorId)).state,
    'pending',
    'the control plane never saw a request',
  );
  assertNoSecrets(t, 'agent logs', logs.text(), [prepared.token]);
});

test("the control plane's SAN URI prefix changed: SAN_URI_PREFIX_MISMATCH, Configuration exit 12, with the guide's fragment", async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.san-prefix';
  const paired = await enrolledConnector(t, control, connectorId);
  const before = await identitySnapshot(paired.dataDir);
  const port = Number(new URL(control.cp.url).port);
  await control.cp.close();
  const renamed = await startControlPlane({
    dataDir: control.dataDir,
    host: '127.0.0.1',
    port,
    clock: control.clock,
    heartbeatIntervalSeconds: 1,
    sanUriPrefix: 'spiffe://other.example/connector/',
  });
  t.teardown(() => renamed.close());

  const { agent } = runAgent(t, paired.config);
  t.is((await agent.done).exitCode, 12);
  const message = await termination(paired.config);
  t.is(message.code, 'SAN_URI_PREFIX_MISMATCH');
  t.is(String(message.failureClass), 'Configuration');
  t.regex(
    message.reason,
    /^client certificate rejected: certificate SAN does not match expected pattern: the control plane expects URI SANs under spiffe:\/\/other\.example\/connector\//,
  );
  t.regex(message.reason, /carries spiffe:\/\/vaultpam\.local\/connector\/team-a\.san-prefix/);
  t.is(message.nextStep, NEXT_STEPS.sanUriPrefixMismatch);
  await assertIdentityKept(t, paired.dataDir, before);
});
