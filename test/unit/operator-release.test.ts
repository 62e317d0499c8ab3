// What a finalizer needs survives the deletion: a connection's last credential is kept for releases
// after its Secret or resource went, and the release target is read even from a spec the current
// rules refuse. The bound is counted from the deletionTimestamp; the status says Terminating.

import test from 'ava';
import { silentLogger } from '../../src/lib/logger.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import { reachedControlPlane } from '../../src/operator/api/types.ts';
import { ControlPlaneConnections } from '../../src/operator/control-plane/connections.ts';
import {
  describeRecord,
  finalizingStatus,
  releaseDeadline,
  releaseTarget,
} from '../../src/operator/reconciler.ts';

const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY = 'ControlPlane/doomed/own';
const settings = (credential: () => string | undefined) => ({
  url: 'https://cp.example',
  caPem: CA,
  credential,
});
const credentialOf = (client: object) => (client as unknown as { credential: string }).credential;

test('a connection whose Secret emptied still releases with the credential it last used', (t) => {
  const set = new ControlPlaneConnections({ logger: silentLogger(), onChange: () => {} });
  let credential: string | undefined = 'credential-1';
  const connection = set.forResource(
    KEY,
    settings(() => credential),
  );
  t.truthy(connection.client());
  const live = set.forRelease(KEY);
  t.false(live?.fromMemory);
  credential = undefined;
  t.is(connection.client(), undefined, 'reconciling gets no client');
  const handle = set.forRelease(KEY);
  t.true(handle?.fromMemory);
  t.is(credentialOf(handle?.client ?? {}), 'credential-1');
  handle?.close();
});

test('a closed connection (its resource went) is remembered for releases; one never used is not', (t) => {
  const set = new ControlPlaneConnections({ logger: silentLogger(), onChange: () => {} });
  set
    .forResource(
      KEY,
      settings(() => 'credential-1'),
    )
    .client();
  set.close(KEY);
  t.is(set.get(KEY), undefined);
  const handle = set.forRelease(KEY);
  t.true(handle?.fromMemory);
  t.is(credentialOf(handle?.client ?? {}), 'credential-1');
  handle?.close();
  set.forResource(
    'ControlPlane/doomed/unused',
    settings(() => undefined),
  );
  set.close('ControlPlane/doomed/unused');
  t.is(set.forRelease('ControlPlane/doomed/unused'), undefined, 'no credential was ever held');
  t.is(set.forRelease('ControlPlane/doomed/unknown'), undefined);
});

const doomed = (spec: Record<string, unknown>, status: Connector['status'] = {}): Connector =>
  ({
    apiVersion: 'vaultpam.io/v1alpha1',
    kind: 'Connector',
    metadata: {
      name: 'edge',
      namespace: 'doomed',
      uid: 'u-1',
      deletionTimestamp: '2026-01-01T00:00:00Z' as unknown as Date,
      finalizers: ['vaultpam.io/connector-cleanup'],
    },
    spec,
    status,
  }) as unknown as Connector;

test('the release target comes from the defaulted spec, or from the raw fields when the rules refuse it', (t) => {
  t.deepEqual(releaseTarget(doomed({ connector: { org: 'acme', endpointId: 'ep' } })), {
    connectorId: 'doomed.edge',
    deletionPolicy: 'Release',
    handoverNamespace: 'doomed',
    controlPlane: undefined,
  });
  // A stored spec that the current rules refuse (a token TTL out of range) is still released.
  const refused = doomed(
    {
      connector: { org: 'acme', endpointId: 'ep', id: 'kept-id' },
      enrollment: { tokenTTL: '99h' },
      deletionPolicy: 'Retain',
      controlPlaneRef: { kind: 'ControlPlane', name: 'own' },
    },
    { connectorId: 'recorded-id' },
  );
  t.deepEqual(releaseTarget(refused), {
    connectorId: 'recorded-id',
    deletionPolicy: 'Retain',
    handoverNamespace: 'doomed',
    controlPlane: { kind: 'ControlPlane', namespace: 'doomed', name: 'own' },
  });
  // The record is kept for the Connector's own namespace only, whatever the stored spec says.
  t.is(
    releaseTarget(
      doomed({
        connector: { org: 'acme', endpointId: 'ep' },
        deletionPolicy: 'Retain',
        handoverNamespace: 'team-b',
      } as never),
    ).handoverNamespace,
    'doomed',
  );
});

test('the release deadline counts from the deletionTimestamp; the status says Terminating and names it', (t) => {
  const connector = doomed(
    {
      connector: { org: 'acme', endpointId: 'ep' },
      controlPlaneRef: { kind: 'ClusterControlPlane', name: 'prod' },
    },
    { phase: 'Online' },
  );
  const deadline = releaseDeadline(connector, 5 * 60_000);
  t.is(new Date(deadline).toISOString(), '2026-01-01T00:05:00.000Z');
  const status = finalizingStatus(connector, new Date('2026-01-01T00:00:01Z'), {
    deadline,
    lastError: 'connect ECONNREFUSED',
  });
  t.is(status.phase, 'Terminating');
  const ready = status.conditions?.find((c) => c.type === 'Ready');
  t.is(ready?.status, 'False');
  t.is(ready?.reason, 'Finalizing');
  t.regex(ready?.message ?? '', /doomed\.edge in ClusterControlPlane prod/);
  t.regex(ready?.message ?? '', /2026-01-01T00:05:00\.000Z, the finalizer is removed anyway/);
  t.regex(ready?.message ?? '', /last attempt: connect ECONNREFUSED/);
});

test('held by another finalizer after the operator removed its own, the status says how the release ended', (t) => {
  const connector = doomed(
    { connector: { org: 'acme', endpointId: 'ep' } },
    { phase: 'Online', controlPlaneState: 'online' },
  );
  const now = new Date('2026-01-01T00:00:01Z');
  const readyOf = (ended: { released: string } | { abandoned: string }) =>
    finalizingStatus(connector, now, {
      unheld: { refused: false, others: ['example.com/hold'], ended },
    }).conditions?.find((c) => c.type === 'Ready')?.message ?? '';
  const released = readyOf({ released: 'revoked live tokens and released doomed.edge in the control plane' });
  t.regex(released, /the operator's release is over \(revoked live tokens and released doomed\.edge/);
  t.regex(
    released,
    /so it takes no further step for it; it goes once the finalizers example\.com\/hold are removed/,
  );
  t.notRegex(released, /revoke its tokens/, 'nothing is left to do by hand');
  // Let go without releasing (timeout, annotation): the record is left, and said so.
  const abandoned = readyOf({ abandoned: 'the release timeout passed (last attempt: connect ECONNREFUSED)' });
  t.regex(
    abandoned,
    /removed its finalizer vaultpam\.io\/connector-cleanup without releasing \(the release timeout passed/,
  );
  t.regex(
    abandoned,
    /doomed\.edge in the operator's default control plane is not released: revoke its tokens and delete it by hand/,
  );
  t.regex(abandoned, /example\.com\/hold/);
});

test('reached a control plane: a state it reported, or a token minted there before any state (the first pass)', (t) => {
  // A Connector deleted after its first pass, when no release credential was left, was finalized as
  // never having reached a control plane, while its minted token was live there.
  t.false(reachedControlPlane(undefined));
  t.false(reachedControlPlane({ phase: 'Pending', connectorId: 'prod.edge' }));
  t.true(reachedControlPlane({ controlPlaneState: 'pending' }));
  t.true(reachedControlPlane({ enrollment: { lastMintKey: 'enroll-uid-1', mintCount: 1 } }));
});

test('the record is named where it was last registered: apart from the release target only when that names another URL or none', (t) => {
  const target = {
    connectorId: 'prod.edge',
    deletionPolicy: 'Release' as const,
    handoverNamespace: 'prod',
    controlPlane: { kind: 'ControlPlane' as const, namespace: 'prod', name: 'team' },
  };
  const at = { registeredAt: 'https://cp.example:443', configMap: 'edge-config' };
  // The same control plane, spelled another way: named as the target.
  t.is(
    describeRecord(target, { ...at, targetUrl: 'https://CP.example/' }),
    'the control-plane record of prod.edge in ControlPlane prod/team',
  );
  t.is(describeRecord(target), 'the control-plane record of prod.edge in ControlPlane prod/team');
  t.is(
    describeRecord(target, { ...at, targetUrl: 'https://other.example' }),
    'the control-plane record of prod.edge at https://cp.example:443 (where it was last registered, as the control-plane URL of its ConfigMap edge-config says; ControlPlane prod/team, which the release goes through, names https://other.example)',
  );
  t.regex(
    describeRecord(target, at),
    /ControlPlane prod\/team, which the release goes through, names no URL/,
  );
});
