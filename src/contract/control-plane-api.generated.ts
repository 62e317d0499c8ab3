// Generated from api/openapi.yaml by `npx node tools/generate/wire-types.ts`. Do not edit: change the YAML and run the
// command again (test/unit/generated-types.test.ts fails while this file and the YAML disagree).
export type ConnectorId = string;
export type Time = string;
/**
 * The UID of the Kubernetes Connector that owns (or asks to own) a record.
 */
export type OwnerUid = string;
/**
 * A Kubernetes namespace name.
 */
export type Namespace = string;
export type ErrorCode =
  | 'INVALID_REQUEST'
  | 'MALFORMED_REQUEST'
  | 'MALFORMED_JSON'
  | 'TTL_TOO_LONG'
  | 'CSR_INVALID'
  | 'CSR_SUBJECT_MISMATCH'
  | 'CSR_KEY_UNSUPPORTED'
  | 'UNAUTHORIZED'
  | 'ENROLLMENT_TOKEN_INVALID'
  | 'ENROLLMENT_TOKEN_EXPIRED'
  | 'ENROLLMENT_TOKEN_REVOKED'
  | 'CLIENT_CERTIFICATE_REQUIRED'
  | 'CLIENT_CERTIFICATE_UNTRUSTED'
  | 'CLIENT_CERTIFICATE_EXPIRED'
  | 'CLIENT_CERTIFICATE_NOT_YET_VALID'
  | 'CLIENT_CERTIFICATE_REVOKED'
  | 'CLIENT_CERTIFICATE_SUPERSEDED'
  | 'CLIENT_CERTIFICATE_UNKNOWN'
  | 'CLIENT_CERTIFICATE_REJECTED'
  | 'NOT_FOUND'
  | 'CONNECTOR_NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'REQUEST_TIMEOUT'
  | 'IDEMPOTENCY_KEY_CONSUMED'
  | 'CONNECTOR_ID_CONFLICT'
  | 'RECOVERY_REQUIRED'
  | 'RECOVERY_NOT_NEEDED'
  | 'CURSOR_EXPIRED'
  | 'BODY_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'RENEWAL_RATE_LIMITED'
  | 'HEADERS_TOO_LARGE'
  | 'INTERNAL_ERROR';
export type ConnectorState =
  'pending' | 'enrolling' | 'online' | 'degraded' | 'offline' | 'needs_recovery' | 'recovering';
export type EnsureConnectorRequest = ConnectorConfig & {
  ownerUid?: OwnerUid;
  /**
   * The namespace of the Connector named by ownerUid. Required to claim a record that was handed over to a namespace: only that namespace's Connector claims it.
   */
  ownerNamespace?: Namespace;
};
export type EnrollResponse = IssuedCertificate & {
  heartbeatIntervalSeconds: number;
};

/**
 * Every schema of the OpenAPI document by name (the index the generator compiles from).
 */
export interface ControlPlaneSchemas {
  ConnectorId?: ConnectorId;
  Time?: Time;
  OwnerUid?: OwnerUid;
  Namespace?: Namespace;
  ErrorCode?: ErrorCode;
  ErrorBody?: ErrorBody;
  ConnectorState?: ConnectorState;
  ConnectorConfig?: ConnectorConfig;
  EnsureConnectorRequest?: EnsureConnectorRequest;
  PathHealth?: PathHealth;
  Connector?: Connector;
  RecoveryCheck?: RecoveryCheck;
  Change?: Change;
  AuditEntry?: AuditEntry;
  MintRequest?: MintRequest;
  MintedToken?: MintedToken;
  EnrollRequest?: EnrollRequest;
  IssuedCertificate?: IssuedCertificate;
  EnrollResponse?: EnrollResponse;
  HeartbeatRequest?: HeartbeatRequest;
  HeartbeatResponse?: HeartbeatResponse;
  RenewRequest?: RenewRequest;
}
export interface ErrorBody {
  error: {
    code: ErrorCode;
    /**
     * Human readable; never a secret.
     */
    message: string;
    /**
     * Public facts, e.g. `field` for INVALID_REQUEST.
     */
    details?: {
      [k: string]: unknown | undefined;
    };
  };
}
export interface ConnectorConfig {
  org: string;
  endpointId: string;
  /**
   * @maxItems 256
   *
   * Items: IPv4 or IPv6 CIDR, without an IPv6 zone (fe80::1%eth0 names one host's interface, not a network).
   */
  allowedNetworks: string[];
}
export interface PathHealth {
  /**
   * At most 128 bytes in UTF-8 (maxLength counts characters, which may be up to 4 bytes).
   */
  name: string;
  healthy: boolean;
  /**
   * At most 1024 bytes in UTF-8.
   */
  detail?: string;
}
export interface Connector {
  connectorId: ConnectorId;
  org: string;
  endpointId: string;
  allowedNetworks: string[];
  state: ConnectorState;
  /**
   * True from the first heartbeat after the first enrollment on.
   */
  bootstrapRetired: boolean;
  lastHeartbeatAt: Time | null;
  stateChangedAt: Time;
  enrolledAt: Time | null;
  paths: PathHealth[];
  certificate: null | {
    /**
     * Lowercase hex.
     */
    serial: string;
    notBefore: Time;
    notAfter: Time;
    /**
     * Lowercase hex SHA-256 of the DER certificate.
     */
    fingerprintSha256: string;
  };
  /**
   * The unused, unexpired token, if any (never the token itself).
   */
  liveToken: null | {
    tokenId: string;
    expiresAt: Time;
  };
  recovery: null | {
    requestId: string;
    startedAt: Time;
    completedAt: Time | null;
  };
  /**
   * The last refusal of a caller holding one of this connector's own tokens (a refusal of anyone else is not recorded here); updated at most a few times a minute.
   */
  lastEnrollmentFailure: null | {
    code: ErrorCode;
    at: Time;
  };
  /**
   * The UID of the Kubernetes Connector that owns the record; null when nobody does.
   */
  ownerUid: OwnerUid | null;
  /**
   * While nobody owns the record: the namespace whose Connector alone may claim it, as its last owner let go of it (deletionPolicy Retain); null otherwise.
   */
  handoverNamespace: Namespace | null;
  /**
   * Increases with every change published on the change stream.
   */
  revision: number;
}
/**
 * The answer to a dry run of beginRecovery; nothing was written.
 */
export interface RecoveryCheck {
  dryRun: true;
  /**
   * The recovery would begin (a refusal is an error answer, as without dryRun).
   */
  allowed: true;
  requestId: string;
  state: ConnectorState;
  /**
   * A recovery of this requestId has begun already; beginning it again changes nothing.
   */
  sameRequest: boolean;
}
export interface Change {
  cursor: number;
  connectorId: ConnectorId;
  /**
   * The connector's state, or `deleted`.
   */
  state: ConnectorState | 'deleted';
  at: Time;
  /**
   * The connector as it was after this change; null after a delete.
   */
  connector: Connector | null;
}
export interface AuditEntry {
  seq: number;
  at: Time;
  type:
    | 'connector.created'
    | 'connector.updated'
    | 'connector.deleted'
    | 'connector.claimed'
    | 'connector.disowned'
    | 'token.minted'
    | 'token.revoked'
    | 'endpoint.enrolled'
    | 'endpoint.enrollment_answered_again'
    | 'gateway.enrollment_failed'
    | 'endpoint.certificate_refused'
    | 'endpoint.bootstrap_retired'
    | 'endpoint.cert_renewed'
    | 'endpoint.state_changed'
    | 'recovery.started'
    | 'recovery.completed';
  connectorId: ConnectorId | null;
  /**
   * Public facts only; never a token, credential or key.
   */
  details: {
    [k: string]: unknown | undefined;
  };
}
export interface MintRequest {
  /**
   * A retried mint with the same key answers the same token while it is live.
   */
  idempotencyKey: string;
  ttlSeconds?: number;
}
export interface MintedToken {
  tokenId: string;
  /**
   * The only place the token ever appears. Single use.
   */
  token: string;
  expiresAt: Time;
}
export interface EnrollRequest {
  connectorId: ConnectorId;
  token: string;
  /**
   * PKCS#10, subject CN=<connectorId>, RSA >= 2048 or EC P-256/P-384, signed by its key.
   */
  csrPem: string;
}
export interface IssuedCertificate {
  certificatePem: string;
  caPem: string;
  serial: string;
  notAfter: Time;
}
export interface HeartbeatRequest {
  /**
   * All names and details together are at most 32 KiB (32768 bytes) in UTF-8. Over any bound: 400 INVALID_REQUEST naming the field (paths[i].name, paths[i].detail, paths).
   *
   * @maxItems 64
   */
  paths: PathHealth[];
  agentVersion?: string;
}
export interface HeartbeatResponse {
  state: ConnectorState;
  heartbeatIntervalSeconds: number;
  renewAfter: Time;
}
export interface RenewRequest {
  csrPem: string;
}
