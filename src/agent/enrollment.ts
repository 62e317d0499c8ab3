// First boot: pair exactly once with the single-use token. The key is generated locally and written
// before the token is spent (an unwritable data directory is found first, and a key left by an
// enrollment that did not finish is reused); the certificate is checked, persisted, then used.
// Temporary failures are retried with the outage backoff; a refusal fails closed (exit 11 or 10).
import { asCodedError, CodedError, errorMessage, fsErrorCode } from '../lib/errors.ts';
import { createCsrPem, generateKeyPairPem } from '../lib/pki.ts';
import { isTransportError } from './connection-errors.ts';
import {
  configurationFailure,
  EXIT_CODES,
  enrollmentRejectedFailure,
  enrollmentTrustFailure,
  isAgentFailure,
  tokenMissingFailure,
  tokenUnreadableFailure,
} from './failure.ts';
import type { IdentityInUse } from './identity-in-use.ts';
import { savePendingKey } from './identity-write.ts';
import { issuedIdentity, issuedNamesFailure } from './issued-certificate.ts';
import { OutageRetries } from './outage-retries.ts';
import { isFinalTokenRefusal, recordRefusedToken, refusalOf } from './refused-tokens.ts';
import type { RenewalSchedule } from './renewal-timing.ts';
import type { AgentSession } from './session.ts';
import { readTokenFile } from './token-file.ts';

/** The connector's private key (PKCS#8 PEM) when none is injected: EC P-256. */
export async function generateEcKey(): Promise<string> {
  return (await generateKeyPairPem('ec-p256')).privateKeyPem;
}

export class Enrollment {
  private readonly session: AgentSession;
  private readonly identity: IdentityInUse;
  private readonly schedule: RenewalSchedule;
  private readonly generateKey: () => Promise<string>;

  constructor(parts: {
    session: AgentSession;
    identity: IdentityInUse;
    schedule: RenewalSchedule;
    generateKey: () => Promise<string>;
  }) {
    this.session = parts.session;
    this.identity = parts.identity;
    this.schedule = parts.schedule;
    this.generateKey = parts.generateKey;
  }

  /** Pairs once with the mounted token; `pendingKeyPem` is a key written by an earlier try. */
  async enroll(pendingKeyPem: string | undefined): Promise<void> {
    const { session } = this;
    const { config, logger, clock } = session;
    session.status.phase = 'enrolling';
    let token: string | undefined;
    try {
      token = await readTokenFile(config.tokenFile);
    } catch (error) {
      throw tokenUnreadableFailure(errorMessage(error));
    }
    if (!token) throw tokenMissingFailure(config.tokenFile, config.dataDir);
    const refused = await refusalOf(config.dataDir, config.connectorId, config.controlPlaneUrl, token);
    if (refused) {
      logger.warn(
        { connectorId: config.connectorId, code: refused.code, refusedAt: refused.refusedAt },
        'the mounted enrollment token was refused for good before: it is not sent again',
      );
      throw enrollmentRejectedFailure(
        new CodedError(
          refused.code,
          `not sent again: the control plane refused this token at ${refused.refusedAt}: ${refused.message}`,
          { httpStatus: refused.httpStatus, details: { previouslyPaired: refused.previouslyPaired } },
        ),
      );
    }

    const keyPem = pendingKeyPem ?? (await this.generateKey());
    if (!pendingKeyPem) {
      // Persist the key before it is used, so an unwritable data directory is found before the
      // single-use token is spent.
      await savePendingKey(config.dataDir, keyPem).catch((error: unknown) => {
        throw configurationFailure(
          `cannot write the identity to ${config.dataDir} (--data-dir, env PAM_AGENT_DATA_DIR): ` +
            `${fsErrorCode(error)}; mount a writable durable volume there`,
        );
      });
    }
    const csrPem = createCsrPem(keyPem, config.connectorId);
    const client = session.requireClient();
    logger.info({ connectorId: config.connectorId }, 'no identity found: enrolling once with the token');

    const retries = new OutageRetries({ config, clock, random: session.random, paired: false });
    for (;;) {
      session.throwIfStopping();
      const triedAt = clock.now();
      try {
        const answer = await client.enroll({ connectorId: config.connectorId, token, csrPem });
        this.schedule.noteControlPlaneClock(answer.serverDate);
        const identity = issuedIdentity(config, keyPem, answer, clock.now().toISOString());
        // A certificate that names this connector under another SAN prefix is still its own, and the
        // token is spent: keep it, so fixing --san-uri-prefix is all a restart needs (exit 12 below).
        const namesFailure = issuedNamesFailure(config, identity);
        if (namesFailure && namesFailure.exitCode !== EXIT_CODES.configuration) throw namesFailure;
        await this.identity.saveIssued(identity);
        if (namesFailure) throw namesFailure;
        this.identity.use(identity);
        this.schedule.noteCertificateReceived(identity.facts.serial);
        session.followHeartbeatInterval(answer.heartbeatIntervalSeconds);
        logger.info(
          {
            connectorId: config.connectorId,
            serial: identity.facts.serial,
            notAfter: identity.metadata.notAfter,
          },
          'enrolled: identity persisted to the data directory; the token will not be used again',
        );
        return;
      } catch (error) {
        session.throwIfStopping();
        if (isAgentFailure(error)) throw error;
        const coded = asCodedError(error, 'INTERNAL_ERROR');
        if (!coded.temporary) {
          if (isTransportError(coded)) throw enrollmentTrustFailure(coded);
          if (isFinalTokenRefusal(coded.code)) await this.rememberRefusal(token, coded);
          throw enrollmentRejectedFailure(coded);
        }
        const delay = retries.failed(triedAt, coded);
        logger.warn(
          {
            failureClass: 'FirstBootBootstrap',
            code: coded.code,
            attempt: retries.attempts,
            retryInMs: delay,
          },
          enrollmentRetryMessage(coded),
        );
        await session.sleep(delay);
      }
    }
  }

  /** Records a final refusal of `token` (refused-tokens.ts); a record that cannot be written is logged. */
  private async rememberRefusal(token: string, refusal: CodedError): Promise<void> {
    const { config, logger, clock } = this.session;
    await recordRefusedToken(config.dataDir, config.connectorId, config.controlPlaneUrl, token, {
      refusedAt: clock.now().toISOString(),
      code: refusal.code,
      httpStatus: refusal.httpStatus,
      message: refusal.message,
      previouslyPaired: refusal.details?.previouslyPaired === true,
    }).catch((error: unknown) =>
      logger.warn(
        { err: fsErrorCode(error) },
        'cannot record the refused enrollment token in the data directory; a restart with it mounted sends it again',
      ),
    );
  }
}

/**
 * A failed enrollment try that is retried, worded by how far it got: a request that was sent and not
 * answered may have spent the token (then the retry is refused and the agent fails closed).
 */
function enrollmentRetryMessage(error: CodedError): string {
  const phase = error.details?.phase;
  if (isTransportError(error) && (phase === 'waiting for the answer' || phase === 'reading the answer')) {
    return (
      `enrollment request sent, but no answer came: ${error.message}; retrying (if the control plane paired ` +
      'this connector meanwhile, the token is spent and the retry is refused)'
    );
  }
  if (!isTransportError(error)) {
    return `enrollment request answered with a temporary error: ${error.message}; retrying`;
  }
  return `enrollment request did not reach the control plane: ${error.message}; retrying (the token was not accepted or refused yet)`;
}
