// Everything the plugin knows about one Connector, gathered once for `status NAME`, `diagnose` and
// `report`: the Connector, its workload (the operator's StatefulSet or the adopted one), pods,
// claim, ConfigMap, Events, and the control plane's view (its record and the audit tail) when the
// person may ask it. Each read that fails says why in place of its answer; none stops the others.
import type { V1Deployment, V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import { backgroundClock, type Clock, type TimerHandle } from '../lib/clock.ts';
import { describeDuration } from '../lib/duration.ts';
import { CodedError } from '../lib/errors.ts';
import { isRecord } from '../lib/is-record.ts';
import { selectorLabels } from '../operator/api/constants.ts';
import { type Connector, defaultedSpec } from '../operator/api/types.ts';
import type { AuditEntry, Connector as RecordJson } from '../operator/control-plane/admin-client.ts';
import { childNames } from '../operator/reconcile/desired-objects.ts';
import { type AgentPodFacts, agentPodFacts } from '../operator/reconcile/pod-facts.ts';
import { AGENT_CONTAINER_NAME } from '../operator/reconcile/storage-posture.ts';
import { untrustedRecord, untrustedText } from '../operator/reconcile/untrusted-text.ts';
import {
  type ControlPlaneAccess,
  type ControlPlaneSource,
  controlPlaneAccess,
  controlPlaneOutcome,
  controlPlaneSilent,
} from './control-plane-access.ts';
import { type EventRecord, type KubeApi, type Readable, readable } from './kube-api.ts';
import type { DefaultControlPlaneFlags } from './options.ts';

/** How many audit entries of the connector `status` and `report` show, newest last. */
export const AUDIT_TAIL = 20;

/**
 * The longest the control plane's view may take in all: its record and every page of the audit
 * tail. Each request has its own timeout (10 s, control-plane-access.ts), but a control plane that
 * answers page after page just in time would otherwise hold `status` for minutes.
 */
export const CONTROL_PLANE_VIEW_DEADLINE_MS = 30_000;

export interface WorkloadFacts {
  kind: 'StatefulSet' | 'Deployment';
  name: string;
  adopted: boolean;
  /** Undefined when it does not exist. */
  object?: V1StatefulSet | V1Deployment;
}

export interface PodFacts {
  name: string;
  phase: string;
  /** The PodScheduled condition: scheduled, or why not. */
  scheduled: boolean;
  scheduleMessage?: string;
  deleting: boolean;
  nodeName?: string;
  /** The claims the pod mounts, by name. */
  claims: string[];
  /** The agent container's state: running, waiting (with its reason) or terminated. */
  agentState: string;
  agent: AgentPodFacts;
}

export interface ControlPlaneView {
  source: ControlPlaneSource;
  /** Why the control plane was not asked (no URL, a credential the person may not read, ...). */
  unavailable?: string;
  /** Asked, and no record came back: what it answered, or that it did not answer. */
  askFailed?: string;
  /**
   * With askFailed: whether the control plane answered (an error, or an answer that is no record),
   * which contradicts a status that says the operator reads the record, or no answer came to this
   * machine, which says nothing of the operator's own network.
   */
  askAnswered?: boolean;
  record?: RecordJson;
  /** The connector's newest audit entries, oldest first. */
  audit?: AuditEntry[];
  /** With a record: why no audit entries are shown (the control plane's answer, or none in time). */
  auditUnread?: string;
}

export interface ConnectorFacts {
  connector: Connector;
  connectorId: string;
  workload: Readable<WorkloadFacts>;
  pods: Readable<PodFacts[]>;
  /** The claim the pod's data directory is on now (the StatefulSet's, or the existing one named). */
  claim?: Readable<{ name: string; uid: string; phase: string }>;
  configMap?: Readable<{ name: string }>;
  events: Readable<EventRecord[]>;
  controlPlane: ControlPlaneView;
  /** When the facts were gathered. */
  at: Date;
}

/** The connector id as the operator computes it: the status's, else the spec's, else namespace.name. */
export function connectorIdOf(connector: Connector): string {
  if (connector.status?.connectorId) return connector.status.connectorId;
  try {
    return defaultedSpec(connector).connector.id;
  } catch {
    return connector.spec?.connector?.id ?? `${connector.metadata.namespace}.${connector.metadata.name}`;
  }
}

function selectorString(labels: Record<string, string> | undefined): string {
  return Object.entries(labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

export function podFacts(pod: V1Pod): PodFacts {
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  const status =
    pod.status?.containerStatuses?.find((s) => s.name === AGENT_CONTAINER_NAME) ??
    pod.status?.containerStatuses?.[0];
  const state = status?.state;
  const agentState = state?.running
    ? 'running'
    : state?.waiting
      ? `waiting (${untrustedText(state.waiting.reason ?? 'no reason', 64)})`
      : state?.terminated
        ? `terminated (exit ${state.terminated.exitCode})`
        : 'not started';
  return {
    name: pod.metadata?.name ?? '',
    phase: pod.status?.phase ?? 'Unknown',
    scheduled: Boolean(pod.spec?.nodeName) || scheduled?.status === 'True',
    ...(scheduled?.status === 'False' && scheduled.message
      ? { scheduleMessage: untrustedText(scheduled.message) }
      : {}),
    deleting: Boolean(pod.metadata?.deletionTimestamp),
    ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
    claims: (pod.spec?.volumes ?? []).flatMap((v) =>
      v.persistentVolumeClaim?.claimName ? [v.persistentVolumeClaim.claimName] : [],
    ),
    agentState,
    agent: agentPodFacts(pod),
  };
}

async function readWorkload(api: KubeApi, connector: Connector): Promise<Readable<WorkloadFacts>> {
  const namespace = connector.metadata.namespace ?? '';
  const name = connector.metadata.name ?? '';
  const ref = connector.spec.workloadRef;
  const kind = ref?.kind ?? 'StatefulSet';
  const workloadName = ref?.name ?? childNames(name).statefulSet;
  const read = await readable(() => api.readWorkload(namespace, kind, workloadName));
  if (!read.ok) return read;
  return {
    ok: true,
    value: {
      kind,
      name: workloadName,
      adopted: ref !== undefined,
      ...(read.value ? { object: read.value } : {}),
    },
  };
}

/** The pods of the workload: the operator's by its labels, an adopted one's by its own selector. */
async function readPods(
  api: KubeApi,
  connector: Connector,
  workload: Readable<WorkloadFacts>,
): Promise<Readable<PodFacts[]>> {
  const namespace = connector.metadata.namespace ?? '';
  let selector = selectorString(selectorLabels(connector.metadata.name ?? ''));
  if (connector.spec.workloadRef) {
    if (!workload.ok) return { ok: false, why: `the adopted workload could not be read: ${workload.why}` };
    selector = selectorString(workload.value?.object?.spec?.selector?.matchLabels);
    if (!selector) return { ok: true, value: [] };
  }
  const read = await readable(() => api.listPods(namespace, selector));
  if (!read.ok) return read;
  return { ok: true, value: (read.value ?? []).map(podFacts) };
}

/** Waits for requests until one moment on the clock, shared by several of them. */
export interface Deadline {
  /** The request's answer, or a CONTROL_PLANE_UNREACHABLE error once the moment has passed. */
  within<T>(request: Promise<T>): Promise<T>;
}

/** A deadline `milliseconds` from now on `clock`; stop() clears its timer. */
function deadlineIn(clock: Clock, milliseconds: number): Deadline & { stop(): void } {
  let timer: TimerHandle | undefined;
  const passed = new Promise<never>((_, reject) => {
    timer = clock.setTimeout(
      () =>
        reject(
          new CodedError(
            'CONTROL_PLANE_UNREACHABLE',
            `no complete answer within ${describeDuration(milliseconds)} (the plugin's bound for the record and the audit entries together)`,
            { temporary: true },
          ),
        ),
      milliseconds,
    );
  });
  // Passing while no request waits is no failure of anyone's.
  passed.catch(() => undefined);
  return {
    within: (request) => Promise.race([request, passed]),
    stop: () => clock.clearTimeout(timer),
  };
}

/** The newest `count` audit entries of the connector (the API pages oldest first). */
export async function auditTail(
  client: Extract<ControlPlaneAccess, { client: unknown }>['client'],
  connectorId: string,
  count: number,
  deadline: Deadline,
): Promise<AuditEntry[]> {
  const PAGE = 1000;
  let tail: AuditEntry[] = [];
  let afterSeq = 0;
  // Bounded: 50 pages is 50,000 entries for one connector, far past any real history; and the
  // deadline bounds the time, however slowly the pages come.
  for (let page = 0; page < 50; page += 1) {
    const answer: unknown = await deadline.within(client.audit({ connectorId, afterSeq, limit: PAGE }));
    if (!Array.isArray(answer)) {
      throw new CodedError('BAD_RESPONSE', 'the audit answer is no list of entries');
    }
    // An element that is no object is no entry (status reads its fields).
    const entries = answer.filter(isRecord) as unknown as AuditEntry[];
    tail = [...tail, ...entries].slice(-count);
    if (answer.length < PAGE) break;
    // The next page starts after the last seq: one that is no number, or does not move past the
    // one asked after, would ask for the same page again (a broken or hostile control plane).
    const last: unknown = entries.at(-1)?.seq;
    if (typeof last !== 'number' || !Number.isSafeInteger(last) || last <= afterSeq) break;
    afterSeq = last;
  }
  return tail;
}

/** What the control plane says of the connector, or why it was not asked, or what it answered instead. */
export async function controlPlaneView(
  access: ControlPlaneAccess,
  connectorId: string,
  auditCount: number,
  clock: Clock = backgroundClock,
): Promise<ControlPlaneView> {
  if ('unavailable' in access) return { source: access.source, unavailable: access.unavailable };
  // One bound for the whole view, the record and the audit pages together.
  const deadline = deadlineIn(clock, CONTROL_PLANE_VIEW_DEADLINE_MS);
  try {
    // Cleaned as the operator cleans it before quoting it in status: the control plane's record
    // carries text an agent wrote (paths, details) and whatever a broken or hostile server sends.
    const record = untrustedRecord(await deadline.within(access.client.getConnector(connectorId)));
    if (!record) {
      return {
        source: access.source,
        askFailed: 'the control plane answered with no connector record',
        askAnswered: true,
      };
    }
    try {
      const audit = await auditTail(access.client, connectorId, auditCount, deadline);
      return { source: access.source, record, audit };
    } catch (error) {
      // The record stands without them; the report says why there are none.
      return {
        source: access.source,
        record,
        auditUnread: `the control plane ${controlPlaneOutcome(error, access.credential)}`,
      };
    }
  } catch (error) {
    return {
      source: access.source,
      askFailed: `the control plane ${controlPlaneOutcome(error, access.credential)}`,
      askAnswered: !controlPlaneSilent(error),
    };
  } finally {
    deadline.stop();
    access.client.close();
  }
}

export interface GatherInput {
  api: KubeApi;
  connector: Connector;
  operatorNamespace: string;
  defaults: DefaultControlPlaneFlags;
  auditCount?: number;
  /** Called with the credential read, if any, so whoever writes files can redact it. */
  onCredential?: (credential: string) => void;
}

export async function gatherFacts(input: GatherInput): Promise<ConnectorFacts> {
  const { api, connector } = input;
  const namespace = connector.metadata.namespace ?? '';
  const name = connector.metadata.name ?? '';
  const connectorId = connectorIdOf(connector);
  const access = await controlPlaneAccess(input);
  if ('credential' in access) input.onCredential?.(access.credential);
  const workload = await readWorkload(api, connector);
  const [pods, events, controlPlane] = await Promise.all([
    readPods(api, connector, workload),
    readable(() =>
      api.eventsAbout(namespace, [
        { kind: 'Connector', name },
        ...(workload.ok && workload.value ? [{ kind: workload.value.kind, name: workload.value.name }] : []),
        { kind: 'Pod', name: childNames(name).pod },
      ]),
    ),
    controlPlaneView(access, connectorId, input.auditCount ?? AUDIT_TAIL),
  ]);
  const facts: ConnectorFacts = {
    connector,
    connectorId,
    workload,
    pods,
    events,
    controlPlane,
    at: new Date(),
  };
  const claimName =
    connector.status?.storage?.claimName ??
    connector.spec.storage?.existingClaim ??
    (connector.spec.workloadRef || connector.spec.storage?.ephemeral ? undefined : childNames(name).claim);
  if (claimName) {
    const read = await readable(() => api.readClaim(namespace, claimName));
    facts.claim = read.ok
      ? {
          ok: true,
          value: read.value
            ? {
                name: claimName,
                uid: read.value.metadata?.uid ?? '',
                phase: read.value.status?.phase ?? 'Unknown',
              }
            : undefined,
        }
      : read;
  }
  if (!connector.spec.workloadRef) {
    const configMapName = childNames(name).configMap;
    const read = await readable(() => api.readConfigMap(namespace, configMapName));
    facts.configMap = read.ok ? { ok: true, value: read.value ? { name: configMapName } : undefined } : read;
  }
  return facts;
}
