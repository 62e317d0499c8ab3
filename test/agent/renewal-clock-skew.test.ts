// Renewal with the agent's clock off the control plane's, against the real control plane: the
// control plane's renewAfter and the certificate's dates are times on its clock, and the agent
// converts them to its own with the offset it measures from the Date of each answer. An agent an
// hour ahead no longer renews at every heartbeat; one ten minutes behind renews when the control
// plane's clock reaches renewAfter instead of never. The skew is warned about once, saying how far
// and which way.
import test from 'ava';
import {
  type AgentApi,
  ControlPlaneClient,
  type ControlPlaneClientOptions,
  type HeartbeatAnswer,
} from '../../src/agent/control-plane-client.ts';
import { ShiftedClock } from '../../src/lib/clock.ts';
import {
  configFor,
  prepareConnector,
  recordsMatching,
  runAgent,
  startTestControlPlane,
  waitFor,
} from './harness.ts';

const MINUTE = 60_000;

/** The real client, keeping the control plane's heartbeat answers. */
function observingClient(answers: HeartbeatAnswer[]) {
  return (options: ControlPlaneClientOptions): AgentApi => {
    const client = new ControlPlaneClient(options);
    return {
      enroll: (body) => client.enroll(body),
      heartbeat: async (body) => {
        const answer = await client.heartbeat(body);
        answers.push(answer);
        return answer;
      },
      renew: (body) => client.renew(body),
      setIdentity: (identity) => client.setIdentity(identity),
      close: () => client.close(),
    };
  };
}

test('an agent an hour ahead of the control plane: one clock-skew warning, and no renewal at every heartbeat', async (t) => {
  // The shortest lifetime the CLI allows: renewAfter 3 min 20 s after issuance, an hour in the
  // agent's past, which renewed at every heartbeat until the control plane's budget refused it.
  const control = await startTestControlPlane(t, { certificateLifetimeSeconds: 300 });
  const connectorId = 'team-a.clock-ahead';
  const prepared = await prepareConnector(t, control, connectorId);
  const clock = new ShiftedClock();
  clock.offsetMs = 60 * MINUTE;
  const { agent, logs, counts } = runAgent(t, configFor(control, connectorId, prepared), { clock });
  await waitFor('fifteen heartbeats', () => agent.status().heartbeatsAccepted >= 15);
  t.is(counts.renew, 0, 'not renewed: renewAfter is minutes away on the control plane clock');
  t.deepEqual(recordsMatching(logs, /^renewing the certificate/), []);
  const warnings = recordsMatching(logs, /^clock skew: /);
  t.is(warnings.length, 1, 'warned once');
  t.is(warnings[0]?.level, 40);
  t.regex(
    String(warnings[0]?.msg),
    /^clock skew: this node's clock is (1 h 0 min|59 min 5\d s) ahead of the control plane's \(by the Date of its answers\)/,
  );
  t.is((await agent.stop()).exitCode, 0);
});

test("an agent ten minutes behind renews at renewAfter by the control plane's clock (it never renewed and stopped at expiry)", async (t) => {
  // Six-minute certificates: time can move past renewAfter (4 min in) on both clocks and stay
  // within the control plane's 5-minute back-dating, so the renewed certificate passes TLS.
  const control = await startTestControlPlane(t, { certificateLifetimeSeconds: 360 });
  const connectorId = 'team-a.clock-behind';
  const prepared = await prepareConnector(t, control, connectorId);
  const clock = new ShiftedClock();
  clock.offsetMs = -10 * MINUTE;
  const answers: HeartbeatAnswer[] = [];
  const { agent, logs } = runAgent(t, configFor(control, connectorId, prepared), {
    clock,
    createClient: observingClient(answers),
  });
  await waitFor('two heartbeats', () => agent.status().heartbeatsAccepted >= 2);
  const renewAfter = new Date(answers.at(-1)?.renewAfter ?? '');
  t.regex(
    String(recordsMatching(logs, /^clock skew: /)[0]?.msg),
    /^clock skew: this node's clock is (10 min 0 s|9 min 59 s|10 min 1 s) behind the control plane's/,
  );

  // Time passes, 30 s past renewAfter on the control plane's clock; this node stays 10 min behind,
  // so on its own clock renewAfter is still more than 9 minutes away.
  control.clock.offsetMs = renewAfter.getTime() + 30_000 - Date.now();
  clock.offsetMs = control.clock.offsetMs - 10 * MINUTE;
  await waitFor('renewed', () => agent.status().renewals >= 1);
  const renewing = recordsMatching(logs, /^renewing the certificate/);
  t.is(renewing.length, 1);
  // Logged on this node's clock: renewAfter converted, 10 minutes earlier (within the Date header's second).
  const dueAt = new Date(String(renewing[0]?.dueAt)).getTime();
  t.true(Math.abs(dueAt - (renewAfter.getTime() - 10 * MINUTE)) < 2_000, String(renewing[0]?.dueAt));
  t.regex(String(renewing[0]?.msg), /expires in (1|2) min \d+ s\)$/);
  await waitFor('heartbeats with the renewed certificate', () => agent.status().heartbeatsAccepted >= 8);
  t.is(agent.status().renewals, 1, 'once');
  t.is(recordsMatching(logs, /^clock skew: /).length, 1, 'warned once');
  t.is((await agent.stop()).exitCode, 0);
});
