// The agent's configuration from flags and environment: parsed and validated here, purely, so every
// mistake is reported with the flag or variable that caused it before anything else happens.
import { parseArgs } from 'node:util';
import { CONNECTOR_ID_PATTERN } from '../contract/agent-process.ts';
import type { FlagSpecs } from '../lib/cli.ts';
import { parseDurationMs } from '../lib/duration.ts';
import { isLogLevel, type LogLevel } from '../lib/logger.ts';
import { type AgentFailure, configurationFailure } from './failure.ts';
import { type PathCheckTarget, parsePathCheck } from './path-checks.ts';

export { CONNECTOR_ID_PATTERN };
export const DEFAULT_SAN_URI_PREFIX = 'spiffe://vaultpam.local/connector/';

export const AGENT_FLAGS: FlagSpecs = {
  'connector-id': {
    env: 'VAULTPAM_CONNECTOR_ID',
    description: 'Connector ID this agent pairs as (required).',
  },
  'control-plane-url': {
    env: 'VAULTPAM_CONTROL_PLANE_URL',
    description: 'https:// URL of the control plane (required).',
  },
  'ca-file': {
    env: 'VAULTPAM_CA_FILE',
    description: 'PEM CA bundle that issued the control plane certificate; system roots when omitted.',
  },
  'token-file': {
    env: 'VAULTPAM_TOKEN_FILE',
    description: 'File holding the single-use enrollment token (may be absent after pairing).',
  },
  'data-dir': { env: 'PAM_AGENT_DATA_DIR', default: '/data', description: 'Durable data directory.' },
  'termination-log': {
    env: 'VAULTPAM_TERMINATION_LOG',
    default: '/dev/termination-log',
    description: 'File that receives the reason when the agent fails closed.',
  },
  'health-listen': {
    env: 'VAULTPAM_HEALTH_LISTEN',
    default: '0.0.0.0:8081',
    description: 'host:port of the local /healthz and /readyz server.',
  },
  'heartbeat-interval': {
    env: 'VAULTPAM_HEARTBEAT_INTERVAL',
    description: "Override the control plane's heartbeat interval (e.g. 10s, 250ms).",
  },
  'renew-at-fraction': {
    env: 'VAULTPAM_RENEW_AT_FRACTION',
    default: '0.5',
    description: 'Renew the certificate after this fraction of its lifetime (0 < f < 1).',
  },
  'path-check': {
    env: 'VAULTPAM_PATH_CHECKS',
    description:
      'Extra runtime path name=host:port probed by TCP connect before each heartbeat; repeatable ' +
      '(env: comma-separated).',
  },
  'give-up-after': {
    env: 'VAULTPAM_GIVE_UP_AFTER',
    default: '0',
    description: 'Exit 14 after the control plane was unreachable this long (e.g. 15m); 0 retries forever.',
  },
  'retry-initial': {
    env: 'VAULTPAM_RETRY_INITIAL',
    default: '1s',
    description: 'First reconnect backoff delay.',
  },
  'retry-max': {
    env: 'VAULTPAM_RETRY_MAX',
    default: '60s',
    description: 'Cap of the reconnect backoff delay.',
  },
  'request-timeout': {
    env: 'VAULTPAM_REQUEST_TIMEOUT',
    default: '10s',
    description: 'Timeout of one request to the control plane.',
  },
  'san-uri-prefix': {
    env: 'VAULTPAM_SAN_URI_PREFIX',
    default: DEFAULT_SAN_URI_PREFIX,
    description: 'Prefix of the SAN URI the control plane puts in connector certificates.',
  },
  'log-level': {
    env: 'LOG_LEVEL',
    default: 'info',
    description: 'fatal, error, warn, info, debug or trace.',
  },
};

export interface ListenAddress {
  host: string;
  port: number;
}

export interface AgentConfig {
  connectorId: string;
  controlPlaneUrl: string;
  caFile: string | undefined;
  tokenFile: string | undefined;
  dataDir: string;
  terminationLog: string;
  healthListen: ListenAddress;
  /** Undefined: use the interval the control plane answers with. */
  heartbeatIntervalMs: number | undefined;
  renewAtFraction: number;
  pathChecks: PathCheckTarget[];
  giveUpAfterMs: number;
  retryInitialMs: number;
  retryMaxMs: number;
  requestTimeoutMs: number;
  sanUriPrefix: string;
  logLevel: LogLevel;
}

export type ParsedCommandLine = { help: true } | { help: false; config: AgentConfig };

/** Milliseconds of "10s", "250ms", "15m", "1h30m" or a bare number of seconds (src/lib/duration.ts). */
export function parseDuration(text: string): number | undefined {
  return parseDurationMs(text);
}

function source(flag: string): string {
  const env = AGENT_FLAGS[flag]?.env;
  return env ? `--${flag} (env ${env})` : `--${flag}`;
}

/**
 * parseArgs' complaint as one line naming the flag: its own text spans several lines (a literal "\n"
 * in the termination message) and talks about "options".
 */
function commandLineProblem(error: unknown): string {
  const { code, message } = error as { code?: string; message?: string };
  const text = String(message ?? error);
  const flag = /'(-{1,2}[^' <]+)/.exec(text)?.[1];
  const named = flag?.startsWith('--') && AGENT_FLAGS[flag.slice(2)] ? source(flag.slice(2)) : flag;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && named) {
    if (/ambiguous/.test(text)) {
      return (
        `${named} has no value: the argument after it begins with "-" and reads as a flag (a duration or ` +
        `number cannot be negative; a value that really begins with "-" is written ${flag}=<value>)`
      );
    }
    if (/does not take an argument/.test(text)) return `${named} takes no value`;
    return `${named} has no value`;
  }
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag) return `unknown flag ${flag}`;
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    return `unexpected argument ${/'([^']*)'/.exec(text)?.[0] ?? ''}: the agent takes flags only`;
  }
  return text.split('\n')[0] ?? text;
}

/**
 * The URL as it may be shown: a user name, password, query or fragment (which could hold a
 * credential or a token) replaced, so a refused URL is never echoed with its secret parts.
 */
function shownUrl(text: string): string {
  return text.replace(/\/\/[^/?#]*@/, '//[redacted]@').replace(/[?#].*$/s, '?[redacted]');
}

/**
 * A control plane URL carries no secret: it is logged at start and written to identity.json. A user
 * name or password, a query or a fragment is refused (the agent authenticates with its token and its
 * certificate, and the control plane's API takes neither).
 */
function controlPlaneUrlProblems(url: URL, text: string): string[] {
  const problems: string[] = [];
  const shown = shownUrl(text);
  if (url.username !== '' || url.password !== '') {
    problems.push(
      `${source('control-plane-url')} ${shown} must not carry a user name or password: the URL is logged and ` +
        'written to identity.json, and the agent authenticates with its token and certificate; use https://host:port',
    );
  }
  if (url.search !== '' || url.hash !== '' || /[?#]/.test(text)) {
    problems.push(
      `${source('control-plane-url')} ${shown} must not carry a query or a fragment: the URL is logged and ` +
        'written to identity.json, and a token belongs in --token-file; use https://host:port',
    );
  }
  return problems;
}

/** The termination log path as far as it can be known, to report a configuration error there. */
export function terminationLogFrom(argv: string[], env: NodeJS.ProcessEnv): string {
  const index = argv.findIndex((arg) => arg === '--termination-log' || arg.startsWith('--termination-log='));
  const arg = index >= 0 ? argv[index] : undefined;
  if (arg?.includes('=')) return arg.slice(arg.indexOf('=') + 1);
  if (arg !== undefined && argv[index + 1]) return argv[index + 1] as string;
  return env.VAULTPAM_TERMINATION_LOG || '/dev/termination-log';
}

/** Parses argv and env into a validated configuration; throws an AgentFailure (exit 12) naming the flag. */
export function parseAgentCommandLine(argv: string[], env: NodeJS.ProcessEnv): ParsedCommandLine {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {
      help: { type: 'boolean' },
    };
    for (const name of Object.keys(AGENT_FLAGS)) {
      options[name] = name === 'path-check' ? { type: 'string', multiple: true } : { type: 'string' };
    }
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  } catch (error) {
    throw configurationFailure(`${commandLineProblem(error)}; run with --help to list the flags`);
  }
  if (parsed.values.help === true) return { help: true };
  const raw: Record<string, string | undefined> = {};
  for (const [name, spec] of Object.entries(AGENT_FLAGS)) {
    if (name === 'path-check') continue;
    const value = parsed.values[name];
    raw[name] =
      (typeof value === 'string' ? value : undefined) ??
      (spec.env ? env[spec.env] : undefined) ??
      spec.default;
  }
  const flagChecks = parsed.values['path-check'];
  const pathCheckTexts = Array.isArray(flagChecks)
    ? flagChecks.filter((v): v is string => typeof v === 'string')
    : (env.VAULTPAM_PATH_CHECKS ?? '')
        .split(',')
        .map((v) => v.trim())
        .filter((v) => v.length > 0);
  return { help: false, config: validateAgentConfig(raw, pathCheckTexts) };
}

/** Validates raw flag values (already merged with env and defaults). Collects every problem at once. */
export function validateAgentConfig(
  raw: Record<string, string | undefined>,
  pathCheckTexts: readonly string[],
): AgentConfig {
  const problems: string[] = [];
  const required = (flag: string): string => {
    const value = raw[flag]?.trim();
    if (!value) problems.push(`${source(flag)} is required`);
    return value ?? '';
  };
  const optional = (flag: string): string | undefined => {
    const value = raw[flag]?.trim();
    return value ? value : undefined;
  };
  const duration = (flag: string, { allowZero }: { allowZero: boolean }): number => {
    const text = raw[flag] ?? '';
    const value = parseDuration(text);
    if (value === undefined || (!allowZero && value <= 0)) {
      problems.push(
        `${source(flag)} must be a duration like 10s, 250ms or 5m${allowZero ? ' (0 disables)' : ''}, got "${text}"`,
      );
      return 0;
    }
    return value;
  };

  const connectorId = required('connector-id');
  if (connectorId && !CONNECTOR_ID_PATTERN.test(connectorId)) {
    problems.push(
      `${source('connector-id')} "${connectorId}" is not a valid connector ID: use lowercase letters, digits, ` +
        "'.' and '-', starting and ending with a letter or digit, at most 253 characters",
    );
  }

  const controlPlaneUrl = required('control-plane-url');
  if (controlPlaneUrl) {
    let url: URL | undefined;
    try {
      url = new URL(controlPlaneUrl);
    } catch {
      problems.push(
        `${source('control-plane-url')} "${shownUrl(controlPlaneUrl)}" is not a URL; use https://host:port`,
      );
    }
    if (url && url.protocol !== 'https:') {
      problems.push(
        `${source('control-plane-url')} must use https:// (got ${url.protocol}//); the agent speaks mTLS`,
      );
    }
    if (url) problems.push(...controlPlaneUrlProblems(url, controlPlaneUrl));
  }

  const dataDir = required('data-dir');
  const terminationLog = required('termination-log');

  let healthListen: ListenAddress = { host: '0.0.0.0', port: 8081 };
  const listenText = required('health-listen');
  if (listenText) {
    const match = /^(.*):(\d{1,5})$/.exec(listenText);
    const port = match?.[2] ? Number(match[2]) : Number.NaN;
    if (!match?.[1] || !Number.isInteger(port) || port > 65535) {
      problems.push(`${source('health-listen')} must be host:port (port 0-65535), got "${listenText}"`);
    } else {
      healthListen = { host: match[1].replace(/^\[(.*)\]$/, '$1'), port };
    }
  }

  const intervalText = optional('heartbeat-interval');
  let heartbeatIntervalMs: number | undefined;
  if (intervalText !== undefined) {
    heartbeatIntervalMs = duration('heartbeat-interval', { allowZero: false });
  }

  const fractionText = raw['renew-at-fraction'] ?? '';
  const renewAtFraction = Number(fractionText);
  if (!/^\d*\.?\d+$/.test(fractionText.trim()) || !(renewAtFraction > 0 && renewAtFraction < 1)) {
    problems.push(
      `${source('renew-at-fraction')} must be a number between 0 and 1 (exclusive), got "${fractionText}"`,
    );
  }

  const pathChecks: PathCheckTarget[] = [];
  const names = new Set<string>(['tunnel']);
  for (const text of pathCheckTexts) {
    const result = parsePathCheck(text);
    if (typeof result === 'string') {
      problems.push(`${source('path-check')} ${result}`);
    } else if (names.has(result.name)) {
      problems.push(`${source('path-check')} path name "${result.name}" is used twice or is reserved`);
    } else {
      names.add(result.name);
      pathChecks.push(result);
    }
  }

  const giveUpAfterMs = duration('give-up-after', { allowZero: true });
  const retryInitialMs = duration('retry-initial', { allowZero: false });
  const retryMaxMs = duration('retry-max', { allowZero: false });
  if (retryInitialMs > 0 && retryMaxMs > 0 && retryMaxMs < retryInitialMs) {
    problems.push(`${source('retry-max')} must not be shorter than ${source('retry-initial')}`);
  }
  const requestTimeoutMs = duration('request-timeout', { allowZero: false });

  const sanUriPrefix = required('san-uri-prefix');
  const logLevel = raw['log-level']?.trim() ?? 'info';
  if (!isLogLevel(logLevel)) {
    problems.push(
      `${source('log-level')} must be one of fatal, error, warn, info, debug, trace, silent; got "${logLevel}"`,
    );
  }

  if (problems.length > 0) throw invalidConfiguration(problems);
  return {
    connectorId,
    controlPlaneUrl: controlPlaneUrl.replace(/\/+$/, ''),
    caFile: optional('ca-file'),
    tokenFile: optional('token-file'),
    dataDir,
    terminationLog,
    healthListen,
    heartbeatIntervalMs,
    renewAtFraction,
    pathChecks,
    giveUpAfterMs,
    retryInitialMs,
    retryMaxMs,
    requestTimeoutMs,
    sanUriPrefix,
    logLevel: logLevel as LogLevel,
  };
}

function invalidConfiguration(problems: string[]): AgentFailure {
  return configurationFailure(`invalid configuration: ${problems.join('; ')}`);
}
