// Control-plane connections are keyed by control-plane resource: every Connector of one ControlPlane
// shares one client and follower, a new URL or CA replaces it, and a resource that goes closes it.
import test from 'ava';
import { silentLogger } from '../../src/lib/logger.ts';
import { ControlPlaneConnections } from '../../src/operator/control-plane/connections.ts';

const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const URL_A = 'https://cp-a.example:8443';
const KEY = 'ControlPlane/team-a/prod';

function connections() {
  const set = new ControlPlaneConnections({ logger: silentLogger(), onChange: () => {} });
  set.registerDefault({ url: 'https://default.example', caPem: CA, credential: () => 'default-credential' });
  return set;
}

test('every use of one control-plane resource shares its one connection; the default stays apart', (t) => {
  const set = connections();
  const first = set.forResource(KEY, { url: URL_A, caPem: CA, credential: () => 'credential-1' });
  const second = set.forResource(KEY, { url: URL_A, caPem: CA, credential: () => 'credential-1' });
  t.is(first, second);
  t.is(first.key, KEY);
  t.is(set.size(), 2);
  set.close(KEY);
  t.is(set.get(KEY), undefined, 'closed when the resource goes');
  t.is(set.size(), 1, 'the default stays');
  set.close(KEY);
  t.is(set.size(), 1, 'closing twice is harmless');
});

test('a new URL or CA replaces the connection; a rotated credential only changes the client', (t) => {
  const set = connections();
  let credential = 'credential-1';
  const before = set.forResource(KEY, { url: URL_A, caPem: CA, credential: () => credential });
  const clientBefore = before.client();
  credential = 'credential-2';
  t.is(set.forResource(KEY, { url: URL_A, caPem: CA, credential: () => credential }), before);
  t.not(before.client(), clientBefore, 'a client with the new credential');
  const moved = set.forResource(KEY, {
    url: 'https://cp-b.example',
    caPem: CA,
    credential: () => credential,
  });
  t.not(moved, before);
  t.is(set.get(KEY), moved);
  t.is(moved.url, 'https://cp-b.example');
  t.is(set.size(), 2);
  const newCa = set.forResource(KEY, { url: moved.url, caPem: `${CA}\n`, credential: () => credential });
  t.not(newCa, moved);
});

test('without a credential there is no client', (t) => {
  const set = connections();
  const connection = set.forResource(KEY, { url: URL_A, caPem: CA, credential: () => undefined });
  t.is(connection.client(), undefined);
});
