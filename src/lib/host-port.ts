// The one host:port grammar of every listen address and probe target: a host name or IPv4 address,
// or an IPv6 address in brackets (the brackets are dropped from `host`), a colon, and a port.
// Replaced three parsers that disagreed on IPv6, on an empty host and on what their errors said.

import type { Server } from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

const HOST_PORT = /^(?:\[([0-9A-Fa-f:.]+(?:%[\w.-]+)?)\]|([^\s:[\]]+)):(\d{1,5})$/;

/**
 * Parses `text` (surrounding white space ignored); on failure returns a message that names `field`
 * (a flag, a variable or a setting) and what is expected. `minPort` is 0 for a listen address
 * (0 picks a free port) and 1 for a target to connect to.
 */
export function parseHostPort(
  text: string,
  field: string,
  { minPort }: { minPort: 0 | 1 },
): HostPort | { problem: string } {
  const match = HOST_PORT.exec(text.trim());
  const port = Number(match?.[3]);
  if (match === null || port < minPort || port > 65535) {
    return {
      problem:
        `${field}: "${text}" is not host:port: it must be host:port with a port from ${minPort} to 65535 ` +
        '(an IPv6 address in brackets, e.g. [::1]:8080)',
    };
  }
  return { host: (match[1] ?? match[2]) as string, port };
}

/** `host` as it stands in a URL: an IPv6 address in brackets. */
export function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Listens on `where` (port 0: a free one) and resolves with the address bound, or rejects with the
 * error of the listen (an address in use, one the host does not have). The one way every listener
 * of the project (the operator's, the control plane's, the agent's) starts.
 */
export async function listenOn(server: Server, where: HostPort): Promise<HostPort> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(where.port, where.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address();
  return bound && typeof bound === 'object' ? { host: bound.address, port: bound.port } : where;
}
