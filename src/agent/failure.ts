// Why the agent stopped, in the runbook's words: the failure class, a stable code, the exit code the
// process contract assigns, and the runbook's next step. The operator reads the termination message
// and the exit code to diagnose a connector, so both are derived here and nowhere else.
import { CodedError, type CodedErrorOptions } from '../lib/errors.ts';

/**
 * The runbook's three failure classes, plus Configuration for a process that could not even start
 * (exit 12), which belongs to none of them.
 */
export type FailureClass = 'FirstBootBootstrap' | 'Reconnect' | 'IdentityLoss' | 'Configuration';

export const EXIT_CODES = {
  clean: 0,
  identityLoss: 10,
  firstBootBootstrap: 11,
  configuration: 12,
  identityUnusable: 13,
  controlPlaneUnreachable: 14,
} as const;

export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];

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
  enrollmentRequestRejected:
    'Fix the enrollment request problem named in the reason (connector ID, key or CSR), then generate a ' +
    'fresh enrollment token and retry pairing once.',
  trust:
    'Fix the trust problem: point --ca-file at the CA bundle that issued the control plane certificate ' +
    '(and check the local clock if the reason mentions validity dates), then retry pairing.',
  identityLost:
    'Durable identity loss: scale the connector to zero, reattach the original data directory if it still ' +
    'exists; otherwise follow guided recovery (revoke the stale token, mint one fresh token, ensure durable ' +
    'storage is mounted, pair exactly once). Do not retry the bootstrap token.',
  identityUnusable:
    'The local identity bundle cannot be used: fix the file named in the reason (permissions, ownership, a ' +
    'bundle copied from another connector) or reattach the original data directory; if the identity is ' +
    'gone for good, follow guided recovery and pair exactly once with a fresh token.',
  identityRejected:
    'The control plane no longer accepts this identity (revoked by a recovery, replaced by a newer pairing, ' +
    'or the connector was deleted and created again, e.g. a claim kept after deletionPolicy Release): follow ' +
    'guided recovery (scale to zero, mint one fresh token, pair exactly once on durable storage). A token ' +
    'mounted after this refusal makes the agent move the refused identity aside (identity.rejected-<time>) and ' +
    'pair once with it; a token that was already mounted is not used.',
  unreachable:
    'Normal reconnect failure: restore outbound HTTPS reachability to the control plane (DNS, firewall, ' +
    'proxy), confirm the identity bundle is still on durable storage, restart the connector once and ' +
    'validate it returns to Online without a new enrollment token.',
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
    default:
      return new AgentFailure(error.code, reason, {
        ...base,
        nextStep: NEXT_STEPS.enrollmentRequestRejected,
      });
  }
}

/** A TLS trust failure while pairing: nothing was sent, but retrying cannot fix it. */
export function enrollmentTrustFailure(error: CodedError): AgentFailure {
  return new AgentFailure(error.code, `enrollment impossible: ${error.message}`, {
    failureClass: 'FirstBootBootstrap',
    exitCode: EXIT_CODES.firstBootBootstrap,
    nextStep: NEXT_STEPS.trust,
  });
}

export function identityLostFailure(message: string): AgentFailure {
  return new AgentFailure('IDENTITY_LOST', message, {
    failureClass: 'IdentityLoss',
    exitCode: EXIT_CODES.identityLoss,
    nextStep: NEXT_STEPS.identityLost,
  });
}

/** Codes: IDENTITY_KEY_UNREADABLE, IDENTITY_DAMAGED, IDENTITY_KEY_MISMATCH, IDENTITY_FOREIGN, ... */
export function identityUnusableFailure(code: string, message: string, cause?: unknown): AgentFailure {
  return new AgentFailure(code, message, {
    failureClass: 'IdentityLoss',
    exitCode: EXIT_CODES.identityUnusable,
    nextStep: NEXT_STEPS.identityUnusable,
    cause,
  });
}

/**
 * Whether a refused client certificate is the control plane's own verdict on this identity: it
 * belongs to no enrolled connector, or it was replaced or revoked. Not a TLS-level judgement (an
 * unknown CA or validity dates, which clock skew can cause: those answers carry the TLS verify
 * reason in details.reason), not the control plane's date check, and not a missing certificate.
 * The control plane gives all of these one code, CLIENT_CERTIFICATE_REJECTED, so the verdict is
 * told apart by its documented wording (docs/control-plane.md, "mTLS").
 */
export function isIdentityRefusedByControlPlane(error: CodedError): boolean {
  if (error.code !== 'CLIENT_CERTIFICATE_REJECTED' || error.httpStatus !== 401) return false;
  if (error.details?.reason !== undefined || error.details?.transport === true) return false;
  return /belongs to no enrolled connector|was replaced or revoked/.test(error.message);
}

export function identityRejectedFailure(error: CodedError): AgentFailure {
  return new AgentFailure(
    'IDENTITY_REJECTED',
    `the control plane refused this connector's certificate: ${error.httpStatus} ${error.code}: ${error.message}`,
    {
      failureClass: 'IdentityLoss',
      exitCode: EXIT_CODES.identityUnusable,
      nextStep: NEXT_STEPS.identityRejected,
    },
  );
}

export function unreachableFailure(enrolled: boolean, lastError: CodedError, forMs: number): AgentFailure {
  return new AgentFailure(
    'CONTROL_PLANE_UNREACHABLE',
    `gave up after ${Math.round(forMs / 1000)} s without reaching the control plane; last error ` +
      `${lastError.code}: ${lastError.message}`,
    {
      failureClass: enrolled ? 'Reconnect' : 'FirstBootBootstrap',
      exitCode: EXIT_CODES.controlPlaneUnreachable,
      nextStep: NEXT_STEPS.unreachable,
    },
  );
}

export interface TerminationMessage {
  failureClass: FailureClass;
  code: string;
  reason: string;
  nextStep: string;
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
  if (Buffer.byteLength(text) <= 4000) return `${text}\n`;
  return `${JSON.stringify({ ...message, reason: `${message.reason.slice(0, 1500)}…` })}\n`;
}
