// Runtime paths the agent reports with each heartbeat. `tunnel` is the mTLS session itself (a
// heartbeat that arrives proves it); extra paths are targets behind the connector, probed with a
// plain TCP connect, so one unreachable target shows the connector as degraded, not offline.
import { connect } from 'node:net';
import { type HostPort, parseHostPort } from '../lib/host-port.ts';

export interface PathCheckTarget extends HostPort {
  name: string;
}

export interface PathHealth {
  name: string;
  healthy: boolean;
  detail?: string;
}

const NAME_PATTERN = /^[a-z0-9]([a-z0-9_.-]{0,62})$/;
// The heartbeat carries at most 64 paths whose names and details come to at most 32 KiB (the
// control plane's contract; it refuses a heartbeat past either, so the connector would read as
// offline while its tunnel works; the bound is in UTF-8 bytes). The tunnel is one of them, and a
// detail names the host and port, so the host is bounded in bytes: printable ASCII only (as DNS
// carries names: an internationalized one in its punycode form, xn--…), at most 253 characters (a
// DNS name's bound). A name of at most 63, such a host, and a detail's fixed words and errno code
// come to under 400 bytes, and 63 checks to under 25 KiB. Before, the bound counted characters: 253
// three-byte characters made 63 checks 53,739 bytes, and every heartbeat was refused.
export const MAX_PATH_CHECKS = 63;
const MAX_HOST_LENGTH = 253;
const ASCII_HOST = /^[\x21-\x7e]+$/;

/** Parses `name=host:port`; returns the target or a message saying what is wrong. */
export function parsePathCheck(text: string): PathCheckTarget | string {
  const equals = text.indexOf('=');
  if (equals <= 0) return `"${text}" must look like name=host:port (for example db=10.0.0.5:5432)`;
  const name = text.slice(0, equals).trim();
  const address = text.slice(equals + 1).trim();
  if (!NAME_PATTERN.test(name)) {
    return `"${text}": path name "${name}" must be lowercase letters, digits, '.', '_' or '-' (at most 63)`;
  }
  const target = parseHostPort(address, `"${text}"`, { minPort: 1 });
  if ('problem' in target) return target.problem;
  if (!ASCII_HOST.test(target.host)) {
    return `"${name}=…": the host must be printable ASCII, as DNS carries names (an internationalized name in its punycode form, xn--…)`;
  }
  if (target.host.length > MAX_HOST_LENGTH) {
    return `"${name}=…": the host is ${target.host.length} characters; a host name is at most ${MAX_HOST_LENGTH}`;
  }
  return { name, ...target };
}

/** One TCP connect with a timeout; never throws. */
export function probeTcp(target: PathCheckTarget, timeoutMs: number): Promise<PathHealth> {
  return new Promise((resolve) => {
    const socket = connect({ host: target.host, port: target.port });
    const done = (health: PathHealth) => {
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      resolve(health);
    };
    socket.setTimeout(timeoutMs, () =>
      done({
        name: target.name,
        healthy: false,
        detail: `connect to ${target.host}:${target.port} timed out`,
      }),
    );
    socket.once('connect', () => done({ name: target.name, healthy: true }));
    socket.once('error', (error: NodeJS.ErrnoException) =>
      done({
        name: target.name,
        healthy: false,
        detail: `connect to ${target.host}:${target.port} failed: ${error.code ?? error.message}`,
      }),
    );
  });
}

export type PathProber = (target: PathCheckTarget, timeoutMs: number) => Promise<PathHealth>;

/** The extra paths' health, probed concurrently; `tunnel` is added by the caller that sends it. */
export async function checkPaths(
  targets: readonly PathCheckTarget[],
  timeoutMs: number,
  probe: PathProber = probeTcp,
): Promise<PathHealth[]> {
  return Promise.all(targets.map((target) => probe(target, timeoutMs)));
}
