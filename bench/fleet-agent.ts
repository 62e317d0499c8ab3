// One simulated connector agent of the scale benchmark's fleet (bench/fleet-simulator.ts), for as
// long as its container runs: what the reference agent (src/agent) does, in memory instead of files
// and processes, so one process carries thousands. The rules are the agent's own, imported where
// they are pure: the control-plane client, the fail-closed failures and their termination messages,
// the readiness rule, the renewal schedule, the token fingerprint of a reported loss.
//
// - Start (lifecycle.ts, recovery-token.ts): a persisted identity reconnects over mTLS without a
//   token; none pairs once with the mounted token, or fails closed (ENROLLMENT_TOKEN_MISSING); an
//   identity whose key and certificate are gone while identity.json stays is IDENTITY_LOST: it fails
//   closed, remembering the token mounted at the report, and only a token mounted after the first
//   report (a guided recovery's) replaces it, once, with the old identity moved aside.
// - Running (heartbeat-loop.ts, identity-in-use.ts, renewal.ts): heartbeats at the interval the
//   control plane answers; before each, a look at the identity "files" (a loss while running fails
//   closed the same way); after each accepted one, renewal when it falls due (the control plane's
//   renewAfter, else the fraction of the lifetime), keeping the key.
// - Silent (the benchmark's network partition): heartbeats are not sent while the parent says so;
//   the agent keeps its schedule, so it beats again at its next tick once the partition ends.
//
// Simplified, and said so: temporary failures are retried at the heartbeat interval (enrollment with
// the agent's backoff) instead of the agent's outage backoff; no path checks; one CA (the fleet's).

import { isCertificateRefusal } from '../src/agent/certificate-refusal.ts';
import type { AgentConfig } from '../src/agent/config.ts';
import { isTransportError } from '../src/agent/connection-errors.ts';
import { ControlPlaneClient } from '../src/agent/control-plane-client.ts';
import {
  type AgentFailure,
  enrollmentRejectedFailure,
  enrollmentTrustFailure,
  identityLostFailure,
  identityRejectedFailure,
  isAgentFailure,
  tokenMissingFailure,
} from '../src/agent/failure.ts';
import { tokenFingerprint } from '../src/agent/identity-rejection.ts';
import { readinessAt } from '../src/agent/readiness.ts';
import { renewalDueAt } from '../src/agent/renewal-timing.ts';
import { backoffDelay } from '../src/lib/backoff.ts';
import { systemClock } from '../src/lib/clock.ts';
import { asCodedError, errorMessage } from '../src/lib/errors.ts';
import { createCsrPem, generateKeyPairPem, parseCertificateFacts } from '../src/lib/pki.ts';

/** The data volume as the agent's files would hold it: it outlives pods (a claim), not its own loss. */
export interface Disk {
  /** identity.json: the serial of the certificate the connector enrolled or renewed with. */
  serial?: string;
  keyPem?: string;
  certPem?: string;
  /** A key written before the token was spent, by an enrollment that did not finish. */
  pendingKeyPem?: string;
  /** identity/rejection.json: the identity reported lost, and the tokens mounted at each report. */
  rejection?: { serial: string; tokensSeen: Set<string> };
}

/** The path an agent reports while told to fail one: a target it cannot reach, as a real agent says it. */
const FAILED_PATH = {
  name: 'target:db.internal:5432',
  healthy: false,
  detail: 'connect ECONNREFUSED (bench)',
};

/** The counters the agents add to (the fleet's stats). */
export interface AgentCounters {
  enrolled: number;
  enrollFailures: number;
  heartbeats: number;
  heartbeatFailures: number;
  /** Heartbeats not sent because the agent was silent (partitioned). */
  heartbeatsHeld: number;
  renewals: number;
  renewalFailures: number;
  lastError?: string;
}

/** How a container's agent ended: the exit code, and the failure when it failed closed. */
export interface AgentExit {
  exitCode: number;
  failure?: AgentFailure;
}

export interface SimAgentOptions {
  config: AgentConfig;
  caPem: string;
  disk: Disk;
  /** The token file's content as the container started (the Secret volume), if any. */
  token: string | undefined;
  /** Whether the connector is partitioned from the control plane now. */
  silent: () => boolean;
  /** Whether one of the connector's paths fails now (its heartbeats report it unhealthy). */
  pathFailing: () => boolean;
  /** Runs key generation and the enroll request within the fleet's enrollment concurrency. */
  slot: <T>(work: () => Promise<T>) => Promise<T>;
  counters: AgentCounters;
  /** Told once when the agent exits by itself (never after stop()). */
  onExit: (exit: AgentExit) => void;
}

interface InUse {
  keyPem: string;
  certPem: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  receivedAt: Date | undefined;
}

const DEFAULT_INTERVAL_MS = 10_000;

export class SimAgent {
  private readonly o: SimAgentOptions;
  private client: ControlPlaneClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private current: InUse | undefined;
  private renewAfter: Date | undefined;
  private intervalMs: number;
  private lastAcceptedAt: Date | undefined;
  private state: string | undefined;

  constructor(options: SimAgentOptions) {
    this.o = options;
    this.intervalMs = options.config.heartbeatIntervalMs ?? DEFAULT_INTERVAL_MS;
    this.start().catch((error: unknown) => this.exit(error));
  }

  /** The container stops (pod deleted): no exit is reported, connections close. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.client?.close();
  }

  /** The agent's /readyz: a heartbeat accepted within three intervals (readiness.ts). */
  ready(now: Date): boolean {
    return readinessAt(this.lastAcceptedAt, this.intervalMs, now, this.state).ready;
  }

  private exit(error: unknown): void {
    if (this.stopped) return;
    this.stop();
    if (isAgentFailure(error)) {
      this.o.onExit({ exitCode: error.exitCode, failure: error });
      return;
    }
    this.o.counters.lastError = errorMessage(error);
    this.o.onExit({ exitCode: 1 });
  }

  private async start(): Promise<void> {
    const { config, disk, caPem } = this.o;
    this.client = new ControlPlaneClient({
      baseUrl: config.controlPlaneUrl,
      caPem,
      caFile: config.caFile,
      requestTimeoutMs: config.requestTimeoutMs,
      clock: systemClock,
    });
    if (disk.serial !== undefined && (!disk.keyPem || !disk.certPem)) {
      // identity.json without its key or certificate: lost (identity-load.ts). A token mounted
      // after the loss was first reported is a guided recovery's: what is left is moved aside and
      // the agent pairs once with it (recovery-token.ts, onIdentityLost at start).
      const earlier = disk.rejection?.serial === disk.serial ? disk.rejection : undefined;
      const mounted = this.o.token ? tokenFingerprint(disk.serial, this.o.token) : undefined;
      if (earlier && mounted && !earlier.tokensSeen.has(mounted)) {
        for (const field of ['serial', 'keyPem', 'certPem', 'pendingKeyPem', 'rejection'] as const)
          delete disk[field];
        await this.enroll();
        return;
      }
      throw this.reportLoss(
        disk.serial,
        'no such file: /data/identity/key.pem, /data/identity/cert.pem: this connector enrolled before (/data/identity/identity.json exists), so its identity is lost and the agent will not re-enroll',
      );
    }
    if (disk.keyPem && disk.certPem) {
      this.use(disk.keyPem, disk.certPem, undefined);
      this.beat();
      return;
    }
    await this.enroll();
  }

  /** IDENTITY_LOST, remembered with the fingerprint of the token mounted now (recovery-token.ts). */
  private reportLoss(serial: string, message: string): AgentFailure {
    const { disk, token } = this.o;
    const rejection =
      disk.rejection?.serial === serial ? disk.rejection : { serial, tokensSeen: new Set<string>() };
    if (token) rejection.tokensSeen.add(tokenFingerprint(serial, token));
    disk.rejection = rejection;
    return identityLostFailure(message);
  }

  private use(keyPem: string, certPem: string, receivedAt: Date | undefined): void {
    const facts = parseCertificateFacts(certPem);
    this.current = {
      keyPem,
      certPem,
      serial: facts.serial,
      notBefore: facts.notBefore,
      notAfter: facts.notAfter,
      receivedAt,
    };
    this.renewAfter = undefined;
    this.client?.setIdentity({ keyPem, certPem });
  }

  /** First boot (enrollment.ts): the key is kept before the token is spent; refusals fail closed. */
  private async enroll(): Promise<void> {
    const { config, disk, token, counters } = this.o;
    if (!token) throw tokenMissingFailure(config.tokenFile, config.dataDir);
    for (let attempt = 1; !this.stopped; attempt += 1) {
      try {
        const { answer, keyPem } = await this.o.slot(async () => {
          // Kept before the token is spent, and reused by a retry, as enrollment.ts does.
          const keyPem = disk.pendingKeyPem ?? (await generateKeyPairPem('ec-p256')).privateKeyPem;
          disk.pendingKeyPem = keyPem;
          const csrPem = createCsrPem(keyPem, config.connectorId);
          return {
            answer: await this.client?.enroll({ connectorId: config.connectorId, token, csrPem }),
            keyPem,
          };
        });
        if (!answer || this.stopped) return;
        disk.serial = parseCertificateFacts(answer.certificatePem).serial;
        disk.keyPem = keyPem;
        disk.certPem = answer.certificatePem;
        delete disk.pendingKeyPem;
        counters.enrolled += 1;
        this.use(keyPem, answer.certificatePem, new Date());
        if (!config.heartbeatIntervalMs) this.intervalMs = answer.heartbeatIntervalSeconds * 1000;
        this.beat();
        return;
      } catch (error) {
        if (this.stopped) return;
        const coded = asCodedError(error, 'INTERNAL_ERROR');
        counters.enrollFailures += 1;
        counters.lastError = errorMessage(coded);
        if (!coded.temporary)
          throw isTransportError(coded) ? enrollmentTrustFailure(coded) : enrollmentRejectedFailure(coded);
        const delay = backoffDelay(attempt, {
          baseMs: config.retryInitialMs,
          capMs: config.retryMaxMs,
          jitter: 'equal',
        });
        await new Promise((done) => {
          this.timer = setTimeout(done, delay);
        });
      }
    }
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.beat(), ms);
  }

  private beat(): void {
    const current = this.current;
    if (this.stopped || !current) return;
    const { disk, counters } = this.o;
    // Before each use the agent looks at its identity files (identity-in-use.ts): gone -> exit 10.
    if (disk.keyPem !== current.keyPem || disk.certPem !== current.certPem) {
      this.exit(
        this.reportLoss(
          disk.serial ?? current.serial,
          'no such file: /data/identity/key.pem, /data/identity/cert.pem: the identity this agent was running on was removed from disk while it ran, and the agent will not re-enroll',
        ),
      );
      return;
    }
    if (this.o.silent()) {
      counters.heartbeatsHeld += 1;
      this.schedule(this.intervalMs);
      return;
    }
    this.client
      ?.heartbeat({ paths: this.o.pathFailing() ? [FAILED_PATH] : [], agentVersion: 'bench-fleet' })
      .then(
        async (answer) => {
          if (this.stopped) return;
          counters.heartbeats += 1;
          this.lastAcceptedAt = new Date();
          this.state = answer.state;
          if (!this.o.config.heartbeatIntervalMs) this.intervalMs = answer.heartbeatIntervalSeconds * 1000;
          this.renewAfter = answer.renewAfter ? new Date(answer.renewAfter) : undefined;
          await this.renewIfDue();
          this.schedule(this.intervalMs);
        },
        (error: unknown) => {
          if (this.stopped) return;
          const coded = asCodedError(error, 'INTERNAL_ERROR');
          if (isCertificateRefusal(coded)) throw identityRejectedFailure(coded);
          counters.heartbeatFailures += 1;
          counters.lastError = errorMessage(coded);
          this.schedule(this.intervalMs);
        },
      )
      .catch((error: unknown) => this.exit(error));
  }

  /** Renewal (renewal.ts): when due by renewal-timing.ts, a CSR of the same key; the disk keeps it. */
  private async renewIfDue(): Promise<void> {
    const current = this.current;
    if (!current || !this.client) return;
    const due = renewalDueAt(current.notBefore, current.notAfter, this.o.config.renewAtFraction, {
      ...(current.receivedAt ? { receivedAt: current.receivedAt } : {}),
      ...(this.renewAfter ? { renewAfter: this.renewAfter } : {}),
    });
    if (Date.now() < due.getTime()) return;
    const { counters, disk, config } = this.o;
    try {
      const answer = await this.client.renew({ csrPem: createCsrPem(current.keyPem, config.connectorId) });
      if (this.stopped) return;
      // Saved where the key is, unless the identity was removed meanwhile (the next beat sees that).
      if (disk.keyPem === current.keyPem) {
        disk.certPem = answer.certificatePem;
        disk.serial = parseCertificateFacts(answer.certificatePem).serial;
      }
      this.use(current.keyPem, answer.certificatePem, new Date());
      counters.renewals += 1;
    } catch (error) {
      const coded = asCodedError(error, 'INTERNAL_ERROR');
      if (isCertificateRefusal(coded)) throw identityRejectedFailure(coded);
      counters.renewalFailures += 1;
      counters.lastError = errorMessage(coded);
    }
  }
}
