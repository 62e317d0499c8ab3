// How many connections a server holds, and from whom. Every connection costs memory (about 75 KiB of
// TLS state on an HTTPS server) and a file descriptor before its caller has proved anything, so a
// caller with no credential could otherwise hold every slot (a slowloris: thousands of half-sent
// requests) and keep the callers that matter out. Three bounds: the connections of one address
// (refused above it, at once), the connections in all (Node refuses above it), and the time a
// connection may take to say something (its TLS handshake and request headers: deadlineOptions,
// given to createServer; then its first request, here).
//
// Used by the reference control plane (whose connectors' heartbeats must get in: when the total
// bound refuses a connection it grants every connector a fresh grace, onSaturated; callers counted
// by IPv6 /64) and by the operator's two listeners (the probes and /metrics: `bounded` in
// operator/runtime/server.ts; callers counted by address, see AddressGrouping).
import { readFileSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import type { Server, Socket } from 'node:net';
import { backgroundClock, type Clock } from './clock.ts';
import type { Logger } from './logger.ts';

/**
 * createServer's deadlines: the TLS handshake (https only; http ignores it) and a request's headers
 * within `firstWordsMs`, the whole request within `requestMs`, checked every `checkEveryMs` (Node's
 * default check, every 30 s, adds up to that to each deadline).
 */
export function deadlineOptions(options: { firstWordsMs: number; requestMs: number; checkEveryMs: number }): {
  handshakeTimeout: number;
  headersTimeout: number;
  requestTimeout: number;
  connectionsCheckingInterval: number;
} {
  return {
    handshakeTimeout: options.firstWordsMs,
    headersTimeout: options.firstWordsMs,
    requestTimeout: options.requestMs,
    connectionsCheckingInterval: options.checkEveryMs,
  };
}

export interface ConnectionLimitOptions {
  /** Connections from one caller held at once (a fleet behind one NAT shares one). */
  perAddress: number;
  /** What one caller is: a remote address, or an IPv6 /64 (AddressGrouping). */
  grouping: AddressGrouping;
  /** Connections held at once in all. */
  total: number;
  logger: Logger;
  /** Names the server in the warn line ("the control plane", "the metrics listener"). */
  serverName: string;
  /** Counts a refused connection by reason; the warn line names what counts them (`countedAs`). */
  refused?: (reason: 'per_address' | 'total') => void;
  /** The metric that counts refusals, named in the warn line; omitted: none is named. */
  countedAs?: string;
  /** The total bound refused a connection (the control plane: connectors may have been kept from beating). */
  onSaturated?: () => void;
  /**
   * How long a connection may take from its accept to its first request, TLS handshake included:
   * Node's headers deadline counts only from a request's first byte, so a connection that never
   * sends one was held until the request deadline's check, 86 s.
   */
  firstRequestWithinMs: number;
  /** Timers and the warn line's pace; backgroundClock when omitted (its timers hold no process open). */
  clock?: Clock;
}

/** A warn line at most this often while connections are refused (each refusal is counted). */
const WARN_EVERY_MS = 60_000;

export class ConnectionLimits {
  private readonly options: ConnectionLimitOptions;
  private readonly byAddress = new Map<string, number>();
  /** Every connection held, for destroyAll. */
  private readonly sockets = new Set<Socket>();
  private open = 0;
  private lastWarnedAt = Number.NEGATIVE_INFINITY;
  private refusedSinceWarn = 0;
  /**
   * Connections that sent a request, by remote address and port (the TLS socket a request comes on
   * wraps the accepted one, and both have these); the others are closed at their deadline.
   */
  private readonly spoken = new Set<string>();

  private readonly clock: Clock;

  constructor(options: ConnectionLimitOptions) {
    this.options = options;
    this.clock = options.clock ?? backgroundClock;
  }

  /** Connections held now. */
  get openConnections(): number {
    return this.open;
  }

  attach(server: Server): void {
    server.maxConnections = this.options.total;
    server.on('drop', () => {
      this.options.refused?.('total');
      this.options.onSaturated?.();
      this.warn(
        'total',
        `${this.options.total} connections are open, the most ${this.options.serverName} holds`,
      );
    });
    server.on('connection', (socket: Socket) => this.accept(socket));
  }

  /** A request arrived on `socket`: it is past its first-request deadline. */
  requested(socket: Socket): void {
    this.spoken.add(connectionKey(socket));
  }

  private accept(socket: Socket): void {
    const address = addressGroup(socket.remoteAddress ?? '', this.options.grouping);
    const held = this.byAddress.get(address) ?? 0;
    if (held >= this.options.perAddress) {
      this.options.refused?.('per_address');
      this.warn('per_address', `${address} holds ${held} connections, the most one address may`);
      socket.destroy();
      return;
    }
    this.byAddress.set(address, held + 1);
    this.open += 1;
    this.sockets.add(socket);
    const key = connectionKey(socket);
    const deadline = this.clock.setTimeout(() => {
      if (!this.spoken.has(key)) socket.destroy();
    }, this.options.firstRequestWithinMs);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.clock.clearTimeout(deadline);
      this.spoken.delete(key);
      this.open -= 1;
      const left = (this.byAddress.get(address) ?? 1) - 1;
      if (left > 0) this.byAddress.set(address, left);
      else this.byAddress.delete(address);
    });
  }

  /**
   * Destroys every connection held, also those still in their TLS handshake (which an HTTPS
   * server's closeAllConnections does not know of yet).
   */
  destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  private warn(reason: 'per_address' | 'total', why: string): void {
    this.refusedSinceWarn += 1;
    const now = this.clock.now().getTime();
    if (now - this.lastWarnedAt < WARN_EVERY_MS) return;
    this.options.logger.warn(
      { reason, refusedSinceLastLine: this.refusedSinceWarn },
      `${this.options.serverName} is refusing connections: ${why}${this.options.countedAs ? ` (${this.options.countedAs} counts each)` : ''}`,
    );
    this.lastWarnedAt = now;
    this.refusedSinceWarn = 0;
  }
}

/**
 * Stops `server` accepting and resolves once every connection is gone: idle ones are closed at once,
 * the rest after `graceMs` (with `limits`, also those still in their handshake). Without the cut, one
 * half-sent request held the close, and the process's stop, for as long as its sender liked.
 */
export function closeServer(
  server: HttpServer,
  options: { graceMs: number; clock?: Clock; limits?: ConnectionLimits },
): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    const clock = options.clock ?? backgroundClock;
    const cut = clock.setTimeout(() => {
      server.closeAllConnections();
      options.limits?.destroyAll();
    }, options.graceMs);
    server.close(() => {
      clock.clearTimeout(cut);
      resolve();
    });
    server.closeIdleConnections();
  });
}

function connectionKey(socket: Socket): string {
  return `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`;
}

/**
 * How callers are told apart: `address`, each remote address (an IPv4 address, also when written
 * IPv4-mapped, or an IPv6 address); `ipv6-64`, an IPv6 address by its /64, the smallest network a
 * site is given (a caller holding one holds 2^64 addresses), and an IPv4 address by itself.
 *
 * `ipv6-64` suits a server on the internet (the reference control plane). It does not suit a
 * listener inside a cluster: an IPv6 pod network puts many pods in one /64 (a node's pod range is
 * often one), so one pod could hold the slots of all its neighbours, Prometheus' among them, and
 * hostNetwork pods sharing the node's /64 those the kubelet probes with. The operator's listeners
 * count by `address`.
 */
export type AddressGrouping = 'address' | 'ipv6-64';

/** The unit one caller is counted by, under `grouping` (see AddressGrouping). */
export function addressGroup(address: string, grouping: AddressGrouping): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (!address.includes(':')) return address;
  const [head = '', tail] = address.split('%')[0]?.split('::') ?? [''];
  const front = head === '' ? [] : head.split(':');
  const back = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = (
    tail === undefined ? front : [...front, ...Array(8 - front.length - back.length).fill('0'), ...back]
  ).map((group) => group.toLowerCase().replace(/^0+(?=.)/, ''));
  return grouping === 'address' ? groups.join(':') : `${groups.slice(0, 4).join(':')}::/64`;
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

/** The process's resource limits as Linux shows them (/proc/self/limits), or undefined elsewhere. */
export function processLimitsText(): string | undefined {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return undefined;
  }
}
