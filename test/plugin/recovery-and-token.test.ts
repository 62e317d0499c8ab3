// When `recover` refuses and which request id it uses; when `token` refuses and which mint keys it
// tries (the operator's own scheme, so the two never hold different live tokens).
import test from 'ava';
import type { ConnectorStatus } from '../../src/operator/api/types.ts';
import type { Connector as RecordJson } from '../../src/operator/control-plane/admin-client.ts';
import { mintKeys, tokenNotice, tokenRefusal, tokenStallRefusal } from '../../src/plugin/commands/token.ts';
import { defaultRequestId, recoveryRefusal } from '../../src/plugin/recovery-request.ts';
import { cond, connector, NOW, ONLINE_STATUS, UID } from './facts-fixtures.ts';

const NEEDS_RECOVERY: ConnectorStatus = {
  ...ONLINE_STATUS,
  phase: 'NeedsRecovery',
  controlPlaneState: 'needs_recovery',
  diagnosis: { failureClass: 'IdentityLoss', reason: 'lost', nextStep: 'set spec.recovery.requestId' },
  conditions: [cond('Stalled', 'True', 'RecoveryRequired')],
};

test('the default request id is the time it was asked, and a valid id', (t) => {
  t.is(defaultRequestId(NOW), 'recover-20260301-120000');
});

test('recover: allowed for an identity lost, refused with the reason everywhere else', (t) => {
  const refuse = (status: ConnectorStatus, spec = {}, id = 'r9') =>
    recoveryRefusal(connector(status, spec), id, 'kubectl vaultpam');
  t.is(refuse(NEEDS_RECOVERY), undefined);
  t.is(
    refuse({ ...ONLINE_STATUS, diagnosis: { failureClass: 'IdentityLoss' }, phase: 'Offline' }),
    undefined,
  );
  t.regex(refuse(ONLINE_STATUS) ?? '', /^no recovery is needed: the connector is Online/);
  t.regex(
    refuse({
      ...ONLINE_STATUS,
      phase: 'Offline',
      diagnosis: { failureClass: 'Reconnect', nextStep: 'restore HTTPS' },
    }) ?? '',
    /identity intact \(Reconnect\), and a recovery would replace a working identity; the runbook's step: restore HTTPS/,
  );
  t.regex(
    refuse({ phase: 'Pending', enrollment: { mintCount: 1 } }) ?? '',
    /has not paired yet \(Pending\); the operator mints tokens for its first pairing/,
  );
  t.regex(
    refuse({ ...NEEDS_RECOVERY, recovery: { requestId: 'r1', step: 'ScalingDown', startedAt: 'T' } }) ?? '',
    /a recovery is running: request r1 at step ScalingDown since T; follow it with kubectl vaultpam status edge -n team-a/,
  );
  t.regex(
    refuse(NEEDS_RECOVERY, { recovery: { requestId: 'r2' } }) ?? '',
    /already asked for \(spec.recovery.requestId=r2\)/,
  );
  t.regex(refuse(NEEDS_RECOVERY, { paused: true }) ?? '', /spec.paused is true/);
  t.regex(
    refuse(
      { ...NEEDS_RECOVERY, recovery: { requestId: 'r1', step: 'Failed', handledRequestIds: ['r0'] } },
      {},
      'r0',
    ) ?? '',
    /request id r0 was handled before, and a request id runs once, ever/,
  );
  t.is(
    refuse(
      { ...NEEDS_RECOVERY, recovery: { requestId: 'r1', step: 'Failed' } },
      { recovery: { requestId: 'r1' } },
      'r2',
    ),
    undefined,
    'after a failed attempt, a new id runs another',
  );
  t.regex(
    refuse({
      ...NEEDS_RECOVERY,
      conditions: [cond('Stalled', 'True', 'AdoptionNotConsented', 'label it')],
    }) ?? '',
    /Stalled \(AdoptionNotConsented\): label it/,
  );
});

const record = (overrides: Partial<RecordJson> = {}): RecordJson =>
  ({
    connectorId: 'team-a.edge',
    state: 'pending',
    bootstrapRetired: false,
    enrolledAt: null,
    ownerUid: UID,
    ...overrides,
  }) as RecordJson;

test("token: the operator's last key first (its live token comes back), then the next ones", (t) => {
  t.deepEqual(mintKeys(connector({ enrollment: { mintCount: 2, lastMintKey: `enroll-${UID}-2` } })), [
    `enroll-${UID}-2`,
    `enroll-${UID}-3`,
    `enroll-${UID}-4`,
    `enroll-${UID}-5`,
  ]);
  t.deepEqual(mintKeys(connector({})), [`enroll-${UID}-1`, `enroll-${UID}-2`, `enroll-${UID}-3`]);
  t.is(
    mintKeys(connector({ enrollment: { mintCount: 1, consumedMintKey: `enroll-${UID}-3` } }))[0],
    `enroll-${UID}-3`,
    'a key refused as consumed counts',
  );
  t.deepEqual(
    mintKeys(connector({ recovery: { requestId: 'r1', step: 'ScalingUp', mintKey: 'recovery-r1' } })),
    ['recovery-r1'],
  );
});

test('token: refused for a retired, a paired or a foreign record, and before a recovery mints', (t) => {
  const c = connector({});
  t.is(tokenRefusal(c, record(), 'vaultpam'), undefined);
  t.regex(
    tokenRefusal(c, record({ bootstrapRetired: true, state: 'online' }), 'vaultpam') ?? '',
    /RECOVERY_REQUIRED.*vaultpam recover edge -n team-a/,
  );
  t.regex(
    tokenRefusal(c, record({ state: 'enrolling', enrolledAt: '2026-12-05T08:00:00Z' }), 'vaultpam') ?? '',
    /paired at 2026-12-05T08:00:00Z and waits for its first heartbeat/,
  );
  t.regex(
    tokenRefusal(c, record({ ownerUid: 'someone-else' }), 'vaultpam') ?? '',
    /owned by another Connector/,
  );
  t.regex(
    tokenRefusal(c, record({ ownerUid: null, handoverNamespace: 'team-b' }), 'vaultpam') ?? '',
    /kept by a Connector of another namespace .*no Connector of this namespace can claim it/,
  );
  t.regex(
    tokenRefusal(c, record({ ownerUid: null, handoverNamespace: 'team-a' }), 'vaultpam') ?? '',
    /the operator claims it on its next pass/,
    'kept for this namespace: claimed by the operator',
  );
  t.regex(
    tokenRefusal(
      connector({ recovery: { requestId: 'r1', step: 'ScalingDown' } }),
      record({ state: 'needs_recovery' }),
      'vaultpam',
    ) ?? '',
    /recovery r1 is at step ScalingDown; its one token is minted at TokenMinted/,
  );
  t.is(
    tokenRefusal(
      connector({ recovery: { requestId: 'r1', step: 'ScalingUp', mintKey: 'recovery-r1' } }),
      record({ state: 'recovering', bootstrapRetired: true }),
      'vaultpam',
    ),
    undefined,
  );
});

test("token: a record's fields are judged and quoted as the operator cleans them", (t) => {
  const c = connector({});
  const esc = '\u001b';
  // A string "false" is no retired bootstrap (it was truthy here, so the token was refused).
  t.is(tokenRefusal(c, record({ bootstrapRetired: 'false' as never }), 'vaultpam'), undefined);
  const paired = tokenRefusal(
    c,
    record({ state: `enrolling${esc}[2J` as never, enrolledAt: `2026-12-05T08:00:00Z${esc}]0;x${esc}\\` }),
    'vaultpam',
  );
  t.false(paired?.includes(esc), paired);
  t.regex(paired ?? '', /paired at \? and waits for its first heartbeat \(state enrolling\)/);
  t.is(tokenRefusal(c, null as never, 'vaultpam'), 'the control plane answered with no connector record');
});

test('token: refused for a Stalled Connector, whatever the stall, as the operator mints nothing then', (t) => {
  const stalled = (reason: string) =>
    connector(
      { conditions: [cond('Stalled', 'True', reason, `why ${reason}`)] },
      {
        workloadRef: { kind: 'Deployment', name: 'legacy' },
      },
    );
  // The tester's case: the workload is gone and the record was disowned by another Connector's
  // Retain delete; the record's owner is empty, so the old owner check let it through.
  const workloadGone = stalled('WorkloadNotFound');
  const said = tokenRefusal(workloadGone, record({ ownerUid: null as never }), 'vaultpam') ?? '';
  t.regex(
    said,
    /Stalled \(WorkloadNotFound\): why WorkloadNotFound; the operator mints nothing while it is Stalled/,
  );
  t.is(tokenStallRefusal(workloadGone), said, 'the command refuses it before asking the control plane');
  for (const reason of ['RecoveryRequired', 'RecoveryFailed', 'StorageExpansionUnsupported', 'InvalidSpec']) {
    t.regex(tokenRefusal(stalled(reason), record(), 'vaultpam') ?? '', new RegExp(`Stalled \\(${reason}\\)`));
  }
  t.is(
    tokenRefusal(connector({ conditions: [cond('Stalled', 'False', 'NotStalled')] }), record(), 'vaultpam'),
    undefined,
    'Stalled=False is no stall',
  );
  t.regex(
    tokenRefusal(
      connector({ conditions: [cond('Stalled', 'True', 'WorkloadNotFound', 'gone\u001b[31m red')] }),
      record(),
      'vaultpam',
    ) ?? '',
    /gone red/,
    "the condition's message is cleaned of terminal escapes",
  );
});

test('token: refused unless the record is owned by exactly this Connector (none, empty, another)', (t) => {
  const c = connector({});
  for (const ownerUid of [null, '', undefined]) {
    t.regex(
      tokenRefusal(c, record({ ownerUid: ownerUid as never }), 'vaultpam') ?? '',
      /the control plane's record team-a\.edge is not owned by this Connector; the operator claims it on its next pass once nothing blocks it/,
      `ownerUid ${String(ownerUid)}`,
    );
  }
  t.regex(
    tokenRefusal(c, record({ ownerUid: 'someone-else' }), 'vaultpam') ?? '',
    /owned by another Connector/,
  );
  t.regex(
    tokenRefusal(c, record({ ownerUid: null, handoverNamespace: 'team-b' }), 'vaultpam') ?? '',
    /kept by a Connector of another namespace .*no Connector of this namespace can claim it/,
  );
  t.regex(
    tokenRefusal(c, record({ ownerUid: null, handoverNamespace: 'team-a' }), 'vaultpam') ?? '',
    /the operator claims it on its next pass/,
    'kept for this namespace: claimed by the operator',
  );
  const noUid = connector({});
  delete noUid.metadata.uid;
  t.regex(
    tokenRefusal(noUid, record(), 'vaultpam') ?? '',
    /owned by another Connector/,
    'no UID owns nothing',
  );
  t.is(tokenRefusal(c, record({ ownerUid: UID }), 'vaultpam'), undefined);
});

test("token: stderr says the token is the live one, in the operator's Secret too, and printed again", (t) => {
  const notice = tokenNotice({
    connectorId: 'team-a.edge',
    name: 'edge',
    key: `enroll-${UID}-1`,
    created: false,
    expiresAt: '2026-03-01T13:00:00Z',
    now: NOW,
  });
  t.regex(
    notice,
    /^The live enrollment token of connector team-a\.edge \(mint key enroll-.*-1\), single use, expires 2026-03-01T13:00:00Z/,
  );
  t.regex(
    notice,
    /It is the live token, also in Secret edge-enrollment-token \(anyone who may read that Secret can see it\)/,
  );
  t.regex(notice, /running this again prints the same token while it is live/);
  t.false(/printed once|kept nowhere else/.test(notice), 'no claim that it exists nowhere else');
});
