// A whole system for operator tests: the real local API server (one per test file), the Connector
// CRD, the operator's namespace, ServiceAccount and RBAC from manifests/, a real control plane over
// HTTPS with its admin credential in the operator's credential Secret, and operators started
// in-process as that ServiceAccount, so every API call they make is authorized by the shipped RBAC.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { installCrds, installOperatorAccess } from '../../dev/local-cluster/install.ts';
import type { AgentDependencies } from '../../src/agent/agent.ts';
import {
  createControlPlane,
  type StartedControlPlane,
  startControlPlane,
  usableAdminCredential,
} from '../../src/controlplane/server.ts';
import { backgroundClock, ShiftedClock } from '../../src/lib/clock.ts';
import { type Logger, silentLogger } from '../../src/lib/logger.ts';
import type { ControlPlaneResource, ControlPlaneSpec } from '../../src/operator/api/control-planes.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import { ControlPlaneAdminClient } from '../../src/operator/control-plane/admin-client.ts';
import { type OperatorOptions, type RunningOperator, startOperator } from '../../src/operator/operator.ts';
import { AGENT_CONTAINER_NAME } from '../../src/operator/reconcile/storage-posture.ts';
import { selfSignedCertificate } from './certificates.ts';
import type { ClusterContext } from './cluster.ts';
import { eventually } from './eventually.ts';
import { type Scraped, scrapeMetrics, serviceAccountToken } from './metrics-scrape.ts';
import { runAgentFromSecret, type SimulatedPod } from './simulated-pod.ts';

export const OPERATOR_NAMESPACE = 'vaultpam-system';
export const OPERATOR_SERVICE_ACCOUNT = 'vaultpam-connector-operator';
export const CREDENTIAL_SECRET = 'vaultpam-operator-credential';
export const LEASE_NAME = 'vaultpam-connector-operator';

export interface OperatorEnvironment {
  cluster: ClusterContext;
  /** The control plane now running (a new instance after startControlPlaneAgain()). */
  controlPlane: StartedControlPlane;
  admin: ControlPlaneAdminClient;
  clock: ShiftedClock;
  /** Kubeconfig of the operator's ServiceAccount (a real TokenRequest token). */
  operatorKubeConfig: KubeConfig;
  startOperator(overrides?: Partial<OperatorOptions>): Promise<RunningOperator>;
  /**
   * A token of the ServiceAccount monitoring/prometheus, bound to the ClusterRole
   * vaultpam-connector-operator-metrics-reader: what Prometheus scrapes the operator with.
   */
  metricsReaderToken(): Promise<string>;
  /** GET /metrics (or `path`) of an operator started here, as Prometheus does: HTTPS, its token. */
  scrapeMetrics(operator: RunningOperator, path?: string): Promise<Scraped>;
  /** Plays the pod of Connector `name`: the real agent with the token its Secret holds (if any). */
  runAgent(
    namespace: string,
    name: string,
    dataDir?: string,
    createClient?: AgentDependencies['createClient'],
  ): Promise<SimulatedPod>;
  /**
   * Stops the control plane as its process stops: it stops listening, ends long-polls, closes every
   * connection and writes its state; the port is closed, so callers get connection refused.
   */
  stopControlPlane(): Promise<void>;
  /** Starts it again on the same port and data directory (same CA, state, admin credential). */
  startControlPlaneAgain(): Promise<void>;
  stop(): Promise<void>;
}

export async function startOperatorEnvironment(
  cluster: ClusterContext,
  options: { heartbeatIntervalSeconds?: number; logger?: Logger } = {},
): Promise<OperatorEnvironment> {
  const { kc } = cluster;
  await installCrds(kc);
  await installOperatorAccess(kc);

  const dataDir = await mkdtemp(join(tmpdir(), 'vaultpam-cp-'));
  // Background timers, as the operator's own default: a stopped operator's late timer holds no test open.
  const clock = new ShiftedClock(0, backgroundClock);
  const controlPlaneOptions = {
    dataDir,
    host: '127.0.0.1',
    clock,
    heartbeatIntervalSeconds: options.heartbeatIntervalSeconds ?? 1,
    logger: options.logger ?? silentLogger(),
  };
  let controlPlane = await startControlPlane({ ...controlPlaneOptions, port: 0 });
  const controlPlanePort = Number(new URL(controlPlane.url).port);
  const admin = new ControlPlaneAdminClient({
    url: controlPlane.url,
    caPem: controlPlane.caPem,
    credential: usableAdminCredential(controlPlane),
  });
  const core = kc.makeApiClient(CoreV1Api);
  await core
    .createNamespacedSecret({
      namespace: OPERATOR_NAMESPACE,
      body: {
        metadata: { name: CREDENTIAL_SECRET },
        stringData: { credential: usableAdminCredential(controlPlane) },
      },
    })
    .catch((error: unknown) => {
      if ((error as { code?: number }).code !== 409) throw error;
    });
  const operatorKubeConfig = await cluster.cluster.serviceAccountKubeConfig(
    OPERATOR_NAMESPACE,
    OPERATOR_SERVICE_ACCOUNT,
  );
  const running: RunningOperator[] = [];
  let counter = 0;
  let readerToken: Promise<string> | undefined;
  const metricsReaderToken = () => {
    readerToken ??= serviceAccountToken(kc, 'monitoring', 'prometheus', { reader: true });
    return readerToken;
  };
  return {
    cluster,
    get controlPlane() {
      return controlPlane;
    },
    admin,
    clock,
    operatorKubeConfig,
    metricsReaderToken,
    async scrapeMetrics(operator, path) {
      const endpoint = operator.metricsEndpoint;
      if (!endpoint) throw new Error('the operator serves no /metrics');
      const token = endpoint.url.startsWith('https:') ? await metricsReaderToken() : undefined;
      return scrapeMetrics(endpoint, { ...(token ? { token } : {}), ...(path ? { path } : {}) });
    },
    async startOperator(overrides = {}) {
      counter += 1;
      const operator = await startOperator({
        kc: operatorKubeConfig,
        logger: options.logger ?? silentLogger(),
        clock,
        controlPlane: {
          url: controlPlane.url,
          caPem: controlPlane.caPem,
          credentialSecret: { namespace: OPERATOR_NAMESPACE, name: CREDENTIAL_SECRET, key: 'credential' },
        },
        clusterResourceNamespace: OPERATOR_NAMESPACE,
        connectorImage: 'vaultpam-connector:test',
        resyncMs: 60_000,
        backoff: { baseMs: 200, capMs: 2_000 },
        leaderElection: {
          namespace: OPERATOR_NAMESPACE,
          leaseName: LEASE_NAME,
          identity: `operator-${counter}`,
          leaseDurationMs: 3_000,
          renewDeadlineMs: 2_000,
          retryPeriodMs: 500,
        },
        listen: { host: '127.0.0.1', port: 0 },
        // As installed: HTTPS, a self-signed certificate, every scrape reviewed by the API server.
        metricsEndpoint: { listen: { host: '127.0.0.1', port: 0 } },
        ...overrides,
      });
      running.push(operator);
      return operator;
    },
    runAgent(namespace, name, dataDir, createClient) {
      return runAgentFromSecret({
        kc,
        namespace,
        secretName: `${name}-enrollment-token`,
        connectorId: `${namespace}.${name}`,
        controlPlaneUrl: controlPlane.url,
        caPem: controlPlane.caPem,
        ...(dataDir ? { dataDir } : {}),
        ...(createClient ? { createClient } : {}),
      });
    },
    async stopControlPlane() {
      await controlPlane.close();
    },
    async startControlPlaneAgain() {
      // The port was free a moment ago; another socket may take it meanwhile (EADDRINUSE): retry briefly.
      for (let attempt = 1; ; attempt += 1) {
        const next = await createControlPlane(controlPlaneOptions);
        try {
          const url = await next.listen({ host: controlPlaneOptions.host, port: controlPlanePort });
          controlPlane = Object.assign(next, { url });
          return;
        } catch (error) {
          await next.close();
          if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 20) throw error;
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
    },
    async stop() {
      for (const operator of running) await operator.stop().catch(() => {});
      admin.close();
      await controlPlane.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * What the operator program needs to run as the environment's operator, as a Deployment gives it:
 * its ServiceAccount kubeconfig, the control plane's CA and a serving certificate for /metrics (as a
 * cert-manager Secret would be mounted: tls.crt and tls.key) written into `dir`, and the flags that
 * name them (both listen addresses on free loopback ports). `env` goes to the process; `metrics` is
 * the certificate its /metrics serves, for a client to trust.
 */
export async function operatorProgramSetup(
  environment: OperatorEnvironment,
  dir: string,
): Promise<{ args: string[]; env: { KUBECONFIG: string }; metrics: { certificatePem: string } }> {
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, environment.operatorKubeConfig.exportConfig(), { mode: 0o600 });
  const caFile = join(dir, 'control-plane-ca.pem');
  await writeFile(caFile, environment.controlPlane.caPem);
  const certDir = join(dir, 'metrics-tls');
  await mkdir(certDir, { recursive: true });
  const serving = await selfSignedCertificate({ commonName: 'operator metrics', sanIps: ['127.0.0.1'] });
  await writeFile(join(certDir, 'tls.crt'), serving.certPem);
  await writeFile(join(certDir, 'tls.key'), serving.keyPem, { mode: 0o600 });
  return {
    args: [
      `--control-plane-url=${environment.controlPlane.url}`,
      `--control-plane-ca-file=${caFile}`,
      `--credential-secret=${OPERATOR_NAMESPACE}/${CREDENTIAL_SECRET}`,
      `--leader-election-namespace=${OPERATOR_NAMESPACE}`,
      '--listen=127.0.0.1:0',
      '--metrics-listen=127.0.0.1:0',
      `--metrics-cert-dir=${certDir}`,
    ],
    env: { KUBECONFIG: kubeconfig },
    metrics: { certificatePem: serving.certPem },
  };
}

/** Connector API helpers for tests. */
export function connectors(kc: KubeConfig) {
  const api = kc.makeApiClient(CustomObjectsApi);
  const ref = (namespace: string) => ({
    group: 'vaultpam.io',
    version: 'v1alpha1',
    namespace,
    plural: 'connectors',
  });
  return {
    create: (
      namespace: string,
      body: Omit<Connector, 'apiVersion' | 'kind'> & Partial<Pick<Connector, 'apiVersion' | 'kind'>>,
    ) =>
      api.createNamespacedCustomObject({
        ...ref(namespace),
        body: { apiVersion: 'vaultpam.io/v1alpha1', kind: 'Connector', ...body },
      }) as Promise<Connector>,
    get: (namespace: string, name: string) =>
      api.getNamespacedCustomObject({ ...ref(namespace), name }) as Promise<Connector>,
    delete: (namespace: string, name: string) =>
      api.deleteNamespacedCustomObject({ ...ref(namespace), name }),
    patchSpec: (namespace: string, name: string, body: object) =>
      api.patchNamespacedCustomObject(
        { ...ref(namespace), name, body },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
  };
}

/**
 * Creates Connector `name` under recovery policy Automatic and plays its pod with the real agent
 * (on `dataDir` if given) until it is Online with bootstrap retired: a healthy paired connector, where
 * the tests of what must not start a recovery begin. The caller stops the pod.
 */
export async function pairOnlineUnderAutomatic(
  env: OperatorEnvironment,
  namespace: string,
  name: string,
  dataDir?: string,
): Promise<SimulatedPod> {
  const api = connectors(env.cluster.kc);
  await api.create(namespace, {
    metadata: { name, namespace },
    spec: {
      connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] },
      recovery: { policy: 'Automatic' },
    },
  });
  await eventually(async () => (await api.get(namespace, name)).status?.enrollment?.tokenSecretName, {
    description: 'a token Secret',
    timeoutMs: 30_000,
  });
  const pod = await env.runAgent(namespace, name, dataDir);
  await eventually(
    async () => {
      const c = await api.get(namespace, name);
      return c.status?.phase === 'Online' && c.status.enrollment?.retired ? c : undefined;
    },
    { description: 'Online and retired', timeoutMs: 60_000 },
  );
  return pod;
}

/** ControlPlane (namespace given) and ClusterControlPlane (namespace undefined) helpers for tests. */
export function controlPlaneResources(kc: KubeConfig) {
  const api = kc.makeApiClient(CustomObjectsApi);
  const ref = (namespace: string | undefined) => ({
    group: 'vaultpam.io',
    version: 'v1alpha1',
    plural: namespace === undefined ? 'clustercontrolplanes' : 'controlplanes',
  });
  const kind = (namespace: string | undefined) =>
    namespace === undefined ? 'ClusterControlPlane' : 'ControlPlane';
  return {
    create: (namespace: string | undefined, name: string, spec: ControlPlaneSpec) => {
      const body = { apiVersion: 'vaultpam.io/v1alpha1', kind: kind(namespace), metadata: { name }, spec };
      return (
        namespace === undefined
          ? api.createClusterCustomObject({ ...ref(namespace), body })
          : api.createNamespacedCustomObject({ ...ref(namespace), namespace, body })
      ) as Promise<ControlPlaneResource>;
    },
    get: (namespace: string | undefined, name: string) =>
      (namespace === undefined
        ? api.getClusterCustomObject({ ...ref(namespace), name })
        : api.getNamespacedCustomObject({
            ...ref(namespace),
            namespace,
            name,
          })) as Promise<ControlPlaneResource>,
    /** A merge patch (spec changes, or an annotation that asks for a check now). */
    patch: (namespace: string | undefined, name: string, body: object) => {
      const headers = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
      return namespace === undefined
        ? api.patchClusterCustomObject({ ...ref(namespace), name, body }, headers)
        : api.patchNamespacedCustomObject({ ...ref(namespace), namespace, name, body }, headers);
    },
    delete: (namespace: string | undefined, name: string) =>
      namespace === undefined
        ? api.deleteClusterCustomObject({ ...ref(namespace), name })
        : api.deleteNamespacedCustomObject({ ...ref(namespace), namespace, name }),
  };
}

/**
 * A ControlPlane `name` in `namespace` for the environment's control plane, with its credential
 * Secret `<name>-admin` (annotated for its URL) and CA ConfigMap `<name>-ca` holding `caPem` (by
 * default the control plane's own CA); a Secret or ConfigMap that exists already is kept.
 */
export async function createControlPlaneFor(
  environment: OperatorEnvironment,
  namespace: string,
  name: string,
  options: { caPem?: string } = {},
): Promise<void> {
  const { kc } = environment.cluster;
  const core = kc.makeApiClient(CoreV1Api);
  const unlessExists = (error: { code?: number }) => {
    if (error.code !== 409) throw error;
  };
  const cp = environment.controlPlane;
  await core
    .createNamespacedSecret({
      namespace,
      body: {
        metadata: { name: `${name}-admin`, annotations: { 'vaultpam.io/control-plane-url': cp.url } },
        stringData: { credential: usableAdminCredential(cp) },
      },
    })
    .catch(unlessExists);
  await core
    .createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: `${name}-ca` }, data: { 'ca.crt': options.caPem ?? cp.caPem } },
    })
    .catch(unlessExists);
  await controlPlaneResources(kc).create(namespace, name, {
    url: cp.url,
    caConfigMapRef: { name: `${name}-ca` },
    credentialSecretRef: { name: `${name}-admin` },
  });
}

/** The Ready condition of a control-plane resource, if written. */
export function readyOf(object: ControlPlaneResource) {
  return object.status?.conditions?.find((c) => c.type === 'Ready');
}

/**
 * The kubelet's part for pod `pod` of the agent: its container's last state is the agent's exit, with
 * `exitCode` and its termination message, and it waits in CrashLoopBackOff. The pod is waited for
 * (the StatefulSet controller creates it).
 */
export async function recordAgentExit(
  kc: KubeConfig,
  namespace: string,
  pod: string,
  exit: { exitCode: number; message: string; restartCount: number },
): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const current = await eventually(() => core.readNamespacedPod({ namespace, name: pod }), {
    description: `the StatefulSet controller creates pod ${pod}`,
    timeoutMs: 30_000,
  });
  const finishedAt = new Date();
  current.status = {
    ...current.status,
    phase: 'Running',
    containerStatuses: [
      {
        name: AGENT_CONTAINER_NAME,
        image: 'vaultpam-connector:test',
        imageID: '',
        ready: false,
        restartCount: exit.restartCount,
        state: { waiting: { reason: 'CrashLoopBackOff' } },
        lastState: {
          terminated: {
            exitCode: exit.exitCode,
            reason: 'Error',
            message: exit.message,
            startedAt: finishedAt,
            finishedAt,
          },
        },
      },
    ],
  };
  await core.replaceNamespacedPodStatus({ namespace, name: pod, body: current });
}
