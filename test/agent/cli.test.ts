// The real CLI as a child process: exit codes, the termination-log file, SIGTERM, probes, and a
// secret scan of everything it printed.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { identityPaths } from '../../src/agent/identity-files.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import { tempDir } from './fixtures.ts';
import { prepareConnector, startTestControlPlane, waitFor } from './harness.ts';
import { alertingPort } from './transport-servers.ts';

const repoRoot = new URL('../../', import.meta.url).pathname;

interface SpawnedAgent {
  child: ChildProcess;
  output(): string;
  records(): Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns the CLI; `viaNpx` runs it through `npx node src/bin/connector.ts`, as people still do (docs/local-run.md). */
function spawnAgent(t: ExecutionContext, args: string[], { viaNpx = false } = {}): SpawnedAgent {
  const command = viaNpx ? 'npx' : process.execPath;
  const argv = viaNpx ? ['node', 'src/bin/connector.ts', ...args] : ['src/bin/connector.ts', ...args];
  const child = spawn(command, argv, {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
  });
  let text = '';
  child.stdout.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  });
  return {
    child,
    output: () => text,
    records: () =>
      text
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    exited,
  };
}

async function healthUrl(agent: SpawnedAgent): Promise<string> {
  const line = await waitFor('health probes line', () =>
    agent.records().find((record) => String(record.msg).startsWith('health probes listening')),
  );
  return String(line.url);
}

test('the CLI enrolls, serves probes, stops with exit 0 on SIGTERM, restarts without a token, and fails closed with exit 10 once its identity is gone', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.cli';
  const { token, tokenFile, dataDir } = await prepareConnector(t, control, connectorId);
  const terminationLog = join(await tempDir(t, 'vaultpam-term-'), 'termination-log');
  const args = [
    '--connector-id',
    connectorId,
    '--control-plane-url',
    control.cp.url,
    '--ca-file',
    control.caFile,
    '--token-file',
    tokenFile,
    '--data-dir',
    dataDir,
    '--termination-log',
    terminationLog,
    '--health-listen',
    '127.0.0.1:0',
    '--heartbeat-interval',
    '100ms',
  ];

  const first = spawnAgent(t, args);
  const firstUrl = await healthUrl(first);
  t.is((await fetch(`${firstUrl}/healthz`)).status, 200);
  await waitFor('ready', async () => (await fetch(`${firstUrl}/readyz`)).status === 200);
  await waitFor('retired', async () => (await control.admin.getConnector(connectorId)).bootstrapRetired);
  first.child.kill('SIGTERM');
  t.deepEqual(await first.exited, { code: 0, signal: null });
  await t.throwsAsync(readFile(terminationLog), undefined, 'no termination message on a clean stop');
  const keyPem = await readFile(identityPaths(dataDir).key, 'utf8');

  await rm(tokenFile);
  const second = spawnAgent(t, args);
  const secondUrl = await healthUrl(second);
  await waitFor('ready again', async () => (await fetch(`${secondUrl}/readyz`)).status === 200);
  t.true(second.records().some((r) => String(r.msg).startsWith('loaded the persisted identity')));
  t.false(second.records().some((r) => String(r.msg).startsWith('enrolled')));
  second.child.kill('SIGTERM');
  t.deepEqual(await second.exited, { code: 0, signal: null });

  // The data volume is recreated empty and the stale token is mounted again.
  await rm(identityPaths(dataDir).dir, { recursive: true });
  await writeFile(tokenFile, token);
  const third = spawnAgent(t, args, { viaNpx: true });
  t.is((await third.exited).code, 10, 'the control plane told it it paired before: durable identity loss');
  const message = JSON.parse(await readFile(terminationLog, 'utf8')) as Record<string, string>;
  t.is(message.failureClass, 'IdentityLoss');
  t.is(message.code, 'ENROLLMENT_TOKEN_INVALID');
  t.is((await control.admin.getConnector(connectorId)).state, 'needs_recovery');
  const errorLines = third.records().filter((r) => Number(r.level) >= 50);
  t.is(errorLines.length, 1);
  t.is(errorLines[0]?.failureClass, 'IdentityLoss');

  const everything = first.output() + second.output() + third.output();
  assertNoSecrets(t, 'CLI output', everything, [token, keyPem]);
  assertNoSecrets(t, 'termination message', JSON.stringify(message), [token, keyPem]);
});

test('a configuration error exits 12 and names the flag in the termination message', async (t) => {
  const terminationLog = join(await tempDir(t, 'vaultpam-term-'), 'termination-log');
  const agent = spawnAgent(t, [
    '--connector-id',
    'ok.id',
    '--control-plane-url',
    'http://insecure',
    '--termination-log',
    terminationLog,
  ]);
  t.is((await agent.exited).code, 12);
  const message = JSON.parse(await readFile(terminationLog, 'utf8')) as Record<string, string>;
  t.is(message.failureClass, 'Configuration');
  t.regex(message.reason ?? '', /--control-plane-url \(env VAULTPAM_CONTROL_PLANE_URL\) must use https:\/\//);
});

test('--help prints the flags with their environment variables and exits 0', async (t) => {
  const agent = spawnAgent(t, ['--help']);
  t.is((await agent.exited).code, 0);
  for (const fragment of [
    '--token-file',
    'VAULTPAM_TOKEN_FILE',
    'PAM_AGENT_DATA_DIR',
    '--path-check',
    '--renew-at-fraction',
  ]) {
    t.true(agent.output().includes(fragment), fragment);
  }
});

test('a --control-plane-url with a password or a token in it is refused at start: exit 12 naming the flag, the secret parts never echoed', async (t) => {
  const dir = await tempDir(t, 'vaultpam-term-');
  const password = 'S3cretPassw0rd';
  const token = 'vpe_0123456789abcdef_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVph';
  for (const [index, url] of [
    `https://admin:${password}@127.0.0.1:8443/?token=${token}`,
    `https://127.0.0.1:8443/#${token}`,
  ].entries()) {
    const terminationLog = join(dir, 'termination-log');
    const agent = spawnAgent(t, [
      '--connector-id',
      'ok.id',
      '--control-plane-url',
      url,
      '--data-dir',
      join(dir, 'data'),
      '--termination-log',
      terminationLog,
    ]);
    t.is((await agent.exited).code, 12, `URL ${index + 1} (its secret parts are not printed)`);
    const message = JSON.parse(await readFile(terminationLog, 'utf8')) as Record<string, string>;
    t.is(message.code, 'CONFIGURATION_INVALID');
    t.regex(
      message.reason ?? '',
      /--control-plane-url \(env VAULTPAM_CONTROL_PLANE_URL\) https:\/\/\S+ must not carry/,
    );
    t.false(
      agent.records().some((record) => record.msg === 'starting'),
      'it never started, so the URL was never logged',
    );
    assertNoSecrets(t, 'CLI output', agent.output(), [password, token]);
    assertNoSecrets(t, 'termination message', JSON.stringify(message), [password, token]);
  }
});

test('a flag followed by a value that begins with a dash is one clean line naming the flag, exit 12', async (t) => {
  const terminationLog = join(await tempDir(t, 'vaultpam-term-'), 'termination-log');
  const agent = spawnAgent(t, [
    '--connector-id',
    'ok.id',
    '--control-plane-url',
    'https://127.0.0.1:8443',
    '--request-timeout',
    '-1s',
    '--termination-log',
    terminationLog,
  ]);
  t.is((await agent.exited).code, 12);
  const message = JSON.parse(await readFile(terminationLog, 'utf8')) as Record<string, string>;
  const reason = message.reason ?? '';
  t.true(
    reason.startsWith(
      '--request-timeout (env VAULTPAM_REQUEST_TIMEOUT) has no value: the argument after it begins with "-"',
    ),
    reason,
  );
  t.false(/\n|\\n/.test(reason), 'one line, no literal \\n');
  t.notRegex(reason, /ambiguous|Did you forget/);
});

// Under the operator the agent runs without --give-up-after: a server in front of the control plane
// refusing the handshake by a TLS alert was retried for ever, and the termination message (all the
// operator reads) never said so. --give-up-on-refusal-after ends it with exit 14.
test('without --give-up-after, a handshake refused by TLS alert 48 for --give-up-on-refusal-after: exit 14 TLS_CLIENT_CERTIFICATE_REJECTED in the termination message', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.cli-refused';
  const { token, tokenFile, dataDir } = await prepareConnector(t, control, connectorId);
  const terminationLog = join(await tempDir(t, 'vaultpam-term-'), 'termination-log');
  const port = await alertingPort(t, 48);
  const agent = spawnAgent(t, [
    '--connector-id',
    connectorId,
    '--control-plane-url',
    `https://127.0.0.1:${port}`,
    '--ca-file',
    control.caFile,
    '--token-file',
    tokenFile,
    '--data-dir',
    dataDir,
    '--termination-log',
    terminationLog,
    '--health-listen',
    '127.0.0.1:0',
    '--retry-initial',
    '100ms',
    '--retry-max',
    '200ms',
    '--give-up-on-refusal-after',
    '1s',
  ]);
  t.is((await agent.exited).code, 14);
  const message = JSON.parse(await readFile(terminationLog, 'utf8')) as Record<string, string>;
  t.is(message.code, 'TLS_CLIENT_CERTIFICATE_REJECTED');
  t.is(message.failureClass, 'FirstBootBootstrap');
  t.regex(
    message.reason ?? '',
    /this agent presented no client certificate .* refused the handshake with alert 48 \(unknown ca\)/,
  );
  t.notRegex(message.nextStep ?? '', /outbound HTTPS|reachability/);
  t.is((await control.admin.getConnector(connectorId)).state, 'pending');
  assertNoSecrets(t, 'CLI output', agent.output(), [token]);
});
