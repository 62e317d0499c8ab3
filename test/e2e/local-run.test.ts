// The README's main command works as written: `npm start` (here with --exit-when-online so it ends)
// brings up the cluster, control plane, operator and pod runner, and a sample Connector goes Online.
// And one Ctrl-C ends it, in dependency order and within seconds, even with a Connector stuck in a
// terminating namespace whose control plane is down (the issue "Deleting never hangs").
// Serial: each test runs the whole system, two at once would only slow both down.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import test from 'ava';
import { repoRoot } from '../../dev/local-cluster/install.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import { eventually, isGone } from '../helpers/eventually.ts';
import { runProgram } from '../helpers/program.ts';

test.serial('npm start brings the sample Connector Online and stops cleanly', async (t) => {
  const program = runProgram(
    t,
    join(repoRoot, 'dev', 'bin', 'local-run.ts'),
    ['--exit-when-online', '--timeout', '150'],
    { cwd: repoRoot, killWith: 'SIGTERM' },
  );
  const code = await program.closed;
  const output = program.output();
  t.is(code, 0, output);
  t.regex(output, /dc1-connector\s+Online\s+True\s+Autonomous/);
  t.regex(output, /The sample Connector is Online/);
  t.notRegex(output, /vpe_[0-9a-f]{16}_/, 'no enrollment token in the output');
});

/** Pids of live processes whose command line mentions `text`. */
async function processesMentioning(text: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || entry === String(process.pid)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(text)) found.push(`${entry}: ${cmdline.replaceAll('\0', ' ').slice(0, 200)}`);
  }
  return found;
}

test.serial(
  'one SIGINT stops everything in dependency order within seconds, with a Connector in a terminating namespace whose control plane is down',
  async (t) => {
    const workDir = await mkdtemp(join(tmpdir(), 'vaultpam-local-run-stop-'));
    t.teardown(() => rm(workDir, { recursive: true, force: true }));
    const program = runProgram(
      t,
      join(repoRoot, 'dev', 'bin', 'local-run.ts'),
      ['--work-dir', workDir, '--timeout', '150'],
      { cwd: repoRoot },
    );
    await eventually(() => /The sample Connector is Online/.test(program.output()), {
      timeoutMs: 160_000,
      intervalMs: 250,
      description: 'the sample Connector Online',
    }).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n${program.output()}`);
    });

    // A namespace with a ControlPlane that is down, its Secret, and a Connector naming it; then the
    // namespace is deleted while the operator cannot reach that control plane.
    const kc = new KubeConfig();
    kc.loadFromFile(join(workDir, 'cluster', 'admin.kubeconfig'));
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const namespace = 'team-down';
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    await core.createNamespacedSecret({
      namespace,
      body: {
        metadata: {
          name: 'vaultpam-admin',
          annotations: { 'vaultpam.io/control-plane-url': 'https://127.0.0.1:1' },
        },
        stringData: { credential: 'not-a-real-credential' },
      },
    });
    await custom.createNamespacedCustomObject({
      group: 'vaultpam.io',
      version: 'v1alpha1',
      namespace,
      plural: 'controlplanes',
      body: {
        apiVersion: 'vaultpam.io/v1alpha1',
        kind: 'ControlPlane',
        metadata: { name: 'vaultpam' },
        spec: { url: 'https://127.0.0.1:1', credentialSecretRef: { name: 'vaultpam-admin' } },
      },
    });
    const connectors = { group: 'vaultpam.io', version: 'v1alpha1', namespace, plural: 'connectors' };
    await custom.createNamespacedCustomObject({
      ...connectors,
      body: {
        apiVersion: 'vaultpam.io/v1alpha1',
        kind: 'Connector',
        metadata: { name: 'stuck' },
        spec: {
          controlPlaneRef: { name: 'vaultpam' },
          connector: { org: 'acme', endpointId: 'stuck', allowedNetworks: ['10.30.0.0/16'] },
          image: 'vaultpam-connector:local',
        },
      },
    });
    const read = async () =>
      (await custom.getNamespacedCustomObject({ ...connectors, name: 'stuck' })) as Connector;
    await eventually(async () => ((await read()).metadata.finalizers ?? []).length > 0, {
      description: 'the operator added its finalizer',
    });
    await core.deleteNamespace({ name: namespace });
    // With nothing ever paired there is nothing to release, so the finalizer may let it go at once.
    await eventually(
      async () => (await isGone(read)) || (await read()).metadata.deletionTimestamp !== undefined,
      { description: 'the Connector is being deleted with its namespace' },
    );

    const signalledAt = Date.now();
    program.child.kill('SIGINT');
    const exited = await Promise.race([
      program.closed.then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 30_000).unref()),
    ]);
    const output = program.output();
    t.true(exited, `still running 30 s after one SIGINT:\n${output}`);
    t.is(await program.closed, 130, output);
    t.log(`stopped ${Date.now() - signalledAt} ms after SIGINT`);
    const order = [
      'stopping the operator…',
      'stopping the local pod runner…',
      'stopping the reference control plane…',
      'stopping kube-controller-manager…',
      'stopping kube-apiserver…',
      'stopping etcd…',
    ];
    const positions = order.map((line) => output.indexOf(line));
    t.false(positions.includes(-1), `every step is printed:\n${output}`);
    t.deepEqual(
      positions,
      [...positions].sort((a, b) => a - b),
      `the steps run in dependency order:\n${output}`,
    );
    t.notRegex(output, /did not stop within/, output);
    t.notRegex(output, /vaultpam-local-run:/, `no error reported:\n${output}`);
    // SIGKILLed members of a group may wait a moment to be reaped by init.
    const left = await eventually(async () => (await processesMentioning(workDir)).length === 0, {
      timeoutMs: 5_000,
      description: 'no process of the run left',
    }).catch(async () => processesMentioning(workDir));
    t.deepEqual(left === true ? [] : left, [], 'no process of the run is left');
  },
);
