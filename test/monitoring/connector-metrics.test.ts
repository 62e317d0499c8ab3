// The per-connector gauges the alerts read (vaultpam_operator_connector_*): what each shows of a
// Connector's status, one series per Connector, and none left behind by a deleted Connector or a
// changed phase, read through the real registry's text exposition as Prometheus scrapes it.
import test from 'ava';
import type { Connector, ConnectorStatus } from '../../src/operator/api/types.ts';
import { connectorMetricFacts, createOperatorMetrics } from '../../src/operator/runtime/metrics.ts';

function connector(namespace: string, name: string, status: ConnectorStatus): Connector {
  return {
    apiVersion: 'vaultpam.io/v1alpha1',
    kind: 'Connector',
    metadata: { namespace, name },
    spec: {},
    status,
  } as Connector;
}

/** The exposition's samples of one metric, as `labels value` lines. */
async function samples(metrics: ReturnType<typeof createOperatorMetrics>, name: string): Promise<string[]> {
  const text = await metrics.registry.metrics();
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .map((line) => line.slice(name.length));
}

const online = connector('team-a', 'db', {
  phase: 'Online',
  identity: { notAfter: '2026-12-03T10:00:00Z', certificateSerial: 'ab' },
  enrollment: { retired: true, tokenExpiresAt: '2026-12-01T10:00:00Z', mintCount: 1 },
});
const enrolling = connector('team-b', 'web', {
  phase: 'Enrolling',
  enrollment: {
    tokenSecretName: 'web-enrollment-token',
    tokenMintedAt: '2026-12-02T08:00:00Z',
    tokenExpiresAt: '2026-12-02T12:00:00Z',
    mintCount: 1,
  },
});
const stalled = connector('team-a', 'cache', {
  phase: 'NeedsRecovery',
  conditions: [
    {
      type: 'Ready',
      status: 'False',
      reason: 'RecoveryFailed',
      lastTransitionTime: '2026-12-02T08:00:00Z',
      message: '',
    },
    {
      type: 'Stalled',
      status: 'True',
      reason: 'RecoveryFailed',
      lastTransitionTime: '2026-12-02T08:00:00Z',
      message: '',
    },
  ],
});

test('the facts of a Connector: phase, Stalled reason, live token, certificate expiry', (t) => {
  t.deepEqual(connectorMetricFacts(online), {
    namespace: 'team-a',
    name: 'db',
    phase: 'Online',
    certificateNotAfter: Date.parse('2026-12-03T10:00:00Z') / 1000,
  });
  t.deepEqual(connectorMetricFacts(enrolling).liveToken, {
    expiresAt: Date.parse('2026-12-02T12:00:00Z') / 1000,
    mintedAt: Date.parse('2026-12-02T08:00:00Z') / 1000,
    mintedFor: 'enrollment',
  });
  t.is(connectorMetricFacts(stalled).stalledReason, 'RecoveryFailed');
  const notStalled = connector('team-a', 'x', {
    conditions: [
      { type: 'Stalled', status: 'False', reason: 'RecoveryFailed', lastTransitionTime: '', message: '' },
    ],
  });
  t.is(connectorMetricFacts(notStalled).stalledReason, undefined, 'only a True Stalled condition counts');
});

test("a token's expiry kept in status after the token is gone is no live token", (t) => {
  // Until the connector pairs, status keeps the last token's end (the re-mint backoff counts from
  // it); only a status that names the token Secret has a live token.
  const waiting = connector('team-b', 'web', {
    phase: 'Pending',
    enrollment: {
      tokenExpiresAt: '2026-12-02T12:00:00Z',
      tokenMintedAt: '2026-12-02T08:00:00Z',
      mintCount: 2,
    },
  });
  t.is(connectorMetricFacts(waiting).liveToken, undefined);
});

test("a guided recovery's token in the Secret: its expiry and mint time, not the enrollment's, minted_for recovery", async (t) => {
  // The gauge once had no series while a recovery's token waited in the Secret (the enrollment's
  // expiry is not that token's, and a retired connector's status keeps none); then an expiry and no
  // minted series, so VaultpamConnectorTokenExpiringUnused could not fire for it. The recovery now
  // records when its token was stored (status.recovery.tokenMintedAt).
  const enrollment = {
    tokenSecretName: 'edge-enrollment-token',
    // The never-paired connector's last enrollment token, revoked by the recovery: not the Secret's.
    tokenExpiresAt: '2026-12-02T09:00:00Z',
    tokenMintedAt: '2026-12-02T05:00:00Z',
    mintCount: 3,
  };
  const recovery = {
    requestId: 'r1',
    mintKey: 'recovery-r1',
    tokenExpiresAt: '2026-12-02T12:00:00Z',
    tokenMintedAt: '2026-12-02T11:00:00Z',
  };
  const waiting = connector('team-c', 'edge', {
    phase: 'Recovering',
    enrollment,
    recovery: { ...recovery, step: 'AwaitingOnline' },
  });
  t.deepEqual(connectorMetricFacts(waiting).liveToken, {
    expiresAt: Date.parse('2026-12-02T12:00:00Z') / 1000,
    mintedAt: Date.parse('2026-12-02T11:00:00Z') / 1000,
    mintedFor: 'recovery',
  });
  const metrics = createOperatorMetrics();
  let current = [waiting];
  metrics.setConnectorSource(() => current);
  t.deepEqual(await samples(metrics, 'vaultpam_operator_connector_token_expiry_timestamp_seconds'), [
    `{namespace="team-c",name="edge",minted_for="recovery"} ${Date.parse('2026-12-02T12:00:00Z') / 1000}`,
  ]);
  t.deepEqual(await samples(metrics, 'vaultpam_operator_connector_token_minted_timestamp_seconds'), [
    `{namespace="team-c",name="edge",minted_for="recovery"} ${Date.parse('2026-12-02T11:00:00Z') / 1000}`,
  ]);
  // Minted by an operator that did not record the mint time: the expiry, and no minted series (a
  // mint time of another token would make the alert judge the wrong lifetime).
  const { tokenMintedAt: _unrecorded, ...olderRecovery } = recovery;
  current = [
    connector('team-c', 'edge', { enrollment, recovery: { ...olderRecovery, step: 'AwaitingOnline' } }),
  ];
  t.is((await samples(metrics, 'vaultpam_operator_connector_token_expiry_timestamp_seconds')).length, 1);
  t.deepEqual(await samples(metrics, 'vaultpam_operator_connector_token_minted_timestamp_seconds'), []);
  // Spent (or its Secret deleted): the status names no Secret, and the gauge has no series.
  const paired = connector('team-c', 'edge', {
    phase: 'Recovering',
    enrollment: { mintCount: 3 },
    recovery: { ...recovery, step: 'AwaitingOnline' },
  });
  t.is(connectorMetricFacts(paired).liveToken, undefined);
  // Before the recovery revokes, the Secret still holds the enrollment's token.
  const before = connector('team-c', 'edge', {
    phase: 'Recovering',
    enrollment,
    recovery: { requestId: 'r1', step: 'StorageReady' },
  });
  t.deepEqual(connectorMetricFacts(before).liveToken, {
    expiresAt: Date.parse('2026-12-02T09:00:00Z') / 1000,
    mintedAt: Date.parse('2026-12-02T05:00:00Z') / 1000,
    mintedFor: 'enrollment',
  });
  // Past the revoke and before the recovery's Secret was seen, the enrollment's record is no live
  // token's (its token was revoked): nothing is shown rather than that.
  const minting = connector('team-c', 'edge', {
    phase: 'Recovering',
    enrollment,
    recovery: { requestId: 'r1', step: 'TokenMinted' },
  });
  t.is(connectorMetricFacts(minting).liveToken, undefined);
});

test('one series per Connector per metric, read from the source at scrape time', async (t) => {
  const metrics = createOperatorMetrics();
  metrics.setConnectorSource(() => [online, enrolling, stalled]);
  t.deepEqual(await samples(metrics, 'vaultpam_operator_connector_phase'), [
    '{namespace="team-a",name="db",phase="Online"} 1',
    '{namespace="team-b",name="web",phase="Enrolling"} 1',
    '{namespace="team-a",name="cache",phase="NeedsRecovery"} 1',
  ]);
  t.deepEqual(await samples(metrics, 'vaultpam_operator_connector_stalled'), [
    '{namespace="team-a",name="cache",reason="RecoveryFailed"} 1',
  ]);
  t.deepEqual(await samples(metrics, 'vaultpam_operator_connector_ready'), [
    '{namespace="team-a",name="cache",status="False",reason="RecoveryFailed"} 1',
  ]);
  t.deepEqual(await samples(metrics, 'vaultpam_operator_connector_token_expiry_timestamp_seconds'), [
    `{namespace="team-b",name="web",minted_for="enrollment"} ${Date.parse('2026-12-02T12:00:00Z') / 1000}`,
  ]);
  t.deepEqual(await samples(metrics, 'vaultpam_operator_connector_token_minted_timestamp_seconds'), [
    `{namespace="team-b",name="web",minted_for="enrollment"} ${Date.parse('2026-12-02T08:00:00Z') / 1000}`,
  ]);
  t.deepEqual(await samples(metrics, 'vaultpam_operator_connector_certificate_expiry_timestamp_seconds'), [
    `{namespace="team-a",name="db"} ${Date.parse('2026-12-03T10:00:00Z') / 1000}`,
  ]);
});

test('a deleted Connector and a left phase leave no series behind', async (t) => {
  const metrics = createOperatorMetrics();
  let current: Connector[] = [online, enrolling];
  metrics.setConnectorSource(() => current);
  t.is((await samples(metrics, 'vaultpam_operator_connector_phase')).length, 2);

  // The informer replaces a changed Connector's object: the new one is read afresh.
  const offline = connector('team-a', 'db', { ...online.status, phase: 'Offline' });
  current = [offline];
  t.deepEqual(await samples(metrics, 'vaultpam_operator_connector_phase'), [
    '{namespace="team-a",name="db",phase="Offline"} 1',
  ]);
  t.deepEqual(await samples(metrics, 'vaultpam_operator_connector_token_expiry_timestamp_seconds'), []);

  current = [];
  for (const name of [
    'vaultpam_operator_connector_phase',
    'vaultpam_operator_connector_certificate_expiry_timestamp_seconds',
  ]) {
    t.deepEqual(await samples(metrics, name), [], `${name} after the Connector was deleted`);
  }
});

test('without a source the gauges export no series, and every reconcile result starts at 0', async (t) => {
  const metrics = createOperatorMetrics();
  t.deepEqual(await samples(metrics, 'vaultpam_operator_connector_phase'), []);
  // rate() sees the first error as an increase only if the error series existed before it.
  t.deepEqual(await samples(metrics, 'vaultpam_operator_reconciles_total'), [
    '{result="success"} 0',
    '{result="requeue"} 0',
    '{result="error"} 0',
  ]);
});

test('an Online phase kept while the control plane is unreachable shows as Ready Unknown, ControlPlaneUnreachable', async (t) => {
  // The operator keeps the last phase it saw when it cannot ask the control plane: the phase gauge
  // stays Online, and only the Ready series says the state is not known (the alert
  // VaultpamConnectorControlPlaneUnreachable reads it).
  const blind = connector('team-a', 'db', {
    phase: 'Online',
    conditions: [
      {
        type: 'Ready',
        status: 'Unknown',
        reason: 'ControlPlaneUnreachable',
        lastTransitionTime: '2026-12-02T08:00:00Z',
        message: 'Healthy: connect ECONNREFUSED',
      },
    ],
  });
  t.deepEqual(connectorMetricFacts(blind).ready, { status: 'Unknown', reason: 'ControlPlaneUnreachable' });
  const metrics = createOperatorMetrics();
  let current = [blind];
  metrics.setConnectorSource(() => current);
  t.deepEqual(await samples(metrics, 'vaultpam_operator_connector_phase'), [
    '{namespace="team-a",name="db",phase="Online"} 1',
  ]);
  t.deepEqual(await samples(metrics, 'vaultpam_operator_connector_ready'), [
    '{namespace="team-a",name="db",status="Unknown",reason="ControlPlaneUnreachable"} 1',
  ]);
  // Reachable again: the series of the old status and reason is gone, one series stays.
  const ready = connector('team-a', 'db', {
    phase: 'Online',
    conditions: [
      {
        type: 'Ready',
        status: 'True',
        reason: 'Ready',
        lastTransitionTime: '2026-12-02T09:00:00Z',
        message: '',
      },
    ],
  });
  current = [ready];
  t.deepEqual(await samples(metrics, 'vaultpam_operator_connector_ready'), [
    '{namespace="team-a",name="db",status="True",reason="Ready"} 1',
  ]);
  current = [];
  t.deepEqual(await samples(metrics, 'vaultpam_operator_connector_ready'), []);
});
