// The one way a mounted token replaces an identity: when the identity cannot be used again (refused
// by the control plane for good, or lost from disk) and the token was mounted after that was first
// reported, which makes it a guided recovery's (the operator mints none while such an identity is
// diagnosed). The identity is moved aside whole, never deleted, and the agent pairs once, at most
// once per process. Any other token is recorded (as a fingerprint) and not used, with a warn line
// saying why; clock skew and configuration never replace an identity.
import { type CodedError, errorMessage, fsErrorCode } from '../lib/errors.ts';
import { judgeCertificateRefusal } from './certificate-refusal.ts';
import type { Enrollment } from './enrollment.ts';
import {
  type AgentFailure,
  configurationFailure,
  identityRejectedFailure,
  isAgentFailure,
} from './failure.ts';
import type { IdentityLoadResult } from './identity-files.ts';
import type { IdentityInUse } from './identity-in-use.ts';
import { readRejection, recordRejection, tokenFingerprint } from './identity-rejection.ts';
import { setAsideIdentity } from './identity-repair.ts';
import { recordedSerial, tokenWrittenAfterCertificate } from './identity-replacement.ts';
import type { AgentSession } from './session.ts';
import { readTokenFile } from './token-file.ts';

/** The control plane refused the identity and a token mounted since then may replace it (once). */
export class ReplaceRefusedIdentity extends Error {
  readonly refusal: CodedError;
  /** Why the mounted token may replace it, when that is not an earlier refusal of this identity. */
  readonly evidence: string | undefined;
  constructor(refusal: CodedError, evidence?: string) {
    super('replace the refused identity');
    this.refusal = refusal;
    this.evidence = evidence;
  }
}

export function isIdentityLost(error: unknown): error is AgentFailure {
  return isAgentFailure(error) && error.code === 'IDENTITY_LOST';
}

export class RecoveryToken {
  private readonly session: AgentSession;
  private readonly identity: IdentityInUse;
  private readonly enrollment: Enrollment;
  /** A refused or lost identity was moved aside and replaced in this process; never twice. */
  private replaced = false;

  constructor(parts: { session: AgentSession; identity: IdentityInUse; enrollment: Enrollment }) {
    this.session = parts.session;
    this.identity = parts.identity;
    this.enrollment = parts.enrollment;
  }

  /**
   * What to do when the control plane refuses the client certificate: each cause fails closed its
   * own way (certificate-refusal.ts). Only a refusal that makes the identity useless for good
   * (revoked, replaced, unknown, truly expired, a CA the control plane no longer trusts) is
   * remembered, in identity/rejection.json with a fingerprint of the token mounted at the time. A
   * token that was not mounted at an earlier refusal of this identity was minted after it was
   * reported: that one replaces the identity (ReplaceRefusedIdentity, for the run loop).
   */
  async onCertificateRefused(error: CodedError): Promise<never> {
    const { config, logger, clock } = this.session;
    const identity = this.identity.current;
    if (!identity) throw identityRejectedFailure(error);
    const verdict = judgeCertificateRefusal(error, {
      identity: {
        connectorId: config.connectorId,
        serial: identity.facts.serial,
        notBefore: identity.facts.notBefore,
        notAfter: identity.facts.notAfter,
        issuedBy: identity.metadata.controlPlaneUrl,
      },
      controlPlaneUrl: config.controlPlaneUrl,
      sanUriPrefix: config.sanUriPrefix,
      now: clock.now(),
    });
    if (this.replaced || !verdict.replaceable) throw verdict.failure;
    const serial = identity.facts.serial;
    const fingerprint = await this.mountedTokenFingerprint(serial, 'the refused identity');
    const earlier = await readRejection(config.dataDir, serial);
    const unseen = fingerprint !== undefined && !earlier?.tokensSeen.includes(fingerprint);
    if (earlier && unseen) throw new ReplaceRefusedIdentity(error);
    // Revoked by a guided recovery: beginning it revoked every older token, so a token written after
    // this certificate can only be the recovery's. It is used at this first refusal already.
    const recovery = verdict.recoveryRequestId;
    const afterCertificate =
      unseen && recovery !== undefined
        ? await tokenWrittenAfterCertificate(config.tokenFile, config.dataDir)
        : false;
    if (afterCertificate) {
      throw new ReplaceRefusedIdentity(
        error,
        `guided recovery ${recovery} revoked the certificate and every older token, and the token was written after the certificate, so it is the recovery's`,
      );
    }
    await this.recordRefusal(serial, error.code, error.message, fingerprint);
    if (fingerprint) {
      logger.warn(
        { serial, tokenFile: config.tokenFile },
        earlier
          ? 'an enrollment token is present, but it was already mounted when the control plane refused this identity before: it is not used'
          : recovery !== undefined
            ? `an enrollment token is present, but it was written before this connector's certificate, which guided recovery ${recovery} revoked: it cannot be that recovery's token (beginning the recovery revoked every older token), so it is not used; mount the token the recovery mints`
            : 'an enrollment token is present, but it was mounted before the control plane first refused this identity: it is not used (only a token mounted after the refusal, such as a guided recovery mints, replaces the identity)',
      );
    }
    throw verdict.failure;
  }

  /** Moves the refused identity aside (never deletes it) and pairs exactly once with the new token. */
  async replaceRefused(refusal: CodedError, evidence?: string): Promise<void> {
    this.replaced = true;
    const refused = this.identity.current;
    const movedTo = await this.moveIdentityAside('refused');
    this.identity.forget();
    this.session.logger.warn(
      {
        connectorId: this.session.config.connectorId,
        refusedSerial: refused?.facts.serial,
        movedTo,
        code: refusal.code,
        reason: refusal.message,
      },
      `identity refused by the control plane and a new enrollment token is present${evidence ? ` (${evidence})` : ''}: moved the refused identity to ${movedTo} and pairing once with the token`,
    );
    await this.enrollment.enroll(undefined);
  }

  /**
   * Loads the identity; one that is lost (identity.json present, key or certificate gone) may be
   * replaced by a token mounted after the loss was first reported, as a refused one may.
   */
  async loadOrReplaceLost(): Promise<IdentityLoadResult> {
    try {
      return await this.identity.loadFromDisk();
    } catch (error) {
      if (!isIdentityLost(error)) throw error;
      await this.onIdentityLost(error, { atStart: true });
      return { kind: 'absent', pendingKeyPem: undefined };
    }
  }

  /**
   * IDENTITY_LOST is remembered like a refusal for good: identity/rejection.json (keyed by the serial
   * identity.json records) gets the fingerprint of the token mounted when the loss is reported. At a
   * later start, a token that was not mounted at any earlier report was minted after it (a guided
   * recovery's): what is left of the identity is moved aside in one rename and the agent pairs once.
   * Otherwise it fails closed, saying why a mounted token is not used. Returns only after moving aside.
   */
  async onIdentityLost(failure: AgentFailure, { atStart }: { atStart: boolean }): Promise<void> {
    const { config, logger } = this.session;
    // Without identity.json the next start is a first boot: there is nothing to remember a token against.
    const serial = await recordedSerial(config.dataDir);
    if (serial === undefined) throw failure;
    const fingerprint = await this.mountedTokenFingerprint(serial, 'the lost identity');
    const earlier = await readRejection(config.dataDir, serial);
    const unseen = fingerprint !== undefined && !earlier?.tokensSeen.includes(fingerprint);
    if (atStart && earlier && unseen && !this.replaced) {
      this.replaced = true;
      const movedTo = await this.moveIdentityAside('lost');
      logger.warn(
        { connectorId: config.connectorId, lostSerial: serial, movedTo, reason: failure.message },
        `identity lost and a new enrollment token is present (mounted after the loss was first reported): moved what is left of the identity to ${movedTo} and pairing once with the token`,
      );
      return;
    }
    await this.recordRefusal(serial, failure.code, failure.message, fingerprint);
    if (fingerprint) {
      logger.warn(
        { serial, tokenFile: config.tokenFile },
        earlier
          ? 'an enrollment token is present, but it was already mounted when this identity was reported lost before: it is not used; a token mounted after that report (such as a guided recovery mints) makes the agent move the identity directory aside and pair once'
          : 'an enrollment token is present, but it was mounted before this identity was first reported lost: it is not used (it may be the spent bootstrap token); a token mounted after this report (such as a guided recovery mints) makes the agent move the identity directory aside and pair once, or move it aside yourself (never delete it)',
      );
    }
    throw failure;
  }

  /** The fingerprint of the mounted token (never the token), or undefined when none can be read. */
  private async mountedTokenFingerprint(serial: string, identity: string): Promise<string | undefined> {
    const { tokenFile } = this.session.config;
    try {
      const token = await readTokenFile(tokenFile);
      return token ? tokenFingerprint(serial, token) : undefined;
    } catch (readError) {
      this.session.logger.warn(
        { tokenFile, err: errorMessage(readError) },
        `the enrollment token file cannot be read; it cannot replace ${identity}`,
      );
      return undefined;
    }
  }

  /** Remembers in identity/rejection.json that this identity cannot be used, and which token was mounted. */
  private async recordRefusal(
    serial: string,
    code: string,
    message: string,
    fingerprint: string | undefined,
  ): Promise<void> {
    const { dataDir } = this.session.config;
    try {
      await recordRejection(dataDir, {
        serial,
        code,
        message,
        token: fingerprint,
        now: this.session.clock.now(),
      });
    } catch (writeError) {
      this.session.logger.warn(
        { dataDir, err: errorMessage(writeError) },
        'could not record the refusal of the identity in the data directory',
      );
    }
  }

  /** Renames the whole identity directory to identity.rejected-<time>: nothing is deleted. */
  private async moveIdentityAside(what: 'refused' | 'lost'): Promise<string> {
    const { dataDir } = this.session.config;
    try {
      return await setAsideIdentity(dataDir, this.session.clock.now());
    } catch (error) {
      throw configurationFailure(
        `cannot move the ${what} identity aside in ${dataDir} (--data-dir, env PAM_AGENT_DATA_DIR): ` +
          `${fsErrorCode(error)}; mount a writable durable volume there`,
      );
    }
  }
}
