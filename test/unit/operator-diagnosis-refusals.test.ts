// Planner table tests for the agent's answers to the control plane refusing its certificate: each
// cause the agent tells apart gets the operator's own diagnosis. Clock skew and the configuration
// causes leave the identity intact, so they are never identity loss and never start a recovery;
// a certificate revoked, replaced, unknown, expired by both clocks or of a CA the control plane no
// longer trusts is identity loss, for a paired connector and for a never-paired one alike.
import test from 'ava';
import type { ConnectorStatus, FailureClass } from '../../src/operator/api/types.ts';
import { recoveryMintKey } from '../../src/operator/reconcile/recovery-requests.ts';
import { connector, observed, pendingRecord, pod, record, tokenSecret } from '../helpers/observed-builder.ts';
import { planView } from '../helpers/plan-view.ts';

const NOW = new Date('2026-01-01T00:00:10Z');

function stopped(exitCode: number, failureClass: string, code: string, reason = 'x') {
  return pod({
    terminated: {
      exitCode,
      finishedAt: '2026-01-01T00:00:05Z',
      message: JSON.stringify({ failureClass, code, reason, nextStep: 'the agent says' }),
    },
    restartCount: 3,
  });
}

const UNTRUSTED_REASON =
  "client certificate rejected: certificate signed by unknown authority: the control plane at https://cp.example:8443 no longer trusts the CA that issued this connector's certificate";
const SKEW_REASON =
  "certificate has expired or is not yet valid: clock skew: the control plane's clock is 2 h 3 min ahead of this node's; the identity is intact";

interface Row {
  situation: string;
  pod: ReturnType<typeof pod>;
  failureClass: FailureClass;
  reason: RegExp;
  nextStep: RegExp;
  identityLoss: boolean;
}

const rows: Row[] = [
  {
    situation: 'clock skew',
    pod: stopped(14, 'Reconnect', 'CLOCK_SKEW', SKEW_REASON),
    failureClass: 'Reconnect',
    reason: /the clocks are skewed .*the identity is intact/,
    nextStep:
      /^fix time synchronisation .*keep the data directory as it is.*otherwise no recovery and no new token are needed/,
    identityLoss: false,
  },
  {
    situation: 'an identity issued by another control plane',
    pod: stopped(12, 'Configuration', 'CONTROL_PLANE_MISMATCH'),
    failureClass: 'Reconnect',
    reason: /issued by another control plane.*the identity is intact/,
    nextStep: /point the Connector at the control plane that issued the identity/,
    identityLoss: false,
  },
  {
    situation: 'a proxy that drops the client certificate',
    pod: stopped(12, 'Configuration', 'CLIENT_CERTIFICATE_NOT_RECEIVED'),
    failureClass: 'Reconnect',
    reason: /TLS-terminating proxy/,
    nextStep: /TLS passthrough/,
    identityLoss: false,
  },
  {
    situation: 'SAN URI prefixes that disagree',
    pod: stopped(12, 'Configuration', 'SAN_URI_PREFIX_MISMATCH'),
    failureClass: 'Reconnect',
    reason: /certificate SAN does not match expected pattern/,
    nextStep: /SAN URI prefix/,
    identityLoss: false,
  },
  {
    situation: 'a certificate expired by both clocks',
    pod: stopped(13, 'IdentityLoss', 'IDENTITY_EXPIRED'),
    failureClass: 'IdentityLoss',
    reason: /no longer accepts its identity \(IDENTITY_EXPIRED\): its certificate expired/,
    nextStep: /guided recovery/,
    identityLoss: true,
  },
  {
    situation: 'a CA the control plane no longer trusts',
    pod: stopped(13, 'IdentityLoss', 'IDENTITY_UNTRUSTED', UNTRUSTED_REASON),
    failureClass: 'IdentityLoss',
    reason: /no longer accepts its identity \(IDENTITY_UNTRUSTED\): .*CA the control plane no longer trusts/,
    nextStep: /guided recovery/,
    identityLoss: true,
  },
  {
    situation: 'a revoked certificate',
    pod: stopped(13, 'IdentityLoss', 'IDENTITY_REJECTED'),
    failureClass: 'IdentityLoss',
    reason: /no longer accepts its identity \(IDENTITY_REJECTED\): its certificate was revoked/,
    nextStep: /guided recovery/,
    identityLoss: true,
  },
];

for (const row of rows) {
  test(`a paired connector whose agent stopped on ${row.situation}: ${row.failureClass}${row.identityLoss ? ', a recovery under Automatic' : ', no recovery even under Automatic'}`, (t) => {
    const result = planView(
      observed({
        connector: connector({ spec: { recovery: { policy: 'Automatic' } } }),
        record: record({ state: 'offline' }),
        pods: [row.pod],
      }),
      NOW,
    );
    // A recovery in progress hides the diagnosis; plan again with Manual to read it.
    const manual = planView(observed({ record: record({ state: 'offline' }), pods: [row.pod] }), NOW);
    const diagnosis = manual.status.diagnosis;
    t.is(diagnosis?.failureClass, row.failureClass);
    t.regex(diagnosis?.reason ?? '', row.reason);
    t.regex(diagnosis?.nextStep ?? '', row.nextStep);
    t.true(
      (diagnosis?.evidence ?? []).some((e) =>
        e.includes(`exited ${row.pod.status?.containerStatuses?.[0]?.lastState?.terminated?.exitCode}`),
      ),
      "the agent's exit is evidence",
    );
    t.is(manual.status.phase, row.identityLoss ? 'NeedsRecovery' : 'Offline');
    t.is(
      result.status.recovery?.step !== undefined,
      row.identityLoss,
      'a recovery starts only for identity loss',
    );
    t.false(manual.controlPlane.some((a) => a.kind === 'mintToken'));
  });
}

test("clock skew's evidence carries how far off the clock is", (t) => {
  const result = planView(
    observed({
      record: record({ state: 'offline' }),
      pods: [stopped(14, 'Reconnect', 'CLOCK_SKEW', SKEW_REASON)],
    }),
    NOW,
  );
  t.true((result.status.diagnosis?.evidence ?? []).some((e) => /2 h 3 min ahead/.test(e)));
});

test('a never-paired connector whose reattached identity expired or is of a foreign CA: NeedsRecovery, its token revoked; clock skew is not', (t) => {
  for (const [code, reason] of [
    ['IDENTITY_EXPIRED', 'certificate has expired or is not yet valid: expired 3 days ago'],
    ['IDENTITY_UNTRUSTED', UNTRUSTED_REASON],
  ] as const) {
    const result = planView(
      observed({
        record: pendingRecord({ liveToken: { tokenId: 't1', expiresAt: '2026-01-01T04:00:00.000Z' } }),
        pods: [stopped(13, 'IdentityLoss', code, reason)],
        tokenSecret: tokenSecret(),
      }),
      NOW,
    );
    t.is(result.status.phase, 'NeedsRecovery', code);
    t.is(result.status.diagnosis?.failureClass, 'IdentityLoss', code);
    t.regex(result.status.diagnosis?.reason ?? '', /identity the control plane does not accept/);
    t.regex(result.status.diagnosis?.nextStep ?? '', /identity\.rejected-/);
    t.deepEqual(
      result.controlPlane.map((a) => a.kind),
      ['revokeTokens'],
      `${code}: the token the agent will not use is revoked`,
    );
  }
  const skewed = planView(
    observed({ record: pendingRecord(), pods: [stopped(14, 'Reconnect', 'CLOCK_SKEW', SKEW_REASON)] }),
    NOW,
  );
  t.not(skewed.status.phase, 'NeedsRecovery');
  t.is(skewed.status.diagnosis?.failureClass, 'Reconnect');
  // A bundle that failed the agent's own chain check at load: no refusal by the control plane, so
  // no token of a recovery would replace it (the agent never got that far).
  const tampered = planView(
    observed({
      record: pendingRecord(),
      pods: [
        stopped(
          13,
          'IdentityLoss',
          'IDENTITY_CHAIN_INVALID',
          'certificate chain does not verify: cert.pem is not signed',
        ),
      ],
    }),
    NOW,
  );
  t.not(tampered.status.phase, 'NeedsRecovery');
});

test('during a recovery, clock skew (exit 14) does not fail it: the identity is intact and a restart may still bring it online', (t) => {
  const spec = { recovery: { requestId: 'r9' } };
  const status: ConnectorStatus = {
    recovery: { requestId: 'r9', step: 'AwaitingOnline', attempts: 1, startedAt: '2026-01-01T00:00:00Z' },
  };
  const cp = record({ state: 'recovering', bootstrapRetired: false });
  const secret = tokenSecret({ mintKey: recoveryMintKey('r9') });
  const skewed = planView(
    observed({
      connector: connector({ spec, status }),
      record: cp,
      pods: [stopped(14, 'Reconnect', 'CLOCK_SKEW', SKEW_REASON)],
      tokenSecret: secret,
    }),
    NOW,
  );
  t.is(skewed.status.recovery?.step, 'AwaitingOnline');
  const misconfigured = planView(
    observed({
      connector: connector({ spec, status }),
      record: cp,
      pods: [stopped(12, 'Configuration', 'CLIENT_CERTIFICATE_NOT_RECEIVED')],
      tokenSecret: secret,
    }),
    NOW,
  );
  t.is(misconfigured.status.recovery?.step, 'Failed', 'a fail-closed configuration exit ends the attempt');
  t.regex(misconfigured.status.recovery?.reason ?? '', /CLIENT_CERTIFICATE_NOT_RECEIVED/);
});

test('paired, then the identity lost before the first heartbeat: FirstBootBootstrap, said so; an exit from before the pairing says nothing', (t) => {
  const enrolling = record({
    state: 'enrolling',
    bootstrapRetired: false,
    enrolledAt: '2026-01-01T00:00:02Z',
  });
  const lost = planView(
    observed({ record: enrolling, pods: [stopped(11, 'FirstBootBootstrap', 'ENROLLMENT_TOKEN_MISSING')] }),
    NOW,
  ).status;
  t.is(lost.diagnosis?.failureClass, 'FirstBootBootstrap');
  t.regex(lost.diagnosis?.reason ?? '', /lost the identity before its first heartbeat/);
  t.regex(lost.diagnosis?.nextStep ?? '', /mints a fresh enrollment token/);

  const earlier = record({ state: 'enrolling', bootstrapRetired: false, enrolledAt: '2026-01-01T00:00:08Z' });
  const before = planView(
    observed({ record: earlier, pods: [stopped(11, 'FirstBootBootstrap', 'ENROLLMENT_TOKEN_MISSING')] }),
    NOW,
  ).status;
  t.is(before.diagnosis, undefined);
});
