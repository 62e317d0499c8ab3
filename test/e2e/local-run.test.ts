// The README's main command works as written: `npm start` (here with --exit-when-online so it ends)
// brings up the cluster, control plane, operator and pod runner, and a sample Connector goes Online.
import { join } from 'node:path';
import test from 'ava';
import { repoRoot } from '../../src/local-cluster/install.ts';
import { runProgram } from '../helpers/program.ts';

test('npm start brings the sample Connector Online and stops cleanly', async (t) => {
  const program = runProgram(
    t,
    join(repoRoot, 'src', 'bin', 'local-run.ts'),
    ['--exit-when-online', '--timeout', '150'],
    { cwd: repoRoot, killWith: 'SIGTERM' },
  );
  const code = await program.closed;
  const output = program.output();
  t.is(code, 0, output);
  t.regex(output, /dc1-connector\s+Online\s+Autonomous/);
  t.regex(output, /The sample Connector is Online/);
  t.notRegex(output, /vpe_[0-9a-f]{16}_/, 'no enrollment token in the output');
});
