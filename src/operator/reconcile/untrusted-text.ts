// What a server says is data. The control plane (or whatever answers at the URL a Connector names)
// chooses the words of its error answers, and an agent's heartbeat chooses its path details; the
// operator copies such text into conditions, the recovery reason, the diagnosis, Events and logs.
// Before it does, the text passes through here, once: its length bounded (a status write the API
// server refuses for a too-long field would stall the Connector), control characters removed (a
// newline or an ANSI escape forges lines in `kubectl describe` and in terminals; bidi controls make
// text read differently from what it is) and anything that looks like a token or credential
// redacted (a server that echoes the request would otherwise publish the admin credential).

import { isContractErrorCode } from '../../contract/error-codes.ts';
import { CodedError } from '../../lib/errors.ts';
import { isRecord } from '../../lib/is-record.ts';
import { RECOVERY_REQUEST_ID_PATTERN } from '../api/constants.ts';
import { ControlPlaneAnswerError } from '../control-plane/admin-client.ts';
import { redactCredentialShapes, redactSecretPatterns, SECRET_WORDS } from '../runtime/secret-patterns.ts';
import type { ControlPlaneConnector } from './observed.ts';

/** What the operator quotes of one message from a server, at most. */
export const UNTRUSTED_TEXT_MAX = 300;
/** The operator's own messages (with a Kubernetes refusal's causes) are longer, but bounded too. */
const OWN_TEXT_MAX = 2048;
/** Nothing beyond this much is looked at: whatever is cut here would be cut by the bound anyway. */
const INPUT_MAX = 16 * 1024;

// Terminal escape sequences, removed whole so that no "[31m" remains: CSI (ESC [ or the C1 CSI),
// OSC (ESC ] ... BEL or ESC \) and two-character escapes.
const ESCAPE_SEQUENCES =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  /\u001b\[[0-?]*[ -/]*[@-~]?|\u009b[0-?]*[ -/]*[@-~]?|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|\u001b[@-_]?/g;
// Line breaks of every kind become spaces, so words stay apart.
const LINE_BREAKS = /[\t\n\v\f\r\u0085\u2028\u2029]/g;
// C0, DEL and C1 controls (\p{Cc}); format characters (\p{Cf}: bidi embeddings, overrides and
// isolates, zero-width characters, which also hide a token from the redaction); lone surrogates.
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Cs}]/gu;

// Key names taken for secrets in server text: the shared ones, and a session (a cookie's or an
// API's) as servers name it.
const SERVER_SECRET_WORDS = `${SECRET_WORDS}|session`;

/** Text from a server as the operator may show it: one line, printable, redacted, at most `max` characters. */
export function untrustedText(value: unknown, max = UNTRUSTED_TEXT_MAX): string {
  let text = typeof value === 'string' ? value : value === undefined || value === null ? '' : String(value);
  text = text
    .slice(0, INPUT_MAX)
    .replace(ESCAPE_SEQUENCES, '')
    .replace(LINE_BREAKS, ' ')
    .replace(INVISIBLE, '');
  text = redactCredentialShapes(redactSecretPatterns(text), SERVER_SECRET_WORDS);
  text = text.replace(/ {2,}/g, ' ').trim();
  return bounded(text, max);
}

/** An error code from a server: kept when it looks like one (UPPER_SNAKE, CamelCase), else named as unrecognised. */
export function untrustedCode(value: unknown): string {
  return typeof value === 'string' && /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(value)
    ? value
    : 'UNRECOGNIZED_CODE';
}

/**
 * `CODE: message` of an error for a condition, an Event or a log line. The control plane's answers
 * are quoted within UNTRUSTED_TEXT_MAX; the operator's own errors (an invalid spec with the API
 * server's causes, a missing Secret) keep more, cleaned the same way.
 */
export function errorText(error: CodedError): string {
  return `${untrustedCode(error.code)}: ${errorMessageText(error)}`;
}

/**
 * The error as it may leave the reconciler (the work queue logs what it is handed, and the
 * reconcile-errors metric is labelled by its code): the same kind (temporary or not), its message
 * cleaned as errorText cleans it, and its code the same unless a control plane answered with a code
 * the contract does not name, which becomes UNRECOGNIZED_CODE: such a code is the server's choice,
 * and as a label each new one would be another series kept for the operator's lifetime (a
 * ControlPlane's author picks the server). The condition and the Event still quote it. The
 * original stays the cause, which nothing logs.
 */
export function cleanedError(error: CodedError): CodedError {
  // HTTP_<status> is the client's own name for an answer without a code: a bounded set.
  const code =
    error instanceof ControlPlaneAnswerError &&
    !isContractErrorCode(error.code) &&
    !/^HTTP_\d{3}$/.test(error.code)
      ? 'UNRECOGNIZED_CODE'
      : untrustedCode(error.code);
  return new CodedError(code, errorMessageText(error), {
    httpStatus: error.httpStatus,
    temporary: error.temporary,
    cause: error,
  });
}

/** The message of an error, as errorText shows it (without the code). */
export function errorMessageText(error: CodedError): string {
  const serverSaid = error instanceof ControlPlaneAnswerError;
  return untrustedText(error.message, serverSaid ? UNTRUSTED_TEXT_MAX : OWN_TEXT_MAX);
}

// An RFC 3339 time, as the contract's Time is (its grammar allows a lowercase t and z, and any
// number of fraction digits): anything else (a legacy date format that Date.parse also accepts,
// with text in parentheses it ignores) is not a time the operator quotes.
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;
/** Longer than any time a clock needs (nanoseconds and an offset are 35 characters). */
const TIME_MAX = 40;

/** A time from elsewhere, kept as written when it is an RFC 3339 time, else undefined. */
export function untrustedTime(value: unknown): string | undefined {
  return typeof value === 'string' &&
    value.length <= TIME_MAX &&
    RFC3339.test(value) &&
    !Number.isNaN(Date.parse(value))
    ? value
    : undefined;
}

/** A certificate's serial or fingerprint as the control plane writes them: hex, colons allowed. */
const CERTIFICATE_ID = /^[0-9A-Fa-f:]{1,128}$/;

/** The record's certificate, each field what it says it is (the status schema checks them too). */
function untrustedCertificate(
  certificate: ControlPlaneConnector['certificate'],
): ControlPlaneConnector['certificate'] {
  if (!isRecord(certificate)) return null;
  const id = (value: unknown) => (typeof value === 'string' && CERTIFICATE_ID.test(value) ? value : '');
  return {
    serial: id(certificate.serial),
    notBefore: untrustedTime(certificate.notBefore) ?? '',
    notAfter: untrustedTime(certificate.notAfter) ?? '',
    fingerprintSha256: id(certificate.fingerprintSha256),
  };
}

/**
 * The control plane's record with the free text the operator quotes cleaned: path names and
 * details (written by an agent, kept by the control plane), the last enrollment failure's code and
 * time, and the state (shown in status, where the schema allows 64 characters). The times and the
 * recovery's request id are compared as well as quoted: they are kept exactly as written when they
 * are what they say they are (a time, an id the CRD would accept), and dropped otherwise; the live
 * token's expiry likewise, and bootstrapRetired is true only when it is the boolean true.
 */
export function untrustedRecord(
  record: ControlPlaneConnector | undefined,
): ControlPlaneConnector | undefined {
  if (!isRecord(record)) return undefined;
  const failure = isRecord(record.lastEnrollmentFailure) ? record.lastEnrollmentFailure : null;
  const recovery = isRecord(record.recovery) ? record.recovery : null;
  return {
    ...record,
    connectorId: untrustedText(record.connectorId, 253),
    certificate: untrustedCertificate(record.certificate),
    // Read as a boolean everywhere: a string "false" is not retired in one step and retired in another.
    bootstrapRetired: record.bootstrapRetired === true,
    // The expiry is compared with the token Secret's: a time, or nothing that could match one.
    liveToken: isRecord(record.liveToken)
      ? { ...record.liveToken, expiresAt: untrustedTime(record.liveToken.expiresAt) ?? '' }
      : null,
    state: untrustedText(record.state, 64) as ControlPlaneConnector['state'],
    // The times are quoted in conditions and compared with each other: times, or nothing.
    enrolledAt: untrustedTime(record.enrolledAt) ?? null,
    lastHeartbeatAt: untrustedTime(record.lastHeartbeatAt) ?? null,
    stateChangedAt: untrustedTime(record.stateChangedAt) ?? 'an unreadable time',
    recovery: recovery
      ? {
          // Compared with spec.recovery.requestId: never rewritten (a redaction of a long
          // mixed-case id made every recovery with one wait at TokensRevoked for good).
          requestId: RECOVERY_REQUEST_ID_PATTERN.test(recovery.requestId) ? recovery.requestId : '',
          startedAt: untrustedTime(recovery.startedAt) ?? '',
          completedAt: untrustedTime(recovery.completedAt) ?? null,
        }
      : null,
    // An element that is not an object names no path (and must not stop the pass).
    paths: (Array.isArray(record.paths) ? record.paths : []).filter(isRecord).map((path) => ({
      ...path,
      name: untrustedText(path.name, 128),
      detail: untrustedText(path.detail, UNTRUSTED_TEXT_MAX),
    })),
    lastEnrollmentFailure: failure
      ? { code: untrustedCode(failure.code), at: untrustedText(failure.at, 64) }
      : null,
  };
}

/** Cuts at a code point (never half a surrogate pair, as the API server counts), marking the cut. */
export function bounded(text: string, max: number): string {
  const points = Array.from(text);
  if (points.length <= max) return text;
  return `${points.slice(0, Math.max(0, max - 1)).join('')}…`;
}
