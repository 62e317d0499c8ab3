// A mint refused because its key is consumed is a race the next pass settles, not a stall. The
// restore of a token Secret deleted by hand asks with the key of a token the pass saw live and
// unused; when the agent pairs with that token (or it is revoked or expires) between the pass's read
// and its mint, the control plane answers IDEMPOTENCY_KEY_CONSUMED (409). That answer was treated as
// any permanent refusal: Stalled ControlPlaneRejected "... use a new key" and a Warning
// ReconcileStalled Event, telling a person to act on what the next pass decides by itself (the
// agent paired: nothing to do; the token spent unstored: the recovery ends, or the enrollment counts
// on). Against the real control plane over HTTPS, through the real admin client and follower.
import test from 'ava';
import type { CodedError } from '../../src/lib/errors.ts';
import { defaultedSpec } from '../../src/operator/api/types.ts';
import { act } from '../../src/operator/reconcile/act.ts';
import { statusOfPass } from '../../src/operator/reconcile/pass-status.ts';
import { restoreTokenSecretStep } from '../../src/operator/reconcile/token-restore.ts';
import { connector } from '../helpers/observed-builder.ts';
import { controlPlaneOnlyContext, operatorConnection } from './act-harness.ts';
import { CONFIG, startHarness } from './helpers.ts';

test('found, fixed: a restore whose token was spent since the pass looked is retried, not Stalled', async (t) => {
  const h = await startHarness(t);
  const connection = operatorConnection(h);
  const owned = connector();
  const spec = defaultedSpec(owned);
  const id = spec.connector.id;
  await h.admin.ensureConnector(id, CONFIG);
  const minted = await h.admin.mintToken(id, { idempotencyKey: 'recovery-r1', ttlSeconds: 600 });
  // Spent between the pass's read (token live) and its mint: revoked here, as a pairing would.
  await h.admin.revokeTokens(id);
  const ctx = controlPlaneOnlyContext(t, () => {});
  const steps = [
    restoreTokenSecretStep({
      connectorId: id,
      idempotencyKey: 'recovery-r1',
      ttlSeconds: 600,
      tokenSecretName: 'edge-enrollment-token',
      token: 'the one token of recovery r1',
      expiresAt: minted.expiresAt,
    }),
  ];
  const outcome = await act(ctx, owned, spec, steps, connection);
  const error = outcome.error as CodedError;
  t.is(error.code, 'IDEMPOTENCY_KEY_CONSUMED');
  t.true(error.temporary, 'retried: the next pass decides from what it sees');
  const status = statusOfPass({ steps } as never, { ran: outcome.ran, error }, new Date(), 1);
  t.is(
    status.conditions?.find((c) => c.type === 'Stalled'),
    undefined,
  );
  t.like(
    status.conditions?.find((c) => c.type === 'Reconciling'),
    { status: 'True', reason: 'RetryingAfterError' },
  );
  t.notRegex(JSON.stringify(status), new RegExp(minted.token));
});
