// Why the agent stopped, in the runbook's words: the failure class, a stable code, the exit code the
// process contract assigns, and the runbook's next step. The operator reads the termination message
// and the exit code to diagnose a connector, so both are derived here and nowhere else.
import {
  type AgentFailureClass,
  EXIT_CODES,
  type ExitCode,
  TERMINATION_MESSAGE_MAX_BYTES,
  type TerminationMessage,
} from '../contract/agent-process.ts';
import { CodedError, type CodedErrorOptions } from '../lib/errors.ts';

/** The classes and exit codes are the process contract's (src/contract/agent-process.ts). */
export type FailureClass = AgentFailureClass;
export { EXIT_CODES, type ExitCode };

/** Runbook next steps, worded for a Kubernetes operator or a human reading the pod's last state. */
export const NEXT_STEPS = {
  tokenMissingOrUnknownHistory:
    'If this connector never paired: mount a fresh single-use enrollment token at the token file and start ' +
    'it again. If it paired before: its durable identity is gone (the data directory is empty), so reattach ' +
    'the original data directory if it still exists; otherwise follow guided recovery (revoke the stale ' +
    'token, mint one fresh token, pair exactly once on durable storage).',
  tokenRejectedUnknownHistory:
    'If this connector never paired: generate a fresh enrollment token (Regenerate token) and retry pairing ' +
    'once. If it paired before, this is durable identity loss or an invalid bootstrap fallback: scale the ' +
    'connector to zero, reattach the original data directory if it exists, otherwise follow guided recovery ' +
    '(revoke the stale token, mint one fresh token, pair exactly once on durable storage).',
  tokenUnreadable:
    'The token file exists but cannot be read: make the mounted token Secret readable by the connector user ' +
    '(defaultMode / fsGroup), then start the connector again.',
  tokenExpiredOrRevoked:
    'The enrollment token can no longer be used: generate a fresh enrollment token (Regenerate token), ' +
    'mount it at the token file and retry pairing once.',
  enrollmentClientCertificateRequired:
    'A proxy in front of the control plane requires a client certificate on the enrollment request, which a ' +
    'connector cannot have before it pairs: let the enrollment path through without one (client certificate ' +
    'optional there, or TLS passthrough to the control plane, which asks for none on it), then start the ' +
    'connector again; the control plane never saw the request, so the token is unspent and still usable.',
  enrollmentRequestRejected:
    'Fix the enrollment request problem named in the reason (connector ID, key or CSR), then generate a ' +
    'fresh enrollment token and retry pairing once.',
  trust:
    'Fix the trust problem: point --ca-file (env VAULTPAM_CA_FILE) at the CA bundle that issued the control ' +
    'plane certificate, then start the connector again; the token was not sent, so it is still usable.',
  serverNameMismatch:
    'Use the host name the control plane certificate names (listed in the reason) in --control-plane-url ' +
    '(env VAULTPAM_CONTROL_PLANE_URL), or have the control plane certificate issued for the name the agent ' +
    'uses, then start the connector again; the token was not sent, so it is still usable.',
  chainIncomplete:
    'The server must send its intermediate CA certificate with its own (configure the full chain on the ' +
    'control plane or the proxy in front of it), or add the intermediate to the CA file (--ca-file, env ' +
    'VAULTPAM_CA_FILE), then start the connector again; the token was not sent, so it is still usable.',
  serverCertificateDates:
    "Renew the control plane certificate, or fix this node's clock if its date is wrong (timedatectl " +
    'status, NTP), whichever the dates in the reason point at; then start the connector again. The token ' +
    'was not sent, so it is still usable.',
  identityLost:
    'Durable identity loss: scale the connector to zero, reattach the original data directory if it still ' +
    'exists; otherwise follow guided recovery (revoke the stale token, mint one fresh token, ensure durable ' +
    'storage is mounted, pair exactly once). Do not retry the bootstrap token. While identity/identity.json ' +
    'is still there, a token mounted after this report makes the agent move the identity directory aside ' +
    '(identity.rejected-<time>, never deleted) and pair once with it; a token already mounted now is not used.',
  identityUnusable:
    'The local identity bundle cannot be used: fix the file named in the reason (a damaged file, a bundle ' +
    'copied from another connector) or reattach the original data directory; if the identity is gone for ' +
    'good, follow guided recovery and pair exactly once with a fresh token.',
  identityFilesInaccessible:
    'Permission denied: give the connector user the identity files (the troubleshooting guide\'s "Permission ' +
    'Denied"): make the user the pod runs as (runAsUser) their owner, or the pod\'s fsGroup their group ' +
    '(chown -R <uid>:<gid> <data dir>/identity), with modes key.pem 0600, cert.pem, ca.pem and identity.json ' +
    '0644, the directory 0700; then start the connector again. The identity is intact: do not clear it, do ' +
    'not mint a token, do not start a guided recovery (it could not pair while the directory is unreadable ' +
    'either). Only if the reason says the private key was readable by other users and you treat it as ' +
    'exposed: instead of fixing the files, delete the identity directory, make the data directory writable by ' +
    'this user (the new key is written there), and start again; the connector then ' +
    'has no identity, and guided recovery revokes the exposed certificate and pairs a new key once (a ' +
    'recovery is refused while the identity still works).',
  identityRejected:
    'The control plane no longer accepts this identity (revoked by a recovery, replaced by a newer pairing, ' +
    'or the connector was deleted and created again, e.g. a claim kept after deletionPolicy Release): follow ' +
    'guided recovery (scale to zero, mint one fresh token, pair exactly once on durable storage). A token ' +
    'mounted after this refusal makes the agent move the refused identity aside (identity.rejected-<time>) and ' +
    'pair once with it; a token that was already mounted is not used.',
  identityExpired:
    "This connector's certificate has expired (for example during an outage longer than its lifetime), and " +
    'the control plane cannot renew an expired certificate: follow guided recovery (scale to zero, mint one ' +
    'fresh token, pair exactly once on durable storage). A token mounted after this refusal makes the agent ' +
    'move the expired identity aside (identity.rejected-<time>) and pair once with it; a token that was ' +
    'already mounted is not used.',
  identityUntrusted:
    "The control plane no longer trusts the CA that issued this connector's certificate (its CA was " +
    "replaced). If that was a mistake, restore the control plane's CA and restart the connector; otherwise " +
    'follow guided recovery (scale to zero, mint one fresh token, pair exactly once on durable storage): a ' +
    'token mounted after this refusal makes the agent move the identity aside (identity.rejected-<time>) and ' +
    'pair once with it.',
  clockSkew:
    'Clock skew, not identity loss: fix time synchronisation (NTP or chrony; check with timedatectl status) ' +
    'on this node or on the control plane, whichever is wrong, then restart the connector once. Keep the ' +
    'identity in the data directory: do not clear it, do not mint a token, do not start a guided recovery.',
  clockSkewExpired:
    'The clocks disagree: fix time synchronisation (NTP or chrony; check with timedatectl status) on the ' +
    'node or the control plane, whichever is wrong, then restart the connector once, keeping the identity ' +
    "in the data directory. If this node's clock was the wrong one, the control plane's verdict stands: the " +
    'certificate has expired, the restart reports IDENTITY_EXPIRED and a guided recovery follows (its token ' +
    "replaces the identity, which is kept aside). If the control plane's clock was wrong, the restart " +
    'reconnects with the same identity.',
  controlPlaneMismatch:
    'Point --control-plane-url (env VAULTPAM_CONTROL_PLANE_URL) back at the control plane recorded in ' +
    'identity/identity.json, which issued this identity, and restart the connector. If the connector really ' +
    'moved to another control plane, pair it there: move the identity directory aside and mount a fresh ' +
    'token of the new control plane.',
  clientCertificateNotReceived:
    'A TLS-terminating proxy, ingress or load balancer between the agent and the control plane drops the ' +
    'client certificate: configure TLS passthrough to the control plane (or point --control-plane-url at it ' +
    'directly) and restart the connector. The identity is intact: do not clear it.',
  clientCertificateNotAdmitted:
    'The server at --control-plane-url (the control plane, or a proxy, ingress or load balancer in front of ' +
    "it) asks for a client certificate in the TLS handshake but does not admit this connector's (its key " +
    'type or signature algorithm: the agent generates ECDSA P-256 keys), so the agent sent none: configure TLS ' +
    "passthrough to the control plane, which accepts the connector's certificate (or point " +
    '--control-plane-url at it directly), or let that server accept ECDSA client certificates; then restart ' +
    'the connector. The identity is intact: do not clear it.',
  clientCertificateRefusedInHandshake:
    'The server at --control-plane-url (the control plane, or a proxy, ingress or load balancer in front of ' +
    "it) was reached and refused this connector's certificate with the TLS alert the reason names: it " +
    "verifies client certificates against another CA than the one that issued the connector's, or judges " +
    'them otherwise (expired, revoked). Check the proxy and the CA chain: configure TLS passthrough to the ' +
    'control plane, or make that server trust the connector CA (the CA in identity/ca.pem); if the control ' +
    "plane's own CA was replaced by mistake, restore it. The next start then connects (under Kubernetes the " +
    'kubelet restarts the agent by itself, with its backoff). The identity is kept: ' +
    'do not clear it, and do not start a recovery on this alone (the agent cannot tell a proxy from a ' +
    'control plane whose CA changed, and a recovery revokes a certificate that may be good).',
  handshakeRefusedWhilePairing:
    'The server at --control-plane-url (a proxy, ingress or load balancer in front of the control plane, or ' +
    'the control plane) refused the TLS handshake of the enrollment request with the alert the reason names, ' +
    'while this agent, not yet paired, presented no client certificate: let the enrollment path through ' +
    'without one (client certificate optional there, or TLS passthrough to the control plane), or lift the ' +
    'rule of that server that refuses this client. The request never reached the control plane, so the token ' +
    'is unspent: the next start pairs with it once the path lets it through (under Kubernetes the kubelet ' +
    'restarts the agent by itself, with its backoff).',
  sanUriPrefixMismatch:
    "The agent's --san-uri-prefix (env VAULTPAM_SAN_URI_PREFIX) and the control plane's SAN URI prefix " +
    "disagree: give the control plane back the prefix this connector's certificate was issued under and " +
    "restart the connector. If the control plane's prefix changed for good, this identity cannot be used " +
    'with it: move the identity directory aside, set --san-uri-prefix to the new prefix and pair once with ' +
    'a fresh token.',
  identityNotSaved:
    'The control plane issued the certificate, but the data directory did not take it (the reason names the ' +
    'file and the error: a full volume, a read-only mount, ownership). Make the data directory writable, then ' +
    'start the connector again with the same token mounted: before the connector has sent a heartbeat, and ' +
    'within the token lifetime, the control plane sends the same certificate again for the key kept in ' +
    'identity/key.pem (keep that file), so no new token and no recovery are needed. Only if the token lifetime ' +
    'has passed meanwhile, mount a fresh token (Regenerate token); it pairs once. If the Kubernetes operator ' +
    'manages this connector, it has deleted the spent token once the pairing was recorded: after the fix, the ' +
    'next start reports the token missing, the operator mints a fresh one, and the start after pairs once ' +
    'with it (a new pairing is allowed until the first heartbeat).',
  unreachable:
    'Normal reconnect failure: restore outbound HTTPS reachability to the control plane (DNS, firewall, ' +
    'proxy), confirm the identity bundle is still on durable storage, restart the connector once and ' +
    'validate it returns to Online without a new enrollment token.',
  firstBootUnreachable:
    'Never paired: the control plane could not be reached to pair. Restore outbound HTTPS from the connector ' +
    'to the control plane (DNS, firewall, proxy, --control-plane-url, --ca-file) and start the connector ' +
    'again. The enrollment token is still unused unless an answer was lost on the way; if it expired or was ' +
    'spent meanwhile, mint a fresh one (Regenerate token). The agent pairs exactly once.',
  configuration: 'Fix the flag or environment variable named in the reason and start the connector again.',
} as const;

export interface AgentFailureOptions extends CodedErrorOptions {
  failureClass: FailureClass;
  exitCode: ExitCode;
  nextStep: string;
}

/** A reason to stop for good: the agent logs it once, writes the termination message and exits. */
export class AgentFailure extends CodedError {
  readonly failureClass: FailureClass;
  readonly exitCode: ExitCode;
  readonly nextStep: string;

  constructor(code: string, message: string, options: AgentFailureOptions) {
    super(code, message, { ...options, temporary: false });
    this.name = 'AgentFailure';
    this.failureClass = options.failureClass;
    this.exitCode = options.exitCode;
    this.nextStep = options.nextStep;
  }
}

export function isAgentFailure(value: unknown): value is AgentFailure {
  return value instanceof AgentFailure;
}

export function configurationFailure(message: string): AgentFailure {
  return new AgentFailure('CONFIGURATION_INVALID', message, {
    failureClass: 'Configuration',
    exitCode: EXIT_CODES.configuration,
    nextStep: NEXT_STEPS.configuration,
  });
}

export function tokenMissingFailure(tokenFile: string | undefined, dataDir: string): AgentFailure {
  const where = tokenFile
    ? `the token file ${tokenFile} is absent or empty`
    : 'no --token-file is configured';
  return new AgentFailure(
    'ENROLLMENT_TOKEN_MISSING',
    `no identity in ${dataDir} and no enrollment token: ${where}; the agent cannot tell whether this ` +
      'connector paired before, so it does not start',
    {
      failureClass: 'FirstBootBootstrap',
      exitCode: EXIT_CODES.firstBootBootstrap,
      nextStep: NEXT_STEPS.tokenMissingOrUnknownHistory,
    },
  );
}

export function tokenUnreadableFailure(message: string): AgentFailure {
  return new AgentFailure('ENROLLMENT_TOKEN_UNREADABLE', message, {
    failureClass: 'FirstBootBootstrap',
    exitCode: EXIT_CODES.firstBootBootstrap,
    nextStep: NEXT_STEPS.tokenUnreadable,
  });
}

/** Maps a control-plane enrollment refusal (a 4xx answer to POST /v1/enroll) to a fail-closed reason. */
export function enrollmentRejectedFailure(error: CodedError): AgentFailure {
  const base = { failureClass: 'FirstBootBootstrap' as const, exitCode: EXIT_CODES.firstBootBootstrap };
  const reason = `enrollment refused: ${error.httpStatus} ${error.code}: ${error.message}`;
  switch (error.code) {
    case 'ENROLLMENT_TOKEN_EXPIRED':
    case 'ENROLLMENT_TOKEN_REVOKED':
      return new AgentFailure(error.code, reason, { ...base, nextStep: NEXT_STEPS.tokenExpiredOrRevoked });
    case 'ENROLLMENT_TOKEN_INVALID':
      // The control plane says so only to the holder of this connector's own spent token.
      if (error.details?.previouslyPaired === true) {
        return new AgentFailure(error.code, reason, {
          failureClass: 'IdentityLoss',
          exitCode: EXIT_CODES.identityLoss,
          nextStep: NEXT_STEPS.identityLost,
        });
      }
      return new AgentFailure(error.code, reason, {
        ...base,
        nextStep: NEXT_STEPS.tokenRejectedUnknownHistory,
      });
    case 'CLIENT_CERTIFICATE_REQUIRED':
      // A proxy's page (proxy-answers.ts): the request stopped there, before the control plane.
      return new AgentFailure(error.code, error.message, {
        ...base,
        nextStep: NEXT_STEPS.enrollmentClientCertificateRequired,
      });
    default:
      return new AgentFailure(error.code, reason, {
        ...base,
        nextStep: NEXT_STEPS.enrollmentRequestRejected,
      });
  }
}

/** The next step of each trust failure while pairing: each has its own fix, not always --ca-file. */
const TRUST_NEXT_STEPS: Readonly<Record<string, string>> = {
  // A server that requires a client certificate in the handshake (connection-errors.ts).
  CLIENT_CERTIFICATE_REQUIRED: NEXT_STEPS.enrollmentClientCertificateRequired,
  SERVER_NAME_MISMATCH: NEXT_STEPS.serverNameMismatch,
  CA_CHAIN_INCOMPLETE: NEXT_STEPS.chainIncomplete,
  SERVER_CERT_EXPIRED: NEXT_STEPS.serverCertificateDates,
  SERVER_CERT_NOT_YET_VALID: NEXT_STEPS.serverCertificateDates,
};

/**
 * A TLS failure while pairing that retrying cannot fix: a trust failure (nothing was sent), or a
 * server that requires a client certificate (it aborted the handshake, so nothing reached the
 * control plane).
 */
export function enrollmentTrustFailure(error: CodedError): AgentFailure {
  return new AgentFailure(error.code, `enrollment impossible: ${error.message}`, {
    failureClass: 'FirstBootBootstrap',
    exitCode: EXIT_CODES.firstBootBootstrap,
    nextStep: TRUST_NEXT_STEPS[error.code] ?? NEXT_STEPS.trust,
  });
}

export function identityLostFailure(message: string): AgentFailure {
  return new AgentFailure('IDENTITY_LOST', message, {
    failureClass: 'IdentityLoss',
    exitCode: EXIT_CODES.identityLoss,
    nextStep: NEXT_STEPS.identityLost,
  });
}

/** Codes: IDENTITY_DAMAGED, IDENTITY_KEY_MISMATCH, IDENTITY_FOREIGN, IDENTITY_FILE_READ_FAILED, ... */
export function identityUnusableFailure(code: string, message: string, cause?: unknown): AgentFailure {
  return new AgentFailure(code, message, {
    failureClass: 'IdentityLoss',
    exitCode: EXIT_CODES.identityUnusable,
    nextStep: NEXT_STEPS.identityUnusable,
    cause,
  });
}

/**
 * The connector user may not read an identity file (IDENTITY_KEY_UNREADABLE, IDENTITY_FILE_UNREADABLE)
 * or set a loose mode right (IDENTITY_PERMISSIONS): typically the pod's runAsUser or fsGroup changed
 * after pairing. Configuration, exit 12, like a data directory that takes no write
 * (identityNotSavedFailure): the files are intact and ownership and mode are the fix (the guide's
 * "Permission Denied"). It was IdentityLoss, exit 13, on which an operator under recovery policy
 * Automatic started a guided recovery that revoked the intact certificate, and could not pair either
 * while the agent cannot read its data directory.
 */
export function identityFilesInaccessibleFailure(
  code: string,
  message: string,
  cause?: unknown,
): AgentFailure {
  return new AgentFailure(code, message, {
    failureClass: 'Configuration',
    exitCode: EXIT_CODES.configuration,
    nextStep: NEXT_STEPS.identityFilesInaccessible,
    cause,
  });
}

// The control plane refusing this connector's client certificate: one constructor per cause
// (certificate-refusal.ts tells the causes apart and words the reason). Only the causes that make
// the identity useless for good are IdentityLoss; clock skew and configuration leave it intact.

/**
 * Revoked, replaced by a newer certificate, or belonging to no enrolled connector; `verdict` says
 * which, e.g. "this connector's certificate (serial 0A1B) was revoked by guided recovery r-7".
 * Without a verdict (an answer the agent cannot place) it reads as the control plane's refusal.
 */
export function identityRejectedFailure(error: CodedError, verdict?: string): AgentFailure {
  const answer = `${error.httpStatus} ${error.code}: ${error.message}`;
  return new AgentFailure(
    'IDENTITY_REJECTED',
    verdict ? `${verdict}: ${answer}` : `the control plane refused this connector's certificate: ${answer}`,
    {
      failureClass: 'IdentityLoss',
      exitCode: EXIT_CODES.identityUnusable,
      nextStep: NEXT_STEPS.identityRejected,
    },
  );
}

/** Expired by the control plane's clock and by this node's: no renewal can save it. */
export function identityExpiredFailure(reason: string): AgentFailure {
  return new AgentFailure('IDENTITY_EXPIRED', reason, {
    failureClass: 'IdentityLoss',
    exitCode: EXIT_CODES.identityUnusable,
    nextStep: NEXT_STEPS.identityExpired,
  });
}

/** The control plane (at the URL the identity was issued by) no longer trusts the CA that issued it. */
export function identityUntrustedFailure(reason: string): AgentFailure {
  return new AgentFailure('IDENTITY_UNTRUSTED', reason, {
    failureClass: 'IdentityLoss',
    exitCode: EXIT_CODES.identityUnusable,
    nextStep: NEXT_STEPS.identityUntrusted,
  });
}

/**
 * The two clocks disagree about the certificate's validity. Which one is wrong is not known here, so
 * this is not IdentityLoss (which would make the operator start a recovery at once) but a Reconnect
 * failure with its own exit code 14: a restart after the clocks are fixed reconnects with the same
 * identity, or, when the control plane's clock was right about an expiry, reports IDENTITY_EXPIRED.
 */
export function clockSkewFailure(
  reason: string,
  { controlPlaneJudgesExpired = false }: { controlPlaneJudgesExpired?: boolean } = {},
): AgentFailure {
  return new AgentFailure('CLOCK_SKEW', reason, {
    failureClass: 'Reconnect',
    exitCode: EXIT_CODES.controlPlaneUnreachable,
    // "Never a recovery" only when no clock calls the certificate expired: if the control plane's
    // clock is the right one, an expired certificate cannot be renewed.
    nextStep: controlPlaneJudgesExpired ? NEXT_STEPS.clockSkewExpired : NEXT_STEPS.clockSkew,
  });
}

/**
 * The control plane issued this connector's certificate (its token is spent) and the data directory
 * did not take it. Configuration, like the same directory refusing the key before the token was sent:
 * nothing is lost, since the key is on disk and the control plane answers the same token and key
 * again until the first heartbeat (docs/control-plane-contract.md), so a restart after the directory
 * is fixed pairs without a new token. (It was IdentityLoss, exit 13, whose next step is a recovery.)
 */
export function identityNotSavedFailure(reason: string, cause?: unknown): AgentFailure {
  return new AgentFailure('IDENTITY_PERSIST_FAILED', reason, {
    failureClass: 'Configuration',
    exitCode: EXIT_CODES.configuration,
    nextStep: NEXT_STEPS.identityNotSaved,
    cause,
  });
}

/** The identity was issued by another control plane than the one --control-plane-url names. */
export function controlPlaneMismatchFailure(reason: string): AgentFailure {
  return new AgentFailure('CONTROL_PLANE_MISMATCH', reason, {
    failureClass: 'Configuration',
    exitCode: EXIT_CODES.configuration,
    nextStep: NEXT_STEPS.controlPlaneMismatch,
  });
}

/**
 * The agent had a certificate to present and whatever terminates TLS at --control-plane-url received
 * none: a proxy in between never asked for it or took it off (clientCertificateNotReceived), or the
 * server asked in a way the certificate does not fit (clientCertificateNotAdmitted, a TLS alert).
 */
export function clientCertificateNotReceivedFailure(
  reason: string,
  nextStep: string = NEXT_STEPS.clientCertificateNotReceived,
): AgentFailure {
  return new AgentFailure('CLIENT_CERTIFICATE_NOT_RECEIVED', reason, {
    failureClass: 'Configuration',
    exitCode: EXIT_CODES.configuration,
    nextStep,
  });
}

/** The control plane expects another SAN URI prefix than the one this connector's certificate carries. */
export function sanUriPrefixMismatchFailure(reason: string): AgentFailure {
  return new AgentFailure('SAN_URI_PREFIX_MISMATCH', reason, {
    failureClass: 'Configuration',
    exitCode: EXIT_CODES.configuration,
    nextStep: NEXT_STEPS.sanUriPrefixMismatch,
  });
}

export function unreachableFailure(enrolled: boolean, lastError: CodedError, forMs: number): AgentFailure {
  return new AgentFailure(
    'CONTROL_PLANE_UNREACHABLE',
    `gave up after ${Math.round(forMs / 1000)} s without reaching the control plane; last error ` +
      `${lastError.code}: ${lastError.message}`,
    {
      failureClass: enrolled ? 'Reconnect' : 'FirstBootBootstrap',
      exitCode: EXIT_CODES.controlPlaneUnreachable,
      // Never paired: there is no identity to confirm, only a pairing to make once it can reach it.
      nextStep: enrolled ? NEXT_STEPS.unreachable : NEXT_STEPS.firstBootUnreachable,
    },
  );
}

/**
 * Giving up (--give-up-after, or --give-up-on-refusal-after) on a server that refused the handshake
 * by a TLS alert about the client certificate (connection-errors.ts): the address was reached, so not
 * CONTROL_PLANE_UNREACHABLE and its "restore outbound HTTPS". Exit 14 all the same, not 12: the agent
 * retried because a proxy or CA rollout may be fixed without touching the connector, the identity (or,
 * before pairing, the token) is intact and a restart may succeed (exit 14's meaning, as for
 * CLOCK_SKEW), while 10 to 13 say the agent refuses to go on. Before pairing no certificate was
 * presented, so the next step is about letting the enrollment through, not about the connector CA.
 */
function certificateRefusedFailure(enrolled: boolean, lastError: CodedError, forMs: number): AgentFailure {
  return new AgentFailure(
    lastError.code,
    `gave up after ${Math.round(forMs / 1000)} s: the control plane's address was reached, and ${lastError.message}`,
    {
      failureClass: enrolled ? 'Reconnect' : 'FirstBootBootstrap',
      exitCode: EXIT_CODES.controlPlaneUnreachable,
      nextStep: enrolled
        ? NEXT_STEPS.clientCertificateRefusedInHandshake
        : NEXT_STEPS.handshakeRefusedWhilePairing,
    },
  );
}

/** Why the agent gives up (--give-up-after or --give-up-on-refusal-after): what the last failed try says. */
export function gaveUpFailure(enrolled: boolean, lastError: CodedError, forMs: number): AgentFailure {
  return lastError.code === 'TLS_CLIENT_CERTIFICATE_REJECTED'
    ? certificateRefusedFailure(enrolled, lastError, forMs)
    : unreachableFailure(enrolled, lastError, forMs);
}

// Defence in depth: reasons are built from our own wording and control-plane error messages, which
// never hold secrets by contract; these patterns catch a token or PEM block if that ever breaks.
const TOKEN_PATTERN = /vpe_[0-9a-f]{16}_[A-Za-z0-9_-]+/g;
const PEM_PATTERN = /-----BEGIN [A-Z ]+-----[\s\S]*?(-----END [A-Z ]+-----|$)/g;

export function scrubSecrets(text: string): string {
  return text.replace(TOKEN_PATTERN, '[REDACTED TOKEN]').replace(PEM_PATTERN, '[REDACTED PEM]');
}

export function terminationMessageOf(failure: AgentFailure): TerminationMessage {
  return {
    failureClass: failure.failureClass,
    code: failure.code,
    reason: scrubSecrets(failure.message),
    nextStep: failure.nextStep,
  };
}

/** The termination-log file content: one JSON object (Kubernetes shows at most 4 KiB of it). */
export function formatTerminationMessage(failure: AgentFailure): string {
  const message = terminationMessageOf(failure);
  const text = JSON.stringify(message);
  if (Buffer.byteLength(text) <= TERMINATION_MESSAGE_MAX_BYTES) return `${text}\n`;
  return `${JSON.stringify({ ...message, reason: `${message.reason.slice(0, 1500)}…` })}\n`;
}
