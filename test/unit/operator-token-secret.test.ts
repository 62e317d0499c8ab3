// The operator lists and watches no Secret: it reads its token Secret by name, and only on a pass
// where the Secret can exist or matter. These cases are every place the planner uses token-Secret
// facts (enrollment, retirement, recovery, a failed delete); a retired, clean connector reads nothing.
import type { V1Secret } from '@kubernetes/client-node';
import test from 'ava';
import { CodedError } from '../../src/lib/errors.ts';
import type { ConnectorStatus } from '../../src/operator/api/types.ts';
import { defaultedSpec } from '../../src/operator/api/types.ts';
import type { ControlPlaneView } from '../../src/operator/reconcile/observed.ts';
import { observeTokenSecret, tokenSecretMayMatter } from '../../src/operator/reconcile/token-secret.ts';
import { connector, pendingRecord, record, UID } from '../helpers/observed-builder.ts';

const retiredClean: ConnectorStatus = { enrollment: { retired: true, mintCount: 1 } };
const reachable = (r = record()): ControlPlaneView => ({ reachable: true, record: r });
const unreachable: ControlPlaneView = {
  reachable: false,
  error: new CodedError('CONTROL_PLANE_UNREACHABLE', 'down', { temporary: true }),
};
const condition = (type: string, reason: string) => ({
  type,
  status: 'True' as const,
  reason,
  message: 'x',
  lastTransitionTime: '2026-01-01T00:00:00Z',
});

function mayMatter(status: ConnectorStatus | undefined, view: ControlPlaneView, requestId?: string): boolean {
  const c = connector({
    ...(status ? { status } : {}),
    ...(requestId ? { spec: { recovery: { requestId } } } : {}),
  });
  return tokenSecretMayMatter(c, defaultedSpec(c), view);
}

test('a retired connector whose status is clean reads no Secret, reachable or not', (t) => {
  t.false(mayMatter(retiredClean, reachable()));
  t.false(mayMatter(retiredClean, unreachable));
});

test('every state in which a token Secret can exist or be judged reads it', (t) => {
  const cases: Array<[string, ConnectorStatus | undefined, ControlPlaneView, string?]> = [
    ['a new Connector (nothing recorded yet)', undefined, reachable(pendingRecord())],
    [
      'never paired: a token may be minted, judged, or revoked',
      { enrollment: { mintCount: 2 } },
      reachable(pendingRecord()),
    ],
    [
      'never paired, control plane down: the Secret is still reported',
      { enrollment: { mintCount: 1 } },
      unreachable,
    ],
    [
      'the status still names the token Secret',
      { enrollment: { retired: true, tokenSecretName: 'edge-enrollment-token' } },
      reachable(),
    ],
    [
      'paired, retirement not yet recorded: the spent Secret must be deleted',
      { enrollment: { mintCount: 1 } },
      reachable(),
    ],
    [
      'the control plane reports a live token',
      retiredClean,
      reachable(record({ liveToken: { tokenId: 't', expiresAt: 'x' } as never })),
    ],
    [
      'the control plane says retirement has not happened',
      retiredClean,
      reachable(record({ bootstrapRetired: false })),
    ],
    ['the connector needs recovery', retiredClean, reachable(record({ state: 'needs_recovery' }))],
    [
      'a recovery under way, control plane down',
      { ...retiredClean, recovery: { requestId: 'r1', step: 'TokenMinted' } },
      unreachable,
    ],
    ['a recovery asked for', retiredClean, reachable(), 'incident-1'],
    [
      'the last pass failed (a delete may not have happened)',
      { ...retiredClean, conditions: [condition('Reconciling', 'RetryingAfterError')] },
      reachable(),
    ],
    [
      'the last pass stalled',
      { ...retiredClean, conditions: [condition('Stalled', 'ControlPlaneConfigInvalid')] },
      unreachable,
    ],
  ];
  for (const [name, status, view, requestId] of cases) t.true(mayMatter(status, view, requestId), name);
  t.false(
    mayMatter(
      { ...retiredClean, recovery: { requestId: 'incident-1', step: 'Completed' } },
      reachable(),
      'incident-1',
    ),
    'a handled request id is no new request',
  );
});

test('the Secret is read by name only when it may matter, and judged by its controller', async (t) => {
  const c = connector();
  const spec = defaultedSpec(c);
  const reads: string[] = [];
  const secrets: Record<string, V1Secret> = {};
  const readSecret = async (namespace: string, name: string) => {
    reads.push(`${namespace}/${name}`);
    return secrets[name];
  };
  t.deepEqual(await observeTokenSecret(readSecret, c, spec, false), {});
  t.deepEqual(reads, [], 'no read when it cannot matter');
  t.deepEqual(await observeTokenSecret(readSecret, c, spec, true), {});
  t.deepEqual(reads, ['prod/edge-enrollment-token']);
  secrets['edge-enrollment-token'] = {
    metadata: {
      name: 'edge-enrollment-token',
      uid: 's1',
      annotations: {
        'vaultpam.io/mint-key': `enroll-${UID}-1`,
        'vaultpam.io/token-expires-at': '2026-01-01T04:00:00.000Z',
      },
      ownerReferences: [
        { apiVersion: 'vaultpam.io/v1alpha1', kind: 'Connector', name: 'edge', uid: UID, controller: true },
      ],
    },
    data: { token: 'dnBlXw==' },
  };
  t.deepEqual(await observeTokenSecret(readSecret, c, spec, true), {
    facts: {
      name: 'edge-enrollment-token',
      uid: 's1',
      mintKey: `enroll-${UID}-1`,
      expiresAt: '2026-01-01T04:00:00.000Z',
      deleting: false,
    },
  });
  // Whoever may edit the Secret may edit its annotation: what is not a time is not taken for one.
  const edited = secrets['edge-enrollment-token'];
  if (edited.metadata?.annotations)
    edited.metadata.annotations['vaultpam.io/token-expires-at'] = 'Jan 1 2026 04:00 (\n\u001b[31mforged)';
  t.is((await observeTokenSecret(readSecret, c, spec, true)).facts?.expiresAt, undefined);
  secrets['edge-enrollment-token'] = { metadata: { name: 'edge-enrollment-token', uid: 's2' } };
  t.deepEqual(await observeTokenSecret(readSecret, c, spec, true), {
    foreign: { kind: 'Secret', name: 'edge-enrollment-token' },
  });
});
