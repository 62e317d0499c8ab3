// An identity the control plane refuses, against the real control plane with real files: the claim
// of a connector that was deleted (deletionPolicy Release) and created again holds the old identity.
// The agent fails closed and remembers the refusal; a token mounted after it (a guided recovery's)
// makes it move the identity aside, never delete it, and pair exactly once; a token that was already
// mounted, a missing token or an identity of another control plane never does. A CA the control
// plane no longer trusts is such a refusal too; clock skew and the other causes are in
// refusal-causes.test.ts.
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { type RefusalCause, refusalCause } from '../../src/agent/certificate-refusal.ts';
import type { AgentConfig } from '../../src/agent/config.ts';
import { identityPaths } from '../../src/agent/identity-files.ts';
import { tokenFingerprint } from '../../src/agent/identity-rejection.ts';
import { saveIdentity } from '../../src/agent/identity-write.ts';
import type { TerminationMessage } from '../../src/contract/agent-process.ts';
import { CodedError } from '../../src/lib/errors.ts';
import { parseCertificateFacts } from '../../src/lib/pki.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import { issueConnectorCert, makeCa } from './fixtures.ts';
import {
  CONNECTOR_CONFIG,
  configFor,
  enrolledConnector,
  prepareConnector,
  recordsMatching,
  runAgent,
  startTestControlPlane,
  type TestControlPlane,
  waitFor,
} from './harness.ts';

/** Pairs a connector, stops its agent, then deletes and re-creates its record (a Release delete). */
async function releasedAndRecreated(t: ExecutionContext, control: TestControlPlane, connectorId: string) {
  const paired = await enrolledConnector(t, control, connectorId);
  const paths = identityPaths(paired.dataDir);
  const oldSerial = parseCertificateFacts(await readFile(paths.cert, 'utf8')).serial;
  await control.admin.deleteConnector(connectorId);
  await control.admin.ensureConnector(connectorId, CONNECTOR_CONFIG);
  return { ...paired, oldKey: paired.keyPem, oldSerial, paths, secrets: [paired.token, paired.keyPem] };
}

async function mintInto(control: TestControlPlane, connectorId: string, tokenFile: string, key: string) {
  const minted = await control.admin.mintToken(connectorId, { idempotencyKey: key });
  await writeFile(tokenFile, minted.token, { mode: 0o600 });
  return minted.token;
}

async function termination(config: AgentConfig): Promise<TerminationMessage> {
  return JSON.parse(await readFile(config.terminationLog, 'utf8')) as TerminationMessage;
}

async function rejection(dataDir: string) {
  return JSON.parse(await readFile(identityPaths(dataDir).rejection, 'utf8')) as {
    serial: string;
    tokensSeen: string[];
    code: string;
    message: string;
  };
}

test('an older control plane answers every cause with CLIENT_CERTIFICATE_REJECTED: its verify code and wording tell them apart', (t) => {
  const rejected = (message: string, details?: Record<string, unknown>) =>
    new CodedError('CLIENT_CERTIFICATE_REJECTED', `client certificate rejected: ${message}`, {
      httpStatus: 401,
      ...(details ? { details } : {}),
    });
  const rows: Array<[CodedError, RefusalCause]> = [
    [rejected('the client certificate belongs to no enrolled connector'), 'unknown'],
    [rejected('the client certificate was replaced or revoked'), 'replacedOrRevoked'],
    [
      rejected('certificate has expired or is not yet valid (CERT_HAS_EXPIRED)', {
        reason: 'CERT_HAS_EXPIRED',
      }),
      'expired',
    ],
    [
      rejected('certificate has expired or is not yet valid (CERT_NOT_YET_VALID)', {
        reason: 'CERT_NOT_YET_VALID',
      }),
      'notYetValid',
    ],
    [rejected('certificate has expired or is not yet valid'), 'expired'],
    [
      rejected('certificate signed by unknown authority (UNABLE_TO_GET_ISSUER_CERT)', {
        reason: 'UNABLE_TO_GET_ISSUER_CERT',
      }),
      'untrusted',
    ],
    [
      new CodedError('CLIENT_CERTIFICATE_REJECTED', 'the client certificate is not a connector certificate', {
        httpStatus: 401,
      }),
      'sanMismatch',
    ],
    [rejected('something new'), 'unrecognized'],
    [
      new CodedError('CLIENT_CERTIFICATE_REQUIRED', 'client certificate required', { httpStatus: 401 }),
      'required',
    ],
  ];
  for (const [error, cause] of rows) t.is(refusalCause(error), cause, error.message);
});

test('a kept claim after a Release delete: refused with the token already mounted, then a recovery token pairs once and the old identity is kept aside', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.reattached';
  const setup = await releasedAndRecreated(t, control, connectorId);
  const { config, paths, oldSerial } = setup;
  // The new record's bootstrap token is mounted before the agent first starts.
  const bootstrap = await mintInto(control, connectorId, setup.tokenFile, 'enroll-new-1');
  const secrets = [...setup.secrets, bootstrap];

  for (const attempt of [1, 2]) {
    const { agent, logs, counts } = runAgent(t, config);
    const outcome = await agent.done;
    t.is(outcome.exitCode, 13, `start ${attempt}`);
    t.is(counts.enroll, 0, `start ${attempt}: the bootstrap token is not used`);
    const message = await termination(config);
    t.is(message.code, 'IDENTITY_REJECTED');
    t.is(message.failureClass, 'IdentityLoss');
    t.regex(message.reason, /belongs to no enrolled connector/);
    t.regex(message.nextStep, /identity\.rejected-/);
    t.is(
      recordsMatching(logs, /mounted before the control plane first refused|already mounted when/).length,
      1,
    );
    assertNoSecrets(t, 'agent logs', logs.text(), secrets);
  }
  const recorded = await rejection(config.dataDir);
  t.is(recorded.serial, oldSerial);
  t.deepEqual(recorded.tokensSeen, [tokenFingerprint(oldSerial, bootstrap)]);
  assertNoSecrets(t, 'rejection.json', JSON.stringify(recorded), secrets);
  t.is((await control.admin.getConnector(connectorId)).state, 'pending');

  // A guided recovery: the stale token is revoked and one fresh token minted after the refusal.
  await control.admin.revokeTokens(connectorId);
  const recoveryToken = await mintInto(control, connectorId, setup.tokenFile, 'recovery-reattach-1');
  secrets.push(recoveryToken);
  const before = await control.admin.audit({ connectorId });
  const { agent, logs, counts } = runAgent(t, config);
  await waitFor('online and retired', async () => {
    const c = await control.admin.getConnector(connectorId);
    return c.state === 'online' && c.bootstrapRetired;
  });
  t.is(counts.enroll, 1, 'paired exactly once');
  const moved = recordsMatching(
    logs,
    /^identity refused by the control plane and a new enrollment token is present/,
  );
  t.is(moved.length, 1);
  t.is(moved[0]?.refusedSerial, oldSerial);
  t.is((await agent.stop()).exitCode, 0);

  // The refused identity is kept whole, with its modes, next to the new one.
  const entries = (await readdir(config.dataDir)).filter((name) => name.startsWith('identity.rejected-'));
  t.is(entries.length, 1);
  const aside = join(config.dataDir, entries[0] ?? '');
  t.is(moved[0]?.movedTo, aside);
  t.is((await stat(aside)).mode & 0o777, 0o700);
  t.is((await stat(join(aside, 'key.pem'))).mode & 0o777, 0o600);
  t.is(await readFile(join(aside, 'key.pem'), 'utf8'), setup.oldKey);
  t.truthy(await stat(join(aside, 'rejection.json')));
  const newSerial = parseCertificateFacts(await readFile(paths.cert, 'utf8')).serial;
  t.not(newSerial, oldSerial);
  t.is((await control.admin.getConnector(connectorId)).certificate?.serial, newSerial);
  const after = await control.admin.audit({ connectorId });
  const since = before.at(-1)?.seq ?? 0;
  t.is(after.filter((e) => e.seq > since && e.type === 'endpoint.enrolled').length, 1, 'one pairing');
  assertNoSecrets(t, 'agent logs', logs.text(), secrets);

  // A restart (the spent token still mounted) reconnects with the new identity, without a token.
  const again = runAgent(t, config);
  await waitFor('connected again', () => again.agent.status().heartbeatsAccepted > 0);
  t.is(again.counts.enroll, 0);
  t.is((await again.agent.stop()).exitCode, 0);
});

test('refused with no token: fails closed every start; a token mounted afterwards replaces the identity', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.no-token-yet';
  const setup = await releasedAndRecreated(t, control, connectorId);
  await rm(setup.tokenFile);
  for (const attempt of [1, 2]) {
    const { agent, counts } = runAgent(t, setup.config);
    t.is((await agent.done).exitCode, 13, `start ${attempt}`);
    t.is(counts.enroll, 0);
  }
  t.deepEqual((await rejection(setup.config.dataDir)).tokensSeen, []);
  await mintInto(control, connectorId, setup.tokenFile, 'recovery-1');
  const { agent, counts } = runAgent(t, setup.config);
  await waitFor('online', async () => (await control.admin.getConnector(connectorId)).state === 'online');
  t.is(counts.enroll, 1);
  t.is((await agent.stop()).exitCode, 0);
});

test('a token refused after the identity was moved aside stops the agent: one pairing attempt, no loop', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.spent';
  const setup = await releasedAndRecreated(t, control, connectorId);
  await rm(setup.tokenFile);
  t.is((await runAgent(t, setup.config).agent.done).exitCode, 13);
  // A token mounted after the refusal, but revoked before the agent uses it.
  await mintInto(control, connectorId, setup.tokenFile, 'recovery-2');
  await control.admin.revokeTokens(connectorId);
  const { agent, counts, logs } = runAgent(t, setup.config);
  const outcome = await agent.done;
  t.is(outcome.exitCode, 11);
  t.is(outcome.failure?.code, 'ENROLLMENT_TOKEN_REVOKED');
  t.is(counts.enroll, 1, 'one attempt');
  t.is(counts.heartbeat, 1, 'the refused identity was presented once');
  t.is(recordsMatching(logs, /^identity refused by the control plane/).length, 1);
  const entries = (await readdir(setup.config.dataDir)).filter((n) => n.startsWith('identity.rejected-'));
  t.is(entries.length, 1, 'the refused identity is kept aside, not deleted');
});

/** A well-formed identity for this connector, issued by a CA the control plane does not know. */
async function identityOfAnotherCa(dataDir: string, connectorId: string, controlPlaneUrl: string) {
  const otherCa = await makeCa('Another CA');
  const { keyPem, certPem } = await issueConnectorCert(otherCa, { connectorId });
  const facts = parseCertificateFacts(certPem);
  await saveIdentity(dataDir, {
    keyPem,
    certPem,
    caPem: otherCa.certPem,
    metadata: {
      connectorId,
      serial: facts.serial,
      notAfter: facts.notAfter.toISOString(),
      enrolledAt: new Date().toISOString(),
      controlPlaneUrl,
    },
  });
  return { keyPem, serial: facts.serial };
}

test("the control plane's CA changed: IDENTITY_UNTRUSTED, exit 13; the token already mounted is not used, a recovery's token replaces the identity", async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.foreign-ca';
  const prepared = await prepareConnector(t, control, connectorId);
  const config = configFor(control, connectorId, prepared);
  const old = await identityOfAnotherCa(prepared.dataDir, connectorId, control.cp.url);

  const first = runAgent(t, config);
  t.is((await first.agent.done).exitCode, 13);
  const message = await termination(config);
  t.is(message.code, 'IDENTITY_UNTRUSTED');
  t.is(message.failureClass, 'IdentityLoss');
  t.regex(
    message.reason,
    /^client certificate rejected: certificate signed by unknown authority: the control plane at https:\/\/127\.0\.0\.1:\d+ no longer trusts the CA/,
  );
  t.regex(message.nextStep, /restore the control plane's CA/);
  t.is(first.counts.enroll, 0, 'the token mounted before the refusal is not used');
  t.is((await rejection(prepared.dataDir)).code, 'CLIENT_CERTIFICATE_UNTRUSTED');
  t.not((await control.admin.getConnector(connectorId)).liveToken, null, 'the token was not spent');

  await control.admin.revokeTokens(connectorId);
  const recoveryToken = await mintInto(control, connectorId, prepared.tokenFile, 'recovery-ca-1');
  const second = runAgent(t, config);
  await waitFor('online', async () => (await control.admin.getConnector(connectorId)).state === 'online');
  t.is(second.counts.enroll, 1, 'paired exactly once');
  const aside = (await readdir(prepared.dataDir)).filter((n) => n.startsWith('identity.rejected-'));
  t.is(aside.length, 1);
  t.is(await readFile(join(prepared.dataDir, aside[0] ?? '', 'key.pem'), 'utf8'), old.keyPem, 'kept aside');
  t.is((await second.agent.stop()).exitCode, 0);
  assertNoSecrets(t, 'agent logs', first.logs.text() + second.logs.text(), [
    prepared.token,
    recoveryToken,
    old.keyPem,
  ]);
});

test('an identity issued by another control plane than --control-plane-url: CONTROL_PLANE_MISMATCH, exit 12, never replaced', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.other-control-plane';
  const prepared = await prepareConnector(t, control, connectorId);
  const config = configFor(control, connectorId, prepared);
  await identityOfAnotherCa(prepared.dataDir, connectorId, 'https://old-control-plane.example:8443');
  for (const attempt of [1, 2]) {
    const { agent, counts } = runAgent(t, config);
    t.is((await agent.done).exitCode, 12, `start ${attempt}`);
    t.is(counts.enroll, 0, `start ${attempt}: no token is used`);
    const message = await termination(config);
    t.is(message.code, 'CONTROL_PLANE_MISMATCH');
    t.is(String(message.failureClass), 'Configuration');
    t.regex(message.reason, /issued by the control plane at https:\/\/old-control-plane\.example:8443/);
    t.regex(message.reason, /but this agent points at https:\/\/127\.0\.0\.1:\d+/);
    t.regex(message.nextStep, /--control-plane-url/);
    // A token minted after the first refusal does not make it give the identity up either.
    await control.admin.revokeTokens(connectorId);
    await mintInto(control, connectorId, prepared.tokenFile, `after-mismatch-${attempt}`);
  }
  await t.throwsAsync(readFile(identityPaths(prepared.dataDir).rejection, 'utf8'), { code: 'ENOENT' });
  t.deepEqual(
    (await readdir(prepared.dataDir)).filter((n) => n.startsWith('identity.rejected-')),
    [],
  );
});
