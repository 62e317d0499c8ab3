// Each program stops cleanly on SIGTERM when run the supported ways (README "Running the
// programs"): with the pinned Node directly, and through `npm exec -c 'exec node ...'`: it exits 0
// and leaves no process behind. And `npx node src/bin/x.ts`, which put a `sh -c` between npm and
// the program that swallowed the SIGTERM npm passed on (the program ran on, orphaned), now ends
// too: the program notices it was orphaned and stops as if the signal had reached it.
// Real processes throughout: the programs as child processes, a real control plane, a real API server.
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { repoRoot } from '../../dev/local-cluster/install.ts';
import { tempDir } from '../agent/fixtures.ts';
import { prepareConnector, startTestControlPlane } from '../agent/harness.ts';
import { installCrds, startTestCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';

type Launcher = 'pinned node' | 'npm exec' | 'npx';

interface Started {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Every writer of its output is gone (an orphaned program included): the output is complete. */
  closed: Promise<void>;
}

/** Starts `src/bin/<program>.ts` the given way, from the repository, with the machine's PATH. */
function start(t: ExecutionContext, launcher: Launcher, program: string, args: string[], env = {}): Started {
  const script = `src/bin/${program}.ts`;
  const quoted = [script, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  const [command, argv] =
    launcher === 'pinned node'
      ? [join(repoRoot, 'node_modules', '.bin', 'node'), [script, ...args]]
      : launcher === 'npm exec'
        ? ['npm', ['exec', '-c', `exec node ${quoted}`]]
        : ['npx', ['node', script, ...args]];
  const child = spawn(command, argv, {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, output: () => text, exited, closed };
}

/** Live processes whose command line mentions `marker` (each test gives its program a unique path). */
async function processesMentioning(marker: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || entry === String(process.pid)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(marker)) found.push(`${entry}: ${cmdline.replaceAll('\0', ' ').slice(0, 160)}`);
  }
  return found;
}

/**
 * SIGTERM to what was started; resolves with the processes mentioning `marker` still left (none,
 * when the program stopped). Whatever is left is killed when the test ends.
 */
async function terminateAndWaitForNone(
  t: ExecutionContext,
  started: Started,
  marker: string,
): Promise<string[]> {
  t.teardown(async () => {
    for (const line of await processesMentioning(marker)) process.kill(Number(line.split(':')[0]), 'SIGKILL');
  });
  started.child.kill('SIGTERM');
  // Bounded: a program left running keeps the output open; then the check below names it.
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([started.closed, new Promise((resolve) => (timer = setTimeout(resolve, 20_000)))]);
  clearTimeout(timer);
  return eventually(async () => (await processesMentioning(marker)).length === 0 && [], {
    timeoutMs: 15_000,
    intervalMs: 100,
    description: `no process mentioning ${marker}`,
  }).catch(() => processesMentioning(marker));
}

for (const launcher of ['pinned node', 'npm exec', 'npx'] as const) {
  test(`control plane started with ${launcher}: SIGTERM stops it cleanly and leaves no process`, async (t) => {
    const dataDir = await tempDir(t, 'vaultpam-signal-cp-');
    const cp = start(t, launcher, 'control-plane', ['--data-dir', dataDir, '--listen', '127.0.0.1:0']);
    await eventually(() => cp.output().includes('control plane listening'), {
      description: 'listening',
    }).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n${cp.output()}`);
    });
    const left = await terminateAndWaitForNone(t, cp, dataDir);
    t.deepEqual(left, [], cp.output());
    t.regex(cp.output(), /"msg":"control plane stopped"/, 'it stopped itself, not killed');
    // npx ends on the signal itself; the supported ways report the program's own clean exit.
    if (launcher !== 'npx') t.deepEqual(await cp.exited, { code: 0, signal: null }, cp.output());
  });
}

test('operator and connector started with npx: SIGTERM to npx stops each cleanly and leaves no process', async (t) => {
  const cluster = await startTestCluster();
  t.teardown(() => cluster.stop());
  await installCrds(cluster.adminKubeConfig());
  const dir = await tempDir(t, 'vaultpam-signal-operator-');
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, cluster.adminKubeConfig().exportConfig(), { mode: 0o600 });
  const operator = start(
    t,
    'npx',
    'operator',
    ['--leader-elect=false', '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0'],
    {
      KUBECONFIG: kubeconfig,
    },
  );
  await eventually(() => operator.output().includes('"msg":"operator started"'), {
    description: 'operator started',
  }).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}\n${operator.output()}`);
  });
  t.deepEqual(await terminateAndWaitForNone(t, operator, kubeconfig), [], operator.output());
  t.regex(operator.output(), /"msg":"stopping"/, 'the operator stopped itself');

  const control = await startTestControlPlane(t);
  const { tokenFile, dataDir } = await prepareConnector(t, control, 'team-a.signals');
  const connector = start(t, 'npx', 'connector', [
    '--connector-id',
    'team-a.signals',
    '--control-plane-url',
    control.cp.url,
    '--ca-file',
    control.caFile,
    '--token-file',
    tokenFile,
    '--data-dir',
    dataDir,
    '--termination-log',
    join(dir, 'termination-log'),
    '--health-listen',
    '127.0.0.1:0',
  ]);
  await eventually(() => connector.output().includes('health probes listening'), {
    description: 'agent started',
  }).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}\n${connector.output()}`);
  });
  t.deepEqual(await terminateAndWaitForNone(t, connector, dataDir), [], connector.output());
  t.regex(connector.output(), /"msg":"shutdown signal received"/, 'the agent stopped itself');
});
