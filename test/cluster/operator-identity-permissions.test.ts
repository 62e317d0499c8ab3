// A permissions mistake is not identity loss. A paired connector under recovery policy Automatic
// whose pod was moved to another user (a runAsUser or fsGroup change) cannot read its private key:
// the agent stops, and the operator must say what the troubleshooting guide's "Permission Denied"
// says (give the connector user the files) instead of starting a guided recovery, which would revoke
// the intact certificate and could not pair anyway while the data directory is unreadable.
// Real API server and controller-manager, the real control plane over HTTPS, the real agent: it pairs
// in-process, then the real agent program runs as another user (uid 65534) on the same data
// directory, and its exit code and termination message are put in the pod's status as a kubelet would.
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import { runPlugin } from '../../src/plugin/main.ts';
import { createTestNamespace, repoRoot, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import {
  connectors,
  type OperatorEnvironment,
  pairOnlineUnderAutomatic,
  recordAgentExit,
  startOperatorEnvironment,
} from '../helpers/operator-env.ts';
import { type ProgramTree, programTreeForOtherUsers } from '../helpers/program-tree.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;
let program: ProgramTree | undefined;

test.before(async () => {
  env = await startOperatorEnvironment(cluster());
  await env.startOperator();
  program = await programTreeForOtherUsers(repoRoot);
});
test.after.always(async () => {
  await env?.stop();
  await program?.remove();
});

/** The agent program as uid/gid 65534 (a pod whose runAsUser changed): its exit code and termination message. */
async function runAgentAsOtherUser(
  dir: string,
  dataDir: string,
  connectorId: string,
  extraArgs: string[] = [],
): Promise<{ exitCode: number; message: string; output: string }> {
  const caFile = join(dir, 'ca.crt');
  await writeFile(caFile, env.controlPlane.caPem, { mode: 0o644 });
  const terminationLog = join(dir, 'termination-log');
  await writeFile(terminationLog, '');
  await chmod(terminationLog, 0o666);
  const child = spawn(
    program?.node ?? process.execPath,
    [
      'src/bin/connector.ts',
      `--connector-id=${connectorId}`,
      `--control-plane-url=${env.controlPlane.url}`,
      `--ca-file=${caFile}`,
      `--data-dir=${dataDir}`,
      `--termination-log=${terminationLog}`,
      '--health-listen=127.0.0.1:0',
      ...extraArgs,
    ],
    { cwd: program?.cwd ?? repoRoot, uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  });
  const exitCode = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => resolve(code ?? -1));
  });
  return { exitCode, message: await readFile(terminationLog, 'utf8'), output };
}

/**
 * A connector paired under `policy` (validation restart off), whose identity its user can no longer
 * read: the pod moved to another user (runAsUser 65534) while the identity stays root's, key 0600.
 * The real agent's exit is put in the pod's status as the kubelet would.
 */
async function unreadableIdentity(t: ExecutionContext, policy: 'Automatic' | 'Manual') {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'perm');
  const dir = await mkdtemp(join(tmpdir(), 'vaultpam-perm-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await chmod(dir, 0o755);
  const dataDir = join(dir, 'data');
  await mkdir(dataDir, { mode: 0o777 });
  await chmod(dataDir, 0o777);
  const pod = await pairOnlineUnderAutomatic(env, namespace, 'edge', dataDir);
  await connectors(kc).patchSpec(namespace, 'edge', {
    spec: { recovery: { policy, validateRestart: false } },
  });
  const connectorId = `${namespace}.edge`;
  await pod.stop();
  const before = await env.admin.getConnector(connectorId);

  // The identity stays root's (the user that paired), key 0600: what a runAsUser change leaves.
  await chmod(join(dataDir, 'identity'), 0o755);
  const { exitCode, message, output } = await runAgentAsOtherUser(dir, dataDir, connectorId);
  t.not(message, '', `the agent (exit ${exitCode}) wrote no termination message: ${output}`);
  const said = JSON.parse(message) as { code: string; failureClass: string; reason: string };
  t.is(said.code, 'IDENTITY_KEY_UNREADABLE', message);
  t.true(said.reason.startsWith('permission denied reading'), said.reason);

  // The kubelet's part: the container's last state, with the agent's exit code and message.
  await recordAgentExit(kc, namespace, 'edge-0', { exitCode, message, restartCount: 1 });
  return { namespace, dir, dataDir, connectorId, before };
}

/** The exposed-key advice: the identity directory deleted on the claim, the pod restarted without it. */
async function deleteIdentityAndRestart(t: ExecutionContext, namespace: string, dataDir: string) {
  await rm(join(dataDir, 'identity'), { recursive: true, force: true });
  const emptied = await env.runAgent(namespace, 'edge', dataDir);
  const missing = await emptied.agent.done;
  await emptied.stop();
  t.is(missing.failure?.code, 'ENROLLMENT_TOKEN_MISSING', JSON.stringify(missing.failure));
  await recordAgentExit(cluster().kc, namespace, 'edge-0', {
    exitCode: missing.exitCode,
    message: await readFile(emptied.terminationLog, 'utf8'),
    restartCount: 2,
  });
}

/** `kubectl vaultpam ARGV` in-process, with the admin kubeconfig: its exit code and output. */
async function plugin(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runPlugin([...argv, '--kubeconfig', cluster().cluster.kubeconfigPath], {
    stdout: { write: (text) => out.push(text) },
    stderr: { write: (text) => err.push(text) },
    env: {},
    program: 'kubectl vaultpam',
    now: () => new Date(),
  });
  return { code, out: out.join(''), err: err.join('') };
}

/** The diagnosis once it names the agent's IDENTITY_KEY_UNREADABLE. */
function unreadableDiagnosed(namespace: string) {
  return eventually(
    async () => {
      const d = (await connectors(cluster().kc).get(namespace, 'edge')).status?.diagnosis;
      return d?.evidence?.some((e) => e.includes('IDENTITY_KEY_UNREADABLE')) ? d : undefined;
    },
    { description: "a diagnosis naming the agent's IDENTITY_KEY_UNREADABLE", timeoutMs: 30_000 },
  );
}

/**
 * Under policy Manual: the identity directory deleted and the pod restarted, `kubectl vaultpam
 * recover` once the diagnosis says IdentityLoss, followed until the recovery waits for the pairing.
 * The plugin's run, wrapped (it follows the recovery to its end, so it is not awaited here).
 */
async function recoverAfterDeletion(t: ExecutionContext, namespace: string, dataDir: string) {
  const api = connectors(cluster().kc);
  await deleteIdentityAndRestart(t, namespace, dataDir);
  await eventually(
    async () =>
      (await api.get(namespace, 'edge')).status?.diagnosis?.failureClass === 'IdentityLoss'
        ? true
        : undefined,
    { description: 'the diagnosis says IdentityLoss', timeoutMs: 60_000 },
  );
  const asked = plugin(['recover', 'edge', '-n', namespace, '--request-id', 'exposed-1', '--timeout', '2m']);
  await eventually(
    () =>
      api.get(namespace, 'edge').then((x) => (x.status?.recovery?.step === 'AwaitingOnline' ? x : undefined)),
    { description: 'the recovery waits for the new pairing', timeoutMs: 90_000 },
  );
  return { asked };
}

test('an identity the connector user cannot read starts no automatic recovery, and the next step gives it the files', async (t) => {
  if (process.getuid?.() !== 0) {
    t.pass('needs root to run the agent as another user');
    return;
  }
  const { kc } = cluster();
  const api = connectors(kc);
  const { namespace, dataDir, connectorId, before } = await unreadableIdentity(t, 'Automatic');

  const diagnosed = await eventually(
    async () => {
      const c = await api.get(namespace, 'edge');
      const d = c.status?.diagnosis;
      // A recovery started is the failure this test is about: stop waiting and say so below.
      if (c.status?.recovery) return c;
      return d?.evidence?.some((e) => e.includes('IDENTITY_KEY_UNREADABLE')) ? c : undefined;
    },
    { description: "a diagnosis naming the agent's IDENTITY_KEY_UNREADABLE", timeoutMs: 30_000 },
  );
  t.is(diagnosed.status?.recovery, undefined, `no recovery: ${JSON.stringify(diagnosed.status)}`);
  const diagnosis = diagnosed.status?.diagnosis;
  t.not(diagnosis?.failureClass, 'IdentityLoss', JSON.stringify(diagnosis));
  t.regex(diagnosis?.reason ?? '', /permission/, JSON.stringify(diagnosis));
  t.regex(diagnosis?.nextStep ?? '', /fsGroup/);
  t.regex(diagnosis?.nextStep ?? '', /runAsUser/);
  t.notRegex(diagnosis?.nextStep ?? '', /starts automatically/);
  t.regex(diagnosis?.nextStep ?? '', /exposed: instead, delete the identity directory on the claim/);

  // Give the operator time to start a recovery if it were going to (its follower is fast here).
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const c = await api.get(namespace, 'edge');
  t.is(c.status?.recovery, undefined, `no recovery: ${JSON.stringify(c.status?.recovery)}`);
  const after = await env.admin.getConnector(connectorId);
  t.is(after.certificate?.serial, before.certificate?.serial, 'the intact certificate is not revoked');
  const audit = await env.admin.audit({ connectorId, limit: 1000 });
  t.false(
    audit.some((e) => e.type === 'recovery.started' || e.type === 'token.revoked'),
    audit.map((e) => e.type).join(', '),
  );

  // A key treated as exposed: what the next step says to do. The identity directory is deleted on
  // the claim (as root, who can), the pod restarts without it, and the identity loss that follows
  // is recovered: the exposed certificate revoked, one token minted, a new key paired once.
  await deleteIdentityAndRestart(t, namespace, dataDir);
  await eventually(
    () =>
      api.get(namespace, 'edge').then((x) => (x.status?.recovery?.step === 'AwaitingOnline' ? x : undefined)),
    { description: 'the recovery waits for the new pairing', timeoutMs: 90_000 },
  );
  const paired = await env.runAgent(namespace, 'edge', dataDir);
  t.teardown(() => paired.stop());
  const done = await eventually(
    () => api.get(namespace, 'edge').then((x) => (x.status?.recovery?.step === 'Completed' ? x : undefined)),
    { description: 'the recovery completes', timeoutMs: 60_000 },
  );
  t.is(done.status?.recovery?.outcome, 'Succeeded');
  await newKeyPairedOnce(t, connectorId, before.certificate?.serial);
});

/** The exposed certificate replaced: a new one, one recovery begun, one token minted for it, paired once. */
async function newKeyPairedOnce(t: ExecutionContext, connectorId: string, exposedSerial: string | undefined) {
  const replaced = await env.admin.getConnector(connectorId);
  t.not(replaced.certificate?.serial, exposedSerial, 'a new certificate');
  const trail = await env.admin.audit({ connectorId, limit: 1000 });
  const count = (type: string) => trail.filter((e) => e.type === type).length;
  t.is(count('recovery.started'), 1);
  t.is(count('token.minted'), 2, 'the first pairing and the recovery, one each');
  t.is(count('endpoint.enrolled'), 2, 'the first pairing and the new key, once');
}

test('under policy Manual, the exposed-key advice works with kubectl vaultpam recover: refused while the identity is there, a new key paired once after it is deleted', async (t) => {
  if (process.getuid?.() !== 0) {
    t.pass('needs root to run the agent as another user');
    return;
  }
  const api = connectors(cluster().kc);
  const { namespace, dataDir, connectorId, before } = await unreadableIdentity(t, 'Manual');
  await unreadableDiagnosed(namespace);
  // What the advice says: asked while the identity is there, a recovery is refused.
  const early = await plugin(['recover', 'edge', '-n', namespace, '--request-id', 'exposed-0']);
  t.is(early.code, 1, `${early.out}${early.err}`);
  t.regex(early.err, /no recovery is needed/);

  const { asked } = await recoverAfterDeletion(t, namespace, dataDir);
  const paired = await env.runAgent(namespace, 'edge', dataDir);
  t.teardown(() => paired.stop());
  const done = await asked;
  t.is(done.code, 0, `${done.out}${done.err}`);
  const c = await api.get(namespace, 'edge');
  t.is(c.status?.recovery?.outcome, 'Succeeded', JSON.stringify(c.status?.recovery));
  await newKeyPairedOnce(t, connectorId, before.certificate?.serial);
});

test("found, fixed: the exposed-key advice as it was (delete the identity directory, restart) fails where the data directory is the old user's: it now says to give the connector user that directory", async (t) => {
  // A review's reproduction: a runAsUser change without fsGroup leaves the data directory the old
  // user's (0755), not only the identity files. Following the advice as 8a218c8 wrote it, the
  // recovery is accepted and mints its one token, and the agent, as the connector user, cannot
  // write the new key there: exit 12 before the token is spent, and the attempt ends Failed, its
  // request id used up. The advice now says to give the connector user the data directory itself.
  if (process.getuid?.() !== 0) {
    t.pass('needs root to run the agent as another user');
    return;
  }
  const api = connectors(cluster().kc);
  const { namespace, dir, dataDir, connectorId } = await unreadableIdentity(t, 'Manual');
  const advice = await unreadableDiagnosed(namespace);
  t.regex(advice.nextStep ?? '', /give the connector user the data directory itself/);
  // The old advice's steps alone: the data directory stays the old user's.
  await chmod(dataDir, 0o755);
  const { asked } = await recoverAfterDeletion(t, namespace, dataDir);
  // The pod, as the connector user, with the recovery's token mounted.
  const secret = await cluster()
    .kc.makeApiClient(CoreV1Api)
    .readNamespacedSecret({ namespace, name: 'edge-enrollment-token' });
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, Buffer.from(secret.data?.token ?? '', 'base64'), { mode: 0o644 });
  const { exitCode, message } = await runAgentAsOtherUser(dir, dataDir, connectorId, [
    `--token-file=${tokenFile}`,
  ]);
  t.is(exitCode, 12, message);
  t.regex(message, /cannot write the identity to .*EACCES/);
  await recordAgentExit(cluster().kc, namespace, 'edge-0', { exitCode, message, restartCount: 3 });
  const done = await asked;
  t.is(done.code, 1, `${done.out}${done.err}`);
  const c = await api.get(namespace, 'edge');
  t.is(c.status?.recovery?.outcome, 'Failed');
  t.regex(c.status?.recovery?.reason ?? '', /exit code 12 .*cannot write the identity/);
});
