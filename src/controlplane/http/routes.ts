// The route table: every route the control plane serves, its authentication and its handler.
// test/controlplane/openapi.test.ts checks this table against api/openapi.yaml.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ControlPlaneMetrics } from '../metrics.ts';
import { PAGE_LIMIT } from '../pages.ts';
import type { PeerIdentity } from '../pki.ts';
import type { ControlPlaneService } from '../service.ts';
import type { PathHealth } from '../state.ts';
import { type AdminAuth, clientCertificate, clientCertificateRequired } from './auth.ts';
import { readJsonBody } from './body.ts';
import {
  asObject,
  CONNECTOR_ID_PATTERN,
  invalid,
  namespaceName,
  optionalInteger,
  optionalString,
  queryBoolean,
  queryInteger,
  queryString,
  queryTime,
  requireCidrList,
  requireConnectorId,
  requireString,
} from './validate.ts';

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  service: ControlPlaneService;
  metrics: ControlPlaneMetrics;
  sanUriPrefix: string;
  /** Aborted when the client goes away (ends long-polls early). */
  signal: AbortSignal;
  /** Set by authenticate() on mTLS routes. */
  peer?: PeerIdentity;
}

export interface RouteResult {
  status: number;
  body?: unknown;
  /** Plain-text answer (Prometheus), instead of JSON. */
  text?: string;
  contentType?: string;
}

export type RouteAuth = 'public' | 'admin' | 'mtls' | 'token';

export interface RouteDefinition {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  path: string;
  auth: RouteAuth;
  handler(context: RouteContext): Promise<RouteResult> | RouteResult;
}

const MAX_WAIT_SECONDS = 30;

async function jsonBody(context: RouteContext) {
  return asObject(await readJsonBody(context.req));
}

function connectorIdParam(context: RouteContext): string {
  return requireConnectorId(context.params.connectorId ?? '');
}

/** A Kubernetes object UID is 36 characters; the contract allows other owners up to this length. */
const OWNER_UID_MAX = 128;

/** The `ownerUid` query parameter of an admin mutation: the Connector that asks (optional). */
function ownerUidQuery(context: RouteContext): string | undefined {
  return queryString(context.query, 'ownerUid', OWNER_UID_MAX);
}

// Path names and details are bounded in UTF-8 bytes, what the record stores and every answer sends
// (a string's length counts UTF-16 units: 128 of them can be 384 bytes), and so is all of them
// together: one connector's paths are in every change-feed row and every listing of its record.
// The reference agent's paths are each under 400 bytes (a name of at most 63, a detail naming a
// host and port), so 64 of them fit.
const PATH_NAME_MAX_BYTES = 128;
const PATH_DETAIL_MAX_BYTES = 1024;
const PATHS_MAX_BYTES = 32 * 1024;

function readPaths(value: unknown): PathHealth[] {
  if (!Array.isArray(value) || value.length > 64)
    throw invalid('paths', 'an array of at most 64 paths is required');
  let total = 0;
  const paths = value.map((entry, index) => {
    const path = asObjectField(entry, `paths[${index}]`);
    const name = path.name;
    if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) > PATH_NAME_MAX_BYTES) {
      throw invalid(
        `paths[${index}].name`,
        `a non-empty string of at most ${PATH_NAME_MAX_BYTES} bytes (UTF-8) is required`,
      );
    }
    if (typeof path.healthy !== 'boolean') throw invalid(`paths[${index}].healthy`, 'a boolean is required');
    const detail = path.detail ?? '';
    if (typeof detail !== 'string' || Buffer.byteLength(detail) > PATH_DETAIL_MAX_BYTES) {
      throw invalid(
        `paths[${index}].detail`,
        `a string of at most ${PATH_DETAIL_MAX_BYTES} bytes (UTF-8) is required`,
      );
    }
    total += Buffer.byteLength(name) + Buffer.byteLength(detail);
    return { name, healthy: path.healthy, detail };
  });
  if (total > PATHS_MAX_BYTES)
    throw invalid('paths', `the names and details together must be at most ${PATHS_MAX_BYTES} bytes (UTF-8)`);
  return paths;
}

function asObjectField(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid(field, 'an object is required');
  return value as Record<string, unknown>;
}

export const ROUTES: readonly RouteDefinition[] = [
  {
    method: 'GET',
    path: '/healthz',
    auth: 'public',
    handler: () => ({ status: 200, body: { status: 'ok' } }),
  },
  {
    method: 'GET',
    path: '/metrics',
    auth: 'public',
    handler: async ({ metrics }) => ({
      status: 200,
      text: await metrics.registry.metrics(),
      contentType: metrics.registry.contentType,
    }),
  },
  {
    // The cheapest proof that a credential is an admin credential: the operator checks each of its
    // ControlPlane resources with it. Reads and writes nothing; authentication is the whole answer.
    method: 'GET',
    path: '/v1/admin/whoami',
    auth: 'admin',
    handler: () => ({ status: 200, body: { ok: true } }),
  },
  {
    method: 'GET',
    path: '/v1/connectors',
    auth: 'admin',
    handler: ({ query, service }) => {
      const after = queryString(query, 'after', 253);
      if (after !== undefined && !CONNECTOR_ID_PATTERN.test(after))
        throw invalid('after', 'must be a connector id (the `next` of the page before)');
      const limit =
        queryInteger(query, 'limit', { min: 1, max: PAGE_LIMIT, default: PAGE_LIMIT }) ?? PAGE_LIMIT;
      return { status: 200, body: service.listConnectors(after, limit) };
    },
  },
  {
    method: 'PUT',
    path: '/v1/connectors/{connectorId}',
    auth: 'admin',
    handler: async (context) => {
      const connectorId = connectorIdParam(context);
      const body = await jsonBody(context);
      const config = {
        org: requireString(body, 'org', { max: 253 }),
        endpointId: requireString(body, 'endpointId', { max: 253 }),
        allowedNetworks: requireCidrList(body, 'allowedNetworks'),
      };
      const owner = {
        uid: optionalString(body, 'ownerUid', OWNER_UID_MAX),
        namespace: namespaceName(optionalString(body, 'ownerNamespace', 63), 'ownerNamespace'),
      };
      const result = context.service.ensureConnector(connectorId, config, owner);
      return { status: result.created ? 201 : 200, body: result.connector };
    },
  },
  {
    method: 'GET',
    path: '/v1/connectors/{connectorId}',
    auth: 'admin',
    handler: (context) => ({ status: 200, body: context.service.getConnector(connectorIdParam(context)) }),
  },
  {
    method: 'DELETE',
    path: '/v1/connectors/{connectorId}',
    auth: 'admin',
    handler: (context) => {
      context.service.deleteConnector(connectorIdParam(context), ownerUidQuery(context));
      return { status: 204 };
    },
  },
  {
    method: 'DELETE',
    path: '/v1/connectors/{connectorId}/owner',
    auth: 'admin',
    handler: (context) => {
      const connectorId = connectorIdParam(context);
      const ownerUid = ownerUidQuery(context);
      if (ownerUid === undefined) throw invalid('ownerUid', 'the query parameter is required');
      const handoverNamespace = namespaceName(
        queryString(context.query, 'handoverNamespace', 63),
        'handoverNamespace',
      );
      context.service.disownConnector(connectorId, ownerUid, handoverNamespace);
      return { status: 204 };
    },
  },
  {
    method: 'POST',
    path: '/v1/connectors/{connectorId}/tokens',
    auth: 'admin',
    handler: async (context) => {
      const connectorId = connectorIdParam(context);
      const body = await jsonBody(context);
      const idempotencyKey = requireString(body, 'idempotencyKey', { max: 256 });
      const ttlSeconds = optionalInteger(body, 'ttlSeconds', 1);
      const result = context.service.mintToken(
        connectorId,
        { idempotencyKey, ttlSeconds },
        ownerUidQuery(context),
      );
      return { status: result.created ? 201 : 200, body: result.token };
    },
  },
  {
    method: 'DELETE',
    path: '/v1/connectors/{connectorId}/tokens',
    auth: 'admin',
    handler: (context) => ({
      status: 200,
      body: { revoked: context.service.revokeTokens(connectorIdParam(context), ownerUidQuery(context)) },
    }),
  },
  {
    method: 'POST',
    path: '/v1/connectors/{connectorId}/recovery',
    auth: 'admin',
    handler: async (context) => {
      const connectorId = connectorIdParam(context);
      const body = await jsonBody(context);
      const requestId = requireString(body, 'requestId', { max: 256 });
      const ownerUid = ownerUidQuery(context);
      // ?dryRun=true: the same validation and refusals, nothing written (service.checkRecovery).
      const answer = queryBoolean(context.query, 'dryRun')
        ? context.service.checkRecovery(connectorId, requestId, ownerUid)
        : context.service.beginRecovery(connectorId, requestId, ownerUid);
      return { status: 200, body: answer };
    },
  },
  {
    method: 'GET',
    path: '/v1/changes',
    auth: 'admin',
    handler: async ({ query, service, signal }) => {
      const since = queryInteger(query, 'since', { min: 0, max: Number.MAX_SAFE_INTEGER, default: 0 }) ?? 0;
      const waitSeconds =
        queryInteger(query, 'waitSeconds', { min: 0, max: MAX_WAIT_SECONDS, default: 0 }) ?? 0;
      return { status: 200, body: await service.waitForChanges(since, waitSeconds * 1000, signal) };
    },
  },
  {
    method: 'GET',
    path: '/v1/audit',
    auth: 'admin',
    handler: ({ query, service }) => {
      const connectorId = query.get('connectorId') || undefined;
      if (connectorId !== undefined) requireConnectorId(connectorId);
      const entries = service.queryAudit({
        connectorId,
        since: queryTime(query, 'since'),
        until: queryTime(query, 'until'),
        limit: queryInteger(query, 'limit', { min: 1, max: 1000, default: 100 }) ?? 100,
        afterSeq: queryInteger(query, 'afterSeq', { min: 0, max: Number.MAX_SAFE_INTEGER }),
      });
      return { status: 200, body: { entries } };
    },
  },
  {
    method: 'POST',
    path: '/v1/enroll',
    auth: 'token',
    handler: async (context) => {
      const body = await jsonBody(context);
      const connectorId = requireConnectorId(requireString(body, 'connectorId', { max: 253 }));
      const token = requireString(body, 'token', { max: 256 });
      const csrPem = requireString(body, 'csrPem', { max: 16 * 1024 });
      return { status: 201, body: context.service.enroll({ connectorId, token, csrPem }) };
    },
  },
  {
    method: 'POST',
    path: '/v1/heartbeat',
    auth: 'mtls',
    handler: async (context) => {
      const peer = requirePeer(context);
      const body = await jsonBody(context);
      const paths = readPaths(body.paths);
      optionalString(body, 'agentVersion', 128);
      return { status: 200, body: context.service.heartbeat(peer, paths) };
    },
  },
  {
    method: 'POST',
    path: '/v1/renew',
    auth: 'mtls',
    handler: async (context) => {
      const peer = requirePeer(context);
      const body = await jsonBody(context);
      const csrPem = requireString(body, 'csrPem', { max: 16 * 1024 });
      return { status: 200, body: context.service.renew(peer, csrPem) };
    },
  },
];

/** Authenticates before the body is read: admin bearer credential or connector client certificate. */
export function authenticate(route: RouteDefinition, context: RouteContext, admin: AdminAuth): void {
  if (route.auth === 'admin') admin.check(context.req);
  if (route.auth === 'mtls') context.peer = authenticateConnector(context);
}

/**
 * The connector whose current certificate the caller presented, judged before the body is read: by
 * TLS and the certificate's names (auth.ts), then by the connector's record (the service). The
 * service logs and audits a refusal within a budget; a request without a certificate refuses nothing.
 */
function authenticateConnector({ req, service, sanUriPrefix }: RouteContext): PeerIdentity {
  const presented = clientCertificate(req, sanUriPrefix, service.options.clock.now().getTime());
  if (presented.kind === 'none') throw clientCertificateRequired();
  if (presented.kind === 'refused') throw service.refuseCertificate(presented.refusal);
  service.authenticatePeer(presented.identity);
  return presented.identity;
}

function requirePeer(context: RouteContext): PeerIdentity {
  if (!context.peer) throw clientCertificateRequired();
  return context.peer;
}
