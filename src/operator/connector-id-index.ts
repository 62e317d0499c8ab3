// Which Connectors a control-plane connector id belongs to, so a change of the control plane's record
// wakes them. Usually one; two Connectors may name the same id for a while (a rename or a Retain
// handover whose successor was created before the old one went, or a conflict the status reports),
// and both must hear of the record's changes. So the index keeps every key per id, and a Connector
// that leaves or changes its id takes only itself out: the other keeps being woken. (A map of id to
// one key lost the survivor when either was deleted, and only the Connector informer's resync of
// every Connector put it back; that resync is gone, docs/operator-runtime.md.)

export class ConnectorIdIndex {
  private readonly keysById = new Map<string, Set<string>>();
  private readonly idByKey = new Map<string, string>();

  /** Records that the Connector `key` names connector id `id` now (and no longer its former one). */
  set(key: string, id: string): void {
    const former = this.idByKey.get(key);
    if (former === id) return;
    if (former !== undefined) this.remove(former, key);
    this.idByKey.set(key, id);
    const keys = this.keysById.get(id);
    if (keys) keys.add(key);
    else this.keysById.set(id, new Set([key]));
  }

  /** Forgets the Connector `key` (deleted). */
  delete(key: string): void {
    const id = this.idByKey.get(key);
    if (id === undefined) return;
    this.idByKey.delete(key);
    this.remove(id, key);
  }

  /** The Connectors that name `id`. */
  keysOf(id: string): Iterable<string> {
    return this.keysById.get(id) ?? [];
  }

  /** Every Connector indexed. */
  keys(): Iterable<string> {
    return this.idByKey.keys();
  }

  private remove(id: string, key: string): void {
    const keys = this.keysById.get(id);
    if (!keys) return;
    keys.delete(key);
    if (keys.size === 0) this.keysById.delete(id);
  }
}
