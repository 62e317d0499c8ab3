import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { parseControlPlaneCommandLine, parseDurationSeconds } from '../../src/controlplane/config.ts';
import { ControlPlaneAdminClient } from '../../src/operator/control-plane/admin-client.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/**
 * `npx node …` as a user would type it, or the test's own Node binary directly when signals must
 * reach the program (npx ends itself on SIGTERM instead of waiting for its child's exit code).
 */
function run(args: string[], env: NodeJS.ProcessEnv = {}, via: 'npx' | 'node' = 'npx') {
  const [command, prefix] = via === 'npx' ? ['npx', ['node']] : [process.execPath, []];
  const child = spawn(command as string, [...(prefix as string[]), 'src/bin/control-plane.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  let running = true;
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      running = false;
      resolve(code);
    }),
  );
  // Never leave a control plane behind, whatever the test's outcome.
  const cleanup = () => {
    if (running) child.kill('SIGKILL');
  };
  return { child, exited, cleanup, stdout: () => stdout, stderr: () => stderr };
}

test('--help lists the flags and exits 0', async (t) => {
  const proc = run(['--help']);
  t.teardown(proc.cleanup);
  t.is(await proc.exited, 0);
  for (const flag of [
    '--listen',
    '--data-dir',
    '--heartbeat-interval',
    '--offline-after',
    '--cert-lifetime',
  ]) {
    t.true(proc.stdout().includes(flag), flag);
  }
  t.true(proc.stdout().includes('VAULTPAM_CP_LISTEN'));
});

test('a real start on a free port prints URL and CA path, serves, and exits 0 on SIGTERM', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cp-cli-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const proc = run(
    ['--listen', '127.0.0.1:0', '--data-dir', dataDir, '--heartbeat-interval', '5s'],
    {
      VAULTPAM_CP_LOG_LEVEL: 'debug',
    },
    'node',
  );
  t.teardown(proc.cleanup);
  const deadline = Date.now() + 60_000;
  let listening: { url: string; caPath: string } | undefined;
  while (!listening && Date.now() < deadline) {
    for (const line of proc.stdout().split('\n')) {
      if (line.includes('"control plane listening"')) listening = JSON.parse(line);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (!listening) {
    proc.child.kill('SIGKILL');
    t.fail(`never listened: ${proc.stderr()}`);
    return;
  }
  t.regex(listening.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  t.is(listening.caPath, join(dataDir, 'ca.pem'));
  const credential = readFileSync(join(dataDir, 'initial-admin-credential'), 'utf8').trim();
  t.false(proc.stdout().includes(credential), 'only the credential path is logged');
  const client = new ControlPlaneAdminClient({
    url: listening.url,
    caPem: readFileSync(listening.caPath, 'utf8'),
    credential,
  });
  const { created } = await client.ensureConnector('cli.smoke', {
    org: 'o',
    endpointId: 'e',
    allowedNetworks: [],
  });
  t.true(created);
  client.close();
  proc.child.kill('SIGTERM');
  t.is(await proc.exited, 0);
  t.true(proc.stdout().includes('control plane stopped'));
});

test('flag parsing: durations, listen, repeated host names, env fallbacks, errors', (t) => {
  t.is(parseDurationSeconds('x', '90'), 90);
  t.is(parseDurationSeconds('x', '5m'), 300);
  t.is(parseDurationSeconds('x', '24h'), 86_400);
  t.throws(() => parseDurationSeconds('x', 'soon'), { message: /--x/ });
  const parsed = parseControlPlaneCommandLine(
    ['--server-hostname', 'a.example', '--server-hostname', 'b.example,10.1.2.3', '--listen', '[::1]:9443'],
    { VAULTPAM_CP_HEARTBEAT_INTERVAL: '20s', VAULTPAM_CP_DATA_DIR: '/tmp/x' },
  );
  t.deepEqual(parsed.serverHostnames, ['a.example', 'b.example', '10.1.2.3']);
  t.is(parsed.host, '::1');
  t.is(parsed.port, 9443);
  t.is(parsed.heartbeatIntervalSeconds, 20);
  t.is(parsed.offlineAfterSeconds, 60, 'default: 3 intervals');
  t.is(parsed.dataDir, '/tmp/x');
  const defaults = parseControlPlaneCommandLine([], {});
  t.is(defaults.host, '127.0.0.1');
  t.is(defaults.port, 8443);
  t.deepEqual(defaults.serverHostnames, ['localhost', '127.0.0.1']);
  t.is(defaults.keepAliveTimeoutSeconds, 2, 'shorter than the heartbeat interval');
  t.is(parseControlPlaneCommandLine(['--keep-alive-timeout', '65s'], {}).keepAliveTimeoutSeconds, 65);
  t.is(
    parseControlPlaneCommandLine([], { VAULTPAM_CP_KEEP_ALIVE_TIMEOUT: '1m' }).keepAliveTimeoutSeconds,
    60,
  );
  t.throws(() => parseControlPlaneCommandLine(['--keep-alive-timeout', '0s'], {}), {
    message: /--keep-alive-timeout/,
  });
  t.throws(() => parseControlPlaneCommandLine(['--nope'], {}), { code: 'INVALID_FLAGS' } as never);
  t.throws(() => parseControlPlaneCommandLine(['--log-level', 'loud'], {}), { message: /log-level/ });
  t.throws(() => parseControlPlaneCommandLine(['--admin-credential-file', '/nonexistent'], {}), {
    message: /does not exist/,
  });
});

test('--offline-after shorter than --heartbeat-interval is refused, naming both flags and values', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cp-cli-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const proc = run(['--data-dir', dataDir, '--heartbeat-interval', '10s', '--offline-after', '5s']);
  t.teardown(proc.cleanup);
  t.is(await proc.exited, 2);
  t.regex(proc.stderr(), /--offline-after \(5s\) is shorter than --heartbeat-interval \(10s\)/);
  t.false(proc.stdout().includes('listening'), 'it never started');

  // From the environment as well, and the boundary: equal to the interval is accepted.
  t.throws(
    () =>
      parseControlPlaneCommandLine([], {
        VAULTPAM_CP_HEARTBEAT_INTERVAL: '1m',
        VAULTPAM_CP_OFFLINE_AFTER: '59s',
      }),
    { code: 'INVALID_FLAGS', message: /--offline-after \(59s\) .*--heartbeat-interval \(1m\)/ } as never,
  );
  const equal = parseControlPlaneCommandLine(['--heartbeat-interval', '10s', '--offline-after', '10s'], {});
  t.is(equal.offlineAfterSeconds, 10);
});

test('a --cert-lifetime too short to renew in time is refused at start, naming the flag, its variable and the minimum', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cp-cli-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const proc = run(['--data-dir', dataDir, '--heartbeat-interval', '10s', '--cert-lifetime', '2m']);
  t.teardown(proc.cleanup);
  t.is(await proc.exited, 2);
  t.regex(
    proc.stderr(),
    /--cert-lifetime \(VAULTPAM_CP_CERT_LIFETIME\) of 2m is too short for agents to renew in time: the minimum is 300s, the larger of 9 heartbeat intervals \(--heartbeat-interval 10s\) and 5 minutes/,
  );
  t.false(proc.stdout().includes('listening'), 'it never started');

  // From the environment, with a long heartbeat interval: 9 intervals are the minimum then.
  t.throws(
    () =>
      parseControlPlaneCommandLine([], {
        VAULTPAM_CP_HEARTBEAT_INTERVAL: '1m',
        VAULTPAM_CP_CERT_LIFETIME: '8m',
      }),
    { code: 'INVALID_FLAGS', message: /of 8m is too short .*the minimum is 540s/ } as never,
  );
  // The boundaries are accepted, and so is the default.
  t.is(parseControlPlaneCommandLine(['--cert-lifetime', '5m'], {}).certificateLifetimeSeconds, 300);
  t.is(
    parseControlPlaneCommandLine(['--heartbeat-interval', '1m', '--cert-lifetime', '9m'], {})
      .certificateLifetimeSeconds,
    540,
  );
  t.is(parseControlPlaneCommandLine([], {}).certificateLifetimeSeconds, 86_400);
});

test('--heartbeat-interval under a second is refused: agents beat at most once a second on a control plane’s word', (t) => {
  t.throws(() => parseControlPlaneCommandLine(['--heartbeat-interval', '500ms'], {}), {
    code: 'INVALID_FLAGS',
    message: /--heartbeat-interval \(500ms\) is shorter than 1s: agents beat at most once a second/,
  } as never);
  t.is(parseControlPlaneCommandLine(['--heartbeat-interval', '1s'], {}).heartbeatIntervalSeconds, 1);
});

test('--cert-lifetime takes compound durations: 4m59s is refused as too short (not as "not a duration"), 5m30s is accepted', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cp-cli-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const proc = run(
    ['--data-dir', dataDir, '--heartbeat-interval', '10s', '--cert-lifetime', '4m59s'],
    {},
    'node',
  );
  t.teardown(proc.cleanup);
  t.is(await proc.exited, 2);
  t.regex(
    proc.stderr(),
    /--cert-lifetime \(VAULTPAM_CP_CERT_LIFETIME\) of 4m59s is too short .*the minimum is 300s/,
  );
  t.notRegex(proc.stderr(), /not a duration/);
  t.is(parseControlPlaneCommandLine(['--cert-lifetime', '5m30s'], {}).certificateLifetimeSeconds, 330);
  t.is(parseControlPlaneCommandLine(['--cert-lifetime', '1h30m'], {}).certificateLifetimeSeconds, 5400);
  t.is(parseDurationSeconds('x', '1d'), 86_400);
  t.throws(() => parseDurationSeconds('x', '30s5m'), { message: /not a duration like/ });
  t.throws(() => parseDurationSeconds('x', '-1s'), { message: /not a duration like/ });
});

test('the connection bounds are whole numbers of at least 1, from flags or the environment', (t) => {
  const parsed = parseControlPlaneCommandLine(['--max-connections-per-address', '64'], {
    VAULTPAM_CP_MAX_CONNECTIONS: '1000',
  });
  t.is(parsed.maxConnectionsPerAddress, 64);
  t.is(parsed.maxConnections, 1000);
  const defaults = parseControlPlaneCommandLine([], {});
  t.is(defaults.maxConnectionsPerAddress, 4096);
  t.is(defaults.maxConnections, undefined, 'the default, fitted to the open-file limit by the server');
  for (const value of ['0', '1.5', 'many', ''])
    t.throws(() => parseControlPlaneCommandLine(['--max-connections', value], {}), {
      code: 'INVALID_FLAGS',
      message: new RegExp(`--max-connections: "${value}" must be a whole number >= 1`),
    } as never);
});
