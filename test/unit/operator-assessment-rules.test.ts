// The failure-class chain of assessment.ts, rule by rule: each rule on its own (one row where it
// matches, and the neighbouring situation where it does not), then the order of the chain (a row
// per pair of rules that can both match: the first one wins), then what the chain says while the
// pass is held. The planner tests walk through whole situations; these pin each rule down.
import test from 'ava';
import { NEXT_STEPS } from '../../src/agent/failure.ts';
import type { FailureClass } from '../../src/operator/api/types.ts';
import {
  DIAGNOSIS_RULES,
  DIAGNOSIS_TEXT_MAX,
  type DiagnosisInput,
  diagnose,
  isIdentityLoss,
  type Rule,
} from '../../src/operator/reconcile/assessment.ts';
import type { AgentPodFacts, AgentTermination } from '../../src/operator/reconcile/pod-facts.ts';
import type { StoragePosture } from '../../src/operator/reconcile/storage-posture.ts';
import { pendingRecord, record } from '../helpers/observed-builder.ts';

const BOUND: StoragePosture = {
  source: 'PersistentVolumeClaim',
  durable: true,
  status: 'True',
  reason: 'ClaimBound',
  message: 'claim data-edge-0 is bound',
  claimName: 'data-edge-0',
};
const REPLACED: StoragePosture = {
  ...BOUND,
  status: 'False',
  reason: 'ClaimReplaced',
  message: 'claim data-edge-0 was recreated after pairing (new UID): the identity on the old one is gone',
};

/** An agent that stopped after the pairing (2025-12-31T23:00Z) with this termination. */
function stopped(termination: Omit<AgentTermination, 'exitCode'> & { exitCode?: number }): AgentPodFacts {
  return {
    podName: 'edge-0',
    podUID: 'pod-edge-0',
    running: false,
    ready: false,
    restartCount: 2,
    termination: { exitCode: 13, finishedAt: '2026-01-01T00:00:05Z', ...termination },
  };
}
const readyAgent: AgentPodFacts = {
  podName: 'edge-0',
  podUID: 'p',
  running: true,
  ready: true,
  restartCount: 0,
};

function input(overrides: Partial<DiagnosisInput>): DiagnosisInput {
  return {
    record: record(),
    agent: undefined,
    posture: BOUND,
    unpairedMints: 0,
    recoveryPolicy: 'Manual',
    tokenExpiredUnused: false,
    ...overrides,
  };
}

const enrolling = pendingRecord({ state: 'enrolling', enrolledAt: '2025-12-31T23:00:00.000Z' });
const pairedInRecoveryR1 = record({
  state: 'enrolling',
  lastHeartbeatAt: null,
  recovery: { requestId: 'r1', startedAt: '2025-12-31T22:59:00.000Z', completedAt: null },
});

function rule(name: string): Rule {
  const found = DIAGNOSIS_RULES.find((r) => r.name === name);
  if (!found) throw new Error(`no rule ${name}`);
  return found;
}

test('the chain, in order', (t) => {
  t.deepEqual(
    DIAGNOSIS_RULES.map((r) => r.name),
    [
      'controlPlaneNeedsRecovery',
      'claimReplaced',
      'clockSkew',
      'certificateRefusedInHandshake',
      'connectionConfiguration',
      'foreignIdentity',
      'identityFilesInaccessible',
      'identityNotSaved',
      'identityNotSavedInRecovery',
      'agentLostIdentity',
      'refusedIdentity',
      'reconnectFailure',
      'pairingLostBeforeFirstHeartbeat',
      'firstBootFailure',
    ],
  );
});

interface RuleRow {
  rule: string;
  /** A situation the rule matches. */
  matches: Partial<DiagnosisInput>;
  failureClass: FailureClass;
  reason: RegExp;
  /** The nearest situation it does not match. */
  not: Partial<DiagnosisInput>;
}

const RULE_ROWS: RuleRow[] = [
  {
    rule: 'controlPlaneNeedsRecovery',
    matches: {
      record: record({
        state: 'needs_recovery',
        lastEnrollmentFailure: { code: 'IDENTITY_EXPECTED', at: '2026-01-01T00:00:01Z' },
      }),
    },
    failureClass: 'IdentityLoss',
    reason: /tried to enroll again \(IDENTITY_EXPECTED at 2026-01-01T00:00:01Z\)/,
    not: { record: record({ state: 'offline' }) },
  },
  {
    rule: 'claimReplaced',
    matches: { posture: REPLACED },
    failureClass: 'IdentityLoss',
    reason: /recreated after pairing/,
    not: { posture: REPLACED, record: pendingRecord() },
  },
  {
    rule: 'clockSkew',
    matches: { agent: stopped({ exitCode: 14, failureClass: 'Reconnect', code: 'CLOCK_SKEW' }) },
    failureClass: 'Reconnect',
    reason: /clocks are skewed/,
    not: { agent: stopped({ exitCode: 14, failureClass: 'Reconnect', code: 'CONTROL_PLANE_UNREACHABLE' }) },
  },
  {
    rule: 'certificateRefusedInHandshake',
    matches: {
      agent: stopped({ exitCode: 14, failureClass: 'Reconnect', code: 'TLS_CLIENT_CERTIFICATE_REJECTED' }),
    },
    failureClass: 'Reconnect',
    reason: /TLS handshake there was refused with an alert about the connector's certificate/,
    not: { agent: stopped({ exitCode: 14, failureClass: 'Reconnect', code: 'CONTROL_PLANE_UNREACHABLE' }) },
  },
  {
    rule: 'connectionConfiguration',
    matches: {
      agent: stopped({ exitCode: 12, failureClass: 'Reconnect', code: 'CLIENT_CERTIFICATE_NOT_RECEIVED' }),
    },
    failureClass: 'Reconnect',
    reason: /TLS-terminating proxy.*; the identity is intact/,
    not: { agent: stopped({ exitCode: 12, failureClass: 'Reconnect', code: '__proto__' }) },
  },
  {
    // The claim of another connector mounted on a never-paired one (a reattach under another id):
    // before, no rule matched and the Connector only said it waited to pair.
    rule: 'foreignIdentity',
    matches: {
      record: pendingRecord(),
      agent: stopped({ exitCode: 13, failureClass: 'IdentityLoss', code: 'IDENTITY_FOREIGN' }),
    },
    failureClass: 'FirstBootBootstrap',
    reason: /holds another connector's identity/,
    not: {
      record: pendingRecord(),
      agent: stopped({ exitCode: 13, failureClass: 'IdentityLoss', code: 'IDENTITY_DAMAGED' }),
    },
  },
  {
    // A runAsUser or fsGroup changed after pairing: ownership and mode are the fix, not a recovery.
    rule: 'identityFilesInaccessible',
    matches: {
      agent: stopped({ exitCode: 12, failureClass: 'Reconnect', code: 'IDENTITY_KEY_UNREADABLE' }),
    },
    failureClass: 'Reconnect',
    reason: /^permission denied: the connector user cannot read the identity files/,
    not: {
      agent: stopped({ exitCode: 13, failureClass: 'IdentityLoss', code: 'IDENTITY_FILE_READ_FAILED' }),
    },
  },
  {
    // Paired, no heartbeat yet, and the data directory did not take the certificate: nothing lost.
    rule: 'identityNotSaved',
    matches: {
      record: enrolling,
      agent: stopped({ exitCode: 12, code: 'IDENTITY_PERSIST_FAILED' }),
    },
    failureClass: 'FirstBootBootstrap',
    reason: /did not take the certificate the control plane issued/,
    not: {
      record: enrolling,
      agent: stopped({ exitCode: 12, code: 'CONFIGURATION_INVALID' }),
    },
  },
  {
    // Paired in guided recovery r1 (retired long before), the certificate not saved, r1 ended Failed.
    rule: 'identityNotSavedInRecovery',
    matches: {
      record: pairedInRecoveryR1,
      agent: stopped({ exitCode: 12, code: 'IDENTITY_PERSIST_FAILED' }),
      recoveryFailedAfterPairing: 'r1',
    },
    failureClass: 'IdentityLoss',
    reason:
      /guided recovery r1 paired the connector at 2025-12-31T23:00:00\.000Z, but its data directory did not take the certificate/,
    // Paired before that recovery began: the first pairing's rule, not this one.
    not: {
      record: { ...pairedInRecoveryR1, enrolledAt: '2025-12-31T22:00:00.000Z' },
      agent: stopped({ exitCode: 12, code: 'IDENTITY_PERSIST_FAILED' }),
    },
  },
  {
    rule: 'agentLostIdentity',
    matches: { agent: stopped({ failureClass: 'IdentityLoss', code: 'IDENTITY_REJECTED' }) },
    failureClass: 'IdentityLoss',
    reason: /no longer accepts its identity \(IDENTITY_REJECTED\)/,
    // An exit from before the pairing describes an older incident.
    not: {
      agent: stopped({
        failureClass: 'IdentityLoss',
        code: 'IDENTITY_REJECTED',
        finishedAt: '2025-12-31T22:00:00Z',
      }),
    },
  },
  {
    rule: 'refusedIdentity',
    matches: {
      record: pendingRecord(),
      agent: stopped({ failureClass: 'IdentityLoss', code: 'IDENTITY_EXPIRED' }),
    },
    failureClass: 'IdentityLoss',
    reason: /holds an identity the control plane does not accept/,
    not: { record: pendingRecord(), agent: stopped({ failureClass: 'IdentityLoss', code: 'IDENTITY_LOST' }) },
  },
  {
    rule: 'reconnectFailure',
    matches: { record: record({ state: 'offline' }) },
    failureClass: 'Reconnect',
    reason: /no heartbeat since 2026-01-01T00:00:00.000Z/,
    not: { record: record({ state: 'online' }) },
  },
  {
    rule: 'pairingLostBeforeFirstHeartbeat',
    matches: {
      record: enrolling,
      agent: stopped({ exitCode: 11, failureClass: 'FirstBootBootstrap', code: 'ENROLLMENT_TOKEN_MISSING' }),
    },
    failureClass: 'FirstBootBootstrap',
    reason: /lost the identity before its first heartbeat/,
    // A running agent is still at something: wait for it.
    not: { record: enrolling, agent: { ...readyAgent, ready: false } },
  },
  {
    rule: 'firstBootFailure',
    matches: { record: pendingRecord(), unpairedMints: 2, tokenExpiredUnused: true },
    failureClass: 'FirstBootBootstrap',
    reason: /never paired: enrollment tokens expired or were revoked before the agent used them \(2 so far\)/,
    // One expired token is routine: it is re-minted at once.
    not: { record: pendingRecord(), unpairedMints: 1, tokenExpiredUnused: true },
  },
];

for (const row of RULE_ROWS) {
  test(`rule ${row.rule}: matches its situation, and not the nearest other`, (t) => {
    const found = rule(row.rule)(input(row.matches));
    t.is(found?.failureClass, row.failureClass);
    t.regex(found?.reason ?? '', row.reason);
    t.true((found?.nextStep ?? '').length > 0, 'a next step');
    // Within the CRD's bounds as written, so that diagnose() never has to cut a rule's own advice.
    for (const [field, text] of [
      ['reason', found?.reason],
      ['nextStep', found?.nextStep],
      ...(found?.evidence ?? []).map((line) => ['evidence', line] as const),
    ] as const)
      t.true(Array.from(text ?? '').length <= DIAGNOSIS_TEXT_MAX, `${field}: ${text?.length} characters`);
    t.is(rule(row.rule)(input(row.not)), undefined);
  });
}

test('diagnose() keeps the diagnosis within the CRD bounds whatever a quoted fact holds (a longer field makes the API server refuse the whole status)', (t) => {
  const long = `${'a claim message that grew '.repeat(80)}🙂`;
  const d = diagnose(
    input({
      posture: { ...REPLACED, message: long },
      agent: stopped({ failureClass: 'IdentityLoss', code: 'IDENTITY_LOST' }),
    }),
  );
  t.truthy(d);
  for (const text of [d?.reason, d?.nextStep, ...(d?.evidence ?? [])])
    t.true(Array.from(text ?? '').length <= DIAGNOSIS_TEXT_MAX, `${text?.length} characters`);
  t.true(
    (d?.evidence ?? []).some((line) => line.endsWith('…')),
    'the long fact is cut, and the cut marked',
  );
});

interface OrderRow {
  title: string;
  situation: Partial<DiagnosisInput>;
  /** The rules that match it, first the one that wins. */
  both: [string, string];
  failureClass: FailureClass;
}

const ORDER_ROWS: OrderRow[] = [
  {
    title: 'the control plane saying needs_recovery wins over a clock skew the agent reported',
    situation: {
      record: record({ state: 'needs_recovery' }),
      agent: stopped({ exitCode: 14, failureClass: 'Reconnect', code: 'CLOCK_SKEW' }),
    },
    both: ['controlPlaneNeedsRecovery', 'clockSkew'],
    failureClass: 'IdentityLoss',
  },
  {
    title: 'a replaced claim wins over a clock skew: the identity went with the old claim',
    situation: {
      posture: REPLACED,
      agent: stopped({ exitCode: 14, failureClass: 'Reconnect', code: 'CLOCK_SKEW' }),
    },
    both: ['claimReplaced', 'clockSkew'],
    failureClass: 'IdentityLoss',
  },
  {
    title: 'a clock skew wins over an agent that failed closed: the identity is intact',
    situation: { agent: stopped({ exitCode: 14, failureClass: 'IdentityLoss', code: 'CLOCK_SKEW' }) },
    both: ['clockSkew', 'agentLostIdentity'],
    failureClass: 'Reconnect',
  },
  {
    title: 'a connection setting wins over an agent that failed closed: the identity is intact',
    situation: {
      agent: stopped({ exitCode: 12, failureClass: 'IdentityLoss', code: 'CONTROL_PLANE_MISMATCH' }),
    },
    both: ['connectionConfiguration', 'agentLostIdentity'],
    failureClass: 'Reconnect',
  },
  {
    title: 'a lost identity wins over an offline connector that would reconnect',
    situation: {
      record: record({ state: 'offline' }),
      agent: stopped({ failureClass: 'IdentityLoss', code: 'IDENTITY_LOST' }),
    },
    both: ['agentLostIdentity', 'reconnectFailure'],
    failureClass: 'IdentityLoss',
  },
  {
    title: 'a refused identity wins over tokens that keep expiring: no token helps',
    situation: {
      record: pendingRecord(),
      agent: stopped({ failureClass: 'IdentityLoss', code: 'IDENTITY_REJECTED' }),
      unpairedMints: 3,
      tokenExpiredUnused: true,
    },
    both: ['refusedIdentity', 'firstBootFailure'],
    failureClass: 'IdentityLoss',
  },
];

for (const row of ORDER_ROWS) {
  test(`order: ${row.title}`, (t) => {
    const situation = input(row.situation);
    const [first, second] = row.both;
    t.truthy(rule(first)(situation), `${first} matches`);
    t.truthy(rule(second)(situation), `${second} matches`);
    t.true(
      DIAGNOSIS_RULES.indexOf(rule(first)) < DIAGNOSIS_RULES.indexOf(rule(second)),
      `${first} comes before ${second}`,
    );
    t.deepEqual(diagnose(situation), rule(first)(situation), 'the first match is the diagnosis');
    t.is(diagnose(situation)?.failureClass, row.failureClass);
  });
}

test('before the chain: heartbeats arrive and the agent runs ready, so no rule applies', (t) => {
  // An old termination in the pod's lastState is history.
  const well = input({
    record: record({ state: 'degraded' }),
    agent: {
      ...readyAgent,
      termination: { exitCode: 13, failureClass: 'IdentityLoss', code: 'IDENTITY_LOST' },
    },
  });
  t.truthy(rule('agentLostIdentity')(well), 'the rule alone would match');
  t.is(diagnose(well), undefined);
  t.is(diagnose(input({ record: record({ state: 'online' }), agent: readyAgent })), undefined);
});

test('held: a next step the operator takes says it waits, one a person takes does not change', (t) => {
  const lost = { record: record({ state: 'needs_recovery' }) };
  for (const recoveryPolicy of ['Manual', 'Automatic'] as const) {
    const acting = diagnose(input({ ...lost, recoveryPolicy }));
    const paused = diagnose(input({ ...lost, recoveryPolicy, held: 'spec.paused is true' }));
    t.false(acting?.nextStep?.includes('not while'), recoveryPolicy);
    t.regex(paused?.nextStep ?? '', /not while spec\.paused is true/, recoveryPolicy);
    t.is(paused?.reason, acting?.reason, 'what was observed is the same');
  }
  const expiring = { record: pendingRecord(), unpairedMints: 2, tokenExpiredUnused: true };
  t.regex(
    diagnose(input({ ...expiring, held: 'the Connector is Stalled (OwnershipConflict)' }))?.nextStep ?? '',
    /mints a fresh token when one expires or is revoked \(not while the Connector is Stalled \(OwnershipConflict\)\)/,
  );
  const reconnect = diagnose(input({ record: record({ state: 'offline' }), held: 'spec.paused is true' }));
  t.false(
    reconnect?.nextStep?.includes('not while'),
    'a person restores the network: nothing waits on the operator',
  );
});

test('Automatic, after this incident’s one automatic recovery failed: the next step asks for a guided recovery, it does not promise one', (t) => {
  const lost = { record: record({ state: 'needs_recovery' }), recoveryPolicy: 'Automatic' as const };
  t.regex(diagnose(input(lost))?.nextStep ?? '', /starts automatically/);
  const failed =
    diagnose(input({ ...lost, automaticRecoveryFailed: 'auto-0123456789abcdef' }))?.nextStep ?? '';
  t.notRegex(failed, /starts automatically/);
  t.regex(failed, /the automatic recovery auto-0123456789abcdef of this incident failed/);
  t.regex(failed, /set spec\.recovery\.requestId to a new value to run a guided recovery/);
});

test('a foreign identity on the claim: never IdentityLoss (no automatic recovery), and the next step says how a reattach works', (t) => {
  const foreign = stopped({ exitCode: 13, failureClass: 'IdentityLoss', code: 'IDENTITY_FOREIGN' });
  const neverPaired = diagnose(input({ record: pendingRecord(), agent: foreign }));
  t.is(neverPaired?.failureClass, 'FirstBootBootstrap');
  t.regex(
    neverPaired?.nextStep ?? '',
    /deletionPolicy: Retain .* same spec\.connector\.id and spec\.storage\.existingClaim/,
  );
  const paired = diagnose(input({ agent: foreign }));
  t.is(paired?.failureClass, 'Reconnect');
  t.regex(paired?.nextStep ?? '', /mount this connector's own claim back/);
});

test('identity files the connector user cannot read: never IdentityLoss (no automatic recovery), from this agent (exit 12) or an older one (exit 13)', (t) => {
  for (const code of ['IDENTITY_KEY_UNREADABLE', 'IDENTITY_FILE_UNREADABLE', 'IDENTITY_PERMISSIONS']) {
    const older = {
      exitCode: 13,
      failureClass: 'IdentityLoss' as const,
      reason:
        'permission denied reading /data/identity/cert.pem (certificate): the connector user must be able to read it (its owner, mode 0644)',
    };
    for (const said of [{ exitCode: 12 }, older]) {
      const d = diagnose(input({ recoveryPolicy: 'Automatic', agent: stopped({ ...said, code }) }));
      t.is(d?.failureClass, 'Reconnect', `${code} exit ${said.exitCode}`);
      t.regex(d?.nextStep ?? '', /runAsUser.*fsGroup/);
      t.notRegex(d?.nextStep ?? '', /starts automatically/);
      t.regex(d?.nextStep ?? '', /delete the identity directory on the claim/, 'an exposed key: its way');
      // Found by review: the new key is written to the data directory, which a runAsUser change
      // without fsGroup leaves the old user's (operator-identity-permissions.test.ts).
      t.regex(d?.nextStep ?? '', /give the connector user the data directory itself/);
      // The CRD bounds status.diagnosis.nextStep to 1024 characters: a longer one makes the API
      // server refuse the whole status write, so no diagnosis is shown at all.
      t.true((d?.nextStep ?? '').length <= 1024, `${d?.nextStep?.length} characters`);
      t.regex(NEXT_STEPS.identityFilesInaccessible, /make the data directory writable by this user/);
    }
  }
});

test("an older agent's IDENTITY_FILE_UNREADABLE that is no permission problem (EIO, EISDIR) is still identity unusable", (t) => {
  // Before IDENTITY_FILE_READ_FAILED, an agent said IDENTITY_FILE_UNREADABLE (exit 13) for any read
  // error but ENOENT; only its "permission denied reading" ones are a permissions mistake. A disk
  // that fails reads may have lost the identity: the status must not call it intact, and policy
  // Automatic recovers it as before.
  for (const reason of [
    'cannot read /data/identity/cert.pem (certificate): EIO',
    'cannot read /data/identity/ca.pem (CA bundle): EISDIR',
  ]) {
    const agent = stopped({
      exitCode: 13,
      failureClass: 'IdentityLoss',
      code: 'IDENTITY_FILE_UNREADABLE',
      reason,
    });
    const d = diagnose(input({ recoveryPolicy: 'Automatic', agent }));
    t.is(d?.failureClass, 'IdentityLoss', reason);
    t.notRegex(d?.reason ?? '', /permission denied|intact/, reason);
    t.regex(d?.nextStep ?? '', /starts automatically/, reason);
  }
});

test('a guided recovery that paired and ended Failed on a data directory that took no certificate: the status says so, and what to do first, under either policy', (t) => {
  for (const recoveryPolicy of ['Manual', 'Automatic'] as const) {
    const d = diagnose(
      input({
        record: pairedInRecoveryR1,
        agent: stopped({ exitCode: 12, code: 'IDENTITY_PERSIST_FAILED', reason: 'ENOSPC writing cert.pem' }),
        recoveryFailedAfterPairing: 'r1',
        recoveryPolicy,
      }),
    );
    t.is(d?.failureClass, 'IdentityLoss', recoveryPolicy);
    t.regex(d?.reason ?? '', /token is spent/);
    t.regex(
      d?.nextStep ?? '',
      /^make the data directory writable .*, then set spec\.recovery\.requestId to a new value/,
    );
    t.regex(d?.nextStep ?? '', /No recovery starts by itself before that/);
    t.true((d?.evidence ?? []).some((line) => line.includes('IDENTITY_PERSIST_FAILED')));
    // The restarted agent then finds no token: still no automatic recovery after that pairing.
    const after = diagnose(
      input({
        record: pairedInRecoveryR1,
        agent: stopped({
          exitCode: 11,
          failureClass: 'FirstBootBootstrap',
          code: 'ENROLLMENT_TOKEN_MISSING',
        }),
        recoveryFailedAfterPairing: 'r1',
        recoveryPolicy,
      }),
    );
    t.is(after?.failureClass, 'IdentityLoss');
    t.notRegex(after?.nextStep ?? '', /starts automatically/, recoveryPolicy);
  }
});

test('an exit recorded in the same second as the pairing (Kubernetes keeps whole seconds) is not before it: the unsaved certificate is diagnosed', (t) => {
  // The agent exits milliseconds after the control plane recorded the pairing at .615.
  const paired = pendingRecord({ state: 'enrolling', enrolledAt: '2025-12-31T23:00:00.615Z' });
  const exit = stopped({ exitCode: 12, code: 'IDENTITY_PERSIST_FAILED', finishedAt: '2025-12-31T23:00:00Z' });
  t.is(diagnose(input({ record: paired, agent: exit }))?.failureClass, 'FirstBootBootstrap');
  t.regex(diagnose(input({ record: paired, agent: exit }))?.reason ?? '', /did not take the certificate/);
  // A whole second earlier is before it (a first start that waited for its token, say).
  const earlier = stopped({
    exitCode: 12,
    code: 'IDENTITY_PERSIST_FAILED',
    finishedAt: '2025-12-31T22:59:59Z',
  });
  t.is(rule('identityNotSaved')(input({ record: paired, agent: earlier })), undefined);
  // An exit that can only come before a pairing (a first start that found no token yet) keeps
  // reading as before a pairing in its second: it describes no identity lost since.
  const waited = stopped({
    exitCode: 11,
    failureClass: 'FirstBootBootstrap',
    code: 'ENROLLMENT_TOKEN_MISSING',
    finishedAt: '2025-12-31T23:00:00Z',
  });
  t.is(
    rule('agentLostIdentity')(
      input({ record: record({ enrolledAt: '2025-12-31T23:00:00.615Z' }), agent: waited }),
    ),
    undefined,
  );
});

test("the guide's client certificate required while pairing (a proxy's page or its TLS alert): the next step is the enrollment path, not the trust, network or token", (t) => {
  const d = diagnose(
    input({
      record: pendingRecord(),
      agent: stopped({
        exitCode: 11,
        failureClass: 'FirstBootBootstrap',
        code: 'CLIENT_CERTIFICATE_REQUIRED',
      }),
    }),
  );
  t.is(d?.failureClass, 'FirstBootBootstrap');
  t.regex(d?.nextStep ?? '', /requires a client certificate on the enrollment request/);
  t.regex(d?.nextStep ?? '', /token is unspent/);
  t.notRegex(d?.nextStep ?? '', /fix the trust/);
  t.true(Array.from(d?.nextStep ?? '').length <= DIAGNOSIS_TEXT_MAX);
});

// An agent that gave up on a server refusing its certificate by a TLS alert (unknown ca, bad
// certificate, ...; refusal-causes.test.ts) exited 14 CONTROL_PLANE_UNREACHABLE before, and the
// offline record made the diagnosis "restore outbound HTTPS": false, the address was reached.
test('a paired agent that gave up on a TLS alert refusing its certificate: the proxy or CA chain, never a recovery, under either policy', (t) => {
  for (const recoveryPolicy of ['Manual', 'Automatic'] as const) {
    const d = diagnose(
      input({
        record: record({ state: 'offline' }),
        recoveryPolicy,
        agent: stopped({
          exitCode: 14,
          failureClass: 'Reconnect',
          code: 'TLS_CLIENT_CERTIFICATE_REJECTED',
          reason:
            "gave up after 3 s: the control plane's address was reached, and client certificate rejected: certificate signed by unknown authority: ... with alert 48 (unknown ca)",
        }),
      }),
    );
    t.is(d?.failureClass, 'Reconnect', recoveryPolicy);
    t.regex(d?.reason ?? '', /not a network outage/);
    t.notRegex(d?.nextStep ?? '', /restore outbound HTTPS/);
    t.regex(d?.nextStep ?? '', /check the proxy and the CA chain/);
    t.regex(d?.nextStep ?? '', /No recovery starts for this/);
    t.notRegex(d?.nextStep ?? '', /spec\.recovery\.requestId|starts automatically/);
    t.true(
      (d?.evidence ?? []).some((line) => line.includes('alert 48 (unknown ca)')),
      'the alert is evidence',
    );
    for (const text of [d?.reason, d?.nextStep]) t.true(Array.from(text ?? '').length <= DIAGNOSIS_TEXT_MAX);
  }
});

// Under the operator the agent now exits on such refusals (--give-up-on-refusal-after) and the
// kubelet restarts it: the restarted container runs again, not ready, with the exit in lastState. The
// diagnosis must stay this one through the restarts, not turn into a crash, offline or identity loss.
test('the agent restarted by the kubelet after giving up on a TLS alert: still the proxy or CA chain while it runs again, never identity loss', (t) => {
  for (const recoveryPolicy of ['Manual', 'Automatic'] as const) {
    const restarted: AgentPodFacts = {
      ...stopped({
        exitCode: 14,
        finishedAt: '2026-01-01T01:00:00Z',
        failureClass: 'Reconnect',
        code: 'TLS_CLIENT_CERTIFICATE_REJECTED',
        reason:
          "gave up after 300 s: the control plane's address was reached, and client certificate rejected: certificate signed by unknown authority: ... with alert 48 (unknown ca)",
      }),
      running: true,
      restartCount: 7,
    };
    const d = diagnose(input({ record: record({ state: 'offline' }), recoveryPolicy, agent: restarted }));
    t.is(d?.failureClass, 'Reconnect', recoveryPolicy);
    t.false(isIdentityLoss(d));
    t.regex(d?.nextStep ?? '', /check the proxy and the CA chain/);
    t.regex(d?.nextStep ?? '', /kubelet restarts the agent by itself/);
    t.notRegex(d?.nextStep ?? '', /restore outbound HTTPS|spec\.recovery\.requestId|starts automatically/);
    t.true((d?.evidence ?? []).some((line) => line.includes('restarts 7')));
  }
});

// While pairing the agent has no certificate and presents none: the rule said "an alert about the
// connector's certificate ... the certificate was not accepted" and sent the reader to the CA chain.
test('an agent that never paired gave up on a TLS alert refusing its handshake: no certificate presented, let the enrollment through, the token unspent, no recovery', (t) => {
  for (const recoveryPolicy of ['Manual', 'Automatic'] as const) {
    const d = diagnose(
      input({
        record: pendingRecord(),
        recoveryPolicy,
        agent: stopped({
          exitCode: 14,
          failureClass: 'FirstBootBootstrap',
          code: 'TLS_CLIENT_CERTIFICATE_REJECTED',
          reason:
            "gave up after 300 s: the control plane's address was reached, and tls handshake refused: this agent presented no client certificate (it has none before it pairs), and the server at cp.example:443 refused the handshake with alert 42 (bad certificate): ...",
        }),
      }),
    );
    t.is(d?.failureClass, 'FirstBootBootstrap', recoveryPolicy);
    t.regex(d?.reason ?? '', /presented no client certificate/);
    t.notRegex(d?.reason ?? '', /connector's certificate|certificate was not accepted/);
    t.regex(d?.nextStep ?? '', /let the enrollment path through without a client certificate/);
    t.regex(d?.nextStep ?? '', /token is unspent/);
    t.regex(d?.nextStep ?? '', /No recovery is needed/);
    t.notRegex(d?.nextStep ?? '', /CA chain|restore outbound HTTPS|fix the trust|spec\.recovery\.requestId/);
    for (const text of [d?.reason, d?.nextStep]) t.true(Array.from(text ?? '').length <= DIAGNOSIS_TEXT_MAX);
  }
});
