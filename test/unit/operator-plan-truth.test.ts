// Planner table tests for "status tells the truth": a paused Connector plans nothing it will not
// do, an agent's fail-closed exit shows NeedsRecovery at once, and a diagnosis only describes a
// connector that is not well.
import { readFileSync } from 'node:fs';
import test, { type ExecutionContext } from 'ava';
import type { ConnectorStatus, RecoveryStatus } from '../../src/operator/api/types.ts';
import {
  connector,
  observed,
  pendingRecord,
  pod,
  record,
  tokenSecret,
  UID,
} from '../helpers/observed-builder.ts';
import { planView } from '../helpers/plan-view.ts';

const NOW = new Date('2026-01-01T00:00:10Z');
const condition = (status: ConnectorStatus, type: string) => status.conditions?.find((c) => c.type === type);
const termination = (failureClass: string, code: string, exitCode = 10) => ({
  exitCode,
  message: JSON.stringify({ failureClass, code, reason: 'no identity in /data' }),
  finishedAt: '2026-01-01T00:00:05Z',
});

// ---- paused: every phase, nothing planned but the observation ----

const midRecovery: RecoveryStatus = {
  requestId: 'r1',
  step: 'TokensRevoked',
  attempts: 1,
  startedAt: '2026-01-01T00:00:00Z',
};

const pausedCases: Array<{
  title: string;
  record: ReturnType<typeof record> | undefined;
  status?: ConnectorStatus;
  secret?: ReturnType<typeof tokenSecret>;
  policy?: 'Manual' | 'Automatic';
  requestId?: string;
}> = [
  { title: 'no record yet', record: undefined },
  { title: 'pending, never minted', record: pendingRecord() },
  {
    title: 'pending, its token expired unused',
    record: pendingRecord(),
    status: { enrollment: { mintCount: 1, lastMintKey: `enroll-${UID}-1`, retired: false } },
    secret: tokenSecret({ expiresAt: '2026-01-01T00:00:00.000Z' }),
  },
  {
    title: 'pending, a cached Secret older than the last mint',
    record: pendingRecord(),
    status: { enrollment: { mintCount: 2, lastMintKey: `enroll-${UID}-2`, retired: false } },
    secret: tokenSecret(),
  },
  { title: 'online and retired with a leftover Secret', record: record(), secret: tokenSecret() },
  { title: 'offline', record: record({ state: 'offline' }) },
  {
    title: 'needs_recovery under Automatic',
    record: record({ state: 'needs_recovery' }),
    policy: 'Automatic',
  },
  {
    title: 'needs_recovery with a new requestId',
    record: record({ state: 'needs_recovery' }),
    requestId: 'r9',
  },
  {
    title: 'a recovery in progress',
    record: record({ state: 'needs_recovery' }),
    status: { phase: 'Recovering', recovery: midRecovery },
    requestId: 'r1',
  },
];

for (const c of pausedCases) {
  test(`paused, ${c.title}: no call, no write, no Event, counters and recovery unchanged`, (t) => {
    const previous: ConnectorStatus = c.status ?? {};
    const result = planView(
      observed({
        connector: connector({
          spec: {
            paused: true,
            recovery: {
              policy: c.policy ?? 'Manual',
              ...(c.requestId ? { requestId: c.requestId } : {}),
            },
          },
          status: previous,
        }),
        record: c.record,
        ...(c.secret ? { tokenSecret: c.secret } : {}),
      }),
      NOW,
    );
    t.deepEqual(result.controlPlane, [], 'no control-plane call');
    t.is(result.configMap, undefined);
    t.is(result.statefulSet, undefined);
    t.is(result.scaleAdopted, undefined);
    t.is(result.deleteTokenSecret, undefined);
    t.deepEqual(result.events, [], 'no Event announces an action');
    t.is(result.status.enrollment?.mintCount ?? 0, previous.enrollment?.mintCount ?? 0);
    t.is(result.status.enrollment?.lastMintKey, previous.enrollment?.lastMintKey);
    t.deepEqual(result.status.recovery, previous.recovery, 'no recovery starts or advances');
    t.true(
      result.requeueAfterMs === undefined || result.requeueAfterMs >= 60_000,
      `no busy requeue (${result.requeueAfterMs} ms)`,
    );
    t.is(condition(result.status, 'Reconciling'), undefined, 'not reconciling while paused');
  });
}

test('paused: the status still reports what is observed (phase, heartbeat, storage)', (t) => {
  const result = planView(
    observed({ connector: connector({ spec: { paused: true } }), record: record({ state: 'offline' }) }),
    NOW,
  );
  t.is(result.status.phase, 'Offline');
  t.is(result.status.diagnosis?.failureClass, 'Reconnect');
  t.is(condition(result.status, 'DurableStorage')?.status, 'True');
});

// ---- identity loss proven by the agent: NeedsRecovery at once ----

for (const state of ['online', 'offline'] as const) {
  test(`Manual, retired, agent failed closed without identity while the control plane says ${state}: NeedsRecovery and Stalled`, (t) => {
    const result = planView(
      observed({
        record: record({ state }),
        pods: [
          pod({
            dataVolume: 'emptyDir',
            terminated: termination('FirstBootBootstrap', 'ENROLLMENT_TOKEN_MISSING', 11),
            restartCount: 3,
          }),
        ],
      }),
      NOW,
    );
    t.is(result.status.phase, 'NeedsRecovery');
    t.is(result.status.diagnosis?.failureClass, 'IdentityLoss');
    t.is(condition(result.status, 'Stalled')?.reason, 'RecoveryRequired');
    t.is(condition(result.status, 'Ready')?.status, 'False');
    t.is(condition(result.status, 'Enrolled')?.reason, 'NeedsRecovery');
    t.is(condition(result.status, 'Healthy')?.status, 'False');
    t.false(
      result.controlPlane.some((a) => a.kind === 'mintToken'),
      'no token is retried without a request',
    );
  });
}

test('Automatic, agent failed closed without identity while still online: a recovery starts at once', (t) => {
  const result = planView(
    observed({
      connector: connector({ spec: { recovery: { policy: 'Automatic' } } }),
      record: record({ state: 'online' }),
      pods: [pod({ terminated: termination('IdentityLoss', 'IDENTITY_MISSING') })],
    }),
    NOW,
  );
  t.is(result.status.recovery?.step, 'Requested');
  t.is(result.status.phase, 'Recovering');
});

// ---- a diagnosis describes a connector that is not well ----

test('online with a ready agent: an old fail-closed exit in lastState is history, no diagnosis', (t) => {
  const stale = {
    failureClass: 'IdentityLoss' as const,
    reason: 'old',
    evidence: [],
    nextStep: 'set spec.recovery.requestId',
    since: '2026-01-01T00:00:00Z',
  };
  const result = planView(
    observed({
      connector: connector({ status: { phase: 'Recovering', diagnosis: stale } }),
      record: record({ state: 'online' }),
      pods: [
        pod({
          running: true,
          ready: true,
          restartCount: 1,
          terminated: termination('IdentityLoss', 'IDENTITY_MISSING'),
        }),
      ],
    }),
    NOW,
  );
  t.is(result.status.phase, 'Online');
  t.is(result.status.diagnosis, undefined);
  t.false(
    (result.transitions ?? []).some((e) => /requestId/.test(e.message)),
    'the phase Event carries no recovery advice',
  );
});

// ---- objects with a child's name that this Connector does not control ----

test('a foreign ConfigMap with the child name: Stalled OwnershipConflict naming it, nothing planned', (t) => {
  const result = planView(
    {
      ...observed({ record: undefined, noWorkload: true, pods: [] }),
      configMap: undefined,
      foreign: [{ kind: 'ConfigMap', name: 'edge-config' }],
    },
    NOW,
  );
  const stalled = condition(result.status, 'Stalled');
  t.is(stalled?.reason, 'OwnershipConflict');
  t.regex(stalled?.message ?? '', /ConfigMap prod\/edge-config/);
  t.deepEqual(result.controlPlane, [], 'no record ensured and no token minted');
  t.is(result.configMap, undefined);
  t.is(result.statefulSet, undefined);
  t.is(result.deleteTokenSecret, undefined);
  t.is(condition(result.status, 'Ready')?.status, 'False');
  t.true(result.events.some((e) => e.reason === 'OwnershipConflict' && e.type === 'Warning'));
});

test('a foreign token Secret controlled by another Connector is named with its controller', (t) => {
  const result = planView(
    {
      ...observed({ record: pendingRecord() }),
      foreign: [{ kind: 'Secret', name: 'edge-enrollment-token', controller: 'Connector/other' }],
    },
    NOW,
  );
  t.regex(condition(result.status, 'Stalled')?.message ?? '', /controlled by Connector\/other/);
  t.false(result.controlPlane.some((a) => a.kind === 'mintToken'));
});

// ---- the last heartbeat agrees with the messages that name it ----

test('lastHeartbeatTime: none while heartbeats arrive, exact once they stop', (t) => {
  const shown = '2026-01-01T00:00:00Z';
  const online = planView(
    observed({
      connector: connector({ status: { lastHeartbeatTime: shown } }),
      record: record({ state: 'online', lastHeartbeatAt: '2026-01-01T00:03:00.000Z' }),
    }),
    NOW,
  );
  t.is(online.status.lastHeartbeatTime, undefined, 'no moving time, so no status write per heartbeat');
  const offline = planView(
    observed({
      connector: connector({ status: { lastHeartbeatTime: shown } }),
      record: record({ state: 'offline', lastHeartbeatAt: '2026-01-01T00:03:00.000Z' }),
    }),
    NOW,
  );
  t.is(offline.status.lastHeartbeatTime, '2026-01-01T00:03:00Z');
  t.regex(offline.status.diagnosis?.reason ?? '', /2026-01-01T00:03:00/);
});

// ---- one control-plane record, one owning Connector ----

/**
 * The fix a ConnectorIdConflict names is one the CRD accepts: spec.connector.id cannot be added,
 * changed or removed after creation (crds/connectors.vaultpam.io.yaml), so it says to create a new
 * Connector with another id, never to give this one another.
 */
function conflictFixIsPossible(t: ExecutionContext, message: string): void {
  t.notRegex(message, /give this Connector another spec\.connector\.id/, message);
  t.regex(message, /this Connector cannot change its spec\.connector\.id \(fixed at creation\)/, message);
  t.regex(message, /create a new Connector with another spec\.connector\.id and delete this one/, message);
}

test('found, fixed: ConnectorIdConflict asked for a spec.connector.id change the CRD refuses', (t) => {
  // The premise: the CRD refuses a change of the id (test/cluster/crd-validation.test.ts proves it).
  const crd = readFileSync(new URL('../../crds/connectors.vaultpam.io.yaml', import.meta.url), 'utf8');
  t.regex(crd, /spec\.connector\.id cannot be added, changed or removed after creation/);
  const owned = planView(observed({ record: record({ ownerUid: 'another-connector-uid' }) }), NOW);
  const ownedMessage = condition(owned.status, 'Stalled')?.message ?? '';
  conflictFixIsPossible(t, ownedMessage);
  t.regex(
    ownedMessage,
    /or delete the other Connector \(with deletionPolicy Retain, when it is in this namespace, to hand its record over to this one\)/,
  );
  const kept = planView(observed({ record: record({ ownerUid: null, handoverNamespace: 'team-a' }) }), NOW);
  conflictFixIsPossible(t, condition(kept.status, 'Stalled')?.message ?? '');
});

test('a record owned by another Connector: Stalled ConnectorIdConflict, no call, no token', (t) => {
  const result = planView(observed({ record: pendingRecord({ ownerUid: 'another-connector-uid' }) }), NOW);
  t.is(condition(result.status, 'Stalled')?.reason, 'ConnectorIdConflict');
  t.notRegex(condition(result.status, 'Stalled')?.message ?? '', /another-connector-uid/);
  t.deepEqual(result.controlPlane, []);
  t.is(result.statefulSet, undefined);
});

test('a record owned by another Connector shows nothing of it: not its state, heartbeat, identity or paths', (t) => {
  const theirs = record({
    ownerUid: 'another-connector-uid',
    state: 'degraded',
    lastHeartbeatAt: '2026-01-01T00:00:09.000Z',
    paths: [{ name: 'db-10.0.0.7', healthy: false, detail: 'their internal host 10.0.0.7 refused' }],
  });
  const result = planView(observed({ record: theirs }), NOW);
  t.is(condition(result.status, 'Stalled')?.reason, 'ConnectorIdConflict');
  t.is(result.status.phase, 'Pending');
  for (const field of ['controlPlaneState', 'identity', 'lastHeartbeatTime'] as const)
    t.is(result.status[field], undefined, field);
  const shown = JSON.stringify({ status: result.status, events: result.events });
  t.notRegex(shown, /10\.0\.0\.7|Degraded|degraded/, 'no path detail or state of the other connector');
});

test('another Connector’s record stays hidden when an OwnershipConflict is the blocker shown', (t) => {
  // A foreign ConfigMap with a child's name made OwnershipConflict the first blocker; the record was
  // hidden only when ConnectorIdConflict was, so another namespace's Online connector, its
  // certificate and its paths showed in this Connector's status and Events.
  const theirs = record({
    ownerUid: 'another-connector-uid',
    state: 'online',
    lastHeartbeatAt: '2026-01-01T00:00:09.000Z',
    paths: [{ name: 'db-10.0.0.7', healthy: true, detail: 'their internal host 10.0.0.7' }],
  });
  for (const kept of [theirs, record({ ownerUid: null, handoverNamespace: 'team-a', state: 'online' })]) {
    const result = planView(
      { ...observed({ record: kept }), foreign: [{ kind: 'ConfigMap', name: 'edge-config' }] },
      NOW,
    );
    t.is(condition(result.status, 'Stalled')?.reason, 'OwnershipConflict');
    t.is(result.status.phase, 'Pending');
    for (const field of ['controlPlaneState', 'identity', 'lastHeartbeatTime'] as const)
      t.is(result.status[field], undefined, field);
    t.notRegex(JSON.stringify({ status: result.status, events: result.events }), /10\.0\.0\.7|ab12|Online/);
  }
});

test('a record nobody owns (retained by a deleted Connector) is claimed by the ensure call', (t) => {
  const result = planView(observed({ record: record({ ownerUid: null }) }), NOW);
  t.deepEqual(
    result.controlPlane.map((a) => a.kind),
    ['ensureConnector'],
  );
  t.is(condition(result.status, 'Stalled'), undefined);
});

test('a record kept for another namespace (deletionPolicy Retain): Stalled ConnectorIdConflict, no claim, no token, no recovery', (t) => {
  const requested = connector({ spec: { recovery: { requestId: 'take-it' } } });
  for (const state of ['online', 'needs_recovery'] as const) {
    const result = planView(
      observed({
        connector: requested,
        record: record({ state, ownerUid: null, handoverNamespace: 'team-a' }),
      }),
      NOW,
    );
    t.is(condition(result.status, 'Stalled')?.reason, 'ConnectorIdConflict', state);
    t.regex(
      condition(result.status, 'Stalled')?.message ?? '',
      /for a Connector of another namespace to claim/,
    );
    t.notRegex(condition(result.status, 'Stalled')?.message ?? '', /team-a/, 'where it went is not said');
    t.deepEqual(result.controlPlane, [], `${state}: no claim, mint, revoke or recovery`);
    t.is(result.statefulSet, undefined);
  }
  // Kept for this Connector's own namespace ('prod'): claimed by the ensure call.
  const own = planView(observed({ record: record({ ownerUid: null, handoverNamespace: 'prod' }) }), NOW);
  t.deepEqual(
    own.controlPlane.map((a) => a.kind),
    ['ensureConnector'],
  );
  t.is(condition(own.status, 'Stalled'), undefined);
});
