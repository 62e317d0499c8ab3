// The agent side of the control plane's agent API (docs/control-plane-contract.md, "Agent API"):
// enroll with a token and a CSR, then heartbeat and renew over mTLS with the identity's key and
// certificate. One HTTPS agent per identity: it keeps an idle connection as long as the control plane
// announces (its Keep-Alive timeout, less a second: src/lib/keep-alive.ts), and it keeps the TLS
// session, so a heartbeat on a new connection resumes the session (no certificate exchange). The
// reference control plane announces 1 s to agents: the client closes the connection after each
// answer, and the control plane holds none per agent (docs/performance.md, "The control plane at
// 10,000 agents").
// Error bodies become CodedErrors with the control plane's own code; transport errors
// are classified by connection-errors.ts. Request bodies (which hold the token) never reach an error.
// One deadline bounds each whole request (DNS, TCP connect, TLS handshake, the answer): node's own
// request timeout counts only socket idle time after the connect, so a host that drops packets
// would otherwise hold a request for the kernel's connect timeout (about two minutes).
import { X509Certificate } from 'node:crypto';
import { type Agent, Agent as HttpsAgent } from 'node:https';
import { isIP, type Socket } from 'node:net';
import {
  type ConnectionOptions,
  type DetailedPeerCertificate,
  type TLSSocket,
  connect as tlsConnect,
} from 'node:tls';
import type {
  EnrollRequest,
  HeartbeatRequest,
  HeartbeatResponse,
  IssuedCertificate,
  RenewRequest,
} from '../contract/control-plane-api.generated.ts';
import type { Clock } from '../lib/clock.ts';
import { CodedError } from '../lib/errors.ts';
import { answerError, type JsonAnswer, requestJson } from '../lib/https-json.ts';
import { KEEP_ALIVE_AGENT_OPTIONS } from '../lib/keep-alive.ts';
import {
  type ConnectionContext,
  classifyConnectionError,
  type PeerValidity,
  type PresentedChain,
  REQUEST_PHASES,
  type RequestPhase,
  type ServerFacts,
  serverFactsToRead,
} from './connection-errors.ts';
import { proxyCertificateRequired } from './proxy-answers.ts';

// The requests are the contract's own types (the token in EnrollRequest is a secret: only ever in
// that request body). The answers are checked field by field as they arrive (certificateAnswer,
// positiveNumber), so they are declared here with what the agent adds: the control plane's clock.
export type { EnrollRequest, HeartbeatRequest, RenewRequest };

export interface CertificateAnswer extends IssuedCertificate {
  /** The control plane's clock when it answered (its HTTP Date header, whole seconds), when it sent one. */
  serverDate?: Date;
}

export interface EnrollAnswer extends CertificateAnswer {
  heartbeatIntervalSeconds: number;
}

/**
 * A heartbeat answer. `state` stays a string: a newer control plane may name a state this agent does
 * not know. `renewAfter` is optional: a control plane may give none.
 */
export interface HeartbeatAnswer extends Omit<HeartbeatResponse, 'state' | 'renewAfter'> {
  state: string;
  renewAfter?: string;
  /** The control plane's clock when it answered (its HTTP Date header, whole seconds), when it sent one. */
  serverDate?: Date;
}

export interface ClientIdentity {
  keyPem: string;
  certPem: string;
}

export interface ControlPlaneClientOptions {
  baseUrl: string;
  /** PEM bundle to trust for the server certificate; undefined trusts the system roots. */
  caPem: string | undefined;
  /** Where caPem came from, named in trust errors. */
  caFile: string | undefined;
  requestTimeoutMs: number;
  clock: Clock;
}

/** What a control-plane request can report; used by the agent to decide retry or fail closed. */
export interface AgentApi {
  enroll(body: EnrollRequest): Promise<EnrollAnswer>;
  heartbeat(body: HeartbeatRequest): Promise<HeartbeatAnswer>;
  renew(body: RenewRequest): Promise<CertificateAnswer>;
  setIdentity(identity: ClientIdentity | undefined): void;
  close(): void;
}

export class ControlPlaneClient implements AgentApi {
  private readonly options: ControlPlaneClientOptions;
  private readonly base: URL;
  private agent: Agent;
  /** Whether requests present a client certificate (after pairing). */
  private clientCertificate = false;
  /** The issuer of that certificate, to recognise a control plane chain ending at it. */
  private clientCertificateIssuer: string | undefined;

  constructor(options: ControlPlaneClientOptions) {
    this.options = options;
    this.base = new URL(options.baseUrl);
    this.agent = this.createAgent(undefined);
  }

  /** Switches the client certificate used for mTLS (after enrollment or renewal). */
  setIdentity(identity: ClientIdentity | undefined): void {
    this.agent.destroy();
    this.agent = this.createAgent(identity);
    this.clientCertificate = identity !== undefined;
    this.clientCertificateIssuer = identity ? issuerOf(identity.certPem) : undefined;
  }

  close(): void {
    this.agent.destroy();
  }

  async enroll(body: EnrollRequest): Promise<EnrollAnswer> {
    // Something at the URL that echoes the request (a proxy's error page) must not carry the
    // single-use token into the agent's logs or its termination message.
    const { body: answer, date } = await this.post('/v1/enroll', body, [201, 200], [body.token]);
    return {
      ...certificateAnswer(answer, 'enroll'),
      heartbeatIntervalSeconds: positiveNumber(answer, 'enroll'),
      ...serverDate(date),
    };
  }

  async heartbeat(body: HeartbeatRequest): Promise<HeartbeatAnswer> {
    const { body: answer, date } = await this.post('/v1/heartbeat', body, [200]);
    if (typeof answer.state !== 'string') throw badAnswer('heartbeat', 'state must be a string');
    if (answer.renewAfter !== undefined && typeof answer.renewAfter !== 'string') {
      throw badAnswer('heartbeat', 'renewAfter must be a string when given');
    }
    return {
      state: answer.state,
      ...(answer.renewAfter === undefined ? {} : { renewAfter: answer.renewAfter }),
      heartbeatIntervalSeconds: positiveNumber(answer, 'heartbeat'),
      ...serverDate(date),
    };
  }

  async renew(body: RenewRequest): Promise<CertificateAnswer> {
    const { body: answer, date } = await this.post('/v1/renew', body, [200, 201]);
    return { ...certificateAnswer(answer, 'renew'), ...serverDate(date) };
  }

  private createAgent(identity: ClientIdentity | undefined): Agent {
    return new HttpsAgent({
      ...KEEP_ALIVE_AGENT_OPTIONS,
      maxSockets: 2,
      ...(this.options.caPem ? { ca: this.options.caPem } : {}),
      ...(identity ? { key: identity.keyPem, cert: identity.certPem } : {}),
    });
  }

  private async post(
    path: string,
    body: unknown,
    okStatuses: number[],
    secrets: readonly string[] = [],
  ): Promise<Answer> {
    const progress = new RequestProgress(this.base);
    let answer: JsonAnswer;
    try {
      answer = await requestJson({
        method: 'POST',
        url: this.urlOf(path),
        agent: this.agent,
        body,
        timeoutMs: this.options.requestTimeoutMs,
        onSocket: (socket, reused) => progress.follow(socket, reused),
        onAnswer: () => progress.reach('reading the answer'),
      });
    } catch (error) {
      // A request that ran out of time is explained by the phase it reached; no server to ask.
      if ((error as { code?: unknown } | null)?.code === 'REQUEST_TIMEOUT') {
        throw classifyConnectionError(error, this.context(progress));
      }
      throw await this.classify(error, progress);
    }
    if (!okStatuses.includes(answer.status)) {
      throw (
        proxyCertificateRequired(answer, path) ??
        answerError(answer.status, answer.json, {
          fallbackMessage: `the control plane answered ${path} with HTTP ${answer.status}`,
          details: { path },
          redact: secrets,
        })
      );
    }
    if (typeof answer.json !== 'object' || answer.json === null) {
      throw badAnswer(path, `HTTP ${answer.status} with a body that is not a JSON object`);
    }
    const date = answer.headers.date;
    return { body: answer.json as Record<string, unknown>, date };
  }

  /**
   * The contract's path under the control plane's URL, whatever path that URL has (a control plane
   * behind a path-prefixed proxy): `new URL('/v1/enroll', base)` would drop the base's path.
   */
  private urlOf(path: string): URL {
    const url = new URL(this.base.href);
    url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`;
    return url;
  }

  private context(progress?: RequestProgress): ConnectionContext {
    return {
      url: this.options.baseUrl,
      caFile: this.options.caFile,
      now: this.options.clock.now(),
      requestTimeoutMs: this.options.requestTimeoutMs,
      clientCertificate: this.clientCertificate,
      ...(this.clientCertificateIssuer ? { clientCertificateIssuer: this.clientCertificateIssuer } : {}),
      ...(progress
        ? {
            phase: progress.phase,
            freshConnection: progress.freshConnection,
            keysDerived: progress.keysDerived,
          }
        : {}),
    };
  }

  /** Classifies a request error; for TLS failures, first reads from the server what explains them. */
  private async classify(error: unknown, progress: RequestProgress): Promise<CodedError> {
    const context = this.context(progress);
    const facts = await this.serverFacts(error).catch((): ServerFacts => ({}));
    return classifyConnectionError(error, context, facts);
  }

  private async serverFacts(error: unknown): Promise<ServerFacts> {
    switch (serverFactsToRead(error)) {
      case 'validity':
        return { validity: await this.peerValidity() };
      case 'chain':
        return { chain: await this.presentedChain() };
      case 'tlsVersion':
        return { tlsVersion: await this.serverTlsVersion() };
      default:
        return {};
    }
  }

  /** The validity dates the server certificate claims. */
  private peerValidity(): Promise<PeerValidity> {
    return this.inspectServer({}, (socket) => {
      const peer = socket.getPeerCertificate();
      if (!peer?.valid_from) throw new Error('no peer certificate');
      return { notBefore: new Date(peer.valid_from), notAfter: new Date(peer.valid_to) };
    });
  }

  /** The certificates the server sends, beside the CA certificates this agent trusts. */
  private presentedChain(): Promise<PresentedChain> {
    const trusted = this.options.caPem ? certificatesIn(this.options.caPem) : [];
    // With the CA file as the only store, node can add nothing to the chain but its certificates.
    const store = this.options.caPem ? { ca: this.options.caPem } : {};
    return this.inspectServer(store, (socket) => ({
      sent: sentCertificates(socket.getPeerCertificate(true), trusted),
      trusted,
    }));
  }

  /** The TLS version the server settles on when every version is allowed. */
  private serverTlsVersion(): Promise<string> {
    return this.inspectServer({ minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }, (socket) => {
      const version = socket.getProtocol();
      if (!version) throw new Error('no protocol negotiated');
      return version;
    });
  }

  /**
   * A handshake without verification, only to read what the server presents after a verified one
   * failed; bounded by the request timeout like any request.
   */
  private inspectServer<T>(options: ConnectionOptions, read: (socket: TLSSocket) => T): Promise<T> {
    return new Promise((resolve, reject) => {
      const host = bareHostname(this.base);
      const socket = tlsConnect({
        host,
        port: Number(this.base.port || 443),
        servername: isIP(host) ? undefined : host,
        rejectUnauthorized: false,
        ...options,
      });
      const deadline = setTimeout(
        () => socket.destroy(new Error('no handshake in time')),
        this.options.requestTimeoutMs,
      );
      socket.on('error', (error) => {
        clearTimeout(deadline);
        reject(error);
      });
      socket.once('secureConnect', () => {
        clearTimeout(deadline);
        try {
          resolve(read(socket));
        } catch (error) {
          reject(error);
        } finally {
          socket.destroy();
        }
      });
    });
  }
}

/** A successful answer: its JSON body and its HTTP Date header (the control plane's clock). */
interface Answer {
  body: Record<string, unknown>;
  date: string | undefined;
}

/** The Date header as a time, when there is one that parses. */
function serverDate(header: string | undefined): { serverDate?: Date } {
  const date = header === undefined ? undefined : new Date(header);
  return date && !Number.isNaN(date.getTime()) ? { serverDate: date } : {};
}

/** Follows one request through its phases, so a timeout or a reset can say where it stopped. */
class RequestProgress {
  phase: RequestPhase;
  /** False when the request went out on a kept-alive connection. */
  freshConnection = true;
  /** The handshake derived keys: the server chose a cipher suite (connection-errors.ts, alert 40). */
  keysDerived = false;

  constructor(base: URL) {
    this.phase = isIP(bareHostname(base)) ? 'connecting' : 'resolving the host name';
  }

  /** Moves forward only: a late event never takes the phase back. */
  reach(phase: RequestPhase): void {
    if (REQUEST_PHASES.indexOf(phase) > REQUEST_PHASES.indexOf(this.phase)) this.phase = phase;
  }

  follow(socket: Socket, reused: boolean): void {
    if (reused) {
      this.freshConnection = false;
      this.reach('waiting for the answer');
      return;
    }
    socket.once('lookup', () => this.reach('connecting'));
    socket.once('connect', () => this.reach('tls handshake'));
    // Node emits a key log line once the handshake has keys; the line itself (a secret) is never kept.
    socket.once('keylog', () => {
      this.keysDerived = true;
    });
    socket.once('secureConnect', () => this.reach('waiting for the answer'));
  }
}

/** The host name without the brackets of an IPv6 literal. */
function bareHostname(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

function issuerOf(certPem: string): string | undefined {
  try {
    return new X509Certificate(certPem).issuer;
  } catch {
    return undefined;
  }
}

/** Every certificate of a PEM bundle that parses. */
function certificatesIn(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.flatMap((block) => {
    try {
      return [new X509Certificate(block)];
    } catch {
      return [];
    }
  });
}

/**
 * The chain as the server sent it, leaf first. Node links each certificate to its issuer and may
 * append one from its store (here: the CA file) at the end; that one was not sent.
 */
function sentCertificates(peer: DetailedPeerCertificate, trusted: X509Certificate[]): X509Certificate[] {
  const trustedPrints = new Set(trusted.map((certificate) => certificate.fingerprint256));
  const sent: X509Certificate[] = [];
  const seen = new Set<string>();
  for (let current: DetailedPeerCertificate | undefined = peer; current?.raw; ) {
    if (seen.has(current.fingerprint256)) break;
    seen.add(current.fingerprint256);
    if (sent.length > 0 && trustedPrints.has(current.fingerprint256)) break;
    sent.push(new X509Certificate(current.raw));
    current = current.issuerCertificate;
  }
  return sent;
}

function badAnswer(route: string, what: string): CodedError {
  return new CodedError('BAD_RESPONSE', `the control plane's ${route} answer is malformed: ${what}`, {
    httpStatus: 502,
    temporary: false,
  });
}

function certificateAnswer(answer: Record<string, unknown>, route: string): CertificateAnswer {
  for (const field of ['certificatePem', 'caPem', 'serial', 'notAfter'] as const) {
    if (typeof answer[field] !== 'string' || answer[field] === '') {
      throw badAnswer(route, `field ${field} must be a non-empty string`);
    }
  }
  return {
    certificatePem: answer.certificatePem as string,
    caPem: answer.caPem as string,
    serial: answer.serial as string,
    notAfter: answer.notAfter as string,
  };
}

function positiveNumber(answer: Record<string, unknown>, route: string): number {
  const value = answer.heartbeatIntervalSeconds;
  if (typeof value !== 'number' || !(value > 0)) {
    throw badAnswer(route, 'heartbeatIntervalSeconds must be a positive number');
  }
  return value;
}
