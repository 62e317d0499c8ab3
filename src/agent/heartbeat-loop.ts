// Heartbeats over mTLS with the health of every runtime path, at the interval the control plane
// asks for; each accepted one may renew the certificate. A failed one is retried with the outage
// backoff using the persisted identity only, never a token; a refused certificate goes to the
// recovery-token path, which fails closed or replaces the identity.
import { asCodedError } from '../lib/errors.ts';
import { isCertificateRefusal } from './certificate-refusal.ts';
import { isAgentFailure } from './failure.ts';
import type { IdentityInUse } from './identity-in-use.ts';
import { OutageRetries } from './outage-retries.ts';
import { checkPaths, type PathHealth, type PathProber } from './path-checks.ts';
import { type RecoveryToken, ReplaceRefusedIdentity } from './recovery-token.ts';
import type { Renewal } from './renewal.ts';
import type { RenewalSchedule } from './renewal-timing.ts';
import type { AgentSession } from './session.ts';

const MAX_PATH_PROBE_MS = 2_000;

export class HeartbeatLoop {
  private readonly session: AgentSession;
  private readonly identity: IdentityInUse;
  private readonly schedule: RenewalSchedule;
  private readonly renewal: Renewal;
  private readonly recoveryToken: RecoveryToken;
  private readonly probe: PathProber;
  private readonly agentVersion: string;

  constructor(parts: {
    session: AgentSession;
    identity: IdentityInUse;
    schedule: RenewalSchedule;
    renewal: Renewal;
    recoveryToken: RecoveryToken;
    probe: PathProber;
    agentVersion: string;
  }) {
    this.session = parts.session;
    this.identity = parts.identity;
    this.schedule = parts.schedule;
    this.renewal = parts.renewal;
    this.recoveryToken = parts.recoveryToken;
    this.probe = parts.probe;
    this.agentVersion = parts.agentVersion;
  }

  /** Heartbeats until a stop is requested; throws to fail closed or to replace a refused identity. */
  async run(): Promise<void> {
    const { session } = this;
    const { config, logger, clock, status } = session;
    const client = session.requireClient();
    const retries = new OutageRetries({ config, clock, random: session.random, paired: true });
    let connected = false;
    while (!session.stopRequested) {
      await this.identity.checkFilesUnchanged();
      const probeTimeout = Math.min(MAX_PATH_PROBE_MS, Math.max(50, status.heartbeatIntervalMs / 2));
      const extraPaths = await checkPaths(config.pathChecks, probeTimeout, this.probe);
      const paths: PathHealth[] = [
        { name: 'tunnel', healthy: true, detail: 'mTLS session established' },
        ...extraPaths,
      ];
      session.throwIfStopping();
      let delay: number;
      const triedAt = clock.now();
      try {
        const answer = await client.heartbeat({ paths, agentVersion: this.agentVersion });
        const previousState = status.state;
        status.lastAcceptedAt = clock.now();
        this.schedule.noteControlPlaneClock(answer.serverDate);
        status.state = answer.state;
        status.heartbeatsAccepted += 1;
        status.phase = 'connected';
        session.followHeartbeatInterval(answer.heartbeatIntervalSeconds);
        if (!connected) {
          logger.info(
            { state: answer.state, serial: status.serial, failedAttempts: retries.attempts },
            'connected: heartbeat accepted over mTLS',
          );
        } else if (previousState !== answer.state) {
          logger.info({ state: answer.state, previousState }, 'control plane state changed');
        }
        const unhealthy = extraPaths.filter((path) => !path.healthy);
        if (unhealthy.length > 0) {
          logger.debug({ paths: unhealthy }, 'runtime paths unhealthy');
        }
        connected = true;
        retries.succeeded();
        delay = status.heartbeatIntervalMs;
        this.schedule.noteRenewAfter(answer.renewAfter, status.serial);
        await this.renewal.renewIfDue(client);
      } catch (error) {
        session.throwIfStopping();
        if (isAgentFailure(error) || error instanceof ReplaceRefusedIdentity) throw error;
        const coded = asCodedError(error, 'INTERNAL_ERROR');
        if (isCertificateRefusal(coded)) await this.recoveryToken.onCertificateRefused(coded);
        connected = false;
        delay = retries.failed(triedAt, coded);
        logger.warn(
          { failureClass: 'Reconnect', code: coded.code, attempt: retries.attempts, retryInMs: delay },
          `heartbeat failed: ${coded.message}; retrying with the persisted identity`,
        );
        this.renewal.warnWhileUnreachable();
      }
      await session.sleep(delay);
    }
  }
}
