// The operator's Kubernetes client: the few calls it makes (get, list, create, replace, the four
// patch types, delete, watch), sent as JSON through the package's one HTTPS helper
// (lib/https-json.ts), with the credentials of a KubeTransport. It replaces client-node's generated
// API classes in the operator's process, whose code was most of the process's memory
// (docs/performance.md, "Third increment"). Objects are the API server's JSON (resources.ts).
//
// Errors: an error answer is a KubeApiError (kube-errors.ts: the status in `code`, the Status in
// `body`, Retry-After), a transport failure the socket's own error (ECONNREFUSED, a TLS code), a
// request without an answer in time REQUEST_TIMEOUT. A 401 is retried once when the credential may
// have rotated since it was read (a token file).
//
// Answers: a client built with an observer reports every answer the API server gave, by verb and
// resource: a 429 (API Priority and Fairness turned the request away, or a rate limit) as
// `throttled`, with its Retry-After, and any other answer below 500 as `served` (the server took
// the request and answered it: a 404 or a 409 got past APF too). 5xx answers, transport failures and timeouts are reported to nobody: they do not say
// how much the server is willing to take. The operator's adaptive concurrency listens
// (adaptive-limit.ts), through the observer given to the client, never through a global.
import type { KubernetesObject } from '@kubernetes/client-node';
import { CodedError } from '../../lib/errors.ts';
import { type JsonAnswer, readAnswer, requestJson, requestStream } from '../../lib/https-json.ts';
import { kubeApiError } from './kube-errors.ts';
import type { KubeTransport, RequestCredentials } from './kube-transport.ts';
import {
  DEFAULT_WATCH_INACTIVITY_MS,
  followWatch,
  type WatchHandlers,
  type WatchStream,
} from './kube-watch.ts';
import {
  collectionPath,
  knownResourceType,
  objectPath,
  type ResourceType,
  resourceName,
} from './resources.ts';

/** The four patch types the API server takes, by their Content-Type. */
export const PATCH_CONTENT_TYPES = {
  /** Server-side apply: the fields the field manager owns (JSON is YAML). */
  apply: 'application/apply-patch+yaml',
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json-patch+json',
} as const;
export type PatchType = keyof typeof PATCH_CONTENT_TYPES;

export type Query = Record<string, string | number | boolean | undefined>;

/** What a request does, named as the API server names it (its audit log, APF's rules, RBAC). */
export type KubeVerb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';

/** A request as an observer sees it. */
export interface KubeRequestInfo {
  verb: KubeVerb;
  /** `configmaps`, `statefulsets.apps` (resources.ts), or '' for a path outside the typed calls. */
  resource: string;
}

/**
 * Hears how the API server answered (see the header). Called on the request's own path, so it must
 * be quick and must not throw.
 */
export interface KubeAnswerObserver {
  /** A 429, with how long the server asked the client to wait (Retry-After), if it said. */
  throttled(request: KubeRequestInfo, retryAfterMs: number | undefined): void;
  /** An answer below 500 other than 429, with its HTTP status: the server took the request and answered it. */
  served(request: KubeRequestInfo, status: number): void;
}

export interface KubeRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** The URL path under the server, e.g. `/api/v1/namespaces/a/configmaps/b`. */
  path: string;
  query?: Query;
  body?: unknown;
  /** application/json unless said (a patch type's). */
  contentType?: string;
  timeoutMs?: number;
  /** Named for the observer; from the method when omitted. */
  verb?: KubeVerb;
  /** The kind addressed, for the observer; none for a path outside the table (discovery). */
  type?: ResourceType;
}

/** A namespace (ignored for cluster-scoped kinds) and a name. */
export interface KubeRef {
  namespace?: string;
  name: string;
}

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Objects per page; the rest is fetched with `continue`. */
  limit?: number;
  continue?: string;
  resourceVersion?: string;
}

export interface KubeList<T> {
  items: T[];
  metadata?: { resourceVersion?: string; continue?: string };
}

export interface WatchOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Where to resume: events after this version. */
  resourceVersion?: string;
  allowWatchBookmarks?: boolean;
  /** Ask the server to end the watch after this long. */
  timeoutSeconds?: number;
}

export interface DeleteOptions {
  propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
  /** Delete only the object with this uid (or resourceVersion): not a namesake created since. */
  preconditions?: { uid?: string; resourceVersion?: string };
  query?: Query;
}

export interface KubeClientOptions {
  /** One deadline per request, answer included. Default 60 s (the API server's own request timeout). */
  timeoutMs?: number;
  /** The largest answer accepted. Default 256 MiB: far above any page of a list, a guard against a runaway answer. */
  maxAnswerBytes?: number;
  /** How long a watch may open and then stay silent before it ends (kube-watch.ts). Default 30 s. */
  watchTimeoutMs?: number;
  /** Hears every answer (see the header); none when omitted. */
  observer?: KubeAnswerObserver;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_KUBE_ANSWER_BYTES = 256 * 1024 * 1024;

const VERB_OF_METHOD: Record<KubeRequest['method'], KubeVerb> = {
  GET: 'get',
  POST: 'create',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};

export class KubeClient {
  readonly server: URL;
  /** Where the credentials come from and who serves them, for the operator's log. */
  readonly description: string;
  readonly namespace: string | undefined;
  private readonly transport: KubeTransport;
  private readonly options: KubeClientOptions;
  private readonly observer: KubeAnswerObserver | undefined;
  private readonly timeoutMs: number;
  private readonly maxAnswerBytes: number;
  private readonly watchTimeoutMs: number;
  /** Discovery of kinds the runtime's table does not know, by apiVersion (kept while it succeeds). */
  private readonly discovered = new Map<string, Promise<ResourceType[]>>();

  constructor(transport: KubeTransport, options: KubeClientOptions = {}) {
    this.transport = transport;
    this.server = transport.server;
    this.description = transport.description;
    this.namespace = transport.namespace;
    this.options = options;
    this.observer = options.observer;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.maxAnswerBytes = options.maxAnswerBytes ?? DEFAULT_MAX_KUBE_ANSWER_BYTES;
    this.watchTimeoutMs = options.watchTimeoutMs ?? DEFAULT_WATCH_INACTIVITY_MS;
  }

  /**
   * This client's requests (the same credentials and connection pool) with `observer` hearing their
   * answers: the operator attaches its adaptive limit to the client it was given, and a client
   * shared with others (one per KubeConfig, kube-access.ts) is left as it was. Replaces any observer
   * this client had.
   */
  withObserver(observer: KubeAnswerObserver): KubeClient {
    return new KubeClient(this.transport, { ...this.options, observer });
  }

  /** Sends one request; resolves with the parsed answer of a 2xx, rejects otherwise (see the header). */
  async request<T>(request: KubeRequest): Promise<T> {
    const url = this.url(request.path, request.query);
    for (let attempt = 1; ; attempt += 1) {
      const credentials = await this.transport.credentials();
      const answer = await requestJson({
        method: request.method,
        url,
        agent: credentials.agent,
        headers: {
          ...credentials.headers,
          ...(request.contentType ? { 'content-type': request.contentType } : {}),
        },
        ...(request.body === undefined ? {} : { body: request.body }),
        timeoutMs: request.timeoutMs ?? this.timeoutMs,
        maxAnswerBytes: this.maxAnswerBytes,
      });
      if (answer.status === 401 && attempt === 1 && this.transport.refused()) continue;
      if (answer.status >= 200 && answer.status < 300) {
        this.observe(request, answer.status, undefined);
        return this.parsed<T>(answer, request);
      }
      const error = kubeApiError(
        answer.status,
        { text: answer.text, json: answer.json, retryAfter: answer.headers['retry-after'] },
        credentials.secrets,
      );
      this.observe(request, answer.status, error.retryAfterMs);
      throw error;
    }
  }

  get<T extends KubernetesObject>(type: ResourceType, ref: KubeRef, query?: Query): Promise<T> {
    return this.request<T>({
      method: 'GET',
      path: this.objectPath(type, ref),
      type,
      ...(query ? { query } : {}),
    });
  }

  /** One page of a list (all of it without `limit`). */
  list<T extends KubernetesObject>(type: ResourceType, options: ListOptions = {}): Promise<KubeList<T>> {
    return this.request<KubeList<T>>({
      method: 'GET',
      path: collectionPath(type, options.namespace),
      verb: 'list',
      type,
      query: {
        labelSelector: options.labelSelector,
        fieldSelector: options.fieldSelector,
        limit: options.limit,
        continue: options.continue,
        resourceVersion: options.resourceVersion,
      },
    });
  }

  /** Creates `body` in its own metadata.namespace (for a namespaced kind). */
  create<T extends KubernetesObject>(type: ResourceType, body: T, query?: Query): Promise<T> {
    const namespace = this.namespaceOf(type, body.metadata?.namespace, 'create');
    return this.request<T>({
      method: 'POST',
      path: collectionPath(type, namespace),
      type,
      body,
      ...(query ? { query } : {}),
    });
  }

  /** PUT: the whole object, with the resourceVersion it was read at (a 409 when it changed since). */
  replace<T extends KubernetesObject>(type: ResourceType, ref: KubeRef, body: T, query?: Query): Promise<T> {
    return this.request<T>({
      method: 'PUT',
      path: this.objectPath(type, ref),
      type,
      body,
      ...(query ? { query } : {}),
    });
  }

  patch<T extends KubernetesObject>(
    type: ResourceType,
    ref: KubeRef,
    body: unknown,
    options: { patch: PatchType; subresource?: string; query?: Query },
  ): Promise<T> {
    return this.request<T>({
      method: 'PATCH',
      path: this.objectPath(type, ref, options.subresource),
      type,
      body,
      contentType: PATCH_CONTENT_TYPES[options.patch],
      ...(options.query ? { query: options.query } : {}),
    });
  }

  /** Resolves with the server's answer (the object, now terminating, or a Status). */
  delete(type: ResourceType, ref: KubeRef, options: DeleteOptions = {}): Promise<unknown> {
    const body = {
      ...(options.propagationPolicy ? { propagationPolicy: options.propagationPolicy } : {}),
      ...(options.preconditions ? { preconditions: options.preconditions } : {}),
    };
    return this.request({
      method: 'DELETE',
      path: this.objectPath(type, ref),
      type,
      ...(Object.keys(body).length > 0 ? { body } : {}),
      ...(options.query ? { query: options.query } : {}),
    });
  }

  /**
   * Opens a watch and resolves once the server accepted it; events and its end then reach
   * `handlers` (kube-watch.ts). A refusal (410 Gone for a version too old, 403, ...) rejects with
   * a KubeApiError instead. A version too old for the server's window is often accepted and then
   * reported as an ERROR event carrying a Status with code 410.
   */
  async watch(type: ResourceType, options: WatchOptions, handlers: WatchHandlers): Promise<WatchStream> {
    const url = this.url(collectionPath(type, options.namespace), {
      watch: true,
      resourceVersion: options.resourceVersion,
      allowWatchBookmarks: options.allowWatchBookmarks,
      labelSelector: options.labelSelector,
      fieldSelector: options.fieldSelector,
      timeoutSeconds: options.timeoutSeconds,
    });
    for (let attempt = 1; ; attempt += 1) {
      const credentials: RequestCredentials = await this.transport.credentials();
      const answer = await requestStream({
        method: 'GET',
        url,
        agent: credentials.agent,
        headers: credentials.headers,
        timeoutMs: this.watchTimeoutMs,
      });
      const request = { method: 'GET', verb: 'watch', type } as const;
      if (answer.status === 200) {
        this.observe(request, answer.status, undefined);
        return followWatch(answer, handlers, this.watchTimeoutMs);
      }
      const body = await readAnswer(answer, this.maxAnswerBytes).finally(() => answer.abort());
      if (answer.status === 401 && attempt === 1 && this.transport.refused()) continue;
      const error = kubeApiError(
        answer.status,
        { ...body, retryAfter: answer.headers['retry-after'] },
        credentials.secrets,
      );
      this.observe(request, answer.status, error.retryAfterMs);
      throw error;
    }
  }

  /**
   * Where objects of an apiVersion and kind live: the runtime's table (resources.ts), else the API
   * server's discovery document for that apiVersion (a kind the operator does not know, such as a
   * test's own custom resource).
   */
  async resourceType(apiVersion: string, kind: string): Promise<ResourceType> {
    const known = knownResourceType(apiVersion, kind);
    if (known) return known;
    let discovery = this.discovered.get(apiVersion);
    if (!discovery) {
      discovery = this.discover(apiVersion);
      this.discovered.set(apiVersion, discovery);
      // A failed discovery is not kept: the next call asks again.
      discovery.catch(() => this.discovered.delete(apiVersion));
    }
    const found = (await discovery).find((type) => type.kind === kind);
    if (!found) {
      throw new CodedError(
        'KUBERNETES_UNKNOWN_KIND',
        `the API server serves no kind ${kind} in ${apiVersion}`,
      );
    }
    return found;
  }

  private async discover(apiVersion: string): Promise<ResourceType[]> {
    const path = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const list = await this.request<{
      resources?: Array<{ name: string; kind: string; namespaced: boolean }>;
    }>({
      method: 'GET',
      path,
    });
    return (list.resources ?? [])
      .filter((resource) => !resource.name.includes('/'))
      .map((resource) => ({
        apiVersion,
        kind: resource.kind,
        plural: resource.name,
        namespaced: resource.namespaced,
      }));
  }

  /** Tells the observer about one answer (see the header): a 429, or one the server served. */
  private observe(
    request: Pick<KubeRequest, 'method' | 'verb' | 'type'>,
    status: number,
    retryAfterMs: number | undefined,
  ): void {
    if (!this.observer || status >= 500) return;
    const info: KubeRequestInfo = {
      verb: request.verb ?? VERB_OF_METHOD[request.method],
      resource: request.type ? resourceName(request.type) : '',
    };
    if (status === 429) this.observer.throttled(info, retryAfterMs);
    else this.observer.served(info, status);
  }

  private objectPath(type: ResourceType, ref: KubeRef, subresource?: string): string {
    if (!ref.name) throw new CodedError('INVALID_ARGUMENT', `a ${type.kind} request needs a name`);
    return objectPath(type, this.namespaceOf(type, ref.namespace, ref.name), ref.name, subresource);
  }

  private namespaceOf(type: ResourceType, namespace: string | undefined, what: string): string | undefined {
    if (!type.namespaced) return undefined;
    if (!namespace) throw new CodedError('INVALID_ARGUMENT', `${type.kind} ${what} needs a namespace`);
    return namespace;
  }

  private url(path: string, query: Query = {}): URL {
    // The server may carry a path of its own (a proxy in front of the API server): keep it.
    const url = new URL(`${this.server.href.replace(/\/$/, '')}${path}`);
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    return url;
  }

  private parsed<T>(answer: JsonAnswer, request: KubeRequest): T {
    if (answer.json === undefined && answer.text.trim() !== '') {
      throw new CodedError(
        'BAD_RESPONSE',
        `the API server answered ${request.method} ${request.path} with something that is not JSON`,
        { temporary: true },
      );
    }
    return answer.json as T;
  }
}
