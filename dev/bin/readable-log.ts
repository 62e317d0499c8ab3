// The components' log lines as a person reads them in a terminal: `npm start` runs the control
// plane, the operator and the pod runner in one process, and their pino JSON interleaved with the
// progress lines was hard to read. Each JSON line becomes `time LEVEL component: message (key=value
// ...)`. It formats what pino already wrote, so redaction (src/lib/logger.ts) has happened before a
// line gets here; a line that is not JSON is passed on as it is.
import type { DestinationStream } from 'pino';

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
/** pino's own fields, shown in the line's head or not at all. */
const HEAD = new Set(['level', 'time', 'msg', 'name', 'component', 'pid', 'hostname']);

function show(value: unknown): string {
  if (typeof value === 'string') return /[\s"=]/.test(value) || value === '' ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

/** One pino JSON line as text; the line itself when it is not a pino object. */
export function readableLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof entry !== 'object' || entry === null || typeof entry.level !== 'number') return line;
  const time = typeof entry.time === 'string' ? entry.time.slice(11, 19) : '';
  const level = (LEVELS[entry.level] ?? String(entry.level)).padEnd(5);
  const who = typeof entry.component === 'string' ? entry.component : String(entry.name ?? '');
  const fields = Object.entries(entry)
    .filter(([key]) => !HEAD.has(key))
    .map(([key, value]) => `${key}=${show(value)}`);
  const message = typeof entry.msg === 'string' ? entry.msg : '';
  return `${time} ${level} ${who}: ${message}${fields.length > 0 ? ` (${fields.join(', ')})` : ''}`;
}

/** A pino destination that writes each line readably to `out` (stdout by default). */
export function readableDestination(
  out: { write(text: string): unknown } = process.stdout,
): DestinationStream {
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line !== '') out.write(`${readableLine(line)}\n`);
    },
  };
}
