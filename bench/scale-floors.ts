// The scale benchmark's floors: what bringing N connectors up costs with no operator logic, to
// print figure 1 beside. Two write the operator's objects into the API server alone (the plain
// floor, one of each; the mix floor, as many of each as the operator wrote). The third, the floor
// through the cluster, makes the same writes with a real control-plane record and a real token per
// connector, in a namespace a fleet simulator of its own serves, and waits until every agent's
// first heartbeat is accepted: the whole way to Online (the StatefulSet controller, the volume
// binder, the node, the agents' enrollment) with a script where the operator's decisions would be.
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { silentLogger } from '../src/lib/logger.ts';
import { type Connector, defaultedSpec } from '../src/operator/api/types.ts';
import { ControlPlaneAdminClient } from '../src/operator/control-plane/admin-client.ts';
import {
  configHash,
  desiredConfigMap,
  desiredStatefulSet,
  desiredTokenSecret,
} from '../src/operator/reconcile/desired-objects.ts';
import { KubeWriter } from '../src/operator/runtime/apply.ts';
import { EventRecorder } from '../src/operator/runtime/events.ts';
import { RESOURCE_TYPES } from '../src/operator/runtime/resources.ts';
import type { ControlPlaneProcess } from './control-plane-common.ts';
import { pool, round } from './scale-util.ts';

/** How many writes of each kind a floor makes per connector. */
export interface FloorMix {
  statusPatches: number;
  events: number;
  /** A dry run of the ConfigMap, and of the StatefulSet, before the token (as the operator's mint). */
  configMapDryRun: boolean;
  statefulSetDryRun: boolean;
  secretDelete: boolean;
}

/** The plain floor: one of each object the operator writes. */
export const BASIC_MIX: FloorMix = {
  statusPatches: 1,
  events: 1,
  configMapDryRun: false,
  statefulSetDryRun: false,
  secretDelete: false,
};

const FLOOR_PHASES = ['Pending', 'Enrolling', 'Online', 'Offline'];
/** The image the floors' StatefulSets name (the fleet simulator runs no image). */
export const BENCH_IMAGE = 'vaultpam-connector:bench';

export const connectorRef = (namespace: string) => ({
  group: 'vaultpam.io',
  version: 'v1alpha1',
  namespace,
  plural: 'connectors',
});

/** The operator's writes per connector during convergence, as a floor mix (Lease renewals aside). */
export function mixOf(writes: Record<string, number>, connectors: number): FloorMix {
  const per = (labels: string) => (writes[labels] ?? 0) / connectors;
  return {
    statusPatches: Math.max(1, Math.round(per('kind=Connector,verb=patch'))),
    events: Math.round(per('kind=Event,verb=create')),
    configMapDryRun: per('kind=ConfigMap,verb=dry-run') >= 0.5,
    statefulSetDryRun: per('kind=StatefulSet,verb=dry-run') >= 0.5,
    secretDelete: per('kind=Secret,verb=delete') >= 0.5,
  };
}

export function mixWrites(mix: FloorMix): number {
  const dryRuns = Number(mix.configMapDryRun) + Number(mix.statefulSetDryRun);
  return 1 + mix.statusPatches + 3 + mix.events + dryRuns + (mix.secretDelete ? 1 : 0);
}

export interface FloorOptions {
  kc: KubeConfig;
  cp: ControlPlaneProcess;
  /** A namespace of its own, which the operator does not watch. */
  namespace: string;
  mix: FloorMix;
  connectors: number;
  /** Connectors written at a time. */
  concurrency: number;
}

export interface FloorResult {
  seconds: number;
  writes: number;
  concurrency: number;
  mix: FloorMix;
}

/** A token for a connector's Secret: a real one from the control plane, or a placeholder. */
type TokenSource = (
  connector: Connector,
  connectorId: string,
) => Promise<{ value: string; mintKey: string; expiresAt: string }>;

/**
 * For each connector, the writes the operator makes to bring one up, through the operator's own
 * client code (KubeWriter's server-side apply, the EventRecorder) and object builders, with no
 * decisions: create the Connector, apply its status (`mix.statusPatches` different ones), dry-run
 * and apply its ConfigMap and StatefulSet, apply its token Secret, record `mix.events` Events;
 * `deleteSecrets` deletes each Secret right away (the plain and mix floors) or not (the floor
 * through the cluster deletes them once the agents have paired).
 */
async function writeConnectors(
  options: FloorOptions,
  token: TokenSource,
  deleteSecrets: boolean,
): Promise<string[]> {
  const { kc, cp, namespace, mix } = options;
  const writer = new KubeWriter({ kc, logger: silentLogger() });
  const events = new EventRecorder({ kc, logger: silentLogger(), identity: 'bench-floor' });
  const objects = kc.makeApiClient(CustomObjectsApi);
  const names = Array.from({ length: options.connectors }, (_, i) => `f${String(i).padStart(5, '0')}`);
  await pool(names, options.concurrency, async (name) => {
    const connector = (await objects.createNamespacedCustomObject({
      ...connectorRef(namespace),
      body: {
        apiVersion: 'vaultpam.io/v1alpha1',
        kind: 'Connector',
        metadata: { name, namespace },
        spec: { connector: { org: 'acme', endpointId: name } },
      },
    })) as Connector;
    const spec = defaultedSpec(connector);
    const subject = {
      apiVersion: 'vaultpam.io/v1alpha1',
      kind: 'Connector',
      name,
      namespace,
      ...(connector.metadata.uid ? { uid: connector.metadata.uid } : {}),
    };
    for (let i = 0; i < mix.statusPatches; i += 1) {
      await writer.applyStatus(
        RESOURCE_TYPES.connector,
        { namespace, name },
        {
          phase: FLOOR_PHASES[i % FLOOR_PHASES.length],
          connectorId: spec.connector.id,
          observedGeneration: i + 1,
        },
      );
    }
    const configMap = desiredConfigMap(connector, spec, { url: cp.url, caPem: cp.caPem });
    const statefulSet = desiredStatefulSet(connector, spec, {
      image: BENCH_IMAGE,
      replicas: 1,
      configHash: configHash(configMap),
      restartedFor: undefined,
    });
    if (mix.configMapDryRun) await writer.apply(configMap, { dryRun: true });
    if (mix.statefulSetDryRun) await writer.apply(statefulSet, { dryRun: true });
    await writer.apply(desiredTokenSecret(connector, spec, await token(connector, spec.connector.id)));
    await writer.apply(configMap);
    await writer.apply(statefulSet);
    for (let i = 0; i < mix.events; i += 1) {
      await events.record(subject, {
        type: 'Normal',
        reason: `Floor${i}`,
        action: 'Floor',
        note: `floor event ${i}`,
        priority: 'always',
      });
    }
    if (deleteSecrets && mix.secretDelete)
      await writer.delete(RESOURCE_TYPES.secret, { namespace, name: `${name}-enrollment-token` });
  });
  return names;
}

/** The plain floor and the mix floor: the operator's writes for N connectors, into the API server alone. */
export async function runFloor(options: FloorOptions): Promise<FloorResult> {
  const started = Date.now();
  await writeConnectors(
    options,
    async () => ({
      value: 'floor-token-not-a-secret',
      mintKey: 'floor',
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    }),
    true,
  );
  const seconds = round((Date.now() - started) / 1000, 2);
  return {
    seconds,
    writes: options.connectors * mixWrites(options.mix),
    concurrency: options.concurrency,
    mix: options.mix,
  };
}

export interface ClusterFloorResult extends FloorResult {
  /** When the writes were done; the rest is the cluster's and the fleet's way to the first heartbeat. */
  writtenSeconds: number;
  /** Calls to the control plane per connector: register and mint (the operator also reads). */
  controlPlaneCallsPerConnector: number;
}

/**
 * The floor through the cluster. Each connector is registered with the control plane and gets one
 * real single-use token (as the operator's first pass does), then the mix floor's writes; a fleet
 * simulator serving `options.namespace` (started by the caller) runs its pods' agents, which
 * enroll with the token and beat. Timed from the first write until the control plane has seen
 * every agent's first heartbeat (its record online, from the change stream the operator follows
 * too), then each token Secret is deleted, as the operator does once a connector has paired.
 */
export async function runClusterFloor(
  options: FloorOptions & { timeoutMs: number },
): Promise<ClusterFloorResult> {
  const admin = new ControlPlaneAdminClient({
    url: options.cp.url,
    caPem: options.cp.caPem,
    credential: options.cp.credential,
  });
  try {
    const writer = new KubeWriter({ kc: options.kc, logger: silentLogger() });
    const prefix = `${options.namespace}.`;
    const online = new Set<string>();
    let { cursor } = await admin.changes(0);
    const started = Date.now();
    const names = await writeConnectors(
      options,
      async (connector, connectorId) => {
        const owner = { ownerUid: connector.metadata.uid ?? '' };
        const { org, endpointId, allowedNetworks } = defaultedSpec(connector).connector;
        await admin.ensureConnector(
          connectorId,
          { org, endpointId, allowedNetworks },
          { ...owner, ownerNamespace: options.namespace },
        );
        const minted = await admin.mintToken(connectorId, { idempotencyKey: 'floor-1', ...owner });
        return { value: minted.token, mintKey: 'floor-1', expiresAt: minted.expiresAt };
      },
      false,
    );
    const writtenSeconds = round((Date.now() - started) / 1000, 2);
    // Each token Secret goes once its agent has paired, as the operator deletes it.
    const deletions: Array<Promise<unknown>> = [];
    const deadline = started + options.timeoutMs;
    while (online.size < names.length) {
      if (Date.now() > deadline)
        throw new Error(
          `the floor through the cluster: ${online.size} of ${names.length} agents beat within ${options.timeoutMs} ms`,
        );
      const page = await admin.changes(cursor, 5);
      cursor = page.cursor;
      for (const change of page.changes) {
        const record = change.connector;
        if (
          !record?.connectorId.startsWith(prefix) ||
          record.state !== 'online' ||
          online.has(record.connectorId)
        )
          continue;
        online.add(record.connectorId);
        if (options.mix.secretDelete)
          deletions.push(
            writer.delete(RESOURCE_TYPES.secret, {
              namespace: options.namespace,
              name: `${record.connectorId.slice(prefix.length)}-enrollment-token`,
            }),
          );
      }
    }
    await Promise.all(deletions);
    const seconds = round((Date.now() - started) / 1000, 2);
    return {
      seconds,
      writtenSeconds,
      writes: options.connectors * mixWrites(options.mix),
      concurrency: options.concurrency,
      mix: options.mix,
      controlPlaneCallsPerConnector: 2,
    };
  } finally {
    admin.close();
  }
}
