// What a server says is data: hostile strings from a control plane (or whatever answers at its URL)
// come out of untrusted-text.ts bounded, on one printable line, and without anything that looks
// like a token or credential, whatever they were made of.
import test from 'ava';
import fc from 'fast-check';
import { CodedError } from '../../src/lib/errors.ts';
import type { AuditEntry } from '../../src/operator/control-plane/admin-client.ts';
import { ControlPlaneAnswerError } from '../../src/operator/control-plane/admin-client.ts';
import type { ControlPlaneConnection } from '../../src/operator/control-plane/connections.ts';
import { controlPlaneView } from '../../src/operator/reconcile/observe.ts';
import type { Observed } from '../../src/operator/reconcile/observed.ts';
import { withError } from '../../src/operator/reconcile/pass-status.ts';
import { auditRefs } from '../../src/operator/reconcile/recovery-evidence.ts';
import {
  cleanedError,
  errorText,
  UNTRUSTED_TEXT_MAX,
  untrustedCode,
  untrustedRecord,
  untrustedText,
  untrustedTime,
} from '../../src/operator/reconcile/untrusted-text.ts';
import { connector, observed, pendingRecord, pod, record, tokenSecret } from '../helpers/observed-builder.ts';
import { planView } from '../helpers/plan-view.ts';

const NOW = new Date('2026-01-01T00:00:10Z');

const TOKEN = `vpe_0123456789abcdef_${'A1b2C3d4E5'.repeat(4)}xyz`;
const CREDENTIAL = 'q7Zr9Kx2Lw4Mn8Pv1Bt6Hs3Jd5Fg0Yc2Xe7Ua9Wi4';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----';
const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLXBhcnQ';

/** Nothing a terminal, kubectl or a bidi-aware viewer would act on, and no line break. */
function assertPrintable(t: import('ava').ExecutionContext, text: string, what: string) {
  t.false(/[\p{Cc}\p{Cf}\p{Cs}\u2028\u2029]/u.test(text), `${what}: ${JSON.stringify(text)}`);
}

test('control characters, escape sequences and bidi controls are removed; line breaks become spaces', (t) => {
  const cases: Array<[string, string, string]> = [
    [
      'newline forging a second condition line',
      'refused\nStalled: True\r\nReady: True',
      'refused Stalled: True Ready: True',
    ],
    ['ANSI colour and cursor movement', '\u001b[31mred\u001b[0m \u001b[2J\u001b[1;1Hcleared', 'red cleared'],
    ['OSC title and hyperlink', '\u001b]0;pwned\u0007title \u001b]8;;https://evil\u001b\\link', 'title link'],
    ['C1 CSI', '\u009b31mred', 'red'],
    ['NUL, DEL and C1 controls', 'a\u0000b\u007fc\u0085d\u009fe', 'abc de'],
    [
      'bidi override that reverses what follows',
      'ok \u202etxt.exe\u202c done \u2066x\u2069',
      'ok txt.exe done x',
    ],
    ['zero-width and BOM characters', 'in\u200bvis\u200dible\ufeff', 'invisible'],
    ['lone surrogate', 'half \ud800 pair', 'half pair'],
    ['tabs and runs of spaces', '\ta \t   b  ', 'a b'],
  ];
  for (const [what, input, expected] of cases) {
    const output = untrustedText(input);
    t.is(output, expected, what);
    assertPrintable(t, output, what);
  }
  t.is(untrustedText('emoji 🙂 and accents é stay'), 'emoji 🙂 and accents é stay');
});

test('tokens, keys and credentials are redacted, also when control characters were hiding them', (t) => {
  const hostile = [
    `here is the token ${TOKEN} you sent`,
    `echo: Authorization: Bearer ${CREDENTIAL}`,
    `authorization=Basic ${CREDENTIAL}`,
    `{"credential":"${CREDENTIAL}"}`,
    `password=${CREDENTIAL}&user=x`,
    `api_key: ${CREDENTIAL}`,
    `session ${JWT}`,
    `proxy https://admin:${CREDENTIAL}@cp.example/v1`,
    `bare ${CREDENTIAL} in the middle`,
    `key ${KEY}`,
    // Split by characters that are stripped: the pieces join up before the redaction looks.
    `split ${TOKEN.slice(0, 20)}\u200b${TOKEN.slice(20)}`,
    `split ${CREDENTIAL.slice(0, 10)}\u0000${CREDENTIAL.slice(10)}`,
  ];
  for (const input of hostile) {
    const output = untrustedText(input, 10_000);
    for (const secret of [
      TOKEN,
      CREDENTIAL,
      JWT,
      'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC',
      CREDENTIAL.slice(0, 20),
    ])
      t.false(output.includes(secret), `${JSON.stringify(input)} -> ${output}`);
    t.regex(output, /REDACTED/, input);
  }
  // What the operator shows on purpose survives: ids, serials, fingerprints, UUIDs, codes, times.
  const publicFacts =
    'connector team-a.edge-1 (1b4e28ba-2fa1-11d2-883f-0016d3cca427) serial 4f2a9c0e1b7d3a5f6e8c9b0a1d2e3f4a5b6c7d8e, fingerprint ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12 ENROLLMENT_TOKEN_INVALID at 2026-01-01T00:00:00.000Z; mint a token instead';
  t.is(untrustedText(publicFacts, 10_000), publicFacts);
});

test('a file path keeps its name unless one of its segments is itself a random-looking run', (t) => {
  // A data directory under a temporary directory: the whole run has upper and lower case and digits,
  // but no segment of it looks like a key (the agent's "permission denied reading <path>").
  const path = '/tmp/vaultpam-perm-tOfgJU9/connector-data-2/identity/key';
  t.is(untrustedText(`permission denied reading ${path}.pem`), `permission denied reading ${path}.pem`);
  // A credential in a path segment, or one that starts with '/', is still redacted.
  for (const input of [`/var/run/${CREDENTIAL}/key`, `/${CREDENTIAL}`, `seen ${CREDENTIAL}/x/y`]) {
    const output = untrustedText(input, 10_000);
    t.false(output.includes(CREDENTIAL.slice(0, 20)), `${input} -> ${output}`);
  }
});

test('a standard base64 credential is redacted where it continues a path or starts with /', (t) => {
  // Its '/' cuts it into segments shorter than 32 (AWS's documented example secret access key), so
  // judging a path a segment at a time let it through whole.
  const BASE64 = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
  for (const input of [
    `upload to s3://bucket/${BASE64} failed`,
    `GET /v1/admin/${BASE64}`,
    `key /${BASE64.split('/').reverse().join('/')}`,
  ]) {
    const output = untrustedText(input, 10_000);
    for (const piece of BASE64.split('/')) t.false(output.includes(piece), `${input} -> ${output}`);
    t.regex(output, /REDACTED/, input);
  }
  // Paths whose separator-free stretches are short keep their names, as above.
  const path = '/var/lib/vaultpam-Xk82Qz/pvc-7Fe2aB1c/connector-data/identity/key';
  t.is(untrustedText(`cannot read ${path}.pem`), `cannot read ${path}.pem`);
});

test('length is bounded after redaction, at a code point, with the cut marked', (t) => {
  const long = 'x'.repeat(100_000);
  const output = untrustedText(long);
  t.is(Array.from(output).length, UNTRUSTED_TEXT_MAX);
  t.true(output.endsWith('…'));
  // A token straddling the bound is redacted whole before the cut, not left half visible.
  const straddling = `${'y '.repeat(140)}${TOKEN}`;
  t.false(untrustedText(straddling).includes(TOKEN.slice(0, 24)));
  // The cut never splits a surrogate pair.
  const emoji = untrustedText('🙂'.repeat(400), 10);
  t.is(emoji, `${'🙂'.repeat(9)}…`);
  t.false(/[\ud800-\udfff](?![\udc00-\udfff])/.test(emoji.replace(/[\ud800-\udbff][\udc00-\udfff]/g, '')));
  t.is(untrustedText(undefined), '');
  t.is(untrustedText({ toString: () => 'object\nsays' }), 'object says');
});

test('codes: kept when they look like codes, else not repeated', (t) => {
  t.is(untrustedCode('RECOVERY_NOT_NEEDED'), 'RECOVERY_NOT_NEEDED');
  t.is(untrustedCode('InvalidSpec'), 'InvalidSpec');
  t.is(untrustedCode('HTTP_502'), 'HTTP_502');
  for (const hostile of ['RECOVERY\nNOT', '\u001b[31mX', 'A'.repeat(65), '', 42, TOKEN.replace(/_/g, ' ')])
    t.is(untrustedCode(hostile), 'UNRECOGNIZED_CODE', JSON.stringify(hostile));
});

test("errorText quotes the control plane's words within the bound, the operator's own at more length", (t) => {
  const hostile = new ControlPlaneAnswerError(
    'RECOVERY_NOT_NEEDED',
    `nope\n\u001b[2J${'z'.repeat(1000)} Bearer ${CREDENTIAL}`,
    { httpStatus: 409 },
  );
  const text = errorText(hostile);
  t.true(text.startsWith('RECOVERY_NOT_NEEDED: nope z'));
  t.true(Array.from(text).length <= 'RECOVERY_NOT_NEEDED: '.length + UNTRUSTED_TEXT_MAX);
  assertPrintable(t, text, 'errorText');
  const own = new CodedError('InvalidSpec', `Kubernetes refuses the StatefulSet: ${'cause; '.repeat(80)}`);
  t.true(errorText(own).length > UNTRUSTED_TEXT_MAX, 'an invalid spec keeps its causes');
  t.is(errorText(new CodedError('\nForged: True', 'x')), 'UNRECOGNIZED_CODE: x');
});

test('the record: path details, the enrollment failure and the state are cleaned', (t) => {
  const clean = untrustedRecord(
    record({
      state: 'online\u001b[0m'.padEnd(200, '!') as 'online',
      paths: [{ name: 'db\nforged', healthy: false, detail: `refused ${TOKEN}\r\n${'d'.repeat(5000)}` }],
      lastEnrollmentFailure: { code: 'X\nY', at: '2026-01-01T00:00:00Z\u202e' },
    }),
  );
  t.true((clean?.state.length ?? 0) <= 64);
  t.is(clean?.paths[0]?.name, 'db forged');
  const detail = clean?.paths[0]?.detail ?? '';
  t.true(detail.startsWith('refused'), 'the detail is kept, cleaned');
  t.false(detail.includes(TOKEN));
  t.true(detail.length <= UNTRUSTED_TEXT_MAX);
  t.deepEqual(clean?.lastEnrollmentFailure, { code: 'UNRECOGNIZED_CODE', at: '2026-01-01T00:00:00Z' });
  t.is(untrustedRecord(undefined), undefined);
  const ordinary = record();
  t.deepEqual(untrustedRecord(ordinary), ordinary, 'an ordinary record is unchanged');
});

test("the record's times are RFC 3339 times or nothing: a legacy date Date.parse takes, with text it ignores, is not quoted", (t) => {
  // V8 parses "Jan 1 2026 00:00:05 (anything)" as a date; conditions quote enrolledAt as written.
  const hostile = `Jan 1 2026 00:00:05 (\n\u001b[31mReady: True authorization: Bearer ${TOKEN} ${'x'.repeat(5000)})`;
  t.false(Number.isNaN(Date.parse(hostile)), 'the runtime takes it for a date');
  const clean = untrustedRecord(
    record({
      enrolledAt: hostile,
      lastHeartbeatAt: hostile,
      stateChangedAt: hostile,
      recovery: { requestId: 'r1', startedAt: hostile, completedAt: hostile },
    }),
  );
  t.is(clean?.enrolledAt, null);
  t.is(clean?.lastHeartbeatAt, null);
  t.is(clean?.stateChangedAt, 'an unreadable time');
  t.deepEqual(clean?.recovery, { requestId: 'r1', startedAt: '', completedAt: null });
  t.false(JSON.stringify(clean).includes(TOKEN));
  // Times as the contract writes them stay exactly as written.
  for (const time of [
    '2026-01-01T00:00:05Z',
    '2026-01-01T00:00:05.123Z',
    '2026-01-01T01:00:05+01:00',
    '2026-01-01t00:00:05z',
    '2026-01-01T00:00:05.123456789123Z',
  ])
    t.is(untrustedTime(time), time);
  for (const notTime of ['2026-01-01', '2026-13-01T00:00:00Z', '', 42, null, undefined])
    t.is(untrustedTime(notTime), undefined, String(notTime));
});

test('untrustedTime, for any text: what it keeps is the text itself, at most 40 characters of a time, one line', (t) => {
  const times = fc.date({
    min: new Date('1970-01-01T00:00:00Z'),
    max: new Date('9999-12-31T23:59:59Z'),
    noInvalidDate: true,
  });
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ unit: 'binary' }),
        times.map((d) => d.toISOString()),
        times.map((d) => `${d.toISOString()}${'\n'}x`),
      ),
      (text) => {
        const kept = untrustedTime(text);
        if (kept === undefined) return true;
        return (
          kept === text &&
          kept.length <= 40 &&
          /^[0-9Tt:.+Zz-]+$/.test(kept) &&
          !Number.isNaN(Date.parse(kept))
        );
      },
    ),
  );
  // Every time the control plane writes (toISOString) is kept.
  fc.assert(fc.property(times, (d) => untrustedTime(d.toISOString()) === d.toISOString()));
  t.pass();
});

test("what the planner compares is kept exactly: a long mixed-case request id, and a token expiry in RFC 3339's other forms", (t) => {
  // Redacted as if it were a credential (32 and more letters and digits, mixed case), this id never
  // matched spec.recovery.requestId again: the recovery began it on every pass and stayed at
  // TokensRevoked with the workload at zero.
  const id = 'Restore-After-Disk-Failure-2026-12-05';
  t.is(
    untrustedRecord(
      record({ recovery: { requestId: id, startedAt: '2026-01-01T00:00:01Z', completedAt: null } }),
    )?.recovery?.requestId,
    id,
  );
  t.is(
    untrustedRecord(
      record({ recovery: { requestId: 'x\ny', startedAt: '2026-01-01T00:00:01Z', completedAt: null } }),
    )?.recovery?.requestId,
    '',
    'an id the CRD would refuse is nobody’s',
  );
  const o = observed({
    connector: connector({
      spec: { recovery: { requestId: id } },
      status: {
        phase: 'Recovering',
        recovery: {
          requestId: id,
          step: 'TokensRevoked',
          attempts: 1,
          startedAt: '2026-01-01T00:00:00Z',
          evidence: { phaseBefore: 'NeedsRecovery', replicasBefore: 1 },
        },
      },
    }),
    record: record({
      state: 'recovering',
      bootstrapRetired: false,
      lastHeartbeatAt: null,
      recovery: { requestId: id, startedAt: '2026-01-01T00:00:01.000Z', completedAt: null },
    }),
    pods: [],
    workloadReplicas: 0,
  });
  const view = planView(o, NOW);
  t.is(view.status.recovery?.step, 'TokenMinted', 'the begun recovery moves on');
  t.deepEqual(view.controlPlane, [], 'and is not begun again');

  // A live token whose expiry the control plane wrote with a lowercase z (RFC 3339 allows it): the
  // Secret that holds it is kept, not deleted as holding nothing.
  const pending = pendingRecord({
    state: 'pending',
    liveToken: { tokenId: 't1', expiresAt: '2026-01-01t04:00:00z' },
  });
  const waiting = planView(
    observed({
      record: pending,
      tokenSecret: tokenSecret({ expiresAt: untrustedTime('2026-01-01t04:00:00z') }),
    }),
    NOW,
  );
  t.is(waiting.deleteTokenSecret, undefined);
});

test('a malformed or hostile record cannot stop the pass or make a status the schema refuses', (t) => {
  const statusOf = (o: Observed) => planView(o, NOW).status;
  // The certificate: serial and fingerprint are hex, its times RFC 3339, or they are left out.
  const forged = statusOf(
    observed({
      record: record({
        certificate: {
          serial: `${'x'.repeat(500)}\n\u001b[31m`,
          notBefore: '',
          notAfter: 'not a date',
          fingerprintSha256: `${TOKEN}`,
        },
      }),
    }),
  );
  t.deepEqual(forged.identity, {});
  t.deepEqual(statusOf(observed({})).identity, {
    certificateSerial: 'ab12',
    notAfter: '2026-01-01T23:00:00.000Z',
    fingerprintSHA256: 'ff00',
  });
  // A state that names an Object property is no phase.
  for (const state of ['__proto__', 'constructor', 'toString'])
    t.is(statusOf(observed({ record: record({ state: state as 'online' }) })).phase, 'Pending', state);
  // A path that is not an object names no path; the pass goes on.
  const paths = [null, 'tunnel', { name: 'db', healthy: false, detail: 'refused' }] as unknown as ReturnType<
    typeof record
  >['paths'];
  t.notThrows(() => statusOf(observed({ record: record({ state: 'degraded', paths }) })));
  t.deepEqual(untrustedRecord(record({ paths }))?.paths, [{ name: 'db', healthy: false, detail: 'refused' }]);
  // The connector id is quoted in the diagnosis: bounded, on one line.
  const stopped = pod({
    terminated: {
      exitCode: 13,
      finishedAt: '2026-01-01T00:00:05Z',
      message: JSON.stringify({
        failureClass: 'IdentityLoss',
        code: 'IDENTITY_REJECTED',
        reason: 'x',
        nextStep: 'y',
      }),
    },
    restartCount: 3,
  });
  const diagnosed = statusOf(
    observed({ record: pendingRecord({ connectorId: `p\n\u001b[2J${'Z'.repeat(2000)}` }), pods: [stopped] }),
  );
  for (const line of diagnosed.diagnosis?.evidence ?? []) {
    t.true(line.length <= 1024, line.slice(0, 80));
    assertPrintable(t, line, 'evidence');
  }
});

test('bootstrapRetired is the boolean true or false, and a live token expiry is a time or nothing', (t) => {
  // plan.ts read the flag by truthiness, enrollment.ts and assessment.ts by === true: a string
  // "false" was retired in one step and not in the next.
  for (const flag of ['false', 1, 'yes', null, {}])
    t.false(
      untrustedRecord(record({ bootstrapRetired: flag as unknown as boolean }))?.bootstrapRetired,
      JSON.stringify(flag),
    );
  t.true(untrustedRecord(record({ bootstrapRetired: true }))?.bootstrapRetired);
  // The live token's expiry is compared with the token Secret's: a legacy date with text in it
  // is no time, and nothing else about the token is lost.
  const live = (expiresAt: unknown) =>
    untrustedRecord(record({ liveToken: { tokenId: 't1', expiresAt: expiresAt as string } }))?.liveToken;
  t.deepEqual(live('Jan 1 2026 04:00:00 (hello)'), { tokenId: 't1', expiresAt: '' });
  t.deepEqual(live(42), { tokenId: 't1', expiresAt: '' });
  t.deepEqual(live('2026-01-01T04:00:00Z'), { tokenId: 't1', expiresAt: '2026-01-01T04:00:00Z' });
  t.is(untrustedRecord(record({ liveToken: 'live' as unknown as null }))?.liveToken, null);
});

test("a direct read answered with another connector's record is no answer, and is not cached", async (t) => {
  const remembered: unknown[] = [];
  const connection = {
    key: 'k',
    url: 'https://cp.example:8443',
    caPem: '',
    follower: { synced: () => false, get: () => undefined, remember: (r: unknown) => remembered.push(r) },
    client: () => ({ getConnector: async () => record({ connectorId: 'prod.other' }) }),
  } as unknown as ControlPlaneConnection;
  const view = await controlPlaneView(connection, 'prod.edge', connector());
  t.false(view.reachable);
  t.regex(view.reachable ? '' : view.error.message, /another connector's record/);
  t.deepEqual(remembered, []);
  const own = {
    ...connection,
    client: () => ({ getConnector: async () => record({ connectorId: 'prod.edge' }) }),
  } as unknown as ControlPlaneConnection;
  t.true((await controlPlaneView(own, 'prod.edge', connector())).reachable);
  t.is(remembered.length, 1);
});

test("the control plane's audit entries reach status.recovery.evidence only when they are what they say", (t) => {
  const since = '2026-01-01T00:00:00Z';
  const good = { type: 'endpoint.enrolled', at: '2026-01-01T00:05:00Z', seq: 7 };
  const entries = [
    good,
    { type: 'endpoint.enrolled', at: 'Thu, 01 Jan 2026 00:05:00 GMT (\u001b[31m forged)', seq: 8 },
    { type: 'endpoint.enrolled', at: '2026-01-01T00:06:00Z', seq: 'not-a-number' },
    null,
  ] as unknown as AuditEntry[];
  t.deepEqual(auditRefs(entries, since), [good]);
  t.deepEqual(auditRefs({ not: 'an array' } as unknown as AuditEntry[], since), []);
});

test('withError: a hostile control-plane answer reaches the condition bounded, printable and redacted', (t) => {
  const hostile = new ControlPlaneAnswerError(
    'TTL_TOO_LONG',
    `refused\nStalled: False\u001b[8m ${TOKEN} Authorization: Bearer ${CREDENTIAL} ${'x'.repeat(5000)}`,
    { httpStatus: 400 },
  );
  const status = withError(planView(observed({}), NOW).status, hostile, NOW, 1);
  const stalled = status.conditions?.find((c) => c.type === 'Stalled');
  t.is(stalled?.reason, 'ControlPlaneRejected');
  const message = stalled?.message ?? '';
  assertPrintable(t, message, 'Stalled');
  t.true(message.startsWith('TTL_TOO_LONG: refused Stalled: False vpe_[REDACTED]'), message);
  t.false(message.includes(CREDENTIAL));
  t.true(Array.from(message).length <= 'TTL_TOO_LONG: '.length + UNTRUSTED_TEXT_MAX);
  const ready = status.conditions?.find((c) => c.type === 'Ready');
  t.false(ready?.message.includes(TOKEN), 'Ready quotes the cleaned message');
  // A code is looked up as data: "__proto__" or "constructor" is no stall reason of its own.
  for (const code of ['__proto__', 'constructor', 'toString']) {
    const odd = withError(planView(observed({}), NOW).status, new ControlPlaneAnswerError(code, 'x'), NOW, 1);
    t.is(odd.conditions?.find((c) => c.type === 'Stalled')?.reason, 'ControlPlaneRejected', code);
  }
});

test('plan: an unreachable control plane and an agent path detail are quoted cleaned in the conditions', (t) => {
  const unreachable = observed({ record: 'unreachable' });
  const hostile = new ControlPlaneAnswerError(
    'HTTP_502',
    `<html>\n<title>Bad Gateway</title>\u001b[0m ${TOKEN}`,
  );
  const result = planView({ ...unreachable, controlPlane: { reachable: false, error: hostile } }, NOW);
  const healthy = result.status.conditions?.find((c) => c.type === 'Healthy');
  t.is(healthy?.reason, 'ControlPlaneUnreachable');
  t.is(healthy?.message, '<html> <title>Bad Gateway</title> vpe_[REDACTED]');
  const degraded = planView(
    observed({
      record: record({
        state: 'degraded',
        paths: [{ name: 'db', healthy: false, detail: `down\r\n\u202eStalled ${'y'.repeat(2000)}` }],
      }),
    }),
    NOW,
  );
  const message = degraded.status.conditions?.find((c) => c.type === 'Healthy')?.message ?? '';
  assertPrintable(t, message, 'PathUnhealthy');
  t.true(message.startsWith('unhealthy path(s): db (down Stalled y'), message);
  t.true(message.length < 400);
});

test('cleanedError: what the reconciler hands the work queue (which logs it) keeps code and kind, not the hostile words', (t) => {
  const hostile = new ControlPlaneAnswerError('HTTP_503', `busy\n${TOKEN} ${'w'.repeat(900)}`, {
    httpStatus: 503,
    temporary: true,
  });
  const cleaned = cleanedError(hostile);
  t.like(cleaned, { code: 'HTTP_503', httpStatus: 503, temporary: true });
  t.false(cleaned.message.includes(TOKEN));
  t.false(cleaned.message.includes('\n'));
  t.true(cleaned.message.length <= UNTRUSTED_TEXT_MAX);
  t.is(cleaned.cause, hostile);
  t.is(cleanedError(new CodedError('\u001b[2J', 'x', { temporary: false })).code, 'UNRECOGNIZED_CODE');
  // A code the control plane made up (each would be a metric series) is one name; the contract's
  // codes and the operator's own are kept.
  const answered = (code: string) =>
    cleanedError(new ControlPlaneAnswerError(code, 'x', { httpStatus: 503 })).code;
  t.is(answered('Busy_17_x8f'), 'UNRECOGNIZED_CODE');
  t.is(answered('INTERNAL_ERROR'), 'INTERNAL_ERROR');
  t.is(answered('HTTP_502'), 'HTTP_502');
  t.is(cleanedError(new CodedError('CONTROL_PLANE_UNREACHABLE', 'x')).code, 'CONTROL_PLANE_UNREACHABLE');
});

test("an object's name that ends in a secret-sounding word is not taken for a key", (t) => {
  const text = 'apply of Secret prod/edge-enrollment-token: refused by the API server';
  t.is(untrustedText(text), text);
  t.is(untrustedText('x-api-key: Zq81abcd'), 'x-api-key: [REDACTED]');
});
