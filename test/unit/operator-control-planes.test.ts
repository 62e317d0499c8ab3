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
import {
  type CheckDeps,
  type ControlPlaneSettings,
  caBundleProblem,
  checkControlPlane,
} from '../../src/operator/control-plane/check.ts';
import { ControlPlaneConnections } from '../../src/operator/control-plane/connections.ts';
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
import { selfSignedCertificate } from '../helpers/certificates.ts';

const CREDENTIAL = 'cp-admin-credential-0123456789';
const NOW = new Date('2026-01-01T00:00:00Z');

const caPem = async () => (await selfSignedCertificate()).certPem;

const secret = (data: Record<string, string>): V1Secret => ({
  metadata: { name: 'admin' },
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
        namespace === 'team-a' && name === 'admin' ? secret({ credential: CREDENTIAL }) : undefined,
      readConfigMap: async () => undefined,
    },
    whoami: async () => {
      whoamiCalls += 1;
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
