// The identity the agent runs on, in memory and on disk, and keeping the two in step: what the
// control-plane client presents, a look at the files before each use (changed by someone else:
// verified again, an older copy of the current certificate written back), and a certificate the
// control plane already accepts that could not be saved yet (run on from memory, saved again at
// every heartbeat and at shutdown).
import { errorMessage, fsErrorCode } from '../lib/errors.ts';
import { fileReplacedBy } from '../lib/write-file-atomic.ts';
import { identityLostFailure, identityNotSavedFailure } from './failure.ts';
import { changedIdentityFiles, type IdentityFileStamps, stampIdentityFiles } from './identity-changes.ts';
import { type IdentityLoadResult, identityPaths, type LoadedIdentity } from './identity-files.ts';
import { loadIdentity } from './identity-load.ts';
import { repairIdentityPermissions } from './identity-modes.ts';
import { certificateIsOlder } from './identity-verify.ts';
import { saveCertificate, saveIdentity } from './identity-write.ts';
import type { AgentSession } from './session.ts';

/**
 * A certificate the control plane accepts (and, for a renewal, the only one it accepts) that could not
 * be written yet: the agent runs on it from memory and saves it at every heartbeat and at shutdown.
 */
interface UnsavedCertificate {
  identity: LoadedIdentity;
  /** The serial cert.pem holds meanwhile, which the control plane no longer accepts after a renewal. */
  serialOnDisk: string;
  /** 'renewed': logged as "certificate renewed" once saved; 'restored': written back over an older copy. */
  origin: 'renewed' | 'restored';
  /** ca.pem was missing: saving it restores ca.pem too. */
  restoresCa: boolean;
  failedSaves: number;
}

export class IdentityInUse {
  private readonly session: AgentSession;
  private identity: LoadedIdentity | undefined;
  /** The identity files as this agent last loaded or wrote them, to notice changes made by others. */
  private files: IdentityFileStamps | undefined;
  /** A certificate the control plane already uses (renewed, or written back) that is not on disk yet. */
  private unsaved: UnsavedCertificate | undefined;

  constructor(session: AgentSession) {
    this.session = session;
  }

  get current(): LoadedIdentity | undefined {
    return this.identity;
  }

  use(identity: LoadedIdentity): void {
    this.identity = identity;
    this.session.status.serial = identity.facts.serial;
    this.session.status.notAfter = identity.facts.notAfter;
    this.session.client?.setIdentity({ keyPem: identity.keyPem, certPem: identity.certPem });
  }

  /** Uses an identity loaded from disk, as it is on disk now. */
  async useLoaded(identity: LoadedIdentity): Promise<void> {
    this.use(identity);
    await this.recordFiles();
    this.warnIfCaMissing(identity);
  }

  /** Runs on no identity: the one in use was moved aside. */
  forget(): void {
    this.identity = undefined;
    this.unsaved = undefined;
    this.session.status.serial = undefined;
    this.session.status.notAfter = undefined;
    this.session.client?.setIdentity(undefined);
  }

  /** Repairs loose file modes (each repair logged), then loads and verifies the bundle. */
  async loadFromDisk(): Promise<IdentityLoadResult> {
    const { config, logger, clock } = this.session;
    for (const warning of await repairIdentityPermissions(config.dataDir)) logger.warn(warning);
    return loadIdentity(config.dataDir, {
      connectorId: config.connectorId,
      sanUriPrefix: config.sanUriPrefix,
      controlPlaneUrl: config.controlPlaneUrl,
      now: clock.now(),
    });
  }

  /**
   * Persists a newly issued identity (key, ca.pem, cert.pem, identity.json); a failure to write is
   * IDENTITY_PERSIST_FAILED (exit 12, failure.ts identityNotSavedFailure), naming the file.
   */
  async saveIssued(identity: LoadedIdentity): Promise<void> {
    const { dataDir } = this.session.config;
    try {
      await saveIdentity(dataDir, identity);
      await this.recordFiles();
    } catch (error) {
      const path = (error as NodeJS.ErrnoException | null)?.path;
      const where = typeof path === 'string' ? fileReplacedBy(path) : identityPaths(dataDir).dir;
      throw identityNotSavedFailure(
        `the certificate the control plane issued could not be saved: ${fsErrorCode(error)} writing ${where}; ` +
          `the token is spent, and the key the certificate was issued for is kept in ${identityPaths(dataDir).key}`,
        error,
      );
    }
  }

  /**
   * Runs on a renewed certificate of the current key: the control plane now accepts only that one,
   * so it is used at once and counts as unsaved until saveUnsaved() writes it.
   */
  useRenewed(renewed: LoadedIdentity, previous: LoadedIdentity, restoresCa: boolean): void {
    this.unsaved = {
      identity: renewed,
      serialOnDisk: previous.facts.serial,
      origin: 'renewed',
      restoresCa,
      failedSaves: 0,
    };
    this.use(renewed);
  }

  /**
   * Before each use of the identity: a cheap look at its files. When one changed since the agent
   * loaded or wrote it, the bundle is verified again and fails closed the way a start would (key or
   * certificate gone: exit 10; replaced by something that does not verify: exit 13). A replacement
   * that verifies is used, as a restart would use it; a missing ca.pem is restored, not a failure.
   */
  async checkFilesUnchanged(): Promise<void> {
    const { dataDir } = this.session.config;
    const recorded = this.files;
    if (!recorded || !this.identity || this.unsaved) return;
    const changed = changedIdentityFiles(dataDir, recorded, await stampIdentityFiles(dataDir));
    if (changed.length === 0) return;
    const { logger } = this.session;
    logger.warn(
      { files: changed },
      `identity files changed on disk: ${changed.join(', ')}; verifying them again`,
    );
    const loaded = await this.loadFromDisk();
    if (loaded.kind === 'absent') {
      throw identityLostFailure(
        `no such file: ${identityPaths(dataDir).metadata}: the identity this agent was running ` +
          'on was removed from disk while it ran, and the agent will not re-enroll',
      );
    }
    for (const note of loaded.notes) logger.warn(note);
    const previous = this.identity;
    if (isOlderCertificateOfSameKey(loaded.identity, previous)) {
      await this.writeBackCurrentCertificate(previous, loaded.identity);
      return;
    }
    if (loaded.identity.certPem !== previous.certPem || loaded.identity.keyPem !== previous.keyPem) {
      logger.warn(
        { previousSerial: previous.facts.serial, serial: loaded.identity.facts.serial },
        'the identity files were replaced by another identity of this connector that verifies: using it',
      );
    }
    await this.useLoaded(loaded.identity);
  }

  /**
   * Saves the certificate the control plane already uses but that is not on disk yet. "certificate
   * renewed" is logged only once it is on disk; a failure is logged at error level and retried at
   * the next heartbeat and at shutdown, while the agent runs on the certificate from memory.
   */
  async saveUnsaved(): Promise<boolean> {
    const unsaved = this.unsaved;
    if (!unsaved) return true;
    const { config, logger } = this.session;
    const { identity } = unsaved;
    try {
      await saveCertificate(config.dataDir, identity);
    } catch (error) {
      unsaved.failedSaves += 1;
      const code = fsErrorCode(error);
      logger.error(
        {
          code: 'IDENTITY_PERSIST_FAILED',
          err: errorMessage(error),
          dataDir: config.dataDir,
          serial: identity.facts.serial,
          serialOnDisk: unsaved.serialOnDisk,
          failedSaves: unsaved.failedSaves,
        },
        `${unsaved.origin === 'renewed' ? 'renewed certificate' : 'current certificate'} not saved: ${code} writing ` +
          `${identityPaths(config.dataDir).cert}: the control plane accepts serial ${identity.facts.serial}, ` +
          `not serial ${unsaved.serialOnDisk} on disk; running on it from memory and saving it again at the next ` +
          'heartbeat and at shutdown',
      );
      return false;
    } finally {
      // The agent's own writes are not a change on disk to verify again.
      await this.recordFiles();
    }
    this.unsaved = undefined;
    this.logSaved(unsaved);
    return true;
  }

  /**
   * At shutdown (and before failing closed), one last try to save a certificate that is only in
   * memory. When it fails, say at error level what is lost with the process.
   */
  async saveBeforeExit(): Promise<void> {
    const unsaved = this.unsaved;
    if (!unsaved || (await this.saveUnsaved())) return;
    const { cert } = identityPaths(this.session.config.dataDir);
    this.session.logger.error(
      {
        code: 'IDENTITY_PERSIST_FAILED',
        serial: unsaved.identity.facts.serial,
        serialOnDisk: unsaved.serialOnDisk,
        notAfter: unsaved.identity.metadata.notAfter,
      },
      `exiting with the current certificate not saved: serial ${unsaved.identity.facts.serial} (valid until ` +
        `${unsaved.identity.metadata.notAfter}) is lost with this process; ${cert} holds serial ` +
        `${unsaved.serialOnDisk}, which the control plane no longer accepts (replaced by serial ` +
        `${unsaved.identity.facts.serial}): the next start is refused and this connector needs a guided recovery`,
    );
  }

  /** Notes what the identity files look like now; called after loading them and after every own save. */
  private async recordFiles(): Promise<void> {
    this.files = await stampIdentityFiles(this.session.config.dataDir);
  }

  /** ca.pem can be given again by the control plane: say so, and how the server is verified meanwhile. */
  private warnIfCaMissing(identity: LoadedIdentity): void {
    if (identity.caPem !== undefined) return;
    const { config, logger } = this.session;
    const caPath = identityPaths(config.dataDir).ca;
    const trust = config.caFile ? `--ca-file ${config.caFile}` : 'the system CA roots (no --ca-file given)';
    logger.warn(
      { path: caPath },
      `no such file: ${caPath} (the CA bundle): verifying the control plane with ${trust} and restoring ` +
        `${caPath} from the control plane's next certificate answer (renewing at once)`,
    );
  }

  /**
   * A backup or snapshot copied back over the live identity brings an older certificate of the same
   * key: the control plane accepts only the newest, so using it would get the connector refused as
   * replaced. The current certificate (and its identity.json) is written back instead, atomically.
   */
  private async writeBackCurrentCertificate(current: LoadedIdentity, older: LoadedIdentity): Promise<void> {
    const { cert } = identityPaths(this.session.config.dataDir);
    this.unsaved = {
      identity: current,
      serialOnDisk: older.facts.serial,
      origin: 'restored',
      restoresCa: false,
      failedSaves: 0,
    };
    const saved = await this.saveUnsaved();
    const replaced =
      `${cert} was replaced by an older certificate of this identity (serial ${older.facts.serial}, valid ` +
      `until ${older.facts.notAfter.toISOString()})`;
    this.session.logger.warn(
      { serial: current.facts.serial, olderSerial: older.facts.serial },
      saved
        ? `${replaced}; restored the current one (serial ${current.facts.serial})`
        : `${replaced}; the current one (serial ${current.facts.serial}) could not be written back yet: running on it from memory`,
    );
  }

  private logSaved(unsaved: UnsavedCertificate): void {
    const { logger } = this.session;
    const paths = identityPaths(this.session.config.dataDir);
    if (unsaved.restoresCa) {
      logger.info({ path: paths.ca }, `restored ${paths.ca} from the control plane`);
    }
    const fields = {
      previousSerial: unsaved.serialOnDisk,
      serial: unsaved.identity.facts.serial,
      notAfter: unsaved.identity.metadata.notAfter,
      ...(unsaved.failedSaves > 0 ? { failedSaves: unsaved.failedSaves } : {}),
    };
    if (unsaved.origin === 'renewed') logger.info(fields, 'certificate renewed');
    // A write-back that worked at once is reported by writeBackCurrentCertificate.
    else if (unsaved.failedSaves > 0) {
      logger.info(fields, `restored the current certificate (serial ${fields.serial}) to ${paths.cert}`);
    }
  }
}

/** The same key with an older certificate than the one in use: a copy of an earlier state of this identity. */
function isOlderCertificateOfSameKey(candidate: LoadedIdentity, current: LoadedIdentity): boolean {
  return (
    candidate.keyPem === current.keyPem &&
    candidate.facts.serial !== current.facts.serial &&
    certificateIsOlder(candidate.facts, current.facts)
  );
}
