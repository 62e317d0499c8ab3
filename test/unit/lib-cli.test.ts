// The CLI helper (src/lib/cli.ts) that the three programs and the local run parse their flags with:
// flags over environment variables over defaults, repeated flags, and one-line errors naming the flag.
import test from 'ava';
import { bestEffortFlagValue, type FlagSpecs, flagName, parseFlags } from '../../src/lib/cli.ts';
import { isCodedError } from '../../src/lib/errors.ts';

const SPECS: FlagSpecs = {
  listen: { env: 'X_LISTEN', default: '127.0.0.1:8443', description: 'Address.' },
  'data-dir': { env: 'X_DATA_DIR', description: 'Directory.' },
  verbose: { env: 'X_VERBOSE', boolean: true, description: 'More output.' },
  'server-hostname': {
    env: 'X_SERVER_HOSTNAMES',
    multiple: true,
    default: 'localhost,127.0.0.1',
    description: 'Names.',
  },
  'path-check': { env: 'X_PATH_CHECKS', multiple: true, description: 'Targets.' },
};

function problemOf(argv: string[]): string {
  try {
    parseFlags(argv, SPECS, {});
  } catch (error) {
    if (isCodedError(error, 'INVALID_FLAGS')) return error.message;
    throw error;
  }
  throw new Error(`${argv.join(' ')} was accepted`);
}

test('a flag wins over its environment variable, which wins over the default', (t) => {
  const env = { X_LISTEN: '0.0.0.0:1', X_DATA_DIR: '/env' };
  t.is(parseFlags([], SPECS, {}).values.listen, '127.0.0.1:8443');
  t.is(parseFlags([], SPECS, env).values.listen, '0.0.0.0:1');
  t.is(parseFlags(['--listen', '[::1]:2'], SPECS, env).values.listen, '[::1]:2');
  t.is(parseFlags(['--listen=[::1]:3'], SPECS, env).values.listen, '[::1]:3');
  t.is(parseFlags([], SPECS, {}).values['data-dir'], undefined);
  t.is(parseFlags([], SPECS, env).values['data-dir'], '/env');
});

test('booleans: the flag, or the variable set to true or 1', (t) => {
  t.false(parseFlags([], SPECS, {}).booleans.verbose);
  t.true(parseFlags(['--verbose'], SPECS, {}).booleans.verbose);
  t.true(parseFlags([], SPECS, { X_VERBOSE: 'true' }).booleans.verbose);
  t.true(parseFlags([], SPECS, { X_VERBOSE: '1' }).booleans.verbose);
  t.false(parseFlags([], SPECS, { X_VERBOSE: 'yes' }).booleans.verbose);
});

test('repeated flags gather every value; each, the variable and the default may be a comma list', (t) => {
  const lists = (argv: string[], env: NodeJS.ProcessEnv = {}) => parseFlags(argv, SPECS, env).lists;
  t.deepEqual(
    lists(['--server-hostname', 'a.example', '--server-hostname=b.example, 10.1.2.3'])['server-hostname'],
    ['a.example', 'b.example', '10.1.2.3'],
  );
  t.deepEqual(lists([])['server-hostname'], ['localhost', '127.0.0.1'], 'the default');
  t.deepEqual(lists([], { X_SERVER_HOSTNAMES: 'env.example,,' })['server-hostname'], ['env.example']);
  t.deepEqual(
    lists(['--server-hostname', 'flag.example'], { X_SERVER_HOSTNAMES: 'env.example' })['server-hostname'],
    ['flag.example'],
    'flags replace the variable, they do not add to it',
  );
  t.deepEqual(lists([])['path-check'], [], 'no flag, no variable, no default: empty');
  t.deepEqual(lists([], { X_PATH_CHECKS: 'db=h:1, ssh=h:22' })['path-check'], ['db=h:1', 'ssh=h:22']);
  t.is(parseFlags([], SPECS, {}).values['server-hostname'], undefined, 'a repeated flag has no single value');
});

test('a bad command line is INVALID_FLAGS, one line naming the flag and its variable, pointing at --help', (t) => {
  t.is(problemOf(['--nope']), 'unknown flag --nope; run with --help to list the flags');
  t.is(
    problemOf(['--data-dir']),
    '--data-dir (env X_DATA_DIR) has no value; run with --help to list the flags',
  );
  t.is(
    problemOf(['--verbose=yes']),
    '--verbose (env X_VERBOSE) takes no value; run with --help to list the flags',
  );
  t.is(
    problemOf(['stray']),
    "unexpected argument 'stray': only flags are taken; run with --help to list the flags",
  );
  const dash = problemOf(['--data-dir', '-1s']);
  t.true(
    dash.startsWith('--data-dir (env X_DATA_DIR) has no value: the argument after it begins with "-"'),
    dash,
  );
  t.notRegex(dash, /\n|ambiguous/);
});

test('--help is reported, not an error', (t) => {
  t.true(parseFlags(['--help'], SPECS, {}).help);
  t.false(parseFlags([], SPECS, {}).help);
});

test('a flag is named with its variable', (t) => {
  t.is(flagName(SPECS, 'listen'), '--listen (env X_LISTEN)');
  t.is(flagName({ plain: { description: 'no variable' } }, 'plain'), '--plain');
});

test('one value can be read from a command line that is otherwise invalid', (t) => {
  t.is(bestEffortFlagValue(['--bogus', '--data-dir', '/tmp/x', 'stray'], SPECS, 'data-dir', {}), '/tmp/x');
  t.is(bestEffortFlagValue(['--data-dir=/tmp/y', '--listen'], SPECS, 'data-dir', {}), '/tmp/y');
  t.is(bestEffortFlagValue(['--data-dir'], SPECS, 'data-dir', { X_DATA_DIR: '/env' }), '/env');
  t.is(
    bestEffortFlagValue([], SPECS, 'listen', { X_LISTEN: '' }),
    '127.0.0.1:8443',
    'an empty variable is unset',
  );
});
