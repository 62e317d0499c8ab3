// What the plugin says when it asked the control plane and no record came back: an error answer is
// "answered HTTP <status> <code>: <message>", cleaned, and no answer at all (a connection refused,
// a timeout) is "did not answer": the two call for different fixes, so they never read alike. The
// admin client is the real one, with its transport replaced by a scripted control plane.
import test from 'ava';
import { type Clock, FakeClock } from '../../src/lib/clock.ts';
import { ControlPlaneAdminClient, type HttpResponse } from '../../src/operator/control-plane/admin-client.ts';
import { diagnoseText } from '../../src/plugin/commands/diagnose.ts';
import { controlPlaneView } from '../../src/plugin/connector-facts.ts';
import type { ControlPlaneSource } from '../../src/plugin/control-plane-access.ts';
import { runbookChecks } from '../../src/plugin/runbook-checks.ts';
import { statusReport, statusReportText } from '../../src/plugin/status-report.ts';
import { connector, facts, NOW, ONLINE_STATUS } from './facts-fixtures.ts';

const ESC = '\u001b';
const CREDENTIAL = 'vpa_admin_credential_0123456789';
const source: ControlPlaneSource = { kind: 'ControlPlane', name: 'team-a/vaultpam', url: 'https://cp' };

/** The view of connector team-a.edge from a control plane that answers (or fails) as `answer` says. */
function viewWhen(answer: (method: string, url: string) => Promise<HttpResponse>, clock?: Clock) {
  const client = new ControlPlaneAdminClient({
    url: 'https://cp',
    caPem: '',
    credential: CREDENTIAL,
    fetch: answer,
  });
  return controlPlaneView({ source, client, credential: CREDENTIAL }, 'team-a.edge', 20, clock);
}

const errorBody = (code: string, message: string) => JSON.stringify({ error: { code, message } });

test('an error answer is said as one: HTTP status, code and the cleaned message', async (t) => {
  const notFound = await viewWhen(async () => ({
    status: 404,
    body: errorBody('CONNECTOR_NOT_FOUND', `no connector team-a.edge${ESC}[31m\nforged: line`),
  }));
  t.is(notFound.record, undefined);
  t.is(notFound.unavailable, undefined, 'it was asked');
  t.is(
    notFound.askFailed,
    'the control plane answered HTTP 404 CONNECTOR_NOT_FOUND: no connector team-a.edge forged: line',
  );
  const badRequest = await viewWhen(async () => ({ status: 400, body: 'Bad Request' }));
  t.is(
    badRequest.askFailed,
    'the control plane answered HTTP 400',
    'a body that is no error JSON: the status',
  );
  const echoed = await viewWhen(async () => ({
    status: 400,
    body: errorBody('INVALID_REQUEST', `refused Authorization: Bearer ${CREDENTIAL}`),
  }));
  t.false(echoed.askFailed?.includes(CREDENTIAL), echoed.askFailed);
  t.regex(echoed.askFailed ?? '', /^the control plane answered HTTP 400 INVALID_REQUEST: refused /);
});

test('no answer (a connection refused, a timeout) is "did not answer"', async (t) => {
  const refused = await viewWhen(async () => {
    throw new Error('connect ECONNREFUSED 127.0.0.1:443');
  });
  t.is(
    refused.askFailed,
    'the control plane did not answer: control plane https://cp unreachable: connect ECONNREFUSED 127.0.0.1:443',
  );
  const timedOut = await viewWhen(async () => {
    throw new Error('no answer within 10000 ms');
  });
  t.regex(timedOut.askFailed ?? '', /^the control plane did not answer: .*no answer within 10000 ms$/);
});

test('diagnose and status say it was asked and what came back, not "not asked"', async (t) => {
  const controlPlane = await viewWhen(async () => ({
    status: 404,
    body: errorBody('CONNECTOR_NOT_FOUND', 'no connector team-a.edge'),
  }));
  const gathered = facts(connector(ONLINE_STATUS), {
    controlPlane: {
      ...controlPlane,
      source: { ...source, ready: { status: 'True', reason: 'Reachable', message: 'ok' } },
    },
  });
  const check = runbookChecks(gathered).checks.find((c) => c.title.startsWith('Control plane'));
  t.regex(
    check?.detail ?? '',
    /, but asked from here the control plane answered HTTP 404 CONNECTOR_NOT_FOUND: no connector team-a\.edge: /,
  );
  const text = statusReportText(statusReport(gathered), NOW);
  t.regex(
    text,
    /^ {2}Asked: {14}the control plane answered HTTP 404 CONNECTOR_NOT_FOUND: no connector team-a\.edge$/m,
  );
  t.notRegex(text, /Not asked/);
  t.regex(text, /Last audit entries:\n {2}none read \(see above\)/);
});

test("a record's text is cleaned before it is shown, as the operator cleans it for status", async (t) => {
  // A broken or hostile control plane (or an agent's text it keeps) must not reach the terminal:
  // an escape sequence, a forged second line, a time that is no time, a string "false".
  const hostile = {
    connectorId: 'team-a.edge',
    state: `online${ESC}]0;pwned${ESC}\\\nforged: line`,
    bootstrapRetired: 'false',
    enrolledAt: `2026-01-01T00:00:00Z${ESC}[2J`,
    lastHeartbeatAt: `yesterday${ESC}[31m`,
    stateChangedAt: '2026-01-01T00:00:00Z',
    ownerUid: 'uid-1',
    certificate: null,
    liveToken: null,
    recovery: null,
    paths: [{ name: `vault${ESC}[1m`, status: 'failing', detail: `x\nforged: line ${ESC}[0m` }],
    lastEnrollmentFailure: { code: `BAD${ESC}[5m`, at: '2026-01-01T00:00:00Z' },
  };
  const view = await viewWhen(async () => ({ status: 200, body: JSON.stringify(hostile) }));
  t.is(view.record?.state, 'online forged: line' as never, 'the title-setting sequence is gone whole');
  t.false(view.record?.bootstrapRetired, 'a string "false" is not retired');
  t.is(view.record?.lastHeartbeatAt, null, 'no time: nothing');
  const gathered = facts(connector(ONLINE_STATUS), {
    controlPlane: {
      ...view,
      source: { ...source, ready: { status: 'True', reason: 'Reachable', message: 'ok' } },
    },
  });
  const text = statusReportText(statusReport(gathered), NOW);
  const checks = JSON.stringify(runbookChecks(gathered));
  for (const shown of [text, checks, JSON.stringify(statusReport(gathered))]) {
    t.false(shown.includes(ESC), 'no escape sequence reaches the output');
    t.notRegex(shown, /\nforged: line/, 'no forged line');
  }
  t.regex(text, /State: +online forged: line$/m);
});

test('an answer that is no record is said as such, not shown as one', async (t) => {
  for (const body of ['null', '"online"', '[1,2]']) {
    const view = await viewWhen(async () => ({ status: 200, body }));
    t.is(view.record, undefined, body);
    t.is(view.askFailed, 'the control plane answered with no connector record', body);
  }
});

/** A record as the reference control plane writes one, in `state`. */
const recordIn = (state: string) => ({
  connectorId: 'team-a.edge',
  state,
  bootstrapRetired: true,
  lastHeartbeatAt: '2026-03-01T10:00:00Z',
  stateChangedAt: '2026-03-01T11:00:00Z',
  ownerUid: 'uid-1',
  certificate: null,
  liveToken: null,
  recovery: null,
  paths: [],
  lastEnrollmentFailure: null,
});

/** A control plane that answers a read of the record with `record`, of the audit with `entries`. */
const answering =
  (record: unknown, entries: unknown[] = []) =>
  async (_method: string, url: string): Promise<HttpResponse> => ({
    status: 200,
    body: JSON.stringify(url.includes('/v1/audit') ? { entries } : record),
  });

test("an audit entry's seq and time are shown only when they are a number and a time", async (t) => {
  const entries = [
    { seq: 7, at: '2026-03-01T11:00:00Z', type: 'endpoint.heartbeat', details: {} },
    {
      seq: `8${ESC}[43m\nforged: line`,
      // An OSC 8 hyperlink: the terminal shows "click" and opens whatever it names.
      at: `2026-03-01T11:00:01Z${ESC}]8;;https://evil/\u0007click${ESC}]8;;\u0007`,
      type: 'endpoint.heartbeat',
      details: {},
    },
    { seq: 2 ** 53, at: 'yesterday', type: 'endpoint.heartbeat', details: {} },
  ];
  const view = await viewWhen(answering(recordIn('online'), entries));
  const report = statusReport(facts(connector(ONLINE_STATUS), { controlPlane: { ...view, source } }));
  t.deepEqual(
    report.audit.map((e) => [e.seq, e.at]),
    [
      [7, '2026-03-01T11:00:00Z'],
      [undefined, undefined],
      [undefined, undefined],
    ],
  );
  const text = statusReportText(report, NOW);
  t.false(text.includes(ESC), 'no escape sequence reaches the terminal');
  t.notRegex(text, /\nforged: line/);
  t.regex(text, /^ {2}7 {5}2026-03-01T11:00:00Z {3}endpoint\.heartbeat/m);
  t.regex(text, /^ {2}\? {5}\? {22}endpoint\.heartbeat/m, 'said as unknown, not as sent');
});

/** diagnose of a Connector whose (maybe stale) status says Online, with the control plane answering as `answer` says. */
async function diagnoseWhen(answer: (method: string, url: string) => Promise<HttpResponse>) {
  const view = await viewWhen(answer);
  const report = runbookChecks(
    facts(connector(ONLINE_STATUS), {
      controlPlane: {
        ...view,
        source: { ...source, ready: { status: 'True', reason: 'Reachable', message: 'ok' } },
      },
    }),
  );
  const check = report.checks.find((c) => c.title.startsWith('Control plane'));
  if (!check) throw new Error('no control-plane check');
  return { report, check, text: diagnoseText(report) };
}

test("diagnose fails when the control plane, asked from here, contradicts the operator's status", async (t) => {
  // The operator is down: its status still says online, the control plane says the heartbeats stopped.
  for (const state of ['offline', 'needs_recovery']) {
    const { report, check, text } = await diagnoseWhen(answering(recordIn(state)));
    t.false(report.healthy, state);
    t.is(check.result, 'failed');
    t.is(
      check.detail,
      `the operator's status says it reads state online from ControlPlane team-a/vaultpam (https://cp), but asked from here the control plane says state ${state}: the status may be stale (it is only as new as the operator's last pass)`,
    );
    t.regex(check.nextStep ?? '', /^check the operator: is its pod running/);
    t.regex(text, /^Not healthy: phase Online, 1 check\(s\) failed\. Next step: check the operator/m);
  }
  const degraded = await diagnoseWhen(answering(recordIn('degraded')));
  t.is(degraded.check.result, 'ok', 'degraded: heartbeats arrive, as the status says');
  // An error answer: the record is gone, or the credential refused; the operator's status says it reads it.
  for (const [status, code] of [
    [404, 'CONNECTOR_NOT_FOUND'],
    [401, 'UNAUTHORIZED'],
  ] as const) {
    const { report, check } = await diagnoseWhen(async () => ({ status, body: errorBody(code, 'no') }));
    t.false(report.healthy, code);
    t.is(check.result, 'failed');
    t.regex(
      check.detail,
      new RegExp(
        `reads state online from .*, but asked from here the control plane answered HTTP ${status} ${code}: no: the status may be stale`,
      ),
    );
    t.regex(check.nextStep ?? '', /^fix what the answer names .* and check the operator: /);
  }
  const noRecord = await diagnoseWhen(async () => ({ status: 200, body: 'null' }));
  t.is(noRecord.check.result, 'failed', 'an answer that is no record is an answer too');
});

test('diagnose only warns when no answer came to this machine, and the last line says it warned', async (t) => {
  const { report, check, text } = await diagnoseWhen(async () => {
    throw new Error('connect ECONNREFUSED 127.0.0.1:443');
  });
  t.is(check.result, 'warning', "this machine's network is not the operator's");
  t.regex(
    check.detail,
    /asked from here: the control plane did not answer: .*\(from this machine, which says nothing of the operator's network\)$/,
  );
  t.true(report.healthy);
  t.regex(text, /^Healthy: Online, no check failed, 1 check\(s\) warned\.$/m);
  t.notRegex(text, /every check passed/);
  const online = await diagnoseWhen(answering(recordIn('online')));
  t.true(online.report.healthy);
  t.regex(online.text, /^Healthy: Online, and every check passed\.$/m);
});

/** A full page of audit entries (the plugin asks for 1000), each with seq `seq(i)`. */
const fullPage = (seq: (i: number) => number) =>
  Array.from({ length: 1000 }, (_, i) => ({
    seq: seq(i),
    at: '2026-03-01T11:00:00Z',
    type: 'endpoint.heartbeat',
    details: {},
  }));

test('the audit tail stops when the last seq does not move past the one asked after', async (t) => {
  let calls = 0;
  const record = answering(recordIn('online'));
  // A broken or hostile control plane: every page full, every seq 1, whatever afterSeq asks.
  const view = await viewWhen(async (method, url) => {
    if (url.includes('/v1/audit')) calls += 1;
    return url.includes('/v1/audit')
      ? { status: 200, body: JSON.stringify({ entries: fullPage(() => 1) }) }
      : record(method, url);
  });
  t.is(calls, 2, 'after 0, then after 1, which answered nothing newer: no third request');
  t.is(view.audit?.length, 20);
  t.is(view.auditUnread, undefined);
  // Entries that are no objects are no entries: status reads their fields.
  const odd = await viewWhen(
    answering(recordIn('online'), [
      null,
      1,
      'x',
      { seq: 3, at: '2026-03-01T11:00:00Z', type: 't', details: {} },
    ]),
  );
  t.deepEqual(
    odd.audit?.map((e) => e.seq),
    [3],
  );
  t.notThrows(() =>
    statusReportText(
      statusReport(facts(connector(ONLINE_STATUS), { controlPlane: { ...odd, source } })),
      NOW,
    ),
  );
});

test('the whole view has one deadline: slow pages end in "not read", and the record stands', async (t) => {
  const clock = new FakeClock(NOW);
  let calls = 0;
  const record = answering(recordIn('online'));
  // Every page full and newer than the last, each answered just within its own timeout: 5 s each.
  const view = await viewWhen(async (method, url) => {
    if (!url.includes('/v1/audit')) return record(method, url);
    calls += 1;
    clock.advance(5000);
    return { status: 200, body: JSON.stringify({ entries: fullPage((i) => calls * 1000 + i) }) };
  }, clock);
  t.is(calls, 6, '30 s in all: the sixth page is not waited for, and no seventh is asked for');
  t.is(view.record?.state, 'online' as never);
  t.is(view.audit, undefined, 'a tail cut short is not the newest entries');
  t.is(
    view.auditUnread,
    "the control plane did not answer: no complete answer within 30 s (the plugin's bound for the record and the audit entries together)",
  );
  const text = statusReportText(
    statusReport(facts(connector(ONLINE_STATUS), { controlPlane: { ...view, source } })),
    NOW,
  );
  t.regex(
    text,
    /Last audit entries:\n {2}not read: the control plane did not answer: no complete answer within 30 s/,
  );
  t.is(clock.pendingTimers, 0, 'the deadline is cleared with the view');

  // A record that never comes: the same deadline ends the wait.
  const silent = new FakeClock(NOW);
  const waiting = viewWhen(() => new Promise<HttpResponse>(() => undefined), silent);
  await new Promise((resolve) => setImmediate(resolve));
  silent.advance(30_000);
  const never = await waiting;
  t.regex(never.askFailed ?? '', /^the control plane did not answer: no complete answer within 30 s/);
  t.false(never.askAnswered);
});
