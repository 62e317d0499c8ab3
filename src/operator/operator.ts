// The operator assembled: informers for Connectors, for the ControlPlane and ClusterControlPlane
// resources they name, and for what it owns (by label; Secrets are not among them: the operator
// neither lists nor watches Secrets), a per-key work queue, the control-plane registry, connections
// and their change streams, the reconciler, leader election and the health/metrics server. Built
// from arguments only (src/bin/operator.ts reads the environment), so tests start real operators
// in-process against a real API server. How many reconciles run at once adapts to the API server's
// answers: every part talks through one client whose observer lowers the limit on a 429 and raises
// it while answers are served (runtime/adaptive-limit.ts).
import type { Server } from 'node:http';
import type {
  KubernetesObject,
  V1ConfigMap,
  V1PersistentVolumeClaim,
  V1Pod,
  V1StatefulSet,
} from '@kubernetes/client-node';
import { backgroundClock, type Clock } from '../lib/clock.ts';
import { CodedError } from '../lib/errors.ts';
import { listenOn } from '../lib/host-port.ts';
import type { Logger } from '../lib/logger.ts';
import { AdoptionWatches } from './adoption-watches.ts';
import { LABEL_VALUES, LABELS } from './api/constants.ts';
import type { ControlPlaneResource } from './api/control-planes.ts';
import type { Connector, ConnectorPhase } from './api/types.ts';
import { defaultConnectorId } from './api/types.ts';
import { byConnectorLabel, InformerClusterReader } from './cluster-reader.ts';
import { ConnectorIdIndex } from './connector-id-index.ts';
import { ControlPlaneCaWatches } from './control-plane/ca-watches.ts';
import { type ControlPlaneConnection, ControlPlaneConnections } from './control-plane/connections.ts';
import { defaultCaPem } from './control-plane/default-ca.ts';
import { ControlPlaneRegistry } from './control-plane/registry.ts';
import { type ControlPlaneId, controlPlaneKeyOf } from './control-plane/status.ts';
import { claimAsCached } from './reconcile/claim-cache.ts';
import { podAsCached } from './reconcile/pod-cache.ts';
import { ConnectorReconciler, DEFAULT_PERIODIC_LOOK_MS, onlyOwnFieldsChanged } from './reconciler.ts';
import { AdaptiveLimit, DEFAULT_MAX_CONCURRENCY } from './runtime/adaptive-limit.ts';
import { KubeWriter } from './runtime/apply.ts';
import { CredentialSource } from './runtime/credential.ts';
import { EventRecorder } from './runtime/events.ts';
import { Informer } from './runtime/informers.ts';
import { type KubeAccess, kubeClientOf } from './runtime/kube-access.ts';
import { LeaderElector } from './runtime/leader-election.ts';
import { createOperatorMetrics, type OperatorMetrics } from './runtime/metrics.ts';
import { type MetricsEndpointOptions, startMetricsEndpoint } from './runtime/metrics-endpoint.ts';
import { OwnVersions } from './runtime/own-versions.ts';
import { isUnchangedInCache, unlessOwnCreation } from './runtime/owned-events.ts';
import { RESOURCE_TYPES } from './runtime/resources.ts';
import { type BoundedServer, createRuntimeServer } from './runtime/server.ts';
import { StringPool } from './runtime/string-pool.ts';
import { objectKey, WorkQueue } from './runtime/work-queue.ts';

export interface OperatorOptions {
  /** Export the process and Node metrics too (createOperatorMetrics); the CLI does. */
  processMetrics?: boolean;
  /**
   * The operator's Kubernetes client (src/bin/operator.ts loads it), or a client-node KubeConfig to
   * build it from (kube-access.ts).
   */
  kc: KubeAccess;
  logger: Logger;
  clock?: Clock;
  /** Watch one namespace; all when omitted. */
  namespace?: string;
  /**
   * Where ClusterControlPlanes keep their credential Secret and CA ConfigMap: the operator's own
   * namespace (cert-manager's --cluster-resource-namespace). Without it, or with `namespace` set (a
   * namespaced install reads nothing cluster-wide), ClusterControlPlanes are not used.
   */
  clusterResourceNamespace?: string;
  /** The operator's default control plane. */
  controlPlane?: {
    url: string;
    caPem?: string;
    caFile?: string;
    credentialSecret: { namespace: string; name: string; key: string };
  };
  connectorImage: string;
  /**
   * The most reconciles at once (`--concurrency`): the limit starts here, halves when the API server
   * answers 429 and grows back while it does not. Default DEFAULT_MAX_CONCURRENCY.
   */
  concurrency?: number;
  resyncMs?: number;
  /** Leader election; omitted: this replica acts alone. */
  leaderElection?: {
    namespace: string;
    leaseName: string;
    identity: string;
    leaseDurationMs?: number;
    renewDeadlineMs?: number;
    retryPeriodMs?: number;
  };
  /** The probe listener (/healthz, /readyz; plain HTTP); omitted: none. */
  listen?: { host: string; port: number };
  /** The /metrics listener (server.ts); omitted: none. */
  metricsEndpoint?: MetricsEndpointOptions;
  backoff?: { baseMs?: number; capMs?: number };
  /**
   * How long a Connector's finalizer retries releasing its control-plane record, counted from its
   * deletionTimestamp, before removing itself anyway (a ReleaseAbandoned Event, metric and warn log
   * say what was left). Default 5 minutes.
   */
  releaseTimeoutMs?: number;
}

export type { MetricsEndpointOptions } from './runtime/metrics-endpoint.ts';

export interface RunningOperator {
  readonly metrics: OperatorMetrics;
  /** Reconciles allowed at once now, and at most (`concurrency`). */
  readonly concurrencyLimit: { readonly current: number; readonly max: number };
  /** The address /healthz and /readyz listen on. */
  readonly address: { host: string; port: number } | undefined;
  /**
   * Where /metrics is served: its URL (https:// with auth, http:// without) and the certificate it
   * serves now (with auth), which a client that made no CA of its own may pin.
   */
  readonly metricsEndpoint: { url: string; certificatePem?: string } | undefined;
  isLeader(): boolean;
  /** Waits until the informers have synced. */
  ready(): Promise<void>;
  /** Stops acting at once; with release, hands the lease to a successor immediately. */
  stop(options?: { release?: boolean }): Promise<void>;
}

const ownedSelector = `${LABELS.managedBy}=${LABEL_VALUES.managedBy}`;

export async function startOperator(options: OperatorOptions): Promise<RunningOperator> {
  const { logger } = options;
  const resyncPeriodMs = options.resyncMs ?? DEFAULT_PERIODIC_LOOK_MS;
  // 0 would run every Connector again the moment its pass ends, for ever.
  if (!(resyncPeriodMs > 0) || !Number.isFinite(resyncPeriodMs)) {
    throw new CodedError(
      'INVALID_ARGUMENT',
      `resyncMs must be a number of milliseconds above 0, got ${resyncPeriodMs}`,
    );
  }
  // Before anything is built or started: a default CA no connector can use stops the start here.
  const caPem = options.controlPlane ? await defaultCaPem(options.controlPlane) : '';
  const clock = options.clock ?? backgroundClock;
  const metrics = createOperatorMetrics({ processMetrics: options.processMetrics === true });
  // The reconciles at once. The limit lives as long as the process, across leadership terms: what
  // the API server said before a term still holds in the next.
  const limit = new AdaptiveLimit({ max: options.concurrency ?? DEFAULT_MAX_CONCURRENCY, clock });
  limit.onChange((current, previous) => {
    const fields = { concurrencyLimit: current, previous, max: limit.max };
    if (current < previous) logger.info(fields, 'the API server answered 429: fewer reconciles at once');
    else logger.debug(fields, 'no 429 for a while: more reconciles at once');
  });
  metrics.setConcurrencyLimitSource(() => limit.current);
  // One client, so every informer, writer and the elector share its connections, and every answer
  // any of them gets, a lease renewal's or an informer's list's as much as a reconcile's, reaches the
  // limit: APF counts the operator's requests together, whoever in the process sent them.
  const kc = kubeClientOf(options.kc).withObserver({
    throttled: (request, retryAfterMs) => {
      metrics.countThrottled(request);
      metrics.countAnswered(request, 429);
      limit.throttled(retryAfterMs);
    },
    served: (request, status) => {
      metrics.countAnswered(request, status);
      limit.served();
    },
  });
  const identity = options.leaderElection?.identity ?? 'vaultpam-connector-operator';
  const ns = options.namespace ? { namespace: options.namespace } : {};

  const keyOf = (c: Connector) => objectKey(c.metadata.namespace ?? '', c.metadata.name ?? '');
  // One pool for the strings of every cached Connector and owned object (string-pool.ts): the
  // same names, paths and messages recur in each of them, and across kinds.
  const strings = new StringPool();
  // No informer resync for Connectors: each is looked at again on its own timer, spread
  // (reconciler.ts, periodicLookMs). A resync delivers every cached Connector at once: at 10,000,
  // 10,000 passes in a few seconds every period, and their next looks together again after it.
  const connectors = new Informer<Connector>({
    kc,
    logger,
    metrics,
    strings,
    type: RESOURCE_TYPES.connector,
    ...ns,
  });
  const owned = {
    statefulSets: new Informer<V1StatefulSet>({
      kc,
      logger,
      metrics,
      strings,
      type: RESOURCE_TYPES.statefulSet,
      labelSelector: ownedSelector,
      ...ns,
    }),
    configMaps: new Informer<V1ConfigMap>({
      kc,
      logger,
      metrics,
      strings,
      type: RESOURCE_TYPES.configMap,
      labelSelector: ownedSelector,
      ...ns,
    }),
    pods: new Informer<V1Pod>({
      kc,
      logger,
      metrics,
      strings,
      index: byConnectorLabel,
      // Only the fields a pass reads (pod-cache.ts): most of a pod is not the operator's business.
      transform: podAsCached,
      type: RESOURCE_TYPES.pod,
      labelSelector: `${LABELS.name}=${LABEL_VALUES.name}`,
      ...ns,
    }),
    claims: new Informer<V1PersistentVolumeClaim>({
      kc,
      logger,
      metrics,
      strings,
      index: byConnectorLabel,
      // Only the fields a pass reads (claim-cache.ts), so binding's other writes wake nobody.
      transform: claimAsCached,
      type: RESOURCE_TYPES.persistentVolumeClaim,
      labelSelector: ownedSelector,
      ...ns,
    }),
  };

  // The control planes Connectors may name. They are few (one per team or cluster), so both kinds
  // are cached whole; ClusterControlPlanes only where the operator may read cluster-wide.
  const clusterResources = options.namespace === undefined ? options.clusterResourceNamespace : undefined;
  const controlPlaneInformers = {
    namespaced: new Informer<ControlPlaneResource>({
      kc,
      logger,
      metrics,
      type: RESOURCE_TYPES.controlPlane,
      resyncPeriodMs,
      ...ns,
    }),
    cluster:
      clusterResources === undefined
        ? undefined
        : new Informer<ControlPlaneResource>({
            kc,
            logger,
            metrics,
            type: RESOURCE_TYPES.clusterControlPlane,
            resyncPeriodMs,
          }),
  };

  // Which Connectors a control-plane connector id belongs to, kept current from the Connector informer.
  const connectorIds = new ConnectorIdIndex();
  const connectorIdOf = (c: Connector) =>
    c.status?.connectorId ??
    c.spec?.connector?.id ??
    defaultConnectorId(c.metadata.namespace ?? '', c.metadata.name ?? '');

  let queue: WorkQueue | undefined;
  const enqueue = (key: string) => queue?.add(key);
  const connections = new ControlPlaneConnections({
    logger,
    // A record changed in the control plane (paired, online, offline, ...): news the status must
    // show soon, so the Connector runs before the keys that informer events and resyncs queued. The
    // echo of the operator's own call (the record it registered or minted for, which the pass that
    // called already has) is no news: it queues like an informer event, so a thousand first passes
    // are not held back behind each one's echo. A (re)list reports every record at once and is no
    // news either: it queues like a resync.
    onChange: (_connection, connectorId, cause) => {
      for (const key of connectorIds.keysOf(connectorId))
        queue?.add(key, cause === 'change' ? 'urgent' : 'normal');
    },
  });

  let credential: CredentialSource | undefined;
  let defaultConnection: ControlPlaneConnection | undefined;
  if (options.controlPlane) {
    const cp = options.controlPlane;
    credential = new CredentialSource({
      kc,
      logger,
      metrics,
      namespace: cp.credentialSecret.namespace,
      name: cp.credentialSecret.name,
      key: cp.credentialSecret.key,
      onChange: () => {
        // A new credential: every Connector on the default control plane should be looked at again.
        for (const key of connectorIds.keys()) enqueue(key);
      },
    });
    defaultConnection = connections.registerDefault({
      url: cp.url,
      caPem,
      credential: () => credential?.current(),
    });
  }

  const adoption = new AdoptionWatches({ kc, logger, metrics, onChange: (key) => enqueue(key) });
  // The kinds the operator both writes and watches and creates: their watch events may be its own
  // writes' echoes. Claims are not among them: the StatefulSet controller creates them.
  const ownVersions = new OwnVersions([
    RESOURCE_TYPES.connector.kind,
    RESOURCE_TYPES.configMap.kind,
    RESOURCE_TYPES.statefulSet.kind,
  ]);
  const writer = new KubeWriter({ kc, logger, metrics, ownVersions });
  const reader = new InformerClusterReader(kc, owned);
  // The watches start only once the registry below checks a resource, so it exists by then.
  const caWatches = new ControlPlaneCaWatches({
    kc,
    logger,
    metrics,
    onChange: (key) => controlPlanes.recheck(key),
  });
  const controlPlanes = new ControlPlaneRegistry({
    logger: logger.child({ component: 'control-planes' }),
    caWatch: caWatches,
    clock,
    writer,
    reader,
    connections,
    get: (id: ControlPlaneId) =>
      id.kind === 'ControlPlane'
        ? controlPlaneInformers.namespaced.get(id.namespace ?? '', id.name)
        : controlPlaneInformers.cluster?.get('', id.name),
    list: () => [
      ...controlPlaneInformers.namespaced.list(),
      ...(controlPlaneInformers.cluster?.list() ?? []),
    ],
    // Control planes are few and change rarely: a scan of the cached Connectors is cheap enough.
    wake: (key) => {
      for (const c of connectors.list()) if (controlPlaneKeyOf(c) === key) enqueue(keyOf(c));
    },
    ...(clusterResources !== undefined
      ? { clusterResourceNamespace: clusterResources }
      : {
          clusterResourcesDisabledBecause: options.namespace
            ? `this operator watches only namespace ${options.namespace} and reads nothing cluster-wide`
            : 'the operator has no --cluster-resource-namespace to read their Secrets from',
        }),
  });
  for (const informer of [controlPlaneInformers.namespaced, controlPlaneInformers.cluster]) {
    informer?.addHandlers({
      onAdd: (cp) => controlPlanes.changed(cp),
      onUpdate: (cp) => controlPlanes.changed(cp),
      onDelete: (cp) => controlPlanes.deleted(cp),
    });
  }
  const recorder = new EventRecorder({ kc, logger, identity, metrics, clock });
  const reconciler = new ConnectorReconciler({
    clock,
    logger,
    reader,
    controlPlanes,
    defaultConnection,
    defaultImage: options.connectorImage,
    writer,
    recorder,
    metrics,
    getConnector: (namespace, name) => connectors.get(namespace, name),
    adoption,
    periodicLookMs: resyncPeriodMs,
    ...(options.releaseTimeoutMs !== undefined ? { releaseTimeoutMs: options.releaseTimeoutMs } : {}),
    async scale(kind, namespace, name, replicas) {
      metrics.countWrite(kind, 'patch');
      const type = kind === 'StatefulSet' ? RESOURCE_TYPES.statefulSet : RESOURCE_TYPES.deployment;
      await kc.patch(
        type,
        { namespace, name },
        { spec: { replicas } },
        { patch: 'merge', subresource: 'scale' },
      );
    },
  });

  connectors.addHandlers({
    onAdd: (c) => {
      connectorIds.set(keyOf(c), connectorIdOf(c));
      enqueue(keyOf(c));
    },
    onUpdate: (c, previous) => {
      connectorIds.set(keyOf(c), connectorIdOf(c));
      const version = c.metadata.resourceVersion;
      // The echo of the operator's own write (its status, its finalizer) brings nothing the writing
      // pass did not know; a redelivery of the same version (a relist's) is looked at.
      if (version !== previous.metadata.resourceVersion && onlyOwnFieldsChanged(previous, c)) {
        ownVersions.judge(
          RESOURCE_TYPES.connector.kind,
          c.metadata.namespace,
          c.metadata.name,
          version,
          () => enqueue(keyOf(c)),
          () => reconciler.ownWriteSeen(keyOf(c), version ?? ''),
        );
        return;
      }
      enqueue(keyOf(c));
    },
    onDelete: (c) => {
      connectorIds.delete(keyOf(c));
      ownVersions.forget(c.kind ?? '', c.metadata.namespace, c.metadata.name);
      enqueue(keyOf(c));
    },
  });
  // An owned object's event wakes the Connector named in its label, unless it brings nothing new
  // (owned-events.ts): the operator's own creation of it, or a change to fields the cache drops.
  const wakeOwner = (object: KubernetesObject) => {
    const name = object.metadata?.labels?.[LABELS.connector];
    if (name && object.metadata?.namespace) enqueue(objectKey(object.metadata.namespace, name));
  };
  for (const informer of Object.values(owned)) {
    (informer as Informer<KubernetesObject>).addHandlers({
      onAdd: (object) => unlessOwnCreation(ownVersions, object, () => wakeOwner(object)),
      onUpdate: (object, previous) => {
        if (isUnchangedInCache(object, previous)) return;
        // An update is looked at, the operator's own (a drift repaired, a config changed) too; judging
        // it lets go of the version its write left, which would otherwise wait for the object's deletion.
        const { metadata } = object;
        const wake = () => wakeOwner(object);
        ownVersions.judge(
          object.kind ?? '',
          metadata?.namespace,
          metadata?.name,
          metadata?.resourceVersion,
          wake,
          wake,
        );
      },
      onDelete: (object) => {
        ownVersions.forget(object.kind ?? '', object.metadata?.namespace, object.metadata?.name);
        wakeOwner(object);
      },
    });
  }
  metrics.setConnectorPhaseSource(() => {
    const counts = new Map<ConnectorPhase, number>();
    for (const c of connectors.list()) {
      const phase = c.status?.phase;
      if (phase) counts.set(phase, (counts.get(phase) ?? 0) + 1);
    }
    return counts;
  });
  metrics.setConnectorSource(() => connectors.list());

  const informers = [
    connectors,
    ...Object.values(owned),
    controlPlaneInformers.namespaced,
    ...(controlPlaneInformers.cluster ? [controlPlaneInformers.cluster] : []),
  ];
  for (const informer of informers) informer.start();
  credential?.start();

  // The leader's work: process the queue and follow the control planes. Standbys keep warm caches.
  // `term`: aborted when this replica stops leading; a pass still running then writes nothing more.
  const lead = (term?: AbortSignal) => {
    const workQueue = new WorkQueue({
      logger,
      concurrency: limit,
      ...(options.backoff ? { backoff: options.backoff } : {}),
      periodicLookMs: () => reconciler.periodicLookMs(),
      handler: async (key) => {
        const started = performance.now();
        try {
          const result = await reconciler.reconcile(key, term);
          metrics.observeReconcile(
            result.requeueAfterMs !== undefined ? 'requeue' : 'success',
            (performance.now() - started) / 1000,
          );
          return result;
        } catch (error) {
          metrics.observeReconcile(
            'error',
            (performance.now() - started) / 1000,
            (error as { code?: string }).code ?? 'UNKNOWN',
          );
          throw error;
        }
      },
    });
    queue = workQueue;
    metrics.setWorkQueueSource(() => workQueue.stats());
    connections.start();
    controlPlanes.start();
    for (const c of connectors.list()) enqueue(keyOf(c));
    return workQueue;
  };
  const stopLeading = async () => {
    const current = queue;
    queue = undefined;
    controlPlanes.stop();
    connections.stop();
    // A new leader sets the watches up again as it reconciles adopting Connectors.
    adoption.stop();
    await current?.shutdown({ drain: false });
  };

  let elector: LeaderElector | undefined;
  let stopping = false;
  if (options.leaderElection) {
    const le = options.leaderElection;
    elector = new LeaderElector({
      kc,
      logger,
      metrics,
      clock,
      namespace: le.namespace,
      name: le.leaseName,
      identity: le.identity,
      ...(le.leaseDurationMs ? { leaseDurationMs: le.leaseDurationMs } : {}),
      ...(le.renewDeadlineMs ? { renewDeadlineMs: le.renewDeadlineMs } : {}),
      ...(le.retryPeriodMs ? { retryPeriodMs: le.retryPeriodMs } : {}),
      onStartedLeading: async (signal) => {
        await Promise.all(informers.map((i) => i.waitForSync(signal)));
        if (signal.aborted) return;
        logger.info('leading: reconciling Connectors');
        lead(signal);
        await new Promise<void>((resolve) =>
          signal.addEventListener('abort', () => resolve(), { once: true }),
        );
        await stopLeading();
      },
      onStoppedLeading: () =>
        stopping
          ? logger.info('stopped leading: shutting down')
          : logger.warn('leadership lost: stopped acting'),
    });
    metrics.setLeaderSource(() => elector?.isLeader() ?? false);
    elector.start();
  } else {
    metrics.setLeaderSource(() => true);
    void Promise.all(informers.map((i) => i.waitForSync())).then(
      () => lead(),
      (error) => logger.error({ err: (error as Error).message }, 'informers did not sync'),
    );
  }

  let probes: BoundedServer<Server> | undefined;
  let address: RunningOperator['address'];
  if (options.listen) {
    probes = createRuntimeServer({
      logger,
      health: {
        informers: () => [...informers.map((i) => i.status()), ...(credential ? [credential.status()] : [])],
        ...(elector ? { isLeader: () => elector?.isLeader() ?? false } : {}),
      },
    });
    address = await listenOn(probes.server, options.listen);
  }
  // The reviews of /metrics' callers go through the operator's credentials without its observer
  // (metrics-endpoint.ts): their 429s are not the reconciles' to slow down for.
  const metricsEndpoint = options.metricsEndpoint
    ? await startMetricsEndpoint({
        endpoint: options.metricsEndpoint,
        kc: kubeClientOf(options.kc),
        metrics,
        logger,
        clock,
      })
    : undefined;

  return {
    metrics,
    concurrencyLimit: limit,
    address,
    get metricsEndpoint() {
      return metricsEndpoint?.endpoint;
    },
    isLeader: () => (elector ? elector.isLeader() : true),
    ready: () => Promise.all(informers.map((i) => i.waitForSync())).then(() => undefined),
    async stop(stopOptions = {}) {
      stopping = true;
      if (elector) await elector.stop({ release: stopOptions.release ?? true });
      await stopLeading();
      for (const informer of informers) informer.stop();
      credential?.stop();
      await Promise.all([probes?.close(), metricsEndpoint?.stop()]);
    },
  };
}
