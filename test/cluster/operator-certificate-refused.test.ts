// A paired connector whose agent is refused by a server in front of the control plane (a proxy
// verifying client certificates against another CA: openssl s_server, TLS alert 48), under the
// operator. The StatefulSet passes no --give-up-after, so the agent retried for ever and the
// Connector showed only the offline record's "restore outbound HTTPS". Now the agent exits 14
// TLS_CLIENT_CERTIFICATE_REJECTED after --give-up-on-refusal-after; its exit goes in pod edge-0's
// status as a kubelet restarting it would write it (CrashLoopBackOff, the exit in lastState), and the
// Connector's diagnosis names the refusal, under the Automatic policy without starting a recovery.
// Once the proxy is fixed (the agent pointed at the control plane again), the restart connects.
// Real API server and controller-manager, the real control plane over HTTPS, the real agent.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import test from 'ava';
import { makeCa } from '../agent/fixtures.ts';
import { opensslVerifyingServer, serverCertificate } from '../agent/transport-servers.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import {
  connectors,
  type OperatorEnvironment,
  recordAgentExit,
  startOperatorEnvironment,
} from '../helpers/operator-env.ts';
import { runAgentFromSecret } from '../helpers/simulated-pod.ts';

const cluster = useCluster(test);
let env: OperatorEnvironment;

test.before(async () => {
  env = await startOperatorEnvironment(cluster());
  await env.startOperator();
});
test.after.always(async () => {
  await env?.stop();
});

test('an agent refused by a proxy trusting another CA exits, and the Connector says to check the proxy and the CA chain, no recovery; the restart after the fix connects', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'refused');
  const api = connectors(kc);
  await api.create(namespace, {
    metadata: { name: 'edge', namespace },
    spec: {
      connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] },
      recovery: { policy: 'Automatic' },
    },
  });
  await eventually(
    () => kc.makeApiClient(CoreV1Api).readNamespacedSecret({ namespace, name: 'edge-enrollment-token' }),
    { description: 'a token Secret', timeoutMs: 30_000 },
  );
  const dir = await mkdtemp(join(tmpdir(), 'vaultpam-refused-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'data');
  const first = await env.runAgent(namespace, 'edge', dataDir);
  await eventually(
    () =>
      api.get(namespace, 'edge').then((c) => c.status?.phase === 'Online' && c.status.enrollment?.retired),
    { description: 'paired and online', timeoutMs: 60_000 },
  );
  await first.stop();

  // The proxy now in front: it verifies client certificates against another CA.
  const proxyCa = await makeCa('Terminating Proxy CA');
  const proxyCert = await serverCertificate(proxyCa);
  const port = await opensslVerifyingServer(
    t,
    { certPem: proxyCert.cert, keyPem: proxyCert.key },
    (await makeCa('Another Client CA')).certPem,
  );
  const refused = await runAgentFromSecret({
    kc,
    namespace,
    secretName: 'edge-enrollment-token',
    connectorId: `${namespace}.edge`,
    controlPlaneUrl: `https://127.0.0.1:${port}`,
    caPem: proxyCa.certPem,
    dataDir,
    giveUpOnRefusalAfterMs: 1_500,
  });
  // Before --give-up-on-refusal-after it never ended (no --give-up-after under the operator).
  const outcome = await Promise.race([
    refused.agent.done,
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 30_000).unref()),
  ]);
  if (!outcome) {
    await refused.stop();
    t.fail('the refused agent retried for 30 s without exiting');
    return;
  }
  await refused.stop();
  const message = await readFile(refused.terminationLog, 'utf8');
  t.is(outcome.exitCode, 14, message);
  t.is(outcome.failure?.code, 'TLS_CLIENT_CERTIFICATE_REJECTED');
  await recordAgentExit(kc, namespace, 'edge-0', { exitCode: 14, message, restartCount: 3 });

  const diagnosed = await eventually(
    async () => {
      const c = await api.get(namespace, 'edge');
      return c.status?.diagnosis?.evidence?.some((e) => e.includes('TLS_CLIENT_CERTIFICATE_REJECTED'))
        ? c
        : undefined;
    },
    { description: "a diagnosis naming the agent's TLS_CLIENT_CERTIFICATE_REJECTED", timeoutMs: 30_000 },
  ).catch(async (error: Error) => {
    const c = await api.get(namespace, 'edge');
    throw new Error(`${error.message}; status ${JSON.stringify(c.status)}`);
  });
  const diagnosis = diagnosed.status?.diagnosis;
  t.is(diagnosis?.failureClass, 'Reconnect');
  t.regex(diagnosis?.reason ?? '', /refused with an alert about the connector's certificate/);
  t.regex(diagnosis?.nextStep ?? '', /check the proxy and the CA chain/);
  t.notRegex(diagnosis?.nextStep ?? '', /restore outbound HTTPS/);
  t.true(
    (diagnosis?.evidence ?? []).some(
      (line) => line.includes('alert 48 (unknown ca)') && line.includes('restarts 3'),
    ),
    JSON.stringify(diagnosis?.evidence),
  );
  // Under Automatic, and a few passes later: no recovery starts for this.
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const later = await api.get(namespace, 'edge');
  t.is(later.status?.recovery, undefined, JSON.stringify(later.status?.recovery));
  t.is(later.status?.diagnosis?.failureClass, 'Reconnect');
  t.is(
    (await env.admin.getConnector(`${namespace}.edge`)).state,
    'offline',
    'the identity kept, nothing revoked',
  );

  // The proxy fixed: the kubelet's next restart connects with the same identity.
  const fixed = await env.runAgent(namespace, 'edge', dataDir);
  t.teardown(() => fixed.stop());
  await eventually(() => api.get(namespace, 'edge').then((c) => c.status?.phase === 'Online'), {
    description: 'Online again',
    timeoutMs: 60_000,
  });
});
