// Command-line and environment configuration of vaultpam-control-plane (flags win over VAULTPAM_CP_*
// environment variables, which win over defaults). Pure: src/bin/control-plane.ts passes argv/env.

import { existsSync } from 'node:fs';
import { MIN_CONTROL_PLANE_HEARTBEAT_INTERVAL_MS } from '../contract/agent-process.ts';
import { type FlagSpecs, flagError, parseFlags, wholeNumberFlag } from '../lib/cli.ts';
import { parseDurationField } from '../lib/duration.ts';
import { parseHostPort } from '../lib/host-port.ts';
import { isLogLevel, type LogLevel } from '../lib/logger.ts';
import { DEFAULTS, readCredentialFile } from './server.ts';

export const CONTROL_PLANE_FLAGS: FlagSpecs = {
  listen: {
    env: 'VAULTPAM_CP_LISTEN',
    default: `${DEFAULTS.host}:${DEFAULTS.port}`,
    description: 'host:port to serve HTTPS on (port 0 picks a free port); loopback unless told otherwise.',
  },
  'data-dir': {
    env: 'VAULTPAM_CP_DATA_DIR',
    default: './control-plane-data',
    description:
      'Directory for the SQLite state, the CA (ca.pem, ca-key.pem), the token key and the admin credential.',
  },
  'heartbeat-interval': {
    env: 'VAULTPAM_CP_HEARTBEAT_INTERVAL',
    default: `${DEFAULTS.heartbeatIntervalSeconds}s`,
    description: 'Heartbeat interval told to agents (e.g. 10s, 1m).',
  },
  'offline-after': {
    env: 'VAULTPAM_CP_OFFLINE_AFTER',
    description: 'No heartbeat for this long means offline [default: 3 heartbeat intervals].',
  },
  'cert-lifetime': {
    env: 'VAULTPAM_CP_CERT_LIFETIME',
    default: '24h',
    description:
      'Lifetime of connector client certificates; at least 9 heartbeat intervals and 5 minutes, so agents can renew in time.',
  },
  'keep-alive-timeout': {
    env: 'VAULTPAM_CP_KEEP_ALIVE_TIMEOUT',
    default: `${DEFAULTS.keepAliveTimeoutSeconds}s`,
    description:
      'How long an idle connection is kept for its next request. Shorter than the heartbeat interval, ' +
      'agents reconnect for each heartbeat with a resumed TLS session (CPU); longer, the control plane ' +
      'holds a connection per agent (about 75 KiB each).',
  },
  'max-connections-per-address': {
    env: 'VAULTPAM_CP_MAX_CONNECTIONS_PER_ADDRESS',
    default: String(DEFAULTS.maxConnectionsPerAddress),
    description:
      'Connections one remote address may hold at once (agents behind one NAT share an address); above it a connection is closed at once.',
  },
  'max-connections': {
    env: 'VAULTPAM_CP_MAX_CONNECTIONS',
    description: `Connections held at once in all; while it refuses some, the offline sweep counts no connector offline for one window [default: ${DEFAULTS.maxConnections}, or fewer if the open-file limit leaves room for fewer].`,
  },
  'san-uri-prefix': {
    env: 'VAULTPAM_CP_SAN_URI_PREFIX',
    default: DEFAULTS.sanUriPrefix,
    description: 'Prefix of the SAN URI that binds a client certificate to its connector.',
  },
  'server-hostname': {
    env: 'VAULTPAM_CP_SERVER_HOSTNAMES',
    multiple: true,
    default: DEFAULTS.serverHostnames.join(','),
    description: "Host names and IPs in the serving certificate's SANs (repeatable or a comma list).",
  },
  'admin-credential-file': {
    env: 'VAULTPAM_CP_ADMIN_CREDENTIAL_FILE',
    description:
      'File with one admin bearer credential per line, or its hash as sha256:<hex>. When absent, the ' +
      'hashes in <data-dir>/admin-credential.sha256 are used; on first start a credential is generated ' +
      'and handed over once in <data-dir>/initial-admin-credential (mode 0600).',
  },
  'log-level': {
    env: 'VAULTPAM_CP_LOG_LEVEL',
    default: 'info',
    description: 'fatal, error, warn, info, debug, trace or silent.',
  },
};

export interface ControlPlaneCommandLine {
  help: boolean;
  host: string;
  port: number;
  dataDir: string;
  heartbeatIntervalSeconds: number;
  offlineAfterSeconds: number;
  certificateLifetimeSeconds: number;
  keepAliveTimeoutSeconds: number;
  maxConnectionsPerAddress: number;
  /** Absent: the default, fitted to the open-file limit without a word. */
  maxConnections?: number;
  sanUriPrefix: string;
  serverHostnames: string[];
  adminCredentials: string[] | undefined;
  adminCredentialFile: string | undefined;
  logLevel: LogLevel;
}

/** Seconds from "90", "90s", "5m", "24h", "1d" or "4m59s" (the shared grammar of src/lib/duration.ts). */
export function parseDurationSeconds(flag: string, value: string, { timer = false } = {}): number {
  const milliseconds = parseDurationField(value, `--${flag}`, { allowZero: false, timer });
  if (typeof milliseconds !== 'number') throw flagError(milliseconds.problem);
  return milliseconds / 1000;
}

/**
 * The shortest certificate lifetime the CLI accepts: the larger of 9 heartbeat intervals and 5
 * minutes. An agent renews at renewAfter, two thirds into the lifetime, so 9 intervals leave it 3
 * heartbeats to renew before expiry (the patience --offline-after has by default), enough to retry
 * when one try fails (a control plane restarting, a slow network). 5 minutes keeps renewals of one
 * connector at most one per 3 min 20 s, well inside its renewal budget (5, then one a minute), so a
 * retry is never refused as too frequent. Code and tests may start a control plane with less.
 */
export const MIN_CERT_LIFETIME_INTERVALS = 9;
export const MIN_CERT_LIFETIME_SECONDS = 300;

export function minimumCertificateLifetimeSeconds(heartbeatIntervalSeconds: number): number {
  return Math.max(MIN_CERT_LIFETIME_INTERVALS * heartbeatIntervalSeconds, MIN_CERT_LIFETIME_SECONDS);
}

/** The --cert-lifetime in seconds, refused when agents could not renew in time (see above). */
function certificateLifetime(value: string, interval: { seconds: number; text: string }): number {
  const seconds = parseDurationSeconds('cert-lifetime', value);
  const minimum = minimumCertificateLifetimeSeconds(interval.seconds);
  if (seconds < minimum) {
    throw flagError(
      `--cert-lifetime (VAULTPAM_CP_CERT_LIFETIME) of ${value} is too short for agents to renew in time: ` +
        `the minimum is ${minimum}s, the larger of ${MIN_CERT_LIFETIME_INTERVALS} heartbeat intervals ` +
        `(--heartbeat-interval ${interval.text}) and ${MIN_CERT_LIFETIME_SECONDS / 60} minutes, which leaves ` +
        `${MIN_CERT_LIFETIME_INTERVALS / 3} heartbeats between renewAfter (two thirds into the lifetime) and expiry`,
    );
  }
  return seconds;
}

export function parseControlPlaneCommandLine(
  argv: string[],
  env: NodeJS.ProcessEnv,
): ControlPlaneCommandLine {
  const { values, lists, help } = parseFlags(argv, CONTROL_PLANE_FLAGS, env);
  const get = (name: string) => values[name];
  const listen = parseHostPort(get('listen') as string, '--listen', { minPort: 0 });
  if ('problem' in listen) throw flagError(listen.problem);
  const serverHostnames = lists['server-hostname'] ?? [];
  if (serverHostnames.length === 0) throw flagError('--server-hostname: at least one name is needed');
  const heartbeatIntervalSeconds = parseDurationSeconds(
    'heartbeat-interval',
    get('heartbeat-interval') as string,
    { timer: true },
  );
  if (heartbeatIntervalSeconds < MIN_CONTROL_PLANE_HEARTBEAT_INTERVAL_MS / 1000) {
    // Agents beat at most once a second on a control plane's word (src/agent/heartbeat-interval.ts).
    throw flagError(
      `--heartbeat-interval (${get('heartbeat-interval')}) is shorter than 1s: agents beat at most once a ` +
        "second on the control plane's word, so connectors would go offline between heartbeats; give at least 1s",
    );
  }
  const offlineRaw = get('offline-after');
  const offlineAfterSeconds =
    offlineRaw === undefined
      ? heartbeatIntervalSeconds * DEFAULTS.offlineAfterIntervals
      : parseDurationSeconds('offline-after', offlineRaw);
  if (offlineAfterSeconds < heartbeatIntervalSeconds) {
    // Every healthy connector would be declared offline between two of its heartbeats.
    throw flagError(
      `--offline-after (${offlineRaw}) is shorter than --heartbeat-interval (${get('heartbeat-interval')}): ` +
        'connectors would go offline between two heartbeats; give at least the interval ' +
        `(the default is ${DEFAULTS.offlineAfterIntervals} intervals)`,
    );
  }
  const logLevel = get('log-level') as string;
  if (!isLogLevel(logLevel)) throw flagError(`--log-level: "${logLevel}" is not a log level`);
  const adminCredentialFile = get('admin-credential-file');
  let adminCredentials: string[] | undefined;
  if (adminCredentialFile !== undefined && !help) {
    if (!existsSync(adminCredentialFile))
      throw flagError(`--admin-credential-file: ${adminCredentialFile} does not exist`);
    adminCredentials = readCredentialFile(adminCredentialFile);
    if (adminCredentials.length === 0)
      throw flagError(`--admin-credential-file: ${adminCredentialFile} holds no credential`);
  }
  const sanUriPrefix = get('san-uri-prefix') as string;
  if (!/^[a-z][a-z0-9+.-]*:/i.test(sanUriPrefix))
    throw flagError('--san-uri-prefix: must be a URI prefix like spiffe://…/');
  return {
    help,
    host: listen.host,
    port: listen.port,
    dataDir: get('data-dir') as string,
    heartbeatIntervalSeconds,
    offlineAfterSeconds,
    certificateLifetimeSeconds: certificateLifetime(get('cert-lifetime') as string, {
      seconds: heartbeatIntervalSeconds,
      text: get('heartbeat-interval') as string,
    }),
    keepAliveTimeoutSeconds: parseDurationSeconds('keep-alive-timeout', get('keep-alive-timeout') as string, {
      timer: true,
    }),
    maxConnectionsPerAddress: wholeNumberFlag(
      get('max-connections-per-address') as string,
      'max-connections-per-address',
      1,
    ),
    ...(get('max-connections') === undefined
      ? {}
      : { maxConnections: wholeNumberFlag(get('max-connections') as string, 'max-connections', 1) }),
    sanUriPrefix,
    serverHostnames,
    adminCredentials,
    adminCredentialFile,
    logLevel,
  };
}
