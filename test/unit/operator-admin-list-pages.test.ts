// The operator reads the connector list page by page from whatever answers at a ControlPlane's URL
// (any namespace's admin can name one): a listing that does not page as the contract says is
// refused, never followed without end. A control plane answering the same record on every page with
// a growing `next` kept the operator paging past 20,000 pages and 1 GiB of memory.
import test from 'ava';
import { ControlPlaneAdminClient, type HttpResponse } from '../../src/operator/control-plane/admin-client.ts';
import { record } from '../helpers/observed-builder.ts';

/** The admin client over a scripted control plane whose list answers `pageFor(after)`. */
function clientListing(pageFor: (after: string | null) => unknown) {
  let asked = 0;
  const client = new ControlPlaneAdminClient({
    url: 'https://cp',
    caPem: '',
    credential: 'c',
    fetch: async (_method, url): Promise<HttpResponse> => {
      asked += 1;
      const after = new URL(url).searchParams.get('after');
      return { status: 200, body: JSON.stringify(pageFor(after)) };
    },
  });
  return { client, asked: () => asked };
}

const rec = (id: string) => record({ connectorId: id });

test('pages as the contract says are read whole, with the first page’s cursor', async (t) => {
  const pages: Record<string, unknown> = {
    first: { connectors: [rec('a.1'), rec('a.2')], cursor: 7, next: 'a.2' },
    'a.2': { connectors: [rec('b.1')], cursor: 9, next: null },
  };
  const { client } = clientListing((after) => pages[after ?? 'first']);
  const listed = await client.listConnectors();
  t.deepEqual(
    listed.connectors.map((c) => c.connectorId),
    ['a.1', 'a.2', 'b.1'],
  );
  t.is(listed.cursor, 7);
});

test('a hostile listing is refused: repeated records, a next that is not the last id, ids out of order', async (t) => {
  let n = 0;
  const repeating = clientListing(() => {
    n += 1;
    return { connectors: [rec('a.1')], cursor: 1, next: `z.${String(n).padStart(8, '0')}` };
  });
  await t.throwsAsync(repeating.client.listConnectors(), { code: 'BAD_RESPONSE' });
  t.true(repeating.asked() <= 2, `stopped at once (${repeating.asked()} pages)`);

  const backwards = clientListing((after) =>
    after === null
      ? { connectors: [rec('b.1')], cursor: 1, next: 'b.1' }
      : { connectors: [rec('a.1')], cursor: 1, next: null },
  );
  await t.throwsAsync(backwards.client.listConnectors(), { code: 'BAD_RESPONSE' });

  const unsorted = clientListing(() => ({ connectors: [rec('b.1'), rec('a.1')], cursor: 1, next: null }));
  await t.throwsAsync(unsorted.client.listConnectors(), { code: 'BAD_RESPONSE' });
});

test('a listing over the bound is refused, however well it pages', async (t) => {
  const big = 'x'.repeat(60 * 1024 * 1024);
  let n = 0;
  const { client, asked } = clientListing(() => {
    n += 1;
    const id = `p.${String(n).padStart(8, '0')}`;
    return {
      connectors: [{ ...rec(id), paths: [{ name: 'p', healthy: true, detail: big }] }],
      cursor: 1,
      next: id,
    };
  });
  await t.throwsAsync(client.listConnectors(), { code: 'BAD_RESPONSE', message: /over \d+ bytes/ });
  t.true(asked() <= 6, `${asked()} pages`);
});
