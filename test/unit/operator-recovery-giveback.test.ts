// What a Connector deleted during a recovery owes its adopted workload (recovery-giveback.ts): the
// replicas recorded with the request, while the recorded step holds the workload scaled; nothing
// to a workload that no longer consents, or whose replicas someone changed since.
import test from 'ava';
import { giveBackDecision, workloadOwed } from '../../src/operator/reconcile/recovery-giveback.ts';
import { connector } from '../helpers/observed-builder.ts';

const adopted = (step: string | undefined, replicasBefore = 3) =>
  connector({
    spec: { workloadRef: { kind: 'Deployment', name: 'legacy' } },
    status: {
      ...(step
        ? {
            recovery: {
              requestId: 'incident-1',
              step: step as 'AwaitingOnline',
              attempts: 1,
              startedAt: '2026-01-01T00:00:00Z',
              evidence: { phaseBefore: 'NeedsRecovery', replicasBefore },
            },
          }
        : {}),
    },
  });

test('owed only while the recorded step holds the adopted workload scaled', (t) => {
  t.deepEqual(workloadOwed(adopted('AwaitingOnline')), {
    kind: 'Deployment',
    name: 'legacy',
    replicas: 3,
    heldAt: 1,
  });
  t.deepEqual(workloadOwed(adopted('TokenMinted')), {
    kind: 'Deployment',
    name: 'legacy',
    replicas: 3,
    heldAt: 0,
  });
  for (const step of [undefined, 'Requested', 'Checking', 'Completed', 'Failed'])
    t.is(workloadOwed(adopted(step)), undefined, String(step));
  t.is(
    workloadOwed(connector({ status: adopted('AwaitingOnline').status })),
    undefined,
    'the own StatefulSet goes with it',
  );
});

test('given back only to a workload that still consents and is still held where the recovery put it', (t) => {
  const owed = { kind: 'Deployment' as const, name: 'legacy', replicas: 3, heldAt: 1 };
  const consenting = { 'vaultpam.io/adopted-by': 'edge' };
  t.is(giveBackDecision(owed, { replicas: 1, labels: consenting }, 'edge').scale, 3);
  const withdrawn = giveBackDecision(owed, { replicas: 1, labels: {} }, 'edge');
  t.is(withdrawn.scale, undefined);
  t.regex(withdrawn.says, /no longer consents .* left at 1 replicas: give it back its 3 yourself/);
  const changed = giveBackDecision(owed, { replicas: 5, labels: consenting }, 'edge');
  t.is(changed.scale, undefined);
  t.regex(changed.says, /has 5 replicas, not the 1 the recovery held it at: left as it is/);
  t.is(giveBackDecision(owed, undefined, 'edge').scale, undefined);
  const done = giveBackDecision(owed, { replicas: 3, labels: consenting }, 'edge');
  t.is(done.scale, undefined);
  t.regex(
    done.says,
    /has the 3 replicas it had before the recovery/,
    'a finalizer run again after the scale',
  );
});
