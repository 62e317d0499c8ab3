// The identity on disk against the real control plane, with real files changed under a real agent:
// a certificate outside its validity by the agent's clock is tried (the control plane's clock
// decides), a lost ca.pem is restored from the control plane, loose modes are repaired, a SAN under
// another prefix is the agent's configuration, and files changed while the agent runs are verified
// again at the next heartbeat and fail closed with the class a start would give them.
import { chmod, readFile, rm, stat, writeFile } from 'node:fs/promises';
import test, { type ExecutionContext } from 'ava';
import type { AgentConfig } from '../../src/agent/config.ts';
import { identityPaths } from '../../src/agent/identity-files.ts';
import type { AgentOutcome } from '../../src/agent/lifecycle.ts';
import type { TerminationMessage } from '../../src/contract/agent-process.ts';
import { ShiftedClock } from '../../src/lib/clock.ts';
import { parseCertificateFacts } from '../../src/lib/pki.ts';
import type { CapturedLogs } from '../helpers/log-capture.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import { issueConnectorCert, makeCa } from './fixtures.ts';
import {
  configFor,
  enrolledConnector,
  prepareConnector,
  recordsMatching,
  runAgent,
  startTestControlPlane,
  waitFor,
} from './harness.ts';

/** Checks the exit code, the one fail-closed line and the termination message; returns the message. */
async function expectTermination(
  t: ExecutionContext,
  outcome: AgentOutcome,
  logs: CapturedLogs,
  config: AgentConfig,
  expected: { exitCode: number; failureClass: string; code: string },
  secrets: string[],
): Promise<TerminationMessage> {
  t.is(outcome.exitCode, expected.exitCode);
  const failLines = recordsMatching(logs, /^fail closed: /);
  t.is(failLines.length, 1, 'one fail-closed line');
  t.is(failLines[0]?.code, expected.code);
  const text = await readFile(config.terminationLog, 'utf8');
  const message = JSON.parse(text) as TerminationMessage;
  t.is(String(message.failureClass), expected.failureClass);
  t.is(message.code, expected.code);
  assertNoSecrets(t, 'agent logs', logs.text(), secrets);
  assertNoSecrets(t, 'termination message', text, secrets);
  return message;
}

function connected(agent: ReturnType<typeof runAgent>['agent'], moreThan = 0) {
  return waitFor(
    `more than ${moreThan} accepted heartbeats`,
    () => agent.status().heartbeatsAccepted > moreThan,
  );
}

test("a certificate expired by the agent's clock only is tried: the control plane accepts it and the agent connects", async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.clock-ahead';
  const { config, token, keyPem } = await enrolledConnector(t, control, connectorId);
  const cert = identityPaths(config.dataDir).cert;
  // The agent's clock two days ahead: its 24 h certificate looks expired by a day and some minutes.
  const { agent, logs, counts } = runAgent(t, config, {
    clock: new ShiftedClock(2 * 86_400_000),
  });
  await connected(agent);
  const warning = recordsMatching(logs, /^certificate has expired or is not yet valid: /)[0];
  if (!warning) return t.fail('no clock-skew warning');
  t.regex(
    String(warning.msg),
    new RegExp(
      `^certificate has expired or is not yet valid: this connector's certificate ${cert} expired \\d+ h \\d+ min ago by the local clock \\(valid from .* to .*, local time .*\\); trying the control plane, whose clock decides`,
    ),
  );
  t.is((await agent.stop()).exitCode, 0);
  t.is(counts.enroll, 0);
  assertNoSecrets(t, 'agent logs', logs.text(), [token, keyPem]);
});

test('ca.pem lost before a start: the agent verifies the control plane with --ca-file and restores ca.pem from it', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.lost-ca';
  const { config, token, keyPem } = await enrolledConnector(t, control, connectorId);
  const paths = identityPaths(config.dataDir);
  await rm(paths.ca);
  const { agent, logs, counts } = runAgent(t, config);
  await waitFor('ca.pem restored', () => recordsMatching(logs, /^restored /).length > 0);
  t.deepEqual(
    recordsMatching(logs, /^no such file: .*ca\.pem/).map((record) => record.msg),
    [
      `no such file: ${paths.ca} (the CA bundle): verifying the control plane with --ca-file ${control.caFile} ` +
        `and restoring ${paths.ca} from the control plane's next certificate answer (renewing at once)`,
    ],
  );
  t.is(recordsMatching(logs, /^restored /)[0]?.msg, `restored ${paths.ca} from the control plane`);
  t.is(await readFile(paths.ca, 'utf8'), control.cp.caPem);
  t.is((await stat(paths.ca)).mode & 0o777, 0o644);
  // The restore was the agent's own write: later heartbeats do not take it for a change on disk.
  await connected(agent, agent.status().heartbeatsAccepted + 2);
  t.deepEqual(recordsMatching(logs, /^identity files changed on disk/), []);
  t.is(agent.status().phase, 'connected');
  t.is((await agent.stop()).exitCode, 0);
  t.is(counts.enroll, 0);
  assertNoSecrets(t, 'agent logs', logs.text(), [token, keyPem]);
});

test('ca.pem lost and no --ca-file: the system roots cannot verify the control plane, the normal trust failure applies', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.lost-ca-no-file';
  const enrolled = await enrolledConnector(t, control, connectorId);
  const config = { ...enrolled.config, caFile: undefined };
  const paths = identityPaths(config.dataDir);
  await rm(paths.ca);
  const { agent, logs, counts } = runAgent(t, config);
  const trustLine = await waitFor('a trust failure', () =>
    logs.records().find((record) => record.code === 'CA_UNTRUSTED'),
  );
  t.regex(String(trustLine.msg), /x509: certificate signed by unknown authority: .*system CA roots/);
  t.is((await agent.stop()).exitCode, 0, 'not identity loss');
  t.is(counts.enroll, 0);
  await t.throwsAsync(stat(paths.ca), { code: 'ENOENT' });
});

test('loose modes are repaired at start and while running, each with a warning naming path and modes', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.loose-modes';
  const { config } = await enrolledConnector(t, control, connectorId);
  const paths = identityPaths(config.dataDir);
  await chmod(paths.key, 0o644);
  await chmod(paths.dir, 0o777);
  const { agent, logs } = runAgent(t, config);
  await connected(agent);
  t.truthy(recordsMatching(logs, new RegExp(`^permission of ${paths.key} was 0644, set to 0600: `))[0]);
  t.truthy(recordsMatching(logs, new RegExp(`^permission of ${paths.dir} was 0777, set to 0700: `))[0]);
  t.is((await stat(paths.key)).mode & 0o777, 0o600);
  t.is((await stat(paths.dir)).mode & 0o777, 0o700);

  await chmod(paths.key, 0o666);
  await waitFor(
    'the key repaired while running',
    () => recordsMatching(logs, new RegExp(`^permission of ${paths.key} was 0666, set to 0600: `)).length > 0,
  );
  t.is((await stat(paths.key)).mode & 0o777, 0o600);
  t.is((await agent.stop()).exitCode, 0);
});

test("a certificate under another SAN prefix than --san-uri-prefix is the agent's configuration: exit 12", async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.other-prefix';
  const enrolled = await enrolledConnector(t, control, connectorId);
  const config = { ...enrolled.config, sanUriPrefix: 'spiffe://pam.example/agents/' };
  const { agent, logs, counts } = runAgent(t, config);
  const message = await expectTermination(
    t,
    await agent.done,
    logs,
    config,
    { exitCode: 12, failureClass: 'Configuration', code: 'CONFIGURATION_INVALID' },
    [enrolled.token, enrolled.keyPem],
  );
  t.true(
    message.reason.startsWith(
      `certificate SAN does not match expected pattern: the certificate names spiffe://vaultpam.local/connector/${connectorId} ` +
        `but --san-uri-prefix expects spiffe://pam.example/agents/${connectorId}: set --san-uri-prefix / VAULTPAM_SAN_URI_PREFIX`,
    ),
    message.reason,
  );
  t.deepEqual(counts, { enroll: 0, heartbeat: 0, renew: 0 });
});

for (const file of ['key', 'cert'] as const) {
  test(`a running agent whose ${file === 'key' ? 'key' : 'certificate'} is deleted fails closed at the next heartbeat: IDENTITY_LOST, exit 10`, async (t) => {
    const control = await startTestControlPlane(t);
    const connectorId = `team-a.deleted-${file}`;
    const { config, token, keyPem } = await enrolledConnector(t, control, connectorId);
    const path = identityPaths(config.dataDir)[file];
    const { agent, logs, counts } = runAgent(t, config);
    await connected(agent);
    await rm(path);
    const message = await expectTermination(
      t,
      await agent.done,
      logs,
      config,
      { exitCode: 10, failureClass: 'IdentityLoss', code: 'IDENTITY_LOST' },
      [token, keyPem],
    );
    t.true(message.reason.startsWith(`no such file: ${path}`), message.reason);
    t.regex(message.nextStep, /^Durable identity loss/);
    t.is(agent.status().phase, 'failed');
    t.is(counts.enroll, 0);
  });
}

test('a running agent whose certificate is replaced by one another CA signed fails closed: IDENTITY_CHAIN_INVALID, exit 13', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.replaced-cert';
  const { config, token, keyPem } = await enrolledConnector(t, control, connectorId);
  const paths = identityPaths(config.dataDir);
  const { agent, logs } = runAgent(t, config);
  await connected(agent);
  const metadataBefore = await readFile(paths.metadata, 'utf8');
  // Same key and names, so only the chain tells it from the control plane's certificate.
  const forged = await issueConnectorCert(await makeCa('Some Other CA'), { connectorId, keyPem });
  await writeFile(paths.cert, forged.certPem);
  const message = await expectTermination(
    t,
    await agent.done,
    logs,
    config,
    { exitCode: 13, failureClass: 'IdentityLoss', code: 'IDENTITY_CHAIN_INVALID' },
    [token, keyPem],
  );
  t.true(
    message.reason.startsWith(
      `certificate chain does not verify: ${paths.cert} is not signed by the CA in ${paths.ca}`,
    ),
    message.reason,
  );
  t.is(await readFile(paths.metadata, 'utf8'), metadataBefore, 'identity.json not rewritten');
});

test('a running agent whose ca.pem is deleted restores it from the control plane and stays connected', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.deleted-ca';
  const { config } = await enrolledConnector(t, control, connectorId);
  const paths = identityPaths(config.dataDir);
  const { agent, logs } = runAgent(t, config);
  await connected(agent);
  await rm(paths.ca);
  await waitFor('ca.pem restored', () => recordsMatching(logs, /^restored /).length > 0);
  t.is(await readFile(paths.ca, 'utf8'), control.cp.caPem);
  await connected(agent, agent.status().heartbeatsAccepted + 2);
  t.is(recordsMatching(logs, /^identity files changed on disk/).length, 1, 'only the deletion was a change');
  t.is(agent.status().phase, 'connected');
  t.is((await agent.stop()).exitCode, 0);
});

test("the agent's own renewal is not taken for a change of its identity files", async (t) => {
  // Six-minute certificates: renewAfter falls 4 minutes in, within the control plane's 5-minute
  // back-dating, so the renewed certificate passes TLS with both clocks moved forward.
  const control = await startTestControlPlane(t, { certificateLifetimeSeconds: 360 });
  const connectorId = 'team-a.own-writes';
  const { config } = await enrolledConnector(t, control, connectorId);
  const clock = new ShiftedClock();
  const { agent, logs } = runAgent(t, config, { clock });
  await connected(agent);
  // 4.5 minutes later on both clocks (the agent follows the control plane's), past its renewAfter.
  clock.offsetMs = 270_000;
  control.clock.offsetMs = clock.offsetMs;
  await waitFor('a renewal', () => agent.status().renewals >= 1);
  await connected(agent, agent.status().heartbeatsAccepted + 2);
  t.deepEqual(recordsMatching(logs, /^identity files changed on disk/), []);
  t.is(agent.status().phase, 'connected');
  t.is((await agent.stop()).exitCode, 0);
});

test('first boot against a control plane with another SAN prefix: exit 12 with the certificate kept, so fixing the flag is enough', async (t) => {
  const controlPrefix = 'spiffe://pam.example/agents/';
  const control = await startTestControlPlane(t, { sanUriPrefix: controlPrefix });
  const connectorId = 'team-a.first-boot-prefix';
  const prepared = await prepareConnector(t, control, connectorId);
  const config = configFor(control, connectorId, prepared);
  const first = runAgent(t, config);
  const message = await expectTermination(
    t,
    await first.agent.done,
    first.logs,
    config,
    { exitCode: 12, failureClass: 'Configuration', code: 'CONFIGURATION_INVALID' },
    [prepared.token],
  );
  t.true(
    message.reason.startsWith(
      `certificate SAN does not match expected pattern: the certificate names ${controlPrefix}${connectorId} but`,
    ),
    message.reason,
  );
  t.is(first.counts.enroll, 1);
  const paths = identityPaths(config.dataDir);
  t.is(
    parseCertificateFacts(await readFile(paths.cert, 'utf8')).sanUris[0],
    `${controlPrefix}${connectorId}`,
  );

  // The token is spent; the kept certificate is all the connector needs once the flag is right.
  await rm(prepared.tokenFile);
  const fixed = runAgent(t, { ...config, sanUriPrefix: controlPrefix });
  await connected(fixed.agent);
  t.is(fixed.counts.enroll, 0);
  t.is((await fixed.agent.stop()).exitCode, 0);
});
