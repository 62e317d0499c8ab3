// ControlPlane and ClusterControlPlane resources without a cluster: which one a Connector names,
// what a check finds (Secret, CA, the whoami answer) and says in status, that nothing it publishes
// carries the credential, and how the registry checks, writes, wakes and resolves.
import type { V1ConfigMap, V1Secret } from '@kubernetes/client-node';
import test from 'ava';
import { FakeClock } from '../../src/lib/clock.ts';
import { CodedError, isCodedError } from '../../src/lib/errors.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import type { ControlPlaneResource, ControlPlaneStatus } from '../../src/operator/api/control-planes.ts';
import { defaultedSpec } from '../../src/operator/api/types.ts';
import type { CaConfigMapTarget } from '../../src/operator/control-plane/ca-watches.ts';
import {
  type CheckDeps,
  type ControlPlaneSettings,
  caBundleProblem,
  checkControlPlane,
} from '../../src/operator/control-plane/check.ts';
import { ControlPlaneConnections } from '../../src/operator/control-plane/connections.ts';
import {
  annotatedControlPlaneUrls,
  controlPlaneUrlIdentity,
  credentialUrlProblem,
} from '../../src/operator/control-plane/credential-url.ts';
import {
  ControlPlaneRegistry,
  NOT_READY_RECHECK_MS,
  READY_RECHECK_MS,
} from '../../src/operator/control-plane/registry.ts';
import {
  controlPlaneKey,
  controlPlaneKeyOf,
  controlPlaneStatus,
  LAST_CHECK_REFRESH_MS,
  referencedControlPlane,
} from '../../src/operator/control-plane/status.ts';
import { CA_BUNDLE_MAX_BYTES } from '../../src/operator/reconcile/config-map-budget.ts';
import { selfSignedCertificate } from '../helpers/certificates.ts';

const CREDENTIAL = 'cp-admin-credential-0123456789';
const NOW = new Date('2026-01-01T00:00:00Z');

const caPem = async () => (await selfSignedCertificate()).certPem;

/** A credential Secret, by default annotated for the URL of `spec` below (null: not annotated). */
const secret = (data: Record<string, string>, urls: string | null = 'https://cp.example'): V1Secret => ({
  metadata: {
    name: 'admin',
    ...(urls === null ? {} : { annotations: { 'vaultpam.io/control-plane-url': urls } }),
  },
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
});

function deps(
  overrides: Partial<CheckDeps> & {
    secrets?: Record<string, V1Secret>;
    configMaps?: Record<string, V1ConfigMap>;
  } = {},
) {
  const reads: string[] = [];
  const calls: ControlPlaneSettings[] = [];
  const result: CheckDeps = {
    readSecret: async (namespace, name) => {
      reads.push(`Secret ${namespace}/${name}`);
      return overrides.secrets?.[`${namespace}/${name}`];
    },
    readConfigMap: async (namespace, name) => {
      reads.push(`ConfigMap ${namespace}/${name}`);
      return overrides.configMaps?.[`${namespace}/${name}`];
    },
    whoami: async (settings) => {
      calls.push(settings);
    },
    ...overrides,
  };
  return { deps: result, reads, calls };
}

const spec = { url: 'https://cp.example', credentialSecretRef: { name: 'admin' } };

// ---- which control plane a Connector names ----

test('a ControlPlane is always the one in the Connector’s own namespace; a ClusterControlPlane has none', (t) => {
  const connector = (controlPlaneRef?: { kind?: 'ControlPlane' | 'ClusterControlPlane'; name: string }) =>
    defaultedSpec({
      metadata: { namespace: 'team-a', name: 'edge' },
      spec: { connector: { org: 'acme', endpointId: 'ep' }, ...(controlPlaneRef ? { controlPlaneRef } : {}) },
    });
  t.deepEqual(referencedControlPlane(connector({ name: 'prod' })), {
    kind: 'ControlPlane',
    namespace: 'team-a',
    name: 'prod',
  });
  t.deepEqual(referencedControlPlane(connector({ kind: 'ClusterControlPlane', name: 'shared' })), {
    kind: 'ClusterControlPlane',
    name: 'shared',
  });
  t.is(referencedControlPlane(connector()), undefined, 'no ref: the operator default');
  t.is(
    controlPlaneKey({ kind: 'ControlPlane', namespace: 'team-a', name: 'prod' }),
    'ControlPlane/team-a/prod',
  );
  t.is(
    controlPlaneKeyOf({
      metadata: { namespace: 'team-b' },
      spec: { controlPlaneRef: { name: 'prod' } },
    } as never),
    'ControlPlane/team-b/prod',
    'another namespace, another ControlPlane',
  );
  t.is(
    controlPlaneKeyOf({
      metadata: { namespace: 'team-b' },
      spec: { controlPlaneRef: { kind: 'ClusterControlPlane', name: 'shared' } },
    } as never),
    'ClusterControlPlane/shared',
  );
});

// ---- the check ----

test('Ready/Reachable: the Secret and CA are read by name in the right namespace, then whoami', async (t) => {
  const ca = await caPem();
  const {
    deps: d,
    reads,
    calls,
  } = deps({
    secrets: { 'team-a/admin': secret({ credential: `${CREDENTIAL}\n` }) },
    configMaps: { 'team-a/ca': { data: { 'ca.crt': ca } } },
  });
  const outcome = await checkControlPlane(d, {
    secretNamespace: 'team-a',
    spec: { ...spec, caConfigMapRef: { name: 'ca' } },
  });
  t.like(outcome, { status: 'True', reason: 'Reachable' });
  t.deepEqual(reads, ['Secret team-a/admin', 'ConfigMap team-a/ca']);
  t.deepEqual(calls, [{ url: 'https://cp.example', caPem: ca, credential: CREDENTIAL }]);
  t.deepEqual(outcome.settings, calls[0]);
  t.false(outcome.message.includes(CREDENTIAL));
});

test('every way a check fails is a reason and a message naming the object, and no call is made before', async (t) => {
  const ca = await caPem();
  const withSecret = { secrets: { 'ns/admin': secret({ credential: CREDENTIAL }) } };
  const cases: Array<[string, Parameters<typeof deps>[0], object, string, RegExp, number]> = [
    ['no Secret', {}, spec, 'CredentialMissing', /Secret ns\/admin does not exist/, 0],
    [
      'no key',
      { secrets: { 'ns/admin': secret({ other: 'x' }) } },
      spec,
      'CredentialMissing',
      /has no key "credential"/,
      0,
    ],
    [
      'empty credential',
      { secrets: { 'ns/admin': secret({ credential: ' \n' }) } },
      spec,
      'CredentialMissing',
      /empty/,
      0,
    ],
    [
      'no CA ConfigMap',
      withSecret,
      { ...spec, caConfigMapRef: { name: 'ca' } },
      'CAInvalid',
      /ConfigMap ns\/ca does not exist/,
      0,
    ],
    [
      'CA not PEM',
      { ...withSecret, configMaps: { 'ns/ca': { data: { 'ca.crt': 'hello' } } } },
      { ...spec, caConfigMapRef: { name: 'ca' } },
      'CAInvalid',
      /holds no PEM certificate/,
      0,
    ],
    [
      // Kubernetes takes it in the CA ConfigMap, but not in each Connector's ConfigMap beside the
      // connector's configuration: refused here, on the ControlPlane, before any call is made.
      'CA bundle too large to hand to connectors',
      {
        ...withSecret,
        configMaps: {
          'ns/ca': { data: { 'ca.crt': `${ca}${'#'.repeat(CA_BUNDLE_MAX_BYTES + 1 - ca.length)}` } },
        },
      },
      { ...spec, caConfigMapRef: { name: 'ca' } },
      'CAInvalid',
      /^spec\.caConfigMapRef: key "ca\.crt" of ConfigMap ns\/ca holds a CA bundle of 1,032,193 bytes, too large to hand to connectors: .* Kubernetes holds to 1,048,576 bytes, so the bundle may be at most 1,032,192 bytes; trim the bundle to the CAs that sign the control plane's serving certificate$/,
      0,
    ],
    [
      'Secret unreadable',
      {
        readSecret: async () => {
          throw Object.assign(new Error('forbidden'), {
            code: 403,
            body: { message: 'secrets is forbidden' },
          });
        },
      },
      spec,
      'CheckFailed',
      /could not read Secret ns\/admin: HTTP 403: secrets is forbidden/,
      0,
    ],
    [
      'http URL (stored before the rule)',
      withSecret,
      { ...spec, url: 'http://cp' },
      'InvalidSpec',
      /^spec\.url:/,
      0,
    ],
    [
      'URL longer than the CRD allows (stored before the rule)',
      withSecret,
      { ...spec, url: `https://cp.example/${'p'.repeat(2048)}` },
      'InvalidSpec',
      /^spec\.url: is longer than 2048 characters$/,
      0,
    ],
    [
      'refused credential',
      {
        ...withSecret,
        whoami: async () => {
          throw new CodedError('UNAUTHORIZED', 'a valid admin bearer credential is required', {
            httpStatus: 401,
          });
        },
      },
      spec,
      'Unauthorized',
      /refused the admin credential in key "credential" of Secret admin \(HTTP 401 UNAUTHORIZED\)/,
      1,
    ],
    [
      'untrusted certificate',
      {
        ...withSecret,
        whoami: async () => {
          throw new CodedError('CONTROL_PLANE_UNREACHABLE', 'self-signed certificate', {
            cause: Object.assign(new Error('self-signed certificate'), {
              code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
            }),
          });
        },
      },
      spec,
      'CAInvalid',
      /the system trust store does not vouch for \(DEPTH_ZERO_SELF_SIGNED_CERT\)/,
      1,
    ],
    [
      'not a control plane',
      {
        ...withSecret,
        whoami: async () => {
          throw new CodedError('HTTP_404', 'HTTP 404', { httpStatus: 404 });
        },
      },
      spec,
      'Unreachable',
      /answered GET \/v1\/admin\/whoami with HTTP 404/,
      1,
    ],
    [
      'nobody answers',
      {
        ...withSecret,
        whoami: async () => {
          throw new CodedError(
            'CONTROL_PLANE_UNREACHABLE',
            'control plane https://cp.example unreachable: connect ECONNREFUSED',
          );
        },
      },
      spec,
      'Unreachable',
      /ECONNREFUSED/,
      1,
    ],
  ];
  for (const [name, options, target, reason, message, calls] of cases) {
    let called = 0;
    const { deps: d } = deps(options);
    const whoami = d.whoami;
    d.whoami = async (settings) => {
      called += 1;
      await whoami?.(settings);
    };
    const outcome = await checkControlPlane(d, { secretNamespace: 'ns', spec: target });
    t.is(outcome.reason as string, reason, name);
    t.is(outcome.status, reason === 'CheckFailed' ? 'Unknown' : 'False', name);
    t.regex(outcome.message, message, name);
    t.is(outcome.settings, undefined, `${name}: nothing to use`);
    t.is(called, calls, `${name}: calls made`);
  }
  t.is(caBundleProblem(`${await caPem()}${ca}`), undefined, 'a bundle of two');
});

// ---- where a credential may be sent: its Secret's annotation vaultpam.io/control-plane-url ----

test('a Secret that does not list the URL is refused before anything is sent: CredentialNotForURL, naming the Secret, the annotation and the fix', async (t) => {
  const ca = await caPem();
  const cases: Array<[string, V1Secret, RegExp]> = [
    [
      'no annotation (the operator’s own credential, or any Secret of the namespace)',
      secret({ credential: CREDENTIAL }, null),
      /^spec\.credentialSecretRef: Secret ns\/admin does not say where its credential may be sent \(it has no annotation vaultpam\.io\/control-plane-url\), so the operator sends it nowhere: whoever may write that Secret decides where it goes\. If https:\/\/attacker\.example is where it belongs, they run: kubectl -n ns annotate secret admin vaultpam\.io\/control-plane-url=https:\/\/attacker\.example$/,
    ],
    [
      'an empty annotation',
      secret({ credential: CREDENTIAL }, ' , '),
      /has no annotation vaultpam\.io\/control-plane-url/,
    ],
    [
      'annotated for another URL (the url was changed)',
      secret({ credential: CREDENTIAL }, 'https://cp.example, https://cp-new.example'),
      /^spec\.credentialSecretRef: Secret ns\/admin is not meant for https:\/\/attacker\.example \(its annotation vaultpam\.io\/control-plane-url lists other URLs\), so the operator does not send it there: .*kubectl -n ns annotate secret admin --overwrite 'vaultpam\.io\/control-plane-url=<the URLs it lists> https:\/\/attacker\.example'$/,
    ],
  ];
  for (const [name, credentialSecret, message] of cases) {
    const {
      deps: d,
      reads,
      calls,
    } = deps({
      secrets: { 'ns/admin': credentialSecret },
      configMaps: { 'ns/ca': { data: { 'ca.crt': ca } } },
    });
    const outcome = await checkControlPlane(d, {
      secretNamespace: 'ns',
      spec: { ...spec, url: 'https://attacker.example', caConfigMapRef: { name: 'ca' } },
    });
    t.like(outcome, { status: 'False', reason: 'CredentialNotForURL' }, name);
    t.regex(outcome.message, message, name);
    t.is(outcome.settings, undefined, name);
    t.deepEqual(calls, [], `${name}: nothing sent`);
    t.deepEqual(reads, ['Secret ns/admin'], `${name}: nothing read after the Secret`);
    t.false(outcome.message.includes(CREDENTIAL), name);
    t.false(outcome.message.includes('cp-new.example'), `${name}: the annotation is not quoted`);
  }
  // A missing Secret is still CredentialMissing; an annotated one without the key too.
  const missing = await checkControlPlane(deps().deps, { secretNamespace: 'ns', spec });
  t.is(missing.reason, 'CredentialMissing');
  const noKey = await checkControlPlane(deps({ secrets: { 'ns/admin': secret({ other: 'x' }) } }).deps, {
    secretNamespace: 'ns',
    spec,
  });
  t.is(noKey.reason, 'CredentialMissing');
});

test('the annotation lists URLs separated by commas or whitespace, compared as the requests would go', async (t) => {
  const ready = async (url: string, listed: string) => {
    const { deps: d, calls } = deps({ secrets: { 'ns/admin': secret({ credential: CREDENTIAL }, listed) } });
    const outcome = await checkControlPlane(d, { secretNamespace: 'ns', spec: { ...spec, url } });
    t.is(calls.length, outcome.status === 'True' ? 1 : 0);
    return outcome.status === 'True';
  };
  t.true(await ready('https://cp.example', 'https://cp.example'));
  t.true(await ready('https://cp.example/', 'https://cp.example'), 'a trailing slash');
  t.true(await ready('https://CP.Example:443', 'https://cp.example/'), 'host case, default port');
  t.true(await ready('https://cp.example/vaultpam', 'https://old.example,https://cp.example/vaultpam/'));
  t.true(await ready('https://new.example', 'https://old.example\n  https://new.example'), 'a migration');
  t.false(await ready('https://cp.example/other', 'https://cp.example/vaultpam'), 'another path');
  t.false(await ready('https://cp.example/vaultpam/../other', 'https://cp.example/vaultpam'), 'dot segments');
  t.false(await ready('https://cp.example:8443', 'https://cp.example'), 'another port');
  t.false(await ready('https://cp.example.attacker.example', 'https://cp.example'), 'a longer host');
  t.false(await ready('https://cp.example', 'cp.example'), 'not a URL');
  t.false(await ready('https://cp.example', 'http://cp.example'), 'not https');

  t.deepEqual(annotatedControlPlaneUrls(secret({}, ' https://a.example,https://b.example\thttps://c ')), [
    'https://a.example',
    'https://b.example',
    'https://c',
  ]);
  t.is(controlPlaneUrlIdentity('https://CP.example:443//'), 'https://cp.example/');
  t.is(controlPlaneUrlIdentity('https://cp.example/a/./b/../c'), 'https://cp.example/a/c/');
  t.is(controlPlaneUrlIdentity('https://cp.example/p?x=1'), undefined, 'a query (refused by the CRD)');
  t.is(controlPlaneUrlIdentity('http://cp.example'), undefined);
  t.is(credentialUrlProblem(undefined, 'https://cp.example'), 'unannotated');
});

test('a server that echoes the credential does not get it into the status message', async (t) => {
  const { deps: d } = deps({
    secrets: { 'ns/admin': secret({ credential: CREDENTIAL }) },
    whoami: async () => {
      throw new CodedError(
        'BAD',
        `you sent Authorization: Bearer ${CREDENTIAL} and vpe_${'a'.repeat(16)}_${'b'.repeat(43)}`,
        {
          httpStatus: 400,
        },
      );
    },
  });
  const outcome = await checkControlPlane(d, { secretNamespace: 'ns', spec });
  t.is(outcome.reason, 'Unreachable');
  t.false(outcome.message.includes(CREDENTIAL), outcome.message);
  t.regex(outcome.message, /Authorization: \[REDACTED\] and vpe_\[REDACTED\]/);
});

test('a server cannot forge lines or hide text in the status message', async (t) => {
  const { deps: d } = deps({
    secrets: { 'ns/admin': secret({ credential: CREDENTIAL }) },
    whoami: async () => {
      throw new CodedError('BAD\nCODE', `fine\n\u001b[31mReady: True\u202e${'x'.repeat(1000)}`, {
        httpStatus: 400,
      });
    },
  });
  const outcome = await checkControlPlane(d, { secretNamespace: 'ns', spec });
  // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for control characters is the point
  t.notRegex(outcome.message, /[\u0000-\u001f\u007f-\u009f\u202e]/);
  t.regex(outcome.message, /UNRECOGNIZED_CODE/);
  t.true(outcome.message.length < 600, `${outcome.message.length} characters`);
});

// ---- status ----

test('the status flips Ready with its transition time, and a check that finds nothing new writes nothing for 30 minutes', (t) => {
  const ready = { status: 'True' as const, reason: 'Reachable' as const, message: 'ok' };
  const first = controlPlaneStatus(undefined, ready, 3, NOW);
  t.like(first, { observedGeneration: 3, lastCheckTime: '2026-01-01T00:00:00Z' });
  t.like(first.conditions?.[0], {
    type: 'Ready',
    status: 'True',
    reason: 'Reachable',
    observedGeneration: 3,
  });
  // As the API server hands it back: keys sorted.
  const stored = JSON.parse(JSON.stringify(first, Object.keys(first).sort())) as ControlPlaneStatus;
  stored.conditions = first.conditions;
  const later = new Date(NOW.getTime() + 5 * 60_000);
  t.deepEqual(controlPlaneStatus(stored, ready, 3, later), first, 'same status: no write');
  const muchLater = new Date(NOW.getTime() + LAST_CHECK_REFRESH_MS);
  t.is(controlPlaneStatus(stored, ready, 3, muchLater).lastCheckTime, '2026-01-01T00:30:00Z', 'refreshed');
  const refused = controlPlaneStatus(
    stored,
    { status: 'False', reason: 'Unauthorized', message: 'no' },
    3,
    later,
  );
  t.like(refused.conditions?.[0], {
    status: 'False',
    reason: 'Unauthorized',
    lastTransitionTime: '2026-01-01T00:05:00Z',
  });
  t.is(refused.lastCheckTime, '2026-01-01T00:05:00Z');
  t.is(controlPlaneStatus(stored, ready, 4, later).lastCheckTime, '2026-01-01T00:05:00Z', 'new generation');
});

// ---- the registry ----

function registryWorld(initial: ControlPlaneResource[]) {
  const objects = new Map(
    initial.map((o) => [`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`, o]),
  );
  const writes: Array<{ name: string; status: ControlPlaneStatus }> = [];
  const woken: string[] = [];
  let answer: () => Promise<void> = async () => {};
  let whoamiCalls = 0;
  const whoamiUrls: string[] = [];
  let credentialSecret = secret({ credential: CREDENTIAL });
  let caRead: () => Promise<V1ConfigMap | undefined> = async () => undefined;
  let caReads = 0;
  const caWatched: Array<[string, CaConfigMapTarget | undefined] | ['stop']> = [];
  const clock = new FakeClock(NOW);
  const connections = new ControlPlaneConnections({ logger: silentLogger(), onChange: () => {} });
  const registry = new ControlPlaneRegistry({
    logger: silentLogger(),
    clock,
    writer: {
      applyStatus: async (_type, ref, status) => {
        writes.push({ name: ref.name, status: status as ControlPlaneStatus });
        const object = [...objects.values()].find((o) => o.metadata.name === ref.name);
        if (object) object.status = JSON.parse(JSON.stringify(status));
        return {} as never;
      },
    },
    reader: {
      readSecret: async (namespace, name) =>
        namespace === 'team-a' && name === 'admin' ? credentialSecret : undefined,
      readConfigMap: () => {
        caReads += 1;
        return caRead();
      },
    },
    caWatch: {
      ensure: (key, target) => caWatched.push([key, target]),
      stop: () => caWatched.push(['stop']),
    },
    whoami: async (settings) => {
      whoamiCalls += 1;
      whoamiUrls.push(settings.url);
      await answer();
    },
    connections,
    get: (id) => objects.get(`${id.kind}/${id.namespace ?? ''}/${id.name}`),
    list: () => [...objects.values()],
    wake: (key) => woken.push(key),
  });
  return {
    registry,
    connections,
    clock,
    objects,
    writes,
    woken,
    setAnswer: (next: () => Promise<void>) => {
      answer = next;
    },
    whoamiCalls: () => whoamiCalls,
    whoamiUrls,
    setSecret: (next: V1Secret) => {
      credentialSecret = next;
    },
    setCaRead: (next: () => Promise<V1ConfigMap | undefined>) => {
      caRead = next;
    },
    caReads: () => caReads,
    caWatched,
  };
}

const teamA = (name = 'prod'): ControlPlaneResource => ({
  apiVersion: 'vaultpam.io/v1alpha1',
  kind: 'ControlPlane',
  metadata: { namespace: 'team-a', name, generation: 1 },
  spec,
});
const connectorSpec = (
  namespace: string,
  ref: { kind?: 'ControlPlane' | 'ClusterControlPlane'; name: string },
) =>
  defaultedSpec({
    metadata: { namespace, name: 'edge' },
    spec: { connector: { org: 'acme', endpointId: 'ep' }, controlPlaneRef: ref },
  });
const settle = () => new Promise((resolve) => setImmediate(resolve));

test('the registry checks on start, writes status once, wakes Connectors and hands out one shared connection', async (t) => {
  const world = registryWorld([teamA()]);
  world.registry.start();
  await settle();
  t.is(world.writes.length, 1);
  t.like(world.writes[0]?.status.conditions?.[0], { status: 'True', reason: 'Reachable' });
  t.deepEqual(world.woken, ['ControlPlane/team-a/prod']);
  const first = await world.registry.resolve(connectorSpec('team-a', { name: 'prod' }));
  const second = await world.registry.resolve(connectorSpec('team-a', { name: 'prod' }));
  if (!('connection' in first) || !('connection' in second)) return t.fail('resolved');
  t.is(first.connection, second.connection, 'one connection per control plane');
  t.is(first.connection.key, 'ControlPlane/team-a/prod');
  t.is(world.whoamiCalls(), 1, 'resolving uses the last check');

  // The periodic check that finds nothing new writes nothing.
  world.clock.advance(READY_RECHECK_MS);
  await settle();
  t.is(world.whoamiCalls(), 2);
  t.is(world.writes.length, 1);
  t.is(world.woken.length, 1);

  // The credential is refused now: status written, connection closed, Connectors woken, no connection.
  world.setAnswer(async () => {
    throw new CodedError('UNAUTHORIZED', 'no', { httpStatus: 401 });
  });
  world.clock.advance(READY_RECHECK_MS);
  await settle();
  t.is(world.writes.length, 2);
  t.like(world.writes[1]?.status.conditions?.[0], { status: 'False', reason: 'Unauthorized' });
  t.is(world.connections.get('ControlPlane/team-a/prod'), undefined);
  t.is(world.woken.length, 2);
  const refused = await world.registry.resolve(connectorSpec('team-a', { name: 'prod' }));
  if (!('error' in refused)) return t.fail('not Ready');
  t.true(isCodedError(refused.error, 'ControlPlaneConfigInvalid'));
  t.false(refused.error.temporary, 'woken by the control plane, not retried');
  t.regex(
    refused.error.message,
    /^spec\.controlPlaneRef: ControlPlane team-a\/prod is not Ready \(Unauthorized: /,
  );
  // Not Ready: checked again within half a minute.
  world.setAnswer(async () => {});
  world.clock.advance(NOT_READY_RECHECK_MS);
  await settle();
  t.like(world.writes[2]?.status.conditions?.[0], { status: 'True' });
});

test('a Connector cannot reach a ControlPlane of another namespace, a missing one, or a ClusterControlPlane the operator does not use', async (t) => {
  const world = registryWorld([teamA()]);
  world.registry.start();
  await settle();
  const elsewhere = await world.registry.resolve(connectorSpec('team-b', { name: 'prod' }));
  t.true('error' in elsewhere);
  if ('error' in elsewhere)
    t.is(
      elsewhere.error.message,
      'spec.controlPlaneRef: ControlPlane team-b/prod does not exist; ask an admin to create it (or fix the name)',
    );
  const cluster = await world.registry.resolve(
    connectorSpec('team-a', { kind: 'ClusterControlPlane', name: 'prod' }),
  );
  t.true('error' in cluster && /ClusterControlPlane prod cannot be used/.test(cluster.error.message));
  t.is(world.whoamiCalls(), 1, 'no call for any of them');
});

test('a changed spec is checked again; status writes and resyncs are not changes; a deleted one closes and wakes', async (t) => {
  const world = registryWorld([teamA()]);
  world.registry.start();
  await settle();
  const object = world.objects.get('ControlPlane/team-a/prod') as ControlPlaneResource;
  world.registry.changed(object);
  await settle();
  t.is(world.whoamiCalls(), 1, 'our own status write is no change');
  object.metadata.annotations = { 'vaultpam.io/recheck': '1' };
  world.registry.changed(object);
  await settle();
  t.is(world.whoamiCalls(), 2, 'an annotation asks for a check');
  await world.registry.resolve(connectorSpec('team-a', { name: 'prod' }));
  t.truthy(world.connections.get('ControlPlane/team-a/prod'));
  world.objects.delete('ControlPlane/team-a/prod');
  world.registry.deleted(object);
  t.is(world.connections.get('ControlPlane/team-a/prod'), undefined);
  t.is(world.woken.at(-1), 'ControlPlane/team-a/prod');
});

test('the CA ConfigMap of a checked control plane is watched; its change checks it now, or once more after a check under way', async (t) => {
  const object: ControlPlaneResource = {
    ...teamA(),
    spec: { ...spec, caConfigMapRef: { name: 'ca', key: 'ca.crt' } },
  };
  const world = registryWorld([object]);
  world.registry.recheck('ControlPlane/team-a/prod');
  await settle();
  t.is(world.caReads(), 0, 'a standby checks nothing');
  world.registry.start();
  await settle();
  t.is(world.caReads(), 1);
  // With the version the check read ('' for none), so the watch's first list can tell news from it.
  t.deepEqual(world.caWatched, [
    ['ControlPlane/team-a/prod', { namespace: 'team-a', name: 'ca', seenVersion: '' }],
  ]);

  // Changed while nothing is under way: checked at once, not at the periodic check.
  world.registry.recheck('ControlPlane/team-a/prod');
  await settle();
  t.is(world.caReads(), 2);

  // Changed while a check is under way (which may have read it before the change): once more after.
  let release: () => void = () => {};
  world.setCaRead(() => new Promise((resolve) => (release = () => resolve(undefined))));
  world.registry.recheck('ControlPlane/team-a/prod');
  await settle();
  t.is(world.caReads(), 3);
  world.registry.recheck('ControlPlane/team-a/prod');
  world.registry.recheck('ControlPlane/team-a/prod');
  world.setCaRead(async () => undefined);
  release();
  await settle();
  await settle();
  t.is(world.caReads(), 4, 'one more check for both changes');

  // Deleted: its watch goes; leadership ends: every watch goes.
  world.objects.delete('ControlPlane/team-a/prod');
  world.registry.deleted(object);
  t.deepEqual(world.caWatched.at(-1), ['ControlPlane/team-a/prod', undefined]);
  world.registry.stop();
  t.deepEqual(world.caWatched.at(-1), ['stop']);
});

test('a control plane deleted while its check is under way keeps no CA ConfigMap watch', async (t) => {
  // The check that was under way ends after the deletion stopped the watch: it must not start a
  // new one for a control plane that is gone (a watch nothing would ever stop, until leadership ends).
  const object: ControlPlaneResource = {
    ...teamA(),
    spec: { ...spec, caConfigMapRef: { name: 'ca', key: 'ca.crt' } },
  };
  const world = registryWorld([object]);
  let release: () => void = () => {};
  world.setCaRead(() => new Promise((resolve) => (release = () => resolve(undefined))));
  world.registry.start();
  await settle();
  t.is(world.caReads(), 1);
  world.objects.delete('ControlPlane/team-a/prod');
  world.registry.deleted(object);
  release();
  await settle();
  await settle();
  t.deepEqual(world.caWatched.at(-1), ['ControlPlane/team-a/prod', undefined]);
});

test('a Ready control plane whose url changes to one its Secret does not list is refused, and nothing goes to the new URL', async (t) => {
  const world = registryWorld([teamA()]);
  world.registry.start();
  await settle();
  const resolved = await world.registry.resolve(connectorSpec('team-a', { name: 'prod' }));
  if (!('connection' in resolved)) return t.fail('resolved');
  t.truthy(resolved.connection.client(), 'the credential, for its own URL');
  const object = world.objects.get('ControlPlane/team-a/prod') as ControlPlaneResource;
  object.spec = { ...spec, url: 'https://attacker.example' };
  object.metadata.generation = 2;
  world.registry.changed(object);
  await settle();
  t.deepEqual(world.whoamiUrls, ['https://cp.example'], 'no check was sent to the new URL');
  t.like(world.writes.at(-1)?.status.conditions?.[0], { status: 'False', reason: 'CredentialNotForURL' });
  t.is(world.connections.get('ControlPlane/team-a/prod'), undefined, 'the old connection is closed');
  const after = await world.registry.resolve(connectorSpec('team-a', { name: 'prod' }));
  t.true('error' in after && /is not Ready \(CredentialNotForURL: /.test(after.error.message));
  t.deepEqual(world.whoamiUrls, ['https://cp.example']);
});

test('a connection made for one URL gets no credential once the latest check was for another', async (t) => {
  const world = registryWorld([teamA()]);
  world.setSecret(secret({ credential: CREDENTIAL }, 'https://cp.example https://cp-new.example'));
  world.registry.start();
  await settle();
  const before = await world.registry.resolve(connectorSpec('team-a', { name: 'prod' }));
  if (!('connection' in before)) return t.fail('resolved');
  const object = world.objects.get('ControlPlane/team-a/prod') as ControlPlaneResource;
  object.spec = { ...spec, url: 'https://cp-new.example' };
  object.metadata.generation = 2;
  world.registry.changed(object);
  await settle();
  t.deepEqual(world.whoamiUrls, ['https://cp.example', 'https://cp-new.example']);
  t.is(before.connection.client(), undefined, 'the connection for the old URL holds no credential now');
  const after = await world.registry.resolve(connectorSpec('team-a', { name: 'prod' }));
  if (!('connection' in after)) return t.fail('resolved again');
  t.is(after.connection.url, 'https://cp-new.example');
  t.truthy(after.connection.client(), 'a new connection, for the URL the check was for');
});

test('a standby checks nothing and writes nothing until it leads', async (t) => {
  const world = registryWorld([teamA()]);
  world.registry.changed(teamA());
  await settle();
  t.is(world.whoamiCalls(), 0);
  world.registry.start();
  await settle();
  t.is(world.whoamiCalls(), 1);
  world.registry.stop();
  world.clock.advance(READY_RECHECK_MS * 2);
  await settle();
  t.is(world.whoamiCalls(), 1, 'no periodic checks after losing the lead');
});
