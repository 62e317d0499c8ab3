// Turns the errors node:https raises (socket, DNS, TLS verification) into coded errors whose message
// is the one clear line the enrollment troubleshooting guide teaches people to look for, and begins
// with the guide's own fragment ("connection refused to", "connection timed out after 30s",
// "tls handshake failed:", "client certificate rejected:", "x509: certificate signed by unknown
// authority", "certificate chain incomplete", ...). OpenSSL's raw text (source paths, "\n") never
// reaches a message. Trust failures are permanent (retrying cannot fix a wrong CA bundle); network
// and handshake failures are temporary.
import type { X509Certificate } from 'node:crypto';
import { DEFAULT_MIN_VERSION } from 'node:tls';
import { describeDuration } from '../lib/duration.ts';
import { CodedError, errorMessage } from '../lib/errors.ts';
import { UNKNOWN_AUTHORITY_CODES } from '../lib/tls-verify-codes.ts';

/** How far a request got, in the order it gets there; named in timeouts and resets. */
export const REQUEST_PHASES = [
  'resolving the host name',
  'connecting',
  'tls handshake',
  'waiting for the answer',
  'reading the answer',
] as const;
export type RequestPhase = (typeof REQUEST_PHASES)[number];

export interface ConnectionContext {
  /** The control plane URL being reached. */
  url: string;
  /** The CA bundle the agent trusts, named in trust errors; undefined means the system roots. */
  caFile: string | undefined;
  /** Local time, to compare with validity dates (clock skew). */
  now: Date;
  /** The deadline of one whole request (DNS, connect, TLS, answer), named in timeouts. */
  requestTimeoutMs?: number;
  /** How far the failed request got, when known. */
  phase?: RequestPhase;
  /** Whether the request presented a client certificate (the agent has one only after pairing). */
  clientCertificate?: boolean;
  /** False when the request went out on a kept-alive connection that had served others. */
  freshConnection?: boolean;
  /**
   * Whether the handshake got as far as deriving keys (the server chose a cipher suite and sent its
   * certificate request, if any): a handshake_failure alert after that is not about cipher suites.
   */
  keysDerived?: boolean;
  /** The issuer (X509Certificate.issuer) of this connector's own certificate, once it has one. */
  clientCertificateIssuer?: string;
}

/** Validity of the certificate the server presented, when it could be read. */
export interface PeerValidity {
  notBefore: Date;
  notAfter: Date;
}

/** The certificates the server sent (leaf first) and the CA certificates the agent trusts. */
export interface PresentedChain {
  sent: X509Certificate[];
  trusted: X509Certificate[];
}

/**
 * What a second, unverified handshake with the server told about it, read only after a failure to
 * explain it: the validity dates it claims, the chain it sends, the newest TLS version it speaks.
 */
export interface ServerFacts {
  validity?: PeerValidity;
  chain?: PresentedChain;
  /** e.g. "TLSv1.1", from a handshake that allowed every version. */
  tlsVersion?: string;
}

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

/** What verified the server, as the subject of a sentence; `verb` agrees with it ("does" / "do"). */
function trustSource(caFile: string | undefined): { name: string; verb: 'does' | 'do' } {
  return caFile
    ? { name: `the CA file ${caFile}`, verb: 'does' }
    : { name: 'the system CA roots (no --ca-file given)', verb: 'do' };
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
    // Either clock may be the wrong one: this node's, or the one of the host that issued it.
    return (
      `certificate has expired or is not yet valid: ${whose} is not yet valid (${range}, ${local}): either ` +
      `this node's clock is ${skew} behind, or the certificate was issued by a clock ${skew} ahead; check time ` +
      'sync on both (timedatectl, NTP)'
    );
  }
  if (now.getTime() > validity.notAfter.getTime()) {
    const ago = describeDuration(now.getTime() - validity.notAfter.getTime());
    return `certificate has expired or is not yet valid: ${whose} has expired (${range}, ${local}, ${ago} past expiry); if the date looks wrong, the local clock is skewed: check time sync`;
  }
  return `certificate has expired or is not yet valid: ${whose} is ${range} and ${local}; the peer judged it outside its validity, so one of the two clocks is skewed`;
}

/**
 * Classifies a transport-level error (no HTTP answer was received). `facts` is what an unverified
 * handshake told about the server, when the caller read it (validity dates, chain, TLS version).
 */
export function classifyConnectionError(
  error: unknown,
  context: ConnectionContext,
  facts: ServerFacts = {},
): CodedError {
  if (error instanceof CodedError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const raw = plainCause(errorMessage(error));
  const host = hostOf(context.url);
  const options = { cause: error, details: { host, transport: true, ...phaseDetail(context) } };
  const permanent = (coded: string, message: string) =>
    new CodedError(coded, message, { ...options, temporary: false });
  const temporary = (coded: string, message: string) =>
    new CodedError(coded, message, { ...options, temporary: true });

  if (typeof code === 'string' && UNKNOWN_AUTHORITY_CODES.has(code)) {
    const incomplete = facts.chain ? chainIncompleteMessage(facts.chain, host, context.caFile) : undefined;
    if (incomplete) return permanent('CA_CHAIN_INCOMPLETE', incomplete);
    const trust = trustSource(context.caFile);
    return permanent(
      'CA_UNTRUSTED',
      `x509: certificate signed by unknown authority: the control plane at ${host} presented a certificate ` +
        `that ${trust.name} ${trust.verb} not trust (${code}: ${raw})` +
        (facts.chain ? `: ${chainSummary(facts.chain)}` : '') +
        (facts.chain ? ownIssuerHint(facts.chain, context) : ''),
    );
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    const detail = facts.validity
      ? validityMessage(`the control plane certificate of ${host}`, facts.validity, context.now)
      : `certificate has expired or is not yet valid: the control plane certificate of ${host} ${code === 'CERT_HAS_EXPIRED' ? 'has expired' : 'is not yet valid'} (local time is ${context.now.toISOString()}; check this node's clock and the issuer's)`;
    return permanent(
      code === 'CERT_HAS_EXPIRED' ? 'SERVER_CERT_EXPIRED' : 'SERVER_CERT_NOT_YET_VALID',
      detail,
    );
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return permanent('SERVER_NAME_MISMATCH', nameMismatchMessage(error, context.url));
  }
  const handshake = handshakeFailure(error, code, context, facts);
  if (handshake) {
    return (handshake.permanent ? permanent : temporary)(handshake.code, handshake.message);
  }
  if (code === 'REQUEST_TIMEOUT') return temporary('CONNECTION_TIMEOUT', timeoutMessage(host, context, raw));

  const networkCode = typeof code === 'string' ? TEMPORARY_NETWORK_CODES[code] : undefined;
  if (networkCode === 'CONNECTION_REFUSED') {
    return temporary(
      networkCode,
      `connection refused to ${host}: the control plane is not listening there or a firewall rejects the connection`,
    );
  }
  if (networkCode === 'CONNECTION_TIMEOUT') {
    return temporary(networkCode, `connection timed out reaching ${host}: check routing, DNS and firewalls`);
  }
  if (networkCode === 'DNS_LOOKUP_FAILED') return temporary(networkCode, `cannot resolve ${host}: ${raw}`);
  if (networkCode) {
    return temporary(
      networkCode,
      `${networkCode.toLowerCase().replace(/_/g, ' ')} talking to ${host}: ${raw}`,
    );
  }
  return temporary('CONNECTION_FAILED', `request to ${host} failed: ${raw}`);
}

// ---------------------------------------------------------------------------------------------
// Host name mismatch

/** "DNS:cp.example, IP Address:10.0.0.1" (node's subjectaltname) -> the DNS and IP names it lists. */
function hostNamesOf(subjectAltName: unknown): string[] {
  if (typeof subjectAltName !== 'string') return [];
  return subjectAltName
    .split(/,\s*/)
    .map((entry) => /^(DNS|IP Address):(.+)$/.exec(entry.trim()))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => `${match[1] === 'DNS' ? 'DNS' : 'IP'}:${match[2]}`);
}

/**
 * Which names the control plane's certificate carries and which one was asked for, instead of
 * node's "IP: 127.0.0.1 is not in the cert's list:" (which lists only the names of the asked kind,
 * often none).
 */
function nameMismatchMessage(error: unknown, url: string): string {
  let asked: string;
  try {
    asked = new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    asked = hostOf(url);
  }
  const peer = (error as { cert?: { subjectaltname?: unknown; subject?: { CN?: unknown } } }).cert;
  const names = hostNamesOf(peer?.subjectaltname);
  const commonName = typeof peer?.subject?.CN === 'string' ? peer.subject.CN : undefined;
  const carries =
    names.length > 0
      ? `it names ${names.join(', ')}`
      : `it names no DNS or IP subject alternative name${commonName ? ` (only CN=${commonName}, which is not matched against host names)` : ''}`;
  return (
    `tls handshake failed: certificate verify failed: the control plane certificate is not valid for ${asked}, ` +
    `the host --control-plane-url asks for: ${carries}`
  );
}

// ---------------------------------------------------------------------------------------------
// Timeouts

function phaseDetail(context: ConnectionContext): { phase?: RequestPhase } {
  return context.phase ? { phase: context.phase } : {};
}

/** "30s", "0.25s": the guide's way of writing a timeout. */
export function secondsText(milliseconds: number): string {
  return `${Number((milliseconds / 1000).toFixed(3))}s`;
}

const TIMEOUT_HINTS: Record<RequestPhase, string> = {
  'resolving the host name': 'while resolving the host name: check DNS',
  connecting:
    'while connecting: the TCP connection was never answered (packets dropped by a firewall, a wrong address or route)',
  'tls handshake':
    "during the tls handshake: the port accepts TCP connections but never completes a TLS handshake (is it the control plane's HTTPS port? a proxy?)",
  'waiting for the answer': 'waiting for the answer: the control plane took the request but did not answer',
  'reading the answer': 'while reading the answer: the control plane stopped sending it',
};

function timeoutMessage(host: string, context: ConnectionContext, raw: string): string {
  if (context.requestTimeoutMs === undefined) return `connection timed out reaching ${host}: ${raw}`;
  const head = `connection timed out after ${secondsText(context.requestTimeoutMs)} reaching ${host}`;
  return context.phase ? `${head} ${TIMEOUT_HINTS[context.phase]}` : head;
}

// ---------------------------------------------------------------------------------------------
// TLS handshake failures and alerts

/** OpenSSL's text, e.g. "...:error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:../ssl/x.c:918:SSL alert number 48\n". */
const OPENSSL_ERROR = /error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^:]+):/;
const OPENSSL_ALERT_NUMBER = /SSL alert number (\d+)/;

interface OpenSslFailure {
  /** OpenSSL's reason, e.g. "wrong version number" or "tlsv1 alert unknown ca". */
  reason: string;
  /** The TLS alert the peer sent, when it sent one. */
  alert: number | undefined;
}

/** TLS alert numbers (RFC 8446 6.2) by OpenSSL's name for them. */
const ALERT_NUMBERS: Record<string, number> = {
  'handshake failure': 40,
  'bad certificate': 42,
  'unsupported certificate': 43,
  'certificate revoked': 44,
  'certificate expired': 45,
  'certificate unknown': 46,
  'unknown ca': 48,
  'access denied': 49,
  'protocol version': 70,
  'certificate required': 116,
};

/** OpenSSL's reason and alert, from its text or else from node's code (ERR_SSL_TLSV1_ALERT_UNKNOWN_CA). */
function openSslFailure(message: string, code?: unknown): OpenSslFailure | undefined {
  const reason =
    OPENSSL_ERROR.exec(message)?.[1]?.trim() ??
    (typeof code === 'string' && code.startsWith('ERR_SSL_')
      ? code.slice('ERR_SSL_'.length).toLowerCase().replace(/_/g, ' ')
      : undefined);
  if (!reason) return undefined;
  const number = OPENSSL_ALERT_NUMBER.exec(message)?.[1];
  const alert =
    number !== undefined
      ? Number(number)
      : / alert /.test(reason)
        ? ALERT_NUMBERS[alertName(reason)]
        : undefined;
  return { reason, alert };
}

/** One plain line from an error message: OpenSSL's reason only, no source paths or control characters. */
export function plainCause(message: string): string {
  const openssl = openSslFailure(message);
  const text = openssl ? openssl.reason : message;
  return (
    text
      // Node's advice to its own users, not to the agent's.
      .replace(/;?\s*if the root CA is installed locally, try running Node\.js with --use-system-ca/, '')
      .replace(/\S*\.(?:c|cc|h):\d+:?/g, '')
      .replace(/\\n/g, ' ')
      .replace(/\p{Cc}+/gu, ' ')
      .replace(/\s+/g, ' ')
      .trim() || 'no detail'
  );
}

/** Alerts in which a server refuses the client certificate (RFC 8446 6.2), worded as the guide does. */
const CLIENT_CERTIFICATE_ALERTS: Record<number, string> = {
  42: "bad certificate: the server refused this connector's certificate",
  43: 'unsupported certificate: the server does not accept this kind of certificate (key usage, extended key usage or key type)',
  44: "certificate revoked: the server says this connector's certificate was revoked",
  45: "certificate expired: the server judged this connector's certificate expired (compare its notAfter with the server's clock and the local clock)",
  46: "certificate unknown: the server refused this connector's certificate",
  48: "certificate signed by unknown authority: the server does not trust the CA that issued this connector's certificate",
  49: "access denied: the server refused this connector's certificate",
};
const ALERT_CERTIFICATE_REQUIRED = 116;
const ALERT_HANDSHAKE_FAILURE = 40;
const ALERT_PROTOCOL_VERSION = 70;

const NOT_TLS_REASONS =
  /wrong version number|packet length too long|http request|unknown protocol|record layer failure/;
const NO_COMMON_VERSION_REASONS = /unsupported protocol|no protocols available|alert protocol version/;
const CLOSED_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

/** A coded TLS failure; `permanent` when retrying cannot change it (the server's configuration). */
interface HandshakeFailure {
  code: string;
  message: string;
  permanent?: boolean;
}

/** The coded failure of a TLS handshake (or a TLS alert right after it), undefined when it is none. */
function handshakeFailure(
  error: unknown,
  code: unknown,
  context: ConnectionContext,
  facts: ServerFacts,
): HandshakeFailure | undefined {
  const host = hostOf(context.url);
  const openssl = openSslFailure(errorMessage(error), code);
  if (openssl) return opensslHandshakeFailure(openssl, host, context, facts);
  if (typeof code === 'string' && CLOSED_CODES.has(code)) return closedDuringHandshake(host, context);
  return undefined;
}

/**
 * Whether the server's alert says it asked for a client certificate and received none. TLS 1.3 has
 * its own alert for it (certificate_required, 116). TLS 1.2 has none: OpenSSL's server answers an
 * empty Certificate message with handshake_failure (40), which it also sends when no cipher suite or
 * signature algorithm is in common; but that happens before any key is derived, an empty Certificate
 * after. Only an agent that had no certificate to send knows it sent none, so only then is 40 read so.
 */
function certificateRequired(alert: number | undefined, reason: string, context: ConnectionContext): boolean {
  if (alert === ALERT_CERTIFICATE_REQUIRED || /certificate required/.test(reason)) return true;
  return alert === ALERT_HANDSHAKE_FAILURE && !context.clientCertificate && context.keysDerived === true;
}

/**
 * The guide's "client certificate required" for the server's alert. Permanent: the server's
 * demand does not change by retrying, so the agent stops at once, as it does for the HTTP forms of
 * the same refusal (proxy-answers.ts, the control plane's 401), and says who must change what.
 */
function certificateRequiredFailure(
  alert: number | undefined,
  reason: string,
  host: string,
  context: ConnectionContext,
): HandshakeFailure {
  const said =
    `client certificate required: the server at ${host} asked for a client certificate in the TLS handshake ` +
    `and received none (TLS alert ${alert ?? ALERT_CERTIFICATE_REQUIRED}: ${alertName(reason)})`;
  return {
    code: 'CLIENT_CERTIFICATE_REQUIRED',
    permanent: true,
    message: context.clientCertificate
      ? // OpenSSL sends the certificate only when the request admits its key and signature algorithm.
        `${said}, although this agent had this connector's certificate to present: the server's certificate ` +
        'request does not admit it (its key type or signature algorithm), so none was sent'
      : `${said}: this agent has no certificate before it pairs, so the enrollment request must be let through without one`,
  };
}

/**
 * Whether an alert arrived after this agent had verified the server (its handshake completed, which
 * is when the request waits for the answer): under TLS 1.3 a server reads the client's certificate
 * only then, and its alert is encrypted with keys no one on the path has. An alert before that (all
 * of TLS 1.2's, sent before the server's Finished, and any answer to the ClientHello) is plain text
 * anyone on the path can send, so it never stops the agent for good.
 */
function serverAuthenticated(context: ConnectionContext): boolean {
  return context.phase === 'waiting for the answer' && context.freshConnection !== false;
}

/**
 * "Client certificate required" from an alert the server did not authenticate (see
 * serverAuthenticated): worded as the guide's symptom, and retried, as a refusal of the network is.
 * A one-packet forgery stopping a paired agent for good (or failing a recovery) was found by the
 * review of dbedb55, which had made every such alert permanent.
 */
function unauthenticatedCertificateRequired(
  alert: number | undefined,
  reason: string,
  host: string,
): HandshakeFailure {
  return {
    code: 'TLS_CLIENT_CERTIFICATE_REQUIRED',
    message:
      `client certificate required: the server at ${host} refused the TLS handshake with alert ` +
      `${alert ?? ALERT_CERTIFICATE_REQUIRED} (${alertName(reason)}) before it had proved itself, ` +
      'so anyone on the network path could have sent it: retried (a server that requires one: let the ' +
      'enrollment request through without a client certificate, or pass TLS through to the control plane)',
  };
}

function opensslHandshakeFailure(
  { reason, alert }: OpenSslFailure,
  host: string,
  context: ConnectionContext,
  facts: ServerFacts,
): HandshakeFailure {
  const failed = (message: string) => ({
    code: 'TLS_HANDSHAKE_FAILED',
    message: `tls handshake failed: ${message}`,
  });
  if (certificateRequired(alert, reason, context)) {
    return serverAuthenticated(context)
      ? certificateRequiredFailure(alert, reason, host, context)
      : unauthenticatedCertificateRequired(alert, reason, host);
  }
  const refusal = alert === undefined ? undefined : CLIENT_CERTIFICATE_ALERTS[alert];
  if (alert !== undefined && refusal) {
    return context.clientCertificate
      ? certificateRefused(alert, refusal, reason, host)
      : handshakeRefusedWithoutCertificate(alert, reason, host);
  }
  if (NOT_TLS_REASONS.test(reason)) {
    return failed(
      `the server at ${host} does not speak TLS (plain HTTP port?): use the control plane's HTTPS port in --control-plane-url`,
    );
  }
  if (alert === ALERT_PROTOCOL_VERSION || NO_COMMON_VERSION_REASONS.test(reason)) {
    const offered = facts.tlsVersion
      ? `the server at ${host} offers ${facts.tlsVersion} at most`
      : `the server at ${host} refuses the TLS versions this agent offers`;
    return failed(
      `no TLS version in common: ${offered} and this agent requires ${DEFAULT_MIN_VERSION} or later`,
    );
  }
  if (alert === ALERT_HANDSHAKE_FAILURE) {
    return failed(
      `the server at ${host} aborted the handshake (alert handshake failure): no cipher suite or signature algorithm in common` +
        (context.clientCertificate
          ? ''
          : ', or it requires a client certificate, which this agent has only after pairing'),
    );
  }
  if (alert !== undefined)
    return failed(`the server at ${host} sent the TLS alert "${alertName(reason)}" (${alert})`);
  if (/unexpected eof/.test(reason)) {
    return closedDuringHandshake(host, { ...context, phase: 'tls handshake' }) ?? failed(reason);
  }
  return failed(`${reason} talking to ${host}`);
}

/**
 * The server reached at --control-plane-url refused the client certificate by a TLS alert. Not an
 * outage: the address answered. Retried all the same (temporary), since whatever sent it (a proxy's
 * client CA, a CA rollout) may be fixed without touching the connector; the agent cannot tell a
 * misconfigured proxy from a control plane whose CA changed, so this is never identity loss either.
 * Giving up on it says so too (failure.ts gaveUpFailure), instead of "unreachable".
 */
function certificateRefused(alert: number, refusal: string, reason: string, host: string): HandshakeFailure {
  return {
    code: 'TLS_CLIENT_CERTIFICATE_REJECTED',
    message:
      `client certificate rejected: ${refusal}: the TLS handshake was refused by the peer at ${host} with alert ` +
      `${alert} (${alertName(reason)}): the certificate was not accepted (e.g. a proxy terminating TLS, or a ` +
      'control plane trusting another CA)',
  };
}

/**
 * The same alerts while pairing, when the agent has no certificate and presented none: nothing of
 * the connector's was refused. OpenSSL and Go servers answer a missing certificate with 116 or 40
 * (certificateRequired); other stacks in front of a control plane may send one of these instead, or
 * refuse the client by a rule of their own (access denied). The same code as the paired refusal, and
 * retried the same way (failure.ts words giving up on it for the pairing): the server at the URL
 * answered, the request did not reach the control plane, and the token is unspent.
 */
function handshakeRefusedWithoutCertificate(alert: number, reason: string, host: string): HandshakeFailure {
  return {
    code: 'TLS_CLIENT_CERTIFICATE_REJECTED',
    message:
      'tls handshake refused: this agent presented no client certificate (it has none before it pairs), and ' +
      `the server at ${host} refused the handshake with alert ${alert} (${alertName(reason)}): whatever ` +
      'terminates TLS there (a proxy, ingress or load balancer) probably requires a client certificate and ' +
      'answers a missing one with this alert instead of "certificate required", or refuses this client by a ' +
      'rule of its own; the enrollment request did not reach the control plane, so the token is unspent',
  };
}

/** "tlsv1 alert unknown ca" -> "unknown ca". */
function alertName(reason: string): string {
  return reason.replace(/^(?:sslv3|tlsv1|tlsv13|ssl\/tls) alert /, '');
}

/**
 * The server closed the connection during the handshake, or on a fresh connection right after it,
 * before answering: a TLS 1.3 server that refuses the client certificate after the handshake (as
 * node's own servers do) looks exactly like this.
 */
function closedDuringHandshake(host: string, context: ConnectionContext): HandshakeFailure | undefined {
  const refusedCertificate = context.clientCertificate
    ? ": it probably refused this connector's client certificate (check the server's logs)"
    : ': is it a TLS port?';
  if (context.phase === 'tls handshake') {
    return {
      code: 'TLS_HANDSHAKE_FAILED',
      message: `tls handshake failed: the server at ${host} closed the connection during the handshake${refusedCertificate}`,
    };
  }
  if (context.phase === 'waiting for the answer' && context.freshConnection && context.clientCertificate) {
    return {
      code: 'TLS_HANDSHAKE_FAILED',
      message: `tls handshake failed: the server at ${host} closed the connection right after the handshake, before answering${refusedCertificate}`,
    };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Unknown issuer: an incomplete chain or an unrelated CA

/** "CN=Inter\nO=Acme" -> "CN=Inter, O=Acme". */
function nameText(distinguishedName: string): string {
  return distinguishedName.split('\n').join(', ');
}

/** The organization-level parts of a name (O and DC), which a CA and its intermediates share. */
function organizationOf(distinguishedName: string): string[] {
  return distinguishedName.split('\n').filter((part) => /^(?:O|DC)=/.test(part));
}

function sameOrganization(a: string, b: string): boolean {
  const ours = organizationOf(a);
  const theirs = new Set(organizationOf(b));
  return ours.length > 0 && ours.length === theirs.size && ours.every((part) => theirs.has(part));
}

function subjectsText(certificates: X509Certificate[]): string {
  const names = certificates.map((certificate) => nameText(certificate.subject));
  const shown = names.slice(0, 5).join('; ');
  return names.length > 5 ? `${shown}; and ${names.length - 5} more` : shown;
}

/** What the server sent and the CA file holds, for a person to compare (an unknown authority). */
function chainSummary(chain: PresentedChain): string {
  const top = chain.sent.at(-1);
  if (!top) return 'the server sent no certificate';
  const issuer = nameText(top.issuer);
  const holds = chain.trusted.length > 0 ? `; the CA file holds ${subjectsText(chain.trusted)}` : '';
  const sameName = chain.trusted.some((ca) => ca.subject === top.issuer);
  const hint =
    top.subject === top.issuer
      ? ''
      : sameName
        ? `; the CA file has a CA named ${issuer}, but not the one that signed (another key: was the CA regenerated?)`
        : `; if ${issuer} is an intermediate CA, the chain is incomplete instead: the server must send it, or add it to the CA file`;
  return `the server sent ${chain.sent.length} certificate(s) ending at one issued by ${issuer}${holds}${hint}`;
}

/**
 * The control plane's chain ends at the CA that issued this connector's own certificate: the agent
 * trusts the wrong bundle for a control plane it paired with (typically identity/ca.pem lost and no
 * --ca-file), so say which CA to trust and where it was.
 */
function ownIssuerHint(chain: PresentedChain, context: ConnectionContext): string {
  const top = chain.sent.at(-1);
  if (!top || !context.clientCertificateIssuer || top.issuer !== context.clientCertificateIssuer) return '';
  const own = "; that issuer is the CA that issued this connector's own certificate (identity/cert.pem)";
  return context.caFile
    ? `${own}, which ${context.caFile} does not hold: point --ca-file (env VAULTPAM_CA_FILE) at the CA that issued the control plane's certificate`
    : `${own}: set --ca-file (env VAULTPAM_CA_FILE) to the CA that issued the control plane's certificate, or restore identity/ca.pem`;
}

/**
 * The guide's "certificate chain incomplete" when the names say so: the server's chain stops at a
 * certificate whose issuer is not in the CA file (by name) and is not a root the server sent, while
 * the CA file holds a CA of the same organization under another name (the missing intermediate's
 * parent, most likely). A CA file holding the issuer's very name (another key: a regenerated CA) or
 * a CA of another organization is the plain unknown authority.
 */
export function chainIncompleteMessage(
  chain: PresentedChain,
  host: string,
  caFile: string | undefined,
): string | undefined {
  const top = chain.sent.at(-1);
  if (!top || !caFile || chain.trusted.length === 0) return undefined;
  if (top.subject === top.issuer) return undefined;
  if (chain.trusted.some((ca) => ca.subject === top.issuer)) return undefined;
  if (!chain.trusted.some((ca) => sameOrganization(ca.subject, top.issuer))) return undefined;
  return (
    `certificate chain incomplete: unable to get local issuer certificate: the server at ${host} sent ` +
    `${chain.sent.length} certificate(s) ending at one issued by ${nameText(top.issuer)}, which is not in ` +
    `${caFile} (it holds ${subjectsText(chain.trusted)}): the server must send its intermediate, or add it to the CA file`
  );
}

/**
 * Which fact about the server would explain a failed request, for the client to read with an
 * unverified handshake before classifying: the validity dates, the chain, or the TLS version.
 */
export function serverFactsToRead(error: unknown): keyof ServerFacts | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return 'validity';
  if (typeof code === 'string' && UNKNOWN_AUTHORITY_CODES.has(code)) return 'chain';
  const openssl = openSslFailure(errorMessage(error), code);
  if (
    openssl &&
    (openssl.alert === ALERT_PROTOCOL_VERSION || NO_COMMON_VERSION_REASONS.test(openssl.reason))
  ) {
    return 'tlsVersion';
  }
  return undefined;
}

/** True for errors raised before any HTTP answer arrived (socket, DNS, TLS). */
export function isTransportError(error: CodedError): boolean {
  return error.details?.transport === true;
}
