// One logger factory for every program, so redaction is configured in exactly one place.
// Secrets (enrollment tokens, credentials, private keys) must never reach a log line; pino's
// redaction removes them by key wherever they appear in a logged object, and the tests scan
// real log output for the secret values themselves.
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger } from 'pino';

/** Object keys whose values are secret wherever they appear in a log object. */
export const SECRET_KEYS = [
  'token',
  'enrollmentToken',
  'credential',
  'password',
  'authorization',
  'Authorization',
  'privateKey',
  'privateKeyPem',
  'keyPem',
  'key',
  'secret',
  'bearer',
] as const;

const redactPaths = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`, `headers.${k}`, `req.headers.${k}`]);

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

export interface CreateLoggerOptions {
  name: string;
  level?: LogLevel;
  /** Where the JSON lines go; stdout when omitted. Tests pass a stream they can scan. */
  destination?: DestinationStream;
}

export function createLogger(options: CreateLoggerOptions): Logger {
  const config: LoggerOptions = {
    name: options.name,
    level: options.level ?? 'info',
    redact: { paths: redactPaths, censor: '[REDACTED]' },
    base: { name: options.name },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return options.destination ? pino(config, options.destination) : pino(config);
}

/** A logger that discards everything, for unit tests that do not inspect logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
