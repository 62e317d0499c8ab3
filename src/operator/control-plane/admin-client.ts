// The operator's client for the control plane's admin API (also used by the tests). It speaks only
// the contract (src/contract/control-plane-api.generated.ts, generated from api/openapi.yaml), so a
// real VaultPAM control plane can stand where the reference one does. Requests go through the one
// HTTPS JSON helper (src/lib/https-json.ts) with the control plane's CA (a private CA, so no global
// trust store) over kept-alive connections; every error answer becomes a CodedError carrying the
// server's code. Network failures and answers worth retrying (5xx, 429, 408) are `temporary` (retry
// with backoff); everything else is permanent.
import { Agent } from 'node:https';
import type {
  AuditEntry as AuditEntryJson,
  Change as ChangeJson,
  ConnectorConfig,
  Connector as ConnectorJson,
  MintedToken,
  RecoveryCheck as RecoveryCheckJson,
} from '../../contract/control-plane-api.generated.ts';
import { CodedError } from '../../lib/errors.ts';
import { answerError, requestJson } from '../../lib/https-json.ts';
import { KEEP_ALIVE_AGENT_OPTIONS } from '../../lib/keep-alive.ts';

/**
 * The admin API's largest answers are pages of connectors and of changes, which the reference
 * control plane keeps to 4 MiB of items (src/controlplane/pages.ts); a larger answer is refused.
 */
const ADMIN_MAX_ANSWER_BYTES = 64 * 1024 * 1024;
/**
 * The most a whole connector listing may hold, all pages together: a control plane (any namespace's
 * ControlPlane may name one) that pages without end must not take the operator's memory with it.
 * 10,000 connectors of the usual size are about 8 MiB.
 */
const LIST_MAX_BYTES = 256 * 1024 * 1024;

export type { ConnectorConfig, MintedToken };

// The answers as this client receives them. Where the contract lists codes or types (the last
// enrollment refusal's code, an audit entry's type), a control plane newer than this operator may
// send one it does not know, and a hostile one anything at all: those fields are plain strings here,
// and whoever shows them treats them as untrusted text (src/operator/reconcile/untrusted-text.ts).

/** An audit entry; `type` is the contract's vocabulary or a newer one. */
export type AuditEntry = Omit<AuditEntryJson, 'type'> & { type: string };

/**
 * The answer to a recovery dry run. `dryRun` is false when the control plane predates the dry run:
 * it ignored the parameter and began the recovery (it answers a refusal the same either way).
 */
export type RecoveryCheck = Omit<RecoveryCheckJson, 'dryRun' | 'state'> & { dryRun: boolean; state: string };

/**
 * An error answer of the control plane (HTTP status >= 400). Its code and message are the server's
 * words: whoever shows them treats them as data, bounded, stripped of control characters and
 * redacted (src/operator/reconcile/untrusted-text.ts), never as text the operator vouches for.
 */
export class ControlPlaneAnswerError extends CodedError {}

/**
 * A connector as the admin API answers it. `ownerUid` and `handoverNamespace` are optional here
 * because a control plane that predates record ownership or handovers does not send them; this one
 * always does (null: nobody owns it; not handed over).
 */
export type Connector = Omit<ConnectorJson, 'ownerUid' | 'handoverNamespace' | 'lastEnrollmentFailure'> & {
  ownerUid?: string | null;
  handoverNamespace?: string | null;
  lastEnrollmentFailure: { code: string; at: string } | null;
};
export type Change = Omit<ChangeJson, 'connector'> & { connector: Connector | null };

/** A page of the connector list; `next` is absent from a control plane that does not page. */
interface ConnectorPage {
  connectors: Connector[];
  cursor: number;
  next?: string | null;
}

/**
 * The UID of the Kubernetes Connector making the call. When given, the control plane changes the
 * record only if that Connector owns it or nobody does, else 409 CONNECTOR_ID_CONFLICT.
 */
export interface OwnerOption {
  ownerUid?: string;
}

/** The owning Connector's UID and namespace: a record handed over to a namespace is claimed only from it. */
export interface ClaimOption extends OwnerOption {
  ownerNamespace?: string;
}

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
      const agent = new Agent({ ca: options.caPem, ...KEEP_ALIVE_AGENT_OPTIONS, maxSockets: 16 });
      this.agent = agent;
      this.transport = async (method, url, headers, body, timeoutMs) => {
        const { status, text } = await requestJson({
          method,
          url,
          agent,
          headers,
          body,
          timeoutMs,
          maxAnswerBytes: ADMIN_MAX_ANSWER_BYTES,
        });
        return { status, body: text };
      };
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
      throw answerError(response.status, data, {
        fallbackMessage: `HTTP ${response.status}`,
        redact: [this.credential],
        errorClass: ControlPlaneAnswerError,
      });
    }
    return { status: response.status, data: data as T };
  }

  /**
   * The path of a connector (or of `suffix` below it), with `?ownerUid=` when the caller names its
   * owner: the admin mutations other than PUT take the owner as a query parameter.
   */
  private static connectorPath(
    connectorId: string,
    suffix = '',
    ownerUid?: string,
    extra: Record<string, string> = {},
  ): string {
    const params = new URLSearchParams(ownerUid === undefined ? extra : { ownerUid, ...extra });
    const query = params.size > 0 ? `?${params}` : '';
    return `/v1/connectors/${encodeURIComponent(connectorId)}${suffix}${query}`;
  }

  /**
   * Creates or updates the record; `created` tells which. With `ownerUid`, a new record is owned by
   * that Connector and an unowned one is claimed (one handed over to a namespace only with that
   * `ownerNamespace`); another Connector's, or one handed over elsewhere, answers 409
   * CONNECTOR_ID_CONFLICT.
   */
  async ensureConnector(
    connectorId: string,
    config: ConnectorConfig,
    options: ClaimOption = {},
  ): Promise<{ created: boolean; connector: Connector }> {
    const body = {
      ...config,
      ...(options.ownerUid === undefined ? {} : { ownerUid: options.ownerUid }),
      ...(options.ownerNamespace === undefined ? {} : { ownerNamespace: options.ownerNamespace }),
    };
    const { status, data } = await this.call<Connector>(
      'PUT',
      ControlPlaneAdminClient.connectorPath(connectorId),
      body,
    );
    return { created: status === 201, connector: data };
  }

  /**
   * Proves the credential without changing anything: 200 {ok: true} for an admin credential, 401
   * UNAUTHORIZED otherwise. The operator checks each ControlPlane resource with it.
   */
  async whoami(): Promise<{ ok: boolean }> {
    return (await this.call<{ ok: boolean }>('GET', '/v1/admin/whoami')).data;
  }

  async getConnector(connectorId: string): Promise<Connector> {
    return (await this.call<Connector>('GET', ControlPlaneAdminClient.connectorPath(connectorId))).data;
  }

  /**
   * Every connector, read page by page (`?after=` the page before's `next`), and the cursor to follow
   * changes from: the first page's. A record on a later page may be newer than that cursor, never
   * older, and every change after it is in the feed, so following from it brings the whole listing
   * up to date. A control plane that does not page answers everything at once, without `next`.
   */
  async listConnectors(): Promise<{ connectors: Connector[]; cursor: number }> {
    const first = await this.listPage(undefined);
    const connectors: Connector[] = [];
    let bytes = 0;
    let page = first;
    let after: string | undefined;
    for (;;) {
      checkedPage(page, after);
      bytes += JSON.stringify(page.connectors).length;
      if (bytes > LIST_MAX_BYTES)
        throw new CodedError('BAD_RESPONSE', `the connector list is over ${LIST_MAX_BYTES} bytes`);
      connectors.push(...page.connectors);
      if (!page.next) return { connectors, cursor: first.cursor };
      after = page.next;
      page = await this.listPage(after);
    }
  }

  private async listPage(after: string | undefined): Promise<ConnectorPage> {
    const query = after === undefined ? '' : `?${new URLSearchParams({ after })}`;
    return (await this.call<ConnectorPage>('GET', `/v1/connectors${query}`)).data;
  }

  async deleteConnector(connectorId: string, options: OwnerOption = {}): Promise<void> {
    await this.call('DELETE', ControlPlaneAdminClient.connectorPath(connectorId, '', options.ownerUid));
  }

  /**
   * Leaves the record without an owner (identity and certificate kept) so that a new Connector with
   * the same id can claim it; for a Connector deleted with deletionPolicy Retain. With
   * `handoverNamespace`, only a Connector of that namespace can.
   */
  async disownConnector(connectorId: string, ownerUid: string, handoverNamespace?: string): Promise<void> {
    await this.call(
      'DELETE',
      ControlPlaneAdminClient.connectorPath(
        connectorId,
        '/owner',
        ownerUid,
        handoverNamespace === undefined ? {} : { handoverNamespace },
      ),
    );
  }

  /** Mints (201, created) or returns the live token of this idempotency key (200). */
  async mintToken(
    connectorId: string,
    request: { idempotencyKey: string; ttlSeconds?: number } & OwnerOption,
  ): Promise<MintedToken & { created: boolean }> {
    const { ownerUid, ...body } = request;
    const { status, data } = await this.call<MintedToken>(
      'POST',
      ControlPlaneAdminClient.connectorPath(connectorId, '/tokens', ownerUid),
      body,
    );
    return { ...data, created: status === 201 };
  }

  async revokeTokens(connectorId: string, options: OwnerOption = {}): Promise<{ revoked: number }> {
    return (
      await this.call<{ revoked: number }>(
        'DELETE',
        ControlPlaneAdminClient.connectorPath(connectorId, '/tokens', options.ownerUid),
      )
    ).data;
  }

  async beginRecovery(connectorId: string, requestId: string, options: OwnerOption = {}): Promise<Connector> {
    return (
      await this.call<Connector>(
        'POST',
        ControlPlaneAdminClient.connectorPath(connectorId, '/recovery', options.ownerUid),
        { requestId },
      )
    ).data;
  }

  /**
   * Asks whether a recovery by `requestId` may begin, changing nothing (`?dryRun=true`): resolves
   * when the control plane would begin it (or has, by this requestId), and throws its refusal as
   * beginRecovery would (409 RECOVERY_NOT_NEEDED, 409 CONNECTOR_ID_CONFLICT, 404 ...). A control
   * plane that predates the dry run ignores the parameter and begins the recovery, answering the
   * connector: that is reported as allowed with `dryRun: false` (a refusal reads the same either way).
   */
  async checkRecovery(
    connectorId: string,
    requestId: string,
    options: OwnerOption = {},
  ): Promise<RecoveryCheck> {
    const { data } = await this.call<Partial<RecoveryCheckJson> & { state?: string }>(
      'POST',
      ControlPlaneAdminClient.connectorPath(connectorId, '/recovery', options.ownerUid, { dryRun: 'true' }),
      { requestId },
    );
    const sameRequest = data?.sameRequest === true;
    return {
      dryRun: data?.dryRun === true,
      allowed: true,
      requestId,
      state: String(data?.state ?? ''),
      sameRequest,
    };
  }

  /** Changes after `since`; waits up to waitSeconds (0..30) when there are none yet. */
  async changes(since: number, waitSeconds = 0): Promise<{ changes: Change[]; cursor: number }> {
    const query = new URLSearchParams({ since: String(since), waitSeconds: String(waitSeconds) });
    return (
      await this.call<{ changes: Change[]; cursor: number }>(
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

/**
 * A page of the connector list as the contract pages it: ids strictly ascending and past the page
 * before's `next`, and a `next` that is this page's last id. Anything else could list the same
 * records without end (a `next` that grows while the records repeat ran the operator out of memory).
 */
function checkedPage(page: ConnectorPage, after: string | undefined): void {
  let previous = after;
  for (const connector of page.connectors) {
    if (previous !== undefined && !(connector.connectorId > previous))
      throw new CodedError('BAD_RESPONSE', 'the connector list is not in ascending id order past its page');
    previous = connector.connectorId;
  }
  if (page.next && page.next !== previous)
    throw new CodedError(
      'BAD_RESPONSE',
      "the connector list's next page does not start after its last record",
    );
}
