// A stranger on the network against a healthy connector under recovery policy Automatic: thousands
// of forged enrollments (any token, the connector's guessable id) change nothing. The connector
// stays Online, no recovery starts, no token or certificate is revoked, and the operator writes
// nothing. Real API server, real control plane over HTTPS, the real agent heartbeating.
import { request } from 'node:https';
import { EventsV1Api } from '@kubernetes/client-node';
import test from 'ava';
import { createCsrPem, generateKeyPairPem } from '../../src/lib/pki.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import {
  connectors,
  type OperatorEnvironment,
  pairOnlineUnderAutomatic,
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

/** POST /v1/enroll as anyone on the network would: no client certificate, a made-up token. */
function forgedEnroll(body: string): Promise<number> {
  const url = new URL('/v1/enroll', env.controlPlane.url);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ca: env.controlPlane.caPem,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('thousands of forged enrollments against an Online connector under Automatic change nothing', async (t) => {
  const { kc } = cluster();
  const namespace = await createTestNamespace(kc, 'forged');
  const api = connectors(kc);
  const pod = await pairOnlineUnderAutomatic(env, namespace, 'edge');
  t.teardown(() => pod.stop());
  const connectorId = `${namespace}.edge`;
  const before = await env.admin.getConnector(connectorId);
  t.is(before.state, 'online');

  // The forger: a well-formed request with a valid CSR for the id, and tokens of every shape.
  const key = await generateKeyPairPem('ec-p256');
  const csrPem = createCsrPem(key.privateKeyPem, connectorId);
  const tokens = ['x', '', 'vpe_0000000000000000_forged', `vpe_${'f'.repeat(16)}_${'A'.repeat(43)}`];
  const statuses = new Map<number, number>();
  const FORGERIES = 2_000;
  let sent = 0;
  const worker = async () => {
    while (sent < FORGERIES) {
      const n = sent++;
      const body = JSON.stringify({ connectorId, token: tokens[n % tokens.length], csrPem });
      const status = await forgedEnroll(body);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  t.false(statuses.has(201), `no forged enrollment succeeded (${JSON.stringify([...statuses])})`);

  // Give the operator time to react if anything had changed (its resync and follower are fast here).
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const after = await env.admin.getConnector(connectorId);
  t.is(after.state, 'online', 'the connector is still online');
  t.is(after.certificate?.serial, before.certificate?.serial, 'the working certificate is not revoked');
  t.is(after.revision, before.revision, 'nothing about the record changed, so no follower was woken');
  t.is(after.lastEnrollmentFailure, before.lastEnrollmentFailure);
  const audit = await env.admin.audit({ connectorId, limit: 1000 });
  t.false(
    audit.some((e) => e.type === 'recovery.started' || e.type === 'token.revoked'),
    'no recovery started and no token revoked',
  );
  const c: Connector = await api.get(namespace, 'edge');
  t.is(c.status?.phase, 'Online');
  t.is(c.status?.recovery, undefined, 'no recovery in the Connector status');
  t.is(c.status?.diagnosis, undefined);
  t.is(c.status?.identity?.certificateSerial, before.certificate?.serial);
  const events = await kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
  const reasons = events.items.filter((e) => e.regarding?.name === 'edge').map((e) => e.reason);
  t.false(
    reasons.some((r) => r?.startsWith('Recovery')),
    `no recovery Event (${reasons.join(', ')})`,
  );
});
