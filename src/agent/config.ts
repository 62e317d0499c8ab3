// The agent's configuration from flags and environment: parsed and validated here, purely, so every
// mistake is reported with the flag or variable that caused it before anything else happens.
import { CONNECTOR_ID_PATTERN } from '../contract/agent-process.ts';
import { bestEffortFlagValue, type FlagSpecs, flagName, type ParsedFlags, parseFlags } from '../lib/cli.ts';
import { parseDurationField } from '../lib/duration.ts';
import { isCodedError } from '../lib/errors.ts';
import { type HostPort, parseHostPort } from '../lib/host-port.ts';
import { isLogLevel, type LogLevel } from '../lib/logger.ts';
import { type AgentFailure, configurationFailure } from './failure.ts';
import { MAX_PATH_CHECKS, type PathCheckTarget, parsePathCheck } from './path-checks.ts';

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
    multiple: true,
    description:
      'Extra runtime path name=host:port probed by TCP connect before each heartbeat; repeatable ' +
      '(or a comma list).',
  },
  'give-up-after': {
    env: 'VAULTPAM_GIVE_UP_AFTER',
    default: '0',
    description: 'Exit 14 after the control plane was unreachable this long (e.g. 15m); 0 retries forever.',
  },
  'give-up-on-refusal-after': {
    env: 'VAULTPAM_GIVE_UP_ON_REFUSAL_AFTER',
    default: '5m',
    description:
      "Exit 14 (TLS_CLIENT_CERTIFICATE_REJECTED) after every try this long was refused by a TLS alert about the client certificate (e.g. a proxy trusting another CA), so the reason reaches the pod's termination message; 0 retries forever.",
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

export interface AgentConfig {
  connectorId: string;
  controlPlaneUrl: string;
  caFile: string | undefined;
  tokenFile: string | undefined;
  dataDir: string;
  terminationLog: string;
  healthListen: HostPort;
  /** Undefined: use the interval the control plane answers with. */
  heartbeatIntervalMs: number | undefined;
  renewAtFraction: number;
  pathChecks: PathCheckTarget[];
  giveUpAfterMs: number;
  /**
   * How long tries refused by nothing but a TLS alert about the client certificate are retried before
   * exit 14; 0: for ever. Separate from giveUpAfterMs: a refusal is no outage (the address answered),
   * and under the operator (giveUpAfterMs 0) this is how its cause reaches the termination message.
   */
  giveUpOnRefusalAfterMs: number;
  retryInitialMs: number;
  retryMaxMs: number;
  requestTimeoutMs: number;
  sanUriPrefix: string;
  logLevel: LogLevel;
}

export type ParsedCommandLine = { help: true } | { help: false; config: AgentConfig };

function source(flag: string): string {
  return flagName(AGENT_FLAGS, flag);
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
  return bestEffortFlagValue(argv, AGENT_FLAGS, 'termination-log', env) ?? '/dev/termination-log';
}

/** Parses argv and env into a validated configuration; throws an AgentFailure (exit 12) naming the flag. */
export function parseAgentCommandLine(argv: string[], env: NodeJS.ProcessEnv): ParsedCommandLine {
  let parsed: ParsedFlags;
  try {
    parsed = parseFlags(argv, AGENT_FLAGS, env);
  } catch (error) {
    if (isCodedError(error, 'INVALID_FLAGS')) throw configurationFailure(error.message);
    throw error;
  }
  if (parsed.help) return { help: true };
  return { help: false, config: validateAgentConfig(parsed.values, parsed.lists['path-check'] ?? []) };
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
  // `timer`: waited out with a timer, so at most LONGEST_TIMER_MS (clock.ts).
  const duration = (flag: string, options: { allowZero: boolean; timer: boolean }): number => {
    const value = parseDurationField(raw[flag] ?? '', source(flag), options);
    if (typeof value === 'number') return value;
    problems.push(value.problem);
    return 0;
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

  let healthListen: HostPort = { host: '0.0.0.0', port: 8081 };
  const listenText = required('health-listen');
  if (listenText) {
    const address = parseHostPort(listenText, source('health-listen'), { minPort: 0 });
    if ('problem' in address) problems.push(address.problem);
    else healthListen = address;
  }

  const intervalText = optional('heartbeat-interval');
  let heartbeatIntervalMs: number | undefined;
  if (intervalText !== undefined) {
    heartbeatIntervalMs = duration('heartbeat-interval', { allowZero: false, timer: true });
  }

  const fractionText = raw['renew-at-fraction'] ?? '';
  const renewAtFraction = Number(fractionText);
  if (!/^\d*\.?\d+$/.test(fractionText.trim()) || !(renewAtFraction > 0 && renewAtFraction < 1)) {
    problems.push(
      `${source('renew-at-fraction')} must be a number between 0 and 1 (exclusive), got "${fractionText}"`,
    );
  }

  const pathChecks: PathCheckTarget[] = [];
  if (pathCheckTexts.length > MAX_PATH_CHECKS) {
    problems.push(
      `${source('path-check')} is given ${pathCheckTexts.length} times; at most ${MAX_PATH_CHECKS} are allowed (with the tunnel they make the 64 paths a heartbeat carries): check fewer targets`,
    );
  }
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

  const giveUpAfterMs = duration('give-up-after', { allowZero: true, timer: false });
  const giveUpOnRefusalAfterMs = duration('give-up-on-refusal-after', { allowZero: true, timer: false });
  const retryInitialMs = duration('retry-initial', { allowZero: false, timer: true });
  const retryMaxMs = duration('retry-max', { allowZero: false, timer: true });
  if (retryInitialMs > 0 && retryMaxMs > 0 && retryMaxMs < retryInitialMs) {
    problems.push(`${source('retry-max')} must not be shorter than ${source('retry-initial')}`);
  }
  const requestTimeoutMs = duration('request-timeout', { allowZero: false, timer: true });

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
    giveUpOnRefusalAfterMs,
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
