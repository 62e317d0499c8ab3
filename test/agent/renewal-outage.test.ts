// A certificate that runs out while the control plane is down, for real: the real control plane
// issues 4-second certificates and is stopped right after pairing. The agent warns once when
// renewal falls due and once at expiry, with the time left; when the control plane is back it
// refuses the expired certificate, both clocks agree, and the agent stops with IDENTITY_EXPIRED
// (the control plane cannot renew it). A guided recovery's token then replaces it exactly once.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import test from 'ava';
import { NEXT_STEPS } from '../../src/agent/failure.ts';
import { identityPaths } from '../../src/agent/identity-files.ts';
import type { TerminationMessage } from '../../src/contract/agent-process.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import {
  configFor,
  prepareConnector,
  recordsMatching,
  restartControlPlane,
  runAgent,
  startTestControlPlane,
  waitFor,
} from './harness.ts';

test('expired during an outage: warned at the renewal point and at expiry, then IDENTITY_EXPIRED; the recovery token pairs once', async (t) => {
  const control = await startTestControlPlane(t, { certificateLifetimeSeconds: 4 });
  const connectorId = 'team-a.outage-expiry';
  const prepared = await prepareConnector(t, control, connectorId);
  const config = configFor(control, connectorId, prepared);
  const { agent, logs } = runAgent(t, config);
  await waitFor('connected', () => agent.status().heartbeatsAccepted >= 1);
  await control.cp.close();

  const due = await waitFor(
    'the renewal warning',
    () => recordsMatching(logs, /^certificate renewal due since/)[0],
  );
  t.is(due.level, 40);
  t.regex(
    String(due.msg),
    /^certificate renewal due since \S+Z: the control plane is unreachable; the certificate expires in \d+ s$/,
  );
  const expired = await waitFor(
    'the expiry warning',
    () =>
      recordsMatching(
        logs,
        /^certificate has expired or is not yet valid: this connector's certificate expired at/,
      )[0],
  );
  t.is(expired.level, 40);
  t.regex(
    String(expired.msg),
    /expired at \S+Z while the control plane was unreachable \(expired \d+ s ago\)/,
  );
  const failuresSoFar = recordsMatching(logs, /^heartbeat failed/).length;
  await waitFor(
    'three more failed heartbeats',
    () => recordsMatching(logs, /^heartbeat failed/).length >= failuresSoFar + 3,
  );
  t.is(
    recordsMatching(logs, /^certificate renewal due since/).length,
    1,
    'warned once, not at every failure',
  );
  t.is(recordsMatching(logs, /^certificate has expired or is not yet valid: this connector's/).length, 1);

  // The control plane is back: it refuses the expired certificate, and this node's clock agrees.
  const restarted = await restartControlPlane(t, control);
  const outcome = await agent.done;
  t.is(outcome.exitCode, 13);
  const message = JSON.parse(await readFile(config.terminationLog, 'utf8')) as TerminationMessage;
  t.is(message.code, 'IDENTITY_EXPIRED');
  t.is(message.failureClass, 'IdentityLoss');
  t.regex(
    message.reason,
    /^certificate has expired or is not yet valid: this connector's certificate \(serial \w+\) expired at /,
  );
  t.regex(message.reason, /by this node's clock as by the control plane's/);
  t.regex(message.reason, /401 CLIENT_CERTIFICATE_EXPIRED/);
  t.is(message.nextStep, NEXT_STEPS.identityExpired);
  const rejection = JSON.parse(await readFile(identityPaths(config.dataDir).rejection, 'utf8')) as {
    code: string;
  };
  t.is(rejection.code, 'CLIENT_CERTIFICATE_EXPIRED');

  // Guided recovery: the connector goes offline, the recovery begins, its one token is mounted.
  control.clock.offsetMs = 60_000;
  await waitFor('offline', async () => {
    restarted.sweep();
    return (await control.admin.getConnector(connectorId)).state === 'offline';
  });
  await control.admin.beginRecovery(connectorId, 'req-expired');
  control.clock.offsetMs = 0;
  const minted = await control.admin.mintToken(connectorId, { idempotencyKey: 'recovery-req-expired' });
  await writeFile(prepared.tokenFile, minted.token, { mode: 0o600 });
  const again = runAgent(t, config);
  await waitFor('paired again and heartbeating', () => again.agent.status().heartbeatsAccepted > 0);
  t.is(again.counts.enroll, 1, 'paired exactly once');
  t.is(
    recordsMatching(again.logs, /^identity refused by the control plane and a new enrollment token/).length,
    1,
  );
  const aside = (await readdir(config.dataDir)).filter((name) => name.startsWith('identity.rejected-'));
  t.is(aside.length, 1, 'the expired identity is kept aside, not deleted');
  t.is((await again.agent.stop()).exitCode, 0);
  assertNoSecrets(t, 'agent logs', logs.text() + again.logs.text(), [prepared.token, minted.token]);
});
