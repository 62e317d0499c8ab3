// The connector agent's lifecycle: load the identity or enroll exactly once, then heartbeat over
// mTLS, renew the certificate at a fraction of its lifetime, and fail closed (one log line, a
// termination message, a distinct exit code) when the runbook says a human or the operator must act.
// Reconnect failures are retried with capped, jittered backoff and never make the agent use a token.
// The one exception is an identity the control plane itself refused: it is remembered on disk, and a
// token mounted after that refusal (a guided recovery's) replaces it once; the old one is moved aside.
// Everything it touches (the clock and its timers, randomness, the control-plane client, the key
// generator, the logger) comes in as an argument, so tests drive it over real sockets or with fakes.
import { readFile, stat } from 'node:fs/promises';
import { type BackoffPolicy, backoffDelay } from '../lib/backoff.ts';
import type { Clock } from '../lib/clock.ts';
import { describeDuration } from '../lib/duration.ts';
import { asCodedError, CodedError, errorMessage } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import {
  createCsrPem,
  generateKeyPairPem,
  keyMatchesCertificate,
  parseCertificateFacts,
} from '../lib/pki.ts';
import { isCertificateRefusal, judgeCertificateRefusal } from './certificate-refusal.ts';
import { ControlPlaneClockOffset } from './clock-offset.ts';
import type { AgentConfig } from './config.ts';
import { isTransportError } from './connection-errors.ts';
import {
  type AgentApi,
  type CertificateAnswer,
  ControlPlaneClient,
  type ControlPlaneClientOptions,
} from './control-plane-client.ts';
import {
  type AgentFailure,
  configurationFailure,
  EXIT_CODES,
  enrollmentRejectedFailure,
  enrollmentTrustFailure,
  identityLostFailure,
  identityRejectedFailure,
  identityUnusableFailure,
  isAgentFailure,
  scrubSecrets,
  tokenMissingFailure,
  tokenUnreadableFailure,
  unreachableFailure,
} from './failure.ts';
import { type Readiness, readinessAt } from './health-server.ts';
import { recordedSerial, tokenWrittenAfterCertificate } from './identity-replacement.ts';
import {
  certificateIsOlder,
  certificateNamesFailure,
  changedIdentityFiles,
  type IdentityFileStamps,
  type IdentityLoadResult,
  identityDirectoryWriteProblem,
  identityPaths,
  issuedByCaBundle,
  type LoadedIdentity,
  loadIdentity,
  readRejection,
  recordRejection,
  removeStrayTempFiles,
  repairIdentityPermissions,
  saveCertificate,
  saveIdentity,
  savePendingKey,
  setAsideIdentity,
  stampIdentityFiles,
  tokenFingerprint,
} from './identity-store.ts';
import { checkPaths, type PathHealth, type PathProber, probeTcp } from './path-checks.ts';
import { renewalDueAt } from './renewal-timing.ts';
import { writeTerminationMessage } from './termination-log.ts';

export const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;
const MAX_PATH_PROBE_MS = 2_000;

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

export interface AgentOutcome {
  exitCode: number;
  failure: AgentFailure | undefined;
}

export type AgentPhase = 'starting' | 'enrolling' | 'connecting' | 'connected' | 'stopped' | 'failed';

export interface AgentStatus {
  phase: AgentPhase;
  /** The control plane's state from the last accepted heartbeat. */
  state: string | undefined;
  lastAcceptedAt: Date | undefined;
  heartbeatIntervalMs: number;
  serial: string | undefined;
  notAfter: Date | undefined;
  heartbeatsAccepted: number;
  renewals: number;
}

export interface RunningAgent {
  /** Settles when the agent stops: clean stop (exit 0) or fail closed (exit 10-14). */
  done: Promise<AgentOutcome>;
  /** Stops heartbeating, closes connections and resolves with exit code 0. */
  stop(): Promise<AgentOutcome>;
  status(): AgentStatus;
  readiness(): Readiness;
}

class StopRequested extends Error {}

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

/** The control plane refused the identity and a token mounted since then may replace it (once). */
class ReplaceRefusedIdentity extends Error {
  readonly refusal: CodedError;
  /** Why the mounted token may replace it, when that is not an earlier refusal of this identity. */
  readonly evidence: string | undefined;
  constructor(refusal: CodedError, evidence?: string) {
    super('replace the refused identity');
    this.refusal = refusal;
    this.evidence = evidence;
  }
}

function isIdentityLost(error: unknown): error is AgentFailure {
  return isAgentFailure(error) && error.code === 'IDENTITY_LOST';
}

async function defaultGenerateKey(): Promise<string> {
  return (await generateKeyPairPem('ec-p256')).privateKeyPem;
}

/** Reads the enrollment token; absent or empty file means no token. Never logs or echoes it. */
export async function readTokenFile(tokenFile: string | undefined): Promise<string | undefined> {
  if (!tokenFile) return undefined;
  let text: string;
  try {
    text = await readFile(tokenFile, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new CodedError(
      'ENROLLMENT_TOKEN_UNREADABLE',
      `cannot read the token file ${tokenFile}: ${code === 'EACCES' ? 'permission denied' : (code ?? errorMessage(error))}`,
    );
  }
  const token = text.trim();
  return token.length > 0 ? token : undefined;
}

/** True when a non-empty token file exists; only its size is looked at, never its content. */
async function tokenFilePresent(tokenFile: string | undefined): Promise<boolean> {
  if (!tokenFile) return false;
  try {
    return (await stat(tokenFile)).size > 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

async function readCaFile(caFile: string | undefined): Promise<string | undefined> {
  if (!caFile) return undefined;
  let text: string;
  try {
    text = await readFile(caFile, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw configurationFailure(
      `--ca-file (env VAULTPAM_CA_FILE) ${caFile} cannot be read: ${code === 'ENOENT' ? 'no such file' : (code ?? errorMessage(error))}`,
    );
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw configurationFailure(`--ca-file (env VAULTPAM_CA_FILE) ${caFile} holds no PEM certificate`);
  }
  return text;
}

export function startAgent(dependencies: AgentDependencies): RunningAgent {
  const lifecycle = new AgentLifecycle(dependencies);
  return {
    done: lifecycle.done,
    stop: () => lifecycle.stop(),
    status: () => lifecycle.status(),
    readiness: () => lifecycle.readiness(),
  };
}

class AgentLifecycle {
  readonly done: Promise<AgentOutcome>;
  private readonly config: AgentConfig;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly createClient: (options: ControlPlaneClientOptions) => AgentApi;
  private readonly probe: PathProber;
  private readonly generateKey: () => Promise<string>;
  private readonly agentVersion: string;

  private client: AgentApi | undefined;
  private identity: LoadedIdentity | undefined;
  /** The identity files as this agent last loaded or wrote them, to notice changes made by others. */
  private identityFiles: IdentityFileStamps | undefined;
  /** A certificate the control plane already uses (renewed, or written back) that is not on disk yet. */
  private unsavedIdentity: UnsavedCertificate | undefined;
  /** Why renewal is held back (the identity directory takes no write), per serial, to warn once. */
  private renewalHeldBack: { serial: string; code: string } | undefined;
  /** A refused identity was moved aside and replaced in this process; never twice. */
  private replacedRefusedIdentity = false;
  /** The control plane's renewAfter from the last heartbeat answer, for the certificate of that serial. */
  private renewAfter: { serial: string; at: Date } | undefined;
  /** When this process received its current certificate (enrolled or renewed), for that serial. */
  private certificateReceived: { serial: string; at: Date } | undefined;
  /** How far the control plane's clock is from this node's: its renewAfter and dates are on its clock. */
  private readonly controlPlaneClock = new ControlPlaneClockOffset();
  /** The serial each outage warning was given for: once per certificate, not at every failed heartbeat. */
  private outageWarned: { renewalDue?: string; expired?: string } = {};
  private stopping = false;
  private wake: (() => void) | undefined;
  private current: AgentStatus;
  /** The readiness /readyz (or a caller) was last given, to log its loss once. */
  private lastReportedReady: boolean | undefined;

  constructor(dependencies: AgentDependencies) {
    this.config = dependencies.config;
    this.logger = dependencies.logger;
    this.clock = dependencies.clock;
    this.random = dependencies.random ?? Math.random;
    this.createClient = dependencies.createClient ?? ((options) => new ControlPlaneClient(options));
    this.probe = dependencies.probe ?? probeTcp;
    this.generateKey = dependencies.generateKey ?? defaultGenerateKey;
    this.agentVersion = dependencies.agentVersion ?? 'vaultpam-connector';
    this.current = {
      phase: 'starting',
      state: undefined,
      lastAcceptedAt: undefined,
      heartbeatIntervalMs: this.config.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
      serial: undefined,
      notAfter: undefined,
      heartbeatsAccepted: 0,
      renewals: 0,
    };
    this.done = this.run();
  }

  status(): AgentStatus {
    return { ...this.current };
  }

  readiness(): Readiness {
    const readiness = readinessAt(
      this.current.lastAcceptedAt,
      this.current.heartbeatIntervalMs,
      this.clock.now(),
      this.current.state,
    );
    this.logReadinessLost(readiness);
    return readiness;
  }

  /** A /readyz that turns 503 says why in the log too, once per loss (a hung request logs nothing yet). */
  private logReadinessLost(readiness: Readiness): void {
    const wasReady = this.lastReportedReady;
    this.lastReportedReady = readiness.ready;
    if (wasReady !== true || readiness.ready) return;
    this.logger.warn(
      { lastHeartbeatAt: readiness.lastHeartbeatAt, phase: this.current.phase },
      `not ready: ${readiness.detail}; /readyz answers 503 until a heartbeat is accepted`,
    );
  }

  async stop(): Promise<AgentOutcome> {
    if (!this.stopping) {
      this.stopping = true;
      this.logger.info('stopping: closing the control-plane connection');
      this.wake?.();
      // Destroying the sockets aborts an in-flight request; the loop sees `stopping` and ends.
      this.client?.close();
    }
    return this.done;
  }

  private async run(): Promise<AgentOutcome> {
    try {
      await this.startAndHeartbeat();
      await this.saveBeforeExit();
      return this.stopped();
    } catch (error) {
      await this.saveBeforeExit();
      if (error instanceof StopRequested || (this.stopping && !isAgentFailure(error))) return this.stopped();
      if (isAgentFailure(error)) return this.failClosed(error);
      this.current.phase = 'failed';
      this.logger.error(
        { code: 'INTERNAL_ERROR', err: scrubSecrets(errorMessage(error)) },
        'unexpected agent error',
      );
      this.client?.close();
      return { exitCode: 1, failure: undefined };
    }
  }

  private stopped(): AgentOutcome {
    this.current.phase = 'stopped';
    this.client?.close();
    this.logger.info('stopped');
    return { exitCode: EXIT_CODES.clean, failure: undefined };
  }

  private async failClosed(failure: AgentFailure): Promise<AgentOutcome> {
    this.current.phase = 'failed';
    this.client?.close();
    const reason = scrubSecrets(failure.message);
    this.logger.error(
      {
        failureClass: failure.failureClass,
        code: failure.code,
        exitCode: failure.exitCode,
        nextStep: failure.nextStep,
      },
      `fail closed: ${failure.failureClass} (${failure.code}): ${reason}. Next step: ${failure.nextStep}`,
    );
    try {
      await writeTerminationMessage(this.config.terminationLog, failure);
    } catch (error) {
      this.logger.warn(
        { path: this.config.terminationLog, err: errorMessage(error) },
        'could not write the termination message file',
      );
    }
    return { exitCode: failure.exitCode, failure };
  }

  private async startAndHeartbeat(): Promise<void> {
    const caPem = await readCaFile(this.config.caFile);
    const strays = await removeStrayTempFiles(this.config.dataDir).catch((error: unknown) => {
      throw configurationFailure(
        `data directory ${this.config.dataDir} (--data-dir, env PAM_AGENT_DATA_DIR) cannot be read: ${errorMessage(error)}`,
      );
    });
    if (strays.length > 0) {
      this.logger.info({ files: strays }, 'removed temporary files left by an interrupted write');
    }
    const loaded = await this.loadIdentityOrReplaceLost();
    // The control plane is verified with --ca-file, else the identity's ca.pem, else the system roots.
    const identityCaPem = loaded.kind === 'present' ? loaded.identity.caPem : undefined;
    this.client = this.createClient({
      baseUrl: this.config.controlPlaneUrl,
      caPem: caPem ?? identityCaPem,
      caFile: caPem ? this.config.caFile : identityCaPem ? identityPaths(this.config.dataDir).ca : undefined,
      requestTimeoutMs: this.config.requestTimeoutMs,
      clock: this.clock,
    });
    if (loaded.kind === 'present') {
      for (const note of loaded.notes) this.logger.warn(note);
      this.useIdentity(loaded.identity);
      await this.recordIdentityFiles();
      this.warnIfCaMissing(loaded.identity);
      this.logger.info(
        {
          connectorId: this.config.connectorId,
          serial: loaded.identity.facts.serial,
          notAfter: loaded.identity.metadata.notAfter,
        },
        'loaded the persisted identity; reconnecting over mTLS without a token',
      );
      if (await tokenFilePresent(this.config.tokenFile)) {
        this.logger.info(
          { tokenFile: this.config.tokenFile },
          'an enrollment token file is present but not used: this connector already has an identity',
        );
      }
    } else {
      await this.enroll(loaded.pendingKeyPem);
    }
    for (;;) {
      this.current.phase = 'connecting';
      try {
        await this.heartbeatLoop();
        return;
      } catch (error) {
        // Lost while running (key or certificate deleted): remembered, so a later start can tell a
        // recovery's token from one that was already mounted.
        if (isIdentityLost(error)) await this.onIdentityLost(error, { atStart: false });
        if (!(error instanceof ReplaceRefusedIdentity)) throw error;
        await this.replaceRefusedIdentity(error.refusal, error.evidence);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // An identity the control plane refused

  /**
   * What to do when the control plane refuses the client certificate: each cause fails closed its
   * own way (certificate-refusal.ts). Only a refusal that makes the identity useless for good
   * (revoked, replaced, unknown, truly expired, a CA the control plane no longer trusts) is
   * remembered, in identity/rejection.json with a fingerprint of the token mounted at the time. A
   * token that was not mounted at an earlier refusal of this identity was minted after it was
   * reported (the operator mints none while a refused identity is diagnosed, so it is a guided
   * recovery's): that one replaces the identity. Clock skew and configuration never do.
   */
  private async onCertificateRefused(error: CodedError): Promise<never> {
    const identity = this.identity;
    if (!identity) throw identityRejectedFailure(error);
    const verdict = judgeCertificateRefusal(error, {
      identity: {
        connectorId: this.config.connectorId,
        serial: identity.facts.serial,
        notBefore: identity.facts.notBefore,
        notAfter: identity.facts.notAfter,
        issuedBy: identity.metadata.controlPlaneUrl,
      },
      controlPlaneUrl: this.config.controlPlaneUrl,
      sanUriPrefix: this.config.sanUriPrefix,
      now: this.clock.now(),
    });
    if (this.replacedRefusedIdentity || !verdict.replaceable) throw verdict.failure;
    const serial = identity.facts.serial;
    const fingerprint = await this.mountedTokenFingerprint(serial, 'the refused identity');
    const earlier = await readRejection(this.config.dataDir, serial);
    const unseen = fingerprint !== undefined && !earlier?.tokensSeen.includes(fingerprint);
    if (earlier && unseen) throw new ReplaceRefusedIdentity(error);
    // Revoked by a guided recovery: beginning it revoked every older token, so a token written after
    // this certificate can only be the recovery's. It is used at this first refusal already.
    const recovery = verdict.recoveryRequestId;
    const afterCertificate =
      unseen && recovery !== undefined
        ? await tokenWrittenAfterCertificate(this.config.tokenFile, this.config.dataDir)
        : false;
    if (afterCertificate) {
      throw new ReplaceRefusedIdentity(
        error,
        `guided recovery ${recovery} revoked the certificate and every older token, and the token was written after the certificate, so it is the recovery's`,
      );
    }
    await this.recordRefusal(serial, error.code, error.message, fingerprint);
    if (fingerprint) {
      this.logger.warn(
        { serial, tokenFile: this.config.tokenFile },
        earlier
          ? 'an enrollment token is present, but it was already mounted when the control plane refused this identity before: it is not used'
          : recovery !== undefined
            ? `an enrollment token is present, but it was written before this connector's certificate, which guided recovery ${recovery} revoked: it cannot be that recovery's token (beginning the recovery revoked every older token), so it is not used; mount the token the recovery mints`
            : 'an enrollment token is present, but it was mounted before the control plane first refused this identity: it is not used (only a token mounted after the refusal, such as a guided recovery mints, replaces the identity)',
      );
    }
    throw verdict.failure;
  }

  /** The fingerprint of the mounted token (never the token), or undefined when none can be read. */
  private async mountedTokenFingerprint(serial: string, identity: string): Promise<string | undefined> {
    try {
      const token = await readTokenFile(this.config.tokenFile);
      return token ? tokenFingerprint(serial, token) : undefined;
    } catch (readError) {
      this.logger.warn(
        { tokenFile: this.config.tokenFile, err: errorMessage(readError) },
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
    try {
      await recordRejection(this.config.dataDir, {
        serial,
        code,
        message,
        token: fingerprint,
        now: this.clock.now(),
      });
    } catch (writeError) {
      this.logger.warn(
        { dataDir: this.config.dataDir, err: errorMessage(writeError) },
        'could not record the refusal of the identity in the data directory',
      );
    }
  }

  /**
   * Loads the identity; one that is lost (identity.json present, key or certificate gone) may be
   * replaced by a token mounted after the loss was first reported, as a refused one may.
   */
  private async loadIdentityOrReplaceLost(): Promise<IdentityLoadResult> {
    try {
      return await this.loadIdentityFromDisk();
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
  private async onIdentityLost(failure: AgentFailure, { atStart }: { atStart: boolean }): Promise<void> {
    // Without identity.json the next start is a first boot: there is nothing to remember a token against.
    const serial = await recordedSerial(this.config.dataDir);
    if (serial === undefined) throw failure;
    const fingerprint = await this.mountedTokenFingerprint(serial, 'the lost identity');
    const earlier = await readRejection(this.config.dataDir, serial);
    const unseen = fingerprint !== undefined && !earlier?.tokensSeen.includes(fingerprint);
    if (atStart && earlier && unseen && !this.replacedRefusedIdentity) {
      this.replacedRefusedIdentity = true;
      const movedTo = await this.moveIdentityAside('lost');
      this.logger.warn(
        { connectorId: this.config.connectorId, lostSerial: serial, movedTo, reason: failure.message },
        `identity lost and a new enrollment token is present (mounted after the loss was first reported): moved what is left of the identity to ${movedTo} and pairing once with the token`,
      );
      return;
    }
    await this.recordRefusal(serial, failure.code, failure.message, fingerprint);
    if (fingerprint) {
      this.logger.warn(
        { serial, tokenFile: this.config.tokenFile },
        earlier
          ? 'an enrollment token is present, but it was already mounted when this identity was reported lost before: it is not used; a token mounted after that report (such as a guided recovery mints) makes the agent move the identity directory aside and pair once'
          : 'an enrollment token is present, but it was mounted before this identity was first reported lost: it is not used (it may be the spent bootstrap token); a token mounted after this report (such as a guided recovery mints) makes the agent move the identity directory aside and pair once, or move it aside yourself (never delete it)',
      );
    }
    throw failure;
  }

  /** Renames the whole identity directory to identity.rejected-<time>: nothing is deleted. */
  private async moveIdentityAside(what: 'refused' | 'lost'): Promise<string> {
    try {
      return await setAsideIdentity(this.config.dataDir, this.clock.now());
    } catch (error) {
      throw configurationFailure(
        `cannot move the ${what} identity aside in ${this.config.dataDir} (--data-dir, env PAM_AGENT_DATA_DIR): ` +
          `${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}; mount a writable durable volume there`,
      );
    }
  }

  /** Moves the refused identity aside (never deletes it) and pairs exactly once with the new token. */
  private async replaceRefusedIdentity(refusal: CodedError, evidence?: string): Promise<void> {
    this.replacedRefusedIdentity = true;
    const refused = this.identity;
    const movedTo = await this.moveIdentityAside('refused');
    this.identity = undefined;
    this.unsavedIdentity = undefined;
    this.current.serial = undefined;
    this.current.notAfter = undefined;
    this.client?.setIdentity(undefined);
    this.logger.warn(
      {
        connectorId: this.config.connectorId,
        refusedSerial: refused?.facts.serial,
        movedTo,
        code: refusal.code,
        reason: refusal.message,
      },
      `identity refused by the control plane and a new enrollment token is present${evidence ? ` (${evidence})` : ''}: moved the refused identity to ${movedTo} and pairing once with the token`,
    );
    await this.enroll(undefined);
  }

  private useIdentity(identity: LoadedIdentity): void {
    this.identity = identity;
    this.current.serial = identity.facts.serial;
    this.current.notAfter = identity.facts.notAfter;
    this.client?.setIdentity({ keyPem: identity.keyPem, certPem: identity.certPem });
  }

  // ---------------------------------------------------------------------------------------------
  // The identity on disk

  /** Repairs loose file modes (each repair logged), then loads and verifies the bundle. */
  private async loadIdentityFromDisk(): Promise<IdentityLoadResult> {
    for (const warning of await repairIdentityPermissions(this.config.dataDir)) this.logger.warn(warning);
    return loadIdentity(this.config.dataDir, {
      connectorId: this.config.connectorId,
      sanUriPrefix: this.config.sanUriPrefix,
      controlPlaneUrl: this.config.controlPlaneUrl,
      now: this.clock.now(),
    });
  }

  /** Notes what the identity files look like now; called after loading them and after every own save. */
  private async recordIdentityFiles(): Promise<void> {
    this.identityFiles = await stampIdentityFiles(this.config.dataDir);
  }

  /** ca.pem can be given again by the control plane: say so, and how the server is verified meanwhile. */
  private warnIfCaMissing(identity: LoadedIdentity): void {
    if (identity.caPem !== undefined) return;
    const caPath = identityPaths(this.config.dataDir).ca;
    const trust = this.config.caFile
      ? `--ca-file ${this.config.caFile}`
      : 'the system CA roots (no --ca-file given)';
    this.logger.warn(
      { path: caPath },
      `no such file: ${caPath} (the CA bundle): verifying the control plane with ${trust} and restoring ` +
        `${caPath} from the control plane's next certificate answer (renewing at once)`,
    );
  }

  /**
   * Before each use of the identity: a cheap look at its files. When one changed since the agent
   * loaded or wrote it, the bundle is verified again and fails closed the way a start would (key or
   * certificate gone: exit 10; replaced by something that does not verify: exit 13). A replacement
   * that verifies is used, as a restart would use it; a missing ca.pem is restored, not a failure.
   */
  private async checkIdentityFilesUnchanged(): Promise<void> {
    const recorded = this.identityFiles;
    if (!recorded || !this.identity || this.unsavedIdentity) return;
    const changed = changedIdentityFiles(
      this.config.dataDir,
      recorded,
      await stampIdentityFiles(this.config.dataDir),
    );
    if (changed.length === 0) return;
    this.logger.warn(
      { files: changed },
      `identity files changed on disk: ${changed.join(', ')}; verifying them again`,
    );
    const loaded = await this.loadIdentityFromDisk();
    if (loaded.kind === 'absent') {
      throw identityLostFailure(
        `no such file: ${identityPaths(this.config.dataDir).metadata}: the identity this agent was running ` +
          'on was removed from disk while it ran, and the agent will not re-enroll',
      );
    }
    for (const note of loaded.notes) this.logger.warn(note);
    const previous = this.identity;
    if (isOlderCertificateOfSameKey(loaded.identity, previous)) {
      await this.writeBackCurrentCertificate(previous, loaded.identity);
      return;
    }
    if (loaded.identity.certPem !== previous.certPem || loaded.identity.keyPem !== previous.keyPem) {
      this.logger.warn(
        { previousSerial: previous.facts.serial, serial: loaded.identity.facts.serial },
        'the identity files were replaced by another identity of this connector that verifies: using it',
      );
    }
    this.useIdentity(loaded.identity);
    this.warnIfCaMissing(loaded.identity);
    await this.recordIdentityFiles();
  }

  /**
   * A backup or snapshot copied back over the live identity brings an older certificate of the same
   * key: the control plane accepts only the newest, so using it would get the connector refused as
   * replaced. The current certificate (and its identity.json) is written back instead, atomically.
   */
  private async writeBackCurrentCertificate(current: LoadedIdentity, older: LoadedIdentity): Promise<void> {
    const { cert } = identityPaths(this.config.dataDir);
    this.unsavedIdentity = {
      identity: current,
      serialOnDisk: older.facts.serial,
      origin: 'restored',
      restoresCa: false,
      failedSaves: 0,
    };
    const saved = await this.saveUnsavedCertificate();
    const replaced =
      `${cert} was replaced by an older certificate of this identity (serial ${older.facts.serial}, valid ` +
      `until ${older.facts.notAfter.toISOString()})`;
    this.logger.warn(
      { serial: current.facts.serial, olderSerial: older.facts.serial },
      saved
        ? `${replaced}; restored the current one (serial ${current.facts.serial})`
        : `${replaced}; the current one (serial ${current.facts.serial}) could not be written back yet: running on it from memory`,
    );
  }

  // ---------------------------------------------------------------------------------------------
  // First boot

  private async enroll(pendingKeyPem: string | undefined): Promise<void> {
    this.current.phase = 'enrolling';
    let token: string | undefined;
    try {
      token = await readTokenFile(this.config.tokenFile);
    } catch (error) {
      throw tokenUnreadableFailure(errorMessage(error));
    }
    if (!token) throw tokenMissingFailure(this.config.tokenFile, this.config.dataDir);

    const keyPem = pendingKeyPem ?? (await this.generateKey());
    if (!pendingKeyPem) {
      // Persist the key before it is used, so an unwritable data directory is found before the
      // single-use token is spent.
      await savePendingKey(this.config.dataDir, keyPem).catch((error: unknown) => {
        throw configurationFailure(
          `cannot write the identity to ${this.config.dataDir} (--data-dir, env PAM_AGENT_DATA_DIR): ` +
            `${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}; mount a writable durable volume there`,
        );
      });
    }
    const csrPem = createCsrPem(keyPem, this.config.connectorId);
    const client = this.requireClient();
    this.logger.info(
      { connectorId: this.config.connectorId },
      'no identity found: enrolling once with the token',
    );

    let attempt = 0;
    let unreachableSince: Date | undefined;
    for (;;) {
      this.throwIfStopping();
      const triedAt = this.clock.now();
      try {
        const answer = await client.enroll({ connectorId: this.config.connectorId, token, csrPem });
        this.noteControlPlaneClock(answer.serverDate);
        const identity = this.identityFrom(keyPem, answer, this.clock.now().toISOString(), {
          checkNames: false,
        });
        // A certificate that names this connector under another SAN prefix is still its own, and the
        // token is spent: keep it, so fixing --san-uri-prefix is all a restart needs (exit 12 below).
        const namesFailure = this.issuedNamesFailure(identity);
        if (namesFailure && namesFailure.exitCode !== EXIT_CODES.configuration) throw namesFailure;
        await this.persist(identity);
        if (namesFailure) throw namesFailure;
        this.useIdentity(identity);
        this.noteCertificateReceived(identity);
        if (!this.config.heartbeatIntervalMs)
          this.current.heartbeatIntervalMs = answer.heartbeatIntervalSeconds * 1000;
        this.logger.info(
          {
            connectorId: this.config.connectorId,
            serial: identity.facts.serial,
            notAfter: identity.metadata.notAfter,
          },
          'enrolled: identity persisted to the data directory; the token will not be used again',
        );
        return;
      } catch (error) {
        this.throwIfStopping();
        if (isAgentFailure(error)) throw error;
        const coded = asCodedError(error, 'INTERNAL_ERROR');
        if (!coded.temporary) {
          throw isTransportError(coded) ? enrollmentTrustFailure(coded) : enrollmentRejectedFailure(coded);
        }
        attempt += 1;
        unreachableSince ??= triedAt;
        this.checkGiveUp(false, coded, unreachableSince);
        const delay = this.delayWithinGiveUp(backoffDelay(attempt, this.backoffPolicy()), unreachableSince);
        this.logger.warn(
          { failureClass: 'FirstBootBootstrap', code: coded.code, attempt, retryInMs: delay },
          enrollmentRetryMessage(coded),
        );
        await this.sleep(delay);
      }
    }
  }

  /** Checks a certificate answer against the key and the connector ID before trusting it. */
  private identityFrom(
    keyPem: string,
    answer: CertificateAnswer,
    enrolledAt: string,
    { checkNames = true }: { checkNames?: boolean } = {},
  ): LoadedIdentity {
    let facts: ReturnType<typeof parseCertificateFacts>;
    try {
      facts = parseCertificateFacts(answer.certificatePem);
    } catch (error) {
      throw identityUnusableFailure(
        'CERTIFICATE_INVALID',
        'the control plane returned an unreadable certificate',
        error,
      );
    }
    if (!keyMatchesCertificate(keyPem, answer.certificatePem)) {
      throw identityUnusableFailure(
        'IDENTITY_KEY_MISMATCH',
        'private key does not match certificate: the control plane issued a certificate for another key',
      );
    }
    // Nothing is written from a certificate that does not verify, not even the control plane's.
    if (!issuedByCaBundle(answer.certificatePem, answer.caPem)) {
      throw identityUnusableFailure(
        'IDENTITY_CHAIN_INVALID',
        'certificate chain does not verify: the certificate the control plane issued is not signed by the CA ' +
          'it returned with it',
      );
    }
    const identity: LoadedIdentity = {
      keyPem,
      certPem: answer.certificatePem,
      caPem: answer.caPem,
      facts,
      metadata: {
        connectorId: this.config.connectorId,
        serial: facts.serial,
        notAfter: facts.notAfter.toISOString(),
        enrolledAt,
        controlPlaneUrl: this.config.controlPlaneUrl,
      },
    };
    const namesFailure = checkNames ? this.issuedNamesFailure(identity) : undefined;
    if (namesFailure) throw namesFailure;
    return identity;
  }

  /** Whether an issued certificate names this connector (CN, SAN URI under --san-uri-prefix). */
  private issuedNamesFailure(identity: LoadedIdentity): AgentFailure | undefined {
    return certificateNamesFailure(identity.facts, this.config, 'the certificate the control plane issued');
  }

  private async persist(identity: LoadedIdentity): Promise<void> {
    try {
      await saveIdentity(this.config.dataDir, identity);
      await this.recordIdentityFiles();
    } catch (error) {
      throw identityUnusableFailure(
        'IDENTITY_PERSIST_FAILED',
        `the identity could not be written to ${this.config.dataDir}: ${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}`,
        error,
      );
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Heartbeats and renewal

  private async heartbeatLoop(): Promise<void> {
    const client = this.requireClient();
    let failures = 0;
    let unreachableSince: Date | undefined;
    let connected = false;
    while (!this.stopping) {
      await this.checkIdentityFilesUnchanged();
      const probeTimeout = Math.min(MAX_PATH_PROBE_MS, Math.max(50, this.current.heartbeatIntervalMs / 2));
      const extraPaths = await checkPaths(this.config.pathChecks, probeTimeout, this.probe);
      const paths: PathHealth[] = [
        { name: 'tunnel', healthy: true, detail: 'mTLS session established' },
        ...extraPaths,
      ];
      this.throwIfStopping();
      let delay: number;
      const triedAt = this.clock.now();
      try {
        const answer = await client.heartbeat({ paths, agentVersion: this.agentVersion });
        const previousState = this.current.state;
        this.current.lastAcceptedAt = this.clock.now();
        this.noteControlPlaneClock(answer.serverDate);
        this.current.state = answer.state;
        this.current.heartbeatsAccepted += 1;
        this.current.phase = 'connected';
        if (!this.config.heartbeatIntervalMs)
          this.current.heartbeatIntervalMs = answer.heartbeatIntervalSeconds * 1000;
        if (!connected) {
          this.logger.info(
            { state: answer.state, serial: this.current.serial, failedAttempts: failures },
            'connected: heartbeat accepted over mTLS',
          );
        } else if (previousState !== answer.state) {
          this.logger.info({ state: answer.state, previousState }, 'control plane state changed');
        }
        const unhealthy = extraPaths.filter((path) => !path.healthy);
        if (unhealthy.length > 0) {
          this.logger.debug({ paths: unhealthy }, 'runtime paths unhealthy');
        }
        connected = true;
        failures = 0;
        unreachableSince = undefined;
        delay = this.current.heartbeatIntervalMs;
        this.noteRenewAfter(answer.renewAfter);
        await this.renewIfDue(client);
      } catch (error) {
        this.throwIfStopping();
        if (isAgentFailure(error) || error instanceof ReplaceRefusedIdentity) throw error;
        const coded = asCodedError(error, 'INTERNAL_ERROR');
        if (isCertificateRefusal(coded)) await this.onCertificateRefused(coded);
        connected = false;
        failures += 1;
        unreachableSince ??= triedAt;
        this.checkGiveUp(true, coded, unreachableSince);
        delay = this.delayWithinGiveUp(backoffDelay(failures, this.backoffPolicy()), unreachableSince);
        this.logger.warn(
          { failureClass: 'Reconnect', code: coded.code, attempt: failures, retryInMs: delay },
          `heartbeat failed: ${coded.message}; retrying with the persisted identity`,
        );
        this.warnAboutCertificateWhileUnreachable();
      }
      await this.sleep(delay);
    }
  }

  private async renewIfDue(client: AgentApi): Promise<void> {
    await this.saveUnsavedCertificate();
    const identity = this.identity;
    if (!identity) return;
    const dueAt = this.renewalDueFor(identity);
    // A missing ca.pem is restored from a certificate answer, so renewal is due at once then.
    const caMissing = identity.caPem === undefined;
    const now = this.clock.now();
    const due = now.getTime() >= dueAt.getTime();
    if (!caMissing && !due) return;
    if (await this.renewalHeldBackByDisk(identity, now)) return;
    const why = due ? `due since ${dueAt.toISOString()}` : 'early, to restore the missing CA bundle';
    this.logger.info(
      { serial: identity.facts.serial, dueAt: dueAt.toISOString(), notAfter: identity.metadata.notAfter },
      `renewing the certificate (${why}, ${timeLeft(this.controlPlaneClock.toLocal(identity.facts.notAfter), now)})`,
    );
    let answer: CertificateAnswer;
    try {
      // The key stays: only cert.pem changes, so a crash mid-write cannot pair a key with the wrong cert.
      answer = await client.renew({ csrPem: createCsrPem(identity.keyPem, this.config.connectorId) });
    } catch (error) {
      this.throwIfStopping();
      const coded = asCodedError(error, 'INTERNAL_ERROR');
      if (isCertificateRefusal(coded)) await this.onCertificateRefused(coded);
      this.logger.warn(
        { code: coded.code, dueAt: dueAt.toISOString(), notAfter: identity.metadata.notAfter },
        `certificate renewal failed: ${coded.message}; retrying at the next heartbeat`,
      );
      return;
    }
    this.noteControlPlaneClock(answer.serverDate);
    const renewed = this.identityFrom(identity.keyPem, answer, identity.metadata.enrolledAt);
    // The control plane now accepts only the renewed certificate: use it, and save it before saying
    // "certificate renewed" (a save that fails is retried at every heartbeat and at shutdown).
    this.unsavedIdentity = {
      identity: renewed,
      serialOnDisk: identity.facts.serial,
      origin: 'renewed',
      restoresCa: caMissing,
      failedSaves: 0,
    };
    this.useIdentity(renewed);
    this.noteCertificateReceived(renewed);
    await this.saveUnsavedCertificate();
    this.current.renewals += 1;
  }

  /**
   * A renewal makes the control plane accept only the new certificate, so one that cannot be saved
   * is lost with the process, and the identity with it. Renew only when the identity directory takes
   * a write; otherwise keep the current certificate and say why, once per certificate and cause.
   */
  private async renewalHeldBackByDisk(identity: LoadedIdentity, now: Date): Promise<boolean> {
    const bytes = identity.certPem.length + (identity.caPem?.length ?? 8192) + 1024;
    const problem = await identityDirectoryWriteProblem(this.config.dataDir, bytes);
    const serial = identity.facts.serial;
    const dir = identityPaths(this.config.dataDir).dir;
    if (!problem) {
      if (this.renewalHeldBack)
        this.logger.info({ path: dir }, `${dir} takes writes again: renewing the certificate`);
      this.renewalHeldBack = undefined;
      return false;
    }
    if (this.renewalHeldBack?.serial === serial && this.renewalHeldBack.code === problem.code) return true;
    this.renewalHeldBack = { serial, code: problem.code };
    this.logger.warn(
      { path: dir, code: problem.code, serial, notAfter: identity.facts.notAfter.toISOString() },
      `certificate renewal held back: the identity directory ${dir} cannot be written (${problem.code} creating ` +
        `${problem.path}): the control plane would accept only the renewed certificate, which could not be saved; ` +
        `keeping the current one (serial ${serial}), which ${timeLeft(this.controlPlaneClock.toLocal(identity.facts.notAfter), now)}; make ${dir} ` +
        'writable by the connector user (read-only mount, full volume, ownership): the renewal follows at the ' +
        'next heartbeat after that',
    );
    return true;
  }

  /** When the current certificate is due for renewal (renewal-timing.ts says how). */
  private renewalDueFor(identity: LoadedIdentity): Date {
    const serial = identity.facts.serial;
    // renewAfter and the certificate's dates are on the control plane's clock: on this node's, with a
    // skewed clock, they fell due at once (node ahead: renewal at every heartbeat) or never (behind).
    const local = (time: Date) => this.controlPlaneClock.toLocal(time);
    return renewalDueAt(
      local(identity.facts.notBefore),
      local(identity.facts.notAfter),
      this.config.renewAtFraction,
      {
        ...(this.certificateReceived?.serial === serial ? { receivedAt: this.certificateReceived.at } : {}),
        ...(this.renewAfter?.serial === serial ? { renewAfter: local(this.renewAfter.at) } : {}),
      },
    );
  }

  /** Measures the control plane's clock from an answer's Date; warns once when it is far from this node's. */
  private noteControlPlaneClock(serverDate: Date | undefined): void {
    const warning = this.controlPlaneClock.observe(serverDate, this.clock.now());
    if (warning) this.logger.warn({ offsetMs: this.controlPlaneClock.milliseconds }, warning);
  }

  /** Remembers the control plane's renewAfter for the certificate it just accepted. */
  private noteRenewAfter(renewAfter: string | undefined): void {
    const at = renewAfter === undefined ? undefined : new Date(renewAfter);
    const serial = this.current.serial;
    this.renewAfter = at && serial !== undefined && !Number.isNaN(at.getTime()) ? { serial, at } : undefined;
  }

  private noteCertificateReceived(identity: LoadedIdentity): void {
    this.certificateReceived = { serial: identity.facts.serial, at: this.clock.now() };
  }

  /**
   * While the control plane cannot be reached the certificate cannot be renewed: say so once when
   * renewal falls due and once when the certificate expires, with the time left, so an outage
   * that outlives the certificate is seen coming.
   */
  private warnAboutCertificateWhileUnreachable(): void {
    const identity = this.identity;
    if (!identity) return;
    const { serial, notAfter } = identity.facts;
    const now = this.clock.now();
    const localNotAfter = this.controlPlaneClock.toLocal(notAfter);
    if (now.getTime() >= localNotAfter.getTime()) {
      if (this.outageWarned.expired === serial) return;
      this.outageWarned = { renewalDue: serial, expired: serial };
      this.logger.warn(
        { serial, notAfter: notAfter.toISOString() },
        `certificate has expired or is not yet valid: this connector's certificate expired at ${notAfter.toISOString()} ` +
          `while the control plane was unreachable (${timeLeft(localNotAfter, now)}); the control plane cannot renew an ` +
          'expired certificate, so once it is reachable it refuses it and the connector needs a guided recovery ' +
          "(unless this node's clock is wrong: check time sync)",
      );
      return;
    }
    const dueAt = this.renewalDueFor(identity);
    if (now.getTime() < dueAt.getTime() || this.outageWarned.renewalDue === serial) return;
    this.outageWarned = { ...this.outageWarned, renewalDue: serial };
    this.logger.warn(
      { serial, dueAt: dueAt.toISOString(), notAfter: notAfter.toISOString() },
      `certificate renewal due since ${dueAt.toISOString()}: the control plane is unreachable; the certificate ${timeLeft(localNotAfter, now)}`,
    );
  }

  /**
   * Saves the certificate the control plane already uses but that is not on disk yet. "certificate
   * renewed" is logged only once it is on disk; a failure is logged at error level and retried at
   * the next heartbeat and at shutdown, while the agent runs on the certificate from memory.
   */
  private async saveUnsavedCertificate(): Promise<boolean> {
    const unsaved = this.unsavedIdentity;
    if (!unsaved) return true;
    const { identity } = unsaved;
    try {
      await saveCertificate(this.config.dataDir, identity);
    } catch (error) {
      unsaved.failedSaves += 1;
      const code = (error as NodeJS.ErrnoException).code ?? errorMessage(error);
      this.logger.error(
        {
          code: 'IDENTITY_PERSIST_FAILED',
          err: errorMessage(error),
          dataDir: this.config.dataDir,
          serial: identity.facts.serial,
          serialOnDisk: unsaved.serialOnDisk,
          failedSaves: unsaved.failedSaves,
        },
        `${unsaved.origin === 'renewed' ? 'renewed certificate' : 'current certificate'} not saved: ${code} writing ` +
          `${identityPaths(this.config.dataDir).cert}: the control plane accepts serial ${identity.facts.serial}, ` +
          `not serial ${unsaved.serialOnDisk} on disk; running on it from memory and saving it again at the next ` +
          'heartbeat and at shutdown',
      );
      return false;
    } finally {
      // The agent's own writes are not a change on disk to verify again.
      await this.recordIdentityFiles();
    }
    this.unsavedIdentity = undefined;
    this.logSaved(unsaved);
    return true;
  }

  private logSaved(unsaved: UnsavedCertificate): void {
    const paths = identityPaths(this.config.dataDir);
    if (unsaved.restoresCa) {
      this.logger.info({ path: paths.ca }, `restored ${paths.ca} from the control plane`);
    }
    const fields = {
      previousSerial: unsaved.serialOnDisk,
      serial: unsaved.identity.facts.serial,
      notAfter: unsaved.identity.metadata.notAfter,
      ...(unsaved.failedSaves > 0 ? { failedSaves: unsaved.failedSaves } : {}),
    };
    if (unsaved.origin === 'renewed') this.logger.info(fields, 'certificate renewed');
    // A write-back that worked at once is reported by writeBackCurrentCertificate.
    else if (unsaved.failedSaves > 0) {
      this.logger.info(fields, `restored the current certificate (serial ${fields.serial}) to ${paths.cert}`);
    }
  }

  /**
   * At shutdown (and before failing closed), one last try to save a certificate that is only in
   * memory. When it fails, say at error level what is lost with the process.
   */
  private async saveBeforeExit(): Promise<void> {
    const unsaved = this.unsavedIdentity;
    if (!unsaved || (await this.saveUnsavedCertificate())) return;
    const { cert } = identityPaths(this.config.dataDir);
    this.logger.error(
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

  // ---------------------------------------------------------------------------------------------
  // Helpers

  /** Jittered, so a fleet that lost the control plane at once does not come back in lockstep. */
  private backoffPolicy(): BackoffPolicy {
    return {
      baseMs: this.config.retryInitialMs,
      capMs: this.config.retryMaxMs,
      jitter: 'equal',
      random: this.random,
    };
  }

  /**
   * `since` is the start of the first failed try of the outage, not the moment it failed: a try that
   * hangs until the request timeout counts toward --give-up-after from its first second.
   */
  private checkGiveUp(enrolled: boolean, lastError: CodedError, since: Date): void {
    if (this.config.giveUpAfterMs <= 0) return;
    const elapsed = this.clock.now().getTime() - since.getTime();
    if (elapsed >= this.config.giveUpAfterMs) throw unreachableFailure(enrolled, lastError, elapsed);
  }

  /**
   * The backoff delay, cut so the next try starts by the give-up deadline at the latest: the agent
   * then gives up when that try fails, within --give-up-after plus one request timeout of the first
   * try, whatever --retry-max says.
   */
  private delayWithinGiveUp(delay: number, since: Date): number {
    if (this.config.giveUpAfterMs <= 0) return delay;
    const left = since.getTime() + this.config.giveUpAfterMs - this.clock.now().getTime();
    return Math.max(0, Math.min(delay, left));
  }

  private requireClient(): AgentApi {
    if (!this.client) throw new CodedError('INTERNAL_ERROR', 'the control-plane client is not set up');
    return this.client;
  }

  private throwIfStopping(): void {
    if (this.stopping) throw new StopRequested('stop requested');
  }

  private sleep(milliseconds: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const handle = this.clock.setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, milliseconds);
      this.wake = () => {
        this.clock.clearTimeout(handle);
        this.wake = undefined;
        resolve();
      };
    });
  }
}

/** "expires in 2 h 3 min", or "expired 5 min 0 s ago". */
function timeLeft(notAfter: Date, now: Date): string {
  const left = notAfter.getTime() - now.getTime();
  return left > 0 ? `expires in ${describeDuration(left)}` : `expired ${describeDuration(left)} ago`;
}

/** The same key with an older certificate than the one in use: a copy of an earlier state of this identity. */
function isOlderCertificateOfSameKey(candidate: LoadedIdentity, current: LoadedIdentity): boolean {
  return (
    candidate.keyPem === current.keyPem &&
    candidate.facts.serial !== current.facts.serial &&
    certificateIsOlder(candidate.facts, current.facts)
  );
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
