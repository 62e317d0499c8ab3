// A first pairing whose certificate the data directory did not take (the agent's
// IDENTITY_PERSIST_FAILED, exit 12: a full volume, a read-only mount) is diagnosed, and what the
// diagnosis says happens next is what happens under the operator. Before, diagnose() had no rule for
// it: the status said only "paired; waiting for the first heartbeat" while the pod crash-looped, and
// the agent's own advice (start again with the same token mounted) cannot hold here, as the operator
// deletes the spent token's Secret once the record says paired.
// Real API server and controller-manager, the real control plane over HTTPS, the real agent: its
// identity directory stops taking files while its enroll request is on its way; its exit code and
// termination message go in pod edge-0's status as a kubelet would write them. The same in a guided
// recovery: the agent pairs with the recovery's token and cannot save the certificate.
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import type { AgentDependencies } from '../../src/agent/agent.ts';
import { type AgentApi, ControlPlaneClient } from '../../src/agent/control-plane-client.ts';
import { identityPaths } from '../../src/agent/identity-files.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import {
  connectors,
  type OperatorEnvironment,
  recordAgentExit,
  startOperatorEnvironment,
} from '../helpers/operator-env.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;

test.before(async () => {
  env = await startOperatorEnvironment(cluster());
  await env.startOperator();
});
test.after.always(async () => {
  await env?.stop();
});

/** Makes `dir` refuse new files for real (the immutable attribute as root, who ignores modes); returns the undo. */
function refuseWrites(dir: string): () => Promise<void> {
  const asRoot = process.getuid?.() === 0;
  if (asRoot) execFileSync('chattr', ['+i', dir]);
  return async () => {
    if (asRoot) execFileSync('chattr', ['-i', dir]);
    else await chmod(dir, 0o700);
  };
}

/** The real client, whose first enroll request first makes the identity directory refuse new files. */
function refusingAfterKey(
  dataDir: string,
  undo: { run?: () => Promise<void> },
): AgentDependencies['createClient'] {
  return (options) => {
    const client = new ControlPlaneClient(options);
    const api: AgentApi = {
      enroll: async (body) => {
        const dir = identityPaths(dataDir).dir;
        if (!undo.run) {
          if (process.getuid?.() !== 0) await chmod(dir, 0o500);
          undo.run = refuseWrites(dir);
        }
        return client.enroll(body);
      },
      heartbeat: (body) => client.heartbeat(body),
      renew: (body) => client.renew(body),
      setIdentity: (identity) => client.setIdentity(identity),
      close: () => client.close(),
    };
    return api;
  };
}

/**
 * A data directory for pod edge-0 whose identity directory stops taking files while the agent's
 * enroll request is on its way (given back when the test ends, or by `undo.run`), and the run of
 * the real agent there with the token in the Secret: it pairs and stops with
 * IDENTITY_PERSIST_FAILED, exit 12, recorded in the pod's status as the kubelet would.
 */
async function unsavedPairing(t: ExecutionContext, namespace: string) {
  const dir = await mkdtemp(join(tmpdir(), 'vaultpam-unsaved-'));
  const undo: { run?: () => Promise<void> } = {};
  t.teardown(async () => {
    await undo.run?.().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });
  const dataDir = join(dir, 'data');
  const pod = await env.runAgent(namespace, 'edge', dataDir, refusingAfterKey(dataDir, undo));
  const outcome = await pod.agent.done;
  await pod.stop();
  const message = await readFile(pod.terminationLog, 'utf8');
  t.is(outcome.exitCode, 12, message);
  t.is(outcome.failure?.code, 'IDENTITY_PERSIST_FAILED');
  await recordAgentExit(cluster().kc, namespace, 'edge-0', { exitCode: 12, message, restartCount: 1 });
  return { dataDir, undo };
}

test('a first certificate the data directory did not take: the status says so and what to do, and doing it pairs the connector once more', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'unsaved');
  const api = connectors(kc);
  const core = kc.makeApiClient(CoreV1Api);
  const connectorId = `${namespace}.edge`;
  await api.create(namespace, {
    metadata: { name: 'edge', namespace },
    spec: { connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] } },
  });
  const first = await eventually(
    () => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' }),
    { description: 'a token Secret', timeoutMs: 30_000 },
  );

  const { dataDir, undo } = await unsavedPairing(t, namespace);
  t.is((await env.admin.getConnector(connectorId)).state, 'enrolling', 'paired, the token spent');

  const diagnosed = await eventually(
    async () => {
      const c = await api.get(namespace, 'edge');
      return c.status?.diagnosis?.evidence?.some((e) => e.includes('IDENTITY_PERSIST_FAILED'))
        ? c
        : undefined;
    },
    { description: "a diagnosis naming the agent's IDENTITY_PERSIST_FAILED", timeoutMs: 30_000 },
  ).catch(async (error: Error) => {
    const c = await api.get(namespace, 'edge');
    throw new Error(`${error.message}; status ${JSON.stringify(c.status)}`);
  });
  const diagnosis = diagnosed.status?.diagnosis;
  t.is(diagnosis?.failureClass, 'FirstBootBootstrap');
  t.regex(diagnosis?.reason ?? '', /did not take the certificate/);
  t.regex(diagnosis?.nextStep ?? '', /make the data directory writable/);
  t.regex(diagnosis?.nextStep ?? '', /ENROLLMENT_TOKEN_MISSING/);
  t.regex(diagnosis?.nextStep ?? '', /mints a fresh token/);
  t.is(diagnosed.status?.recovery, undefined);
  // The spent token's Secret is gone, as the next step says: the agent's "same token" is not there.
  await eventually(
    async () =>
      (await core
        .readNamespacedSecret({ namespace, name: 'edge-enrollment-token' })
        .catch(() => undefined)) === undefined,
    { description: 'the spent token Secret deleted', timeoutMs: 30_000 },
  );

  // Following it: the directory takes writes again, the pod restarts and finds no token.
  await undo.run?.();
  const restarted = await env.runAgent(namespace, 'edge', dataDir);
  const missing = await restarted.agent.done;
  await restarted.stop();
  t.is(missing.failure?.code, 'ENROLLMENT_TOKEN_MISSING', JSON.stringify(missing.failure));
  await recordAgentExit(kc, namespace, 'edge-0', {
    exitCode: missing.exitCode,
    message: await readFile(restarted.terminationLog, 'utf8'),
    restartCount: 2,
  });
  const fresh = await eventually(
    () => core.readNamespacedSecret({ namespace, name: 'edge-enrollment-token' }).catch(() => undefined),
    { description: 'the operator mints a fresh token', timeoutMs: 30_000 },
  );
  t.not(fresh.metadata?.uid, first.metadata?.uid);
  const last = await env.runAgent(namespace, 'edge', dataDir);
  t.teardown(() => last.stop());
  await eventually(
    async () => {
      const c = await api.get(namespace, 'edge');
      return c.status?.phase === 'Online' && c.status.enrollment?.retired ? c : undefined;
    },
    { description: 'Online and retired', timeoutMs: 60_000 },
  );
  const audit = await env.admin.audit({ connectorId, limit: 1000 });
  t.is(audit.filter((e) => e.type === 'token.minted').length, 2, 'one fresh token, no more');
  t.is(audit.filter((e) => e.type === 'endpoint.enrolled').length, 2, 'paired once more');
});

const SECRET = 'edge-enrollment-token';

test('a recovery whose agent paired but could not save the certificate: the status says it paired, the token is spent, and what to do', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'rnotsaved');
  const api = connectors(kc);
  const core = kc.makeApiClient(CoreV1Api);
  const connectorId = `${namespace}.edge`;
  await api.create(namespace, {
    metadata: { name: 'edge', namespace },
    spec: {
      connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] },
      recovery: { validateRestart: false },
      enrollment: { tokenTTL: '5m' },
    },
  });
  await eventually(() => core.readNamespacedSecret({ namespace, name: SECRET }), { description: 'token' });
  const first = await env.runAgent(namespace, 'edge');
  await eventually(
    () =>
      api.get(namespace, 'edge').then((c) => c.status?.phase === 'Online' && c.status.enrollment?.retired),
    { description: 'paired and online' },
  );
  await first.stop();
  await eventually(() => api.get(namespace, 'edge').then((c) => c.status?.controlPlaneState === 'offline'), {
    description: 'offline',
  });
  await api.patchSpec(namespace, 'edge', { spec: { recovery: { requestId: 'r1' } } });
  await eventually(
    () => api.get(namespace, 'edge').then((c) => c.status?.recovery?.step === 'AwaitingOnline'),
    { description: 'the recovery waits for the pairing', timeoutMs: 60_000 },
  );

  // The recovered pod's data directory (the identity lost) takes the key, not the certificate.
  const { dataDir, undo } = await unsavedPairing(t, namespace);
  t.is((await env.admin.getConnector(connectorId)).state, 'enrolling', 'paired with the recovery token');

  const ended = await eventually(
    () => api.get(namespace, 'edge').then((c) => (c.status?.recovery?.step === 'Failed' ? c : undefined)),
    { description: 'the recovery ends', timeoutMs: 30_000 },
  ).catch(async (error: Error) => {
    const c = await api.get(namespace, 'edge');
    throw new Error(`${error.message}; status ${JSON.stringify(c.status)}`);
  });
  // Before, "... stopped with exit code 12 (IDENTITY_PERSIST_FAILED: ...) instead of pairing", and no
  // diagnosis at all.
  const reason = ended.status?.recovery?.reason ?? '';
  t.notRegex(reason, /instead of pairing/);
  t.regex(
    reason,
    /^the agent in pod edge-0 paired with this recovery's token at \S+ \(certificate serial \w+\), then stopped with exit code 12 \(.*IDENTITY_PERSIST_FAILED/,
  );
  t.regex(reason, /the token is spent/);
  t.regex(reason, /Make the data directory writable .*then set a new spec\.recovery\.requestId/);
  const diagnosed = await eventually(
    () =>
      api.get(namespace, 'edge').then((c) => (c.status?.diagnosis?.reason?.includes('r1') ? c : undefined)),
    { description: 'a diagnosis of the unsaved certificate', timeoutMs: 30_000 },
  ).catch(async (error: Error) => {
    const c = await api.get(namespace, 'edge');
    throw new Error(`${error.message}; status ${JSON.stringify(c.status)}`);
  });
  t.is(diagnosed.status?.diagnosis?.failureClass, 'IdentityLoss');
  t.regex(
    diagnosed.status?.diagnosis?.reason ?? '',
    /guided recovery r1 paired the connector at .*did not take the certificate/,
  );
  t.regex(diagnosed.status?.diagnosis?.nextStep ?? '', /^make the data directory writable/);
  // The spent token went with the attempt.
  await eventually(
    async () =>
      (await core.readNamespacedSecret({ namespace, name: SECRET }).catch(() => undefined)) === undefined,
    { description: 'the spent recovery token Secret deleted', timeoutMs: 30_000 },
  );

  // Following it: the directory takes files again, a new request pairs once with the key kept there.
  await undo.run?.();
  const keyBefore = await readFile(join(dataDir, 'identity', 'key.pem'), 'utf8');
  await api.patchSpec(namespace, 'edge', { spec: { recovery: { requestId: 'r2' } } });
  await eventually(
    () =>
      api
        .get(namespace, 'edge')
        .then((c) => c.status?.recovery?.requestId === 'r2' && c.status.recovery.step === 'AwaitingOnline'),
    { description: 'the new recovery waits for the pairing', timeoutMs: 60_000 },
  );
  const last = await env.runAgent(namespace, 'edge', dataDir);
  t.teardown(() => last.stop());
  const done = await eventually(
    () => api.get(namespace, 'edge').then((c) => (c.status?.recovery?.step === 'Completed' ? c : undefined)),
    { description: 'recovery r2 completed', timeoutMs: 60_000 },
  );
  t.is(done.status?.recovery?.outcome, 'Succeeded');
  t.is(await readFile(join(dataDir, 'identity', 'key.pem'), 'utf8'), keyBefore, 'the key kept on the claim');
  const audit = await env.admin.audit({ connectorId, limit: 1000 });
  t.is(audit.filter((e) => e.type === 'endpoint.enrolled').length, 3, 'first pairing, r1, r2: once each');
});
