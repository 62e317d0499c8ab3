// `diagnose`'s checks, branch by branch, from facts built by hand: each runbook question gets the
// result and next step the situation calls for, and only an Online connector with no failed check
// is healthy (the exit code scripts rely on).
import test from 'ava';
import type { ConnectorStatus } from '../../src/operator/api/types.ts';
import { diagnoseText } from '../../src/plugin/commands/diagnose.ts';
import type { ConnectorFacts } from '../../src/plugin/connector-facts.ts';
import { type RunbookCheck, runbookChecks } from '../../src/plugin/runbook-checks.ts';
import { cond, connector, facts, NOW, ONLINE_STATUS, runningPod } from './facts-fixtures.ts';

const check = (checks: RunbookCheck[], title: RegExp) => {
  const found = checks.find((c) => title.test(c.title));
  if (!found) throw new Error(`no check ${title}`);
  return found;
};

test('Online with a running pod, a reachable control plane, retired bootstrap and its claim: healthy', (t) => {
  const report = runbookChecks(facts(connector(ONLINE_STATUS)));
  t.true(report.healthy);
  t.deepEqual(
    report.checks.map((c) => [c.title, c.result]),
    [
      ['Pod scheduled and running', 'ok'],
      ['Control plane reachable from the operator', 'ok'],
      ['Enrollment token valid, or retired', 'ok'],
      ['Durable storage intact, the same claim as at pairing', 'ok'],
      ['Failure class', 'ok'],
      ['Operator not Stalled, Connector Ready', 'ok'],
    ],
  );
  t.is(report.nextStep, undefined);
  t.regex(check(report.checks, /Control plane/).detail, /not asked from here: not asked in this test/);
});

test('Offline with a Reconnect diagnosis: not healthy, the diagnosis is the next step', (t) => {
  const status: ConnectorStatus = {
    ...ONLINE_STATUS,
    phase: 'Offline',
    controlPlaneState: 'offline',
    diagnosis: {
      failureClass: 'Reconnect',
      reason: 'heartbeats stopped',
      evidence: ['last heartbeat 2026-03-01T11:58:00Z'],
      nextStep: 'restore outbound HTTPS to the control plane',
      since: '2026-03-01T11:59:00Z',
    },
    conditions: [
      cond('Healthy', 'False', 'HeartbeatMissed'),
      ...(ONLINE_STATUS.conditions ?? []).slice(1, 3),
    ],
  };
  const report = runbookChecks(
    facts(connector(status), { pods: { ok: true, value: [runningPod({}, { ready: false })] } }),
  );
  t.false(report.healthy);
  const failure = check(report.checks, /Failure class/);
  t.is(failure.result, 'failed');
  t.regex(failure.detail, /^Reconnect: heartbeats stopped \(last heartbeat/);
  t.is(report.nextStep, 'restore outbound HTTPS to the control plane');
  t.is(check(report.checks, /Pod/).result, 'warning', 'running but not ready');
});

test('identity lost with a replaced claim: the claim UID differs from the one the identity was on', (t) => {
  const status: ConnectorStatus = {
    ...ONLINE_STATUS,
    phase: 'NeedsRecovery',
    mode: 'GuidedRecovery',
    diagnosis: {
      failureClass: 'IdentityLoss',
      reason: 'claim replaced',
      nextStep: 'set spec.recovery.requestId',
    },
    conditions: [cond('DurableStorage', 'False', 'ClaimReplaced', 'claim data-edge-0 was recreated')],
  };
  const report = runbookChecks(
    facts(connector(status), {
      claim: { ok: true, value: { name: 'data-edge-0', uid: 'claim-2', phase: 'Bound' } },
      pods: {
        ok: true,
        value: [
          runningPod(
            { agentState: 'waiting (CrashLoopBackOff)' },
            {
              running: false,
              ready: false,
              restartCount: 3,
              termination: {
                exitCode: 13,
                failureClass: 'IdentityLoss',
                code: 'ENROLLMENT_TOKEN_MISSING',
                reason: 'no identity and no token',
              },
            },
          ),
        ],
      },
    }),
  );
  t.false(report.healthy);
  const storage = check(report.checks, /Durable storage/);
  t.is(storage.result, 'failed');
  t.regex(storage.detail, /now has UID claim-2; the connector's identity was on UID claim-1/);
  const pod = check(report.checks, /Pod/);
  t.is(pod.result, 'failed');
  t.regex(pod.detail, /exit 13 IdentityLoss ENROLLMENT_TOKEN_MISSING: no identity and no token/);
  t.is(report.nextStep, 'set spec.recovery.requestId');
});

test('the control plane: a stalled reference, a resource not Ready, and unreachable', (t) => {
  const stalled = runbookChecks(
    facts(
      connector({
        ...ONLINE_STATUS,
        conditions: [
          cond('Stalled', 'True', 'ControlPlaneConfigInvalid', 'ControlPlane team-a/x does not exist'),
        ],
      }),
    ),
  );
  t.is(check(stalled.checks, /Control plane/).result, 'failed');
  t.regex(check(stalled.checks, /Control plane/).detail, /ControlPlaneConfigInvalid/);
  const notReady = runbookChecks(
    facts(connector(ONLINE_STATUS), {
      controlPlane: {
        source: {
          kind: 'ClusterControlPlane',
          name: 'shared',
          ready: { status: 'False', reason: 'Unauthorized', message: 'refused' },
        },
      },
    }),
  );
  t.regex(
    check(notReady.checks, /Control plane/).detail,
    /ClusterControlPlane shared is not Ready \(Unauthorized\): refused/,
  );
  t.false(notReady.healthy);
  const unreachable = runbookChecks(
    facts(
      connector({
        ...ONLINE_STATUS,
        conditions: [cond('Healthy', 'Unknown', 'ControlPlaneUnreachable', 'connect ECONNREFUSED')],
      }),
    ),
  );
  t.is(check(unreachable.checks, /Control plane/).result, 'failed');
  t.regex(check(unreachable.checks, /Control plane/).nextStep ?? '', /curl -v https:\/\/cp\/healthz/);
});

test('tokens: live, expired unused, and no record of a live one at the control plane', (t) => {
  const pending = (enrollment: ConnectorStatus['enrollment']) =>
    connector({ phase: 'Pending', enrollment, conditions: [cond('Enrolled', 'False', 'TokenMinted')] });
  const live = runbookChecks(
    facts(pending({ tokenSecretName: 'edge-enrollment-token', tokenExpiresAt: '2026-03-01T15:00:00Z' })),
  );
  t.is(check(live.checks, /token/).result, 'ok');
  t.regex(check(live.checks, /token/).detail, /valid until 2026-03-01T15:00:00Z \(in 3h\)/);
  t.false(live.healthy, 'Pending is not healthy');
  const expired = runbookChecks(facts(pending({ tokenExpiresAt: '2026-03-01T11:00:00Z' })));
  t.is(check(expired.checks, /token/).result, 'failed');
  t.regex(check(expired.checks, /token/).detail, /expired unused at 2026-03-01T11:00:00Z \(60m ago\)/);
  const revokedThere = runbookChecks(
    facts(pending({ tokenSecretName: 's', tokenExpiresAt: '2026-03-01T15:00:00Z' }), {
      controlPlane: {
        source: { kind: 'default' },
        record: { connectorId: 'team-a.edge', state: 'pending', liveToken: null } as never,
      },
    }),
  );
  t.is(check(revokedThere.checks, /token/).result, 'failed');
  t.regex(check(revokedThere.checks, /token/).detail, /the control plane holds no live token/);
});

test('pods: none during a recovery is expected; a workload at zero replicas or a pod not scheduled is not', (t) => {
  const recovering = runbookChecks(
    facts(
      connector({
        ...ONLINE_STATUS,
        phase: 'Recovering',
        recovery: { requestId: 'r1', step: 'TokensRevoked' },
      }),
      {
        pods: { ok: true, value: [] },
      },
    ),
  );
  t.is(check(recovering.checks, /Pod/).result, 'ok');
  t.regex(check(recovering.checks, /Failure class/).detail, /request r1, step TokensRevoked \(5 of 10\)/);
  const scaled = runbookChecks(
    facts(connector(ONLINE_STATUS), {
      pods: { ok: true, value: [] },
      workload: {
        ok: true,
        value: {
          kind: 'Deployment',
          name: 'legacy',
          adopted: true,
          object: { spec: { replicas: 0, selector: {}, template: {} } },
        },
      },
    }),
  );
  t.is(check(scaled.checks, /Pod/).nextStep, 'kubectl -n team-a scale deployment legacy --replicas=1');
  t.false(scaled.healthy);
  const unscheduled = runbookChecks(
    facts(connector(ONLINE_STATUS), {
      pods: {
        ok: true,
        value: [
          runningPod(
            { scheduled: false, scheduleMessage: '0/3 nodes are available' },
            { running: false, ready: false },
          ),
        ],
      },
    }),
  );
  t.regex(check(unscheduled.checks, /Pod/).detail, /edge-0 is not scheduled: 0\/3 nodes are available/);
  const forbidden = runbookChecks(
    facts(connector(ONLINE_STATUS), { pods: { ok: false, why: 'HTTP 403: forbidden' } }),
  );
  t.is(
    check(forbidden.checks, /Pod/).result,
    'warning',
    'a read the person may not make is said, not failed',
  );
  t.true(forbidden.healthy);
  t.regex(
    diagnoseText(forbidden),
    /^Healthy: Online, no check failed, 1 check\(s\) warned\.$/m,
    'a warning is not a pass: the last line does not say every check passed',
  );
});

test('storage: emptyDir by choice warns, an emptyDir under a durable spec fails', (t) => {
  const byChoice = runbookChecks(
    facts(
      connector({ ...ONLINE_STATUS, conditions: [cond('DurableStorage', 'False', 'EphemeralByChoice')] }),
      { claim: undefined },
    ),
  );
  t.is(check(byChoice.checks, /storage/).result, 'warning');
  t.true(byChoice.healthy);
  const emptyDir = runbookChecks(
    facts(connector({ ...ONLINE_STATUS, conditions: [cond('DurableStorage', 'False', 'EmptyDir')] }), {
      claim: undefined,
    }),
  );
  t.is(check(emptyDir.checks, /storage/).result, 'failed');
  t.false(emptyDir.healthy);
  t.is(NOW.toISOString(), '2026-03-01T12:00:00.000Z');
});

test('Online but Stalled after a failed recovery: not healthy, the verdict check names the reason and the cleaned message', (t) => {
  const ESC = '\u001b';
  const message = `recovery r1 failed: ${ESC}[31mValidatingRestart timed out${ESC}[0m\nforged: line; set a new spec.recovery.requestId`;
  const status: ConnectorStatus = {
    ...ONLINE_STATUS,
    recovery: { requestId: 'r1', step: 'Failed', outcome: 'Failed' },
    conditions: [
      cond('Ready', 'False', 'RecoveryFailed', `Stalled: ${message}`),
      cond('Stalled', 'True', 'RecoveryFailed', message),
      ...(ONLINE_STATUS.conditions ?? []).slice(1),
    ],
  };
  const report = runbookChecks(facts(connector(status)));
  t.false(report.healthy, 'diagnose exits 1 (EXIT.no), as for any failed check');
  const verdict = check(report.checks, /Stalled/);
  t.is(verdict.result, 'failed');
  t.is(
    verdict.detail,
    'Stalled=True (RecoveryFailed): recovery r1 failed: ValidatingRestart timed out forged: line; set a new spec.recovery.requestId; the operator makes no progress until that is changed',
  );
  t.is(verdict.nextStep, 'a guided recovery with a new request id: kubectl vaultpam recover edge -n team-a');
  t.is(report.nextStep, verdict.nextStep);
  t.deepEqual(
    report.checks.filter((c) => c.result === 'failed').map((c) => c.title),
    ['Operator not Stalled, Connector Ready'],
    'every runbook question has a good answer; only the operator says it is stuck',
  );
  const text = diagnoseText(report);
  t.notRegex(text, /Healthy: Online, and every check passed/);
  t.regex(text, /\[FAILED\] 6\. Operator not Stalled, Connector Ready\n/);
  t.regex(text, /^Not healthy: phase Online, 1 check\(s\) failed\. Next step: a guided recovery/m);
  t.false(text.includes(ESC), 'no escape sequence reaches the terminal');
  t.false(/\nforged/.test(text), 'a newline in the message forges no line');
});

test('Ready=False: a fault fails the verdict check, progress (a token waiting, a recovery running) only warns', (t) => {
  const ready = (status: 'False' | 'Unknown', reason: string) =>
    check(
      runbookChecks(
        facts(
          connector({
            ...ONLINE_STATUS,
            conditions: [cond('Ready', status, reason), ...(ONLINE_STATUS.conditions ?? []).slice(1)],
          }),
        ),
      ).checks,
      /Stalled/,
    );
  const unhealthy = ready('False', 'PathUnhealthy');
  t.is(unhealthy.result, 'failed');
  t.is(unhealthy.detail, 'Ready=False (PathUnhealthy): Ready PathUnhealthy');
  t.regex(unhealthy.nextStep ?? '', /kubectl -n team-a describe connector edge/);
  for (const reason of ['TokenMinted', 'AwaitingEnrollment', 'Recovering']) {
    t.is(ready('False', reason).result, 'warning', reason);
  }
  t.is(ready('Unknown', 'NeverConnected').result, 'warning');
  t.regex(ready('Unknown', 'NeverConnected').detail, /the operator cannot tell yet/);
  const unjudged = runbookChecks(facts(connector({ ...ONLINE_STATUS, conditions: [] })));
  t.is(check(unjudged.checks, /Stalled/).result, 'warning');
});

test('a controlPlaneRef that names nothing: the next step is the reference, not the waiting pod', (t) => {
  // What a typo in spec.controlPlaneRef.name gives on a real cluster: the operator Stalls, the
  // StatefulSet it made has a pod waiting on a config with no control-plane URL, and the plugin
  // found no ControlPlane by that name.
  const stalledOn = (source: ConnectorFacts['controlPlane']['source']) =>
    runbookChecks(
      facts(
        connector({
          phase: 'Pending',
          conditions: [
            cond(
              'Stalled',
              'True',
              'ControlPlaneConfigInvalid',
              'spec.controlPlaneRef: ControlPlane team-a/vaultpm does not exist',
            ),
          ],
        }),
        {
          pods: {
            ok: true,
            value: [
              runningPod(
                { phase: 'Pending', agentState: 'waiting (CreateContainerConfigError)' },
                { running: false, ready: false },
              ),
            ],
          },
          controlPlane: { source, unavailable: 'ControlPlane team-a/vaultpm does not exist' },
        },
      ),
    );
  const missing = stalledOn({ kind: 'ControlPlane', name: 'team-a/vaultpm', missing: true });
  const expected =
    'ControlPlane team-a/vaultpm does not exist: fix spec.controlPlaneRef (kubectl -n team-a get controlplanes lists those there are), or ask an admin to create it';
  t.is(check(missing.checks, /Control plane/).nextStep, expected);
  t.is(check(missing.checks, /Pod/).result, 'failed');
  t.is(missing.nextStep, expected, 'the stall, not the logs of a container that never started');

  const clusterMissing = stalledOn({ kind: 'ClusterControlPlane', name: 'shraed', missing: true });
  t.regex(
    check(clusterMissing.checks, /Control plane/).nextStep ?? '',
    /\(kubectl get clustercontrolplanes lists/,
  );

  const notReady = stalledOn({
    kind: 'ControlPlane',
    name: 'team-a/vaultpam',
    ready: { status: 'False', reason: 'CredentialNotForURL', message: 'not annotated' },
  });
  t.is(
    check(notReady.checks, /Control plane/).nextStep,
    "an admin of ControlPlane team-a/vaultpam must fix it, not the Connector's spec: kubectl -n team-a describe controlplane vaultpam shows why it is not Ready",
  );
  const noDefault = stalledOn({ kind: 'default' });
  t.regex(
    check(noDefault.checks, /Control plane/).nextStep ?? '',
    /name a ControlPlane or ClusterControlPlane in spec\.controlPlaneRef/,
  );
  t.notRegex(noDefault.nextStep ?? '', /kubectl get controlplane/);
});

test("a guided recovery's one token in the Secret is the token the enrollment check judges, retired or not", (t) => {
  // The check said "bootstrap retired" (or quoted the enrollment's last token, long revoked) while
  // the recovery's token waited for the agent, and its end means the recovery fails, not a re-mint.
  const recovering = (tokenExpiresAt: string): ConnectorStatus => ({
    ...ONLINE_STATUS,
    phase: 'Recovering',
    enrollment: { retired: true, tokenSecretName: 'edge-enrollment-token', mintCount: 1 },
    recovery: { requestId: 'r2', step: 'AwaitingOnline', tokenExpiresAt },
  });
  const live = check(
    runbookChecks(facts(connector(recovering('2026-03-01T13:00:00Z')))).checks,
    /Enrollment token/,
  );
  t.is(live.result, 'ok');
  t.regex(
    live.detail,
    /^token of guided recovery r2 in Secret edge-enrollment-token valid until 2026-03-01T13:00:00Z/,
  );
  const expired = check(
    runbookChecks(facts(connector(recovering('2026-03-01T11:00:00Z')))).checks,
    /Enrollment token/,
  );
  t.is(expired.result, 'failed');
  t.regex(expired.detail, /the guided recovery's one token\) expired unused at 2026-03-01T11:00:00Z/);
  t.regex(expired.nextStep ?? '', /new spec\.recovery\.requestId/);
});
