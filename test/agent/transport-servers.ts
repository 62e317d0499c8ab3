// Real faulty peers for the transport tests: a listening port whose accept queue is full (the
// kernel drops further SYNs, as a firewall that drops packets does), a port that accepts TCP and
// never speaks, a plain HTTP port, TLS servers of any configuration, `openssl s_server` (it sends
// the TLS alerts node's own servers never send), and a TCP proxy that can stall mid-connection.
import { type ChildProcess, spawn } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions } from 'node:https';
import {
  type AddressInfo,
  connect,
  createServer as createTcpServer,
  type Server,
  type Socket,
} from 'node:net';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { ControlPlaneClient, type ControlPlaneClientOptions } from '../../src/agent/control-plane-client.ts';
import { systemClock } from '../../src/lib/clock.ts';
import { CodedError } from '../../src/lib/errors.ts';
import { generateKeyPairPem, issueCertificatePem } from '../../src/lib/pki.ts';
import { type TestCa, tempDir } from './fixtures.ts';

export const heartbeat = { paths: [{ name: 'tunnel', healthy: true }] };

function ignoreErrors(socket: Socket): Socket {
  socket.on('error', () => {});
  return socket;
}

async function listen(t: ExecutionContext, server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

/** The URL of a control plane at 127.0.0.1:<port>. */
export function urlOf(port: number): string {
  return `https://127.0.0.1:${port}`;
}

// A child process listens with a backlog of 1, then blocks its event loop for good: it never
// accepts, so once the kernel's accept queue is full every further SYN is dropped.
const LISTEN_WITHOUT_ACCEPTING = `
const server = require('node:net').createServer();
server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
  process.stdout.write(server.address().port + '\\n', () => {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  });
});`;

/**
 * A port that never answers a TCP connect: a listener whose accept queue is full. Connections are
 * opened until one stays unanswered, which proves the kernel now drops SYNs there.
 */
export async function droppingPort(t: ExecutionContext): Promise<number> {
  const child: ChildProcess = spawn(process.execPath, ['-e', LISTEN_WITHOUT_ACCEPTING], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const fillers: Socket[] = [];
  t.teardown(() => {
    for (const socket of fillers) socket.destroy();
    child.kill('SIGKILL');
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout?.once('data', (data: Buffer) => resolve(Number(String(data).trim())));
  });
  for (let attempt = 0; attempt < 16; attempt += 1) {
    const socket = ignoreErrors(connect(port, '127.0.0.1'));
    fillers.push(socket);
    const answered = await new Promise<boolean>((resolve) => {
      socket.once('connect', () => resolve(true));
      setTimeout(() => resolve(false), 300);
    });
    if (!answered) return port;
  }
  throw new Error('the accept queue of the dropping port never filled');
}

/** A port that accepts TCP connections and never sends a byte (no TLS handshake ever). */
export async function silentTcpPort(t: ExecutionContext): Promise<number> {
  const held: Socket[] = [];
  const server = createTcpServer((socket) => held.push(ignoreErrors(socket)));
  t.teardown(() => {
    for (const socket of held) socket.destroy();
  });
  return listen(t, server);
}

/** A plain HTTP server (the control plane's port without TLS, or another service). */
export async function plainHttpPort(t: ExecutionContext): Promise<number> {
  return listen(
    t,
    createHttpServer((_request, response) => response.end('{}')),
  );
}

/**
 * A peer that answers the client's hello with one fatal TLS alert (a plaintext alert record), the
 * way a TLS stack refuses a handshake: for the alerts no server here sends on demand (bad
 * certificate 42, certificate revoked 44, certificate unknown 46, access denied 49), so the client
 * meets the error node really raises for each.
 */
export async function alertingPort(t: ExecutionContext, alert: number): Promise<number> {
  const FATAL = 2;
  const record = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, FATAL, alert]);
  return listen(
    t,
    createTcpServer((socket) => {
      ignoreErrors(socket).once('data', () => socket.end(record));
    }),
  );
}

/** An HTTPS server with any TLS options; by default it answers every request with 200 {}. */
export async function tlsPort(
  t: ExecutionContext,
  options: ServerOptions,
  handler: (request: IncomingMessage, response: ServerResponse) => void = (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(
      JSON.stringify({ state: 'online', renewAfter: new Date().toISOString(), heartbeatIntervalSeconds: 1 }),
    );
  },
): Promise<number> {
  return listen(t, createHttpsServer(options, handler));
}

/** A server certificate for 127.0.0.1 issued by `ca`, as https.createServer options. */
export async function serverCertificate(
  ca: TestCa,
  validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000) },
): Promise<{ key: string; cert: string }> {
  const pair = await generateKeyPairPem('ec-p256');
  const cert = issueCertificatePem({
    issuerKeyPem: ca.keyPem,
    issuerCertPem: ca.certPem,
    subjectPublicKey: createPublicKey(pair.publicKeyPem),
    subject: [{ shortName: 'CN', value: '127.0.0.1' }],
    ...validity,
    sanIps: ['127.0.0.1'],
    extendedKeyUsage: ['serverAuth'],
  });
  return { key: pair.privateKeyPem, cert };
}

/** Whether an `openssl` binary is on the PATH (for `s_server`). */
/**
 * `openssl s_server` requiring a client certificate from `clientCaPem` and refusing any other with
 * the TLS alert OpenSSL's verification picks (unknown ca, certificate expired, ...).
 */
export async function opensslVerifyingServer(
  t: ExecutionContext,
  server: { certPem: string; keyPem: string },
  clientCaPem: string,
): Promise<number> {
  const dir = await tempDir(t, 'vaultpam-s-server-');
  await writeFile(join(dir, 'cert.pem'), server.certPem);
  await writeFile(join(dir, 'key.pem'), server.keyPem, { mode: 0o600 });
  await writeFile(join(dir, 'client-ca.pem'), clientCaPem);
  const child = spawn(
    'openssl',
    [
      's_server',
      '-accept',
      '127.0.0.1:0',
      '-cert',
      join(dir, 'cert.pem'),
      '-key',
      join(dir, 'key.pem'),
      '-CAfile',
      join(dir, 'client-ca.pem'),
      '-Verify',
      '1',
      '-verify_return_error',
      '-www',
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  t.teardown(() => child.kill('SIGKILL'));
  return new Promise<number>((resolve, reject) => {
    let output = '';
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`openssl s_server exited with ${code}: ${output}`)));
    child.stdout.on('data', (data: Buffer) => {
      output += String(data);
      const port = /ACCEPT 127\.0\.0\.1:(\d+)/.exec(output)?.[1];
      if (port) resolve(Number(port));
    });
  });
}

export interface StallingProxy {
  url: string;
  /** From now on nothing is forwarded: open connections go quiet, new ones are accepted and left unanswered. */
  stall(): void;
}

/** A TCP proxy to `targetUrl` (TLS passes through it untouched) that can stall like a dead link. */
export async function stallingProxy(t: ExecutionContext, targetUrl: string): Promise<StallingProxy> {
  const target = new URL(targetUrl);
  const pairs: Array<[Socket, Socket]> = [];
  let stalled = false;
  const server = createTcpServer((client) => {
    ignoreErrors(client);
    if (stalled) {
      pairs.push([client, client]);
      return;
    }
    const upstream = ignoreErrors(connect(Number(target.port), target.hostname));
    client.pipe(upstream);
    upstream.pipe(client);
    pairs.push([client, upstream]);
  });
  t.teardown(() => {
    for (const [client, upstream] of pairs) {
      client.destroy();
      upstream.destroy();
    }
  });
  const port = await listen(t, server);
  return {
    url: urlOf(port),
    stall: () => {
      stalled = true;
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
  };
}

/** A control-plane client against `baseUrl`, closed when the test ends. */
export function clientFor(
  t: ExecutionContext,
  baseUrl: string,
  options: Partial<ControlPlaneClientOptions> & { caPem: string | undefined },
): ControlPlaneClient {
  const client = new ControlPlaneClient({
    baseUrl,
    caFile: '/etc/vaultpam/ca.crt',
    requestTimeoutMs: 2_000,
    clock: systemClock,
    ...options,
  });
  t.teardown(() => client.close());
  return client;
}

/** The CodedError a promise rejects with. */
export async function rejection(promise: Promise<unknown>): Promise<CodedError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!(error instanceof CodedError)) throw new Error(`expected a CodedError, got ${String(error)}`);
  return error;
}

/**
 * The promise's outcome, or a failure when it is still pending after `limitMs`: a generous bound
 * that tells "it ended" from "it hangs for minutes", not a timing assertion.
 */
export async function endsWithin<T>(promise: Promise<T>, limitMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} was still pending after ${limitMs} ms`)), limitMs);
  });
  try {
    return await Promise.race([promise, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** No OpenSSL source path, no literal "\n", no control character: one plain line. */
export function isPlainLine(text: string): boolean {
  return !/\.c:\d+|\\n|\p{Cc}|SSL routines|error:[0-9A-F]{8}/u.test(text);
}
