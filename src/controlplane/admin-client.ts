// Typed client for the control plane's admin API, for the operator and the tests. Speaks node:https
// with the control plane's CA (a private CA, so no global trust store), keeps connections alive,
// and maps every error answer to a CodedError carrying the server's code; 5xx answers and network
// failures are `temporary` (retry with backoff), everything else is permanent.
import { Agent, request } from 'node:https';
import { CodedError } from '../lib/errors.ts';
import type { AuditEntry } from './audit.ts';
import type { ChangeJson, ConnectorConfig, ConnectorJson, MintedToken } from './service.ts';

export type { AuditEntry, ChangeJson as Change, ConnectorConfig, ConnectorJson as Connector, MintedToken };

export interface HttpResponse {
  status: number;
  body: string;
}

/** The transport, replaceable in tests: method, full URL, headers, body -> status and text. */
export type AdminFetch = (
  method: string,
  url: string,
  headers: Record<string, string>,
  body: string | undefined,
  timeoutMs: number,
) => Promise<HttpResponse>;

export interface AdminClientOptions {
  url: string;
  caPem: string;
  credential: string;
  fetch?: AdminFetch;
  /** Per-request timeout; long-polls add their wait. Default 15 s. */
  timeoutMs?: number;
}

export interface AuditQuery {
  connectorId?: string;
  since?: Date | string;
  until?: Date | string;
  limit?: number;
  afterSeq?: number;
}

export class ControlPlaneAdminClient {
  private readonly base: string;
  private readonly credential: string;
  private readonly transport: AdminFetch;
  private readonly agent: Agent | undefined;
  private readonly timeoutMs: number;

  constructor(options: AdminClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
    this.credential = options.credential;
    this.timeoutMs = options.timeoutMs ?? 15_000;
    if (options.fetch) {
      this.transport = options.fetch;
    } else {
      const agent = new Agent({ ca: options.caPem, keepAlive: true, maxSockets: 16 });
      this.agent = agent;
      this.transport = (method, url, headers, body, timeoutMs) =>
        httpsRequest(agent, method, url, headers, body, timeoutMs);
    }
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.agent?.destroy();
  }

  private async call<T>(
    method: string,
    path: string,
    body?: unknown,
    extraTimeoutMs = 0,
  ): Promise<{ status: number; data: T }> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.credential}`,
      accept: 'application/json',
    };
    const text = body === undefined ? undefined : JSON.stringify(body);
    if (text !== undefined) headers['content-type'] = 'application/json';
    let response: HttpResponse;
    try {
      response = await this.transport(
        method,
        `${this.base}${path}`,
        headers,
        text,
        this.timeoutMs + extraTimeoutMs,
      );
    } catch (error) {
      throw new CodedError(
        'CONTROL_PLANE_UNREACHABLE',
        `control plane ${this.base} unreachable: ${(error as Error).message}`,
        {
          temporary: true,
          cause: error,
        },
      );
    }
    let data: unknown;
    try {
      data = response.body.length > 0 ? JSON.parse(response.body) : undefined;
    } catch {
      data = undefined;
    }
    if (response.status >= 400) {
      const error = (data as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)
        ?.error;
      const code = typeof error?.code === 'string' ? error.code : `HTTP_${response.status}`;
      const message = typeof error?.message === 'string' ? error.message : `HTTP ${response.status}`;
      throw new CodedError(code, message, {
        httpStatus: response.status,
        temporary: response.status >= 500,
        details: (error?.details as Record<string, unknown> | undefined) ?? undefined,
      });
    }
    return { status: response.status, data: data as T };
  }

  private static connectorPath(connectorId: string): string {
    return `/v1/connectors/${encodeURIComponent(connectorId)}`;
  }

  /** Creates or updates the record; `created` tells which. */
  async ensureConnector(
    connectorId: string,
    config: ConnectorConfig,
  ): Promise<{ created: boolean; connector: ConnectorJson }> {
    const { status, data } = await this.call<ConnectorJson>(
      'PUT',
      ControlPlaneAdminClient.connectorPath(connectorId),
      config,
    );
    return { created: status === 201, connector: data };
  }

  async getConnector(connectorId: string): Promise<ConnectorJson> {
    return (await this.call<ConnectorJson>('GET', ControlPlaneAdminClient.connectorPath(connectorId))).data;
  }

  async listConnectors(): Promise<{ connectors: ConnectorJson[]; cursor: number }> {
    return (await this.call<{ connectors: ConnectorJson[]; cursor: number }>('GET', '/v1/connectors')).data;
  }

  async deleteConnector(connectorId: string): Promise<void> {
    await this.call('DELETE', ControlPlaneAdminClient.connectorPath(connectorId));
  }

  /** Mints (201, created) or returns the live token of this idempotency key (200). */
  async mintToken(
    connectorId: string,
    request: { idempotencyKey: string; ttlSeconds?: number },
  ): Promise<MintedToken & { created: boolean }> {
    const { status, data } = await this.call<MintedToken>(
      'POST',
      `${ControlPlaneAdminClient.connectorPath(connectorId)}/tokens`,
      request,
    );
    return { ...data, created: status === 201 };
  }

  async revokeTokens(connectorId: string): Promise<{ revoked: number }> {
    return (
      await this.call<{ revoked: number }>(
        'DELETE',
        `${ControlPlaneAdminClient.connectorPath(connectorId)}/tokens`,
      )
    ).data;
  }

  async beginRecovery(connectorId: string, requestId: string): Promise<ConnectorJson> {
    return (
      await this.call<ConnectorJson>(
        'POST',
        `${ControlPlaneAdminClient.connectorPath(connectorId)}/recovery`,
        { requestId },
      )
    ).data;
  }

  /** Changes after `since`; waits up to waitSeconds (0..30) when there are none yet. */
  async changes(since: number, waitSeconds = 0): Promise<{ changes: ChangeJson[]; cursor: number }> {
    const query = new URLSearchParams({ since: String(since), waitSeconds: String(waitSeconds) });
    return (
      await this.call<{ changes: ChangeJson[]; cursor: number }>(
        'GET',
        `/v1/changes?${query}`,
        undefined,
        waitSeconds * 1000,
      )
    ).data;
  }

  async audit(query: AuditQuery = {}): Promise<AuditEntry[]> {
    const params = new URLSearchParams();
    if (query.connectorId) params.set('connectorId', query.connectorId);
    if (query.since) params.set('since', new Date(query.since).toISOString());
    if (query.until) params.set('until', new Date(query.until).toISOString());
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    if (query.afterSeq !== undefined) params.set('afterSeq', String(query.afterSeq));
    const suffix = params.size > 0 ? `?${params}` : '';
    return (await this.call<{ entries: AuditEntry[] }>('GET', `/v1/audit${suffix}`)).data.entries;
  }
}

function httpsRequest(
  agent: Agent,
  method: string,
  url: string,
  headers: Record<string, string>,
  body: string | undefined,
  timeoutMs: number,
): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
