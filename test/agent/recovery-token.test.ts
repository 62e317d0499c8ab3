// The guided recovery's token reaches the agent, against the real control plane with real files:
// an identity lost from disk (key.pem deleted, identity.json kept) and a certificate revoked by a
// recovery begun while the agent was down. The rule of "An identity the control plane refuses"
// (docs/connector-agent.md): a token mounted after the first report is the recovery's, the old
// identity is moved aside in one rename (never deleted) and the agent pairs exactly once; a token
// that was mounted at the first report is not used, and the log says so and why. A REVOKED answer
// naming a recovery is evidence of its own: a token written after the certificate is used at once.
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import type { AgentConfig } from '../../src/agent/config.ts';
import { identityPaths } from '../../src/agent/identity-files.ts';
import { tokenFingerprint } from '../../src/agent/identity-rejection.ts';
import type { TerminationMessage } from '../../src/contract/agent-process.ts';
import { parseCertificateFacts } from '../../src/lib/pki.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import {
  enrolledConnector,
  recordsMatching,
  runAgent,
  startTestControlPlane,
  type TestControlPlane,
  waitFor,
} from './harness.ts';

async function termination(config: AgentConfig): Promise<TerminationMessage> {
  return JSON.parse(await readFile(config.terminationLog, 'utf8')) as TerminationMessage;
}

async function rejection(dataDir: string) {
  return JSON.parse(await readFile(identityPaths(dataDir).rejection, 'utf8')) as {
    serial: string;
    code: string;
    tokensSeen: string[];
  };
}

async function setAside(dataDir: string): Promise<string[]> {
  return (await readdir(dataDir)).filter((name) => name.startsWith('identity.rejected-'));
}

/** What an operator does for a guided recovery: the connector goes offline, the recovery begins. */
async function beginRecovery(control: TestControlPlane, connectorId: string, requestId: string) {
  control.clock.offsetMs = 60_000;
  await waitFor('offline', async () => {
    control.cp.sweep();
    return (await control.admin.getConnector(connectorId)).state === 'offline';
  });
  await control.admin.beginRecovery(connectorId, requestId);
  control.clock.offsetMs = 0;
}

/** The recovery's one token, written to the mounted token file. */
async function mintInto(control: TestControlPlane, connectorId: string, tokenFile: string, key: string) {
  const minted = await control.admin.mintToken(connectorId, { idempotencyKey: key });
  await writeFile(tokenFile, minted.token, { mode: 0o600 });
  return minted.token;
}

test('key.pem deleted, identity.json kept: IDENTITY_LOST says the mounted token is not used and why; the recovery token mounted afterwards moves identity/ aside and pairs once', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.lost-key';
  const paired = await enrolledConnector(t, control, connectorId);
  const paths = identityPaths(paired.dataDir);
  const serial = parseCertificateFacts(await readFile(paths.cert, 'utf8')).serial;
  const certPem = await readFile(paths.cert, 'utf8');
  await rm(paths.key);

  // First report, with the spent bootstrap token still mounted: it is recorded, never used.
  const first = runAgent(t, paired.config);
  t.is((await first.agent.done).exitCode, 10);
  t.is((await termination(paired.config)).code, 'IDENTITY_LOST');
  t.is(first.counts.enroll, 0);
  const notUsed = recordsMatching(
    first.logs,
    /^an enrollment token is present, but it was mounted before this identity was first reported lost: it is not used/,
  );
  t.is(notUsed.length, 1);
  t.regex(String(notUsed[0]?.msg), /move the identity directory aside and pair once/);
  const recorded = await rejection(paired.dataDir);
  t.is(recorded.serial, serial);
  t.is(recorded.code, 'IDENTITY_LOST');
  t.deepEqual(recorded.tokensSeen, [tokenFingerprint(serial, paired.token)]);

  // The next step, followed literally: guided recovery, one token minted and mounted, start once.
  await beginRecovery(control, connectorId, 'req-lost-key');
  const recoveryToken = await mintInto(control, connectorId, paired.tokenFile, 'recovery-lost-key');
  const second = runAgent(t, paired.config);
  await waitFor('paired again and heartbeating', () => second.agent.status().heartbeatsAccepted > 0);
  t.is(second.counts.enroll, 1, 'paired exactly once');
  const moved = recordsMatching(second.logs, /^identity lost and a new enrollment token is present/);
  t.is(moved.length, 1);
  t.is(moved[0]?.lostSerial, serial);
  const aside = await setAside(paired.dataDir);
  t.is(aside.length, 1);
  t.is(moved[0]?.movedTo, join(paired.dataDir, aside[0] ?? ''));
  // Moved whole, in one rename: what was left of the identity is kept, nothing deleted.
  t.is(await readFile(join(paired.dataDir, aside[0] ?? '', 'cert.pem'), 'utf8'), certPem);
  t.truthy(await stat(join(paired.dataDir, aside[0] ?? '', 'identity.json')));
  await waitFor('online', async () => (await control.admin.getConnector(connectorId)).state === 'online');
  t.is((await second.agent.stop()).exitCode, 0);

  // A restart with the spent recovery token still mounted reconnects with the new identity.
  const third = runAgent(t, paired.config);
  await waitFor('reconnected', () => third.agent.status().heartbeatsAccepted > 0);
  t.is(third.counts.enroll, 0);
  t.is((await third.agent.stop()).exitCode, 0);
  assertNoSecrets(t, 'agent logs', first.logs.text() + second.logs.text() + third.logs.text(), [
    paired.token,
    recoveryToken,
    paired.keyPem,
  ]);
});

test('key.pem deleted while the agent runs: the loss is recorded, so the recovery token mounted afterwards pairs at the next start', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.lost-running';
  const paired = await enrolledConnector(t, control, connectorId);
  await rm(paired.tokenFile);
  const running = runAgent(t, paired.config);
  await waitFor('connected', () => running.agent.status().heartbeatsAccepted > 0);
  await rm(identityPaths(paired.dataDir).key);
  t.is((await running.agent.done).exitCode, 10);
  t.is((await rejection(paired.dataDir)).code, 'IDENTITY_LOST');

  await beginRecovery(control, connectorId, 'req-lost-running');
  await mintInto(control, connectorId, paired.tokenFile, 'recovery-lost-running');
  const next = runAgent(t, paired.config);
  await waitFor('paired again and heartbeating', () => next.agent.status().heartbeatsAccepted > 0);
  t.is(next.counts.enroll, 1);
  t.is((await setAside(paired.dataDir)).length, 1);
  t.is((await next.agent.stop()).exitCode, 0);
});

test('a recovery begun while the agent was down, its token already mounted: REVOKED naming the recovery is evidence enough, the token pairs at the first start', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.revoked-while-down';
  const paired = await enrolledConnector(t, control, connectorId);
  const oldSerial = parseCertificateFacts(await readFile(identityPaths(paired.dataDir).cert, 'utf8')).serial;
  await beginRecovery(control, connectorId, 'req-while-down');
  const recoveryToken = await mintInto(control, connectorId, paired.tokenFile, 'recovery-while-down');

  const { agent, logs, counts } = runAgent(t, paired.config);
  await waitFor('paired again and heartbeating', () => agent.status().heartbeatsAccepted > 0);
  t.is(counts.enroll, 1, 'one token, one pairing');
  const moved = recordsMatching(
    logs,
    /^identity refused by the control plane and a new enrollment token is present \(guided recovery req-while-down revoked the certificate and every older token/,
  );
  t.is(moved.length, 1);
  t.is(moved[0]?.refusedSerial, oldSerial);
  t.is((await setAside(paired.dataDir)).length, 1, 'the revoked identity is kept aside');
  await waitFor('online', async () => (await control.admin.getConnector(connectorId)).state === 'online');
  t.is((await agent.stop()).exitCode, 0);
  assertNoSecrets(t, 'agent logs', logs.text(), [paired.token, recoveryToken, paired.keyPem]);
});

test('revoked by a recovery with only the spent bootstrap token mounted (older than the certificate): not used, exit 13 saying why', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.revoked-stale-token';
  const paired = await enrolledConnector(t, control, connectorId);
  await beginRecovery(control, connectorId, 'req-stale');
  const { agent, logs, counts } = runAgent(t, paired.config);
  t.is((await agent.done).exitCode, 13);
  t.is(counts.enroll, 0, 'the spent token is never presented');
  t.is(
    recordsMatching(
      logs,
      /^an enrollment token is present, but it was written before this connector's certificate, which guided recovery req-stale revoked: it cannot be that recovery's token/,
    ).length,
    1,
  );
  t.deepEqual(await setAside(paired.dataDir), []);
});

test('revoked by a recovery, the mounted token refused (revoked before use): the enrollment refusal, exit 11, one attempt, the identity kept aside', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.revoked-token-refused';
  const paired = await enrolledConnector(t, control, connectorId);
  await beginRecovery(control, connectorId, 'req-refused');
  await mintInto(control, connectorId, paired.tokenFile, 'recovery-refused');
  await control.admin.revokeTokens(connectorId);
  const { agent, counts } = runAgent(t, paired.config);
  const outcome = await agent.done;
  t.is(outcome.exitCode, 11);
  t.is(outcome.failure?.code, 'ENROLLMENT_TOKEN_REVOKED');
  t.is(counts.enroll, 1, 'one attempt');
  t.is((await setAside(paired.dataDir)).length, 1, 'moved aside, not deleted');
});
