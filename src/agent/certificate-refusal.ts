// The control plane refusing this connector's client certificate, read into its cause and the
// agent's answer (docs/connector-agent.md, "An identity the control plane refuses"). The control
// plane names the cause with its 401 code and gives the facts in the details (docs/control-plane.md,
// "mTLS"); an older one answered every cause but a missing certificate with
// CLIENT_CERTIFICATE_REJECTED, told apart by its TLS verify code and its wording. Clock skew and
// configuration leave the identity intact and never make the agent give it up; only the causes that
// make it useless for good let a token mounted after the refusal (a guided recovery's) replace it.
// Exit codes and next steps come from failure.ts; this file only tells the causes apart and words them.

import { describeDuration } from '../lib/duration.ts';
import type { CodedError } from '../lib/errors.ts';
import { isTransportError } from './connection-errors.ts';
import {
  type AgentFailure,
  clientCertificateNotReceivedFailure,
  clockSkewFailure,
  controlPlaneMismatchFailure,
  identityExpiredFailure,
  identityRejectedFailure,
  identityUntrustedFailure,
  NEXT_STEPS,
  sanUriPrefixMismatchFailure,
} from './failure.ts';

/** Why the control plane refused the certificate. `replacedOrRevoked` is an older control plane's one wording for both. */
export type RefusalCause =
  | 'required'
  | 'untrusted'
  | 'expired'
  | 'notYetValid'
  | 'revoked'
  | 'superseded'
  | 'unknown'
  | 'replacedOrRevoked'
  | 'sanMismatch'
  | 'unrecognized';

const CAUSE_OF_CODE: Readonly<Record<string, RefusalCause>> = {
  CLIENT_CERTIFICATE_REQUIRED: 'required',
  CLIENT_CERTIFICATE_UNTRUSTED: 'untrusted',
  CLIENT_CERTIFICATE_EXPIRED: 'expired',
  CLIENT_CERTIFICATE_NOT_YET_VALID: 'notYetValid',
  CLIENT_CERTIFICATE_REVOKED: 'revoked',
  CLIENT_CERTIFICATE_SUPERSEDED: 'superseded',
  CLIENT_CERTIFICATE_UNKNOWN: 'unknown',
};

/** True for the control plane's answers that refuse the client certificate (all CLIENT_CERTIFICATE_*). */
export function isCertificateRefusal(error: CodedError): boolean {
  return error.code === 'CLIENT_CERTIFICATE_REJECTED' || error.code in CAUSE_OF_CODE;
}

export function refusalCause(error: CodedError): RefusalCause {
  if (error.code === 'CLIENT_CERTIFICATE_REJECTED') return rejectedCause(error);
  return CAUSE_OF_CODE[error.code] ?? 'unrecognized';
}

/**
 * CLIENT_CERTIFICATE_REJECTED: today only a certificate that is not a connector's (the SAN
 * fragment); from an older control plane any cause, by its TLS verify code (details.reason) or its
 * wording. Its own date check, after TLS accepted the dates, said only "has expired or is not yet
 * valid" and checked only the end date.
 */
function rejectedCause(error: CodedError): RefusalCause {
  const reason = error.details?.reason;
  const text = error.message;
  if (/certificate SAN does not match expected pattern|is not a connector certificate/.test(text)) {
    return 'sanMismatch';
  }
  if (reason === 'CERT_HAS_EXPIRED') return 'expired';
  if (reason === 'CERT_NOT_YET_VALID') return 'notYetValid';
  if (typeof reason === 'string' || /unknown authority/.test(text)) return 'untrusted';
  if (/belongs to no enrolled connector/.test(text)) return 'unknown';
  if (/was replaced or revoked/.test(text)) return 'replacedOrRevoked';
  if (/certificate has expired or is not yet valid/.test(text)) return 'expired';
  return 'unrecognized';
}

/** The identity the control plane refused, as this agent holds it. */
export interface RefusedIdentity {
  connectorId: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** identity.json's controlPlaneUrl: the control plane that issued it. */
  issuedBy: string;
}

export interface RefusalContext {
  identity: RefusedIdentity;
  /** --control-plane-url: the control plane that refused it. */
  controlPlaneUrl: string;
  sanUriPrefix: string;
  /** This node's time when the refusal arrived. */
  now: Date;
}

export interface RefusalVerdict {
  failure: AgentFailure;
  /** The identity can never be used again, so a token mounted after this refusal may replace it. */
  replaceable: boolean;
  /**
   * The guided recovery that revoked the certificate (CLIENT_CERTIFICATE_REVOKED with a requestId).
   * Beginning it revoked the certificate and every older token, so a mounted token that can still
   * pair was minted for it: it may replace the identity at once, even at this first refusal.
   */
  recoveryRequestId?: string;
}

/** The agent's answer to a refusal of its certificate: how it fails closed, and whether a new token may replace it. */
export function judgeCertificateRefusal(error: CodedError, context: RefusalContext): RefusalVerdict {
  const cause = refusalCause(error);
  switch (cause) {
    case 'revoked':
    case 'superseded':
    case 'unknown':
    case 'replacedOrRevoked': {
      const requestId = cause === 'revoked' ? detail(error, 'requestId') : undefined;
      return {
        failure: identityRejectedFailure(error, verdictOnIdentity(cause, error, context.identity)),
        replaceable: true,
        ...(requestId ? { recoveryRequestId: requestId } : {}),
      };
    }
    case 'expired':
    case 'notYetValid':
      return validityVerdict(cause, error, context);
    case 'untrusted':
      return trustVerdict(error, context);
    case 'required':
      return { failure: notReceived(error, context), replaceable: false };
    case 'sanMismatch':
      return { failure: sanMismatch(error, context), replaceable: false };
    default:
      // An answer the agent cannot place: fail closed as before, but never give the identity up for it.
      return { failure: identityRejectedFailure(error), replaceable: false };
  }
}

function answerOf(error: CodedError): string {
  return `(${error.httpStatus ?? 401} ${error.code}: ${error.message})`;
}

/** A string detail of the control plane's answer (its wording, bounded; never a secret by contract). */
function detail(error: CodedError, name: string): string | undefined {
  const value = error.details?.[name];
  return typeof value === 'string' && value.length > 0 ? value.slice(0, 200) : undefined;
}

function dateDetail(error: CodedError, name: string): Date | undefined {
  const text = detail(error, name);
  const date = text === undefined ? undefined : new Date(text);
  return date && !Number.isNaN(date.getTime()) ? date : undefined;
}

function certificateOf(identity: RefusedIdentity): string {
  return `this connector's certificate (serial ${identity.serial})`;
}

function verdictOnIdentity(
  cause: 'revoked' | 'superseded' | 'unknown' | 'replacedOrRevoked',
  error: CodedError,
  identity: RefusedIdentity,
): string {
  const certificate = certificateOf(identity);
  switch (cause) {
    case 'revoked': {
      const requestId = detail(error, 'requestId');
      const revokedAt = detail(error, 'revokedAt');
      return `${certificate} was revoked${requestId ? ` by guided recovery ${requestId}` : ''}${revokedAt ? ` at ${revokedAt}` : ''}`;
    }
    case 'superseded': {
      const replacedAt = detail(error, 'replacedAt');
      return `${certificate} was replaced by a newer certificate${replacedAt ? ` at ${replacedAt}` : ''} (renewed, or paired again by another copy of this connector)`;
    }
    case 'unknown':
      return `${certificate} belongs to no enrolled connector (its record was deleted, e.g. the claim of a Connector deleted with deletionPolicy Release kept by a new one)`;
    default:
      return `${certificate} was replaced or revoked (a newer certificate, or a guided recovery)`;
  }
}

interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/**
 * Outside its validity by the control plane's clock. Only when this node's clock agrees that it has
 * expired is it gone for good; any other disagreement is clock skew, and the identity is kept.
 */
function validityVerdict(
  cause: 'expired' | 'notYetValid',
  error: CodedError,
  context: RefusalContext,
): RefusalVerdict {
  const validity: Validity = {
    notBefore: dateDetail(error, 'notBefore') ?? context.identity.notBefore,
    notAfter: dateDetail(error, 'notAfter') ?? context.identity.notAfter,
  };
  const serverTime = dateDetail(error, 'serverTime');
  const { now } = context;
  const times =
    `valid from ${validity.notBefore.toISOString()} to ${validity.notAfter.toISOString()}; this node's time ` +
    `${now.toISOString()}${serverTime ? `, the control plane's ${serverTime.toISOString()}` : ''}`;
  const certificate = certificateOf(context.identity);
  if (cause === 'expired' && now.getTime() >= validity.notAfter.getTime()) {
    const ago = describeDuration(now.getTime() - validity.notAfter.getTime());
    return {
      failure: identityExpiredFailure(
        `certificate has expired or is not yet valid: ${certificate} expired at ` +
          `${validity.notAfter.toISOString()}, ${ago} ago by this node's clock as by the control plane's ` +
          `(${times}); the control plane cannot renew an expired certificate ${answerOf(error)}`,
      ),
      replaceable: true,
    };
  }
  const judged = cause === 'expired' ? 'expired' : 'not yet valid';
  // Which clock is wrong is not known here. Only a certificate not yet valid is intact either way;
  // one the control plane calls expired is gone if the control plane's clock is the right one.
  const outcome =
    cause === 'expired'
      ? "if the control plane's clock is right, the certificate has expired and a guided recovery follows " +
        "once the clock is fixed; if this node's clock is right, the identity is intact"
      : 'the identity is intact';
  return {
    failure: clockSkewFailure(
      `certificate has expired or is not yet valid: clock skew: ${clockDifference(cause, validity, now, serverTime)}; ` +
        `the control plane judges ${certificate} ${judged}, ${localJudgement(validity, now)} (${times}); ` +
        `${outcome} ${answerOf(error)}`,
      { controlPlaneJudgesExpired: cause === 'expired' },
    ),
    replaceable: false,
  };
}

/** How far apart the clocks are: measured when the control plane says its time, else bounded by its verdict. */
function clockDifference(
  cause: 'expired' | 'notYetValid',
  validity: Validity,
  now: Date,
  serverTime: Date | undefined,
): string {
  if (serverTime) {
    const ahead = serverTime.getTime() - now.getTime();
    return `the control plane's clock is ${describeDuration(ahead)} ${ahead >= 0 ? 'ahead of' : 'behind'} this node's`;
  }
  if (cause === 'expired') {
    return `the control plane's clock is at least ${describeDuration(validity.notAfter.getTime() - now.getTime())} ahead of this node's`;
  }
  if (now.getTime() >= validity.notBefore.getTime()) {
    return `the control plane's clock is at least ${describeDuration(now.getTime() - validity.notBefore.getTime())} behind this node's`;
  }
  return 'the certificate was issued by a clock that ran ahead';
}

function localJudgement(validity: Validity, now: Date): string {
  if (now.getTime() < validity.notBefore.getTime()) {
    return `and by this node's clock too it becomes valid only in ${describeDuration(validity.notBefore.getTime() - now.getTime())}`;
  }
  if (now.getTime() > validity.notAfter.getTime()) return "while by this node's clock it has expired";
  return "while by this node's clock it is valid";
}

/** A foreign CA: another control plane than the one that issued the identity, or this one's CA changed. */
function trustVerdict(error: CodedError, context: RefusalContext): RefusalVerdict {
  const fragment = 'client certificate rejected: certificate signed by unknown authority';
  const { issuedBy } = context.identity;
  if (!sameControlPlane(issuedBy, context.controlPlaneUrl)) {
    return {
      failure: controlPlaneMismatchFailure(
        `${fragment}: this connector's identity was issued by the control plane at ${issuedBy} ` +
          `(identity.json), but this agent points at ${context.controlPlaneUrl} (--control-plane-url, env ` +
          `VAULTPAM_CONTROL_PLANE_URL), which does not trust it ${answerOf(error)}`,
      ),
      replaceable: false,
    };
  }
  const verifyCode = detail(error, 'reason');
  return {
    failure: identityUntrustedFailure(
      `${fragment}: the control plane at ${context.controlPlaneUrl} no longer trusts the CA that issued ` +
        `${certificateOf(context.identity)}${verifyCode ? ` (${verifyCode})` : ''}: its CA changed ${answerOf(error)}`,
    ),
    replaceable: true,
  };
}

/** Scheme, host and port, and the path without a trailing slash: how a control plane URL is compared. */
function controlPlaneKey(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname.replace(/\/+$/, '')}`;
  } catch {
    return url;
  }
}

export function sameControlPlane(a: string, b: string): boolean {
  return controlPlaneKey(a) === controlPlaneKey(b);
}

function notReceived(error: CodedError, context: RefusalContext): AgentFailure {
  if (isTransportError(error)) {
    // The server's TLS alert (connection-errors.ts): it asked, and the certificate did not fit.
    return clientCertificateNotReceivedFailure(
      error.message.replace(
        "this connector's certificate to present",
        `${certificateOf(context.identity)} to present`,
      ),
      NEXT_STEPS.clientCertificateNotAdmitted,
    );
  }
  return clientCertificateNotReceivedFailure(
    `client certificate required: the control plane at ${context.controlPlaneUrl} received no client ` +
      `certificate, although this agent had ${certificateOf(context.identity)} to present: something between ` +
      `them (a TLS-terminating proxy, ingress or load balancer) does not ask for it or drops it ${answerOf(error)}`,
  );
}

function sanMismatch(error: CodedError, context: RefusalContext): AgentFailure {
  const expected = detail(error, 'expectedSanUriPrefix');
  return sanUriPrefixMismatchFailure(
    'client certificate rejected: certificate SAN does not match expected pattern: the control plane ' +
      `expects URI SANs ${expected ? `under ${expected}` : 'under another prefix'}, and ` +
      `${certificateOf(context.identity)} carries ${context.sanUriPrefix}${context.identity.connectorId} ` +
      `(--san-uri-prefix, env VAULTPAM_SAN_URI_PREFIX) ${answerOf(error)}`,
  );
}
