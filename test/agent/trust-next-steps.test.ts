// Trust failures, each set up for real, each with its own next step (failure.ts): a control plane
// certificate that names other hosts (or none), one not yet valid, one expired, and a paired agent
// that lost identity/ca.pem with no --ca-file (the control plane's chain ends at the CA of the
// agent's own certificate, which says what to trust).
import { createPublicKey } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { NEXT_STEPS } from '../../src/agent/failure.ts';
import { identityPaths } from '../../src/agent/identity-files.ts';
import { generateKeyPairPem, issueCertificatePem } from '../../src/lib/pki.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import { makeCa, type TestCa, tempDir } from './fixtures.ts';
import {
  agentConfig,
  enrolledConnector,
  prepareConnector,
  recordsMatching,
  runAgent,
  startTestControlPlane,
  waitFor,
} from './harness.ts';
import { endsWithin, tlsPort, urlOf } from './transport-servers.ts';

const HOUR = 3_600_000;

let ca: TestCa;
test.before(async () => {
  ca = await makeCa('Trust Steps CA');
});

/** A server certificate issued by `ca` with the given names and dates. */
async function servingCertificate(options: {
  commonName?: string;
  dnsNames?: string[];
  ips?: string[];
  notBefore?: Date;
  notAfter?: Date;
}): Promise<{ key: string; cert: string }> {
  const pair = await generateKeyPairPem('ec-p256');
  const cert = issueCertificatePem({
    issuerKeyPem: ca.keyPem,
    issuerCertPem: ca.certPem,
    subjectPublicKey: createPublicKey(pair.publicKeyPem),
    subject: [{ shortName: 'CN', value: options.commonName ?? 'control-plane' }],
    notBefore: options.notBefore ?? new Date(Date.now() - 60_000),
    notAfter: options.notAfter ?? new Date(Date.now() + HOUR),
    ...(options.dnsNames ? { sanDnsNames: options.dnsNames } : {}),
    ...(options.ips ? { sanIps: options.ips } : {}),
    extendedKeyUsage: ['serverAuth'],
  });
  return { key: pair.privateKeyPem, cert };
}

/** A first boot (a real token of a real control plane) against a TLS server serving `serving`. */
async function firstBootAgainst(t: ExecutionContext, serving: { key: string; cert: string }) {
  const control = await startTestControlPlane(t);
  const connectorId = `team-a.trust-${Math.random().toString(36).slice(2, 8)}`;
  const prepared = await prepareConnector(t, control, connectorId);
  const port = await tlsPort(t, serving);
  const caFile = join(await tempDir(t), 'ca.pem');
  await writeFile(caFile, ca.certPem);
  const config = agentConfig({
    connectorId,
    controlPlaneUrl: urlOf(port),
    caFile,
    tokenFile: prepared.tokenFile,
    dataDir: prepared.dataDir,
    terminationLog: join(prepared.dataDir, 'termination-log'),
  });
  const { agent, logs } = runAgent(t, config);
  const outcome = await endsWithin(agent.done, 20_000, 'the agent');
  assertNoSecrets(t, 'agent logs', logs.text(), [prepared.token]);
  return { outcome, port };
}

test('a control plane certificate for other names: SERVER_NAME_MISMATCH names what the certificate carries and what was asked, with its own next step', async (t) => {
  const { outcome } = await firstBootAgainst(
    t,
    await servingCertificate({ dnsNames: ['cp.example'], ips: ['10.0.0.1'] }),
  );
  t.is(outcome.exitCode, 11);
  t.is(outcome.failure?.code, 'SERVER_NAME_MISMATCH');
  t.is(
    outcome.failure?.message,
    'enrollment impossible: tls handshake failed: certificate verify failed: the control plane certificate is not ' +
      'valid for 127.0.0.1, the host --control-plane-url asks for: it names DNS:cp.example, IP:10.0.0.1',
  );
  t.is(outcome.failure?.nextStep, NEXT_STEPS.serverNameMismatch);
  t.regex(String(outcome.failure?.nextStep), /^Use the host name the control plane certificate names/);
});

test('a control plane certificate with no DNS or IP name at all says so, instead of an empty list', async (t) => {
  const { outcome } = await firstBootAgainst(t, await servingCertificate({ commonName: 'cp.example' }));
  t.is(outcome.failure?.code, 'SERVER_NAME_MISMATCH');
  t.regex(
    String(outcome.failure?.message),
    /it names no DNS or IP subject alternative name \(only CN=cp\.example, which is not matched against host names\)$/,
  );
  t.notRegex(String(outcome.failure?.message), /cert's list/);
});

test('a control plane certificate not yet valid: either clock may be off, and the next step is renew it or fix the clock', async (t) => {
  const { outcome } = await firstBootAgainst(
    t,
    await servingCertificate({
      ips: ['127.0.0.1'],
      notBefore: new Date(Date.now() + 2 * HOUR),
      notAfter: new Date(Date.now() + 24 * HOUR),
    }),
  );
  t.is(outcome.exitCode, 11);
  t.is(outcome.failure?.code, 'SERVER_CERT_NOT_YET_VALID');
  t.regex(
    String(outcome.failure?.message),
    /either this node's clock is (1 h 59 min|2 h 0 min) behind, or the certificate was issued by a clock (1 h 59 min|2 h 0 min) ahead/,
  );
  t.is(outcome.failure?.nextStep, NEXT_STEPS.serverCertificateDates);
  t.regex(
    String(outcome.failure?.nextStep),
    /^Renew the control plane certificate, or fix this node's clock if its date is wrong/,
  );
});

test('an expired control plane certificate: renew it or fix the clock, not --ca-file', async (t) => {
  const { outcome } = await firstBootAgainst(
    t,
    await servingCertificate({
      ips: ['127.0.0.1'],
      notBefore: new Date(Date.now() - 3 * HOUR),
      notAfter: new Date(Date.now() - HOUR),
    }),
  );
  t.is(outcome.failure?.code, 'SERVER_CERT_EXPIRED');
  t.is(outcome.failure?.nextStep, NEXT_STEPS.serverCertificateDates);
  t.notRegex(String(outcome.failure?.nextStep), /--ca-file/);
});

test("ca.pem lost and no --ca-file: the trust failure says the chain ends at the CA of this connector's own certificate and what to set", async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.lost-ca-hint';
  const enrolled = await enrolledConnector(t, control, connectorId);
  const config = { ...enrolled.config, caFile: undefined };
  await rm(identityPaths(config.dataDir).ca);
  const { agent, logs } = runAgent(t, config);
  const line = await waitFor('a trust failure', () => recordsMatching(logs, /^heartbeat failed: x509: /)[0]);
  const message = String(line.msg);
  t.regex(message, /the system CA roots \(no --ca-file given\) do not trust/);
  t.regex(
    message,
    /ending at one issued by CN=VaultPAM reference control plane CA, O=VaultPAM; that issuer is the CA that issued this connector's own certificate \(identity\/cert\.pem\): set --ca-file \(env VAULTPAM_CA_FILE\) to the CA that issued the control plane's certificate, or restore identity\/ca\.pem/,
  );
  t.is((await agent.stop()).exitCode, 0);
});
