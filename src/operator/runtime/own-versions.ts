// The resourceVersions this process's own writes produced, per watched object, until the watch
// delivers them. Each write the operator makes to a watched object comes back as a watch event (its
// echo); the pass that wrote already knows what it wrote, so an echo that brings nothing else queues
// no pass of its own. At 100 Connectors applied at once, the finalizer's echo, the status writes'
// echoes and the adds of the ConfigMap and StatefulSet the first pass created were about a third of
// all the events that woke a Connector (docs/performance.md, tenth increment).
//
// A version is the object's etcd revision after exactly one write: an event carrying it shows the
// object as that write left it. Whether the event also brings someone else's change (a relist can
// step over other writers' versions) is for the caller to judge from the previous cached version.
//
// The watch can deliver a write's echo before the write's own answer arrives (the API server sends
// both at once; which the process reads first is chance). So while a write to the object is in
// flight, an event whose version is not known yet is held until the writes in flight have answered:
// it is an echo if one of them produced it, and news otherwise.

/** Watch events that never come (the object deleted, a relist past them) leave at most this many. */
const MAX_PENDING_PER_OBJECT = 8;

interface Held {
  version: string;
  news: () => void;
  echo: (() => void) | undefined;
}

export class OwnVersions {
  private readonly kinds: ReadonlySet<string>;
  /** `kind/namespace/name` -> versions written and not yet seen, oldest first. */
  private readonly pending = new Map<string, string[]>();
  /** `kind/namespace/name` -> writes to it not answered yet. */
  private readonly inFlight = new Map<string, number>();
  /** `kind/namespace/name` -> events that came while a write to it was in flight, undecided. */
  private readonly held = new Map<string, Held[]>();

  /** Only kinds the operator watches: a write to any other kind has no echo to wait for. */
  constructor(kinds: Iterable<string>) {
    this.kinds = new Set(kinds);
  }

  /**
   * A write to the object starts. Call what this returns once it has answered: with the version it
   * produced, or undefined when it failed or was a dry run.
   */
  writing(
    kind: string,
    namespace: string | undefined,
    name: string | undefined,
  ): (version: string | undefined) => void {
    if (!this.kinds.has(kind) || !name) return () => {};
    const key = keyOf(kind, namespace, name);
    this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    let answered = false;
    return (version) => {
      if (answered) return;
      answered = true;
      const left = (this.inFlight.get(key) ?? 1) - 1;
      if (left > 0) this.inFlight.set(key, left);
      else this.inFlight.delete(key);
      if (version) this.remember(key, version);
      this.decideHeld(key, left === 0);
    };
  }

  /**
   * Calls `news` unless the object at `version` is as one of our writes left it (then `echo`, if
   * given), now or, while a write to it is in flight, once it has answered. Each version is an echo
   * once: a resync or a second delivery of the same version is not.
   */
  judge(
    kind: string,
    namespace: string | undefined,
    name: string | undefined,
    version: string | undefined,
    news: () => void,
    echo?: () => void,
  ): void {
    if (!this.kinds.has(kind) || !name || !version) {
      news();
      return;
    }
    const key = keyOf(kind, namespace, name);
    if (this.take(key, version)) {
      echo?.();
      return;
    }
    if (!this.inFlight.has(key)) {
      news();
      return;
    }
    const held = this.held.get(key) ?? [];
    held.push({ version, news, echo });
    this.held.set(key, held);
  }

  /** The object is gone: no echo of it will come. Events held for it are news. */
  forget(kind: string, namespace: string | undefined, name: string | undefined): void {
    if (!name) return;
    const key = keyOf(kind, namespace, name);
    this.pending.delete(key);
    const held = this.held.get(key) ?? [];
    this.held.delete(key);
    for (const event of held) event.news();
  }

  /** Objects with writes whose echo has not come yet, or events waiting on a write (what this holds). */
  size(): number {
    return this.pending.size + this.held.size;
  }

  private remember(key: string, version: string): void {
    const versions = this.pending.get(key) ?? [];
    versions.push(version);
    if (versions.length > MAX_PENDING_PER_OBJECT) versions.shift();
    this.pending.set(key, versions);
  }

  private take(key: string, version: string): boolean {
    const versions = this.pending.get(key);
    const at = versions?.indexOf(version) ?? -1;
    if (!versions || at === -1) return false;
    // Versions before it were stepped over (a relist): their events will not come.
    versions.splice(0, at + 1);
    if (versions.length === 0) this.pending.delete(key);
    return true;
  }

  /** Held events a write's answer made echoes are dropped; once no write is in flight, the rest are news. */
  private decideHeld(key: string, noneInFlight: boolean): void {
    const held = this.held.get(key);
    if (!held) return;
    const undecided: Held[] = [];
    for (const event of held) {
      if (this.take(key, event.version)) event.echo?.();
      else if (noneInFlight) event.news();
      else undecided.push(event);
    }
    if (undecided.length > 0) this.held.set(key, undecided);
    else this.held.delete(key);
  }
}

function keyOf(kind: string, namespace: string | undefined, name: string): string {
  return `${kind}/${namespace ?? ''}/${name}`;
}
