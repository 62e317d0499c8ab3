// The benchmarks' command lines, run as a person runs them: a mistake is one line naming the flag
// and pointing to --help, exit 2, before anything is started (no cluster, no build), never a stack
// trace.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import test from 'ava';

const bench = (script: string, ...args: string[]) =>
  spawnSync(process.execPath, [join(import.meta.dirname, '../../bench', script), ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });

const cases: Array<{ script: string; args: string[]; says: RegExp }> = [
  {
    script: 'scale.ts',
    args: ['--skip-clusterfloor'],
    says: /^bench\/scale\.ts: unknown flag --skip-clusterfloor;/,
  },
  { script: 'scale.ts', args: ['--connectors'], says: /--connectors has no value/ },
  {
    script: 'scale.ts',
    args: ['--connectors', 'many'],
    says: /--connectors must be a positive number, got many/,
  },
  {
    script: 'scale.ts',
    args: ['--cert-lifetime', 'soon'],
    says: /--cert-lifetime must be a duration .* got soon/,
  },
  {
    script: 'control-plane-scale.ts',
    args: ['--agent', '5'],
    says: /^bench\/control-plane-scale\.ts: unknown flag --agent;/,
  },
  {
    script: 'control-plane-scale.ts',
    args: ['--workers', '0'],
    says: /--workers must be a positive number, got 0/,
  },
  {
    script: 'api-request-costs.ts',
    args: ['--request', '10'],
    says: /^bench\/api-request-costs\.ts: unknown flag --request;/,
  },
  {
    script: 'api-request-costs.ts',
    args: ['--rounds', '0'],
    says: /--rounds must be a positive number, got 0/,
  },
];

for (const { script, args, says } of cases) {
  test(`bench/${script} ${args.join(' ')}: one line, exit 2`, (t) => {
    const run = bench(script, ...args);
    t.is(run.status, 2, run.stderr);
    t.regex(run.stderr, says);
    t.regex(run.stderr, /run with --help to list the flags\n$/);
    t.is(run.stderr.trim().split('\n').length, 1, run.stderr);
    t.notRegex(run.stderr, /\bat .*\.ts:\d+|ERR_PARSE_ARGS/);
    t.is(run.stdout, '');
  });
}

test('bench/scale.ts --help still prints the flags and exits 0', (t) => {
  const run = bench('scale.ts', '--help');
  t.is(run.status, 0, run.stderr);
  t.regex(run.stdout, /--skip-cluster-floor/);
});
