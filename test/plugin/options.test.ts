// The plugin's command line: kubectl's flags in kubectl's spellings, anywhere on the line (before
// or after the command: kubectl hands over everything after the plugin's name), each command's own
// flags held to that command,
// and bad input refused with a message naming the flag and the fix. Also the two things the shared
// CLI parser (src/lib/cli.ts) gained for it: one-letter aliases and arguments that are not flags.
import test from 'ava';
import { type FlagSpecs, helpText, parseFlags } from '../../src/lib/cli.ts';
import { isCodedError } from '../../src/lib/errors.ts';
import { type PluginOptions, parseCommandLine } from '../../src/plugin/options.ts';

function options(argv: string[], env: NodeJS.ProcessEnv = {}): PluginOptions {
  const parsed = parseCommandLine(argv, env);
  if (parsed.help) throw new Error(`${argv.join(' ')} asked for help`);
  return parsed.options;
}

function problemOf(argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    parseCommandLine(argv, env);
  } catch (error) {
    if (isCodedError(error, 'INVALID_FLAGS')) return error.message;
    throw error;
  }
  throw new Error(`${argv.join(' ')} was accepted`);
}

test('the shared parser: one-letter aliases, -h, and arguments that are not flags when asked for', (t) => {
  const specs: FlagSpecs = {
    namespace: { short: 'n', description: 'Namespace.' },
    'all-namespaces': { short: 'A', boolean: true, description: 'All.' },
  };
  const parsed = parseFlags(['status', '-n', 'team-a', 'edge', '-A'], specs, {}, { allowPositionals: true });
  t.deepEqual(parsed.positionals, ['status', 'edge']);
  t.is(parsed.values.namespace, 'team-a');
  t.true(parsed.booleans['all-namespaces']);
  t.true(parseFlags(['-h'], specs, {}, { allowPositionals: true }).help);
  // The daemons' shape is unchanged: no positionals, no -h.
  t.throws(() => parseFlags(['status'], specs, {}), { message: /unexpected argument 'status'/ });
  t.throws(() => parseFlags(['-h'], specs, {}), { message: /unknown flag -h/ });
  t.regex(helpText('x', 'y', specs), /-n, --namespace <value>/);
});

test("kubectl's flags, long and short, before or after the command and the name", (t) => {
  const a = options([
    'status',
    'edge',
    '-n',
    'team-a',
    '-o',
    'yaml',
    '--context',
    'prod',
    '--kubeconfig',
    '/k',
  ]);
  t.like(a, {
    command: 'status',
    name: 'edge',
    namespace: 'team-a',
    output: 'yaml',
    context: 'prod',
    kubeconfig: '/k',
  });
  // `kubectl vaultpam --context=prod -n team-a diagnose edge`: the flags arrive before the command.
  const b = options(['--context=prod', '--namespace=team-a', 'diagnose', 'edge', '-ojson']);
  t.like(b, { command: 'diagnose', name: 'edge', namespace: 'team-a', context: 'prod', output: 'json' });
  const c = options(['status', '-A', '-o', 'wide']);
  t.like(c, { command: 'status', allNamespaces: true, output: 'wide' });
  t.is(c.name, undefined);
  t.is(c.operatorNamespace, 'vaultpam-system');
});

test('the default control plane and the operator namespace come from flags or their variables', (t) => {
  const env = {
    VAULTPAM_CONTROL_PLANE_URL: 'https://cp.example:8443',
    VAULTPAM_CREDENTIAL_SECRET: 'vaultpam-system/vaultpam-operator-credential',
    VAULTPAM_OPERATOR_NAMESPACE: 'ops',
  };
  const fromEnv = options(['status', 'edge'], env);
  t.deepEqual(fromEnv.defaultControlPlane, {
    url: 'https://cp.example:8443',
    credentialSecret: {
      namespace: 'vaultpam-system',
      name: 'vaultpam-operator-credential',
      key: 'credential',
    },
  });
  t.is(fromEnv.operatorNamespace, 'ops');
  const fromFlags = options(
    ['status', 'edge', '--credential-secret', 'a/b/c', '--control-plane-ca-file', '/ca'],
    env,
  );
  t.deepEqual(fromFlags.defaultControlPlane.credentialSecret, { namespace: 'a', name: 'b', key: 'c' });
  t.is(fromFlags.defaultControlPlane.caFile, '/ca');
});

test('recover and report flags, with their defaults', (t) => {
  const r = options(['recover', 'edge', '--request-id', 'incident-4711', '--dry-run', '--timeout', '2m']);
  t.like(r, { requestId: 'incident-4711', dryRun: true, timeoutMs: 120_000 });
  t.is(options(['recover', 'edge']).timeoutMs, 15 * 60_000);
  t.like(options(['report', 'edge', '-f', '/tmp/out.tar.gz', '--tail', '50']), {
    file: '/tmp/out.tar.gz',
    tailLines: 50,
  });
});

test('help: the whole usage, or one command', (t) => {
  t.deepEqual(parseCommandLine([], {}), { help: true });
  t.deepEqual(parseCommandLine(['--help'], {}), { help: true });
  t.deepEqual(parseCommandLine(['recover', '-h'], {}), { help: true, command: 'recover' });
  t.deepEqual(parseCommandLine(['help', 'token'], {}), { help: true, command: 'token' });
});

test('bad input is refused with a message that names the flag or argument and the fix', (t) => {
  t.regex(
    problemOf(['statuss']),
    /unknown command "statuss"; the commands are status, diagnose, recover, token, report/,
  );
  t.regex(problemOf(['diagnose']), /diagnose needs the Connector's name: diagnose NAME \[-n NAMESPACE\]/);
  t.regex(problemOf(['status', 'a', 'b']), /status takes one Connector name; got 2: a b/);
  t.regex(
    problemOf(['status', 'edge', '-A']),
    /-A\/--all-namespaces lists Connectors; with a NAME, give its namespace with -n/,
  );
  t.regex(
    problemOf(['status', '-o', 'xml']),
    /-o\/--output: "xml" is not a format of status; use table, wide, json, yaml/,
  );
  t.regex(
    problemOf(['diagnose', 'edge', '-o', 'wide']),
    /"wide" is not a format of diagnose; use table, json, yaml/,
  );
  t.regex(problemOf(['status', '--dry-run']), /unknown flag --dry-run/);
  t.regex(
    problemOf(['recover', 'edge', '--request-id', 'bad id!']),
    /--request-id: "bad id!" must be 1 to 63 letters, digits/,
  );
  t.regex(problemOf(['recover', 'edge', '--timeout', 'soon']), /--timeout: must be a duration like 10s/);
  t.regex(problemOf(['report', 'edge', '--tail', '0']), /--tail: "0" must be a whole number of at least 1/);
  t.regex(
    problemOf(['status', 'edge', '--control-plane-url', 'http://cp']),
    /--control-plane-url \(env VAULTPAM_CONTROL_PLANE_URL\): "http:\/\/cp" must be an https:\/\/ URL/,
  );
  t.regex(
    problemOf(['status', 'edge'], { VAULTPAM_CREDENTIAL_SECRET: 'just-a-name' }),
    /--credential-secret \(env VAULTPAM_CREDENTIAL_SECRET\): "just-a-name" must be <namespace>\/<name>\[\/<key>\]/,
  );
  t.regex(problemOf(['status', '-n']), /^--namespace has no value/);
});

test("one-letter flags take '=value' as kubectl does: -n=team-a is team-a, for every short flag", (t) => {
  t.like(options(['status', '-n=team-a']), { namespace: 'team-a' });
  t.like(options(['status', '--namespace=team-a']), { namespace: 'team-a' });
  t.like(options(['-n=team-a', 'diagnose', 'edge', '-o=json']), {
    command: 'diagnose',
    namespace: 'team-a',
    output: 'json',
  });
  t.like(options(['report', 'edge', '-f=/tmp/out.tar.gz']), { file: '/tmp/out.tar.gz' });
  t.like(options(['status', '-nteam-a']), { namespace: 'team-a' }, 'the glued form, unchanged');
  t.regex(problemOf(['status', '-A=true']), /^--all-namespaces takes no value/);
  // After `--` nothing is a flag: the argument stays the object it is.
  t.like(options(['status', '--', '-n=x']), { name: '-n=x', namespace: undefined });
});

test('a namespace that is not a DNS label is refused in one line naming the flag and what a namespace name is', (t) => {
  const rule =
    "is not a namespace name: a namespace name is a DNS label \\(RFC 1123\\), at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit, e.g. team-a$";
  t.regex(problemOf(['status', '-n', 'vaultpam/x']), new RegExp(`^-n/--namespace: "vaultpam/x" ${rule}`));
  t.regex(problemOf(['status', '-n=vaultpam/x']), new RegExp(`^-n/--namespace: "vaultpam/x" ${rule}`));
  t.regex(
    problemOf(['status', '--namespace', 'Team-A']),
    /^-n\/--namespace: "Team-A" is not a namespace name/,
  );
  t.regex(problemOf(['status', '-n', 'n'.repeat(64)]), /^-n\/--namespace: "n{64}" is not a namespace name/);
  t.regex(problemOf(['status', '--namespace=']), /^-n\/--namespace: "" is not a namespace name/);
  t.like(options(['status', '-n', 'n'.repeat(63)]), { namespace: 'n'.repeat(63) });
  t.regex(
    problemOf(['status'], { VAULTPAM_OPERATOR_NAMESPACE: 'ops/x' }),
    /^--operator-namespace \(env VAULTPAM_OPERATOR_NAMESPACE\): "ops\/x" is not a namespace name/,
  );
});
