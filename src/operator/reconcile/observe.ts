// Observe: read what is, for one Connector, into plain facts (observed.ts). Owned objects come from
// the informers' caches; what the operator does not own (an adopted workload and its pods, an
// existing claim, a Connector's own control-plane CA and credential) is read from the API; the
// control plane's record comes from the change-stream follower, or a direct read while the stream
// is down. Nothing here writes.
import type {
  V1ConfigMap,
  V1Deployment,
  V1PersistentVolumeClaim,
  V1Pod,
  V1Secret,
  V1StatefulSet,
  V1StorageClass,
} from '@kubernetes/client-node';
import type { AuditEntry, Connector as ControlPlaneConnector } from '../../controlplane/admin-client.ts';
import type { Clock } from '../../lib/clock.ts';
import { CodedError, errorMessage, isCodedError } from '../../lib/errors.ts';
import { ANNOTATIONS } from '../api/constants.ts';
import { type Connector, type DefaultedSpec, defaultedSpec } from '../api/types.ts';
import { StalledReasons } from '../conditions.ts';
import type { ControlPlaneConnection, ControlPlaneConnections } from '../control-plane/connections.ts';
import { objectKey } from '../runtime/work-queue.ts';
import { childNames } from './desired-objects.ts';
import type {
  ClaimFacts,
  ControlPlaneView,
  ForeignObject,
  Observed,
  StorageClassFacts,
  TokenSecretFacts,
  WorkloadFacts,
} from './observed.ts';
import { controlledBy, foreignObject } from './ownership.ts';
import { RESIZE_CONDITIONS, sizeToGrowTo } from './storage-expansion.ts';

/** Where observe reads from; the controller implements it over informers and the API. */
export interface ClusterReader {
  ownedStatefulSet(namespace: string, name: string): V1StatefulSet | undefined;
  ownedConfigMap(namespace: string, name: string): V1ConfigMap | undefined;
  ownedSecret(namespace: string, name: string): V1Secret | undefined;
  ownedPods(namespace: string, connectorName: string): V1Pod[];
  ownedClaims(namespace: string, connectorName: string): V1PersistentVolumeClaim[];
  readClaim(namespace: string, name: string): Promise<V1PersistentVolumeClaim | undefined>;
  readWorkload(
    namespace: string,
    kind: 'StatefulSet' | 'Deployment',
    name: string,
  ): Promise<V1StatefulSet | V1Deployment | undefined>;
  listPods(namespace: string, labelSelector: string): Promise<V1Pod[]>;
  readSecret(namespace: string, name: string): Promise<V1Secret | undefined>;
  readConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined>;
  readStorageClass(name: string): Promise<V1StorageClass | undefined>;
}

export interface ObserveContext {
  reader: ClusterReader;
  connections: ControlPlaneConnections;
  /** The operator's default control plane, if configured. */
  defaultConnection: ControlPlaneConnection | undefined;
  defaultImage: string;
  clock: Clock;
}

function claimFacts(claim: V1PersistentVolumeClaim): ClaimFacts {
  const facts: ClaimFacts = {
    name: claim.metadata?.name ?? '',
    uid: claim.metadata?.uid ?? '',
    phase: claim.status?.phase ?? 'Pending',
    deleting: Boolean(claim.metadata?.deletionTimestamp),
  };
  // What growing it needs (storage-expansion.ts).
  const requested = claim.spec?.resources?.requests?.storage;
  const capacity = claim.status?.capacity?.storage;
  if (requested) facts.requested = String(requested);
  if (capacity) facts.capacity = String(capacity);
  if (claim.spec?.storageClassName) facts.storageClassName = claim.spec.storageClassName;
  const resizing = (claim.status?.conditions ?? []).filter(
    (c) => c.status === 'True' && RESIZE_CONDITIONS.has(c.type),
  );
  if (resizing.length > 0)
    facts.resizeConditions = resizing.map((c) => ({
      type: c.type,
      ...(c.message ? { message: c.message } : {}),
    }));
  return facts;
}

/** The StorageClass of the operator's claim, read only while spec.storage.size asks for more than it has. */
async function storageClassToGrow(
  reader: ClusterReader,
  spec: DefaultedSpec,
  claim: ClaimFacts | undefined,
): Promise<StorageClassFacts | undefined> {
  const className = claim?.storageClassName;
  if (!className || claim.phase !== 'Bound' || !sizeToGrowTo(spec.storage, claim)) return undefined;
  const storageClass = await reader.readStorageClass(className);
  return storageClass
    ? { name: className, allowVolumeExpansion: storageClass.allowVolumeExpansion === true }
    : undefined;
}

function tokenSecretFacts(secret: V1Secret | undefined): TokenSecretFacts | undefined {
  if (!secret?.metadata?.name) return undefined;
  const annotations = secret.metadata.annotations ?? {};
  return {
    name: secret.metadata.name,
    uid: secret.metadata.uid,
    mintKey: annotations[ANNOTATIONS.mintKey],
    expiresAt: annotations[ANNOTATIONS.tokenExpiresAt],
    deleting: Boolean(secret.metadata.deletionTimestamp),
  };
}

function selectorString(matchLabels: Record<string, string> | undefined): string {
  return Object.entries(matchLabels ?? {})
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
}

/** The connection a Connector uses: its own spec.controlPlane, else the operator's default. */
export async function resolveConnection(
  ctx: ObserveContext,
  spec: DefaultedSpec,
): Promise<{ connection: ControlPlaneConnection } | { error: CodedError }> {
  const ref = spec.controlPlane;
  const user = objectKey(spec.namespace, spec.name);
  if (!ref) {
    ctx.connections.release(user);
    if (ctx.defaultConnection) return { connection: ctx.defaultConnection };
    return {
      error: new CodedError(
        StalledReasons.ControlPlaneConfigInvalid,
        'spec.controlPlane is not set and the operator has no default control plane (--control-plane-url); set one of them',
      ),
    };
  }
  const secret = await ctx.reader.readSecret(spec.namespace, ref.credentialSecretRef.name);
  const encoded = secret?.data?.[ref.credentialSecretRef.key];
  if (!encoded) {
    return {
      error: new CodedError(
        StalledReasons.ControlPlaneConfigInvalid,
        `spec.controlPlane.credentialSecretRef: Secret ${spec.namespace}/${ref.credentialSecretRef.name} ${secret ? `has no key "${ref.credentialSecretRef.key}"` : 'does not exist'}; create it with the control-plane admin credential`,
        { temporary: true },
      ),
    };
  }
  let caPem = ctx.defaultConnection?.caPem ?? '';
  if (ref.caConfigMapRef) {
    const configMap = await ctx.reader.readConfigMap(spec.namespace, ref.caConfigMapRef.name);
    const ca = configMap?.data?.[ref.caConfigMapRef.key];
    if (!ca) {
      return {
        error: new CodedError(
          StalledReasons.ControlPlaneConfigInvalid,
          `spec.controlPlane.caConfigMapRef: ConfigMap ${spec.namespace}/${ref.caConfigMapRef.name} ${configMap ? `has no key "${ref.caConfigMapRef.key}"` : 'does not exist'}; it must hold the control plane's CA bundle`,
          { temporary: true },
        ),
      };
    }
    caPem = ca;
  }
  const credential = Buffer.from(encoded, 'base64').toString('utf8').replace(/\s+$/, '');
  return { connection: ctx.connections.forSettings(user, ref.url, caPem, credential) };
}

/**
 * Routine heartbeats are not in the change stream (only state changes are), so a cached record's
 * lastHeartbeatAt ages. It is read afresh while a recovery runs (its steps wait for heartbeats) and
 * when the cached time is older than the status refresh window; at most once per resync otherwise.
 */
const STALE_HEARTBEAT_MS = 4 * 60_000;

function needsFreshRecord(
  connector: Connector,
  cached: ControlPlaneConnector | undefined,
  now: Date,
): boolean {
  const step = connector.status?.recovery?.step;
  if (step && step !== 'Completed' && step !== 'Failed') return true;
  if (!cached || (cached.state !== 'online' && cached.state !== 'degraded')) return false;
  return (
    !cached.lastHeartbeatAt || now.getTime() - new Date(cached.lastHeartbeatAt).getTime() > STALE_HEARTBEAT_MS
  );
}

async function controlPlaneView(
  connection: ControlPlaneConnection,
  connectorId: string,
  connector: Connector,
  now: Date,
): Promise<ControlPlaneView> {
  const follower = connection.follower;
  if (follower.synced()) {
    const cached = follower.get(connectorId);
    if (!needsFreshRecord(connector, cached, now)) return { reachable: true, record: cached };
  }
  const client = connection.client();
  if (!client) {
    return {
      reachable: false,
      error: new CodedError(
        'CONTROL_PLANE_CREDENTIAL_MISSING',
        'the control-plane credential Secret is missing or empty',
        { temporary: true },
      ),
    };
  }
  try {
    const record = await client.getConnector(connectorId);
    follower.remember(record);
    return { reachable: true, record };
  } catch (error) {
    if (isCodedError(error, 'CONNECTOR_NOT_FOUND')) return { reachable: true, record: undefined };
    return {
      reachable: false,
      error: isCodedError(error)
        ? error
        : new CodedError('CONTROL_PLANE_UNREACHABLE', errorMessage(error), { temporary: true }),
    };
  }
}

async function auditForRecovery(
  connection: ControlPlaneConnection,
  connector: Connector,
  connectorId: string,
): Promise<AuditEntry[] | undefined> {
  const recovery = connector.status?.recovery;
  if (!recovery?.startedAt || (recovery.step !== 'AwaitingOnline' && recovery.step !== 'ValidatingRestart'))
    return undefined;
  try {
    return await connection.client()?.audit({ connectorId, since: recovery.startedAt, limit: 200 });
  } catch {
    // Evidence is best effort: the recovery's own outcome does not depend on it.
    return undefined;
  }
}

function statefulSetFacts(name: string, sts: V1StatefulSet): WorkloadFacts {
  return {
    kind: 'StatefulSet',
    name,
    replicas: sts.spec?.replicas ?? 1,
    readyReplicas: sts.status?.readyReplicas ?? 0,
    templateAnnotations: sts.spec?.template?.metadata?.annotations ?? {},
    object: sts,
  };
}

/**
 * Whether this pass may mint a token: never paired, a recovery asked for or under way, or the
 * control plane says one is needed. Only then is an uncached token Secret name read from the API.
 */
function mayMint(connector: Connector, spec: DefaultedSpec, view: ControlPlaneView): boolean {
  const recovery = connector.status?.recovery;
  if (recovery?.step && recovery.step !== 'Completed' && recovery.step !== 'Failed') return true;
  if (spec.recovery.requestId && spec.recovery.requestId !== recovery?.requestId) return true;
  if (!view.reachable) return false;
  const record = view.record;
  return !record?.bootstrapRetired || record.state === 'needs_recovery';
}

/**
 * The objects with this Connector's child names, from the cache or (when the cache does not hold
 * them: they are not ours, or were just created) from the API, and those of them it does not control.
 */
async function readChildren(
  ctx: ObserveContext,
  connector: Connector,
  spec: DefaultedSpec,
  cached: { configMap: V1ConfigMap | undefined; statefulSet: V1StatefulSet | undefined; mayMint: boolean },
): Promise<{ configMap?: V1ConfigMap; statefulSet?: V1StatefulSet; foreign: ForeignObject[] }> {
  const uid = connector.metadata.uid ?? '';
  const names = childNames(spec.name);
  const ns = spec.namespace;
  const configMap = cached.configMap ?? (await ctx.reader.readConfigMap(ns, names.configMap));
  const statefulSet = spec.workloadRef
    ? undefined
    : (cached.statefulSet ??
      ((await ctx.reader.readWorkload(ns, 'StatefulSet', names.statefulSet)) as V1StatefulSet | undefined));
  const secret =
    ctx.reader.ownedSecret(ns, names.tokenSecret) ??
    (cached.mayMint ? await ctx.reader.readSecret(ns, names.tokenSecret) : undefined);
  const foreign = [
    foreignObject('ConfigMap', configMap, uid),
    foreignObject('StatefulSet', statefulSet, uid),
    foreignObject('Secret', secret, uid),
  ].filter((f): f is ForeignObject => f !== undefined);
  const result: { configMap?: V1ConfigMap; statefulSet?: V1StatefulSet; foreign: ForeignObject[] } = {
    foreign,
  };
  if (configMap && controlledBy(configMap, uid)) result.configMap = configMap;
  if (statefulSet && controlledBy(statefulSet, uid)) result.statefulSet = statefulSet;
  return result;
}

export interface Observation {
  observed: Observed;
  connection: ControlPlaneConnection | undefined;
}

export async function observe(ctx: ObserveContext, connector: Connector): Promise<Observation> {
  const namespace = connector.metadata.namespace ?? '';
  const name = connector.metadata.name ?? '';
  const names = childNames(name);
  let spec: Observed['spec'];
  try {
    spec = { ok: true, value: defaultedSpec(connector) };
  } catch (error) {
    spec = {
      ok: false,
      error: isCodedError(error) ? error : new CodedError('INVALID_SPEC', errorMessage(error)),
    };
  }
  const base: Omit<Observed, 'controlPlane' | 'workload' | 'pods' | 'claims'> = {
    connector,
    spec,
    defaultImage: ctx.defaultImage,
    controlPlaneUrl: undefined,
    caPem: undefined,
    configMap: ctx.reader.ownedConfigMap(namespace, names.configMap),
    tokenSecret: tokenSecretFacts(ctx.reader.ownedSecret(namespace, names.tokenSecret)),
  };
  if (!spec.ok) {
    return {
      observed: {
        ...base,
        workload: undefined,
        pods: [],
        claims: new Map(),
        controlPlane: { reachable: false, error: spec.error },
      },
      connection: undefined,
    };
  }
  const value = spec.value;

  // Workload and pods: the operator's own StatefulSet, or the adopted workload and its pods.
  let workload: WorkloadFacts | undefined;
  let pods: V1Pod[];
  if (value.workloadRef) {
    const adopted = await ctx.reader.readWorkload(namespace, value.workloadRef.kind, value.workloadRef.name);
    const selector = selectorString(adopted?.spec?.selector?.matchLabels);
    if (adopted) {
      workload = {
        kind: value.workloadRef.kind,
        name: value.workloadRef.name,
        replicas: adopted.spec?.replicas ?? 1,
        readyReplicas: adopted.status?.readyReplicas ?? 0,
        templateAnnotations: adopted.spec?.template?.metadata?.annotations ?? {},
        ...(selector ? { podSelector: selector } : {}),
        ...(value.workloadRef.kind === 'StatefulSet' ? { object: adopted as V1StatefulSet } : {}),
      };
    }
    pods = adopted && selector ? await ctx.reader.listPods(namespace, selector) : [];
  } else {
    const sts = ctx.reader.ownedStatefulSet(namespace, names.statefulSet);
    if (sts && controlledBy(sts, connector.metadata.uid ?? ''))
      workload = statefulSetFacts(names.statefulSet, sts);
    pods = ctx.reader.ownedPods(namespace, name);
  }

  // Claims: those the connector's pods mount, the StatefulSet's own, and an existing claim.
  const claims = new Map<string, ClaimFacts>();
  for (const claim of ctx.reader.ownedClaims(namespace, name))
    claims.set(claim.metadata?.name ?? '', claimFacts(claim));
  const wanted = new Set<string>();
  for (const pod of pods)
    for (const v of pod.spec?.volumes ?? [])
      if (v.persistentVolumeClaim) wanted.add(v.persistentVolumeClaim.claimName);
  if (value.storage.kind === 'ExistingClaim') wanted.add(value.storage.claimName);
  // An adopted StatefulSet's claims carry the user's labels, not ours: read the first replica's by name,
  // so its posture is known before (or without) a pod.
  if (value.workloadRef?.kind === 'StatefulSet' && workload?.object) {
    for (const template of workload.object.spec?.volumeClaimTemplates ?? [])
      if (template.metadata?.name) wanted.add(`${template.metadata.name}-${workload.name}-0`);
  }
  for (const claimName of wanted) {
    if (claims.has(claimName)) continue;
    const claim = await ctx.reader.readClaim(namespace, claimName);
    if (claim) claims.set(claimName, claimFacts(claim));
  }
  const storageClass = await storageClassToGrow(ctx.reader, value, claims.get(names.claim));

  const resolved = await resolveConnection(ctx, value);
  if ('error' in resolved) {
    return {
      observed: {
        ...base,
        workload,
        pods,
        claims,
        controlPlane: { reachable: false, error: resolved.error },
        ...(storageClass ? { storageClass } : {}),
      },
      connection: undefined,
    };
  }
  const connection = resolved.connection;
  const controlPlane = await controlPlaneView(connection, value.connector.id, connector, ctx.clock.now());
  const audit = controlPlane.reachable
    ? await auditForRecovery(connection, connector, value.connector.id)
    : undefined;
  const children = await readChildren(ctx, connector, value, {
    configMap: base.configMap,
    statefulSet: value.workloadRef ? undefined : workload?.object,
    mayMint: mayMint(connector, value, controlPlane),
  });
  if (!value.workloadRef && !workload && children.statefulSet) {
    workload = statefulSetFacts(names.statefulSet, children.statefulSet);
  }
  return {
    observed: {
      ...base,
      configMap: children.configMap,
      ...(children.foreign.length > 0 ? { foreign: children.foreign } : {}),
      controlPlaneUrl: connection.url,
      caPem: connection.caPem,
      workload,
      pods,
      claims,
      controlPlane,
      ...(audit ? { audit } : {}),
      ...(storageClass ? { storageClass } : {}),
    },
    connection,
  };
}

export type { ControlPlaneConnector };
