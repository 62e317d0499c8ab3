// A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager
// built from the pinned Go modules, with TLS, RBAC, a service-account signing key and the
// garbage-collector and StatefulSet controllers running. Used by the cluster tests and by the
// local development run. There is no kubelet: Pods are created but never run; tests that need a
// running pod write its status as a kubelet would.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { backoffDelay } from '../../src/lib/backoff.ts';
import { ensureClusterBinaries } from './binaries.ts';
import { type ClusterPki, createClusterPki, writeClusterPki } from './certificates.ts';
import { kubeConfigFor, writeKubeconfig } from './kubeconfig.ts';
import { freePort } from './ports.ts';
import { ManagedProcess } from './processes.ts';

export interface LocalClusterOptions {
  /** Where state, logs and kubeconfigs go; a fresh temporary directory when omitted. */
  workDir?: string;
  /** Remove workDir on stop (default: true when workDir was created here). */
  removeOnStop?: boolean;
  /** How long to wait for each component to become ready. */
  readyTimeoutMs?: number;
  onProgress?: (line: string) => void;
  /**
   * Extra kube-controller-manager flags, after the defaults (a later flag wins), e.g. a benchmark's
   * `--kube-api-qps`/`--kube-api-burst`.
   */
  controllerManagerArgs?: readonly string[];
  /**
   * Extra kube-apiserver flags, after the defaults (a later flag wins), e.g. a benchmark's
   * `--profiling=true` to take the API server's CPU profile.
   */
  apiServerArgs?: readonly string[];
}

export interface LocalCluster {
  readonly server: string;
  /**
   * etcd's client URL (plain HTTP on loopback), for tests that must act on etcd itself: compacting
   * its history is how a watch from an old resourceVersion meets a real 410 Gone.
   */
  readonly etcdUrl: string;
  readonly workDir: string;
  readonly caPem: string;
  /** Admin kubeconfig file (system:masters). */
  readonly kubeconfigPath: string;
  /** A client-node KubeConfig for the admin user. */
  adminKubeConfig(): KubeConfig;
  /**
   * A KubeConfig that authenticates as a ServiceAccount with a real token from the TokenRequest API,
   * so RBAC is exercised exactly as for a pod running as that ServiceAccount.
   */
  serviceAccountKubeConfig(namespace: string, name: string, expirationSeconds?: number): Promise<KubeConfig>;
  /** Log file of each component, for diagnosing a failed test. */
  readonly logs: Record<'etcd' | 'kube-apiserver' | 'kube-controller-manager', string>;
  /** Process ids of the running components (their watchdogs), for leak checks. */
  pids(): number[];
  /**
   * The process group of each running component: its watchdog leads it, and the component runs in
   * it (for what a component costs, as a benchmark's CPU breakdown reads it from /proc).
   */
  processGroups(): Partial<Record<'etcd' | 'kube-apiserver' | 'kube-controller-manager', number>>;
  /**
   * Stops the components in dependency order: kube-controller-manager, kube-apiserver, then etcd
   * (an API server whose etcd is gone hangs in its shutdown). Each gets SIGTERM, then SIGKILL to
   * its process group after `graceMs` (default 5 s), so a stop takes at most about 3 x (graceMs +
   * 2 s). `onStopping` hears the name of each component as its stop begins.
   */
  stop(options?: ClusterStopOptions): Promise<void>;
  /**
   * Stops kube-apiserver and etcd (in that order), waits `downMs`, and starts them again on the
   * same ports and the same etcd data, as a control-plane node reboot does; kube-controller-manager
   * stays up and reconnects. Resolves once the API server is ready again. For tests of clients that
   * must survive it (watches, leader election).
   */
  restartApiServer(options?: { downMs?: number; graceMs?: number }): Promise<void>;
}

export interface ClusterStopOptions {
  graceMs?: number;
  onStopping?: (component: string) => void;
}

/** The order a cluster's components stop in: what depends on a component stops before it. */
const STOP_ORDER = ['kube-controller-manager', 'kube-apiserver', 'etcd'];

const SERVICE_CLUSTER_IP_RANGE = '10.96.0.0/16';
const SERVICE_CLUSTER_IP = '10.96.0.1';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** A component's readiness is polled often at first (most start in well under a second), then every 500 ms. */
const READINESS_POLL = { baseMs: 50, capMs: 500 };

async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  process: ManagedProcess,
) {
  const deadline = Date.now() + timeoutMs;
  let attempt = 0;
  lastAnswer = '';
  while (Date.now() < deadline) {
    if (process.exit) {
      const log = await readFile(process.logFile, 'utf8').catch(() => '');
      throw new Error(
        `${what}: ${process.name} exited (${JSON.stringify(process.exit)}); log tail:\n${log.slice(-3000)}`,
      );
    }
    if (await probe().catch(() => false)) return;
    attempt += 1;
    await pause(backoffDelay(attempt, READINESS_POLL));
  }
  const log = await readFile(process.logFile, 'utf8').catch(() => '');
  throw new Error(
    `${what} did not happen within ${timeoutMs} ms; last answer: ${lastAnswer || 'none'}; ${process.name} log tail:\n${log.slice(-3000)}`,
  );
}

/** What the last readiness probe heard (status and the start of the body), for a failure message. */
let lastAnswer = '';

function httpGetOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function httpsGetOk(
  url: string,
  tls: { ca?: string; cert?: string; key?: string; insecure?: boolean },
): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      url,
      { timeout: 2_000, ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: !tls.insecure },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => {
          body = (body + chunk.toString()).slice(0, 2_000);
        });
        res.on('end', () => {
          lastAnswer = `${res.statusCode}: ${body}`;
          resolve(res.statusCode === 200);
        });
      },
    );
    req.on('error', (error) => {
      lastAnswer = error.message;
      resolve(false);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 2 s')));
    req.end();
  });
}

export async function startLocalCluster(options: LocalClusterOptions = {}): Promise<LocalCluster> {
  const progress = options.onProgress ?? (() => {});
  const readyTimeoutMs = options.readyTimeoutMs ?? 90_000;
  const binDir = await ensureClusterBinaries(progress);
  const createdHere = options.workDir === undefined;
  const workDir = options.workDir ?? (await mkdtemp(join(tmpdir(), 'vaultpam-cluster-')));
  const removeOnStop = options.removeOnStop ?? createdHere;
  const pkiDir = join(workDir, 'pki');
  await mkdir(pkiDir, { recursive: true });
  const pki: ClusterPki = createClusterPki({ serviceClusterIp: SERVICE_CLUSTER_IP });
  const files = await writeClusterPki(pkiDir, pki);
  const [etcdPort, etcdPeerPort, apiPort, kcmPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const server = `https://127.0.0.1:${apiPort}`;
  const logs = {
    etcd: join(workDir, 'etcd.log'),
    'kube-apiserver': join(workDir, 'kube-apiserver.log'),
    'kube-controller-manager': join(workDir, 'kube-controller-manager.log'),
  };
  const started: ManagedProcess[] = [];
  let stopping: Promise<void> | undefined;
  const stopAll = (stopOptions: ClusterStopOptions = {}) => {
    stopping ??= (async () => {
      const rank = (child: ManagedProcess) => {
        const index = STOP_ORDER.indexOf(child.name);
        return index < 0 ? -1 : index;
      };
      const ordered = [...started].sort((a, b) => rank(a) - rank(b));
      for (const child of ordered) {
        stopOptions.onStopping?.(child.name);
        await child.stop(stopOptions.graceMs ?? 5_000);
      }
      started.length = 0;
      if (removeOnStop) await rm(workDir, { recursive: true, force: true });
    })();
    return stopping;
  };

  try {
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const startEtcd = () =>
      new ManagedProcess({
        name: 'etcd',
        command: join(binDir, 'etcd'),
        logFile: logs.etcd,
        args: [
          '--name=local',
          `--data-dir=${join(workDir, 'etcd')}`,
          `--listen-client-urls=${etcdUrl}`,
          `--advertise-client-urls=${etcdUrl}`,
          `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
          `--initial-cluster=local=http://127.0.0.1:${etcdPeerPort}`,
          // A throwaway test store: durability across power loss buys nothing here.
          '--unsafe-no-fsync',
          '--log-level=warn',
        ],
      });
    const etcdReady = (etcd: ManagedProcess) =>
      waitFor('etcd health', () => httpGetOk(`${etcdUrl}/health`), readyTimeoutMs, etcd);
    const etcd = startEtcd();
    started.push(etcd);
    await etcdReady(etcd);
    progress(`etcd ready on ${etcdUrl}`);

    const startApiServer = () =>
      new ManagedProcess({
        name: 'kube-apiserver',
        command: join(binDir, 'kube-apiserver'),
        logFile: logs['kube-apiserver'],
        args: [
          `--etcd-servers=${etcdUrl}`,
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          `--secure-port=${apiPort}`,
          `--tls-cert-file=${files.apiServerCert}`,
          `--tls-private-key-file=${files.apiServerKey}`,
          `--client-ca-file=${files.caCert}`,
          '--authorization-mode=RBAC',
          `--service-account-issuer=https://kubernetes.default.svc.cluster.local`,
          `--service-account-key-file=${files.serviceAccountPublicKey}`,
          `--service-account-signing-key-file=${files.serviceAccountKey}`,
          `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
          `--cert-dir=${join(workDir, 'apiserver-certs')}`,
          '--allow-privileged=true',
          // The kubernetes Service endpoint cannot point at loopback; nothing here needs it.
          '--endpoint-reconciler-type=none',
          '--profiling=false',
          '--v=1',
          ...(options.apiServerArgs ?? []),
        ],
      });
    const apiServerReady = (apiServer: ManagedProcess) =>
      waitFor(
        'kube-apiserver /readyz',
        () =>
          httpsGetOk(`${server}/readyz?verbose`, {
            ca: pki.ca.certPem,
            cert: pki.admin.certPem,
            key: pki.admin.keyPem,
          }),
        readyTimeoutMs,
        apiServer,
      );
    const apiServer = startApiServer();
    started.push(apiServer);
    await apiServerReady(apiServer);
    progress(`kube-apiserver ready on ${server}`);

    const kubeconfigPath = join(workDir, 'admin.kubeconfig');
    await writeKubeconfig(kubeconfigPath, {
      server,
      caPem: pki.ca.certPem,
      user: { kind: 'certificate', certPem: pki.admin.certPem, keyPem: pki.admin.keyPem },
    });
    const controllerManagerKubeconfig = join(workDir, 'controller-manager.kubeconfig');
    await writeKubeconfig(controllerManagerKubeconfig, {
      server,
      caPem: pki.ca.certPem,
      user: {
        kind: 'certificate',
        certPem: pki.controllerManager.certPem,
        keyPem: pki.controllerManager.keyPem,
      },
    });

    const controllerManager = new ManagedProcess({
      name: 'kube-controller-manager',
      command: join(binDir, 'kube-controller-manager'),
      logFile: logs['kube-controller-manager'],
      args: [
        `--kubeconfig=${controllerManagerKubeconfig}`,
        `--authentication-kubeconfig=${controllerManagerKubeconfig}`,
        `--authorization-kubeconfig=${controllerManagerKubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${kcmPort}`,
        `--cert-dir=${join(workDir, 'controller-manager-certs')}`,
        '--leader-elect=false',
        `--service-account-private-key-file=${files.serviceAccountKey}`,
        `--root-ca-file=${files.caCert}`,
        `--cluster-signing-cert-file=${files.caCert}`,
        `--cluster-signing-key-file=${files.caKey}`,
        `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
        // Each controller acts as its own ServiceAccount, as in a production control plane.
        '--use-service-account-credentials=true',
        // Fast garbage collection and StatefulSet sync keep the tests short.
        '--concurrent-gc-syncs=5',
        '--v=1',
        ...(options.controllerManagerArgs ?? []),
      ],
    });
    started.push(controllerManager);
    await waitFor(
      'kube-controller-manager /healthz',
      () => httpsGetOk(`https://127.0.0.1:${kcmPort}/healthz`, { insecure: true }),
      readyTimeoutMs,
      controllerManager,
    );
    progress(`kube-controller-manager ready (healthz on 127.0.0.1:${kcmPort})`);

    const user = { kind: 'certificate', certPem: pki.admin.certPem, keyPem: pki.admin.keyPem } as const;
    return {
      server,
      etcdUrl,
      workDir,
      caPem: pki.ca.certPem,
      kubeconfigPath,
      logs,
      pids: () => started.flatMap((child) => (child.pid === undefined || child.exit ? [] : [child.pid])),
      processGroups: () =>
        Object.fromEntries(
          started.flatMap((child) =>
            child.pid === undefined || child.exit ? [] : [[child.name, child.pid]],
          ),
        ),
      adminKubeConfig: () => kubeConfigFor({ server, caPem: pki.ca.certPem, user }),
      async serviceAccountKubeConfig(namespace, name, expirationSeconds = 3600) {
        const core = kubeConfigFor({ server, caPem: pki.ca.certPem, user }).makeApiClient(CoreV1Api);
        const tokenRequest = await core.createNamespacedServiceAccountToken({
          namespace,
          name,
          body: { spec: { audiences: [], expirationSeconds } },
        });
        const token = tokenRequest.status?.token;
        if (!token) throw new Error(`the TokenRequest for ${namespace}/${name} returned no token`);
        return kubeConfigFor({
          server,
          caPem: pki.ca.certPem,
          user: { kind: 'token', token },
          name: `${namespace}-${name}`,
        });
      },
      stop: stopAll,
      async restartApiServer(restartOptions = {}) {
        if (stopping) throw new Error('the cluster is stopping');
        for (const name of ['kube-apiserver', 'etcd']) {
          const running = started.find((child) => child.name === name);
          if (!running) continue;
          await running.stop(restartOptions.graceMs ?? 5_000);
          started.splice(started.indexOf(running), 1);
        }
        if (restartOptions.downMs) await pause(restartOptions.downMs);
        const etcdAgain = startEtcd();
        started.push(etcdAgain);
        await etcdReady(etcdAgain);
        const apiServerAgain = startApiServer();
        started.push(apiServerAgain);
        await apiServerReady(apiServerAgain);
        progress(`kube-apiserver and etcd restarted on ${server}`);
      },
    };
  } catch (error) {
    await stopAll().catch(() => {});
    throw error;
  }
}
