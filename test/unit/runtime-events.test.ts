// The Event recorder's pure parts: the secret filter that is the last line of defence, the
// per-object rate limiter, note truncation, and the promise that record() never throws.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import test from 'ava';
import { FakeClock } from '../../src/lib/clock.ts';
import { PerKeyRateLimiter } from '../../src/lib/rate-limiter.ts';
import { EventRecorder, truncateUtf8 } from '../../src/operator/runtime/events.ts';
import { createOperatorMetrics } from '../../src/operator/runtime/metrics.ts';
import { findSecretPattern, redactSecretPatterns } from '../../src/operator/runtime/secret-patterns.ts';
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
