// Turns the errors node:https raises (socket, DNS, TLS verification) into coded errors whose message
// is the one clear line the enrollment troubleshooting guide teaches people to look for. Trust
// failures are permanent (retrying cannot fix a wrong CA bundle); network failures are temporary.
import { CodedError, errorMessage } from '../lib/errors.ts';

export interface ConnectionContext {
  /** The control plane URL being reached. */
  url: string;
  /** The CA bundle the agent trusts, named in trust errors; undefined means the system roots. */
  caFile: string | undefined;
  /** Local time, to compare with validity dates (clock skew). */
  now: Date;
}

/** Validity of the certificate the server presented, when it could be read. */
export interface PeerValidity {
  notBefore: Date;
  notAfter: Date;
}

const UNKNOWN_CA_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
]);

const TEMPORARY_NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'CONNECTION_REFUSED',
  ETIMEDOUT: 'CONNECTION_TIMEOUT',
  ECONNRESET: 'CONNECTION_RESET',
  EPIPE: 'CONNECTION_RESET',
  ECONNABORTED: 'CONNECTION_RESET',
  UND_ERR_SOCKET: 'CONNECTION_RESET',
  ENOTFOUND: 'DNS_LOOKUP_FAILED',
  EAI_AGAIN: 'DNS_LOOKUP_FAILED',
  EHOSTUNREACH: 'NETWORK_UNREACHABLE',
  ENETUNREACH: 'NETWORK_UNREACHABLE',
  ENETDOWN: 'NETWORK_UNREACHABLE',
};

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

function trustSource(caFile: string | undefined): string {
  return caFile ? `the CA file ${caFile}` : 'the system CA roots (no --ca-file given)';
}

/** Human wording of a clock difference, e.g. "3 h 2 min". */
export function describeDuration(milliseconds: number): string {
  const totalSeconds = Math.round(Math.abs(milliseconds) / 1000);
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  if (hours > 0) return `${hours} h ${minutes} min`;
  if (minutes > 0) return `${minutes} min ${seconds} s`;
  return `${seconds} s`;
}

/**
 * Explains a certificate validity failure against local time, so clock skew is named as such.
 * `whose` is e.g. "the control plane certificate" or "this connector's certificate".
 */
export function validityMessage(whose: string, validity: PeerValidity, now: Date): string {
  const range = `valid from ${validity.notBefore.toISOString()} to ${validity.notAfter.toISOString()}`;
  const local = `local time is ${now.toISOString()}`;
  if (now.getTime() < validity.notBefore.getTime()) {
    const skew = describeDuration(validity.notBefore.getTime() - now.getTime());
    return `certificate has expired or is not yet valid: ${whose} is not yet valid (${range}, ${local}): the local clock is probably ${skew} behind; check time sync (timedatectl, NTP)`;
  }
  if (now.getTime() > validity.notAfter.getTime()) {
    const ago = describeDuration(now.getTime() - validity.notAfter.getTime());
    return `certificate has expired or is not yet valid: ${whose} has expired (${range}, ${local}, ${ago} past expiry); if the date looks wrong, the local clock is skewed: check time sync`;
  }
  return `${whose} is ${range} and ${local}; the peer judged it outside its validity, so one of the two clocks is skewed`;
}

/**
 * Classifies a transport-level error (no HTTP answer was received). `peer` is the server certificate's
 * validity when the caller could read it, used for expiry and not-yet-valid errors.
 */
export function classifyConnectionError(
  error: unknown,
  context: ConnectionContext,
  peer?: PeerValidity,
): CodedError {
  if (error instanceof CodedError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const raw = errorMessage(error);
  const host = hostOf(context.url);
  const options = { cause: error, details: { host, transport: true } };
  if (typeof code === 'string' && UNKNOWN_CA_CODES.has(code)) {
    return new CodedError(
      'CA_UNTRUSTED',
      `x509: certificate signed by unknown authority: the control plane at ${host} presented a certificate ` +
        `that ${trustSource(context.caFile)} does not trust (${code}: ${raw})`,
      { ...options, temporary: false },
    );
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    const detail = peer
      ? validityMessage(`the control plane certificate of ${host}`, peer, context.now)
      : `certificate has expired or is not yet valid: the control plane certificate of ${host} ${code === 'CERT_HAS_EXPIRED' ? 'has expired' : 'is not yet valid'} (local time is ${context.now.toISOString()}; check the local clock)`;
    return new CodedError(
      code === 'CERT_HAS_EXPIRED' ? 'SERVER_CERT_EXPIRED' : 'SERVER_CERT_NOT_YET_VALID',
      detail,
      {
        ...options,
        temporary: false,
      },
    );
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new CodedError(
      'SERVER_NAME_MISMATCH',
      `the control plane certificate is not valid for ${host}: ${raw}; use the host name the certificate ` +
        'names in --control-plane-url',
      { ...options, temporary: false },
    );
  }
  if (typeof code === 'string' && code.startsWith('ERR_SSL_')) {
    // The server refused our side of the handshake (for example our client certificate).
    return new CodedError(
      'TLS_HANDSHAKE_FAILED',
      `tls handshake failed: ${host} refused the handshake: ${raw}`,
      {
        ...options,
        temporary: true,
      },
    );
  }
  if (code === 'REQUEST_TIMEOUT') {
    return new CodedError('CONNECTION_TIMEOUT', `connection timed out reaching ${host}: ${raw}`, {
      ...options,
      temporary: true,
    });
  }
  const networkCode = typeof code === 'string' ? TEMPORARY_NETWORK_CODES[code] : undefined;
  if (networkCode === 'CONNECTION_REFUSED') {
    return new CodedError(
      networkCode,
      `connection refused by ${host}: the control plane is not listening there or a firewall rejects the connection`,
      { ...options, temporary: true },
    );
  }
  if (networkCode === 'CONNECTION_TIMEOUT') {
    return new CodedError(
      networkCode,
      `connection timed out reaching ${host}: check routing, DNS and firewalls`,
      {
        ...options,
        temporary: true,
      },
    );
  }
  if (networkCode === 'DNS_LOOKUP_FAILED') {
    return new CodedError(networkCode, `cannot resolve ${host}: ${raw}`, { ...options, temporary: true });
  }
  if (networkCode) {
    return new CodedError(
      networkCode,
      `${networkCode.toLowerCase().replace(/_/g, ' ')} talking to ${host}: ${raw}`,
      {
        ...options,
        temporary: true,
      },
    );
  }
  return new CodedError('CONNECTION_FAILED', `request to ${host} failed: ${raw}`, {
    ...options,
    temporary: true,
  });
}

/** True for errors raised before any HTTP answer arrived (socket, DNS, TLS). */
export function isTransportError(error: CodedError): boolean {
  return error.details?.transport === true;
}
