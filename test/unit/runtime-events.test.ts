// The Event recorder's pure parts: the secret filter that is the last line of defence, the
// per-object rate limiter, note truncation, and the promise that record() never throws; and, against a
// stand-in events API, that phase and outcome Events pass the rate limit and steps beyond it are folded.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import test, { type ExecutionContext } from 'ava';
import { FakeClock } from '../../src/lib/clock.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { PerKeyRateLimiter } from '../../src/lib/rate-limiter.ts';
import { storagePosture } from '../../src/operator/reconcile/storage-posture.ts';
import { transitionEvents } from '../../src/operator/reconcile/transition-events.ts';
import { EventRecorder, FOLDED_REASON, truncateUtf8 } from '../../src/operator/runtime/events.ts';
import { createOperatorMetrics } from '../../src/operator/runtime/metrics.ts';
import { findSecretPattern, redactSecretPatterns } from '../../src/operator/runtime/secret-patterns.ts';
import { selfSignedCertificate } from '../helpers/certificates.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';

function enrollmentToken(): string {
  return `vpe_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`;
}

const ecKeyPem = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  .privateKey.export({ format: 'pem', type: 'pkcs8' })
  .toString();
const ecSec1Pem = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  .privateKey.export({ format: 'pem', type: 'sec1' })
  .toString();

test('an enrollment token is recognised alone, inside a sentence and at the end of a line', (t) => {
  const token = enrollmentToken();
  t.is(token.length, 4 + 16 + 1 + 43);
  t.is(findSecretPattern(token), 'enrollment-token');
  t.is(findSecretPattern(`minted ${token} for connector a`), 'enrollment-token');
  t.is(findSecretPattern(`token=${token}\n`), 'enrollment-token');
});

test('PEM private keys of every flavour are recognised; certificates and public keys are not', (t) => {
  t.is(findSecretPattern(ecKeyPem), 'private-key');
  t.is(findSecretPattern(ecSec1Pem), 'private-key');
  t.is(findSecretPattern('-----BEGIN RSA PRIVATE KEY-----\nMIIE...'), 'private-key');
  t.is(findSecretPattern('-----BEGIN ENCRYPTED PRIVATE KEY-----'), 'private-key');
  t.is(findSecretPattern('-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----'), undefined);
  t.is(findSecretPattern('-----BEGIN PUBLIC KEY-----\nMFkw...\n-----END PUBLIC KEY-----'), undefined);
});

test('ordinary operator messages, token ids and malformed tokens are not flagged', (t) => {
  const id = randomBytes(8).toString('hex');
  t.is(findSecretPattern('Scaled StatefulSet demo to 0 replicas'), undefined);
  t.is(findSecretPattern(`revoked token ${id}`), undefined);
  t.is(findSecretPattern(`vpe_${id}_tooShort`), undefined);
  t.is(findSecretPattern(`vpe_${'G'.repeat(16)}_${'a'.repeat(43)}`), undefined, 'the id must be hex');
  t.is(findSecretPattern('secret ns/enrollment-token-demo created'), undefined);
});

test('redaction removes tokens and whole key blocks, even a key block cut off before its END line', (t) => {
  const token = enrollmentToken();
  const text = `token ${token} and key\n${ecKeyPem}\nafter`;
  const redacted = redactSecretPatterns(text);
  assertNoSecrets(t, 'redacted text', redacted, [token, ecKeyPem]);
  t.true(redacted.includes('vpe_[REDACTED]'));
  t.true(redacted.includes('[REDACTED PRIVATE KEY]'));
  t.true(redacted.endsWith('after'));
  const cut = ecKeyPem.slice(0, ecKeyPem.length - 40);
  assertNoSecrets(t, 'redacted cut key', redactSecretPatterns(`x ${cut}`), [ecKeyPem]);
  t.is(findSecretPattern(redacted), undefined);
});

test('the rate limiter allows a burst per key, then one write per refill period', (t) => {
  const clock = new FakeClock();
  const limiter = new PerKeyRateLimiter({ burst: 2, refillEveryMs: 1000, clock, maxKeys: 100 });
  t.true(limiter.tryTake('a'));
  t.true(limiter.tryTake('a'));
  t.false(limiter.tryTake('a'), 'burst used up');
  t.true(limiter.tryTake('b'), 'another object has its own bucket');
  clock.advance(999);
  t.false(limiter.tryTake('a'), 'not yet refilled');
  clock.advance(1);
  t.true(limiter.tryTake('a'), 'one token after one refill period');
  t.false(limiter.tryTake('a'));
  clock.advance(60_000);
  t.true(limiter.tryTake('a'));
  t.true(limiter.tryTake('a'));
  t.false(limiter.tryTake('a'), 'refill never exceeds the burst');
});

test('the rate limiter forgets the least recently used keys beyond its bound', (t) => {
  const clock = new FakeClock();
  const limiter = new PerKeyRateLimiter({ burst: 1, refillEveryMs: 1_000_000, clock, maxKeys: 2 });
  t.true(limiter.tryTake('a'));
  t.true(limiter.tryTake('b'));
  t.false(limiter.tryTake('a'));
  t.true(limiter.tryTake('c'), 'c evicts b, the least recently used');
  t.true(limiter.tryTake('b'), 'b was forgotten, so it starts with a full bucket');
});

test('notes are cut to the byte limit without splitting a character', (t) => {
  t.is(truncateUtf8('short', 10), 'short');
  const cut = truncateUtf8('é'.repeat(100), 11);
  t.true(Buffer.byteLength(cut) <= 11);
  t.true(cut.endsWith('...'));
  t.false(cut.includes('\uFFFD'));
  const emoji = truncateUtf8('😀'.repeat(10), 10);
  t.true(Buffer.byteLength(emoji) <= 10);
  t.false(emoji.includes('\uFFFD'));
});

test('record() never throws: an unreachable API server is logged and counted, and a secret note never reaches the log', async (t) => {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'nowhere', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'nobody', token: 'not-a-real-credential' }],
    contexts: [{ name: 'nowhere', cluster: 'nowhere', user: 'nobody' }],
    currentContext: 'nowhere',
  });
  const logs = captureLogs();
  const metrics = createOperatorMetrics();
  const recorder = new EventRecorder({ kc, logger: logs.logger, identity: 'operator-0_abc', metrics });
  const subject = { apiVersion: 'v1', kind: 'ConfigMap', name: 'demo', namespace: 'default', uid: 'u-1' };
  const token = enrollmentToken();

  await t.notThrowsAsync(() =>
    recorder.record(subject, { type: 'Normal', reason: 'Tested', action: 'Test', note: 'plain note' }),
  );
  await t.notThrowsAsync(() =>
    recorder.record(subject, { type: 'Warning', reason: 'Leaky', action: 'Test', note: `oops ${token}` }),
  );

  const suppressed = await metrics.eventsSuppressed.get();
  const byReason = Object.fromEntries(suppressed.values.map((v) => [v.labels.reason, v.value]));
  t.is(byReason.failed, 2, 'both writes failed and were counted');
  t.is(byReason.redacted, 1, 'the secret note was redacted before the write');
  t.true(logs.records().some((r) => r.msg === 'recording an event failed' && r.reason === 'Tested'));
  t.true(
    logs
      .records()
      .some((r) => String(r.msg).includes('matched a secret pattern') && r.pattern === 'enrollment-token'),
  );
  assertNoSecrets(t, 'recorder logs', logs.text(), [token]);
});

// --- priority and folding, against a stand-in events API that records every request ---------------

interface EventsRequest {
  method: string;
  body: { reason?: string; note?: string; series?: { count: number } };
}

/** A local HTTPS server answering the events.k8s.io calls the recorder makes, and a KubeConfig for it. */
async function fakeEventsApi(t: ExecutionContext): Promise<{ kc: KubeConfig; requests: EventsRequest[] }> {
  const requests: EventsRequest[] = [];
  const { certPem, keyPem } = await selfSignedCertificate({ sanIps: ['127.0.0.1'] });
  const server = createServer({ cert: certPem, key: keyPem }, (req, res) => {
    let data = '';
    req.on('data', (chunk) => {
      data += chunk;
    });
    req.on('end', () => {
      const body = JSON.parse(data || '{}') as EventsRequest['body'];
      requests.push({ method: req.method ?? '', body });
      res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: 'events.k8s.io/v1', kind: 'Event', ...body }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as AddressInfo;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: 'fake',
        server: `https://127.0.0.1:${port}`,
        caData: Buffer.from(certPem).toString('base64'),
        skipTLSVerify: false,
      },
    ],
    users: [{ name: 'fake' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
    currentContext: 'fake',
  });
  return { kc, requests };
}

const connectorSubject = {
  apiVersion: 'vaultpam.io/v1alpha1',
  kind: 'Connector',
  name: 'edge',
  namespace: 'prod',
  uid: 'u-edge',
};
const step = (n: number) => ({
  type: 'Normal' as const,
  reason: 'RecoveryStep',
  action: 'Reconcile',
  note: `recovery r1: step ${n} done, now step ${n + 1}`,
});
const phaseOnline = {
  type: 'Normal' as const,
  reason: 'PhaseOnline',
  action: 'Reconcile',
  note: 'phase Recovering -> Online',
  priority: 'always' as const,
};
const created = (requests: EventsRequest[]) =>
  requests.filter((r) => r.method === 'POST').map((r) => r.body.reason);

test('phase and outcome Events are recorded after a burst of step Events has used up the rate limit', async (t) => {
  const { kc, requests } = await fakeEventsApi(t);
  const clock = new FakeClock();
  const recorder = new EventRecorder({ kc, logger: silentLogger(), identity: 'operator-0', clock });
  for (let n = 1; n <= 12; n++) await recorder.record(connectorSubject, step(n));
  t.is(created(requests).length, 10, 'the burst of 10 is used up by steps');
  await recorder.record(connectorSubject, {
    type: 'Normal',
    reason: 'RecoverySucceeded',
    action: 'Reconcile',
    note: 'recovery r1 completed: the connector is online',
    priority: 'always',
  });
  await recorder.record(connectorSubject, phaseOnline);
  const reasons = created(requests);
  t.true(reasons.includes('RecoverySucceeded'), 'the outcome is recorded');
  t.true(reasons.includes('PhaseOnline'), 'the final phase is recorded');
  // The two steps beyond the budget are not lost without trace: one summary names them.
  const summaries = requests.filter((r) => r.body.reason === FOLDED_REASON);
  t.is(summaries.length, 1);
  t.regex(summaries[0]?.body.note ?? '', /^2 event\(s\) .*RecoveryStep x2.*step 12 done/);
  t.true(
    reasons.indexOf(FOLDED_REASON) < reasons.indexOf('RecoverySucceeded'),
    'the summary comes before the outcome, as the folded steps happened before it',
  );
  // A repeat of the final phase (a flapping connector) is still written: a series update.
  await recorder.record(connectorSubject, phaseOnline);
  t.is(requests.at(-1)?.method, 'PATCH');
  t.is(requests.at(-1)?.body.series?.count, 2);
});

test('step Events beyond the rate limit stay bounded: folded into one summary per token, never one write each', async (t) => {
  const { kc, requests } = await fakeEventsApi(t);
  const clock = new FakeClock();
  const metrics = createOperatorMetrics();
  const recorder = new EventRecorder({ kc, logger: silentLogger(), identity: 'operator-0', clock, metrics });
  for (let n = 1; n <= 100; n++) await recorder.record(connectorSubject, step(n));
  t.is(requests.length, 10, '100 distinct steps in a burst: 10 writes');
  // One token comes back after 30 s: it publishes one summary of everything held back, and the
  // step recorded with it, instead of that step alone.
  clock.advance(30_000);
  await recorder.record(connectorSubject, step(101));
  t.is(requests.length, 11);
  t.is(requests[10]?.body.reason, FOLDED_REASON);
  t.regex(requests[10]?.body.note ?? '', /^91 event\(s\) .*RecoveryStep x91.*step 101 done/);
  // No token, nothing written; another object has its own budget.
  await recorder.record(connectorSubject, step(102));
  t.is(requests.length, 11);
  await recorder.record({ ...connectorSubject, name: 'other', uid: 'u-other' }, step(1));
  t.is(requests.length, 12);
  const suppressed = await metrics.eventsSuppressed.get();
  t.is(suppressed.values.find((v) => v.labels.reason === 'rate_limited')?.value, 91);
});

test('a phase change is planned with priority always (outcomes too: test/unit/operator-plan.test.ts)', (t) => {
  const [phase] = transitionEvents({
    previous: { phase: 'Recovering' },
    phase: 'Online',
    mode: 'Autonomous',
    posture: storagePosture({
      podSpec: undefined,
      fromPod: false,
      claims: new Map(),
      claimForTemplateVolume: () => undefined,
      identityClaimUID: undefined,
      ephemeralByChoice: false,
    }),
    diagnosis: undefined,
  });
  t.is(phase?.reason, 'PhaseOnline');
  t.is(phase?.priority, 'always');
});
