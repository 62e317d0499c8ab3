// How many connections the control plane holds, and from whom. Every connection costs memory (about
// 75 KiB of TLS state) and a file descriptor before its caller has proved anything, so a caller with
// no credential could otherwise hold every slot and keep the connectors' heartbeats out: the offline
// sweep then took them all for offline, a change of state made by nobody. Three bounds: the
// connections of one address (refused above it, at once), the connections in all (Node refuses
// above it), and the time a connection may take to say something (its TLS handshake, server.ts,
// then its first request, here). When the total bound refuses a connection, a connector
// whose heartbeat could not get in is not counted offline: the sweep grants every connector a fresh
// grace period from then, as after a restart (onSaturated).
import type { Server } from 'node:https';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';

export interface ConnectionLimitOptions {
  /** Connections from one remote address held at once (a fleet behind one NAT shares one). */
  perAddress: number;
  /** Connections held at once in all. */
  total: number;
  logger: Logger;
  /** Counts a refused connection by reason. */
  refused: (reason: 'per_address' | 'total') => void;
  /** The total bound refused a connection: connectors may have been kept from beating. */
  onSaturated: () => void;
  /**
   * How long a connection may take from its accept to its first request, TLS handshake included:
   * Node's headers deadline counts only from a request's first byte, so a connection that never
   * sends one was held until the request deadline's check, 86 s.
   */
  firstRequestWithinMs: number;
  /** Real time, for the warn line's pace. */
  now?: () => number;
}

/** A warn line at most this often while connections are refused (each refusal is counted). */
const WARN_EVERY_MS = 60_000;

export class ConnectionLimits {
  private readonly options: ConnectionLimitOptions;
  private readonly byAddress = new Map<string, number>();
  private open = 0;
  private lastWarnedAt = Number.NEGATIVE_INFINITY;
  private refusedSinceWarn = 0;
  /**
   * Connections that sent a request, by remote address and port (the TLS socket a request comes on
   * wraps the accepted one, and both have these); the others are closed at their deadline.
   */
  private readonly spoken = new Set<string>();

  constructor(options: ConnectionLimitOptions) {
    this.options = options;
  }

  /** Connections held now. */
  get openConnections(): number {
    return this.open;
  }

  attach(server: Server): void {
    server.maxConnections = this.options.total;
    server.on('drop', () => {
      this.options.refused('total');
      this.options.onSaturated();
      this.warn('total', `${this.options.total} connections are open, the most the control plane holds`);
    });
    server.on('connection', (socket: Socket) => this.accept(socket));
  }

  /** A request arrived on `socket`: it is past its first-request deadline. */
  requested(socket: Socket): void {
    this.spoken.add(connectionKey(socket));
  }

  private accept(socket: Socket): void {
    const address = addressGroup(socket.remoteAddress ?? '');
    const held = this.byAddress.get(address) ?? 0;
    if (held >= this.options.perAddress) {
      this.options.refused('per_address');
      this.warn('per_address', `${address} holds ${held} connections, the most one address may`);
      socket.destroy();
      return;
    }
    this.byAddress.set(address, held + 1);
    this.open += 1;
    const key = connectionKey(socket);
    const deadline = setTimeout(() => {
      if (!this.spoken.has(key)) socket.destroy();
    }, this.options.firstRequestWithinMs);
    deadline.unref();
    socket.once('close', () => {
      clearTimeout(deadline);
      this.spoken.delete(key);
      this.open -= 1;
      const left = (this.byAddress.get(address) ?? 1) - 1;
      if (left > 0) this.byAddress.set(address, left);
      else this.byAddress.delete(address);
    });
  }

  private warn(reason: 'per_address' | 'total', why: string): void {
    this.refusedSinceWarn += 1;
    const now = (this.options.now ?? Date.now)();
    if (now - this.lastWarnedAt < WARN_EVERY_MS) return;
    this.options.logger.warn(
      { reason, refusedSinceLastLine: this.refusedSinceWarn },
      `refusing connections: ${why} (cp_connections_refused_total counts each)`,
    );
    this.lastWarnedAt = now;
    this.refusedSinceWarn = 0;
  }
}

function connectionKey(socket: Socket): string {
  return `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`;
}

/**
 * The unit one caller is counted by: an IPv4 address (also when written IPv4-mapped), or an IPv6
 * /64, the smallest network a site is given (a caller holding one holds 2^64 addresses).
 */
export function addressGroup(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (!address.includes(':')) return address;
  const [head = '', tail] = address.split('%')[0]?.split('::') ?? [''];
  const front = head === '' ? [] : head.split(':');
  const back = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined ? front : [...front, ...Array(8 - front.length - back.length).fill('0'), ...back];
  return `${groups
    .slice(0, 4)
    .map((group) => group.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/** Descriptors the process keeps for itself beyond connections (the database, files, logs). */
const RESERVED_DESCRIPTORS = 64;

/**
 * The connections the process can hold by its soft open-file limit (Linux: /proc/self/limits), or
 * undefined where that cannot be read. Above it accepting fails before Node's own bound is reached,
 * with no event to tell: the bound must sit below it.
 */
export function connectionsTheDescriptorsAllow(limitsText: string | undefined): number | undefined {
  const match = limitsText === undefined ? null : /^Max open files\s+(\d+|unlimited)\s/m.exec(limitsText);
  if (!match?.[1] || match[1] === 'unlimited') return undefined;
  return Math.max(1, Number(match[1]) - RESERVED_DESCRIPTORS);
}
