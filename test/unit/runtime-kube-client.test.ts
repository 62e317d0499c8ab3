// The operator's Kubernetes client where the real API server cannot be made to misbehave: a stand-in
// HTTPS server answers 429 with Retry-After, a proxy's error page that echoes the credential, and
// watch streams cut at odd places, garbled or silent. And the kubeconfig reader's decisions: what it
// serves, what it hands to client-node and why, and what it refuses with a clear error.
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import * as yaml from 'js-yaml';
import { writeError } from '../../src/operator/runtime/apply.ts';
import { KubeClient } from '../../src/operator/runtime/kube-client.ts';
import { fromKubeconfigFiles, fromKubeconfigText } from '../../src/operator/runtime/kube-config.ts';
import { KubeApiError, retryAfterMs } from '../../src/operator/runtime/kube-errors.ts';
import { endpointTransport } from '../../src/operator/runtime/kube-transport.ts';
import { RESOURCE_TYPES } from '../../src/operator/runtime/resources.ts';
import { selfSignedCertificate } from '../helpers/certificates.ts';
import { eventually } from '../helpers/eventually.ts';

const TOKEN = 'stand-in-bearer-token-0123456789';

/** A stand-in API server and a client for it with a bearer token; `requests` counts what arrived. */
async function standIn(
  t: ExecutionContext,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  options: { watchTimeoutMs?: number } = {},
): Promise<{ kube: KubeClient; requests: string[] }> {
  const { certPem, keyPem } = await selfSignedCertificate({ sanIps: ['127.0.0.1'] });
  const requests: string[] = [];
  const server = createServer({ cert: certPem, key: keyPem }, (req, res) => {
    requests.push(
      `${req.method} ${req.url} ${req.headers.authorization === `Bearer ${TOKEN}` ? 'authorized' : 'anonymous'}`,
    );
    handler(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const reading = fromKubeconfigText(
    JSON.stringify({
      clusters: [
        {
          name: 'c',
          cluster: {
            server: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
            'certificate-authority-data': Buffer.from(certPem).toString('base64'),
          },
        },
      ],
      users: [{ name: 'u', user: { token: TOKEN } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'c',
    }),
    'the stand-in kubeconfig',
    tmpdir(),
  );
  if (!('endpoint' in reading)) throw new Error('the stand-in kubeconfig needs no client-node');
  return { kube: new KubeClient(endpointTransport(reading.endpoint), options), requests };
}

test('a 429 carries its Retry-After and is temporary; the write error keeps it', async (t) => {
  const { kube } = await standIn(t, (_req, res) => {
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
    res.end(
      JSON.stringify({
        kind: 'Status',
        status: 'Failure',
        message: 'Too many requests, please try again later.',
        reason: 'TooManyRequests',
        code: 429,
      }),
    );
  });
  const error = await t.throwsAsync(() => kube.get(RESOURCE_TYPES.configMap, { namespace: 'a', name: 'b' }));
  t.true(error instanceof KubeApiError);
  t.like(error, {
    code: 429,
    temporary: true,
    retryAfterMs: 7000,
    message: 'Too many requests, please try again later.',
  });
  const write = writeError('server-side apply of ConfigMap a/b', error);
  t.true(write.temporary);
  t.is(write.details?.retryAfterMs, 7000);
  t.is(retryAfterMs('Wed, 02 Dec 2026 21:00:10 GMT', Date.parse('2026-12-02T21:00:00Z')), 10_000);
  t.is(retryAfterMs(undefined), undefined);
});

test('the observer hears each 429 with its Retry-After and each served answer, by verb and resource; not a 5xx', async (t) => {
  // The stand-in answers by path: a 429 (with Retry-After 3, as APF sends a number of seconds), a
  // 404, a 503 and a 200; a watch refused with 429 and one accepted.
  const { kube: plain } = await standIn(t, (req, res) => {
    const status = Number(/\/namespaces\/s(\d+)\//.exec(req.url ?? '')?.[1] ?? 200);
    res.writeHead(status, {
      'content-type': 'application/json',
      ...(status === 429 ? { 'retry-after': '3' } : {}),
    });
    res.end(
      JSON.stringify(
        status === 200 ? { kind: 'ConfigMap', metadata: { name: 'x' } } : { kind: 'Status', code: status },
      ),
    );
  });
  const heard: string[] = [];
  const kube = plain.withObserver({
    throttled: (request, retryAfterMs) =>
      heard.push(`429 ${request.verb} ${request.resource} ${retryAfterMs}`),
    served: (request, status) => heard.push(`served ${request.verb} ${request.resource} ${status}`),
  });
  const configMap = { namespace: 's429', name: 'x' };
  await t.throwsAsync(() => kube.get(RESOURCE_TYPES.configMap, configMap), { instanceOf: KubeApiError });
  await t.throwsAsync(() => kube.list(RESOURCE_TYPES.statefulSet, { namespace: 's429' }));
  await t.throwsAsync(() =>
    kube.patch(RESOURCE_TYPES.connector, configMap, {}, { patch: 'apply', subresource: 'status' }),
  );
  await t.throwsAsync(() =>
    kube.watch(RESOURCE_TYPES.pod, { namespace: 's429' }, { onEvent() {}, onEnd() {} }),
  );
  await t.throwsAsync(() => kube.delete(RESOURCE_TYPES.secret, { namespace: 's404', name: 'x' }), {
    message: /404|Not Found/,
  });
  await t.throwsAsync(() => kube.get(RESOURCE_TYPES.configMap, { namespace: 's503', name: 'x' }));
  await kube.create(RESOURCE_TYPES.event, { metadata: { namespace: 's200', name: 'x' } });
  await kube.request({ method: 'GET', path: '/api/v1/namespaces/s429/things' }).catch(() => undefined);
  t.deepEqual(heard, [
    '429 get configmaps 3000',
    '429 list statefulsets.apps 3000',
    '429 patch connectors.vaultpam.io 3000',
    '429 watch pods 3000',
    'served delete secrets 404',
    'served create events.events.k8s.io 200',
    '429 get  3000',
  ]);
  // The client it was derived from, shared with others, has no observer.
  await t.throwsAsync(() => plain.get(RESOURCE_TYPES.configMap, configMap));
  t.is(heard.length, 7);
});

test("an answer that is not a Status is quoted briefly, and never with the request's credential", async (t) => {
  const { kube, requests } = await standIn(t, (req, res) => {
    res.writeHead(502, { 'content-type': 'text/html' });
    res.end(`<html>bad gateway for ${req.headers.authorization}</html>\n<body>more</body>`);
  });
  const error = await t.throwsAsync(() => kube.list(RESOURCE_TYPES.pod, { namespace: 'a' }));
  t.like(error, { code: 502, temporary: true, body: undefined });
  t.is(error?.message, '502 Bad Gateway: <html>bad gateway for Bearer [REDACTED]</html>');
  t.deepEqual(requests, ['GET /api/v1/namespaces/a/pods authorized'], 'a 502 is not retried by the client');
});

test('a static token refused with 401 is not sent again: nothing it holds can have changed', async (t) => {
  const { kube, requests } = await standIn(t, (_req, res) => {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', message: 'Unauthorized', reason: 'Unauthorized', code: 401 }));
  });
  await t.throwsAsync(() => kube.get(RESOURCE_TYPES.secret, { namespace: 'a', name: 's' }), {
    instanceOf: KubeApiError,
    message: 'Unauthorized',
  });
  t.is(requests.length, 1);
});

/** A watch answer written in the pieces given, then left open (or ended when `end`). */
function watchAnswer(pieces: string[], end: boolean) {
  return (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    for (const piece of pieces) res.write(piece);
    if (end) res.end();
  };
}

const event = (type: string, name: string) =>
  JSON.stringify({ type, object: { kind: 'ConfigMap', metadata: { name, resourceVersion: '5' } } });

test('watch events split anywhere across chunks arrive whole and in order; the server closing it is a clean end', async (t) => {
  const stream = `${event('ADDED', 'a')}\n${event('MODIFIED', 'é-ü')}\n${event('BOOKMARK', '')}\n`;
  const bytes = Buffer.from(stream);
  // Cut inside a line, and inside the two bytes of an é.
  const inside = bytes.indexOf(Buffer.from('é')) + 1;
  const cut = [bytes.subarray(0, 7), bytes.subarray(7, inside), bytes.subarray(inside)];
  const { kube } = await standIn(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    for (const piece of cut) res.write(piece);
    res.end();
  });
  const seen: string[] = [];
  let ended: { error: Error | undefined } | undefined;
  await kube.watch(
    RESOURCE_TYPES.configMap,
    { namespace: 'a', resourceVersion: '4' },
    {
      onEvent: (type, object) =>
        seen.push(`${type} ${(object as { metadata: { name: string } }).metadata.name}`),
      onEnd: (error) => {
        ended = { error };
      },
    },
  );
  await eventually(() => ended, { description: 'the end' });
  t.deepEqual(seen, ['ADDED a', 'MODIFIED é-ü', 'BOOKMARK ']);
  t.is(ended?.error, undefined);
});

test('a watch line that is not JSON ends the watch with BAD_RESPONSE; silence ends it with a TimeoutError', async (t) => {
  const garbled = await standIn(
    t,
    watchAnswer([`${event('ADDED', 'a')}\n`, 'not json\n', `${event('ADDED', 'b')}\n`], false),
  );
  const seen: string[] = [];
  const endings: Array<Error | undefined> = [];
  await garbled.kube.watch(
    RESOURCE_TYPES.configMap,
    {},
    { onEvent: (type) => seen.push(type), onEnd: (error) => void endings.push(error) },
  );
  await eventually(() => endings.length === 1, { description: 'the garbled watch ends' });
  t.deepEqual(seen, ['ADDED'], 'nothing after the garbled line is believed');
  t.is((endings[0] as { code?: string }).code, 'BAD_RESPONSE');

  const silent = await standIn(t, watchAnswer([`${event('ADDED', 'a')}\n`], false), { watchTimeoutMs: 300 });
  const silentEndings: Array<Error | undefined> = [];
  await silent.kube.watch(
    RESOURCE_TYPES.configMap,
    {},
    { onEvent: () => {}, onEnd: (error) => void silentEndings.push(error) },
  );
  await eventually(() => silentEndings.length === 1, { description: 'the silent watch ends' });
  t.is(silentEndings[0]?.name, 'TimeoutError');
  t.is(endings.length, 1, 'a watch ends once');
});

test('a refused watch rejects with the KubeApiError instead of opening', async (t) => {
  const { kube } = await standIn(t, (_req, res) => {
    res.writeHead(403, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({ kind: 'Status', message: 'configmaps is forbidden', reason: 'Forbidden', code: 403 }),
    );
  });
  await t.throwsAsync(
    () => kube.watch(RESOURCE_TYPES.configMap, {}, { onEvent: () => t.fail(), onEnd: () => t.fail() }),
    { instanceOf: KubeApiError, message: 'configmaps is forbidden' },
  );
});

// --- the kubeconfig reader -------------------------------------------------------------------------

const kubeconfig = (cluster: object, user: object, extra: object = {}) =>
  JSON.stringify({
    clusters: [{ name: 'c', cluster }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'c', context: { cluster: 'c', user: 'u', namespace: 'team' } }],
    'current-context': 'c',
    ...extra,
  });
const read = (text: string) => fromKubeconfigText(text, 'test kubeconfig', tmpdir());
const server = { server: 'https://k8s.example:6443' };

test('what only client-node serves is handed to it, with the reason', (t) => {
  const cases: Array<[object, object, RegExp]> = [
    [
      server,
      { exec: { command: 'aws', apiVersion: 'client.authentication.k8s.io/v1' } },
      /exec credential plugin/,
    ],
    [server, { 'auth-provider': { name: 'oidc' } }, /auth-provider/],
    [{ ...server, 'proxy-url': 'http://proxy:3128' }, { token: 'x' }, /proxy/],
    [server, { username: 'admin', password: 'secret' }, /basic authentication/],
    [server, { token: 'x', as: 'someone' }, /impersonation/],
  ];
  for (const [cluster, user, reason] of cases) {
    const reading = read(kubeconfig(cluster, user));
    t.true('clientNode' in reading, JSON.stringify(user));
    if ('clientNode' in reading) {
      t.regex(reading.clientNode.reason, reason);
      t.is(reading.clientNode.context, 'c');
    }
  }
  const plain = read(kubeconfig(server, { token: 'x' }));
  t.true('endpoint' in plain);
  if ('endpoint' in plain) {
    t.deepEqual(plain.endpoint.credential, { kind: 'token', token: 'x' });
    t.is(plain.endpoint.namespace, 'team');
  }
});

test('a kubeconfig the client cannot use is refused with what is wrong, never a credential', (t) => {
  const cases: Array<[string, RegExp]> = [
    [kubeconfig({ server: 'http://k8s.example:8080' }, {}), /must be https/],
    [kubeconfig(server, { 'client-certificate-data': 'AA==' }), /client certificate but no key/],
    [kubeconfig({}, {}), /has no server/],
    [kubeconfig(server, {}, { 'current-context': '' }), /no current-context/],
    [
      kubeconfig(
        server,
        { token: 'x' },
        { contexts: [{ name: 'c', context: { cluster: 'other', user: 'u' } }] },
      ),
      /no cluster named "other"/,
    ],
    ['clusters: {', /not YAML/],
    ['- a list', /not a kubeconfig/],
    [
      kubeconfig(server, { token: 'secret-value', 'client-key': '/nonexistent/key' }),
      /cannot read \/nonexistent\/key: ENOENT/,
    ],
  ];
  for (const [text, message] of cases) {
    const error = t.throws(() => read(text), { message }, text);
    t.false(error?.message.includes('secret-value'));
  }
});

test('kubeconfig files merge as kubectl merges them: the first to set a name or the current-context wins', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kubeconfigs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const first = join(dir, 'first');
  const second = join(dir, 'second');
  await writeFile(
    first,
    yaml.dump({
      clusters: [{ name: 'shared', cluster: { server: 'https://first.example' } }],
      users: [{ name: 'u', user: { tokenFile: 'token' } }],
      contexts: [{ name: 'one', context: { cluster: 'shared', user: 'u' } }],
      'current-context': 'one',
    }),
  );
  await writeFile(
    second,
    yaml.dump({
      clusters: [
        { name: 'shared', cluster: { server: 'https://second.example' } },
        { name: 'own', cluster: { server: 'https://own.example' } },
      ],
      contexts: [{ name: 'two', context: { cluster: 'own', user: 'u' } }],
      'current-context': 'two',
    }),
  );
  const merged = fromKubeconfigFiles([first, second]);
  t.true('endpoint' in merged);
  if (!('endpoint' in merged)) return;
  t.is(merged.endpoint.server.host, 'first.example');
  t.deepEqual(
    merged.endpoint.credential,
    { kind: 'tokenFile', path: join(dir, 'token') },
    'relative to its file',
  );
  const named = fromKubeconfigFiles([first, second], 'two');
  t.is('endpoint' in named ? named.endpoint.server.host : '', 'own.example');
});
