// Starts the fleet simulator (bench/fleet-simulator.ts) as a process of its own and keeps its
// latest counters: the scale benchmark runs one for the operator's namespace and one for the
// floor through the cluster.
import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import type { FleetCommand, FleetConfig, FleetStats } from './fleet-simulator.ts';
import { until } from './scale-util.ts';

export interface FleetProcess {
  child: ChildProcess;
  /** Its counters as last reported (every second). */
  stats(): FleetStats | undefined;
  command(message: FleetCommand): void;
}

/** Forks the fleet simulator and waits until it serves (`register` hears the child at once, for cleanup). */
export async function startFleetProcess(
  config: FleetConfig,
  register: (child: ChildProcess) => void,
): Promise<FleetProcess> {
  const child = fork(join(import.meta.dirname, 'fleet-simulator.ts'), [], {
    env: { ...process.env, BENCH_FLEET: JSON.stringify(config) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  register(child);
  let stats: FleetStats | undefined;
  let ready = false;
  child.on('message', (message: { type: string }) => {
    if (message.type === 'stats') stats = message as FleetStats;
    if (message.type === 'ready') ready = true;
  });
  await until('the fleet simulator to start', 60_000, () => {
    if (child.exitCode !== null) throw new Error(`the fleet simulator exited ${child.exitCode}`);
    return ready;
  });
  return { child, stats: () => stats, command: (message) => child.send(message) };
}
