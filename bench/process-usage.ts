// What the machine's processes cost, read from /proc: one process's memory and CPU, and the CPU
// of every component of a benchmark between two instants (which process spent the machine's time),
// beside the machine's own busy time. Linux only, as the benchmarks are.
import { readdirSync, readFileSync } from 'node:fs';
import { round } from './scale-util.ts';

/** Clock ticks per second of /proc's CPU times (USER_HZ, 100 on every Linux the benchmarks run on). */
const TICKS_PER_SECOND = 100;

/** The fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** Fields 3 on of /proc/<pid>/stat: utime and stime are the 12th and 13th of them, pgrp the 3rd. */
const UTIME = 11;
const STIME = 12;
const PGRP = 2;

/**
 * A process's memory and CPU from /proc: VmRSS now, split into its anonymous part (the heap, V8's
 * and malloc's) and its file-backed part (mostly the node binary's code, which every node process
 * on the machine shares), VmHWM (its peak so far), user + system CPU seconds, and when it was read.
 */
export function processUsage(pid: number): {
  rssMiB: number;
  rssAnonMiB: number;
  rssFileMiB: number;
  hwmMiB: number;
  cpuSeconds: number;
  at: number;
} {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN);
  const fields = statFields(pid);
  return {
    rssMiB: round(kib('VmRSS') / 1024),
    rssAnonMiB: round(kib('RssAnon') / 1024),
    rssFileMiB: round(kib('RssFile') / 1024),
    hwmMiB: round(kib('VmHWM') / 1024),
    cpuSeconds: (Number(fields[UTIME]) + Number(fields[STIME])) / TICKS_PER_SECOND,
    at: Date.now(),
  };
}

/**
 * Which processes make up a component: a process id (a Node process this benchmark started), or
 * a process group (a cluster component runs under a watchdog that leads its group).
 */
export type ComponentProcesses = { pid: number } | { processGroup: number };

/** CPU seconds of every live process, by pid, with its process group; and the machine's ticks. */
export interface CpuSnapshot {
  at: number;
  processes: Map<number, { processGroup: number; cpuSeconds: number }>;
  /** The machine's busy and total CPU seconds (all cores) since boot, from /proc/stat. */
  machine: { busySeconds: number; totalSeconds: number };
}

export function cpuSnapshot(): CpuSnapshot {
  const processes = new Map<number, { processGroup: number; cpuSeconds: number }>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const fields = statFields(pid);
      processes.set(pid, {
        processGroup: Number(fields[PGRP]),
        cpuSeconds: (Number(fields[UTIME]) + Number(fields[STIME])) / TICKS_PER_SECOND,
      });
    } catch {
      // It exited between the listing and the read.
    }
  }
  // cpu  user nice system idle iowait irq softirq steal ...: busy is all but idle and iowait.
  const ticks = (/^cpu\s+(.*)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1] ?? '')
    .split(/\s+/)
    .map(Number);
  const total = ticks.slice(0, 8).reduce((sum, t) => sum + t, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return {
    at: Date.now(),
    processes,
    machine: { busySeconds: (total - idle) / TICKS_PER_SECOND, totalSeconds: total / TICKS_PER_SECOND },
  };
}

export interface CpuBreakdown {
  seconds: number;
  /** The machine's busy time over the window, in cores (2 = both of two cores busy throughout). */
  machineBusyCores: number;
  /** CPU seconds each component spent in the window; `other` is the machine's busy time left. */
  components: Record<string, number>;
}

/**
 * The CPU each component spent between two snapshots. A process that exited in between is not
 * counted (its time lands in `other`); one that started in between counts from zero.
 */
export function cpuBetween(
  before: CpuSnapshot,
  after: CpuSnapshot,
  components: Record<string, ComponentProcesses>,
): CpuBreakdown {
  const spent = (pid: number, now: { cpuSeconds: number }) =>
    now.cpuSeconds - (before.processes.get(pid)?.cpuSeconds ?? 0);
  const result: Record<string, number> = {};
  let counted = 0;
  for (const [name, which] of Object.entries(components)) {
    let seconds = 0;
    for (const [pid, now] of after.processes) {
      const member = 'pid' in which ? pid === which.pid : now.processGroup === which.processGroup;
      if (member) seconds += spent(pid, now);
    }
    result[name] = round(seconds, 2);
    counted += seconds;
  }
  const busy = after.machine.busySeconds - before.machine.busySeconds;
  result.other = round(Math.max(0, busy - counted), 2);
  const seconds = (after.at - before.at) / 1000;
  return {
    seconds: round(seconds, 2),
    machineBusyCores: round(busy / Math.max(seconds, 0.001), 2),
    components: result,
  };
}
