// The operator's listeners as a caller with no credential meets them, over real sockets on loopback:
// the HTTPS /metrics server's refusals (never the metrics), a flood of made-up tokens from one
// address while Prometheus scrapes from another, half-sent requests (slowloris) on both listeners,
// a stop that a half-sent request does not hold, and the certificate kept current on a FakeClock.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import { FakeClock } from '../../src/lib/clock.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { generateKeyPairPem, issueCertificatePem } from '../../src/lib/pki.ts';
import type { KubeClient, KubeRequest } from '../../src/operator/runtime/kube-client.ts';
import { createOperatorMetrics } from '../../src/operator/runtime/metrics.ts';
import { type MetricsAccess, MetricsAuthorizer } from '../../src/operator/runtime/metrics-auth.ts';
import {
  CERT_DIR_RELOAD_MS,
  keepCertificateCurrent,
  metricsDnsNames,
  SELF_SIGNED_LIFETIME_MS,
  SELF_SIGNED_RENEW_BEFORE_MS,
  type ServingCertificate,
  selfSignedServingCertificate,
} from '../../src/operator/runtime/metrics-tls.ts';
import {
  type BoundedServer,
  createMetricsServer,
  createRuntimeServer,
  LISTENER_LIMITS,
  type ListenerLimits,
  listenerTotal,
  PROBE_LISTENER_LIMITS,
} from '../../src/operator/runtime/server.ts';
import { eventually } from '../helpers/eventually.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';

const tls = await selfSignedServingCertificate(metricsDnsNames(undefined));

/** A stand-in API server: tokens starting with "good" are users allowed to get /metrics. */
function fakeKc(latencyMs = 0) {
  const kc = {
    async request(request: KubeRequest) {
      if (latencyMs) await new Promise((resolve) => setTimeout(resolve, latencyMs));
      const body = request.body as { spec: { token?: string; user?: string } };
      if (request.path.endsWith('/tokenreviews')) {
        const ok = (body.spec.token ?? '').startsWith('good');
        return { status: { authenticated: ok, ...(ok ? { user: { username: 'prometheus' } } : {}) } };
      }
      return { status: { allowed: body.spec.user === 'prometheus' } };
    },
  } as unknown as KubeClient;
  return kc;
}

async function listen(t: ExecutionContext, bounded: BoundedServer): Promise<number> {
  await new Promise<void>((resolve) => bounded.server.listen(0, '127.0.0.1', resolve));
  t.teardown(bounded.close);
  return (bounded.server.address() as AddressInfo).port;
}

async function metricsServer(
  t: ExecutionContext,
  authorizer: Pick<MetricsAuthorizer, 'authorize'>,
  limits?: Partial<ListenerLimits>,
) {
  const metrics = createOperatorMetrics();
  metrics.setLeaderSource(() => true);
  const bounded = createMetricsServer({
    metrics,
    logger: silentLogger(),
    auth: { authorizer, tls },
    ...(limits ? { limits } : {}),
  });
  const port = await listen(t, bounded);
  return { bounded, port, url: `https://127.0.0.1:${port}` };
}

/** Resolves when `socket` closes, with the milliseconds it took from `since`. */
const closedAfter = (socket: Socket, since: number) =>
  new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - since)));

/** A TLS connection from `localAddress` that completed its handshake and sent half a request. */
function halfSent(port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve) => {
    const options = { port, host: '127.0.0.1', localAddress, rejectUnauthorized: false };
    const socket = tlsConnect(options, () => {
      socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
      resolve(socket);
    });
    socket.on('error', () => resolve(socket));
  });
}

test('every refusal of the HTTPS /metrics server is answered without a metric: 401, 403, 429, 503', async (t) => {
  const answers: Record<string, MetricsAccess> = {
    none: { decision: 'unauthenticated', reason: 'the API server did not authenticate the token' },
    stranger: { decision: 'forbidden', user: 'system:serviceaccount:other:curious', reason: 'no rule' },
    busy: { decision: 'busy' },
    down: { decision: 'unavailable', reason: 'the TokenReview failed: connect ECONNREFUSED' },
    prometheus: { decision: 'allowed', user: 'prometheus' },
  };
  const { url } = await metricsServer(t, {
    authorize: async (header) => answers[(header ?? '').replace('Bearer ', '')] ?? { decision: 'busy' },
  });
  const expected: Array<[string, number, string | undefined]> = [
    ['none', 401, undefined],
    ['stranger', 403, undefined],
    ['busy', 429, '1'],
    ['down', 503, '1'],
  ];
  for (const [token, status, retryAfter] of expected) {
    for (const path of ['/metrics', '/metrics?name[]=vaultpam_operator_leader', '/metrics?name[]=nope']) {
      const answer = await scrapeMetrics({ url }, { token, path });
      t.is(answer.status, status, `${token} ${path}`);
      t.is(answer.headers['retry-after'], retryAfter);
      t.false(answer.text.includes('vaultpam_operator_'), `${token} ${path}: no metric`);
      t.false(answer.text.includes('# TYPE'), `${token} ${path}: no metric`);
    }
  }
  const allowed = await scrapeMetrics({ url }, { token: 'prometheus' });
  t.is(allowed.status, 200);
  t.true(allowed.text.includes('vaultpam_operator_leader 1'));
});

// Before: the flood's made-up tokens (1,024 of them) pushed out Prometheus' decision, and its
// scrapes were answered 429 while the operator sent TokenReviews as fast as the flood came.
test('a flood of made-up tokens from one address neither keeps Prometheus out nor turns into a flood of reviews', async (t) => {
  t.timeout(180_000);
  const kc = fakeKc(5);
  const authorizer = new MetricsAuthorizer({ kc, logger: silentLogger() });
  // The attacker holds more connections than one address may: the bound refuses the rest.
  const { url, port } = await metricsServer(t, authorizer, { perAddress: 48 });
  const prometheus = () => scrapeMetrics({ url }, { token: 'good-prometheus' }).then((a) => a.status);
  t.is(await prometheus(), 200);
  const reviewsBefore = authorizer.reviews;
  const agent = new HttpsAgent({
    keepAlive: true,
    maxSockets: 32,
    rejectUnauthorized: false,
    localAddress: '127.0.0.2',
  });
  let stop = false;
  let sent = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const request = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          path: '/metrics',
          agent,
          headers: { authorization: `Bearer ${randomBytes(16).toString('hex')}` },
        },
        (response) => {
          response.resume();
          response.on('end', () => resolve());
        },
      );
      request.on('error', () => resolve());
      request.end();
    });
  const worker = async () => {
    while (!stop) {
      await one();
      sent += 1;
    }
  };
  const started = Date.now();
  const workers = Array.from({ length: 32 }, worker);
  const statuses: number[] = [];
  // Prometheus scrapes at least 10 times, and for as long as the flood takes to send 1,000 requests
  // (a loaded machine sends them slower: 1,615 in 10 scrapes beside busy loops, not a wide margin).
  for (let i = 0; i < 10 || sent <= 1000; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    statuses.push(await prometheus());
  }
  stop = true;
  await Promise.all(workers);
  agent.destroy();
  const seconds = (Date.now() - started) / 1000;
  const reviews = authorizer.reviews - reviewsBefore;
  t.log({ sent, reviews, seconds, statuses });
  t.true(sent > 1000, `the flood sent ${sent} requests`);
  t.deepEqual(statuses, Array(statuses.length).fill(200), 'Prometheus read every time');
  // One address: its burst, then one a second.
  t.true(reviews <= 5 + Math.ceil(seconds) + 1, `${reviews} reviews in ${seconds} s`);
});

test('one address holds at most its bound of connections on either listener; others still get in', async (t) => {
  const { port: metricsPort, url } = await metricsServer(t, {
    authorize: async () => ({ decision: 'allowed', user: 'prometheus' }),
  });
  const probes = createRuntimeServer({ health: { informers: () => [] }, logger: silentLogger() });
  const probePort = await listen(t, probes);
  // The probe listener has more room (the kubelet shares its node's address with the node's
  // hostNetwork pods); both count by the whole address.
  t.is(LISTENER_LIMITS.perAddress, 8);
  t.is(PROBE_LISTENER_LIMITS.perAddress, 32);
  for (const [name, port, bound, open] of [
    ['metrics', metricsPort, LISTENER_LIMITS.perAddress, (p: number) => halfSent(p, '127.0.0.3')],
    [
      'probes',
      probePort,
      PROBE_LISTENER_LIMITS.perAddress,
      (p: number) => rawTcp(p, '127.0.0.3', 'GET /healthz HTTP/1.1\r\nHost: x\r\n'),
    ],
  ] as const) {
    const held = await Promise.all(Array.from({ length: bound }, () => open(port)));
    t.teardown(() => {
      for (const socket of held) socket.destroy();
    });
    const past = await rawTcp(port, '127.0.0.3');
    await closedAfter(past, Date.now());
    t.true(
      held.every((socket) => !socket.destroyed),
      `${name}: the ${bound} within the bound are kept`,
    );
  }
  t.is((await scrapeMetrics({ url })).status, 200, 'another address reads');
  t.is((await fetch(`http://127.0.0.1:${probePort}/healthz`)).status, 200, 'kubelet probes');
});

function rawTcp(port: number, localAddress: string, text?: string): Promise<Socket> {
  return new Promise((resolve) => {
    const socket = netConnect({ port, host: '127.0.0.1', localAddress }, () => {
      if (text) socket.write(text);
      resolve(socket);
    });
    socket.on('error', () => resolve(socket));
  });
}

// Before: idle and half-sent connections stayed open (3,000 of them added about 183 MiB).
test('a connection that says nothing, or sends half a request, is closed at its deadline', async (t) => {
  const limits = { firstWordsMs: 1_000, requestMs: 2_000 };
  const { port } = await metricsServer(t, { authorize: async () => ({ decision: 'busy' }) }, limits);
  const probes = createRuntimeServer({
    health: { informers: () => [] },
    logger: silentLogger(),
    limits,
  });
  const probePort = await listen(t, probes);
  const started = Date.now();
  const sockets = [
    await rawTcp(port, '127.0.0.1'),
    await halfSent(port),
    await rawTcp(probePort, '127.0.0.1'),
    await rawTcp(probePort, '127.0.0.1', 'GET /healthz HTTP/1.1\r\nHost: x\r\n'),
  ];
  const times = await Promise.all(sockets.map((socket) => closedAfter(socket, started)));
  t.log(times);
  t.true(
    times.every((ms) => ms < 5_000),
    `all closed within 5 s: ${times.join(', ')} ms`,
  );
});

// Before: the operator's stop waited on server.close(), which waits for every connection: one
// half-sent request held it (and the pod's termination) for as long as its sender liked.
test('closing a listener cuts a half-sent request after the grace', async (t) => {
  const { bounded, port } = await metricsServer(t, { authorize: async () => ({ decision: 'busy' }) });
  const probes = createRuntimeServer({ health: { informers: () => [] }, logger: silentLogger() });
  const probePort = await listen(t, probes);
  const held = [await halfSent(port), await rawTcp(probePort, '127.0.0.1', 'GET /healthz HTTP/1.1\r\n')];
  const started = Date.now();
  const cut = held.map((socket) => closedAfter(socket, started));
  await Promise.all([bounded.close(), probes.close()]);
  const took = Date.now() - started;
  t.true(took >= 1_500 && took < 4_000, `closed after ${took} ms`);
  t.true((await Promise.all(cut)).every((ms) => ms < 4_000));
});

test('--metrics-cert-dir is read again every minute: a renewed pair is served, a broken one is not', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'metrics-tls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pair = async (cn: string): Promise<ServingCertificate> => {
    const keys = await generateKeyPairPem('ec-p256');
    const certPem = issueCertificatePem({
      issuerKeyPem: keys.privateKeyPem,
      subjectPublicKey: keys.publicKeyPem,
      subject: [{ shortName: 'CN', value: cn }],
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
      sanDnsNames: ['localhost'],
      extendedKeyUsage: ['serverAuth'],
    });
    return { certPem, keyPem: keys.privateKeyPem };
  };
  const write = async (certificate: ServingCertificate) => {
    await writeFile(join(dir, 'tls.crt'), certificate.certPem);
    await writeFile(join(dir, 'tls.key'), certificate.keyPem);
  };
  const first = await pair('first');
  await write(first);
  const clock = new FakeClock();
  const applied: ServingCertificate[] = [];
  const stop = keepCertificateCurrent({
    certDir: dir,
    dnsNames: [],
    current: first,
    logger: silentLogger(),
    clock,
    apply: (next) => applied.push(next),
  });
  t.teardown(stop);
  clock.advance(CERT_DIR_RELOAD_MS);
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.is(applied.length, 0, 'unchanged: nothing applied');
  const second = await pair('second');
  await write(second);
  await eventually(async () => {
    clock.advance(CERT_DIR_RELOAD_MS);
    await new Promise((resolve) => setTimeout(resolve, 50));
    return applied.length === 1;
  });
  t.is(applied[0]?.certPem, second.certPem);
  // A key that is not the certificate's (a Secret caught half-written) is not applied.
  await writeFile(join(dir, 'tls.key'), (await pair('third')).keyPem);
  for (let i = 0; i < 3; i += 1) {
    clock.advance(CERT_DIR_RELOAD_MS);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.is(applied.length, 1, 'the broken pair was not applied; the previous one is kept');
});

test('the self-signed certificate is renewed before its end, on the operator clock', async (t) => {
  const clock = new FakeClock();
  const current = await selfSignedServingCertificate(['localhost'], clock.now());
  const applied: ServingCertificate[] = [];
  const stop = keepCertificateCurrent({
    certDir: undefined,
    dnsNames: ['localhost'],
    current,
    logger: silentLogger(),
    clock,
    apply: (next) => applied.push(next),
  });
  t.teardown(stop);
  clock.advance(SELF_SIGNED_LIFETIME_MS - SELF_SIGNED_RENEW_BEFORE_MS - 60_000);
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.is(applied.length, 0, 'not yet due');
  clock.advance(60_000);
  await eventually(async () => applied.length === 1);
  const { X509Certificate } = await import('node:crypto');
  const renewed = new X509Certificate(applied[0]?.certPem ?? '');
  t.true(
    new Date(renewed.validTo).getTime() > clock.now().getTime() + SELF_SIGNED_LIFETIME_MS - 86_400_000,
    'a full lifetime from the renewal, on the operator clock',
  );
  t.is(clock.pendingTimers, 1, 'the next renewal is scheduled');
});

// A review: the probe listener's total (2,048) and the metrics listener's (256) ignored the
// process's open-file limit, so where it is 1,024 a caller filling the listeners would take the
// descriptors the operator's own API connections need before either bound was reached.
test('each listener holds at most a quarter of what the open-file limit leaves room for', (t) => {
  const limits = (soft: string) =>
    `Limit                     Soft Limit           Hard Limit           Units\nMax open files            ${soft}                 ${soft}                 files\n`;
  t.is(listenerTotal(PROBE_LISTENER_LIMITS.total, limits('1024')), Math.floor((1024 - 64) / 4));
  t.is(
    listenerTotal(LISTENER_LIMITS.total, limits('1024')),
    LISTENER_LIMITS.total > 240 ? 240 : LISTENER_LIMITS.total,
  );
  t.is(
    listenerTotal(PROBE_LISTENER_LIMITS.total, limits('1048576')),
    PROBE_LISTENER_LIMITS.total,
    'a generous limit leaves the bound',
  );
  t.is(listenerTotal(PROBE_LISTENER_LIMITS.total, limits('unlimited')), PROBE_LISTENER_LIMITS.total);
  t.is(listenerTotal(PROBE_LISTENER_LIMITS.total, undefined), PROBE_LISTENER_LIMITS.total, 'not Linux');
});
