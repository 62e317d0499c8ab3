// A pass that outlives its leadership term calls the control plane no more: act asks mayAct before
// every step, its control-plane calls included (before, only Kubernetes writes asked, so a deposed
// leader's pass between two steps could still mint, revoke or begin a recovery after the new leader
// had acted; closing the control-plane clients ends only the calls in flight). Against the real
// control plane over HTTPS, through the real admin client and follower.
import test from 'ava';
import { CodedError } from '../../src/lib/errors.ts';
import { defaultedSpec } from '../../src/operator/api/types.ts';
import { act } from '../../src/operator/reconcile/act.ts';
import { connector } from '../helpers/observed-builder.ts';
import { controlPlaneOnlyContext, operatorConnection } from './act-harness.ts';
import { CONFIG, startHarness } from './helpers.ts';

test('a pass whose term ends after its first call makes no further control-plane call', async (t) => {
  const h = await startHarness(t);
  const connection = operatorConnection(h);
  const owned = connector();
  const spec = defaultedSpec(owned);
  const id = spec.connector.id;
  const asked: string[] = [];
  // The term ends while the first call runs (the lease lost during it): asked again, it says so.
  const ctx = controlPlaneOnlyContext(t, () => {
    asked.push('asked');
    if (asked.length > 1)
      throw new CodedError('TERM_ENDED', 'this replica stopped leading', { temporary: true });
  });
  const outcome = await act(
    ctx,
    owned,
    spec,
    [
      { action: { kind: 'ensureConnector', connectorId: id, config: CONFIG } },
      { events: [] },
      { action: { kind: 'revokeTokens', connectorId: id } },
      {
        action: {
          kind: 'mintToken',
          connectorId: id,
          idempotencyKey: `enroll-${owned.metadata.uid}-1`,
          ttlSeconds: 600,
        },
      },
    ],
    connection,
  );
  t.is(outcome.ran, 2, 'the register ran; the revoke was refused before it was sent');
  t.is((outcome.error as CodedError).code, 'TERM_ENDED');
  const record = await h.admin.getConnector(id);
  t.is(record.state, 'pending', 'registered by the first call');
  t.is(record.liveToken, null, 'no token was minted after the term ended');
  const audit = await h.admin.audit({ connectorId: id });
  t.deepEqual(
    audit.map((e) => e.type).filter((type) => /token/i.test(type)),
    [],
    'no token call reached the control plane',
  );
});
