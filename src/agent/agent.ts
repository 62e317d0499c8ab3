// The connector agent's lifecycle: load the identity or enroll exactly once, then heartbeat over
// mTLS, renew the certificate at a fraction of its lifetime, and fail closed (one log line, a
// termination message, a distinct exit code) when the runbook says a human or the operator must act.
// Reconnect failures are retried with capped, jittered backoff and never make the agent use a token.
// The one exception is an identity the control plane itself refused: it is remembered on disk, and a
// token mounted after that refusal (a guided recovery's) replaces it once; the old one is moved aside.
// Everything it touches (the clock and its timers, randomness, the control-plane client, the key
// generator, the logger) comes in as an argument, so tests drive it over real sockets or with fakes.
// This file wires the parts; docs/connector-agent.md, "Modules", says which part does what.
import type { Clock } from '../lib/clock.ts';
import type { Logger } from '../lib/logger.ts';
import type { AgentConfig } from './config.ts';
import { type AgentApi, ControlPlaneClient, type ControlPlaneClientOptions } from './control-plane-client.ts';
import { Enrollment, generateEcKey } from './enrollment.ts';
import { HeartbeatLoop } from './heartbeat-loop.ts';
import { IdentityInUse } from './identity-in-use.ts';
import { AgentLifecycle, type AgentOutcome } from './lifecycle.ts';
import { type PathProber, probeTcp } from './path-checks.ts';
import { type Readiness, ReadinessReport } from './readiness.ts';
import { RecoveryToken } from './recovery-token.ts';
import { Renewal } from './renewal.ts';
import { RenewalSchedule } from './renewal-timing.ts';
import { AgentSession, type AgentStatus } from './session.ts';

export interface AgentDependencies {
  config: AgentConfig;
  logger: Logger;
  /** The time and the timers of every wait (backoff, heartbeat interval, renewal). */
  clock: Clock;
  /** [0, 1), for backoff jitter. */
  random?: () => number;
  /** Builds the control-plane client; tests may wrap it to count requests. */
  createClient?: (options: ControlPlaneClientOptions) => AgentApi;
  probe?: PathProber;
  /** Generates the connector's private key (PKCS#8 PEM). Defaults to EC P-256. */
  generateKey?: () => Promise<string>;
  agentVersion?: string;
}

export interface RunningAgent {
  /** Settles when the agent stops: clean stop (exit 0) or fail closed (exit 10-14). */
  done: Promise<AgentOutcome>;
  /** Stops heartbeating, closes connections and resolves with exit code 0. */
  stop(): Promise<AgentOutcome>;
  status(): AgentStatus;
  readiness(): Readiness;
}

export function startAgent(dependencies: AgentDependencies): RunningAgent {
  const { config, logger, clock } = dependencies;
  const session = new AgentSession(config, logger, clock, dependencies.random ?? Math.random);
  const identity = new IdentityInUse(session);
  const schedule = new RenewalSchedule(config.renewAtFraction, clock, logger);
  const enrollment = new Enrollment({
    session,
    identity,
    schedule,
    generateKey: dependencies.generateKey ?? generateEcKey,
  });
  const recoveryToken = new RecoveryToken({ session, identity, enrollment });
  const renewal = new Renewal({ session, identity, schedule, recoveryToken });
  const heartbeats = new HeartbeatLoop({
    session,
    identity,
    schedule,
    renewal,
    recoveryToken,
    probe: dependencies.probe ?? probeTcp,
    agentVersion: dependencies.agentVersion ?? 'vaultpam-connector',
  });
  const readiness = new ReadinessReport(session.status, clock, logger);
  const lifecycle = new AgentLifecycle({
    session,
    identity,
    enrollment,
    recoveryToken,
    heartbeats,
    createClient: dependencies.createClient ?? ((options) => new ControlPlaneClient(options)),
  });
  return {
    done: lifecycle.done,
    stop: () => lifecycle.stop(),
    status: () => ({ ...session.status }),
    readiness: () => readiness.readiness(),
  };
}
