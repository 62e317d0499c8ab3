// How the plugin prints: kubectl's ages and table layout, and the status table's columns.
import test from 'ava';
import { table } from '../../src/plugin/output.ts';
import { statusReport, summarize, summaryTable } from '../../src/plugin/status-report.ts';
import { age, humanDuration, relativeTime } from '../../src/plugin/time-text.ts';
import { cond, connector, facts, NOW, ONLINE_STATUS } from './facts-fixtures.ts';

test("ages read as kubectl's (apimachinery duration.HumanDuration)", (t) => {
  const s = 1000;
  const cases: Array<[number, string]> = [
    [-5 * s, '<invalid>'],
    [-1 * s, '0s'],
    [4 * s, '4s'],
    [119 * s, '119s'],
    [192 * s, '3m12s'],
    [300 * s, '5m'],
    [45 * 60 * s, '45m'],
    [179 * 60 * s, '179m'],
    [3 * 3600 * s, '3h'],
    [(5 * 3600 + 20 * 60) * s, '5h20m'],
    [30 * 3600 * s, '30h'],
    [(3 * 24 + 5) * 3600 * s, '3d5h'],
    [20 * 24 * 3600 * s, '20d'],
    [(3 * 365 + 10) * 24 * 3600 * s, '3y10d'],
    [10 * 365 * 24 * 3600 * s, '10y'],
  ];
  t.deepEqual(
    cases.map(([ms]) => humanDuration(ms)),
    cases.map(([, text]) => text),
  );
  t.is(age('2026-03-01T11:59:56Z', NOW), '4s');
  t.is(age(undefined, NOW), '<unknown>');
  t.is(relativeTime('2026-03-01T15:59:00Z', NOW), 'in 3h59m');
  t.is(relativeTime('2026-03-01T11:59:00Z', NOW), '60s ago');
});

test('tables: columns as wide as their widest cell, three spaces apart, the last one unpadded', (t) => {
  t.is(
    table(
      ['NAME', 'PHASE'],
      [
        ['edge', 'Online'],
        ['a-much-longer-name', 'Offline'],
      ],
    ),
    'NAME                 PHASE\nedge                 Online\na-much-longer-name   Offline',
  );
});

test('the status table: phase, mode, heartbeat, token expiry, diagnosis, recovery; -A and -o wide add columns', (t) => {
  const online = connector({ ...ONLINE_STATUS });
  online.metadata.creationTimestamp = new Date('2026-02-26T12:00:00Z');
  const pending = connector({ phase: 'Pending', enrollment: { tokenExpiresAt: '2026-03-01T15:59:00Z' } });
  pending.metadata.name = 'new';
  const lost = connector({
    phase: 'NeedsRecovery',
    diagnosis: { failureClass: 'IdentityLoss' },
    recovery: { requestId: 'r1', step: 'ScalingDown' },
  });
  lost.metadata.name = 'lost';
  const silent = connector({
    phase: 'Offline',
    controlPlaneState: 'offline',
    lastHeartbeatTime: '2026-03-01T11:40:00Z',
  });
  silent.metadata.name = 'silent';
  const rows = [online, pending, lost, silent].map((c) => summarize(c, NOW));
  const text = summaryTable(rows, NOW, { allNamespaces: false, wide: false });
  const lines = text.split('\n');
  t.regex(
    lines[0] ?? '',
    /^NAME\s+PHASE\s+MODE\s+LAST HEARTBEAT\s+TOKEN EXPIRY\s+DIAGNOSIS\s+RECOVERY\s+AGE$/,
  );
  // While heartbeats arrive the status names no time (no write per heartbeat); once they stop, its age.
  t.regex(lines[1] ?? '', /^edge\s+Online\s+Autonomous\s+arriving\s+retired\s+-\s+-\s+3d$/);
  t.regex(lines[2] ?? '', /^new\s+Pending\s+<none>\s+<none>\s+in 3h59m\s+-\s+-\s+<unknown>$/);
  t.regex(lines[3] ?? '', /^lost\s+NeedsRecovery\s+<none>\s+<none>\s+-\s+IdentityLoss\s+ScalingDown \(r1\)/);
  t.regex(lines[4] ?? '', /^silent\s+Offline\s+<none>\s+20m\s+-\s+-\s+-/);
  const wide = summaryTable(rows, NOW, { allNamespaces: true, wide: true }).split('\n');
  t.regex(wide[0] ?? '', /^NAMESPACE\s+NAME\s+.*AGE\s+CONNECTOR ID\s+CONTROL PLANE\s+READY$/);
  t.regex(wide[1] ?? '', /^team-a\s+edge\s+.*team-a\.edge\s+default\s+True$/);
});

test("the full report quotes a condition's message cleaned: no escape sequence, no forged line", (t) => {
  const ESC = '\u001b';
  const report = statusReport(
    facts(
      connector({
        ...ONLINE_STATUS,
        conditions: [cond('Stalled', 'True', 'RecoveryFailed', `failed ${ESC}[2J\nforged: line`)],
      }),
    ),
  );
  t.like(report.conditions[0], { reason: 'RecoveryFailed', message: 'failed forged: line' });
});

test("the status table and report show a guided recovery's live token, on a retired connector too", (t) => {
  // The token column showed only status.enrollment.tokenExpiresAt: "retired" (or the enrollment's
  // last token) while a recovery's one token waited in the Secret for the agent to pair.
  const recovering = connector({
    phase: 'Recovering',
    enrollment: { retired: true, tokenSecretName: 'edge-enrollment-token', mintCount: 1 },
    recovery: {
      requestId: 'r2',
      step: 'AwaitingOnline',
      tokenExpiresAt: '2026-03-01T15:59:00Z',
      tokenMintedAt: '2026-03-01T11:59:00Z',
    },
  });
  const summary = summarize(recovering, NOW);
  t.like(summary, { token: 'live', tokenExpiresAt: '2026-03-01T15:59:00Z', tokenMintedFor: 'Recovery' });
  const line = summaryTable([summary], NOW, { allNamespaces: false, wide: false }).split('\n')[1] ?? '';
  t.regex(line, /^edge\s+Recovering\s+<none>\s+<none>\s+in 3h59m \(recovery\)\s+-\s+AwaitingOnline \(r2\)/);
  const secret = statusReport(facts(recovering)).objects.find((o) => o.kind === 'Secret');
  t.is(
    secret?.state,
    'holds the live token of guided recovery r2, until 2026-03-01T15:59:00Z (never read here)',
  );
  // A never-paired connector's enrollment record keeps its last token's end: not the live token's.
  const neverPaired = connector({
    phase: 'Recovering',
    enrollment: {
      tokenSecretName: 'edge-enrollment-token',
      tokenExpiresAt: '2026-03-01T11:00:00Z',
      mintCount: 2,
    },
    recovery: { requestId: 'r2', step: 'ScalingUp', tokenExpiresAt: '2026-03-01T15:59:00Z' },
  });
  t.like(summarize(neverPaired, NOW), { token: 'live', tokenExpiresAt: '2026-03-01T15:59:00Z' });
  // Ended: the recovery's record is no live token, and a retired connector is retired again.
  const done = connector({
    phase: 'Online',
    enrollment: { retired: true, mintCount: 1 },
    recovery: { requestId: 'r2', step: 'Completed', tokenExpiresAt: '2026-03-01T15:59:00Z' },
  });
  t.like(summarize(done, NOW), { token: 'retired', tokenExpiresAt: undefined });
});
