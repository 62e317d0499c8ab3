// The metrics server's certificate: tls.crt and tls.key from a directory (--metrics-cert-dir, e.g. a
// cert-manager Certificate's Secret mounted there), re-read while the process runs so a renewed
// certificate is served without a restart; or, without a directory, a self-signed one the operator
// makes at start (src/lib/pki.ts) and renews itself before it expires. A self-signed certificate
// encrypts the scrape and keeps the bearer token off the wire, but proves nothing about the server:
// a scraper either skips verification (the shipped ServiceMonitor's default) or pins the certificate
// of a cert-manager Secret (docs/monitoring.md).
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { backgroundClock, type Clock, type TimerHandle } from '../../lib/clock.ts';
import { CodedError, errorMessage } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { generateKeyPairPem, issueCertificatePem, keyMatchesCertificate } from '../../lib/pki.ts';

export interface ServingCertificate {
  certPem: string;
  keyPem: string;
}

/** How long a self-signed certificate is valid, and when (before its end) a new one replaces it. */
export const SELF_SIGNED_LIFETIME_MS = 365 * 24 * 60 * 60 * 1000;
export const SELF_SIGNED_RENEW_BEFORE_MS = 30 * 24 * 60 * 60 * 1000;
/** How often --metrics-cert-dir is read again (cert-manager renews well before the end). */
export const CERT_DIR_RELOAD_MS = 60_000;

/** The names the self-signed certificate carries: the metrics Service's, localhost and loopback. */
export function metricsDnsNames(namespace: string | undefined, extra: string[] = []): string[] {
  const service = 'vaultpam-connector-operator-metrics';
  const inNamespace = namespace
    ? [`${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`]
    : [];
  return [...new Set([service, ...inNamespace, 'localhost', ...extra])];
}

export async function selfSignedServingCertificate(
  dnsNames: string[],
  now = new Date(),
): Promise<ServingCertificate> {
  const pair = await generateKeyPairPem('ec-p256');
  const certPem = issueCertificatePem({
    issuerKeyPem: pair.privateKeyPem,
    subjectPublicKey: pair.publicKeyPem,
    subject: [{ shortName: 'CN', value: 'vaultpam-connector-operator-metrics' }],
    // Backdated a little: a scraper whose clock is behind still accepts it.
    notBefore: new Date(now.getTime() - 5 * 60_000),
    notAfter: new Date(now.getTime() + SELF_SIGNED_LIFETIME_MS),
    sanDnsNames: dnsNames,
    sanIps: ['127.0.0.1', '::1'],
    extendedKeyUsage: ['serverAuth'],
  });
  return { certPem, keyPem: pair.privateKeyPem };
}

/** tls.crt and tls.key of `dir`, checked to belong together. */
export async function readCertDir(dir: string): Promise<ServingCertificate> {
  let certPem: string;
  let keyPem: string;
  try {
    [certPem, keyPem] = await Promise.all([
      readFile(join(dir, 'tls.crt'), 'utf8'),
      readFile(join(dir, 'tls.key'), 'utf8'),
    ]);
  } catch (error) {
    throw new CodedError(
      'METRICS_CERTIFICATE_INVALID',
      `--metrics-cert-dir ${dir}: cannot read tls.crt and tls.key: ${errorMessage(error)}`,
    );
  }
  if (!keyMatchesCertificate(keyPem, certPem)) {
    throw new CodedError(
      'METRICS_CERTIFICATE_INVALID',
      `--metrics-cert-dir ${dir}: tls.key is not the key of tls.crt (or either is no PEM)`,
    );
  }
  return { certPem, keyPem };
}

/** After a failed renewal of the self-signed certificate, the next try waits this long. */
export const SELF_SIGNED_RETRY_MS = 60 * 60 * 1000;

/**
 * Keeps `apply` serving a current certificate: re-reads `certDir` every CERT_DIR_RELOAD_MS (a
 * change is applied, a broken one logged and the previous kept), or renews the self-signed one
 * SELF_SIGNED_RENEW_BEFORE_MS before its end (a failure is logged and tried again after
 * SELF_SIGNED_RETRY_MS). Returns the stop function. Time and timers are `clock`'s (backgroundClock:
 * they do not hold the process open; a wait longer than a timer can hold wakes early and waits again).
 */
export function keepCertificateCurrent(options: {
  certDir: string | undefined;
  dnsNames: string[];
  current: ServingCertificate;
  apply(certificate: ServingCertificate): void;
  logger: Logger;
  clock?: Clock;
}): () => void {
  const clock = options.clock ?? backgroundClock;
  let current = options.current;
  let timer: TimerHandle | undefined;
  let stopped = false;
  /** Runs `step` after `ms`, then again after the wait it returns, until stopped. */
  const schedule = (ms: number, step: () => Promise<number>) => {
    if (stopped) return;
    timer = clock.setTimeout(() => {
      void step().then((next) => schedule(next, step));
    }, ms);
  };
  if (options.certDir) {
    const dir = options.certDir;
    schedule(CERT_DIR_RELOAD_MS, async () => {
      try {
        const next = await readCertDir(dir);
        if (next.certPem === current.certPem && next.keyPem === current.keyPem) return CERT_DIR_RELOAD_MS;
        options.apply(next);
        current = next;
        options.logger.info({ certDir: dir }, 'metrics server: serving the renewed certificate');
      } catch (error) {
        options.logger.warn({ err: errorMessage(error) }, 'metrics server: keeping the previous certificate');
      }
      return CERT_DIR_RELOAD_MS;
    });
  } else {
    /** Until the current certificate is due for renewal (0: now). */
    const untilDue = () =>
      Math.max(
        0,
        new Date(new X509Certificate(current.certPem).validTo).getTime() -
          SELF_SIGNED_RENEW_BEFORE_MS -
          clock.now().getTime(),
      );
    schedule(untilDue(), async () => {
      // A real clock may wake early (a timer holds at most LONGEST_TIMER_MS): not due yet, wait on.
      if (untilDue() > 0) return untilDue();
      try {
        const next = await selfSignedServingCertificate(options.dnsNames, clock.now());
        if (stopped) return 0;
        options.apply(next);
        current = next;
        options.logger.info('metrics server: renewed its self-signed certificate');
        return untilDue();
      } catch (error) {
        options.logger.warn(
          { err: errorMessage(error) },
          'metrics server: could not renew its self-signed certificate; serving the current one, trying again in an hour',
        );
        return SELF_SIGNED_RETRY_MS;
      }
    });
  }
  return () => {
    stopped = true;
    clock.clearTimeout(timer);
  };
}
