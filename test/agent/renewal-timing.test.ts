// When the agent renews its certificate, against the real control plane issuing short and long
// certificates: the control plane's renewAfter decides, a lifetime under 5 minutes is not renewed
// at every heartbeat (notBefore is back-dated, so a fraction of the window from it fell before
// issuance), and each renewal attempt is logged with the time it fell due and the time left.
import { readFile } from 'node:fs/promises';
import test from 'ava';
import {
  type AgentApi,
  ControlPlaneClient,
  type ControlPlaneClientOptions,
  type HeartbeatAnswer,
} from '../../src/agent/control-plane-client.ts';
import { identityPaths } from '../../src/agent/identity-files.ts';
import { renewalDueAt } from '../../src/agent/renewal-timing.ts';
import { ShiftedClock } from '../../src/lib/clock.ts';
import { parseCertificateFacts } from '../../src/lib/pki.ts';
import {
  configFor,
  prepareConnector,
  recordsMatching,
  runAgent,
  startTestControlPlane,
  waitFor,
} from './harness.ts';

/** The real client, keeping the control plane's heartbeat answers and counting renewals. */
function observingClient(seen: { answers: HeartbeatAnswer[]; renewals: number }) {
  return (options: ControlPlaneClientOptions): AgentApi => {
    const client = new ControlPlaneClient(options);
    return {
      enroll: (body) => client.enroll(body),
      heartbeat: async (body) => {
        const answer = await client.heartbeat(body);
        seen.answers.push(answer);
        return answer;
      },
      renew: (body) => {
        seen.renewals += 1;
        return client.renew(body);
      },
      setIdentity: (identity) => client.setIdentity(identity),
      close: () => client.close(),
    };
  };
}

test('a one-minute certificate is not renewed at every heartbeat: none in the first ten', async (t) => {
  const control = await startTestControlPlane(t, { certificateLifetimeSeconds: 60 });
  const connectorId = 'team-a.short-lived';
  const prepared = await prepareConnector(t, control, connectorId);
  const { agent, logs, counts } = runAgent(t, configFor(control, connectorId, prepared));
  await waitFor('ten heartbeats', () => agent.status().heartbeatsAccepted >= 10);
  t.is(counts.renew, 0);
  t.is(agent.status().renewals, 0);
  t.deepEqual(recordsMatching(logs, /^renewing the certificate/), []);
  const audit = await control.admin.audit({ connectorId });
  t.false(audit.some((entry) => entry.type === 'endpoint.cert_renewed'));
});

test("the control plane's renewAfter decides, not --renew-at-fraction: renewed once when it falls due, then not again", async (t) => {
  // Six-minute certificates: time can then move past renewAfter (4 min in) on both clocks without
  // leaving the control plane's 5-minute back-dating, so the renewed certificate passes TLS too.
  const control = await startTestControlPlane(t, { certificateLifetimeSeconds: 360 });
  const connectorId = 'team-a.renew-after';
  const prepared = await prepareConnector(t, control, connectorId);
  const clock = new ShiftedClock();
  const seen = { answers: [] as HeartbeatAnswer[], renewals: 0 };
  const config = { ...configFor(control, connectorId, prepared), renewAtFraction: 0.99 };
  const { agent, logs } = runAgent(t, config, { clock, createClient: observingClient(seen) });
  await waitFor('two heartbeats', () => agent.status().heartbeatsAccepted >= 2);
  const renewAfter = new Date(seen.answers.at(-1)?.renewAfter ?? '');
  const { notBefore, notAfter } = parseCertificateFacts(
    await readFile(identityPaths(prepared.dataDir).cert, 'utf8'),
  );
  const fractionPoint = notBefore.getTime() + 0.99 * (notAfter.getTime() - notBefore.getTime());
  // Time moves 30 seconds past renewAfter, on both clocks (they stay in step: the agent follows the
  // control plane's clock), still well before the fraction's point.
  const moveTo = renewAfter.getTime() + 30_000;
  t.true(moveTo < fractionPoint, 'the fraction alone would not renew yet');
  clock.offsetMs = moveTo - Date.now();
  control.clock.offsetMs = clock.offsetMs;

  await waitFor('renewed', () => agent.status().renewals >= 1);
  const renewing = recordsMatching(logs, /^renewing the certificate/);
  t.is(renewing.length, 1);
  t.is(renewing[0]?.dueAt, renewAfter.toISOString(), "due at the control plane's renewAfter");
  t.regex(
    String(renewing[0]?.msg),
    new RegExp(
      `^renewing the certificate \\(due since ${renewAfter.toISOString()}, expires in \\d+ min \\d+ s\\)$`,
    ),
  );
  const renewedAt = logs.records().findIndex((r) => String(r.msg) === 'certificate renewed');
  t.true(renewedAt > logs.records().indexOf(renewing[0] ?? {}), 'the attempt is logged before the result');

  // The renewed certificate's renewAfter lies two thirds into its new lifetime: no renewal at every
  // heartbeat.
  const heartbeats = agent.status().heartbeatsAccepted;
  await waitFor('five more heartbeats', () => agent.status().heartbeatsAccepted >= heartbeats + 5);
  t.is(agent.status().renewals, 1);
  t.is(seen.renewals, 1);
  t.is((await agent.stop()).exitCode, 0);
});

test('renewalDueAt: renewAfter when it follows issuance, else the fraction counted from receipt (or notBefore)', (t) => {
  const at = (text: string) => new Date(`2026-01-01T${text}Z`);
  // A 10-minute certificate back-dated 5 minutes: notBefore 00:55, received at 01:00, expires 01:10.
  const notBefore = at('00:55:00');
  const notAfter = at('01:10:00');
  const receivedAt = at('01:00:00');
  const due = (hints: Parameters<typeof renewalDueAt>[3], fraction = 0.5) =>
    renewalDueAt(notBefore, notAfter, fraction, hints).toISOString();
  t.is(due({ receivedAt, renewAfter: at('01:06:40') }), at('01:06:40').toISOString(), 'renewAfter wins');
  t.is(due({ receivedAt, renewAfter: at('01:06:40') }, 0.99), at('01:06:40').toISOString(), 'even over 0.99');
  t.is(due({ receivedAt }), at('01:05:00').toISOString(), 'half of the lifetime from receipt');
  t.is(
    due({ receivedAt, renewAfter: at('00:59:00') }),
    at('01:05:00').toISOString(),
    'a renewAfter before receipt would renew at every heartbeat: the fraction instead',
  );
  t.is(due({}), at('01:02:30').toISOString(), 'loaded from disk: from notBefore');
  // A receipt outside the validity: the clocks still disagree (no offset known). Never due before
  // the receipt, which renewed at every heartbeat, and a renewAfter before it is not followed either.
  t.is(
    due({ receivedAt: at('02:00:00') }),
    at('02:07:30').toISOString(),
    'a receipt after expiry: half of the lifetime counted from the receipt',
  );
  t.is(
    due({ receivedAt: at('02:00:00'), renewAfter: at('01:06:40') }),
    at('02:07:30').toISOString(),
    'a renewAfter before a receipt outside the validity is not followed',
  );
});
