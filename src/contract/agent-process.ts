// The contract between the connector agent and whoever runs it (the operator, a person reading a
// pod's last state): connector ids, the runbook's failure classes, the exit codes and what a
// fail-closed exit is. The agent, the control plane and the operator each import these from here
// and from nowhere else, so none of the three depends on another's internals for them
// (docs/control-plane-contract.md, "Connector agent process contract").

/** A connector id (contract: Identifiers): a DNS-subdomain-like name of at most 253 characters. */
export const CONNECTOR_ID_PATTERN = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

/**
 * The shortest heartbeat interval an agent takes from a control plane's answer (a shorter answer is
 * beaten at this one), and so the shortest the reference control plane's --heartbeat-interval accepts.
 */
export const MIN_CONTROL_PLANE_HEARTBEAT_INTERVAL_MS = 1_000;

/** The runbook's three failure classes: what a diagnosis names. */
export const RUNBOOK_FAILURE_CLASSES = ['FirstBootBootstrap', 'Reconnect', 'IdentityLoss'] as const;
export type RunbookFailureClass = (typeof RUNBOOK_FAILURE_CLASSES)[number];

/**
 * What an agent's termination message may name: the runbook's classes, plus Configuration for a
 * process that could not start (exit 12), which belongs to none of them.
 */
export const AGENT_FAILURE_CLASSES = [...RUNBOOK_FAILURE_CLASSES, 'Configuration'] as const;
export type AgentFailureClass = (typeof AGENT_FAILURE_CLASSES)[number];

export const EXIT_CODES = {
  clean: 0,
  identityLoss: 10,
  firstBootBootstrap: 11,
  configuration: 12,
  identityUnusable: 13,
  controlPlaneUnreachable: 14,
} as const;
export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];

/**
 * Whether an exit is the agent refusing to go on until someone acts (10 to 13): identity lost,
 * first boot refused, configuration, identity unusable. Exit 14 (gave up reconnecting, or clock
 * skew) leaves the identity intact and a restart may succeed; a signal (137, 143) is not the agent's.
 */
export function isFailClosedExit(exitCode: number): boolean {
  return exitCode >= EXIT_CODES.identityLoss && exitCode <= EXIT_CODES.identityUnusable;
}

/**
 * The agent's termination message (the container's terminationMessagePath), one JSON object that
 * Kubernetes keeps in the pod's last state: what a person or the operator reads after the agent
 * stopped. `reason` holds no secret (the agent scrubs it); a reader still treats every field as
 * untrusted text, since a workload the operator adopted may run anything.
 */
export interface TerminationMessage {
  failureClass: AgentFailureClass;
  /** The agent's code for the cause (docs/connector-agent.md), e.g. IDENTITY_MISSING. */
  code: string;
  reason: string;
  nextStep: string;
}

/** Kubernetes keeps at most 4096 bytes of a termination message; the agent stays under this. */
export const TERMINATION_MESSAGE_MAX_BYTES = 4000;
