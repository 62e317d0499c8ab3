// Shared setup for the control-plane tests: a control plane on a throwaway data dir on loopback,
// an admin client, and a minimal agent that enrolls and speaks mTLS with node:https.
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import type { ExecutionContext } from 'ava';
import {
  type ControlPlaneOptions,
  type StartedControlPlane,
  startControlPlane,
  usableAdminCredential,
} from '../../src/controlplane/server.ts';
import { FakeClock } from '../../src/lib/clock.ts';
import { createCsrPem, generateKeyPairPem, issueCertificatePem } from '../../src/lib/pki.ts';
import { ControlPlaneAdminClient } from '../../src/operator/control-plane/admin-client.ts';
import { type CapturedLogs, captureLogs } from '../helpers/log-capture.ts';

export interface Harness {
  cp: StartedControlPlane;
  admin: ControlPlaneAdminClient;
  clock: FakeClock;
  logs: CapturedLogs;
  dataDir: string;
  /** Every API response body seen by raw() and agents, for secret scans. */
  responses: string[];
  restart(overrides?: Partial<ControlPlaneOptions>): Promise<void>;
}

export const CONFIG = { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] };

export async function startHarness(
  t: ExecutionContext,
  overrides: Partial<ControlPlaneOptions> = {},
): Promise<Harness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cp-test-'));
  // Real "now", so certificates issued on the fake clock are valid for TLS too; tests move it forward.
  const clock = new FakeClock(Date.now());
  const logs = captureLogs('control-plane', 'debug');
  const options = (): ControlPlaneOptions & { port: number } => ({
    dataDir,
    clock,
    logger: logs.logger,
    port: 0,
    sweepIntervalMs: 3_600_000,
    ...overrides,
  });
  const harness = {
    clock,
    logs,
    dataDir,
    responses: [] as string[],
  } as unknown as Harness;
  const open = async (more: Partial<ControlPlaneOptions> = {}) => {
    // After a restart whose hand-over file was deleted, the control plane knows only the hash: keep
    // using the credential the first start handed over.
    const known = harness.cp?.adminCredential;
    harness.cp = await startControlPlane({ ...options(), ...more });
    harness.admin = new ControlPlaneAdminClient({
      url: harness.cp.url,
      caPem: harness.cp.caPem,
      credential: harness.cp.adminCredential ?? known ?? usableAdminCredential(harness.cp),
    });
  };
  await open();
  harness.restart = async (more) => {
    harness.admin.close();
    await harness.cp.close();
    await open(more);
  };
  t.teardown(async () => {
    harness.admin.close();
    await harness.cp.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return harness;
}

export interface RawResponse {
  status: number;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever shape the route answers
  json: any;
}

export interface RawOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  key?: string;
  cert?: string;
  ca?: string;
  agent?: Agent;
}

/** One HTTPS request with full control over headers, body and client certificate. */
export function raw(h: Harness, path: string, options: RawOptions = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${h.cp.url}${path}`,
      {
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        ca: options.ca ?? h.cp.caPem,
        key: options.key,
        cert: options.cert,
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          h.responses.push(text);
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export function jsonRequest(method: string, body: unknown, extra: RawOptions = {}): RawOptions {
  return {
    method,
    headers: { 'content-type': 'application/json', ...(extra.headers ?? {}) },
    body: JSON.stringify(body),
    ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'headers')),
  };
}

export interface TestAgent {
  connectorId: string;
  keyPem: string;
  certPem?: string;
  /** The token it paired with (set by enrolledAgent): once retired, its own spent token. */
  pairedWith?: string;
  enroll(token: string): Promise<RawResponse>;
  heartbeat(paths?: Array<{ name: string; healthy: boolean; detail?: string }>): Promise<RawResponse>;
  renew(): Promise<RawResponse>;
}

export async function makeAgent(h: Harness, connectorId: string): Promise<TestAgent> {
  const key = await generateKeyPairPem('ec-p256');
  const agent: TestAgent = {
    connectorId,
    keyPem: key.privateKeyPem,
    async enroll(token) {
      const csrPem = createCsrPem(key.privateKeyPem, connectorId);
      const res = await raw(h, '/v1/enroll', jsonRequest('POST', { connectorId, token, csrPem }));
      if (res.status === 201) agent.certPem = res.json.certificatePem;
      return res;
    },
    heartbeat(paths = [{ name: 'tunnel', healthy: true }]) {
      return raw(
        h,
        '/v1/heartbeat',
        jsonRequest('POST', { paths }, { key: key.privateKeyPem, cert: agent.certPem }),
      );
    },
    async renew() {
      const csrPem = createCsrPem(key.privateKeyPem, connectorId);
      const res = await raw(
        h,
        '/v1/renew',
        jsonRequest('POST', { csrPem }, { key: key.privateKeyPem, cert: agent.certPem }),
      );
      if (res.status === 200) agent.certPem = res.json.certificatePem;
      return res;
    },
  };
  return agent;
}

/** Creates the connector, mints a token, enrolls; returns the agent (state: enrolling). */
export async function enrolledAgent(h: Harness, connectorId: string): Promise<TestAgent> {
  await h.admin.ensureConnector(connectorId, CONFIG);
  const minted = await h.admin.mintToken(connectorId, { idempotencyKey: `first-${connectorId}` });
  const agent = await makeAgent(h, connectorId);
  const res = await agent.enroll(minted.token);
  if (res.status !== 201) throw new Error(`enroll failed: ${res.status} ${res.text}`);
  agent.pairedWith = minted.token;
  return agent;
}

export async function metricValue(h: Harness, name: string, labels = ''): Promise<number> {
  const text = await h.cp.metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

export function adminHeaders(h: Harness): Record<string, string> {
  return { authorization: `Bearer ${h.cp.adminCredential}` };
}

/**
 * Sends `count` requests built by `build(i)` over kept-alive connections, `concurrency` at a time
 * (a flood from one client, fast enough for thousands in a test); returns every answer in order.
 */
export async function flood(
  h: Harness,
  count: number,
  build: (i: number) => { path: string; options: RawOptions },
  concurrency = 8,
): Promise<RawResponse[]> {
  const agent = new Agent({ ca: h.cp.caPem, keepAlive: true, maxSockets: concurrency });
  const answers: RawResponse[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const { path, options } = build(i);
      answers[i] = await raw(h, path, { ...options, agent });
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    agent.destroy();
  }
  return answers;
}

/**
 * Writes bytes on a fresh TLS connection and returns all the server answered until it closed; with
 * `abort`, the client drops the connection right after writing instead (an upload cut off).
 */
export function rawTls(h: Harness, bytes: string, abort = false): Promise<string> {
  const { hostname, port } = new URL(h.cp.url);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: hostname, port: Number(port), ca: h.cp.caPem }, () =>
      socket.write(bytes, () => {
        if (abort) setTimeout(() => socket.destroy(), 20);
      }),
    );
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

export interface CraftedCertificateOptions {
  /** Signed by a CA of its own instead of the control plane's. */
  issuer?: 'other';
  /** Without the connector SAN URI. */
  noSan?: boolean;
  /** Validity bounds in milliseconds from now (default: from now for an hour). */
  validFrom?: number;
  validTo?: number;
}

/**
 * A client certificate for `keyPem` made like the control plane's connector certificates, with its
 * real CA key from the data directory, and varied one way: another CA, no SAN URI, other dates.
 */
export async function craftedCertificate(
  h: Harness,
  keyPem: string,
  connectorId: string,
  options: CraftedCertificateOptions = {},
): Promise<string> {
  const now = Date.now();
  const issuer = options.issuer === 'other' ? await otherCa() : caOf(h);
  return issueCertificatePem({
    issuerKeyPem: issuer.keyPem,
    issuerCertPem: issuer.certPem,
    subjectPublicKey: createPublicKey(keyPem),
    subject: [{ shortName: 'CN', value: connectorId }],
    notBefore: new Date(now + (options.validFrom ?? 0)),
    notAfter: new Date(now + (options.validTo ?? 3_600_000)),
    ...(options.noSan ? {} : { sanUris: [`spiffe://vaultpam.local/connector/${connectorId}`] }),
    extendedKeyUsage: ['clientAuth'],
  });
}

function caOf(h: Harness): { keyPem: string; certPem: string } {
  return { keyPem: readFileSync(join(h.dataDir, 'ca-key.pem'), 'utf8'), certPem: h.cp.caPem };
}

async function otherCa(): Promise<{ keyPem: string; certPem: string }> {
  const key = await generateKeyPairPem('ec-p256');
  const now = Date.now();
  const certPem = issueCertificatePem({
    issuerKeyPem: key.privateKeyPem,
    subjectPublicKey: key.publicKeyPem,
    subject: [{ shortName: 'CN', value: 'another CA' }],
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3_600_000),
    isCa: true,
  });
  return { keyPem: key.privateKeyPem, certPem };
}

/** A heartbeat with the given client certificate and the agent's key. */
export function heartbeatWith(h: Harness, agent: TestAgent, cert: string, body: unknown = { paths: [] }) {
  return raw(h, '/v1/heartbeat', jsonRequest('POST', body, { key: agent.keyPem, cert }));
}
