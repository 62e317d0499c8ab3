// How often the agent beats: as often as the control plane asks, never less often (the control plane
// counts a connector offline after a few missed intervals, while /readyz, which counts them by the
// agent's own interval, would still say ready), and never more often than once a second on the
// control plane's word (an answer of 0.0001 s made a heartbeat, with every path probe, each 1.5 ms).
// `--heartbeat-interval` may ask for more heartbeats than the control plane does, not fewer.
import { MIN_CONTROL_PLANE_HEARTBEAT_INTERVAL_MS } from '../contract/agent-process.ts';
import { describeDuration } from '../lib/duration.ts';

/** The shortest interval the agent takes from a control plane's answer (the process contract's). */
export const MIN_ASKED_HEARTBEAT_INTERVAL_MS = MIN_CONTROL_PLANE_HEARTBEAT_INTERVAL_MS;

export interface HeartbeatInterval {
  ms: number;
  /** Why the interval is not the one asked for, to log once; absent when it is. */
  note?: string;
}

/** Whole seconds as describeDuration words them, a fraction of one in milliseconds. */
function worded(ms: number): string {
  return ms % 1000 === 0 ? describeDuration(ms) : `${Number(ms.toPrecision(3))} ms`;
}

/** The interval to beat at, given the control plane's answer and the agent's override, if any. */
export function heartbeatIntervalFor(
  askedSeconds: number,
  overrideMs: number | undefined,
): HeartbeatInterval {
  const askedMs = askedSeconds * 1000;
  const floored = Math.max(askedMs, MIN_ASKED_HEARTBEAT_INTERVAL_MS);
  const floorNote =
    floored > askedMs
      ? `the control plane asked for a heartbeat every ${worded(askedMs)}; the agent beats at most once every ${worded(MIN_ASKED_HEARTBEAT_INTERVAL_MS)}`
      : undefined;
  if (overrideMs === undefined || overrideMs === floored)
    return { ms: floored, ...(floorNote ? { note: floorNote } : {}) };
  if (overrideMs < floored) return { ms: overrideMs };
  return {
    ms: floored,
    note:
      `--heartbeat-interval ${worded(overrideMs)} is longer than the control plane's interval ` +
      `(${worded(floored)}), which would count this connector offline between heartbeats: ` +
      `beating every ${worded(floored)}; set --heartbeat-interval to at most that, or leave it out`,
  };
}
