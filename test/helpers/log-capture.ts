// Captures a logger's JSON lines in memory so tests can assert on them and scan them for secrets.
import { Writable } from 'node:stream';
import { createLogger, type Logger, type LogLevel } from '../../src/lib/logger.ts';

export interface CapturedLogs {
  logger: Logger;
  /** Every line written so far, raw. */
  lines(): string[];
  /** Every line parsed as JSON. */
  records(): Array<Record<string, unknown>>;
  text(): string;
}

export function captureLogs(name = 'test', level: LogLevel = 'debug'): CapturedLogs {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  const logger = createLogger({ name, level, destination });
  const lines = () =>
    chunks
      .join('')
      .split('\n')
      .filter((line) => line.length > 0);
  return {
    logger,
    lines,
    records: () => lines().map((line) => JSON.parse(line) as Record<string, unknown>),
    text: () => chunks.join(''),
  };
}
