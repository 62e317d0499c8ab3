// The admin API's lists (the change feed and the connector list) answer in pages bounded in bytes as
// well as in items. A connector's JSON is about 1 KiB, but its configuration and its heartbeat's
// paths each come in a body of up to 64 KiB: the largest the contract takes is 78 KiB (measured,
// docs/control-plane.md), so 1,000 of them are more than a client will read. The operator's admin
// client refuses answers over 64 MiB, and its follower would then ask for the same page forever. A
// page always holds at least one item, so a reader always moves on.

/** Items per page at most. */
export const PAGE_LIMIT = 1000;

/** The items of a page are at most this many bytes of JSON (the page's envelope adds a few dozen). */
export const PAGE_BYTES = 4 * 1024 * 1024;

export interface Page<T> {
  items: T[];
  /** The source had more items after the last one taken. */
  more: boolean;
}

/**
 * The first items of `source` as `view` shows them, in order: at most `limit` of them and at most
 * PAGE_BYTES of JSON, but the first one whatever its size. `source` is read only as far as the
 * page goes (one item beyond, to tell whether there are more).
 */
export function takePage<S, T>(source: Iterable<S>, view: (item: S) => T, limit = PAGE_LIMIT): Page<T> {
  const items: T[] = [];
  let bytes = 0;
  for (const item of source) {
    if (items.length >= limit) return { items, more: true };
    const shown = view(item);
    // The comma that separates it from the item before.
    const size = Buffer.byteLength(JSON.stringify(shown)) + (items.length > 0 ? 1 : 0);
    if (items.length > 0 && bytes + size > PAGE_BYTES) return { items, more: true };
    items.push(shown);
    bytes += size;
  }
  return { items, more: false };
}
