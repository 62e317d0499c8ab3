// A caller with no credential cannot keep the connectors' heartbeats out (lib/connection-limits.ts):
// before, about 1,000 idle connections that never sent a byte held every file descriptor the server
// had, every heartbeat failed, and the offline sweep took every connector for offline, a change of
// state made by nobody. Now one address holds a bounded number of connections, a connection that
// says nothing is closed after 10 s, and while the server must refuse connections for want of room
// the sweep counts nobody offline.

import { EventEmitter } from 'node:events';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import { FakeClock } from '../../src/lib/clock.ts';
import {
  type AddressGrouping,
  addressGroup,
  ConnectionLimits,
  connectionsTheDescriptorsAllow,
} from '../../src/lib/connection-limits.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { eventually } from '../helpers/eventually.ts';
import { enrolledAgent, type Harness, metricValue, startHarness } from './helpers.ts';

/** A raw TCP connection from `localAddress` that sends nothing; resolves once connected. */
function silentSocket(h: Harness, localAddress: string): Promise<Socket> {
  const { hostname, port } = new URL(h.cp.url);
  return new Promise((resolve, reject) => {
    const socket = connectTcp({ host: hostname, port: Number(port), localAddress }, () => resolve(socket));
    socket.on('error', reject);
  });
}

const closed = (socket: { once(event: 'close', f: () => void): unknown }) =>
  new Promise<void>((resolve) => socket.once('close', () => resolve()));

test('one address holds at most its bound of connections; the others, and the connectors, still get in', async (t) => {
  const h = await startHarness(t, { maxConnectionsPerAddress: 5 });
  const agent = await enrolledAgent(h, 'ns.limits');
  const held = await Promise.all(Array.from({ length: 5 }, () => silentSocket(h, '127.0.0.2')));
  t.teardown(() => {
    for (const socket of held) socket.destroy();
  });
  const sixth = await silentSocket(h, '127.0.0.2');
  await closed(sixth);
  t.is(await metricValue(h, 'cp_connections_refused_total', 'reason="per_address"'), 1);
  t.is((await agent.heartbeat()).status, 200, 'a connector on another address beats as before');
  t.true(
    held.every((socket) => !socket.destroyed),
    'the ones within the bound are kept',
  );
});

test('a connection that says nothing is closed after 10 s: no TLS handshake, or no request after it', async (t) => {
  t.timeout(40_000);
  const h = await startHarness(t);
  const started = Date.now();
  const tcp = await silentSocket(h, '127.0.0.1');
  const { hostname, port } = new URL(h.cp.url);
  const tls = connectTls({ host: hostname, port: Number(port), ca: h.cp.caPem });
  await new Promise<void>((resolve, reject) => {
    tls.once('secureConnect', () => resolve());
    tls.once('error', reject);
  });
  tls.on('error', () => {});
  await Promise.all([closed(tcp), closed(tls)]);
  const seconds = (Date.now() - started) / 1000;
  t.true(seconds >= 9 && seconds < 20, `closed after ${seconds} s (was 86 s)`);
});

// Before: the stop's cut closed only the connections the HTTPS server knew of, not one still in its
// TLS handshake, which held the stop until its own deadline (10 s).
test('stopping the control plane cuts a connection still in its TLS handshake after the grace', async (t) => {
  const h = await startHarness(t);
  const silent = await silentSocket(h, '127.0.0.1');
  const gone = closed(silent);
  const started = Date.now();
  await h.cp.close();
  await gone;
  const seconds = (Date.now() - started) / 1000;
  t.true(seconds >= 1.5 && seconds < 5, `stopped after ${seconds} s (the grace is 2 s)`);
});

/**
 * A control plane that holds 6 connections at most (offline after 30 s), a connector `id` that beat
 * once, and 6 silent connections from another address holding every slot.
 */
async function doorFilled(t: ExecutionContext, id: string) {
  const h = await startHarness(t, {
    maxConnections: 6,
    heartbeatIntervalSeconds: 10,
    offlineAfterSeconds: 30,
  });
  const agent = await enrolledAgent(h, id);
  t.is((await agent.heartbeat()).status, 200);
  await eventually(async () => (await metricValue(h, 'cp_http_open_connections')) === 0);
  const held = await Promise.all(Array.from({ length: 6 }, () => silentSocket(h, '127.0.0.2')));
  t.teardown(() => {
    for (const socket of held) socket.destroy();
  });
  return { h, agent, held };
}

test('while the server refuses connections for want of room, the offline sweep counts nobody offline', async (t) => {
  const { h, agent, held } = await doorFilled(t, 'ns.flooded');
  h.clock.advance(25_000);
  // The heartbeat cannot get in: Node drops the connection.
  const refused = await agent.heartbeat().catch((error: Error) => error);
  t.true(refused instanceof Error, 'the heartbeat found no room');
  t.true((await metricValue(h, 'cp_connections_refused_total', 'reason="total"')) >= 1);
  h.clock.advance(10_000);
  t.is(h.cp.sweep(), 0, '35 s of silence, 10 s of it refused at the door: not offline');
  for (const socket of held) socket.destroy();
  await eventually(async () => (await metricValue(h, 'cp_http_open_connections')) === 0);
  t.is((await h.admin.getConnector('ns.flooded')).state, 'online');
  // A full offline window from the last refusal: then silence is silence.
  h.clock.advance(20_001);
  t.is(h.cp.sweep(), 1);
});

test('a flood longer than --offline-after ends in offline all the same, and refusals in waves grant one window per wave', async (t) => {
  // Grace from every refusal let a caller who filled the door once per window hold a connector that
  // really went silent online for as long as it liked.
  const { h } = await doorFilled(t, 'ns.waves');
  const refusedOnce = async () => {
    const before = await metricValue(h, 'cp_connections_refused_total', 'reason="total"');
    await silentSocket(h, '127.0.0.3')
      .then(closed)
      .catch(() => {});
    await eventually(
      async () => (await metricValue(h, 'cp_connections_refused_total', 'reason="total"')) > before,
    );
  };
  await refusedOnce(); // the wave begins: t = 0
  for (let second = 10; second <= 40; second += 10) {
    h.clock.advance(10_000);
    await refusedOnce(); // the same wave: refused within 30 s of the one before
  }
  t.is(h.cp.sweep(), 1, '40 s into one wave: its one window is over, and the connector never beat');
});

test('callers are counted by IPv4 address or IPv6 /64 (the control plane), or by address (the operator); the open-file limit bounds the connections held', (t) => {
  const both = (address: string) => [addressGroup(address, 'ipv6-64'), addressGroup(address, 'address')];
  t.deepEqual(both('203.0.113.7'), ['203.0.113.7', '203.0.113.7']);
  t.deepEqual(both('::ffff:203.0.113.7'), ['203.0.113.7', '203.0.113.7']);
  t.deepEqual(both('2001:db8:1:2:aaaa::1'), ['2001:db8:1:2::/64', '2001:db8:1:2:aaaa:0:0:1']);
  t.deepEqual(both('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'), [
    '2001:db8:1:2::/64',
    '2001:db8:1:2:ffff:ffff:ffff:ffff',
  ]);
  t.deepEqual(both('2001:db8::1'), ['2001:db8:0:0::/64', '2001:db8:0:0:0:0:0:1']);
  t.deepEqual(both('2001:DB8:0::01'), ['2001:db8:0:0::/64', '2001:db8:0:0:0:0:0:1'], 'one spelling');
  t.deepEqual(both('::1'), ['0:0:0:0::/64', '0:0:0:0:0:0:0:1']);
  t.deepEqual(both('fe80::1%eth0'), ['fe80:0:0:0::/64', 'fe80:0:0:0:0:0:0:1']);
  const limits = (soft: string) =>
    `Limit                     Soft Limit           Hard Limit           Units\nMax open files            ${soft}                1048576              files\n`;
  t.is(connectionsTheDescriptorsAllow(limits('1024')), 960);
  t.is(connectionsTheDescriptorsAllow(limits('unlimited')), undefined);
  t.is(connectionsTheDescriptorsAllow(undefined), undefined);
});

/** Sockets from `addresses` accepted by a ConnectionLimits of `perAddress` under `grouping`: which are kept. */
function keptUnder(grouping: AddressGrouping, perAddress: number, addresses: string[]): boolean[] {
  const server = Object.assign(new EventEmitter(), { maxConnections: 0 });
  const limits = new ConnectionLimits({
    perAddress,
    grouping,
    total: 1000,
    logger: silentLogger(),
    serverName: 'a test server',
    firstRequestWithinMs: 10_000,
    clock: new FakeClock(0),
  });
  limits.attach(server as unknown as Parameters<ConnectionLimits['attach']>[0]);
  return addresses.map((remoteAddress, remotePort) => {
    let destroyed = false;
    const socket = Object.assign(new EventEmitter(), {
      remoteAddress,
      remotePort,
      destroy: () => {
        destroyed = true;
      },
    });
    server.emit('connection', socket);
    return !destroyed;
  });
}

test('under ipv6-64 the addresses of one /64 share one bound; under address each has its own', (t) => {
  // Pods of an IPv6 pod network: one /64 (a node's pod range), Prometheus among them.
  const pods = Array.from({ length: 9 }, (_, i) => `fd00:10:244:1::${(i + 2).toString(16)}`);
  t.deepEqual(keptUnder('ipv6-64', 8, pods), [...Array(8).fill(true), false], 'one caller: the 9th refused');
  t.deepEqual(keptUnder('address', 8, pods), Array(9).fill(true), 'nine callers');
  const onePod = Array(9).fill('fd00:10:244:1::2');
  t.deepEqual(keptUnder('address', 8, onePod), [...Array(8).fill(true), false], 'one address: still bound');
  t.deepEqual(
    keptUnder('address', 1, ['::ffff:10.0.0.1', '10.0.0.1', '10.0.0.2']),
    [true, false, true],
    'IPv4-mapped is the IPv4 address',
  );
});
