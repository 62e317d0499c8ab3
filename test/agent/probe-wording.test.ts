// Wording the outside probe of issue 12 found wrong, each produced for real: an enrollment request
// that was sent and never answered (it did reach the control plane, so the line must not say it
// did not), and /readyz after the control plane went away (503 must not report "online" as the
// state of now).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { startHealthServer } from '../../src/agent/health-server.ts';
import { makeCa, tempDir } from './fixtures.ts';
import {
  agentConfig,
  enrolledConnector,
  prepareConnector,
  recordsMatching,
  runAgent,
  startTestControlPlane,
  waitFor,
} from './harness.ts';
import { endsWithin, serverCertificate, tlsPort, urlOf } from './transport-servers.ts';

test('an enrollment request that was sent and never answered says so: "enrollment request sent, but no answer came", never "did not reach"', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.unanswered-enroll';
  const prepared = await prepareConnector(t, control, connectorId);
  const ca = await makeCa('Unanswered Enroll CA');
  // A TLS server that takes the request and never answers.
  const port = await tlsPort(t, await serverCertificate(ca), () => {});
  const caFile = join(await tempDir(t), 'ca.pem');
  await writeFile(caFile, ca.certPem);
  const config = agentConfig({
    connectorId,
    controlPlaneUrl: urlOf(port),
    caFile,
    tokenFile: prepared.tokenFile,
    dataDir: prepared.dataDir,
    terminationLog: join(prepared.dataDir, 'termination-log'),
    requestTimeoutMs: 300,
    giveUpAfterMs: 1_000,
  });
  const { agent, logs } = runAgent(t, config);
  const outcome = await endsWithin(agent.done, 20_000, 'the agent');
  t.is(outcome.exitCode, 14);
  const sent = recordsMatching(
    logs,
    new RegExp(
      `^enrollment request sent, but no answer came: connection timed out after 0\\.3s reaching 127\\.0\\.0\\.1:${port} waiting for the answer`,
    ),
  );
  t.true(sent.length >= 1, logs.text());
  t.regex(String(sent[0]?.msg), /if the control plane paired this connector meanwhile, the token is spent/);
  t.deepEqual(recordsMatching(logs, /did not reach the control plane/), []);
});

test('/readyz after the control plane went away: 503, and the state is "not ready" with the last reported state and its time, not "online"', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.readyz-state';
  const { config } = await enrolledConnector(t, control, connectorId);
  const { agent } = runAgent(t, config);
  const health = await startHealthServer({ host: '127.0.0.1', port: 0, readiness: () => agent.readiness() });
  t.teardown(() => health.close());
  await waitFor('ready', async () => (await fetch(`${health.url}/readyz`)).status === 200);
  const ready = (await (await fetch(`${health.url}/readyz`)).json()) as Record<string, unknown>;
  t.is(ready.state, 'online');

  await control.cp.close();
  const answer = await waitFor('not ready', async () => {
    const response = await fetch(`${health.url}/readyz`);
    return response.status === 503 ? ((await response.json()) as Record<string, unknown>) : undefined;
  });
  t.is(answer.ready, false);
  t.not(answer.state, 'online');
  t.is(
    answer.state,
    `not ready (online as of the last accepted heartbeat, ${String(answer.lastHeartbeatAt)})`,
  );
  t.is(answer.lastReportedState, 'online');
  t.regex(String(answer.detail), /^last heartbeat accepted \d+ s ago, more than 3 intervals$/);
});
