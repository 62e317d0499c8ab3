import test from 'ava';
import { parseAgentCommandLine, terminationLogFrom } from '../../src/agent/config.ts';
import { EXIT_CODES, isAgentFailure } from '../../src/agent/failure.ts';

const required = ['--connector-id', 'ns.conn-1', '--control-plane-url', 'https://cp.example:8443/'];

function parse(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const parsed = parseAgentCommandLine(argv, env);
  if (parsed.help) throw new Error('unexpected help');
  return parsed.config;
}

function failureOf(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const error = (() => {
    try {
      parseAgentCommandLine(argv, env);
    } catch (caught) {
      return caught;
    }
    return undefined;
  })();
  if (!isAgentFailure(error)) throw new Error(`expected an AgentFailure, got ${String(error)}`);
  return error;
}

test('defaults follow the process contract', (t) => {
  const config = parse(required);
  t.is(config.connectorId, 'ns.conn-1');
  t.is(config.controlPlaneUrl, 'https://cp.example:8443', 'trailing slash removed');
  t.is(config.dataDir, '/data');
  t.is(config.terminationLog, '/dev/termination-log');
  t.deepEqual(config.healthListen, { host: '0.0.0.0', port: 8081 });
  t.is(config.heartbeatIntervalMs, undefined, 'the control plane decides unless overridden');
  t.is(config.renewAtFraction, 0.5);
  t.is(config.giveUpAfterMs, 0);
  t.is(config.giveUpOnRefusalAfterMs, 300_000, 'a certificate refusal ends the agent after 5 minutes');
  t.deepEqual(config.pathChecks, []);
  t.is(config.caFile, undefined);
  t.is(config.tokenFile, undefined);
  t.is(config.logLevel, 'info');
});

test('environment variables fill in absent flags and flags win over them', (t) => {
  const env = {
    VAULTPAM_CONNECTOR_ID: 'from-env',
    VAULTPAM_CONTROL_PLANE_URL: 'https://env.example',
    PAM_AGENT_DATA_DIR: '/var/lib/agent',
    VAULTPAM_CA_FILE: '/etc/ca.pem',
    VAULTPAM_TOKEN_FILE: '/run/token/token',
    VAULTPAM_PATH_CHECKS: 'db=10.0.0.5:5432, ssh=host.internal:22',
  };
  const fromEnv = parse([], env);
  t.is(fromEnv.connectorId, 'from-env');
  t.is(fromEnv.dataDir, '/var/lib/agent');
  t.is(fromEnv.caFile, '/etc/ca.pem');
  t.is(fromEnv.tokenFile, '/run/token/token');
  t.deepEqual(
    fromEnv.pathChecks.map((p) => `${p.name}=${p.host}:${p.port}`),
    ['db=10.0.0.5:5432', 'ssh=host.internal:22'],
  );
  const flagsWin = parse(['--connector-id', 'from-flag', '--data-dir', '/d', '--path-check', 'x=h:1'], env);
  t.is(flagsWin.connectorId, 'from-flag');
  t.is(flagsWin.dataDir, '/d');
  t.deepEqual(flagsWin.pathChecks, [{ name: 'x', host: 'h', port: 1 }]);
});

test('overrides are parsed: durations, fraction, repeatable path checks, listen address', (t) => {
  const config = parse([
    ...required,
    '--heartbeat-interval',
    '250ms',
    '--renew-at-fraction',
    '0.8',
    '--path-check',
    'db=127.0.0.1:5432',
    '--path-check',
    'v6=[::1]:22',
    '--health-listen',
    '127.0.0.1:0',
    '--give-up-after',
    '15m',
    '--give-up-on-refusal-after',
    '0',
  ]);
  t.is(config.heartbeatIntervalMs, 250);
  t.is(config.renewAtFraction, 0.8);
  t.deepEqual(config.pathChecks, [
    { name: 'db', host: '127.0.0.1', port: 5432 },
    { name: 'v6', host: '::1', port: 22 },
  ]);
  t.deepEqual(config.healthListen, { host: '127.0.0.1', port: 0 });
  t.is(config.giveUpAfterMs, 900_000);
  t.is(config.giveUpOnRefusalAfterMs, 0, '0: refusals retried for ever');
});

test('missing required settings name both the flag and the environment variable', (t) => {
  const failure = failureOf([]);
  t.is(failure.exitCode, EXIT_CODES.configuration);
  t.is(failure.failureClass, 'Configuration');
  t.regex(failure.message, /--connector-id \(env VAULTPAM_CONNECTOR_ID\) is required/);
  t.regex(failure.message, /--control-plane-url \(env VAULTPAM_CONTROL_PLANE_URL\) is required/);
});

test('each invalid value is reported with its flag and what to use instead', (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--connector-id', 'Bad_ID'], /--connector-id .*"Bad_ID" is not a valid connector ID: use lowercase/],
    [['--control-plane-url', 'http://cp'], /--control-plane-url .*must use https:\/\//],
    [['--control-plane-url', 'not a url'], /--control-plane-url .*is not a URL/],
    [['--renew-at-fraction', '1.5'], /--renew-at-fraction .*between 0 and 1/],
    [['--renew-at-fraction', '0'], /--renew-at-fraction .*between 0 and 1/],
    [['--heartbeat-interval', 'soon'], /--heartbeat-interval .*must be a duration like 10s/],
    [['--heartbeat-interval', '0'], /--heartbeat-interval .*must be a duration/],
    [['--path-check', 'nohostport'], /--path-check .*"nohostport" must look like name=host:port/],
    [['--path-check', 'db=host:99999'], /--path-check .*port from 1 to 65535/],
    [['--path-check', 'tunnel=h:1'], /--path-check .*"tunnel" is used twice or is reserved/],
    // Past the heartbeat's bounds (64 paths, details naming the host): refused at start, not by
    // the control plane at every heartbeat while the tunnel works.
    [
      ['--path-check', `db=${'h'.repeat(254)}:1`],
      /--path-check .*"db=…": the host is 254 characters; a host name is at most 253/,
    ],
    // The bound is in bytes: 253 three-byte characters made 63 checks' details 53,739 bytes, past
    // the control plane's 32 KiB (the reviewer's host; admitted before).
    [
      ['--path-check', `db=${'我'.repeat(253)}:1`],
      /--path-check .*"db=…": the host must be printable ASCII, as DNS carries names \(an internationalized name in its punycode form, xn--…\)/,
    ],
    [['--path-check', 'db=bücher.example:1'], /--path-check .*the host must be printable ASCII/],
    [['--path-check', 'db=a\u0001b:1'], /--path-check .*the host must be printable ASCII/],
    [
      Array.from({ length: 64 }, (_, i) => ['--path-check', `p${i}=h:1`]).flat(),
      /--path-check .*is given 64 times; at most 63 are allowed .*check fewer targets/,
    ],
    [['--health-listen', 'nope'], /--health-listen .*must be host:port/],
    [
      ['--retry-initial', '10s', '--retry-max', '1s'],
      /--retry-max .*must not be shorter than --retry-initial/,
    ],
    [['--log-level', 'loud'], /--log-level .*must be one of/],
  ];
  for (const [extra, pattern] of cases) {
    const base = extra[0] === '--connector-id' || extra[0] === '--control-plane-url' ? [] : required;
    const fill =
      extra[0] === '--connector-id'
        ? ['--control-plane-url', 'https://cp']
        : extra[0] === '--control-plane-url'
          ? ['--connector-id', 'c1']
          : [];
    const failure = failureOf([...base, ...fill, ...extra]);
    t.regex(failure.message, pattern, extra.join(' '));
    t.is(failure.code, 'CONFIGURATION_INVALID');
  }
});

test('an unknown flag is a configuration error that points at --help', (t) => {
  const failure = failureOf([...required, '--tokenfile', 'x']);
  t.regex(failure.message, /--tokenfile/);
  t.regex(failure.message, /--help/);
});

test('--help is recognised before validation', (t) => {
  t.deepEqual(parseAgentCommandLine(['--help'], {}), { help: true });
});

test('the termination log path is found even when the rest of the command line is invalid', (t) => {
  t.is(terminationLogFrom(['--bogus', '--termination-log', '/tmp/x'], {}), '/tmp/x');
  t.is(terminationLogFrom(['--termination-log=/tmp/y'], {}), '/tmp/y');
  t.is(terminationLogFrom([], { VAULTPAM_TERMINATION_LOG: '/tmp/z' }), '/tmp/z');
  t.is(terminationLogFrom([], {}), '/dev/termination-log');
});
