// Options startOperator refuses before it starts anything (the CLI refuses the same through its flags).
import test from 'ava';
import { silentLogger } from '../../src/lib/logger.ts';
import { type OperatorOptions, startOperator } from '../../src/operator/operator.ts';

test('a periodic look of 0 (or not a number) is refused: it would run every Connector again at once, for ever', async (t) => {
  for (const resyncMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    const options = { logger: silentLogger(), connectorImage: 'x', resyncMs } as unknown as OperatorOptions;
    await t.throwsAsync(startOperator(options), {
      message: new RegExp(`resyncMs must be a number of milliseconds above 0, got ${resyncMs}`),
    });
  }
});
