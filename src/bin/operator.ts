#!/usr/bin/env node
// `vaultpam-operator`: the Connector operator. Reads flags and environment, loads the kubeconfig
// (in-cluster ServiceAccount or KUBECONFIG), starts the operator, and stops it cleanly on SIGTERM
// (the lease is released so a standby takes over at once).
import { hostname } from 'node:os';
import { type FlagSpecs, flagError, helpText, parseFlags, wholeNumberFlag } from '../lib/cli.ts';
import { parseDurationField } from '../lib/duration.ts';
import { CodedError, errorMessage, isCodedError } from '../lib/errors.ts';
import { parseHostPort } from '../lib/host-port.ts';
import { createLogger, isLogLevel } from '../lib/logger.ts';
import { MAX_CONTROL_PLANE_URL_LENGTH } from '../operator/api/constants.ts';
import { defaultCaPem } from '../operator/control-plane/default-ca.ts';
import { startOperator } from '../operator/operator.ts';
import { DEFAULT_MAX_CONCURRENCY } from '../operator/runtime/adaptive-limit.ts';
import { loadKubeClient } from '../operator/runtime/kube-access.ts';
import type { KubeClient } from '../operator/runtime/kube-client.ts';
import { leaderIdentity } from '../operator/runtime/leader-election.ts';
import { metricsAuthNoneProblem } from '../operator/runtime/metrics-endpoint.ts';
import { stopOnSignalOrOrphaned } from './shutdown.ts';

const env = (flag: string) => `VAULTPAM_OPERATOR_${flag.toUpperCase().replaceAll('-', '_')}`;
const flags: FlagSpecs = {
  namespace: { env: env('namespace'), description: 'Watch one namespace; all namespaces when empty.' },
  'cluster-resource-namespace': {
    env: env('cluster-resource-namespace'),
    description:
      "Namespace of ClusterControlPlanes' credential Secrets and CA ConfigMaps (default: POD_NAMESPACE). Unused with --namespace.",
  },
  'control-plane-url': { env: env('control-plane-url'), description: 'Default control-plane URL (https).' },
  'control-plane-ca-file': {
    env: env('control-plane-ca-file'),
    description: "File with the control plane's CA bundle.",
  },
  'credential-secret': {
    env: env('credential-secret'),
    description: 'The admin credential Secret: <namespace>/<name>[/<key>] (key default "credential").',
  },
  'connector-image': {
    env: env('connector-image'),
    default: 'vaultpam/connector:0.1.0',
    description: 'Default image of connector pods.',
  },
  'leader-elect': {
    env: env('leader-elect'),
    default: 'true',
    description: 'Elect a leader on a Lease (true/false).',
  },
  'leader-election-namespace': {
    env: env('leader-election-namespace'),
    description: 'Namespace of the Lease (default: POD_NAMESPACE).',
  },
  'lease-name': {
    env: env('lease-name'),
    default: 'vaultpam-connector-operator',
    description: 'Name of the Lease.',
  },
  'leader-election-lease-duration': {
    env: env('leader-election-lease-duration'),
    default: '15s',
    description:
      'How long candidates wait for a Lease that is no longer renewed: a leader that died without releasing it is replaced after this.',
  },
  'leader-election-renew-deadline': {
    env: env('leader-election-renew-deadline'),
    default: '10s',
    description:
      'The leader stops acting once it could not renew the Lease for this long (less than the lease duration).',
  },
  'leader-election-retry-period': {
    env: env('leader-election-retry-period'),
    default: '2s',
    description: 'Time between Lease renewals and acquire attempts (less than the renew deadline).',
  },
  listen: {
    env: env('listen'),
    default: '0.0.0.0:8080',
    description: 'Address of /healthz and /readyz (plain HTTP, no authentication: kubelet probes them).',
  },
  'metrics-listen': {
    env: env('metrics-listen'),
    default: '0.0.0.0:8443',
    description:
      'Address of /metrics: HTTPS, and each request needs a bearer token the API server authenticates (TokenReview) and authorizes for get on /metrics (SubjectAccessReview).',
  },
  'metrics-auth': {
    env: env('metrics-auth'),
    default: 'kubernetes',
    description:
      "kubernetes: /metrics over HTTPS for authorized bearer tokens only. none: plain HTTP for anyone, for a local run on a loopback address only (it names every tenant's Connectors).",
  },
  'metrics-cert-dir': {
    env: env('metrics-cert-dir'),
    description:
      'Directory with tls.crt and tls.key for /metrics (e.g. a cert-manager Secret), re-read every minute; a self-signed certificate made at start when empty.',
  },
  concurrency: {
    env: env('concurrency'),
    default: String(DEFAULT_MAX_CONCURRENCY),
    description:
      'The most reconciles at once. The operator starts there, halves it when the API server answers 429 (API Priority and Fairness) and grows it back by one a second while it does not.',
  },
  resync: {
    env: env('resync'),
    default: '10m',
    description:
      'Look at every Connector again this long after its last pass, even without news, plus up to 10 % at random.',
  },
  'release-timeout': {
    env: env('release-timeout'),
    default: '5m',
    description:
      "How long a deleted Connector's finalizer retries releasing its control-plane record (from its deletionTimestamp) before it is removed anyway and a ReleaseAbandoned Event says what was left.",
  },
  'log-level': { env: 'LOG_LEVEL', default: 'info', description: 'fatal, error, warn, info, debug, trace.' },
};

/** A duration flag in milliseconds (src/lib/duration.ts), or INVALID_FLAGS naming it. */
function durationFlag(value: string | undefined, flag: string, { timer }: { timer: boolean }): number {
  const milliseconds = parseDurationField(value ?? '', `--${flag}`, { allowZero: false, timer });
  if (typeof milliseconds !== 'number') throw flagError(milliseconds.problem);
  return milliseconds;
}

/**
 * KUBECONFIG or ~/.kube/config when there is one, else the pod's ServiceAccount, with an error that
 * says which. The operator's own client serves them; a kubeconfig with an exec plugin, an
 * auth-provider or a proxy loads client-node for it (src/operator/runtime/kube-fallback.ts).
 */
async function loadKubernetesClient(): Promise<KubeClient> {
  try {
    return await loadKubeClient();
  } catch (error) {
    const where = process.env.KUBECONFIG ? `KUBECONFIG=${process.env.KUBECONFIG}` : 'the default kubeconfig';
    throw new CodedError(
      'KUBECONFIG_INVALID',
      `cannot load ${where}: ${errorMessage(error)}; point KUBECONFIG at a readable kubeconfig, or run in a pod with a ServiceAccount`,
    );
  }
}

async function main(): Promise<void> {
  const parsed = parseFlags(process.argv.slice(2), flags, process.env);
  if (parsed.help) {
    process.stdout.write(
      `${helpText('vaultpam-operator', 'Runs VaultPAM connectors on Kubernetes the way the connector runbook says.', flags)}\n`,
    );
    return;
  }
  const v = parsed.values;
  const level = v['log-level'] ?? 'info';
  if (!isLogLevel(level)) throw flagError(`--log-level: unknown level "${level}"`);
  const logger = createLogger({ name: 'operator', level });

  let controlPlane: Parameters<typeof startOperator>[0]['controlPlane'];
  if (v['control-plane-url']) {
    const [secretNamespace, secretName, secretKey] = (v['credential-secret'] ?? '').split('/');
    if (!secretNamespace || !secretName) {
      throw flagError('--credential-secret: expected <namespace>/<name>[/<key>] with --control-plane-url');
    }
    if (!v['control-plane-url'].startsWith('https://')) {
      throw flagError(`--control-plane-url: "${v['control-plane-url']}" must be an https:// URL`);
    }
    // Every Connector's ConfigMap carries it, and the room left there for the CA counts on this bound.
    if ([...v['control-plane-url']].length > MAX_CONTROL_PLANE_URL_LENGTH) {
      throw flagError(
        `--control-plane-url: at most ${MAX_CONTROL_PLANE_URL_LENGTH} characters, as a ControlPlane's spec.url`,
      );
    }
    if (/[?#]/.test(v['control-plane-url'])) {
      // The contract's paths go under the URL's path; a query or fragment would swallow them.
      throw flagError(
        `--control-plane-url: "${v['control-plane-url']}" must not carry a query or fragment (? or #)`,
      );
    }
    controlPlane = {
      url: v['control-plane-url'],
      // Read and judged here, with the other flags, before anything touches the cluster.
      ...(v['control-plane-ca-file']
        ? { caPem: await defaultCaPem({ caFile: v['control-plane-ca-file'] }) }
        : {}),
      credentialSecret: { namespace: secretNamespace, name: secretName, key: secretKey || 'credential' },
    };
  }
  const concurrency = wholeNumberFlag(v.concurrency, 'concurrency', 1);
  const leaderElect = v['leader-elect'] !== 'false';
  const leaseNamespace = v['leader-election-namespace'] ?? process.env.POD_NAMESPACE;
  if (leaderElect && !leaseNamespace) {
    throw flagError('--leader-election-namespace (or POD_NAMESPACE) is required with --leader-elect=true');
  }
  const listen = parseHostPort(v.listen ?? '0.0.0.0:8080', '--listen', { minPort: 0 });
  if ('problem' in listen) throw flagError(listen.problem);
  const metricsListen = parseHostPort(v['metrics-listen'] ?? '0.0.0.0:8443', '--metrics-listen', {
    minPort: 0,
  });
  if ('problem' in metricsListen) throw flagError(metricsListen.problem);
  const metricsAuth = v['metrics-auth'] ?? 'kubernetes';
  if (metricsAuth !== 'kubernetes' && metricsAuth !== 'none') {
    throw flagError(`--metrics-auth: "${metricsAuth}" is neither kubernetes nor none`);
  }
  if (metricsAuth === 'none' && v['metrics-cert-dir']) {
    throw flagError('--metrics-cert-dir: --metrics-auth=none serves plain HTTP, without a certificate');
  }
  // /metrics names every tenant's Connectors: unauthenticated, only for this host's own eyes.
  const noneProblem = metricsAuth === 'none' ? metricsAuthNoneProblem(metricsListen.host) : undefined;
  if (noneProblem !== undefined) throw flagError(noneProblem);
  const resyncMs = durationFlag(v.resync, 'resync', { timer: true });
  const releaseTimeoutMs = durationFlag(v['release-timeout'], 'release-timeout', { timer: false });
  const leaseDurationMs = durationFlag(
    v['leader-election-lease-duration'],
    'leader-election-lease-duration',
    { timer: false },
  );
  const renewDeadlineMs = durationFlag(
    v['leader-election-renew-deadline'],
    'leader-election-renew-deadline',
    { timer: true },
  );
  const retryPeriodMs = durationFlag(v['leader-election-retry-period'], 'leader-election-retry-period', {
    timer: true,
  });
  // The leader must stop acting before a candidate may take the Lease over.
  if (!(retryPeriodMs > 0 && renewDeadlineMs > retryPeriodMs && leaseDurationMs > renewDeadlineMs)) {
    throw flagError(
      `leader election needs 0 < --leader-election-retry-period < --leader-election-renew-deadline < --leader-election-lease-duration, got ${retryPeriodMs / 1000} s, ${renewDeadlineMs / 1000} s and ${leaseDurationMs / 1000} s`,
    );
  }
  // Every flag is checked before anything touches the cluster.
  const kube = await loadKubernetesClient();
  logger.info({ server: kube.server.origin, credentials: kube.description }, 'Kubernetes client loaded');
  const clusterResourceNamespace = v['cluster-resource-namespace'] || process.env.POD_NAMESPACE;
  const operator = await startOperator({
    kc: kube,
    logger,
    processMetrics: true,
    ...(v.namespace ? { namespace: v.namespace } : {}),
    ...(clusterResourceNamespace ? { clusterResourceNamespace } : {}),
    ...(controlPlane ? { controlPlane } : {}),
    connectorImage: v['connector-image'] ?? 'vaultpam/connector:0.1.0',
    concurrency,
    resyncMs,
    releaseTimeoutMs,
    listen,
    metricsEndpoint: {
      listen: metricsListen,
      auth: metricsAuth,
      ...(v['metrics-cert-dir'] ? { certDir: v['metrics-cert-dir'] } : {}),
    },
    ...(leaderElect && leaseNamespace
      ? {
          leaderElection: {
            namespace: leaseNamespace,
            leaseName: v['lease-name'] ?? 'vaultpam-connector-operator',
            identity: leaderIdentity(process.env.POD_NAME ?? hostname()),
            leaseDurationMs,
            renewDeadlineMs,
            retryPeriodMs,
          },
        }
      : {}),
  });
  logger.info(
    {
      listen: operator.address,
      metrics: operator.metricsEndpoint?.url,
      metricsAuth,
      namespace: v.namespace || 'all',
      leaderElection: leaderElect,
    },
    'operator started',
  );
  stopOnSignalOrOrphaned(async () => {
    logger.info('stopping');
    await operator.stop({ release: true });
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`vaultpam-operator: ${errorMessage(error)}\n`);
  process.exit(isCodedError(error, 'INVALID_FLAGS') ? 2 : 1);
});
