// The operator's command line: --help lists every flag, and bad flags fail at once with a message
// that names the flag and says what it needs (exit 2), before anything is started.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { repoRoot } from '../../dev/local-cluster/install.ts';
import { CA_BUNDLE_MAX_BYTES } from '../../src/operator/reconcile/config-map-budget.ts';
import { DEFAULT_MAX_CONCURRENCY } from '../../src/operator/runtime/adaptive-limit.ts';
import {
  checkMetricsEndpoint,
  isLoopback,
  metricsAuthNoneProblem,
} from '../../src/operator/runtime/metrics-endpoint.ts';
import { selfSignedCertificate } from '../helpers/certificates.ts';

const operator = join(repoRoot, 'src', 'bin', 'operator.ts');
const run = (...args: string[]) =>
  spawnSync(process.execPath, [operator, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', KUBECONFIG: '/nonexistent' },
    timeout: 30_000,
  });

test('--help lists the flags with their environment variables', (t) => {
  const result = run('--help');
  t.is(result.status, 0);
  for (const flag of [
    '--control-plane-url',
    '--credential-secret',
    '--connector-image',
    '--leader-elect',
    '--concurrency',
  ]) {
    t.true(result.stdout.includes(flag), flag);
  }
  t.true(result.stdout.includes('VAULTPAM_OPERATOR_CONTROL_PLANE_URL'));
  // --concurrency is the adaptive limit's maximum, its default the one constant.
  t.regex(
    result.stdout,
    new RegExp(
      `--concurrency <value>\\n\\s+The most reconciles at once\\..*429.*\\[default: ${DEFAULT_MAX_CONCURRENCY}\\]`,
    ),
  );
});

test('bad flags are refused by name with what they need', (t) => {
  const cases: Array<[string[], RegExp]> = [
    [
      ['--control-plane-url', 'http://cp.example', '--credential-secret', 'ns/name'],
      /--control-plane-url: .* must be an https:\/\/ URL/,
    ],
    [['--control-plane-url', 'https://cp.example'], /--credential-secret: expected <namespace>\/<name>/],
    [
      ['--control-plane-url', 'https://cp.example/p?x=1', '--credential-secret', 'ns/name'],
      /--control-plane-url: .* must not carry a query or fragment/,
    ],
    [['--concurrency', '0', '--leader-elect', 'false'], /--concurrency: "0" must be a whole number >= 1/],
    [['--leader-elect', 'true'], /--leader-election-namespace \(or POD_NAMESPACE\) is required/],
    [['--listen', 'nowhere', '--leader-elect', 'false'], /--listen: "nowhere" is not host:port/],
    [['--metrics-listen', '8443', '--leader-elect', 'false'], /--metrics-listen: "8443" is not host:port/],
    [
      ['--metrics-auth', 'off', '--leader-elect', 'false'],
      /--metrics-auth: "off" is neither kubernetes nor none/,
    ],
    [
      ['--metrics-auth', 'none', '--metrics-cert-dir', '/tls', '--leader-elect', 'false'],
      /--metrics-cert-dir: --metrics-auth=none serves plain HTTP/,
    ],
    // Refused at start, not merely warned about: anyone reaching the pod would read every tenant's Connectors.
    [
      ['--metrics-auth', 'none', '--leader-elect', 'false'],
      /--metrics-auth=none: .* 0\.0\.0\.0; give --metrics-listen a loopback address/,
    ],
    [
      ['--metrics-auth', 'none', '--metrics-listen', '10.0.0.5:8443', '--leader-elect', 'false'],
      /--metrics-auth=none: .* 10\.0\.0\.5/,
    ],
    // A name that starts with 127. is a name, resolving wherever its owner likes (admitted before).
    [
      ['--metrics-auth', 'none', '--metrics-listen', '127.evil.example:8443', '--leader-elect', 'false'],
      /--metrics-auth=none: .* 127\.evil\.example; give --metrics-listen a loopback address/,
    ],
    [['--resync', 'soon', '--leader-elect', 'false'], /--resync: /],
    [
      ['--resync', '30d', '--leader-elect', 'false'],
      /--resync: must be at most 596h31m23s .*"30d" is longer/,
    ],
    [
      ['--leader-election-retry-period', 'often', '--leader-elect', 'false'],
      /--leader-election-retry-period: /,
    ],
    [
      [
        '--leader-election-lease-duration',
        '5s',
        '--leader-election-renew-deadline',
        '5s',
        '--leader-elect',
        'false',
      ],
      /--leader-election-renew-deadline < --leader-election-lease-duration, got 2 s, 5 s and 5 s/,
    ],
    [['--no-such-flag'], /no-such-flag/],
  ];
  for (const [args, message] of cases) {
    const result = run(...args);
    t.is(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    t.regex(result.stderr, message);
  }
});

test('a default CA file no Connector can carry, or that holds no certificate, is refused before anything starts, naming the flag', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'operator-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { certPem } = await selfSignedCertificate();
  // A CA ConfigMap's worth (Kubernetes takes it there), too large for each Connector's ConfigMap.
  const large = join(dir, 'large.pem');
  await writeFile(large, `${'#'.repeat(CA_BUNDLE_MAX_BYTES + 1 - certPem.length - 1)}\n${certPem}`);
  const notPem = join(dir, 'not.pem');
  await writeFile(notPem, 'hello');
  // Empty (a ConfigMap key mounted empty): a CA file was named, so the system trust store is not
  // what was meant, as a ControlPlane's empty CA key is CAInvalid, not the system store.
  const empty = join(dir, 'empty.pem');
  await writeFile(empty, '');
  const cp = ['--control-plane-url', 'https://cp.example', '--credential-secret', 'ns/name'];
  const cases: Array<[string[], RegExp]> = [
    [
      [...cp, '--control-plane-ca-file', large],
      /^vaultpam-operator: --control-plane-ca-file: .*large\.pem holds a CA bundle of 1,032,193 bytes, too large to hand to connectors: .* so the bundle may be at most 1,032,192 bytes; trim the bundle to the CAs that sign the control plane's serving certificate\n$/,
    ],
    [
      [...cp, '--control-plane-ca-file', notPem],
      /--control-plane-ca-file: .*not\.pem holds no PEM certificate/,
    ],
    [
      [...cp, '--control-plane-ca-file', empty],
      /--control-plane-ca-file: .*empty\.pem holds no PEM certificate/,
    ],
    [
      [...cp, '--control-plane-ca-file', join(dir, 'missing.pem')],
      /--control-plane-ca-file: cannot read .*missing\.pem: .*ENOENT/,
    ],
    [
      ['--control-plane-url', `https://cp.example/${'p'.repeat(2048)}`, '--credential-secret', 'ns/name'],
      /--control-plane-url: at most 2048 characters, as a ControlPlane's spec\.url/,
    ],
  ];
  for (const [args, message] of cases) {
    // KUBECONFIG=/nonexistent: refused before the kubeconfig is even read (that would be exit 1).
    const result = run(...args, '--leader-elect', 'false');
    t.is(result.status, 2, `${args.join(' ').slice(0, 200)}: ${result.stderr}`);
    t.regex(result.stderr, message);
  }
});

test('an unreadable kubeconfig is named in the error', (t) => {
  const result = run('--leader-elect', 'false');
  t.is(result.status, 1);
  t.regex(result.stderr, /cannot load KUBECONFIG=\/nonexistent: .*point KUBECONFIG at a readable kubeconfig/);
});

test('loopback is an IP literal in 127.0.0.0/8, ::1, or localhost; --metrics-auth=none has one rule and one message', (t) => {
  for (const host of [
    '127.0.0.1',
    '127.1.2.3',
    '::1',
    '0:0:0:0:0:0:0:1',
    '::ffff:127.0.0.1',
    'localhost',
    'LOCALHOST',
  ])
    t.true(isLoopback(host), host);
  for (const host of [
    '127.evil.example',
    '127.0.0.1.nip.io',
    '127',
    '0.0.0.0',
    '::',
    '10.0.0.5',
    '128.0.0.1',
    '::2',
    'localhost.evil.example',
  ])
    t.false(isLoopback(host), host);
  const message = metricsAuthNoneProblem('10.0.0.5');
  t.is(metricsAuthNoneProblem('127.0.0.1'), undefined);
  // startOperator refuses with the very message the flag check gives.
  t.throws(() => checkMetricsEndpoint({ auth: 'none', listen: { host: '10.0.0.5', port: 8443 } }), {
    message,
  });
  t.notThrows(() => checkMetricsEndpoint({ auth: 'kubernetes', listen: { host: '10.0.0.5', port: 8443 } }));
  const result = run(
    '--metrics-auth',
    'none',
    '--metrics-listen',
    '10.0.0.5:8443',
    '--leader-elect',
    'false',
  );
  t.true(result.stderr.includes(message ?? '-'), result.stderr);
});
