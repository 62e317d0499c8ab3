// The scale benchmark's view of the Connectors: one watch on the benchmark namespace, so the time a
// status shows is when its event arrives. It keeps, per Connector, the newest object, the first time
// each phase was shown, every phase change and the time of every status change, and tells
// listeners of each status change (figure 1's status path, the recovery steps).
import { type KubeConfig, Watch } from '@kubernetes/client-node';
import type { Connector } from '../src/operator/api/types.ts';

export type StatusListener = (name: string, before: Connector['status'], object: Connector) => void;

export class ConnectorObserver {
  /** The first time each phase was shown, per Connector. */
  readonly seen = new Map<string, Map<string, number>>();
  readonly phaseNow = new Map<string, string>();
  /** Every phase change, per Connector. */
  readonly phases = new Map<string, Array<{ phase: string; at: number }>>();
  readonly latest = new Map<string, Connector>();
  /** When each status change arrived, per Connector. */
  readonly statusChanges = new Map<string, number[]>();
  private readonly lastStatus = new Map<string, string>();
  private readonly listeners: StatusListener[] = [];
  private readonly watch: Watch;
  private readonly path: string;
  private watching = false;

  constructor(kc: KubeConfig, namespace: string) {
    this.watch = new Watch(kc);
    this.path = `/apis/vaultpam.io/v1alpha1/namespaces/${namespace}/connectors`;
  }

  onStatus(listener: StatusListener): void {
    this.listeners.push(listener);
  }

  async start(): Promise<void> {
    this.watching = true;
    await this.observe();
  }

  stop(): void {
    this.watching = false;
  }

  /** The first time `name` was shown in `phase` at or after `since`, if it was. */
  phaseSince(name: string, phase: string, since: number): number | undefined {
    return this.phases.get(name)?.find((p) => p.phase === phase && p.at >= since)?.at;
  }

  /** Status changes per Connector that arrived in [from, to]. */
  statusChangesBetween(from: number, to: number): Map<string, number> {
    const out = new Map<string, number>();
    for (const [name, times] of this.statusChanges) {
      const count = times.filter((t) => t >= from && t <= to).length;
      if (count > 0) out.set(name, count);
    }
    return out;
  }

  private handle(object: Connector): void {
    const name = object.metadata.name ?? '';
    const at = Date.now();
    this.latest.set(name, object);
    const text = JSON.stringify(object.status ?? null);
    const before = this.lastStatus.get(name);
    if (object.status !== undefined && text !== before) {
      this.lastStatus.set(name, text);
      const times = this.statusChanges.get(name) ?? [];
      times.push(at);
      this.statusChanges.set(name, times);
      const previous = before === undefined ? undefined : (JSON.parse(before) as Connector['status']);
      for (const listener of this.listeners) listener(name, previous ?? undefined, object);
    }
    const phase = object.status?.phase;
    if (!phase) return;
    if (this.phaseNow.get(name) !== phase) {
      const history = this.phases.get(name) ?? [];
      history.push({ phase, at });
      this.phases.set(name, history);
    }
    this.phaseNow.set(name, phase);
    const first = this.seen.get(name) ?? new Map<string, number>();
    if (!first.has(phase)) first.set(phase, at);
    this.seen.set(name, first);
  }

  private async observe(): Promise<void> {
    if (!this.watching) return;
    await this.watch
      .watch(
        this.path,
        {},
        (_type, object: Connector) => this.handle(object),
        () => void (this.watching && setTimeout(() => void this.observe(), 200)),
      )
      .catch(() => void (this.watching && setTimeout(() => void this.observe(), 1_000)));
  }
}

/** What a status write changed: its top-level fields, and for conditions the types whose reason or status changed. */
export function statusDiff(before: Connector['status'], after: Connector['status']): string[] {
  const a = (before ?? {}) as Record<string, unknown>;
  const b = (after ?? {}) as Record<string, unknown>;
  const out: string[] = [];
  for (const field of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (field === 'conditions') continue;
    if (JSON.stringify(a[field]) === JSON.stringify(b[field])) continue;
    if (field === 'phase') out.push(`phase=${String(b[field])}`);
    else if (field === 'storage' || field === 'enrollment' || field === 'recovery' || field === 'diagnosis') {
      const x = (a[field] ?? {}) as Record<string, unknown>;
      const y = (b[field] ?? {}) as Record<string, unknown>;
      for (const sub of new Set([...Object.keys(x), ...Object.keys(y)]))
        if (JSON.stringify(x[sub]) !== JSON.stringify(y[sub])) out.push(`${field}.${sub}`);
    } else out.push(field);
  }
  type C = { type: string; status: string; reason?: string; message?: string };
  const ca = new Map(((before?.conditions ?? []) as C[]).map((c) => [c.type, c]));
  for (const c of (after?.conditions ?? []) as C[]) {
    const p = ca.get(c.type);
    if (!p) out.push(`+${c.type}=${c.status}/${c.reason ?? ''}`);
    else if (p.status !== c.status || p.reason !== c.reason)
      out.push(`${c.type}=${c.status}/${c.reason ?? ''}`);
    else if (p.message !== c.message) out.push(`${c.type}.message(${c.reason ?? ''})`);
  }
  return out.length > 0 ? out.sort() : ['(condition fields other than status, reason, message)'];
}
