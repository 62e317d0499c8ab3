// The one duration grammar of every flag of the three programs and of the Connector's
// spec.enrollment.tokenTTL, and the one wording of a duration in messages. The grammar: a bare number
// of seconds ("90", "1.5"), or one or more number-unit pairs, largest unit first ("250ms", "10s",
// "5m", "24h", "1d", "1h30m", "4m59s"). Negative values and units out of order are not durations.
// The CRD's tokenTTL pattern (whole h, m and s, in that order) is a narrower spelling of the same
// grammar, so every value the API server accepts reads here as the API server reads it.

import { LONGEST_TIMER_MS } from './clock.ts';

const UNIT_MS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 } as const;
type Unit = keyof typeof UNIT_MS;
const UNIT_ORDER: readonly Unit[] = ['d', 'h', 'm', 's', 'ms'];

const BARE_SECONDS = /^\d+(?:\.\d+)?$/;
// "ms" before "m", so "250ms" is not read as 250 minutes and a stray "s".
const PART = /(\d+(?:\.\d+)?)(ms|d|h|m|s)/y;

/** Milliseconds of a duration, or undefined when the text is not one. */
export function parseDurationMs(text: string): number | undefined {
  const trimmed = text.trim();
  if (BARE_SECONDS.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  if (trimmed.length === 0) return undefined;
  let total = 0;
  let lastUnit = -1;
  PART.lastIndex = 0;
  while (PART.lastIndex < trimmed.length) {
    const match = PART.exec(trimmed);
    if (!match?.[1] || !match[2]) return undefined;
    const order = UNIT_ORDER.indexOf(match[2] as Unit);
    if (order <= lastUnit) return undefined;
    lastUnit = order;
    total += Number(match[1]) * UNIT_MS[match[2] as Unit];
  }
  return Math.round(total);
}

const EXAMPLES = '10s, 250ms, 5m or 1h30m';

/** LONGEST_TIMER_MS (clock.ts) in this grammar, for the message that names it. */
const LONGEST_TIMER_TEXT = '596h31m23s';

/**
 * Milliseconds of a duration setting, or a message naming `field` (a flag, a variable) and what it
 * takes. `allowZero` for settings where 0 switches something off; `timer` for a period or timeout
 * something waits out with a timer, which cannot be longer than a Node timer holds (clock.ts).
 */
export function parseDurationField(
  text: string,
  field: string,
  { allowZero, timer = false }: { allowZero: boolean; timer?: boolean },
): number | { problem: string } {
  const milliseconds = parseDurationMs(text);
  const expected = `${field}: must be a duration like ${EXAMPLES}${allowZero ? ' (0 disables)' : ', more than 0'}`;
  if (milliseconds === undefined) return { problem: `${expected}; "${text}" is not a duration like these` };
  if (milliseconds === 0 && !allowZero) return { problem: `${expected}; "${text}" is zero` };
  if (timer && milliseconds > LONGEST_TIMER_MS) {
    return {
      problem: `${field}: must be at most ${LONGEST_TIMER_TEXT} (the longest wait a timer holds); "${text}" is longer`,
    };
  }
  return milliseconds;
}

/** Human wording of a duration or clock difference (its sign ignored), e.g. "3 h 2 min". */
export function describeDuration(milliseconds: number): string {
  const totalSeconds = Math.round(Math.abs(milliseconds) / 1000);
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  if (hours > 0) return `${hours} h ${minutes} min`;
  if (minutes > 0) return `${minutes} min ${seconds} s`;
  return `${seconds} s`;
}
