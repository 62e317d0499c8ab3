// The three programs as their images run them: compiled by tsconfig.build.json into a directory laid
// out as the image's /app (dist/ beside package.json, crds/ and node_modules: tools/image-layout.ts),
// each started with its Dockerfile ENTRYPOINT's node options. The rest of the suite imports the
// TypeScript sources; this file holds the JavaScript that ships to the same behaviour on the main
// path: the compiled control plane starts and stops cleanly, the compiled agent pairs with it and
// beats, and the compiled operator, against the real API server, takes a Connector to Online with
// the compiled agent playing its pod from the token Secret the operator wrote.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import { ControlPlaneAdminClient } from '../../src/operator/control-plane/admin-client.ts';
import { buildImageLayout, type ImageTarget, imageEntrypoint } from '../../tools/image-layout.ts';
import { tempDir } from '../agent/fixtures.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import {
  connectors,
  type OperatorEnvironment,
  operatorProgramSetup,
  startOperatorEnvironment,
} from '../helpers/operator-env.ts';
import { type RunningProgram, runProgram } from '../helpers/program.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;
let app: string;

test.serial.before(async () => {
  app = await buildImageLayout(await mkdtemp(join(tmpdir(), 'vaultpam-image-')));
  env = await startOperatorEnvironment(cluster());
});
test.after.always(async () => {
  await env?.stop();
  if (app) await rm(app, { recursive: true, force: true });
});

/** `target`'s program as its image starts it: node, the ENTRYPOINT's options, the compiled script. */
function runImage(t: ExecutionContext, target: ImageTarget, args: string[], extraEnv = {}): RunningProgram {
  const { nodeOptions, script } = imageEntrypoint(target);
  return runProgram(t, join(app, script), args, {
    cwd: app,
    nodeOptions,
    env: { PATH: process.env.PATH ?? '', ...extraEnv },
    killWith: 'SIGTERM',
  });
}

async function waitForLine(program: RunningProgram, text: string): Promise<string> {
  return eventually(
    () =>
      program
        .output()
        .split('\n')
        .find((line) => line.includes(text)),
    {
      timeoutMs: 30_000,
      description: `"${text}" in the output`,
    },
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}\n${program.output().slice(-3000)}`);
  });
}

/** SIGTERM, as the kubelet stops a container; resolves with the exit code (or a note after 20 s). */
async function stopped(program: RunningProgram): Promise<number | null | string> {
  program.child.kill('SIGTERM');
  return Promise.race([
    program.closed,
    new Promise<string>((resolve) => setTimeout(() => resolve('still running after 20 s'), 20_000)),
  ]);
}

/** Starts the compiled agent for `connectorId` with the token in `token`; returns it and its files. */
async function runCompiledAgent(
  t: ExecutionContext,
  options: { connectorId: string; url: string; caPem: string; token: string },
) {
  const dir = await tempDir(t, 'vaultpam-image-agent-');
  await writeFile(join(dir, 'ca.crt'), options.caPem);
  await writeFile(join(dir, 'token'), options.token, { mode: 0o600 });
  const agent = runImage(t, 'connector', [
    `--connector-id=${options.connectorId}`,
    `--control-plane-url=${options.url}`,
    `--ca-file=${join(dir, 'ca.crt')}`,
    `--token-file=${join(dir, 'token')}`,
    `--data-dir=${join(dir, 'data')}`,
    `--termination-log=${join(dir, 'termination-log')}`,
    '--health-listen=127.0.0.1:0',
  ]);
  return { agent, dataDir: join(dir, 'data') };
}

test.serial('the layout holds only compiled JavaScript, with every import rewritten to it', async (t) => {
  const files = (await readdir(join(app, 'dist'), { recursive: true })).filter((f) => /\.\w+$/.test(f));
  t.true(files.length > 100, `the whole of src/ was compiled (${files.length} files)`);
  t.deepEqual(
    files.filter((f) => !f.endsWith('.js')),
    [],
    'no TypeScript (nor anything else) beside it',
  );
  const operator = await readFile(join(app, 'dist', 'bin', 'operator.js'), 'utf8');
  t.notRegex(operator, /from '\.{1,2}\/[^']+\.ts'/, "no import of a '.ts' module is left");
});

test.serial(
  'the compiled agent pairs with the compiled control plane and beats; both stop cleanly on SIGTERM',
  async (t) => {
    const dataDir = await tempDir(t, 'vaultpam-image-cp-');
    const cp = runImage(t, 'control-plane', ['--data-dir', dataDir, '--listen', '127.0.0.1:0']);
    const listening = await waitForLine(cp, 'control plane listening');
    const url = (JSON.parse(listening) as { url: string }).url;
    const admin = new ControlPlaneAdminClient({
      url,
      caPem: await readFile(join(dataDir, 'ca.pem'), 'utf8'),
      credential: (await readFile(join(dataDir, 'initial-admin-credential'), 'utf8')).trim(),
    });
    t.teardown(() => admin.close());
    await admin.ensureConnector('team-a.image', { org: 'acme', endpointId: 'ep-1', allowedNetworks: [] });
    const { token } = await admin.mintToken('team-a.image', { idempotencyKey: 'image-test' });

    // The compiled agent pairs with the compiled control plane and beats over mTLS.
    const { agent, dataDir: agentData } = await runCompiledAgent(t, {
      connectorId: 'team-a.image',
      url,
      caPem: await readFile(join(dataDir, 'ca.pem'), 'utf8'),
      token,
    });
    await waitForLine(agent, 'enrolled: identity persisted');
    await waitForLine(agent, 'connected: heartbeat accepted over mTLS');
    t.true((await readdir(agentData)).length > 0, 'the identity is on disk');
    t.false(agent.output().includes(token), 'the token is not in the agent output');
    t.is(await stopped(agent), 0, agent.output().slice(-2000));

    t.is(await stopped(cp), 0, cp.output().slice(-2000));
    t.regex(cp.output(), /"msg":"control plane stopped"/, 'it stopped itself, not killed');
  },
);

test.serial(
  'the compiled operator takes a Connector to Online, its pod played by the compiled agent',
  async (t) => {
    const { kc } = cluster();
    const setup = await operatorProgramSetup(env, await tempDir(t, 'vaultpam-image-operator-'));
    const operator = runImage(t, 'operator', setup.args, { ...setup.env, POD_NAME: 'image-replica' });
    await waitForLine(operator, '"operator started"');

    const namespace = await createTestNamespace(kc, 'image');
    await connectors(kc).create(namespace, {
      metadata: { name: 'edge', namespace },
      spec: { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: [] } },
    });
    const secret = await eventually(
      () => kc.makeApiClient(CoreV1Api).readNamespacedSecret({ namespace, name: 'edge-enrollment-token' }),
      { timeoutMs: 30_000, description: 'the compiled operator wrote the token Secret' },
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n${operator.output().slice(-3000)}`);
    });
    const token = Buffer.from(secret.data?.token ?? '', 'base64').toString();
    t.true(token.length > 0, 'the Secret holds a token');

    const { agent } = await runCompiledAgent(t, {
      connectorId: `${namespace}.edge`,
      url: env.controlPlane.url,
      caPem: env.controlPlane.caPem,
      token,
    });
    const online = await eventually(
      () =>
        connectors(kc)
          .get(namespace, 'edge')
          .then((c) => (c.status?.phase === 'Online' ? c : undefined)),
      { timeoutMs: 60_000, description: 'the Connector is Online' },
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n${operator.output().slice(-3000)}`);
    });
    t.is(online.status?.phase, 'Online');
    t.false(operator.output().includes(token), 'the token is not in the operator output');
    t.is(await stopped(agent), 0, agent.output().slice(-2000));
    t.is(await stopped(operator), 0, operator.output().slice(-2000));
    t.regex(operator.output(), /"stopping"/);
  },
);
