// When `recover` refuses and which request id it uses; when `token` refuses and which mint keys it
// tries (the operator's own scheme, so the two never hold different live tokens).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { ConnectorStatus } from '../../src/operator/api/types.ts';
import type { Connector as RecordJson } from '../../src/operator/control-plane/admin-client.ts';
import {
  mintKeys,
  tokenCommand,
  tokenNotice,
  tokenRefusal,
  tokenStallRefusal,
} from '../../src/plugin/commands/token.ts';
import type { CommandContext } from '../../src/plugin/context.ts';
import type { KubeApi } from '../../src/plugin/kube-api.ts';
import { errorLine } from '../../src/plugin/main.ts';
import { parseCommandLine } from '../../src/plugin/options.ts';
import { defaultRequestId, recoveryRefusal } from '../../src/plugin/recovery-request.ts';
import { selfSignedCertificate } from '../helpers/certificates.ts';
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
  // The CRD refuses a change of spec.connector.id: the fix is a new Connector, not another id here.
  const keptElsewhere =
    tokenRefusal(c, record({ ownerUid: null, handoverNamespace: 'team-b' }), 'vaultpam') ?? '';
  t.notRegex(keptElsewhere, /give this Connector another spec\.connector\.id/);
  t.regex(
    keptElsewhere,
    /this Connector cannot change its spec\.connector\.id \(fixed at creation\): create a new Connector with another spec\.connector\.id and delete this one \(ConnectorIdConflict\)$/,
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

/**
 * `token edge -n team-a` for an adopted workload, against an HTTPS control plane that answers the
 * mint with `minted`: what reached stdout and stderr, and the error, if the command failed.
 */
async function tokenAgainst(t: ExecutionContext, minted: Record<string, unknown>) {
  const serving = await selfSignedCertificate({ commonName: 'control plane', sanIps: ['127.0.0.1'] });
  const record = {
    connectorId: 'team-a.edge',
    state: 'pending',
    bootstrapRetired: false,
    ownerUid: UID,
    stateChangedAt: '2026-03-01T11:00:00Z',
    certificate: null,
    liveToken: null,
    recovery: null,
    paths: [],
    lastEnrollmentFailure: null,
  };
  const server = createServer({ key: serving.keyPem, cert: serving.certPem }, (req, res) => {
    const mint = req.method === 'POST' && (req.url ?? '').startsWith('/v1/connectors/team-a.edge/tokens');
    res.writeHead(mint ? 201 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(mint ? minted : record));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const dir = await mkdtemp(join(tmpdir(), 'plugin-token-'));
  t.teardown(async () => {
    server.closeAllConnections();
    server.close();
    await rm(dir, { recursive: true, force: true });
  });
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, serving.certPem);
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const parsed = parseCommandLine(
    ['token', 'edge', '-n', 'team-a', '--control-plane-url', url, '--control-plane-ca-file', caFile],
    { VAULTPAM_CREDENTIAL_SECRET: 'vaultpam-system/cp-admin/credential' },
  );
  if (parsed.help) throw new Error('asked for help');
  const adopted = connector({}, { workloadRef: { kind: 'Deployment', name: 'edge-agent' } });
  const api = {
    getConnector: async () => adopted,
    readSecret: async () => ({ data: { credential: Buffer.from('admin-credential').toString('base64') } }),
  } as unknown as KubeApi;
  const stdout: string[] = [];
  const stderr: string[] = [];
  const ctx: CommandContext = {
    io: {
      stdout: { write: (text) => stdout.push(text) },
      stderr: { write: (text) => stderr.push(text) },
      env: {},
      program: 'kubectl vaultpam',
      now: () => NOW,
    },
    options: parsed.options,
    api,
    namespace: 'team-a',
  };
  const error = await tokenCommand(ctx).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  return { stdout: stdout.join(''), stderr: stderr.join(''), error };
}

const ESC = '\u001b';
const TOKEN = `vpe_0123456789abcdef_${'A'.repeat(43)}`;

test("token: a mint answer that is not the contract's is refused, and the token is neither printed nor quoted", async (t) => {
  const good = await tokenAgainst(t, {
    token: TOKEN,
    tokenId: '0123456789abcdef',
    expiresAt: '2026-03-01T16:00:00Z',
  });
  t.is(good.error, undefined);
  t.is(good.stdout, `${TOKEN}\n`, "the contract's answer: the token on stdout");
  for (const [answer, wrong] of [
    // An escape sequence in the token: stdout is the terminal, or the token file the agent reads.
    [
      { token: `${TOKEN}${ESC}]0;owned\u0007`, expiresAt: '2026-03-01T16:00:00Z' },
      /a token that is not an enrollment token \(vpe_<16 hex>_<43 base64url>\)/,
    ],
    [{ token: 'not-a-token', expiresAt: '2026-03-01T16:00:00Z' }, /a token that is not an enrollment token/],
    // An expiry with escapes: it is quoted in the notice on stderr.
    [
      { token: TOKEN, expiresAt: `2026-03-01T16:00:00Z${ESC}[2J${ESC}[31mALL GOOD` },
      /an expiry that is not an RFC 3339 time \("2026-03-01T16:00:00Z ?ALL GOOD"\)/,
    ],
    [{ token: TOKEN }, /an expiry that is not an RFC 3339 time \(""\)/],
  ] as const) {
    const { stdout, stderr, error } = await tokenAgainst(t, { tokenId: '0123456789abcdef', ...answer });
    t.is(stdout, '', 'nothing on stdout');
    t.is(stderr, '', 'no notice on stderr');
    const line = errorLine(error);
    t.regex(line, /^error: no token printed: the control plane answered mint key enroll-\S+-1 with /);
    t.regex(line, wrong);
    t.regex(line, /check what answers at https:\/\/127\.0\.0\.1:\d+\n$/);
    const message = (error as Error).message;
    t.false(
      /vpe_(?:0123|\[REDACTED\])|AAAA/.test(message),
      'no part of the token is quoted, not even redacted',
    );
    t.false(message.includes(ESC));
  }
});
