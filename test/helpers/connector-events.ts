// The Events a Connector got, and how often each reason was recorded, for end-to-end tests that
// count them: an Event repeated within 30 minutes is one object with a series count, and Events
// over the per-Connector rate limit are folded into an EventsFolded summary that names them.
import { EventsV1Api, type EventsV1Event, type KubeConfig } from '@kubernetes/client-node';

export async function connectorEvents(
  kc: KubeConfig,
  namespace: string,
  name: string,
): Promise<EventsV1Event[]> {
  const list = await kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
  return list.items.filter((e) => e.regarding?.kind === 'Connector' && e.regarding.name === name);
}

/** Each reason's count: each Event with its series count, plus the reasons folded into summaries. */
export function tallyEvents(events: EventsV1Event[]): Record<string, number> {
  const counts: Record<string, number> = {};
  const add = (reason: string, n: number) => {
    counts[reason] = (counts[reason] ?? 0) + n;
  };
  for (const event of events) {
    add(event.reason ?? '', event.series?.count ?? 1);
    if (event.reason === 'EventsFolded') {
      const folded = /folded into this one \((.*?)\); the last:/.exec(event.note ?? '')?.[1] ?? '';
      for (const m of folded.matchAll(/([A-Za-z]+) x(\d+)/g)) add(m[1] ?? '', Number(m[2]));
    }
  }
  return counts;
}
