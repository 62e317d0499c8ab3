// Fail-closed cases against the real control plane: each stops for good with one log line, the
// contract's exit code and a termination message, and never retries a token.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { AgentConfig } from '../../src/agent/config.ts';
import { identityPaths } from '../../src/agent/identity-files.ts';
import type { AgentOutcome } from '../../src/agent/lifecycle.ts';
import type { CapturedLogs } from '../helpers/log-capture.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import { makeCa } from './fixtures.ts';
import {
  agentConfig,
  enrolledConnector,
  prepareConnector,
  runAgent,
  startTestControlPlane,
  waitFor,
} from './harness.ts';

interface Termination {
  failureClass: string;
  code: string;
  reason: string;
  nextStep: string;
}

/** Checks the single fail-closed log line and the termination message; returns the message. */
async function expectFailClosed(
  t: ExecutionContext,
  outcome: AgentOutcome,
  logs: CapturedLogs,
  config: AgentConfig,
  expected: { exitCode: number; failureClass: string; code: string },
  secrets: string[],
): Promise<Termination> {
  t.is(outcome.exitCode, expected.exitCode);
  const errorLines = logs.records().filter((record) => Number(record.level) >= 50);
  t.is(errorLines.length, 1, 'exactly one error line');
  const line = errorLines[0] ?? {};
  t.is(line.failureClass, expected.failureClass);
  t.is(line.code, expected.code);
  t.regex(
    String(line.msg),
    new RegExp(`^fail closed: ${expected.failureClass} \\(${expected.code}\\): .*Next step: `),
  );
  const text = await readFile(config.terminationLog, 'utf8');
  const message = JSON.parse(text) as Termination;
  t.is(message.failureClass, expected.failureClass);
  t.is(message.code, expected.code);
  t.is(message.nextStep, String(line.nextStep));
  assertNoSecrets(t, 'agent logs', logs.text(), secrets);
  assertNoSecrets(t, 'termination message', text, secrets);
  return message;
}

test('an empty data directory and no token: FirstBootBootstrap ENROLLMENT_TOKEN_MISSING, exit 11, no request', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.no-token';
  const { tokenFile, dataDir } = await prepareConnector(t, control, connectorId);
  await rm(tokenFile);
  const config = agentConfig({
    connectorId,
    controlPlaneUrl: control.cp.url,
    caFile: control.caFile,
    tokenFile,
    dataDir,
    terminationLog: join(dataDir, 'termination-log'),
  });
  const { agent, logs, counts } = runAgent(t, config);
  const message = await expectFailClosed(
    t,
    await agent.done,
    logs,
    config,
    { exitCode: 11, failureClass: 'FirstBootBootstrap', code: 'ENROLLMENT_TOKEN_MISSING' },
    [],
  );
  t.true(message.reason.includes(tokenFile));
  t.regex(message.nextStep, /never paired.*paired before/s);
  t.deepEqual(counts, { enroll: 0, heartbeat: 0, renew: 0 });
});

test('identity deleted and the stale token presented: IdentityLoss exit 10, one enroll request, control plane needs_recovery', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.lost-dir';
  const { token, config, keyPem } = await enrolledConnector(t, control, connectorId);
  await rm(identityPaths(config.dataDir).dir, { recursive: true });

  const { agent, logs, counts } = runAgent(t, config);
  const message = await expectFailClosed(
    t,
    await agent.done,
    logs,
    config,
    { exitCode: 10, failureClass: 'IdentityLoss', code: 'ENROLLMENT_TOKEN_INVALID' },
    [token, keyPem],
  );
  // The runbook's branch 3: "401 ENROLLMENT_TOKEN_INVALID after a previously successful pairing".
  t.regex(message.reason, /401 ENROLLMENT_TOKEN_INVALID: .*paired before/);
  t.regex(message.nextStep, /^Durable identity loss: .*reattach the original data directory/s);
  t.is(counts.enroll, 1, 'the rejected token is never retried');
  const connector = await control.admin.getConnector(connectorId);
  t.is(connector.state, 'needs_recovery');
  t.is(connector.lastEnrollmentFailure?.code, 'ENROLLMENT_TOKEN_INVALID');
  const audit = await control.admin.audit({ connectorId });
  t.is(audit.filter((entry) => entry.type === 'gateway.enrollment_failed').length, 1);
});

test('identity.json present but the key gone: IdentityLoss exit 10 without touching the token', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.lost-key';
  const { token, config, keyPem } = await enrolledConnector(t, control, connectorId);
  await rm(identityPaths(config.dataDir).key);

  const { agent, logs, counts } = runAgent(t, config);
  const message = await expectFailClosed(
    t,
    await agent.done,
    logs,
    config,
    { exitCode: 10, failureClass: 'IdentityLoss', code: 'IDENTITY_LOST' },
    [token, keyPem],
  );
  t.true(message.reason.includes(identityPaths(config.dataDir).key));
  t.deepEqual(counts, { enroll: 0, heartbeat: 0, renew: 0 });
  const connector = await control.admin.getConnector(connectorId);
  t.not(connector.state, 'needs_recovery', 'no token was presented');
  t.is(connector.lastEnrollmentFailure, null);
});

for (const kind of ['expired', 'revoked'] as const) {
  test(`${kind === 'expired' ? 'an' : 'a'} ${kind} token on first boot: FirstBootBootstrap exit 11 after exactly one enroll request`, async (t) => {
    const control = await startTestControlPlane(t);
    const connectorId = `team-a.token-${kind}`;
    const { token, tokenFile, dataDir } = await prepareConnector(t, control, connectorId);
    if (kind === 'expired') control.clock.offsetMs = 5 * 3_600_000;
    else await control.admin.revokeTokens(connectorId);
    const config = agentConfig({
      connectorId,
      controlPlaneUrl: control.cp.url,
      caFile: control.caFile,
      tokenFile,
      dataDir,
      terminationLog: join(dataDir, 'termination-log'),
    });
    const { agent, logs, counts } = runAgent(t, config);
    const code = kind === 'expired' ? 'ENROLLMENT_TOKEN_EXPIRED' : 'ENROLLMENT_TOKEN_REVOKED';
    const message = await expectFailClosed(
      t,
      await agent.done,
      logs,
      config,
      { exitCode: 11, failureClass: 'FirstBootBootstrap', code },
      [token],
    );
    t.regex(message.nextStep, /generate a fresh enrollment token/);
    t.is(counts.enroll, 1);
    t.is(agent.status().phase, 'failed');
  });
}

test('a CA file that did not issue the control plane certificate: a clear unknown-CA message, exit 11, token unspent', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.wrong-ca';
  const { token, tokenFile, dataDir } = await prepareConnector(t, control, connectorId);
  const wrongCaFile = join(dataDir, 'wrong-ca.pem');
  await writeFile(wrongCaFile, (await makeCa('Some Other CA')).certPem);
  const config = agentConfig({
    connectorId,
    controlPlaneUrl: control.cp.url,
    caFile: wrongCaFile,
    tokenFile,
    dataDir,
    terminationLog: join(dataDir, 'termination-log'),
  });
  const { agent, logs } = runAgent(t, config);
  const message = await expectFailClosed(
    t,
    await agent.done,
    logs,
    config,
    { exitCode: 11, failureClass: 'FirstBootBootstrap', code: 'CA_UNTRUSTED' },
    [token],
  );
  t.regex(message.reason, /x509: certificate signed by unknown authority/);
  t.true(message.reason.includes(wrongCaFile), 'names the CA file');
  t.regex(message.nextStep, /--ca-file/);
  const connector = await control.admin.getConnector(connectorId);
  t.is(connector.state, 'pending');
  t.not(connector.liveToken, null, 'the token never reached the control plane');
});

test('an identity the control plane revoked (recovery begun): IdentityLoss exit 13, no token used', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.revoked-cert';
  const { token, config, keyPem } = await enrolledConnector(t, control, connectorId);
  // Let it go offline (no heartbeats for longer than 3 intervals), then begin a recovery.
  control.clock.offsetMs = 60_000;
  await waitFor('offline', async () => {
    control.cp.sweep();
    return (await control.admin.getConnector(connectorId)).state === 'offline';
  });
  await control.admin.beginRecovery(connectorId, 'req-1');

  const { agent, logs, counts } = runAgent(t, config);
  const message = await expectFailClosed(
    t,
    await agent.done,
    logs,
    config,
    { exitCode: 13, failureClass: 'IdentityLoss', code: 'IDENTITY_REJECTED' },
    [token, keyPem],
  );
  t.regex(message.reason, /was revoked by guided recovery req-1 .*401 CLIENT_CERTIFICATE_REVOKED/);
  t.is(counts.enroll, 0);
});

test('unreachable for longer than --give-up-after: exit 14 with the last error', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.give-up';
  const { token, config, keyPem } = await enrolledConnector(t, control, connectorId);
  await control.admin.close();
  await control.cp.close();
  const giveUp = { ...config, giveUpAfterMs: 150, retryInitialMs: 10, retryMaxMs: 40 };
  const { agent, logs, counts } = runAgent(t, giveUp);
  const message = await expectFailClosed(
    t,
    await agent.done,
    logs,
    giveUp,
    { exitCode: 14, failureClass: 'Reconnect', code: 'CONTROL_PLANE_UNREACHABLE' },
    [token, keyPem],
  );
  t.regex(message.reason, /CONNECTION_REFUSED/);
  t.is(counts.enroll, 0);
});
