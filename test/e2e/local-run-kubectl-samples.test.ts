// What a newcomer does after `npm start`, done the way they would do it:
// - the first run says what it builds: here kubectl's cache is empty (VAULTPAM_KUBECTL_CACHE), so
//   `npm start` really builds kubectl (from the warm Go build cache: a link) and must say so;
// - the kubectl commands it prints work exactly as printed, from a shell whose own kubectl is
//   another version (this machine has one on the PATH) or none: the printed PATH puts the kubectl
//   built to match the cluster, and the kubectl-vaultpam plugin, first (`kubectl vaultpam status -A`
//   answers through it);
// - every file in manifests/samples/ applies with that kubectl, the Connector samples as they are
//   and the control-plane samples through the local variant the run wrote, and each reaches the
//   state its comment promises (Online, or Stalled saying what it waits for).
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import test from 'ava';
import { ensureKubectl } from '../../dev/local-cluster/binaries.ts';
import { repoRoot } from '../../dev/local-cluster/install.ts';
import { SAMPLES_DIR } from '../../dev/local-cluster/local-samples.ts';
import { pluginScript } from '../../dev/local-cluster/tool-bin.ts';
import type { Condition, Connector } from '../../src/operator/api/types.ts';
import { eventually } from '../helpers/eventually.ts';
import { runProgram } from '../helpers/program.ts';

/** Runs a command line in bash as a person would paste it; resolves with its exit code and output. */
function shell(
  line: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', line], { cwd: repoRoot, env }, (error, stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

interface Expectation {
  plural: string;
  namespace?: string;
  name: string;
  /** What the sample's comment promises on the local system. */
  promise: string;
  reached: (object: { status?: { phase?: string; conditions?: Condition[] } }) => boolean;
}

const condition =
  (type: string, status: string, reason: string) => (object: { status?: { conditions?: Condition[] } }) =>
    object.status?.conditions?.some((c) => c.type === type && c.status === status && c.reason === reason) ??
    false;

/** One entry per sample file: a new sample without one fails the test. */
const EXPECTED: Record<string, Expectation> = {
  'controlplane.yaml': {
    plural: 'controlplanes',
    namespace: 'vaultpam',
    name: 'vaultpam',
    promise: 'Ready: the operator reached it with the CA and credential it names',
    reached: condition('Ready', 'True', 'Reachable'),
  },
  'clustercontrolplane.yaml': {
    plural: 'clustercontrolplanes',
    name: 'vaultpam-shared',
    promise: 'Ready, its CA and credential read from the operator namespace',
    reached: condition('Ready', 'True', 'Reachable'),
  },
  'connector.yaml': {
    plural: 'connectors',
    namespace: 'vaultpam',
    name: 'dc1-connector',
    promise: 'Online',
    reached: (c) => c.status?.phase === 'Online',
  },
  'connector-ephemeral.yaml': {
    plural: 'connectors',
    namespace: 'vaultpam',
    name: 'lab-connector',
    promise: 'Online',
    reached: (c) => c.status?.phase === 'Online',
  },
  'connector-existing-claim.yaml': {
    plural: 'connectors',
    namespace: 'vaultpam',
    name: 'dc2-connector',
    promise: 'Stalled until the claim it reattaches exists (ClaimNotFound)',
    reached: condition('Stalled', 'True', 'ClaimNotFound'),
  },
  'connector-adopt.yaml': {
    plural: 'connectors',
    namespace: 'vaultpam',
    name: 'legacy-connector',
    promise: 'Stalled until the workload it adopts exists (WorkloadNotFound)',
    reached: condition('Stalled', 'True', 'WorkloadNotFound'),
  },
};

/** The line `npm start` printed that contains `text`, as a command (indentation removed). */
function printedCommand(output: string, text: string): string {
  const line = output.split('\n').find((l) => l.startsWith('    ') && l.includes(text));
  if (!line) throw new Error(`npm start printed no command with "${text}":\n${output}`);
  return line.trim();
}

test.serial(
  'npm start builds kubectl saying so, prints kubectl commands that work as printed, and every sample applies and does what it says',
  async (t) => {
    const workDir = await mkdtemp(join(tmpdir(), 'vaultpam-local-run-kubectl-'));
    const kubectlCache = await mkdtemp(join(tmpdir(), 'vaultpam-kubectl-cache-'));
    t.teardown(() => rm(workDir, { recursive: true, force: true }));
    t.teardown(() => rm(kubectlCache, { recursive: true, force: true }));
    const program = runProgram(
      t,
      join(repoRoot, 'dev', 'bin', 'local-run.ts'),
      ['--work-dir', workDir, '--timeout', '150'],
      {
        cwd: repoRoot,
        env: { ...process.env, VAULTPAM_KUBECTL_CACHE: kubectlCache },
        killWith: 'SIGINT',
      },
    );
    await eventually(() => /Everything keeps running/.test(program.output()), {
      timeoutMs: 400_000,
      intervalMs: 250,
      description: 'npm start ready',
    }).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n${program.output()}`);
    });
    const output = program.output();
    t.log(output);

    // The build was announced and reported, step by step.
    t.regex(output, /^ {4}the first run builds .*kubectl from Go modules, once/m);
    t.regex(output, /^ {4}\[\d+:\d\d\] building kubectl v1\.37\.2 .*\[5 of 5\]$/m);
    t.regex(output, /^ {4}\[\d+:\d\d\] built kubectl in \d+:\d\d/m);
    t.notRegex(output, /\$WORK|packagefile|\/compile /, 'no go -x trace');

    // The printed commands, pasted into a shell with no KUBECONFIG and the machine's own PATH.
    const { KUBECONFIG: _ignored, ...env } = process.env;
    const get = await shell(printedCommand(output, 'kubectl get connectors -A'), env);
    t.is(get.code, 0, get.stderr);
    t.regex(get.stdout, /vaultpam-demo\s+dc1-connector\s+Online/);
    const status = await shell(printedCommand(output, 'kubectl vaultpam status -A'), env);
    t.is(status.code, 0, status.stderr);
    t.regex(status.stdout, /vaultpam-demo\s+dc1-connector\s+Online/, 'the plugin answers through kubectl');
    // The sample uses the operator's default control plane: the printed variables let the plugin ask it.
    const one = await shell(
      printedCommand(output, 'kubectl vaultpam status dc1-connector -n vaultpam-demo'),
      env,
    );
    t.is(one.code, 0, one.stderr);
    const view = one.stdout.slice(one.stdout.indexOf("Control plane's view:"));
    t.regex(view, /^Control plane's view:/, one.stdout);
    t.notRegex(view, /Not asked/, `the plugin asked the control plane: ${view}`);
    t.regex(view, /Last heartbeat:?\s+\d{4}-\d\d-\d\dT/, `the control plane's record: ${view}`);
    const exportLine = printedCommand(output, 'export KUBECONFIG=');
    const version = await shell(`${exportLine}; kubectl version -o json`, env);
    t.is(version.code, 0, version.stderr);
    const versions = JSON.parse(version.stdout) as {
      clientVersion: { gitVersion: string };
      serverVersion: { gitVersion: string };
    };
    t.is(versions.clientVersion.gitVersion, versions.serverVersion.gitVersion, 'kubectl matches the cluster');
    const plugins = await shell(`${exportLine}; kubectl plugin list`, env);
    t.regex(plugins.stdout, new RegExp(`^${join(workDir, 'bin', 'kubectl-vaultpam')}$`, 'm'), plugins.stderr);

    // Every sample: the control planes through the local variant, the Connectors as they are.
    const files = (await readdir(SAMPLES_DIR)).filter((f) => f.endsWith('.yaml')).sort();
    t.deepEqual(files, Object.keys(EXPECTED).sort(), 'every sample has an expectation here');
    const samplesDir = /^Every sample with this control plane's URL in place of \S+: (\S+)\/$/m.exec(
      output,
    )?.[1];
    t.is(samplesDir, join(workDir, 'samples'), output);
    const ordered = [...files].sort(
      (a, b) => Number(a.startsWith('connector')) - Number(b.startsWith('connector')),
    );
    for (const file of ordered) {
      const path = file.startsWith('connector') ? `manifests/samples/${file}` : `${samplesDir}/${file}`;
      const applied = await shell(`${exportLine}; kubectl apply -f ${path}`, env);
      t.is(applied.code, 0, `${path}: ${applied.stderr}`);
      t.notRegex(applied.stderr, /Warning|error/i, `${path}: ${applied.stderr}`);
    }

    const kc = new KubeConfig();
    kc.loadFromFile(join(workDir, 'cluster', 'admin.kubeconfig'));
    const custom = kc.makeApiClient(CustomObjectsApi);
    for (const file of files) {
      const expected = EXPECTED[file];
      if (!expected) continue;
      const read = async () =>
        (expected.namespace
          ? await custom.getNamespacedCustomObject({
              group: 'vaultpam.io',
              version: 'v1alpha1',
              namespace: expected.namespace,
              plural: expected.plural,
              name: expected.name,
            })
          : await custom.getClusterCustomObject({
              group: 'vaultpam.io',
              version: 'v1alpha1',
              plural: expected.plural,
              name: expected.name,
            })) as Connector;
      const reached = await eventually(async () => expected.reached(await read()), {
        timeoutMs: 90_000,
        intervalMs: 500,
        description: `${file}: ${expected.promise}`,
      }).catch(
        async (error: unknown) => `${(error as Error).message}: ${JSON.stringify((await read()).status)}`,
      );
      t.true(reached, `${file}: ${reached}`);
    }

    // The credential the samples' Secret holds is never printed.
    const secret = await kc
      .makeApiClient(CoreV1Api)
      .readNamespacedSecret({ namespace: 'vaultpam', name: 'vaultpam-admin' });
    const credential = Buffer.from(secret.data?.credential ?? '', 'base64').toString();
    t.true(credential.length > 8);
    t.false(program.output().includes(credential), 'the admin credential is not in the output');

    program.child.kill('SIGINT');
    t.is(await program.closed, 130, program.output());
  },
);

test('the kubectl-vaultpam wrapper is found by the real kubectl and runs the plugin with the pinned Node', async (t) => {
  const kubectl = await ensureKubectl(() => {});
  const dir = await mkdtemp(join(tmpdir(), 'vaultpam-plugin-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // A stand-in plugin source: it reports the Node that runs it, its arguments and KUBECONFIG.
  const source = join(dir, 'plugin source.ts');
  await writeFile(
    source,
    'process.stdout.write(JSON.stringify({ node: process.version, args: process.argv.slice(2), kubeconfig: process.env.KUBECONFIG }));\n',
  );
  const bin = join(dir, 'bin');
  await shell(`mkdir -p '${bin}'`);
  await writeFile(join(bin, 'kubectl-vaultpam'), pluginScript(process.execPath, source));
  await chmod(join(bin, 'kubectl-vaultpam'), 0o755);
  const run = await shell(
    `PATH='${bin}':/usr/bin:/bin KUBECONFIG=/dev/null '${kubectl}' vaultpam status -A -o json`,
  );
  t.is(run.code, 0, run.stderr);
  t.deepEqual(JSON.parse(run.stdout), {
    node: process.version,
    args: ['status', '-A', '-o', 'json'],
    kubeconfig: '/dev/null',
  });
  t.true(Number(process.version.slice(1).split('.')[0]) >= 26, 'the pinned Node, not the machine one');
});
