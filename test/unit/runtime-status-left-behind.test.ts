// What a status apply could not remove (apply.ts leftBehind): a field or condition written while no
// apply was possible belongs to no field manager of the operator on API servers that drop or keep
// stale managed fields after a JSON patch (Kubernetes 1.31 to 1.35 drop them), so the next apply
// leaves it; the operator then writes the status whole. Nothing else triggers that second write.
import test from 'ava';
import { leftBehind } from '../../src/operator/runtime/apply.ts';

const condition = (type: string) => ({ type, status: 'True', reason: 'R', message: 'm' });

test('a stored status with a field or condition type the intended one lacks is left behind; one that agrees is not', (t) => {
  const intended = { phase: 'Online', conditions: [condition('Ready'), condition('Healthy')] };
  t.false(leftBehind({ phase: 'Online', conditions: [condition('Healthy'), condition('Ready')] }, intended));
  t.false(leftBehind({ phase: 'Pending' }, intended), 'values may differ: apply set them');
  t.true(leftBehind({ ...intended, conditions: [...intended.conditions, condition('Stalled')] }, intended));
  t.true(leftBehind({ ...intended, diagnosis: { reason: 'x' } }, intended));
  t.false(leftBehind(undefined, intended));
  t.false(leftBehind({ phase: 'Online', conditions: 'not a list' }, intended));
});
