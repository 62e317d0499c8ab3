// Renewing the certificate over mTLS when it falls due (renewal-timing.ts says when), keeping the
// key: only cert.pem changes, so a crash mid-write cannot pair a key with the wrong certificate.
// The control plane then accepts only the renewed certificate, so renewal waits for an identity
// directory that takes a write. While the control plane cannot be reached, an outage that outlives
// the certificate is announced once when renewal falls due and once when it expires.
import { describeDuration } from '../lib/duration.ts';
import { asCodedError } from '../lib/errors.ts';
import { createCsrPem } from '../lib/pki.ts';
import { isCertificateRefusal } from './certificate-refusal.ts';
import type { AgentApi, CertificateAnswer } from './control-plane-client.ts';
import { identityPaths, type LoadedIdentity } from './identity-files.ts';
import type { IdentityInUse } from './identity-in-use.ts';
import { identityDirectoryWriteProblem } from './identity-write.ts';
import { issuedIdentity, issuedNamesFailure } from './issued-certificate.ts';
import type { RecoveryToken } from './recovery-token.ts';
import type { RenewalSchedule } from './renewal-timing.ts';
import type { AgentSession } from './session.ts';

export class Renewal {
  private readonly session: AgentSession;
  private readonly identity: IdentityInUse;
  private readonly schedule: RenewalSchedule;
  private readonly recoveryToken: RecoveryToken;
  /** Why renewal is held back (the identity directory takes no write), per serial, to warn once. */
  private heldBack: { serial: string; code: string } | undefined;
  /** The serial each outage warning was given for: once per certificate, not at every failed heartbeat. */
  private outageWarned: { renewalDue?: string; expired?: string } = {};

  constructor(parts: {
    session: AgentSession;
    identity: IdentityInUse;
    schedule: RenewalSchedule;
    recoveryToken: RecoveryToken;
  }) {
    this.session = parts.session;
    this.identity = parts.identity;
    this.schedule = parts.schedule;
    this.recoveryToken = parts.recoveryToken;
  }

  /** After each accepted heartbeat: saves an unsaved certificate, then renews when due. */
  async renewIfDue(client: AgentApi): Promise<void> {
    await this.identity.saveUnsaved();
    const identity = this.identity.current;
    if (!identity) return;
    const { config, logger, clock } = this.session;
    const dueAt = this.schedule.dueAt(identity.facts);
    // A missing ca.pem is restored from a certificate answer, so renewal is due at once then.
    const caMissing = identity.caPem === undefined;
    const now = clock.now();
    const due = now.getTime() >= dueAt.getTime();
    if (!caMissing && !due) return;
    if (await this.heldBackByDisk(identity, now)) return;
    const why = due ? `due since ${dueAt.toISOString()}` : 'early, to restore the missing CA bundle';
    logger.info(
      { serial: identity.facts.serial, dueAt: dueAt.toISOString(), notAfter: identity.metadata.notAfter },
      `renewing the certificate (${why}, ${timeLeft(this.schedule.toLocal(identity.facts.notAfter), now)})`,
    );
    let answer: CertificateAnswer;
    try {
      // The key stays: only cert.pem changes, so a crash mid-write cannot pair a key with the wrong cert.
      answer = await client.renew({ csrPem: createCsrPem(identity.keyPem, config.connectorId) });
    } catch (error) {
      this.session.throwIfStopping();
      const coded = asCodedError(error, 'INTERNAL_ERROR');
      if (isCertificateRefusal(coded)) await this.recoveryToken.onCertificateRefused(coded);
      logger.warn(
        { code: coded.code, dueAt: dueAt.toISOString(), notAfter: identity.metadata.notAfter },
        `certificate renewal failed: ${coded.message}; retrying at the next heartbeat`,
      );
      return;
    }
    this.schedule.noteControlPlaneClock(answer.serverDate);
    const renewed = issuedIdentity(config, identity.keyPem, answer, identity.metadata.enrolledAt);
    const namesFailure = issuedNamesFailure(config, renewed);
    if (namesFailure) throw namesFailure;
    // The control plane now accepts only the renewed certificate: use it, and save it before saying
    // "certificate renewed" (a save that fails is retried at every heartbeat and at shutdown).
    this.identity.useRenewed(renewed, identity, caMissing);
    this.schedule.noteCertificateReceived(renewed.facts.serial);
    await this.identity.saveUnsaved();
    this.session.status.renewals += 1;
  }

  /**
   * While the control plane cannot be reached the certificate cannot be renewed: say so once when
   * renewal falls due and once when the certificate expires, with the time left, so an outage
   * that outlives the certificate is seen coming.
   */
  warnWhileUnreachable(): void {
    const identity = this.identity.current;
    if (!identity) return;
    const { logger, clock } = this.session;
    const { serial, notAfter } = identity.facts;
    const now = clock.now();
    const localNotAfter = this.schedule.toLocal(notAfter);
    if (now.getTime() >= localNotAfter.getTime()) {
      if (this.outageWarned.expired === serial) return;
      this.outageWarned = { renewalDue: serial, expired: serial };
      logger.warn(
        { serial, notAfter: notAfter.toISOString() },
        `certificate has expired or is not yet valid: this connector's certificate expired at ${notAfter.toISOString()} ` +
          `while the control plane was unreachable (${timeLeft(localNotAfter, now)}); the control plane cannot renew an ` +
          'expired certificate, so once it is reachable it refuses it and the connector needs a guided recovery ' +
          "(unless this node's clock is wrong: check time sync)",
      );
      return;
    }
    const dueAt = this.schedule.dueAt(identity.facts);
    if (now.getTime() < dueAt.getTime() || this.outageWarned.renewalDue === serial) return;
    this.outageWarned = { ...this.outageWarned, renewalDue: serial };
    logger.warn(
      { serial, dueAt: dueAt.toISOString(), notAfter: notAfter.toISOString() },
      `certificate renewal due since ${dueAt.toISOString()}: the control plane is unreachable; the certificate ${timeLeft(localNotAfter, now)}`,
    );
  }

  /**
   * A renewal makes the control plane accept only the new certificate, so one that cannot be saved
   * is lost with the process, and the identity with it. Renew only when the identity directory takes
   * a write; otherwise keep the current certificate and say why, once per certificate and cause.
   */
  private async heldBackByDisk(identity: LoadedIdentity, now: Date): Promise<boolean> {
    const { config, logger } = this.session;
    const bytes = identity.certPem.length + (identity.caPem?.length ?? 8192) + 1024;
    const problem = await identityDirectoryWriteProblem(config.dataDir, bytes);
    const serial = identity.facts.serial;
    const dir = identityPaths(config.dataDir).dir;
    if (!problem) {
      if (this.heldBack) logger.info({ path: dir }, `${dir} takes writes again: renewing the certificate`);
      this.heldBack = undefined;
      return false;
    }
    if (this.heldBack?.serial === serial && this.heldBack.code === problem.code) return true;
    this.heldBack = { serial, code: problem.code };
    logger.warn(
      { path: dir, code: problem.code, serial, notAfter: identity.facts.notAfter.toISOString() },
      `certificate renewal held back: the identity directory ${dir} cannot be written (${problem.code} creating ` +
        `${problem.path}): the control plane would accept only the renewed certificate, which could not be saved; ` +
        `keeping the current one (serial ${serial}), which ${timeLeft(this.schedule.toLocal(identity.facts.notAfter), now)}; make ${dir} ` +
        'writable by the connector user (read-only mount, full volume, ownership): the renewal follows at the ' +
        'next heartbeat after that',
    );
    return true;
  }
}

/** "expires in 2 h 3 min", or "expired 5 min 0 s ago". */
function timeLeft(notAfter: Date, now: Date): string {
  const left = notAfter.getTime() - now.getTime();
  return left > 0 ? `expires in ${describeDuration(left)}` : `expired ${describeDuration(left)} ago`;
}
