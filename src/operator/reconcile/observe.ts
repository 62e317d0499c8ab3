// Observe: read what is, for one Connector, into plain facts (observed.ts). Owned objects come from
// the informers' caches; what the operator does not own (an adopted workload and its pods, an
// existing claim) and its token Secret (token-secret.ts) are read from the API by name; the control
// plane is the one spec.controlPlaneRef names (control-plane/registry.ts) or the operator's default,
// and its record comes from the change-stream follower, or a direct read while the stream is down.
// Nothing here writes.
import type {
  V1ConfigMap,
  V1Deployment,
  V1PersistentVolumeClaim,
  V1Pod,
  V1PriorityClass,
  V1Secret,
  V1ServiceAccount,
  V1StatefulSet,
  V1StorageClass,
} from '@kubernetes/client-node';
import type { Clock } from '../../lib/clock.ts';
import { asCodedError, CodedError, errorMessage, isCodedError } from '../../lib/errors.ts';
import { ADOPTED_BY_LABEL, LABEL_VALUES, LABELS } from '../api/constants.ts';
import { type Connector, type DefaultedSpec, defaultedSpec } from '../api/types.ts';
import { StalledReasons } from '../conditions.ts';
import type { AuditEntry, Connector as ControlPlaneConnector } from '../control-plane/admin-client.ts';
import type { ControlPlaneConnection } from '../control-plane/connections.ts';
import type { ControlPlaneRegistry } from '../control-plane/registry.ts';
import { adoptionConsented } from './adoption-consent.ts';
import { childNames } from './desired-objects.ts';
import type {
  ClaimFacts,
  ControlPlaneView,
  ForeignObject,
  Observed,
  StorageClassFacts,
  WorkloadFacts,
} from './observed.ts';
import { controlledBy, foreignObject } from './ownership.ts';
import { observePodReferences } from './pod-references.ts';
import { checkRecovery } from './recovery-check.ts';
import { recoveryUnderway } from './recovery-stages.ts';
import { RESIZE_CONDITIONS, sizeToGrowTo } from './storage-expansion.ts';
import { observeTokenSecret, tokenSecretMayMatter } from './token-secret.ts';
import { unresolvedHold } from './workload.ts';

/** Where observe reads from; the controller implements it over informers and the API. */
export interface ClusterReader {
  ownedStatefulSet(namespace: string, name: string): V1StatefulSet | undefined;
  ownedConfigMap(namespace: string, name: string): V1ConfigMap | undefined;
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
  readPriorityClass(name: string): Promise<V1PriorityClass | undefined>;
  readServiceAccount(namespace: string, name: string): Promise<V1ServiceAccount | undefined>;
  /** The Connector as the API server has it now (not the cache): to confirm a refusal of a write to it. */
  readConnector(namespace: string, name: string): Promise<Connector | undefined>;
}

export interface ObserveContext {
  reader: ClusterReader;
  /** The ControlPlane and ClusterControlPlane resources Connectors name. */
  controlPlanes: Pick<ControlPlaneRegistry, 'resolve'>;
  /** The operator's default control plane, if configured. */
  defaultConnection: ControlPlaneConnection | undefined;
  defaultImage: string;
  clock: Clock;
}

export function claimFacts(claim: V1PersistentVolumeClaim): ClaimFacts {
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
  const labels = claim.metadata?.labels ?? {};
  const labelledFor = labels[LABELS.connector];
  if (labels[LABELS.managedBy] === LABEL_VALUES.managedBy && labelledFor) facts.labelledFor = labelledFor;
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

function selectorString(matchLabels: Record<string, string> | undefined): string {
  return Object.entries(matchLabels ?? {})
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
}

/**
 * The connection a Connector uses: the control plane its spec.controlPlaneRef names (only a Ready
 * one yields a connection), else the operator's default.
 */
export async function resolveConnection(
  ctx: Pick<ObserveContext, 'controlPlanes' | 'defaultConnection'>,
  spec: DefaultedSpec,
): Promise<{ connection: ControlPlaneConnection } | { error: CodedError }> {
  if (spec.controlPlaneRef) return ctx.controlPlanes.resolve(spec);
  if (ctx.defaultConnection) return { connection: ctx.defaultConnection };
  return {
    error: new CodedError(
      StalledReasons.ControlPlaneConfigInvalid,
      'spec.controlPlaneRef is not set and the operator has no default control plane (--control-plane-url); name a ControlPlane or ClusterControlPlane an admin created in spec.controlPlaneRef',
    ),
  };
}

/**
 * The change stream's record is the truth for everything the status shows, with one exception:
 * routine heartbeats are not in it (only state changes are), so a cached record's lastHeartbeatAt
 * ages. Nothing shown while heartbeats arrive depends on it (the status names no heartbeat time
 * then: report.ts); a recovery's steps do (they wait for heartbeats), so the record is read afresh
 * while one runs, and never otherwise: a read per connector per resync would be the "poll an
 * external API per object" that costs the control plane 10,000 requests every resync at scale.
 */
function needsFreshRecord(connector: Connector): boolean {
  return recoveryUnderway(connector.status?.recovery?.step);
}

/** The record this pass judges: the follower's, or (while a recovery runs, or before it synced) a read. */
export async function controlPlaneView(
  connection: ControlPlaneConnection,
  connectorId: string,
  connector: Connector,
): Promise<ControlPlaneView> {
  const follower = connection.follower;
  if (follower.synced()) {
    const cached = follower.get(connectorId);
    if (!needsFreshRecord(connector)) return { reachable: true, record: cached };
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
    // An answer about another connector is no answer about this one: neither shown nor cached
    // (the follower would keep it under the other connector's id).
    if (record?.connectorId !== connectorId) {
      return {
        reachable: false,
        error: new CodedError(
          'CONTROL_PLANE_UNREACHABLE',
          `the control plane answered a read of connector ${connectorId} with another connector's record`,
          { temporary: true },
        ),
      };
    }
    follower.remember(record);
    return { reachable: true, record };
  } catch (error) {
    if (isCodedError(error, 'CONNECTOR_NOT_FOUND')) return { reachable: true, record: undefined };
    return {
      reachable: false,
      error: asCodedError(error, 'CONTROL_PLANE_UNREACHABLE'),
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
 * The objects with this Connector's child names, from the cache or (when the cache does not hold
 * them: they are not ours, or were just created) from the API, and those of them it does not control.
 */
async function readChildren(
  ctx: ObserveContext,
  connector: Connector,
  spec: DefaultedSpec,
  cached: { configMap: V1ConfigMap | undefined; statefulSet: V1StatefulSet | undefined },
  /** The token Secret is judged where it is read (token-secret.ts): a foreign one, if any. */
  foreignTokenSecret: ForeignObject | undefined,
  claims: ReadonlyMap<string, ClaimFacts>,
): Promise<{ configMap?: V1ConfigMap; statefulSet?: V1StatefulSet; foreign: ForeignObject[] }> {
  const uid = connector.metadata.uid ?? '';
  const names = childNames(spec.name);
  const ns = spec.namespace;
  const configMap = cached.configMap ?? (await ctx.reader.readConfigMap(ns, names.configMap));
  const statefulSet = spec.workloadRef
    ? undefined
    : (cached.statefulSet ??
      ((await ctx.reader.readWorkload(ns, 'StatefulSet', names.statefulSet)) as V1StatefulSet | undefined));
  const foreign = [
    foreignObject('ConfigMap', configMap, uid),
    foreignObject('StatefulSet', statefulSet, uid),
    foreignTokenSecret,
    await foreignDataClaim(ctx, spec, statefulSet, uid, claims),
  ].filter((f): f is ForeignObject => f !== undefined);
  const result: { configMap?: V1ConfigMap; statefulSet?: V1StatefulSet; foreign: ForeignObject[] } = {
    foreign,
  };
  if (configMap && controlledBy(configMap, uid)) result.configMap = configMap;
  if (statefulSet && controlledBy(statefulSet, uid)) result.statefulSet = statefulSet;
  return result;
}

/**
 * A claim with the name the StatefulSet's data template would give its pod, there before the
 * operator's StatefulSet and not labelled as this Connector's: the StatefulSet controller binds a
 * template's claim by name, so creating the StatefulSet would mount another owner's claim into the
 * connector (and spec.storage.size would grow it); so would naming it in spec.storage.existingClaim.
 * Read by name only while the StatefulSet is not this Connector's yet (the informer holds only
 * claims with the operator's labels).
 */
async function foreignDataClaim(
  ctx: ObserveContext,
  spec: DefaultedSpec,
  statefulSet: V1StatefulSet | undefined,
  uid: string,
  claims: ReadonlyMap<string, ClaimFacts>,
): Promise<ForeignObject | undefined> {
  const name = childNames(spec.name).claim;
  // Named in existingClaim too: the admission policy admits a Connector's own data claim's name
  // there without an allow-list entry, as its own.
  const mountsIt =
    spec.storage.kind === 'OperatorClaim' ||
    (spec.storage.kind === 'ExistingClaim' && spec.storage.claimName === name);
  if (spec.workloadRef || !mountsIt) return undefined;
  if (statefulSet && controlledBy(statefulSet, uid)) return undefined;
  const known = claims.get(name);
  if (known?.labelledFor === spec.name) return undefined;
  const claim = known ?? (await ctx.reader.readClaim(spec.namespace, name).then((c) => c && claimFacts(c)));
  if (!claim || claim.labelledFor === spec.name) return undefined;
  return { kind: 'PersistentVolumeClaim', name };
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
    tokenSecret: undefined,
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
    // A workload that has not consented is not looked into: its labels only (adoption-consent.ts).
    const consented = adoptionConsented(adopted?.metadata?.labels, name);
    const selector = consented ? selectorString(adopted?.spec?.selector?.matchLabels) : '';
    if (adopted) {
      const adoptedBy = adopted.metadata?.labels?.[ADOPTED_BY_LABEL];
      workload = {
        kind: value.workloadRef.kind,
        name: value.workloadRef.name,
        replicas: adopted.spec?.replicas ?? 1,
        readyReplicas: adopted.status?.readyReplicas ?? 0,
        templateAnnotations: consented ? (adopted.spec?.template?.metadata?.annotations ?? {}) : {},
        consented,
        ...(adoptedBy !== undefined ? { adoptedBy } : {}),
        ...(selector ? { podSelector: selector } : {}),
        ...(consented && value.workloadRef.kind === 'StatefulSet'
          ? { object: adopted as V1StatefulSet }
          : {}),
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
  const podReferences = await observePodReferences(ctx.reader, connector.spec, namespace, pods);
  // Facts both endings below report, whatever the control plane's answer.
  const podFacts = {
    ...(storageClass ? { storageClass } : {}),
    ...(podReferences.length > 0 ? { podReferences } : {}),
  };

  // The token Secret, read by name on a pass where it may exist or matter (token-secret.ts).
  const tokenSecret = (view: ControlPlaneView) =>
    observeTokenSecret(
      (ns, secretName) => ctx.reader.readSecret(ns, secretName),
      connector,
      value,
      tokenSecretMayMatter(connector, value, view),
    );
  const resolved = await resolveConnection(ctx, value);
  if ('error' in resolved) {
    // Nothing is written without a control plane (workload.ts); the error says what stays as it is.
    const error = new CodedError(
      resolved.error.code,
      `${resolved.error.message}; ${unresolvedHold(name, base.configMap, workload)}`,
      { temporary: resolved.error.temporary, cause: resolved.error },
    );
    // No control plane to judge a token with; a recovery under way still sees its Secret.
    const token = await tokenSecret({ reachable: false, error });
    return {
      observed: {
        ...base,
        tokenSecret: token.facts,
        workload,
        pods,
        claims,
        controlPlane: { reachable: false, error },
        ...podFacts,
      },
      connection: undefined,
    };
  }
  const connection = resolved.connection;
  const controlPlane = await controlPlaneView(connection, value.connector.id, connector);
  const audit = controlPlane.reachable
    ? await auditForRecovery(connection, connector, value.connector.id)
    : undefined;
  const recoveryCheck = controlPlane.reachable
    ? await checkRecovery(connection, connector, value.connector.id)
    : undefined;
  const token = await tokenSecret(controlPlane);
  const children = await readChildren(
    ctx,
    connector,
    value,
    { configMap: base.configMap, statefulSet: value.workloadRef ? undefined : workload?.object },
    token.foreign,
    claims,
  );
  if (!value.workloadRef && !workload && children.statefulSet) {
    workload = statefulSetFacts(names.statefulSet, children.statefulSet);
  }
  return {
    observed: {
      ...base,
      tokenSecret: token.facts,
      configMap: children.configMap,
      ...(children.foreign.length > 0 ? { foreign: children.foreign } : {}),
      controlPlaneUrl: connection.url,
      caPem: connection.caPem,
      workload,
      pods,
      claims,
      controlPlane,
      ...(audit ? { audit } : {}),
      ...(recoveryCheck ? { recoveryCheck } : {}),
      ...podFacts,
    },
    connection,
  };
}

export type { ControlPlaneConnector };
