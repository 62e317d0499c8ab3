// The agent side of the control plane's agent API (docs/control-plane-contract.md, "Agent API"):
// enroll with a token and a CSR, then heartbeat and renew over mTLS with the identity's key and
// certificate. One keep-alive HTTPS agent per identity, so the mTLS session is reused between
// heartbeats. Error bodies become CodedErrors with the control plane's own code; transport errors
// are classified by connection-errors.ts. Request bodies (which hold the token) never reach an error.
import { type Agent, Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import type { Clock } from '../lib/clock.ts';
import { CodedError } from '../lib/errors.ts';
import { classifyConnectionError, type PeerValidity } from './connection-errors.ts';
import type { PathHealth } from './path-checks.ts';

const MAX_ANSWER_BYTES = 256 * 1024;

export interface EnrollRequest {
  connectorId: string;
  /** A secret: only ever in this request body. */
  token: string;
  csrPem: string;
}

export interface CertificateAnswer {
  certificatePem: string;
  caPem: string;
  serial: string;
  notAfter: string;
}

export interface EnrollAnswer extends CertificateAnswer {
  heartbeatIntervalSeconds: number;
}

export interface HeartbeatRequest {
  paths: PathHealth[];
  agentVersion?: string;
}

export interface HeartbeatAnswer {
  state: string;
  heartbeatIntervalSeconds: number;
  renewAfter: string;
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
  renew(body: { csrPem: string }): Promise<CertificateAnswer>;
  setIdentity(identity: ClientIdentity | undefined): void;
  close(): void;
}

export class ControlPlaneClient implements AgentApi {
  private readonly options: ControlPlaneClientOptions;
  private readonly base: URL;
  private agent: Agent;

  constructor(options: ControlPlaneClientOptions) {
    this.options = options;
    this.base = new URL(options.baseUrl);
    this.agent = this.createAgent(undefined);
  }

  /** Switches the client certificate used for mTLS (after enrollment or renewal). */
  setIdentity(identity: ClientIdentity | undefined): void {
    this.agent.destroy();
    this.agent = this.createAgent(identity);
  }

  close(): void {
    this.agent.destroy();
  }

  async enroll(body: EnrollRequest): Promise<EnrollAnswer> {
    const answer = await this.post('/v1/enroll', body, [201, 200]);
    return {
      ...certificateAnswer(answer, 'enroll'),
      heartbeatIntervalSeconds: positiveNumber(answer, 'enroll'),
    };
  }

  async heartbeat(body: HeartbeatRequest): Promise<HeartbeatAnswer> {
    const answer = await this.post('/v1/heartbeat', body, [200]);
    if (typeof answer.state !== 'string' || typeof answer.renewAfter !== 'string') {
      throw badAnswer('heartbeat', 'state and renewAfter must be strings');
    }
    return {
      state: answer.state,
      renewAfter: answer.renewAfter,
      heartbeatIntervalSeconds: positiveNumber(answer, 'heartbeat'),
    };
  }

  async renew(body: { csrPem: string }): Promise<CertificateAnswer> {
    return certificateAnswer(await this.post('/v1/renew', body, [200, 201]), 'renew');
  }

  private createAgent(identity: ClientIdentity | undefined): Agent {
    return new HttpsAgent({
      keepAlive: true,
      maxSockets: 2,
      ...(this.options.caPem ? { ca: this.options.caPem } : {}),
      ...(identity ? { key: identity.keyPem, cert: identity.certPem } : {}),
    });
  }

  private post(path: string, body: unknown, okStatuses: number[]): Promise<Record<string, unknown>> {
    const url = new URL(path, this.base);
    const payload = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const request = httpsRequest(
        url,
        {
          method: 'POST',
          agent: this.agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(payload),
            accept: 'application/json',
          },
        },
        (response) => {
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_ANSWER_BYTES) {
              response.destroy(
                new CodedError('BAD_RESPONSE', `answer to ${path} exceeds ${MAX_ANSWER_BYTES} bytes`),
              );
              return;
            }
            chunks.push(chunk);
          });
          response.on('error', (error) => reject(this.transportError(error)));
          response.on('end', () => {
            const status = response.statusCode ?? 0;
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text.length > 0 ? JSON.parse(text) : {};
            } catch {
              parsed = undefined;
            }
            if (okStatuses.includes(status)) {
              if (typeof parsed === 'object' && parsed !== null) resolve(parsed as Record<string, unknown>);
              else reject(badAnswer(path, `HTTP ${status} with a body that is not a JSON object`));
              return;
            }
            reject(httpError(path, status, parsed));
          });
        },
      );
      request.setTimeout(this.options.requestTimeoutMs, () => {
        const error = Object.assign(new Error(`no answer within ${this.options.requestTimeoutMs} ms`), {
          code: 'REQUEST_TIMEOUT',
        });
        request.destroy(error);
      });
      request.on('error', (error) => {
        this.classify(error).then(reject, reject);
      });
      request.end(payload);
    });
  }

  private transportError(error: unknown): CodedError {
    return classifyConnectionError(error, {
      url: this.options.baseUrl,
      caFile: this.options.caFile,
      now: this.options.clock.now(),
    });
  }

  /** Classifies a request error; for validity failures, reads the server certificate's dates first. */
  private async classify(error: unknown): Promise<CodedError> {
    const code = (error as { code?: unknown }).code;
    let peer: PeerValidity | undefined;
    if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
      peer = await this.peerValidity().catch(() => undefined);
    }
    return classifyConnectionError(
      error,
      { url: this.options.baseUrl, caFile: this.options.caFile, now: this.options.clock.now() },
      peer,
    );
  }

  /** Handshake without verification, only to read the validity dates the server certificate claims. */
  private peerValidity(): Promise<PeerValidity> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({
        host: this.base.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: Number(this.base.port || 443),
        servername: /^[\d.]+$|:/.test(this.base.hostname) ? undefined : this.base.hostname,
        rejectUnauthorized: false,
      });
      socket.setTimeout(this.options.requestTimeoutMs, () => socket.destroy(new Error('timeout')));
      socket.once('secureConnect', () => {
        const peer = socket.getPeerCertificate();
        socket.destroy();
        if (!peer?.valid_from) reject(new Error('no peer certificate'));
        else resolve({ notBefore: new Date(peer.valid_from), notAfter: new Date(peer.valid_to) });
      });
      socket.once('error', reject);
    });
  }
}

function httpError(path: string, status: number, body: unknown): CodedError {
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)
    ?.error;
  const code = typeof error?.code === 'string' ? error.code : `HTTP_${status}`;
  const message =
    typeof error?.message === 'string'
      ? error.message
      : `the control plane answered ${path} with HTTP ${status}`;
  const temporary = status >= 500 || status === 429 || status === 408;
  const given =
    error?.details && typeof error.details === 'object' ? (error.details as Record<string, unknown>) : {};
  return new CodedError(code, message, { httpStatus: status, temporary, details: { ...given, path } });
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
