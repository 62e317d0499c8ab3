// The local pod runner: a minimal kubelet (and scheduler) for connector pods on a machine without
// a container runtime. It registers a Node, binds the pods that match its label selector to it,
// and runs their containers as local processes with real volumes, Secrets, probes, restarts and
// status, so the operator and the end-to-end tests see pods behave as on a real cluster.
// See docs/local-pod-runner.md for what it implements and the one liberty it takes (paths and
// ports in arguments and environment are mapped to the host).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CoordinationV1Api,
  CoreV1Api,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  makeInformer,
  type ObjectCache,
  type V1ConfigMap,
  type V1PersistentVolume,
  type V1PersistentVolumeClaim,
  type V1Pod,
  type V1Secret,
  VersionApi,
} from '@kubernetes/client-node';
import { type Clock, systemClock } from '../../src/lib/clock.ts';
import { CodedError, errorMessage } from '../../src/lib/errors.ts';
import type { Logger } from '../../src/lib/logger.ts';
import type { EventType } from './container-runtime.ts';
import { type ResolveCommand, resolveConnectorCommand } from './container-spec.ts';
import { type CrashBackoffPolicy, KUBELET_CRASH_BACKOFF } from './crash-backoff.ts';
import { LocalProvisioner, PROVISIONED_BY_LABEL } from './local-provisioner.ts';
import { DEFAULT_NODE_NAME, NodeAgent } from './node-agent.ts';
import { PodWorker } from './pod-worker.ts';
import { podDirectory } from './volumes.ts';

export const DEFAULT_POD_SELECTOR = 'app.kubernetes.io/name=vaultpam-connector';
/** A container's default PATH, as container runtimes set it. */
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface PodRunnerOptions {
  kubeConfig: KubeConfig;
  /** Claims, pod volumes and container logs live under this directory. */
  rootDir: string;
  logger: Logger;
  /** Node this runner registers and binds pods to (default vaultpam-local-node). */
  nodeName?: string;
  /** Only pods in this namespace; all namespaces when omitted. */
  namespace?: string;
  /** Pods this runner takes (default app.kubernetes.io/name=vaultpam-connector). */
  labelSelector?: string;
  /** Maps a container to a local command (default: vaultpam-connector images run src/bin/connector.ts). */
  resolveCommand?: ResolveCommand;
  /** Provision and bind a hostPath volume for a Pending claim of a pod this runner runs (default true). */
  provisionClaims?: boolean;
  /** Restart backoff (default the kubelet's: 10 s doubling to 5 min). */
  crashBackoff?: CrashBackoffPolicy;
  /** Replaces every probe's periodSeconds (initial delays are kept), to make tests fast. */
  probePeriodMs?: number;
  /** How often every pod is synced again (retries, status refresh) and released volumes reclaimed. */
  resyncPeriodMs?: number;
  /** Upper bound of the grace period processes get when the runner itself stops (default 10 s). */
  stopGraceMs?: number;
  /** Environment every container process starts from (default: only a container-like PATH). */
  baseEnv?: Record<string, string>;
  /** Node Lease renewal period (default 10 s). */
  leaseRenewMs?: number;
  clock?: Clock;
}

/** What a test or the demo can learn about a running pod. */
export interface LocalPodDescription {
  uid: string;
  namespace: string;
  name: string;
  directory: string;
  /** Volume name -> host directory. */
  volumes: Record<string, string>;
  /** Container port -> loopback port. */
  ports: Record<string, number>;
  pids: number[];
  logFiles: Record<string, string>;
}

type Cached<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

function scopedPath(namespace: string | undefined, resource: string): string {
  return namespace ? `/api/v1/namespaces/${namespace}/${resource}` : `/api/v1/${resource}`;
}

export class PodRunner {
  private readonly options: PodRunnerOptions;
  private readonly core: CoreV1Api;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly nodeName: string;
  private readonly workers = new Map<string, PodWorker>();
  /** namespace/name -> every pod instance seen under that name (UID, container names), oldest first. */
  private readonly history = new Map<string, Array<{ uid: string; containers: string[] }>>();
  private readonly informers: Array<Cached<KubernetesObject>> = [];
  private readonly provisioner: LocalProvisioner | undefined;
  private pods: Cached<V1Pod> | undefined;
  private secrets: Cached<V1Secret> | undefined;
  private configMaps: Cached<V1ConfigMap> | undefined;
  private claims: Cached<V1PersistentVolumeClaim> | undefined;
  private node: NodeAgent | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private started = false;
  private stopped = false;

  constructor(options: PodRunnerOptions) {
    this.options = options;
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger;
    this.nodeName = options.nodeName ?? DEFAULT_NODE_NAME;
    this.provisioner =
      options.provisionClaims === false
        ? undefined
        : new LocalProvisioner({ core: this.core, root: options.rootDir, logger: options.logger });
  }

  /** Registers the node, fills the caches, then starts taking pods. */
  async start(): Promise<void> {
    if (this.started) throw new CodedError('POD_RUNNER_STARTED', 'the pod runner was already started');
    this.started = true;
    const { kubeConfig, namespace } = this.options;
    const version = await kubeConfig.makeApiClient(VersionApi).getCode();
    this.node = new NodeAgent({
      core: this.core,
      coordination: kubeConfig.makeApiClient(CoordinationV1Api),
      nodeName: this.nodeName,
      clock: this.clock,
      logger: this.logger,
      version: version.gitVersion,
      ...(this.options.leaseRenewMs ? { leaseRenewMs: this.options.leaseRenewMs } : {}),
    });
    await this.node.start();

    const list = <T extends KubernetesObject>(
      all: () => Promise<KubernetesListObject<T>>,
      one: (ns: string) => Promise<KubernetesListObject<T>>,
    ) => (namespace ? () => one(namespace) : all);
    this.secrets = this.watch<V1Secret>(
      scopedPath(namespace, 'secrets'),
      list(
        () => this.core.listSecretForAllNamespaces(),
        (ns) => this.core.listNamespacedSecret({ namespace: ns }),
      ),
    );
    this.configMaps = this.watch<V1ConfigMap>(
      scopedPath(namespace, 'configmaps'),
      list(
        () => this.core.listConfigMapForAllNamespaces(),
        (ns) => this.core.listNamespacedConfigMap({ namespace: ns }),
      ),
    );
    this.claims = this.watch<V1PersistentVolumeClaim>(
      scopedPath(namespace, 'persistentvolumeclaims'),
      list(
        () => this.core.listPersistentVolumeClaimForAllNamespaces(),
        (ns) => this.core.listNamespacedPersistentVolumeClaim({ namespace: ns }),
      ),
    );
    for (const informer of [this.secrets, this.configMaps, this.claims] as Array<Cached<KubernetesObject>>) {
      informer.on('change', (object) => this.syncNamespace(object.metadata?.namespace));
    }
    if (this.provisioner) {
      const selector = `${PROVISIONED_BY_LABEL}=local-pod-runner`;
      const volumes = this.watch<V1PersistentVolume>(
        '/api/v1/persistentvolumes',
        () => this.core.listPersistentVolume({ labelSelector: selector }),
        selector,
      );
      volumes.on('update', (volume) => {
        if (volume.status?.phase === 'Released') this.reclaim();
      });
    }
    const selector = this.options.labelSelector ?? DEFAULT_POD_SELECTOR;
    this.pods = this.watch<V1Pod>(
      scopedPath(namespace, 'pods'),
      list(
        () => this.core.listPodForAllNamespaces({ labelSelector: selector }),
        (ns) => this.core.listNamespacedPod({ namespace: ns, labelSelector: selector }),
      ),
      selector,
    );
    this.pods.on('change', () => this.reconcilePods());
    // Caches first, pods last: a pod's first sync finds its Secrets and claims already known.
    for (const informer of this.informers) await informer.start();
    this.reconcilePods();
    this.resyncTimer = setInterval(() => {
      for (const worker of this.workers.values()) worker.requestSync();
      this.reclaim();
    }, this.options.resyncPeriodMs ?? 10_000);
    this.logger.info(
      { node: this.nodeName, selector, namespace: namespace ?? '(all)', root: this.options.rootDir },
      'local pod runner started',
    );
  }

  /** Stops watching and heartbeating and stops every container process; pods are left in the API. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.node?.stop();
    await Promise.all(this.informers.map((informer) => informer.stop()));
    const cap = this.options.stopGraceMs ?? 10_000;
    await Promise.all([...this.workers.values()].map((worker) => worker.shutdown(cap)));
    this.logger.info({ node: this.nodeName }, 'local pod runner stopped');
  }

  /** The current instance of a pod by name, or undefined when no such pod runs here. */
  describePod(namespace: string, name: string): LocalPodDescription | undefined {
    const uid = this.history.get(`${namespace}/${name}`)?.at(-1)?.uid;
    const worker = uid ? this.workers.get(uid) : undefined;
    return worker?.describe();
  }

  /** Process ids of every container process this runner has running. */
  pids(): number[] {
    return [...this.workers.values()].flatMap((worker) => worker.describe().pids);
  }

  /**
   * The log of a pod's container (the first container when not named). With `allInstances`, the
   * logs of every pod that had this name (a StatefulSet's recreated pods), oldest first.
   */
  async getLogs(
    namespace: string,
    name: string,
    options: { container?: string; allInstances?: boolean } = {},
  ): Promise<string> {
    const instances = this.history.get(`${namespace}/${name}`) ?? [];
    const latest = instances.at(-1);
    if (!latest) {
      throw new CodedError('POD_NOT_FOUND', `the local pod runner never ran a pod ${namespace}/${name}`, {
        httpStatus: 404,
      });
    }
    const container = options.container ?? latest.containers[0];
    if (!container) {
      throw new CodedError(
        'CONTAINER_UNKNOWN',
        `pod ${namespace}/${name} has no containers; name the container`,
      );
    }
    const chosen = options.allInstances ? instances : [latest];
    // A container that never started has no log file yet: its log is empty.
    const texts = await Promise.all(
      chosen.map(({ uid }) =>
        readFile(join(podDirectory(this.options.rootDir, uid), `${container}.log`), 'utf8').catch(
          (error: NodeJS.ErrnoException) => {
            if (error.code === 'ENOENT') return '';
            throw error;
          },
        ),
      ),
    );
    return texts.join('');
  }

  private watch<T extends KubernetesObject>(
    path: string,
    listFn: () => Promise<KubernetesListObject<T>>,
    labelSelector?: string,
  ): Cached<T> {
    const informer = makeInformer<T>(this.options.kubeConfig, path, listFn, labelSelector);
    informer.on('error', (error: unknown) => {
      if (this.stopped) return;
      this.logger.warn({ path, err: errorMessage(error) }, 'watch failed; restarting it in 1 s');
      setTimeout(() => {
        if (!this.stopped) {
          informer
            .start()
            .catch((restartError: unknown) =>
              this.logger.warn({ path, err: errorMessage(restartError) }, 'restarting the watch failed'),
            );
        }
      }, 1_000).unref();
    });
    this.informers.push(informer as unknown as Cached<KubernetesObject>);
    return informer;
  }

  private podsSources() {
    const get =
      <T extends KubernetesObject>(cache: () => Cached<T> | undefined) =>
      (namespace: string, name: string) =>
        cache()?.get(name, namespace);
    return {
      secret: get(() => this.secrets),
      configMap: get(() => this.configMaps),
      claim: get(() => this.claims),
    };
  }

  /** Makes the set of workers match the pods the cache holds for this node (or for no node yet). */
  private reconcilePods(): void {
    if (this.stopped || !this.pods) return;
    const current = new Map<string, V1Pod>();
    for (const pod of this.pods.list()) {
      const nodeName = pod.spec?.nodeName;
      if (nodeName && nodeName !== this.nodeName) continue;
      const uid = pod.metadata?.uid;
      if (uid) current.set(uid, pod);
    }
    for (const [uid, worker] of this.workers) if (!current.has(uid)) worker.gone();
    for (const [uid, pod] of current) {
      let worker = this.workers.get(uid);
      if (!worker) {
        worker = this.newWorker(pod);
        this.workers.set(uid, worker);
        const key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
        const containers = (pod.spec?.containers ?? []).map((container) => container.name);
        this.history.set(key, [...(this.history.get(key) ?? []), { uid, containers }]);
      }
      worker.update(pod);
    }
  }

  private newWorker(pod: V1Pod): PodWorker {
    return new PodWorker(
      {
        core: this.core,
        nodeName: this.nodeName,
        root: this.options.rootDir,
        clock: this.clock,
        logger: this.logger,
        sources: this.podsSources(),
        provision: this.provisioner
          ? (claim) => this.provisioner?.provision(claim) ?? Promise.resolve()
          : undefined,
        resolveCommand: this.options.resolveCommand ?? resolveConnectorCommand,
        backoff: this.options.crashBackoff ?? KUBELET_CRASH_BACKOFF,
        probePeriodMs: this.options.probePeriodMs,
        baseEnv: this.options.baseEnv ?? { PATH: DEFAULT_PATH },
        recordEvent: (target, type, reason, message) => this.recordEvent(target, type, reason, message),
        retired: (uid) => this.workers.delete(uid),
      },
      pod,
    );
  }

  private syncNamespace(namespace: string | undefined): void {
    for (const worker of this.workers.values()) {
      if (worker.namespace === namespace) worker.requestSync();
    }
  }

  private reclaim(): void {
    if (!this.provisioner || this.stopped) return;
    this.provisioner
      .reclaimReleased()
      .catch((error: unknown) =>
        this.logger.warn({ err: errorMessage(error) }, 'reclaiming released local volumes failed'),
      );
  }

  private recordEvent(pod: V1Pod, type: EventType, reason: string, message: string): void {
    const now = this.clock.now();
    const namespace = pod.metadata?.namespace ?? 'default';
    this.core
      .createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${pod.metadata?.name}.` },
          involvedObject: {
            apiVersion: 'v1',
            kind: 'Pod',
            name: pod.metadata?.name ?? '',
            namespace,
            uid: pod.metadata?.uid ?? '',
          },
          type,
          reason,
          message,
          source: { component: 'kubelet', host: this.nodeName },
          reportingComponent: 'kubelet',
          reportingInstance: this.nodeName,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      })
      .catch((error: unknown) =>
        this.logger.warn(
          { pod: `${namespace}/${pod.metadata?.name}`, reason, err: errorMessage(error) },
          'recording an event failed',
        ),
      );
  }
}
