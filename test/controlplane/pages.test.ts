// The admin API's lists answer in pages the operator can read, however large the records are: the
// change feed and the connector list are bounded in bytes as well as in items (src/controlplane/
// pages.ts), the operator's admin client refuses answers over 64 MiB, and its follower reads every
// page. Before the byte bound, 1,000 rows of the largest records (the largest configuration, and the
// 64 KiB heartbeats of paths one connector's own certificate sends) were more than 64 MiB: the
// follower asked for the same page forever. And the connector list was one answer, over 64 MiB with 4,700 records of the largest
// configuration (16.7 KB each).
import { Agent } from 'node:https';
import test, { type ExecutionContext } from 'ava';
import { PAGE_BYTES } from '../../src/controlplane/pages.ts';
import { requestJson } from '../../src/lib/https-json.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { ControlPlaneAdminClient } from '../../src/operator/control-plane/admin-client.ts';
import { type ChangeCause, ControlPlaneFollower } from '../../src/operator/control-plane/follower.ts';
import { eventually } from '../helpers/eventually.ts';
import {
  adminHeaders,
  CONFIG,
  flood,
  type Harness,
  jsonRequest,
  makeAgent,
  raw,
  startHarness,
} from './helpers.ts';

const ADMIN_CLIENT_MAX_ANSWER = 64 * 1024 * 1024;

/**
 * The largest configuration a PUT takes: 256 IPv6 CIDRs of the longest spelling (45 characters), and
 * names whose characters JSON escapes.
 */
const LARGEST_CONFIG = {
  org: '\u0001'.repeat(253),
  endpointId: '\u0001'.repeat(253),
  allowedNetworks: Array.from(
    { length: 256 },
    (_, i) => `0000:0000:0000:0000:0000:ffff:255.255.${100 + (i % 156)}.${100 + Math.floor(i / 156)}/128`,
  ),
};

/**
 * Paths that fill a heartbeat's 64 KiB body: 10 of them, each detail 1,024 control characters (one
 * byte each, six in JSON), 11.5 KiB of UTF-8 in all, under the 32 KiB bound.
 */
function largestPaths(healthy: boolean) {
  return Array.from({ length: 10 }, (_, i) => ({
    name: `${'n'.repeat(125)}${String(i).padStart(3, '0')}`,
    healthy: healthy || i > 0,
    detail: '\u0001'.repeat(1024),
  }));
}

/** The operator's follower of `client`, started (and stopped when the test ends); retries come fast. */
function startFollower(
  t: ExecutionContext,
  client: ControlPlaneAdminClient,
  onChange: (id: string, cause: ChangeCause) => void,
) {
  const follower = new ControlPlaneFollower({
    client: () => client,
    logger: silentLogger(),
    onChange,
    waitSeconds: 1,
    retryBaseMs: 50,
    retryCapMs: 200,
  });
  follower.start();
  t.teardown(() => follower.stop());
  return follower;
}

/** A follower of `h` whose first read of the change feed waits until `open()`: it falls behind. */
function heldFollower(t: ExecutionContext, h: Harness) {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  const client = {
    listConnectors: () => h.admin.listConnectors(),
    changes: async (since: number, waitSeconds: number) => {
      await opened;
      return h.admin.changes(since, waitSeconds);
    },
  } as unknown as ControlPlaneAdminClient;
  const heard: Array<{ id: string; cause: ChangeCause }> = [];
  const follower = startFollower(t, client, (id, cause) => heard.push({ id, cause }));
  return { follower, heard, open };
}

// The two below each write some 70 MB: one at a time.
test.serial(
  'a follower behind by 1,000 changes of the largest records catches up, in pages the operator reads, hearing each once',
  async (t) => {
    const h = await startHarness(t, { budgets: { healthChange: { burst: 10_000, refillEveryMs: 1_000 } } });
    const id = 'team-a.large';
    await h.admin.ensureConnector(id, LARGEST_CONFIG);
    const minted = await h.admin.mintToken(id, { idempotencyKey: 'k' });
    const large = await makeAgent(h, id);
    t.is((await large.enroll(minted.token)).status, 201);

    const { follower, heard, open } = heldFollower(t, h);
    await eventually(() => follower.synced());
    const { cursor: from } = await h.admin.listConnectors();

    // 1,000 changes of one connector, each a health change carrying its largest paths.
    const beats = new Agent({ ca: h.cp.caPem, key: large.keyPem, cert: large.certPem, keepAlive: true });
    t.teardown(() => beats.destroy());
    for (let i = 0; i < 1000; i++) {
      const res = await raw(h, '/v1/heartbeat', {
        ...jsonRequest('POST', { paths: largestPaths(i % 2 === 1) }),
        agent: beats,
      });
      if (res.status !== 200) t.fail(`heartbeat ${i}: ${res.status} ${res.text.slice(0, 200)}`);
    }
    const last = await h.admin.getConnector(id);
    const rowBytes = Buffer.byteLength(JSON.stringify(last));
    t.log(`the largest record: ${rowBytes} bytes`);
    t.true(rowBytes * 1000 > ADMIN_CLIENT_MAX_ANSWER, `1,000 rows of ${rowBytes} bytes are over 64 MiB`);

    // Read directly: every page within the bound, each starting right after the last row before it.
    let since = from;
    const cursors: number[] = [];
    while (cursors.length < 1000) {
      const page = await h.admin.changes(since);
      t.true(page.changes.length > 0, `a page after ${since}`);
      t.true(
        Buffer.byteLength(JSON.stringify(page.changes)) <= PAGE_BYTES + 2,
        `the page after ${since} is at most ${PAGE_BYTES} bytes of changes`,
      );
      t.is(page.changes.at(-1)?.cursor, page.cursor, "the page's cursor is its last change's");
      cursors.push(...page.changes.map((change) => change.cursor));
      since = page.cursor;
    }
    t.deepEqual(
      cursors,
      Array.from({ length: 1000 }, (_, i) => from + 1 + i),
      'every change once, in order, none skipped',
    );
    t.deepEqual((await h.admin.changes(since)).changes, [], 'and nothing after the last');

    // The follower that fell behind catches up through the same pages.
    open();
    await eventually(() => follower.get(id)?.revision === last.revision, {
      timeoutMs: 60_000,
      description: `the follower reaches revision ${last.revision}`,
    });
    t.is(follower.error(), undefined);
    const changesHeard = heard.filter((entry) => entry.id === id && entry.cause !== 'relist');
    t.is(changesHeard.length, 1000, 'each change heard once');
  },
);

test.serial('a connector list over 64 MiB is read in pages: the follower lists every record', async (t) => {
  const h = await startHarness(t);
  const count = 4700;
  const ids = Array.from({ length: count }, (_, i) => `team-a.c${String(i).padStart(5, '0')}`);
  const created = await flood(h, count, (i) => ({
    path: `/v1/connectors/${ids[i]}`,
    options: jsonRequest('PUT', LARGEST_CONFIG, { headers: adminHeaders(h) }),
  }));
  t.true(created.every((res) => res.status === 201));
  h.responses.length = 0;
  const recordBytes = Buffer.byteLength(JSON.stringify(await h.admin.getConnector(ids[0] as string)));
  t.log(`the largest configuration: ${recordBytes} bytes a record`);
  t.true(
    recordBytes * count > ADMIN_CLIENT_MAX_ANSWER,
    `${count} records of ${recordBytes} bytes are over 64 MiB`,
  );

  // The operator's client reads it whole, in pages.
  const listed = await h.admin.listConnectors();
  t.deepEqual(
    listed.connectors.map((c) => c.connectorId),
    ids,
  );

  const first = await raw(h, '/v1/connectors', { headers: adminHeaders(h) });
  t.is(first.status, 200);
  t.true(Buffer.byteLength(first.text) <= PAGE_BYTES + 100, 'one page is within the bound');
  t.is(first.json.next, first.json.connectors.at(-1).connectorId, 'and says where the next begins');

  const heard = new Set<string>();
  const follower = startFollower(t, h.admin, (id) => heard.add(id));
  await eventually(() => follower.synced(), { timeoutMs: 60_000, description: 'the follower listed' });
  t.is(heard.size, count, 'every record was reported');
  t.true(
    ids.every((id) => follower.get(id)?.connectorId === id),
    'and every record is kept',
  );
});

test('the connector list pages by id; following the feed from the first page’s cursor brings a list read while records change up to date', async (t) => {
  const h = await startHarness(t);
  for (const id of ['ns.a', 'ns.c', 'ns.e', 'ns.g', 'ns.i']) await h.admin.ensureConnector(id, CONFIG);

  // Pages and their limits, over HTTP.
  const page = (query: string) => raw(h, `/v1/connectors${query}`, { headers: adminHeaders(h) });
  const one = await page('?limit=2');
  t.deepEqual(
    one.json.connectors.map((c: { connectorId: string }) => c.connectorId),
    ['ns.a', 'ns.c'],
  );
  t.is(one.json.next, 'ns.c');
  const two = await page('?limit=2&after=ns.c');
  t.deepEqual(
    two.json.connectors.map((c: { connectorId: string }) => c.connectorId),
    ['ns.e', 'ns.g'],
  );
  const three = await page('?limit=2&after=ns.g');
  t.deepEqual(
    three.json.connectors.map((c: { connectorId: string }) => c.connectorId),
    ['ns.i'],
  );
  t.is(three.json.next, null, 'the last page says so');
  for (const bad of ['?limit=0', '?limit=1001', '?after=NOT_AN_ID']) {
    const res = await page(bad);
    t.is(res.status, 400, bad);
    t.is(res.json.error.code, 'INVALID_REQUEST', bad);
  }

  // The operator's client, its pages made small, with changes made after its first page: a record
  // before the next page's position created, one of a later page changed, one deleted.
  const agent = new Agent({ ca: h.cp.caPem, keepAlive: true });
  t.teardown(() => agent.destroy());
  let pagesServed = 0;
  const client = new ControlPlaneAdminClient({
    url: h.cp.url,
    caPem: h.cp.caPem,
    credential: h.cp.adminCredential as string,
    fetch: async (method, url, headers, body, timeoutMs) => {
      const listing = method === 'GET' && new URL(url).pathname === '/v1/connectors';
      const asked = listing ? `${url}${url.includes('?') ? '&' : '?'}limit=2` : url;
      const { status, text } = await requestJson({ method, url: asked, agent, headers, body, timeoutMs });
      if (listing && ++pagesServed === 1) {
        await h.admin.ensureConnector('ns.b', CONFIG);
        await h.admin.mintToken('ns.g', { idempotencyKey: 'later' });
        await h.admin.deleteConnector('ns.e');
      }
      return { status, body: text };
    },
  });
  t.teardown(() => client.close());
  const follower = startFollower(t, client, () => {});
  await eventually(() => pagesServed >= 2 && follower.synced(), { description: 'the follower listed' });
  const final = await h.admin.listConnectors();
  t.deepEqual(
    final.connectors.map((c) => c.connectorId),
    ['ns.a', 'ns.b', 'ns.c', 'ns.g', 'ns.i'],
  );
  await eventually(
    () =>
      follower.synced() &&
      final.connectors.every((c) => follower.get(c.connectorId)?.revision === c.revision) &&
      follower.get('ns.e') === undefined,
    { description: 'the follower holds the records as they are now' },
  );
  t.truthy(follower.get('ns.g')?.liveToken, 'the change to a record of a later page is kept');
});
