// A token the control plane refused for good is not sent again (src/agent/refused-tokens.ts), against
// the real control plane with real files: the runbook forbids treating repeated bootstrap retries as
// a normal restart path, and before this an agent in a crash loop presented the same refused token at
// every restart. A fresh token, mounted in its place, is sent and pairs once.
import { readFile, rm, writeFile } from 'node:fs/promises';
import test from 'ava';
import { identityPaths } from '../../src/agent/identity-files.ts';
import type { TerminationMessage } from '../../src/contract/agent-process.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import {
  configFor,
  enrolledConnector,
  prepareConnector,
  runAgent,
  startTestControlPlane,
  waitFor,
} from './harness.ts';

async function termination(path: string): Promise<TerminationMessage> {
  return JSON.parse(await readFile(path, 'utf8')) as TerminationMessage;
}

test('a revoked token refused at first boot is not sent at the next starts; a fresh token mounted in its place pairs once', async (t) => {
  const control = await startTestControlPlane(t);
  const id = 'team-a.refused';
  const prepared = await prepareConnector(t, control, id);
  await control.admin.revokeTokens(id);
  const config = configFor(control, id, prepared);

  const first = runAgent(t, config);
  const firstExit = await first.agent.done;
  t.is(first.counts.enroll, 1, 'the first start sends the token once');
  t.is(firstExit.failure?.code, 'ENROLLMENT_TOKEN_REVOKED');
  const recorded = await readFile(identityPaths(prepared.dataDir).refusedTokens, 'utf8');
  t.false(recorded.includes(prepared.token), 'the record holds a fingerprint, never the token');

  for (const start of [2, 3]) {
    const again = runAgent(t, config);
    const exit = await again.agent.done;
    t.is(again.counts.enroll, 0, `start ${start} does not send the refused token`);
    t.is(exit.exitCode, firstExit.exitCode, 'and fails closed the same way');
    t.is(exit.failure?.code, 'ENROLLMENT_TOKEN_REVOKED');
    const said = await termination(config.terminationLog);
    t.regex(said.reason, /not sent again: the control plane refused this token at \S+Z/);
    assertNoSecrets(t, 'termination message', JSON.stringify(said), [prepared.token]);
    assertNoSecrets(t, 'log', again.logs.text(), [prepared.token]);
  }

  const fresh = await control.admin.mintToken(id, { idempotencyKey: 'fresh' });
  await writeFile(prepared.tokenFile, fresh.token, { mode: 0o600 });
  const paired = runAgent(t, config);
  await waitFor('online', async () => (await control.admin.getConnector(id)).state === 'online');
  t.is(paired.counts.enroll, 1, 'the fresh token is sent, once');
});

test('a paired connector whose data directory was emptied, with its spent token still mounted, presents that token once, not at every restart', async (t) => {
  const control = await startTestControlPlane(t);
  const id = 'team-a.emptied';
  const connector = await enrolledConnector(t, control, id);
  await rm(identityPaths(connector.dataDir).dir, { recursive: true, force: true });

  const first = runAgent(t, connector.config);
  const firstExit = await first.agent.done;
  t.is(first.counts.enroll, 1);
  t.is(firstExit.failure?.code, 'ENROLLMENT_TOKEN_INVALID');
  const second = runAgent(t, connector.config);
  const secondExit = await second.agent.done;
  t.is(second.counts.enroll, 0, 'the spent token is not sent again');
  t.is(secondExit.exitCode, firstExit.exitCode);
  t.is(
    secondExit.failure?.failureClass,
    firstExit.failure?.failureClass,
    'the same diagnosis for the operator',
  );
});

test('a refusal is that control plane’s: pointed at another, the agent sends the token; a damaged record is no record', async (t) => {
  const control = await startTestControlPlane(t);
  const id = 'team-a.moved';
  const prepared = await prepareConnector(t, control, id);
  await control.admin.revokeTokens(id);
  const config = configFor(control, id, prepared);
  const refused = runAgent(t, config);
  await refused.agent.done;
  t.is(refused.counts.enroll, 1);

  const other = await startTestControlPlane(t);
  const elsewhere = runAgent(t, { ...config, controlPlaneUrl: other.cp.url, caFile: other.caFile });
  await elsewhere.agent.done;
  t.is(elsewhere.counts.enroll, 1, 'another control plane never refused it: it is asked');

  // An entry without its fields (a hand edit, a torn copy) refuses nothing.
  const path = identityPaths(prepared.dataDir).refusedTokens;
  const record = JSON.parse(await readFile(path, 'utf8')) as { refused: Array<Record<string, unknown>> };
  await writeFile(
    path,
    JSON.stringify({ refused: record.refused.map(({ token, code }) => ({ token, code })) }),
  );
  const again = runAgent(t, config);
  await again.agent.done;
  t.is(again.counts.enroll, 1, 'sent again, and refused again');
});
