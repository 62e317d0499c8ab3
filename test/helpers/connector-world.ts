// A simulated world for property tests of the planner: one Connector, the Kubernetes objects it
// owns (StatefulSet or an adopted Deployment, claim, pod, token Secret), the control plane's record
// and tokens, and an agent that behaves as docs/connector-agent.md says (pairs once with a token,
// reconnects with a persisted identity, fails closed with its termination message). The operator's
// pass is modelled as the reconciler runs it: observe (as observe.ts does, including when the token
// Secret is read), plan, act the plan's steps in order (where an effect can fail, or the operator
// die before writing the status), then write the status of the steps that ran (pass-status.ts).
//
// Everything is plain data driven by Step values, so fast-check can generate, shrink and print
// sequences of them. The world keeps a ledger of what really happened (tokens minted, pairings,
// recoveries begun) for the properties to compare the status with.
import type { V1ConfigMap, V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import { CodedError } from '../../src/lib/errors.ts';
import { ANNOTATIONS } from '../../src/operator/api/constants.ts';
import type { Connector, ConnectorStatus, RecoveryPolicy } from '../../src/operator/api/types.ts';
import { defaultedSpec } from '../../src/operator/api/types.ts';
import type { AuditEntry, Connector as CpConnector } from '../../src/operator/control-plane/admin-client.ts';
import { childNames } from '../../src/operator/reconcile/desired-objects.ts';
import type { Observed, RecoveryCheck, TokenSecretFacts } from '../../src/operator/reconcile/observed.ts';
import { statusOfPass, statusOfSteps } from '../../src/operator/reconcile/pass-status.ts';
import { plan } from '../../src/operator/reconcile/plan.ts';
import type { Plan, PlannedAction } from '../../src/operator/reconcile/plan-types.ts';
import { tokenSecretMayMatter } from '../../src/operator/reconcile/token-secret.ts';
import { pod as podObject } from './observed-builder.ts';
import { type PlanView, viewOf } from './plan-view.ts';

export const WORLD_UID = '1b4e28ba-2fa1-11d2-883f-0016d3cca427';
const NAME = 'edge';
const NAMESPACE = 'prod';
const CONNECTOR_ID = `${NAMESPACE}.${NAME}`;
const ADOPTED = 'legacy';
const NAMES = childNames(NAME);
export const START = Date.parse('2026-01-01T00:00:00Z');

// ---- what a run is made of ----

/** What backs the data directory: the operator's claim, its emptyDir (ephemeral), an adopted Deployment on emptyDir. */
export type StorageKind = 'claim' | 'ephemeral' | 'adopted';
export const REQUEST_IDS = ['r1', 'r2', 'r3'] as const;

export interface WorldOptions {
  storage: StorageKind;
  tokenTTL: '5m' | '30m' | '4h';
  policy: RecoveryPolicy;
  validateRestart: boolean;
}

export type Step =
  /** One reconcile pass that acts completely and writes its status. */
  | { kind: 'reconcile' }
  /** A pass whose act throws at its effect number `at` (those before it happened): statusOfPass. */
  | { kind: 'reconcileFails'; at: number }
  /**
   * The operator dies during a pass after `at` effects, before writing the status: a restarted
   * operator has nothing but the stored status (and the world).
   */
  | { kind: 'operatorRestart'; at: number }
  | { kind: 'advance'; ms: number }
  /**
   * The workload controller and kubelet take one step: finish a deletion, scale, roll, start a pod,
   * or restart its stopped agent container. `kubeletBehind`: a pod started now finds its token
   * volume empty, the kubelet's cache not having the token Secret yet (optional, so the pod starts
   * without it); a later kubeletSync fills it.
   */
  | { kind: 'controllers'; kubeletBehind?: boolean }
  /** The pod is deleted out of band (kubectl delete, node drained). */
  | { kind: 'podDeleted' }
  /** The kubelet brings the pod's Secret volume up to date with the token Secret. */
  | { kind: 'kubeletSync' }
  /** The agent container is killed (or stopped) and restarted in its pod. */
  | { kind: 'containerRestart' }
  | { kind: 'heartbeat' }
  /**
   * The control plane marks the connector offline although its agent runs (heartbeats stop while
   * the process lives, a partition); the next heartbeat brings it back. A silent agent is marked
   * offline by the control plane's sweep after OFFLINE_AFTER_MS anyway.
   */
  | { kind: 'cpMarksOffline' }
  | { kind: 'pathHealth'; healthy: boolean }
  /** The claim is deleted and recreated empty (its pod goes with it). */
  | { kind: 'claimReplaced' }
  | { kind: 'cpReachable'; reachable: boolean }
  /** An admin revokes the connector's live tokens in the control plane. */
  | { kind: 'adminRevokes' }
  /** Someone deletes the token Secret by hand (kubectl delete secret), whatever token it holds. */
  | { kind: 'tokenSecretDeleted' }
  | { kind: 'setRequestId'; id: string | undefined }
  | { kind: 'setPolicy'; policy: RecoveryPolicy }
  | { kind: 'setPaused'; paused: boolean }
  /** A ConfigMap with the Connector's child name that it does not control appears or goes. */
  | { kind: 'foreignObject'; present: boolean }
  /** The adopted workload's consent label is given or removed. */
  | { kind: 'consent'; given: boolean }
  /**
   * The agent is held back (or let go): no pod starts and no container restarts meanwhile (an
   * image that cannot be pulled, a node that is not ready), so tokens expire unused.
   */
  | { kind: 'agentHeld'; held: boolean }
  /**
   * Nothing goes wrong for a while: `rounds` times a pass, a kubelet sync, a controller step and a
   * heartbeat.
   */
  | { kind: 'settle'; rounds: number };

// ---- the world ----

interface TokenRow {
  id: string;
  key: string;
  expiresAt: number;
  status: 'live' | 'used' | 'revoked';
}

interface CpRecord {
  state: CpConnector['state'];
  bootstrapRetired: boolean;
  lastHeartbeatAt: number | null;
  stateChangedAt: number;
  enrolledAt: number | null;
  paths: { name: string; healthy: boolean; detail: string }[];
  serial: string | null;
  liveTokenId: string | null;
  recovery: { requestId: string; startedAt: number; completedAt: number | null } | null;
  lastEnrollmentFailure: { code: string; at: number } | null;
  revision: number;
}

/** What is in a data directory: the agent's identity and the tokens it saw mounted when refused. */
interface DataDir {
  serial?: string;
  /** Set once the control plane refused the identity: the ids of the tokens mounted at each refusal. */
  refusedWithTokens?: string[];
}

interface AgentState {
  running: boolean;
  ready: boolean;
  /** The certificate the running agent presents. */
  serial?: string;
  restartCount: number;
  last?: { exitCode: number; message?: string; finishedAt: string };
}

interface SimPod {
  name: string;
  uid: string;
  startedAt: number;
  annotations: Record<string, string>;
  deleting: boolean;
  /** The pod's own emptyDir data directory (ephemeral and adopted storage). */
  emptyDir?: DataDir;
  /**
   * The token file in the pod's Secret volume: the kubelet copies the Secret into it when the pod
   * starts and again when it syncs, so it may still hold a token whose Secret is gone.
   */
  mounted?: { tokenId: string; key: string };
  agent: AgentState;
}

export interface Ledger {
  /** Every token the control plane created, with the recovery the operator was running when it asked. */
  minted: { key: string; id: string; at: number; forRecovery: string | undefined }[];
  /** Every successful pairing: the token's key and the control-plane recovery it paired in. */
  pairings: { key: string; cpRecovery: string | undefined; at: number }[];
  /** Request ids the control plane began a recovery for. */
  begun: Set<string>;
}

export interface World {
  options: WorldOptions;
  now: number;
  generation: number;
  spec: { paused: boolean; policy: RecoveryPolicy; requestId: string | undefined };
  status: ConnectorStatus | undefined;
  cp: { reachable: boolean; record: CpRecord | undefined; tokens: TokenRow[]; audit: AuditEntry[] };
  secret: { uid: string; key: string; tokenId: string; expiresAt: string; createdAt: string } | undefined;
  statefulSet: V1StatefulSet | undefined;
  adopted: { replicas: number; consented: boolean } | undefined;
  configMap: V1ConfigMap | undefined;
  claim: { uid: string; data: DataDir } | undefined;
  pod: SimPod | undefined;
  foreign: boolean;
  pathsHealthy: boolean;
  agentHeld: boolean;
  nextId: number;
  ledger: Ledger;
}

export function newWorld(options: WorldOptions): World {
  return {
    options,
    now: START,
    generation: 1,
    spec: { paused: false, policy: options.policy, requestId: undefined },
    status: undefined,
    cp: { reachable: true, record: undefined, tokens: [], audit: [] },
    secret: undefined,
    statefulSet: undefined,
    adopted: options.storage === 'adopted' ? { replicas: 1, consented: true } : undefined,
    configMap: undefined,
    claim: undefined,
    pod: undefined,
    foreign: false,
    pathsHealthy: true,
    agentHeld: false,
    nextId: 1,
    ledger: { minted: [], pairings: [], begun: new Set() },
  };
}

const iso = (ms: number) => new Date(ms).toISOString();
const newId = (w: World, prefix: string) => `${prefix}-${w.nextId++}`;

function audit(w: World, type: string, details: Record<string, unknown> = {}): void {
  w.cp.audit.push({ seq: w.cp.audit.length + 1, at: iso(w.now), type, connectorId: CONNECTOR_ID, details });
}

function setState(w: World, record: CpRecord, state: CpRecord['state']): void {
  if (record.state !== state) {
    record.state = state;
    record.stateChangedAt = w.now;
  }
  record.revision += 1;
}

// ---- the Connector as the API server holds it ----

export function connectorObject(w: World): Connector {
  const { storage, tokenTTL, validateRestart } = w.options;
  return {
    apiVersion: 'vaultpam.io/v1alpha1',
    kind: 'Connector',
    metadata: { name: NAME, namespace: NAMESPACE, uid: WORLD_UID, generation: w.generation },
    spec: {
      connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] },
      ...(storage === 'ephemeral' ? { storage: { ephemeral: true } } : {}),
      ...(storage === 'adopted' ? { workloadRef: { kind: 'Deployment' as const, name: ADOPTED } } : {}),
      enrollment: { tokenTTL },
      recovery: {
        policy: w.spec.policy,
        validateRestart,
        ...(w.spec.requestId ? { requestId: w.spec.requestId } : {}),
      },
      paused: w.spec.paused,
    },
    ...(w.status ? { status: structuredClone(w.status) } : {}),
  };
}

// ---- the control plane ----

function recordJson(w: World, r: CpRecord): CpConnector {
  const live = w.cp.tokens.find((t) => t.id === r.liveTokenId);
  return {
    connectorId: CONNECTOR_ID,
    org: 'acme',
    endpointId: 'ep-1',
    allowedNetworks: ['10.0.0.0/8'],
    state: r.state,
    bootstrapRetired: r.bootstrapRetired,
    lastHeartbeatAt: r.lastHeartbeatAt === null ? null : iso(r.lastHeartbeatAt),
    stateChangedAt: iso(r.stateChangedAt),
    enrolledAt: r.enrolledAt === null ? null : iso(r.enrolledAt),
    paths: r.paths.map((p) => ({ ...p })),
    certificate: r.serial
      ? {
          serial: r.serial,
          notBefore: iso(r.enrolledAt ?? START),
          notAfter: iso((r.enrolledAt ?? START) + 30 * 86_400_000),
          fingerprintSha256: `fp-${r.serial}`,
        }
      : null,
    liveToken: live && live.expiresAt > w.now ? { tokenId: live.id, expiresAt: iso(live.expiresAt) } : null,
    recovery: r.recovery
      ? {
          requestId: r.recovery.requestId,
          startedAt: iso(r.recovery.startedAt),
          completedAt: r.recovery.completedAt === null ? null : iso(r.recovery.completedAt),
        }
      : null,
    lastEnrollmentFailure: r.lastEnrollmentFailure
      ? { code: r.lastEnrollmentFailure.code, at: iso(r.lastEnrollmentFailure.at) }
      : null,
    ownerUid: WORLD_UID,
    revision: r.revision,
  };
}

const cpError = (code: string, message: string) => new CodedError(code, message, { temporary: false });
const unreachable = () =>
  new CodedError('CONTROL_PLANE_UNREACHABLE', 'connect ECONNREFUSED 127.0.0.1:8443', { temporary: true });

function requireRecord(w: World): CpRecord {
  if (!w.cp.reachable) throw unreachable();
  const record = w.cp.record;
  if (!record) throw cpError('CONNECTOR_NOT_FOUND', `connector ${CONNECTOR_ID} does not exist`);
  return record;
}

function revokeLive(w: World, record: CpRecord): void {
  for (const t of w.cp.tokens) if (t.status === 'live') t.status = 'revoked';
  record.liveTokenId = null;
}

/** The control plane's rule for beginning a recovery (state.ts recoveryDecision). */
function recoveryDecision(record: CpRecord, requestId: string): 'same' | 'begin' | 'not_needed' {
  if (record.recovery?.requestId === requestId) return 'same';
  if (record.state === 'needs_recovery' || record.state === 'offline' || record.state === 'recovering')
    return 'begin';
  if (record.state === 'enrolling' && record.bootstrapRetired) return 'begin';
  return 'not_needed';
}

function ensureConnector(w: World): void {
  if (!w.cp.reachable) throw unreachable();
  if (w.cp.record) return;
  w.cp.record = {
    state: 'pending',
    bootstrapRetired: false,
    lastHeartbeatAt: null,
    stateChangedAt: w.now,
    enrolledAt: null,
    paths: [],
    serial: null,
    liveTokenId: null,
    recovery: null,
    lastEnrollmentFailure: null,
    revision: 1,
  };
  audit(w, 'connector.created');
}

function beginRecovery(w: World, requestId: string): void {
  const record = requireRecord(w);
  const decision = recoveryDecision(record, requestId);
  if (decision === 'same') return;
  if (decision === 'not_needed')
    throw cpError('RECOVERY_NOT_NEEDED', `a connector in state ${record.state} needs no recovery`);
  revokeLive(w, record);
  record.serial = null;
  record.recovery = { requestId, startedAt: w.now, completedAt: null };
  audit(w, 'recovery.started', { requestId });
  setState(w, record, 'recovering');
  w.ledger.begun.add(requestId);
}

function mintToken(w: World, key: string, ttlSeconds: number, forRecovery: string | undefined): TokenRow {
  const record = requireRecord(w);
  const existing = w.cp.tokens.find((t) => t.key === key);
  if (existing) {
    if (existing.status === 'live' && existing.expiresAt > w.now) return existing;
    throw cpError(
      'IDEMPOTENCY_KEY_CONSUMED',
      'the token minted with this idempotency key is spent; use a new key',
    );
  }
  if (record.bootstrapRetired && record.state !== 'recovering')
    throw cpError('RECOVERY_REQUIRED', 'the connector is retired from bootstrap; begin a recovery first');
  revokeLive(w, record);
  const token: TokenRow = { id: newId(w, 'tok'), key, expiresAt: w.now + ttlSeconds * 1000, status: 'live' };
  w.cp.tokens.push(token);
  record.liveTokenId = token.id;
  record.revision += 1;
  audit(w, 'token.minted', { tokenId: token.id });
  w.ledger.minted.push({ key, id: token.id, at: w.now, forRecovery });
  return token;
}

// ---- the agent ----

function dataDirOf(w: World, pod: SimPod): DataDir | undefined {
  if (w.options.storage === 'claim') return w.claim?.data;
  return pod.emptyDir;
}

function failClosed(w: World, pod: SimPod, exitCode: number, failureClass: string, code: string): void {
  pod.agent.running = false;
  pod.agent.ready = false;
  delete pod.agent.serial;
  pod.agent.last = {
    exitCode,
    message: JSON.stringify({ failureClass, code, reason: `agent stopped: ${code}` }),
    finishedAt: iso(w.now),
  };
}

function runWith(pod: SimPod, serial: string): void {
  pod.agent.running = true;
  pod.agent.ready = true;
  pod.agent.serial = serial;
}

/** Pairs once with the mounted token, as the control plane's enroll answers it. */
function enroll(w: World, pod: SimPod, data: DataDir, tokenId: string): void {
  const record = w.cp.record;
  const token = w.cp.tokens.find((t) => t.id === tokenId);
  if (!record || !token) {
    failClosed(w, pod, 11, 'FirstBootBootstrap', 'ENROLLMENT_TOKEN_INVALID');
    return;
  }
  const refuse = (code: string) => {
    record.lastEnrollmentFailure = { code, at: w.now };
    record.revision += 1;
    audit(w, 'gateway.enrollment_failed', { code });
  };
  if (record.bootstrapRetired && record.state !== 'recovering') {
    // Its own spent token after retirement: the runbook's invalid bootstrap fallback.
    refuse('ENROLLMENT_TOKEN_INVALID');
    setState(w, record, 'needs_recovery');
    failClosed(w, pod, 10, 'IdentityLoss', 'ENROLLMENT_TOKEN_INVALID');
    return;
  }
  const refusal =
    token.status === 'used'
      ? 'ENROLLMENT_TOKEN_INVALID'
      : token.status === 'revoked'
        ? 'ENROLLMENT_TOKEN_REVOKED'
        : token.expiresAt <= w.now
          ? 'ENROLLMENT_TOKEN_EXPIRED'
          : undefined;
  if (refusal) {
    refuse(refusal);
    failClosed(w, pod, 11, 'FirstBootBootstrap', refusal);
    return;
  }
  token.status = 'used';
  record.liveTokenId = null;
  // Hex, as a control plane writes a serial (the operator keeps no other shape: untrusted-text.ts).
  const serial = `5e${String(w.nextId++).padStart(30, '0')}`;
  record.serial = serial;
  record.enrolledAt = w.now;
  record.lastHeartbeatAt = null;
  record.paths = [];
  w.ledger.pairings.push({
    key: token.key,
    cpRecovery: record.state === 'recovering' ? record.recovery?.requestId : undefined,
    at: w.now,
  });
  audit(w, 'endpoint.enrolled', { serial });
  setState(w, record, 'enrolling');
  data.serial = serial;
  delete data.refusedWithTokens;
  runWith(pod, serial);
}

/** The agent starts: reconnect with its identity, pair with the mounted token, or fail closed. */
function bootAgent(w: World, pod: SimPod): void {
  const data = dataDirOf(w, pod);
  if (!data) {
    failClosed(w, pod, 12, 'Configuration', 'CONFIGURATION_INVALID');
    return;
  }
  if (!w.cp.reachable) {
    // It retries the control plane; not ready meanwhile.
    pod.agent.running = true;
    pod.agent.ready = false;
    delete pod.agent.serial;
    return;
  }
  const token = pod.mounted;
  if (data.serial) {
    if (w.cp.record?.serial === data.serial) {
      runWith(pod, data.serial);
      return;
    }
    // Refused. A token minted after an earlier refusal is a guided recovery's: move the identity
    // aside and pair once with it; otherwise remember what was mounted and fail closed.
    const seen = data.refusedWithTokens;
    if (token && seen !== undefined && !seen.includes(token.tokenId)) {
      delete data.serial;
      enroll(w, pod, data, token.tokenId);
      return;
    }
    data.refusedWithTokens = [...(seen ?? []), ...(token ? [token.tokenId] : [])];
    failClosed(w, pod, 13, 'IdentityLoss', 'IDENTITY_REJECTED');
    return;
  }
  if (!token) {
    failClosed(w, pod, 11, 'FirstBootBootstrap', 'ENROLLMENT_TOKEN_MISSING');
    return;
  }
  enroll(w, pod, data, token.tokenId);
  return;
}

function heartbeat(w: World): void {
  const pod = w.pod;
  if (!pod || pod.deleting || !pod.agent.running || !w.cp.reachable) return;
  if (!pod.agent.serial) {
    bootAgent(w, pod);
    return;
  }
  const record = w.cp.record;
  const data = dataDirOf(w, pod);
  if (!record || record.serial !== pod.agent.serial) {
    if (data)
      data.refusedWithTokens = [
        ...(data.refusedWithTokens ?? []),
        ...(pod.mounted ? [pod.mounted.tokenId] : []),
      ];
    failClosed(w, pod, 13, 'IdentityLoss', 'IDENTITY_REJECTED');
    return;
  }
  const frozen =
    record.state === 'needs_recovery' || record.state === 'recovering' || record.state === 'pending';
  if (record.state === 'enrolling' && !record.bootstrapRetired) {
    record.bootstrapRetired = true;
    audit(w, 'endpoint.bootstrap_retired');
  }
  if (record.state === 'enrolling' && record.recovery && record.recovery.completedAt === null) {
    record.recovery.completedAt = w.now;
    audit(w, 'recovery.completed', { requestId: record.recovery.requestId });
  }
  record.lastHeartbeatAt = w.now;
  record.paths = [{ name: 'tunnel', healthy: w.pathsHealthy, detail: w.pathsHealthy ? '' : 'unreachable' }];
  if (!frozen) setState(w, record, w.pathsHealthy ? 'online' : 'degraded');
}

// ---- Kubernetes ----

function replicasWanted(w: World): number {
  if (w.adopted) return w.adopted.replicas;
  return w.statefulSet?.spec?.replicas ?? 0;
}

function templateAnnotations(w: World): Record<string, string> {
  return w.statefulSet?.spec?.template?.metadata?.annotations ?? {};
}

function controllers(w: World, kubeletBehind = false): void {
  if (w.adopted || w.statefulSet) {
    const pod = w.pod;
    const wanted = replicasWanted(w);
    const restartFor = templateAnnotations(w)[ANNOTATIONS.restartedFor];
    if (pod?.deleting) {
      w.pod = undefined;
      return;
    }
    if (pod && (wanted === 0 || pod.annotations[ANNOTATIONS.restartedFor] !== restartFor)) {
      pod.deleting = true;
      return;
    }
    if (w.agentHeld) return;
    if (!pod && wanted >= 1) {
      if (w.options.storage === 'claim' && !w.claim) w.claim = { uid: newId(w, 'claim'), data: {} };
      const created: SimPod = {
        name: w.adopted ? `${ADOPTED}-${w.nextId}` : NAMES.pod,
        uid: newId(w, 'pod'),
        startedAt: w.now,
        annotations: restartFor ? { [ANNOTATIONS.restartedFor]: restartFor } : {},
        deleting: false,
        ...(w.options.storage === 'claim' ? {} : { emptyDir: {} }),
        ...(kubeletBehind ? {} : mountedToken(w)),
        agent: { running: false, ready: false, restartCount: 0 },
      };
      w.pod = created;
      bootAgent(w, created);
      return;
    }
    // The kubelet restarts a container that stopped (CrashLoopBackOff, without the waiting).
    if (pod && !pod.agent.running) {
      pod.agent.restartCount += 1;
      bootAgent(w, pod);
    }
  }
}

function mountedToken(w: World): Pick<SimPod, 'mounted'> {
  return w.secret ? { mounted: { tokenId: w.secret.tokenId, key: w.secret.key } } : {};
}

/**
 * The kubelet syncs the pod's Secret volume with the Secret as it is now; for the token's optional
 * Secret volume a Secret that is gone is an empty one, so the token file goes at that sync. Until
 * then (a step of its own here) a running pod's volume keeps what was last written there, and a
 * container restarted in the same pod still finds that token (a new pod starts with no token:
 * mountedToken).
 */
function kubeletSync(w: World): void {
  if (!w.pod) return;
  w.pod.mounted = mountedToken(w).mounted;
}

function containerRestart(w: World): void {
  const pod = w.pod;
  if (!pod || pod.deleting || w.agentHeld) return;
  if (pod.agent.running) pod.agent.last = { exitCode: 137, finishedAt: iso(w.now) };
  pod.agent.restartCount += 1;
  bootAgent(w, pod);
}

function podV1(w: World, pod: SimPod): V1Pod {
  const v1 = podObject({
    name: pod.name,
    uid: pod.uid,
    dataVolume: w.options.storage === 'claim' ? 'claim' : 'emptyDir',
    claimName: NAMES.claim,
    running: pod.agent.running,
    ready: pod.agent.ready,
    restartCount: pod.agent.restartCount,
    annotations: { ...pod.annotations },
    startTime: iso(pod.startedAt),
    ...(pod.agent.last ? { terminated: { ...pod.agent.last } } : {}),
  });
  if (pod.deleting && v1.metadata) v1.metadata.deletionTimestamp = new Date(w.now);
  return v1;
}

// ---- observing, as observe.ts does ----

export function observe(w: World): Observed {
  const connector = connectorObject(w);
  const spec = defaultedSpec(connector);
  const record = w.cp.record;
  const controlPlane: Observed['controlPlane'] = w.cp.reachable
    ? { reachable: true, record: record ? recordJson(w, record) : undefined }
    : { reachable: false, error: unreachable() };
  const mayMatter = tokenSecretMayMatter(connector, spec, controlPlane);
  const tokenSecret: TokenSecretFacts | undefined =
    mayMatter && w.secret
      ? {
          name: NAMES.tokenSecret,
          uid: w.secret.uid,
          mintKey: w.secret.key,
          expiresAt: w.secret.expiresAt,
          createdAt: w.secret.createdAt,
          deleting: false,
        }
      : undefined;
  const hidden = w.adopted !== undefined && !w.adopted.consented;
  const pods = w.pod && !hidden ? [podV1(w, w.pod)] : [];
  const claims = new Map(
    w.claim && w.options.storage === 'claim'
      ? [[NAMES.claim, { name: NAMES.claim, uid: w.claim.uid, phase: 'Bound', deleting: false }]]
      : [],
  );
  let workload: Observed['workload'];
  if (w.adopted) {
    workload = {
      kind: 'Deployment',
      name: ADOPTED,
      replicas: w.adopted.replicas,
      readyReplicas: w.pod?.agent.ready ? 1 : 0,
      templateAnnotations: {},
      consented: w.adopted.consented,
      ...(w.adopted.consented ? { adoptedBy: NAME, podSelector: `app=${ADOPTED}` } : {}),
    };
  } else if (w.statefulSet) {
    const sts = structuredClone(w.statefulSet);
    workload = {
      kind: 'StatefulSet',
      name: NAMES.statefulSet,
      replicas: sts.spec?.replicas ?? 1,
      readyReplicas: w.pod?.agent.ready ? 1 : 0,
      templateAnnotations: sts.spec?.template?.metadata?.annotations ?? {},
      object: sts,
    };
  }
  const step = w.status?.recovery?.step;
  const startedAt = w.status?.recovery?.startedAt;
  const auditNow =
    w.cp.reachable && startedAt && (step === 'AwaitingOnline' || step === 'ValidatingRestart')
      ? w.cp.audit.filter((e) => Date.parse(e.at) >= Date.parse(startedAt)).map((e) => ({ ...e }))
      : undefined;
  let recoveryCheck: RecoveryCheck | undefined;
  const requestId = w.status?.recovery?.requestId;
  if (w.cp.reachable && step === 'Checking' && requestId) {
    const decision = record ? recoveryDecision(record, requestId) : 'missing';
    recoveryCheck =
      decision === 'same' || decision === 'begin'
        ? { requestId, allowed: true }
        : decision === 'missing'
          ? { requestId, allowed: false, code: 'CONNECTOR_NOT_FOUND', message: 'no such connector' }
          : {
              requestId,
              allowed: false,
              code: 'RECOVERY_NOT_NEEDED',
              message: `a connector in state ${record?.state} needs no recovery`,
            };
  }
  return {
    connector,
    spec: { ok: true, value: spec },
    defaultImage: 'vaultpam-connector:test',
    controlPlaneUrl: 'https://cp.example:8443',
    caPem: 'CA',
    workload,
    configMap: w.configMap ? structuredClone(w.configMap) : undefined,
    tokenSecret,
    pods,
    claims,
    controlPlane,
    ...(w.foreign ? { foreign: [{ kind: 'ConfigMap' as const, name: NAMES.configMap }] } : {}),
    ...(auditNow ? { audit: auditNow } : {}),
    ...(recoveryCheck ? { recoveryCheck } : {}),
  };
}

// ---- one reconcile pass ----

/** What the world held when a pass observed it, beyond what the operator can observe. */
export interface Truth {
  /** The certificate the agent runs with, if it runs with one (in a pod not being deleted). */
  agentSerial: string | undefined;
  /** The certificate the control plane holds for the connector. */
  recordSerial: string | undefined;
  /** The idempotency key of the control plane's live token, if one is live. */
  liveTokenKey: string | undefined;
}

export interface Pass {
  step: Step;
  now: Date;
  truth: Truth;
  observed: Observed;
  /** What the pass planned, as the planner tests read it. */
  plan: PlanView;
  previous: ConnectorStatus;
  /** The effects of act that happened, in order. */
  applied: string[];
  outcome: 'ok' | 'failed' | 'crashed';
  error?: CodedError;
  /** The status written (absent when the operator died first). */
  written?: ConnectorStatus;
  /** With `twins`: two more observations of the same world, made before planning, never planned. */
  twins?: [Observed, Observed];
  /** With `twins`: the observation as it was before plan() saw it (Maps as entries). */
  observedJson?: string;
}

export interface PassOptions {
  failAt?: number;
  dieAt?: number;
  /** Observe the world twice more before planning, for tests that plan it again. */
  twins?: boolean;
}

/** JSON of an observation, with Maps as their entries. */
export const observationJson = (value: unknown) =>
  JSON.stringify(value, (_key, v) => (v instanceof Map ? [...(v as Map<unknown, unknown>).entries()] : v));

interface Effect {
  name: string;
  run: () => void;
}

/**
 * The effects act.ts carries out for one step of a plan: a mint is two (the control plane mints,
 * then the Secret is written), a dry run none (it changes nothing, and the world's Kubernetes
 * accepts every object).
 */
function effectsOf(w: World, observed: Observed, p: Plan, action: PlannedAction | undefined): Effect[] {
  if (!action) return [];
  const forRecovery = (() => {
    const planned = statusOfSteps(p.steps).recovery;
    return planned?.step && planned.step !== 'Completed' && planned.step !== 'Failed'
      ? planned.requestId
      : undefined;
  })();
  switch (action.kind) {
    case 'dryRun':
    case 'expandClaim':
      return [];
    case 'ensureConnector':
      return [{ name: 'ensureConnector', run: () => ensureConnector(w) }];
    case 'beginRecovery':
      return [{ name: 'beginRecovery', run: () => beginRecovery(w, action.requestId) }];
    case 'revokeTokens':
      return [{ name: 'revokeTokens', run: () => revokeLive(w, requireRecord(w)) }];
    case 'deleteTokenSecret': {
      const judged = observed.tokenSecret?.uid;
      return [
        {
          name: 'deleteTokenSecret',
          run: () => {
            if (w.secret && (judged === undefined || w.secret.uid === judged)) w.secret = undefined;
          },
        },
      ];
    }
    case 'mintToken': {
      let minted: TokenRow | undefined;
      return [
        {
          name: `mint ${action.idempotencyKey}`,
          run: () => {
            minted = mintToken(w, action.idempotencyKey, action.ttlSeconds, forRecovery);
          },
        },
        {
          name: 'storeTokenSecret',
          run: () => {
            if (!minted) return;
            w.secret = {
              uid: w.secret?.uid ?? newId(w, 'secret'),
              key: action.idempotencyKey,
              tokenId: minted.id,
              expiresAt: iso(minted.expiresAt),
              // A write over the Secret there keeps its object; a Secret stored anew is created now.
              createdAt: w.secret?.createdAt ?? iso(w.now),
            };
          },
        },
      ];
    }
    case 'applyConfigMap': {
      const configMap = action.object;
      return [{ name: 'applyConfigMap', run: () => (w.configMap = structuredClone(configMap)) }];
    }
    case 'applyStatefulSet': {
      const sts = action.object;
      return [{ name: 'applyStatefulSet', run: () => (w.statefulSet = structuredClone(sts)) }];
    }
    case 'scaleAdopted': {
      const replicas = action.replicas;
      return [
        {
          name: `scaleAdopted ${replicas}`,
          run: () => {
            if (w.adopted) w.adopted.replicas = replicas;
          },
        },
      ];
    }
  }
}

export function reconcile(w: World, step: Step, mode: PassOptions = {}): Pass {
  const now = new Date(w.now);
  const running = w.pod && !w.pod.deleting && w.pod.agent.running ? w.pod.agent.serial : undefined;
  const truth: Truth = {
    agentSerial: running,
    recordSerial: w.cp.record?.serial ?? undefined,
    liveTokenKey: w.cp.tokens.find((t) => t.status === 'live' && t.expiresAt > w.now)?.key,
  };
  const observed = observe(w);
  const twins = mode.twins
    ? { twins: [observe(w), observe(w)] as [Observed, Observed], observedJson: observationJson(observed) }
    : {};
  const p = plan(observed, now);
  const view = viewOf(p);
  const previous = structuredClone(w.status ?? {});
  const applied: string[] = [];
  let error: CodedError | undefined;
  // Effects are numbered across the whole pass, as failAt and dieAt count them.
  let effectNumber = 0;
  let ran = 0;
  steps: for (const planned of p.steps) {
    for (const effect of effectsOf(w, observed, p, planned.action)) {
      const i = effectNumber++;
      if (mode.dieAt === i)
        return { step, now, truth, observed, plan: view, previous, applied, outcome: 'crashed', ...twins };
      if (mode.failAt === i) {
        error = new CodedError('KUBERNETES_UNAVAILABLE', `injected failure at ${effect.name}`, {
          temporary: true,
        });
        break steps;
      }
      try {
        effect.run();
        applied.push(effect.name);
      } catch (thrown) {
        if (!(thrown instanceof CodedError)) throw thrown;
        error = thrown;
        break steps;
      }
    }
    ran++;
  }
  if (!error && !observed.controlPlane.reachable) error = observed.controlPlane.error;
  const written = statusOfPass(
    p,
    { ran, ...(error ? { error } : {}) },
    now,
    observed.connector.metadata.generation,
  );
  w.status = structuredClone(written);
  return {
    step,
    now,
    truth,
    observed,
    plan: view,
    previous,
    applied,
    outcome: error ? 'failed' : 'ok',
    ...(error ? { error } : {}),
    written,
    ...twins,
  };
}

// ---- applying a step ----

/**
 * Applies one step and returns the passes it made (what each planned and did). Every step (each
 * round of a settle) takes a second of world time.
 */
export function apply(
  w: World,
  step: Step,
  options: { twins?: boolean; afterPass?: (pass: Pass) => void } = {},
): Pass[] {
  if (step.kind === 'settle') {
    const passes: Pass[] = [];
    for (let i = 0; i < step.rounds; i++) {
      passes.push(...apply(w, { kind: 'reconcile' }, options));
      apply(w, { kind: 'kubeletSync' });
      apply(w, { kind: 'controllers' });
      apply(w, { kind: 'heartbeat' });
    }
    return passes;
  }
  const pass = applyOne(w, step, options);
  if (pass) options.afterPass?.(pass);
  return pass ? [pass] : [];
}

/** The control plane marks a connector offline after this long without a heartbeat (3 x 10 s). */
export const OFFLINE_AFTER_MS = 30_000;

/** The control plane's offline sweep. */
function sweep(w: World): void {
  const record = w.cp.record;
  if (!record || (record.state !== 'online' && record.state !== 'degraded')) return;
  if (w.now - (record.lastHeartbeatAt ?? record.stateChangedAt) >= OFFLINE_AFTER_MS)
    setState(w, record, 'offline');
}

function applyOne(w: World, step: Step, options: { twins?: boolean }): Pass | undefined {
  w.now += 1000;
  sweep(w);
  switch (step.kind) {
    case 'settle':
      return undefined;
    case 'reconcile':
      return reconcile(w, step, options);
    case 'reconcileFails':
      return reconcile(w, step, { ...options, failAt: step.at });
    case 'operatorRestart':
      return reconcile(w, step, { ...options, dieAt: step.at });
    case 'advance':
      // A running agent heartbeats all along, the kubelet syncs; the sweep judges the others.
      w.now += step.ms;
      kubeletSync(w);
      heartbeat(w);
      sweep(w);
      return undefined;
    case 'controllers':
      controllers(w, step.kubeletBehind);
      return undefined;
    case 'podDeleted':
      if (w.pod) w.pod.deleting = true;
      return undefined;
    case 'containerRestart':
      containerRestart(w);
      return undefined;
    case 'kubeletSync':
      kubeletSync(w);
      return undefined;
    case 'heartbeat':
      heartbeat(w);
      return undefined;
    case 'cpMarksOffline': {
      const record = w.cp.record;
      if (record && (record.state === 'online' || record.state === 'degraded'))
        setState(w, record, 'offline');
      return undefined;
    }
    case 'pathHealth':
      w.pathsHealthy = step.healthy;
      return undefined;
    case 'claimReplaced':
      if (w.options.storage === 'claim' && w.claim) {
        w.claim = { uid: newId(w, 'claim'), data: {} };
        if (w.pod) w.pod.deleting = true;
      }
      return undefined;
    case 'cpReachable':
      w.cp.reachable = step.reachable;
      return undefined;
    case 'adminRevokes':
      if (w.cp.record && w.cp.reachable) revokeLive(w, w.cp.record);
      return undefined;
    case 'tokenSecretDeleted':
      w.secret = undefined;
      return undefined;
    case 'setRequestId':
      if (w.spec.requestId !== step.id) {
        w.spec.requestId = step.id;
        w.generation += 1;
      }
      return undefined;
    case 'setPolicy':
      if (w.spec.policy !== step.policy) {
        w.spec.policy = step.policy;
        w.generation += 1;
      }
      return undefined;
    case 'setPaused':
      if (w.spec.paused !== step.paused) {
        w.spec.paused = step.paused;
        w.generation += 1;
      }
      return undefined;
    case 'foreignObject':
      w.foreign = step.present;
      return undefined;
    case 'consent':
      if (w.adopted) w.adopted.consented = step.given;
      return undefined;
    case 'agentHeld':
      w.agentHeld = step.held;
      return undefined;
  }
}

/** Live tokens of the connector in the control plane now. */
export function liveTokens(w: World): number {
  return w.cp.tokens.filter((t) => t.status === 'live' && t.expiresAt > w.now).length;
}

/** Whether the control plane has a token minted with this idempotency key. */
export function mintedKey(w: World, key: string): boolean {
  return w.cp.tokens.some((t) => t.key === key);
}

/** A short description of the world for a counterexample. */
export function describe(w: World): string {
  const r = w.cp.record;
  return [
    `t=+${(w.now - START) / 1000}s spec{paused:${w.spec.paused},policy:${w.spec.policy},requestId:${w.spec.requestId}}`,
    `cp{reachable:${w.cp.reachable},state:${r?.state},retired:${r?.bootstrapRetired},serial:${r?.serial},recovery:${r?.recovery?.requestId}}`,
    `tokens[${w.cp.tokens.map((t) => `${t.key}:${t.status}${t.expiresAt <= w.now ? '(expired)' : ''}`).join(',')}]`,
    `secret:${w.secret?.key} pod:${w.pod ? `${w.pod.name}${w.pod.deleting ? '(deleting)' : ''} running:${w.pod.agent.running}` : '-'} replicas:${replicasWanted(w)}`,
    `status{phase:${w.status?.phase},mintCount:${w.status?.enrollment?.mintCount},recovery:${w.status?.recovery?.requestId}/${w.status?.recovery?.step}}`,
  ].join(' ');
}
