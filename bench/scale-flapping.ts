// Figures 4b and 4c of the scale benchmark: a share of the fleet flapping while the rest beats. Each
// flapping agent, on its own schedule (starts spread over one heartbeat interval), takes its fault
// until the watch shows its Connector in the fault's phase, then drops it until the watch shows it
// Online, for `cycles` cycles. The faults: `silence` (no heartbeat reaches the control plane, which
// marks it offline after its heartbeat timeout: Offline) and `path` (its heartbeats report a failed
// path, which the control plane takes as degraded at the next heartbeat: Degraded). Each transition's
// latency is the time the watch showed the phase minus the control plane's own time of the
// transition (the record's stateChangedAt, read right after the watch showed it, before the next
// transition can replace it). The operator's writes during the phase, and which Connectors got a
// status write or an Event, show whether only the flapping ones were written.
import { connectorEventsSince, connectorIdOf, type PhaseContext } from './scale-context.ts';
import { diffWrites, latencySummary, nonLeaseWrites, round, say, sleep, until } from './scale-util.ts';

/** How a flapping agent fails, and what it shows: the fleet's commands, the phase, the record's state. */
const FAULTS = {
  silence: { on: 'silence', off: 'resume', phase: 'Offline', state: 'offline' },
  path: { on: 'fail-path', off: 'heal-path', phase: 'Degraded', state: 'degraded' },
} as const;

export interface FlappingOptions {
  /** The Connectors that flap, by name. */
  flapping: string[];
  fault: keyof typeof FAULTS;
  cycles: number;
  heartbeatSeconds: number;
  offlineAfterSeconds: number;
}

export async function runFlapping(ctx: PhaseContext, options: FlappingOptions) {
  const { flapping, cycles, heartbeatSeconds, offlineAfterSeconds } = options;
  const fault = FAULTS[options.fault];
  // Silence shows after the heartbeat timeout; a failed path at the next heartbeat.
  const faultShowsWithinMs = (options.fault === 'silence' ? offlineAfterSeconds : heartbeatSeconds) * 1000;
  const toFault: number[] = [];
  const toOnline: number[] = [];
  const metricsBefore = await ctx.operatorMetrics();
  const started = Date.now();
  const spreadMs = (heartbeatSeconds * 1000) / flapping.length;

  const flap = async (name: string, index: number) => {
    await sleep(index * spreadMs);
    const id = connectorIdOf(ctx, name);
    for (let cycle = 0; cycle < cycles; cycle += 1) {
      for (const [command, phase, expected, latencies, bound] of [
        [fault.on, fault.phase, fault.state, toFault, faultShowsWithinMs + ctx.timeoutMs],
        [fault.off, 'Online', 'online', toOnline, ctx.timeoutMs],
      ] as const) {
        const from = Date.now();
        ctx.command({ type: command, ids: [id] });
        let shownAt: number | undefined;
        await until(`${name} to show ${phase} (flapping, cycle ${cycle + 1})`, bound, () => {
          shownAt = ctx.observer.phaseSince(name, phase, from);
          return shownAt !== undefined;
        });
        const record = await ctx.record(id);
        if (record.state !== expected)
          throw new Error(`${id}: the watch showed ${phase} but the control plane says ${record.state}`);
        latencies.push((shownAt ?? NaN) - new Date(record.stateChangedAt).getTime());
      }
    }
  };
  await Promise.all(flapping.map((name, index) => flap(name, index)));
  const ended = Date.now();
  const writes = diffWrites(metricsBefore, await ctx.operatorMetrics());
  const flappingSet = new Set(flapping);
  const statusWrites = ctx.observer.statusChangesBetween(started, ended);
  const events = await connectorEventsSince(ctx, started);
  const others = <T>(map: Map<string, T>) => [...map.keys()].filter((n) => !flappingSet.has(n));
  const sum = (map: Map<string, number>, keep: (name: string) => boolean) =>
    [...map].filter(([name]) => keep(name)).reduce((total, [, count]) => total + count, 0);
  const result = {
    fault: options.fault,
    faultPhase: fault.phase,
    flapping: flapping.length,
    cycles,
    seconds: round((ended - started) / 1000),
    toFault: latencySummary(toFault),
    toOnline: latencySummary(toOnline),
    operatorWrites: nonLeaseWrites(writes),
    writesByKind: writes,
    statusWritesToFlapping: sum(statusWrites, (n) => flappingSet.has(n)),
    otherConnectorsWithStatusWrites: others(statusWrites).length,
    eventsOnFlapping: sum(events, (n) => flappingSet.has(n)),
    otherConnectorsWithEvents: others(events).length,
    // A few names of others that were written, to look into (there should be none).
    otherConnectorsWritten: [...new Set([...others(statusWrites), ...others(events)])].slice(0, 10),
  };
  say(`    flapping (${options.fault}): ${JSON.stringify(result)}`);
  return result;
}
