// Control-plane connections are shared by equal settings and closed once no Connector uses them,
// so a rotated credential or a deleted Connector leaves no client or change-stream follower behind.
import test from 'ava';
import { silentLogger } from '../../src/lib/logger.ts';
import { ControlPlaneConnections } from '../../src/operator/control-plane/connections.ts';

const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const URL_A = 'https://cp-a.example:8443';

function connections() {
  const set = new ControlPlaneConnections({ logger: silentLogger(), onChange: () => {} });
  set.registerDefault({ url: 'https://default.example', caPem: CA, credential: () => 'default-credential' });
  return set;
}

test('equal settings share one connection; the default is never closed', (t) => {
  const set = connections();
  const first = set.forSettings('team-a/one', URL_A, CA, 'credential-1');
  const second = set.forSettings('team-b/two', URL_A, CA, 'credential-1');
  t.is(first, second);
  t.is(set.size(), 2);
  set.release('team-a/one');
  t.is(set.get(first.key), first, 'still used by team-b/two');
  set.release('team-b/two');
  t.is(set.get(first.key), undefined, 'closed once unused');
  t.is(set.size(), 1, 'the default stays');
  set.release('team-b/two');
  t.is(set.size(), 1, 'releasing twice is harmless');
});

test('a rotated credential replaces the connection and closes the stale one', (t) => {
  const set = connections();
  const before = set.forSettings('team-a/one', URL_A, CA, 'credential-1');
  const after = set.forSettings('team-a/one', URL_A, CA, 'credential-2');
  t.not(after.key, before.key);
  t.is(set.get(before.key), undefined);
  t.is(set.get(after.key), after);
  t.is(set.size(), 2);
  t.is(after.client()?.constructor.name, 'ControlPlaneAdminClient');
});

test('a Connector that moves to the default control plane releases its own', (t) => {
  const set = connections();
  const own = set.forSettings('team-a/one', URL_A, CA, 'credential-1');
  set.release('team-a/one');
  t.is(set.get(own.key), undefined);
  t.is(set.size(), 1);
});
