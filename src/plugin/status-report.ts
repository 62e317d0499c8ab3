// What `status` shows: one row per Connector (phase, mode, last heartbeat, token expiry, diagnosis,
// recovery step), and for one Connector the full report: conditions with their ages, the owned
// objects and their state, the pod and its last termination, the control plane's view (state,
// certificate expiry) and the last audit entries. Built as plain data first (what -o json and -o
// yaml print), then as text. Text that came from the control plane or a pod is already cleaned
// (untrusted-text) when it gets here; audit entries and condition messages are cleaned here.
import { ADOPTED_BY_LABEL } from '../operator/api/constants.ts';
import type { Connector, RecoveryStatus, TokenFlow } from '../operator/api/types.ts';
import { liveTokenOf } from '../operator/reconcile/live-token.ts';
import { untrustedText, untrustedTime } from '../operator/reconcile/untrusted-text.ts';
import { conditionMessage, conditionReason } from './condition-text.ts';
import type { ConnectorFacts, PodFacts } from './connector-facts.ts';
import { indent, table } from './output.ts';
import { age, relativeTime } from './time-text.ts';

export interface ConnectorSummary {
  namespace: string;
  name: string;
  phase: string;
  mode: string;
  lastHeartbeatTime?: string;
  /** The control plane says heartbeats arrive (online, degraded): the status shows no time then. */
  heartbeatsArriving: boolean;
  /**
   * live (with tokenExpiresAt and tokenMintedFor: the token the Secret holds, the enrollment's or a
   * guided recovery's), retired, expired, or none.
   */
  token: 'retired' | 'live' | 'expired' | 'none';
  tokenExpiresAt?: string;
  tokenMintedFor?: TokenFlow;
  diagnosis?: string;
  recoveryRequestId?: string;
  recoveryStep?: string;
  connectorId?: string;
  controlPlane: string;
  ready?: string;
  createdAt?: string;
}

export function summarize(connector: Connector, now: Date): ConnectorSummary {
  const status = connector.status ?? {};
  const enrollment = status.enrollment ?? {};
  // The token the Secret holds, whichever flow minted it: a guided recovery's one token is live on
  // a retired connector too. Without one, the enrollment's record says how its last token ended.
  const live = liveTokenOf(status);
  const expiresAt = live?.expiresAt ?? (enrollment.retired ? undefined : enrollment.tokenExpiresAt);
  const token = expiresAt
    ? new Date(expiresAt).getTime() > now.getTime()
      ? 'live'
      : 'expired'
    : enrollment.retired
      ? 'retired'
      : 'none';
  const ref = connector.spec?.controlPlaneRef;
  const ready = status.conditions?.find((c) => c.type === 'Ready');
  return {
    namespace: connector.metadata.namespace ?? '',
    name: connector.metadata.name ?? '',
    phase: status.phase ?? '',
    mode: status.mode ?? '',
    ...(status.lastHeartbeatTime ? { lastHeartbeatTime: status.lastHeartbeatTime } : {}),
    heartbeatsArriving: status.controlPlaneState === 'online' || status.controlPlaneState === 'degraded',
    token,
    ...(expiresAt ? { tokenExpiresAt: expiresAt } : {}),
    ...(live ? { tokenMintedFor: live.mintedFor } : {}),
    ...(status.diagnosis?.failureClass ? { diagnosis: status.diagnosis.failureClass } : {}),
    ...(status.recovery?.requestId ? { recoveryRequestId: status.recovery.requestId } : {}),
    ...(status.recovery?.step ? { recoveryStep: status.recovery.step } : {}),
    ...(status.connectorId ? { connectorId: status.connectorId } : {}),
    controlPlane: ref ? `${ref.kind ?? 'ControlPlane'}/${ref.name}` : 'default',
    ...(ready ? { ready: `${ready.status}${ready.status === 'True' ? '' : ` (${ready.reason})`}` } : {}),
    ...(connector.metadata.creationTimestamp
      ? { createdAt: new Date(connector.metadata.creationTimestamp).toISOString() }
      : {}),
  };
}

/** The last heartbeat once they stopped; while they arrive the status names no time (report.ts). */
function heartbeatText(summary: ConnectorSummary, now: Date, exact: boolean): string {
  if (summary.heartbeatsArriving) return 'arriving';
  if (!summary.lastHeartbeatTime) return '<none>';
  const ago = age(summary.lastHeartbeatTime, now);
  return exact ? `${summary.lastHeartbeatTime} (${ago} ago)` : ago;
}

function tokenText(summary: ConnectorSummary, now: Date): string {
  if (summary.token === 'retired') return 'retired';
  if (!summary.tokenExpiresAt) return '-';
  const when = relativeTime(summary.tokenExpiresAt, now);
  const whose = summary.tokenMintedFor === 'Recovery' ? ' (recovery)' : '';
  return summary.token === 'expired' ? `expired ${when}${whose}` : `${when}${whose}`;
}

/** The table of `status` without a name: one line per Connector. */
export function summaryTable(
  summaries: readonly ConnectorSummary[],
  now: Date,
  options: { allNamespaces: boolean; wide: boolean },
): string {
  const headers = [
    ...(options.allNamespaces ? ['NAMESPACE'] : []),
    'NAME',
    'PHASE',
    'MODE',
    'LAST HEARTBEAT',
    'TOKEN EXPIRY',
    'DIAGNOSIS',
    'RECOVERY',
    'AGE',
    ...(options.wide ? ['CONNECTOR ID', 'CONTROL PLANE', 'READY'] : []),
  ];
  const rows = summaries.map((s) => [
    ...(options.allNamespaces ? [s.namespace] : []),
    s.name,
    s.phase || '<none>',
    s.mode || '<none>',
    heartbeatText(s, now, false),
    tokenText(s, now),
    s.diagnosis ?? '-',
    s.recoveryStep ? `${s.recoveryStep} (${s.recoveryRequestId})` : '-',
    age(s.createdAt, now),
    ...(options.wide ? [s.connectorId ?? '<none>', s.controlPlane, s.ready ?? '<none>'] : []),
  ]);
  return table(headers, rows);
}

export interface ObjectState {
  kind: string;
  name: string;
  state: string;
}

export interface StatusReport {
  summary: ConnectorSummary;
  conditions: Array<{ type: string; status: string; reason: string; age: string; message: string }>;
  diagnosis?: NonNullable<Connector['status']>['diagnosis'];
  recovery?: RecoveryStatus;
  objects: ObjectState[];
  pod?: {
    name: string;
    phase: string;
    node?: string;
    agent: string;
    ready: boolean;
    restarts: number;
    lastTermination?: string;
  };
  podsUnreadable?: string;
  controlPlane: {
    source: string;
    url?: string;
    ready?: string;
    /** Why its view is missing. */
    notAsked?: string;
    /** Asked, and no record came back: what it answered, or that it did not answer. */
    askFailed?: string;
    state?: string;
    bootstrapRetired?: boolean;
    lastHeartbeatAt?: string | null;
    certificate?: { serial: string; notAfter: string; expires: string } | null;
    liveTokenExpiresAt?: string | null;
    lastEnrollmentFailure?: string | null;
  };
  /** An entry's seq and at are left out when they are not a whole number and a time. */
  audit: Array<{ seq?: number; at?: string; type: string; details: string }>;
  /** The record was read and the audit entries were not: why. */
  auditUnread?: string;
}

function objectStates(facts: ConnectorFacts): ObjectState[] {
  const { connector } = facts;
  const status = connector.status ?? {};
  const states: ObjectState[] = [];
  if (facts.workload.ok) {
    const w = facts.workload.value;
    const object = w?.object;
    const replicas = object?.spec?.replicas ?? 0;
    const ready = object?.status?.readyReplicas ?? 0;
    const consented = object?.metadata?.labels?.[ADOPTED_BY_LABEL] === connector.metadata.name;
    const adoption = w?.adopted
      ? consented
        ? 'adopted, '
        : `adopted without consent (no ${ADOPTED_BY_LABEL}=${connector.metadata.name} label), `
      : '';
    states.push({
      kind: w?.kind ?? 'StatefulSet',
      name: w?.name ?? connector.metadata.name ?? '',
      state: object ? `${adoption}${ready}/${replicas} ready` : 'does not exist',
    });
  } else {
    states.push({ kind: 'workload', name: '-', state: `not readable: ${facts.workload.why}` });
  }
  if (facts.configMap) {
    const name = facts.configMap.ok ? facts.configMap.value?.name : undefined;
    states.push({
      kind: 'ConfigMap',
      name: name ?? `${connector.metadata.name}-config`,
      state: facts.configMap.ok
        ? name
          ? 'present'
          : 'does not exist'
        : `not readable: ${facts.configMap.why}`,
    });
  }
  if (facts.claim) {
    const claim = facts.claim.ok ? facts.claim.value : undefined;
    const paired = status.storage?.claimUID;
    states.push({
      kind: 'PersistentVolumeClaim',
      name: claim?.name ?? status.storage?.claimName ?? '-',
      state: !facts.claim.ok
        ? `not readable: ${facts.claim.why}`
        : claim
          ? `${claim.phase}, UID ${claim.uid}${paired ? (paired === claim.uid ? ' (the one the identity is on)' : ` (NOT ${paired}, the one the identity was on)`) : ''}`
          : 'does not exist',
    });
  }
  const tokenSecret = status.enrollment?.tokenSecretName;
  states.push({
    kind: 'Secret',
    name: tokenSecret ?? `${connector.metadata.name}-enrollment-token`,
    state: tokenSecret
      ? `holds ${liveTokenWords(status)} (never read here)`
      : status.enrollment?.retired
        ? 'none: deleted once bootstrap retired'
        : 'none',
  });
  return states;
}

/**
 * The live token in words, for a status that names its Secret: whose it is and until when ("the
 * live enrollment token, until T", or a guided recovery's one token).
 */
export function liveTokenWords(status: NonNullable<Connector['status']>): string {
  const live = liveTokenOf(status);
  const whose =
    live?.mintedFor === 'Recovery'
      ? `the live token of guided recovery ${status.recovery?.requestId ?? '?'}`
      : 'the live enrollment token';
  return `${whose}, until ${live?.expiresAt ?? '?'}`;
}

function podOf(facts: ConnectorFacts): PodFacts | undefined {
  if (!facts.pods.ok) return undefined;
  const pods = facts.pods.value ?? [];
  const named = facts.connector.status?.storage?.podName;
  return pods.find((p) => p.name === named) ?? pods.find((p) => !p.deleting) ?? pods[0];
}

function terminationText(pod: PodFacts): string | undefined {
  const t = pod.agent.termination;
  if (!t) return undefined;
  const what = [t.failureClass, t.code].filter(Boolean).join(' ');
  return `exit ${t.exitCode}${what ? ` ${what}` : ''}${t.finishedAt ? ` at ${t.finishedAt}` : ''}${t.reason ? `: ${t.reason}` : ''}`;
}

export function statusReport(facts: ConnectorFacts): StatusReport {
  const now = facts.at;
  const status = facts.connector.status ?? {};
  const view = facts.controlPlane;
  const record = view.record;
  const pod = podOf(facts);
  const lastTermination = pod ? terminationText(pod) : undefined;
  const source = view.source;
  return {
    summary: summarize(facts.connector, now),
    conditions: (status.conditions ?? []).map((c) => ({
      type: c.type,
      status: c.status,
      reason: conditionReason(c),
      age: age(c.lastTransitionTime, now),
      message: conditionMessage(c),
    })),
    ...(status.diagnosis ? { diagnosis: status.diagnosis } : {}),
    ...(status.recovery ? { recovery: status.recovery } : {}),
    objects: objectStates(facts),
    ...(pod
      ? {
          pod: {
            name: pod.name,
            phase: pod.phase,
            ...(pod.nodeName ? { node: pod.nodeName } : {}),
            agent: pod.agentState,
            ready: pod.agent.ready,
            restarts: pod.agent.restartCount,
            ...(lastTermination ? { lastTermination } : {}),
          },
        }
      : {}),
    ...(facts.pods.ok ? {} : { podsUnreadable: facts.pods.why }),
    controlPlane: {
      source: source.kind === 'default' ? "the operator's default" : `${source.kind} ${source.name}`,
      ...(source.url ? { url: source.url } : {}),
      ...(source.ready ? { ready: `${source.ready.status} (${source.ready.reason})` } : {}),
      ...(view.unavailable ? { notAsked: view.unavailable } : {}),
      ...(view.askFailed ? { askFailed: view.askFailed } : {}),
      ...(record
        ? {
            state: record.state,
            bootstrapRetired: record.bootstrapRetired,
            lastHeartbeatAt: record.lastHeartbeatAt,
            certificate: record.certificate
              ? {
                  serial: record.certificate.serial,
                  notAfter: record.certificate.notAfter,
                  expires: relativeTime(record.certificate.notAfter, now),
                }
              : null,
            liveTokenExpiresAt: record.liveToken?.expiresAt ?? null,
            lastEnrollmentFailure: record.lastEnrollmentFailure
              ? `${record.lastEnrollmentFailure.code} at ${record.lastEnrollmentFailure.at}`
              : null,
          }
        : {}),
    },
    audit: (view.audit ?? []).map((e) => {
      // Every field of an entry is the control plane's: a seq or a time it sent as text reached the
      // terminal as sent (an escape sequence, a forged line). They are kept as the operator keeps
      // them for a recovery's evidence (recovery-evidence.ts): a whole number, an RFC 3339 time.
      const at = untrustedTime(e.at);
      return {
        ...(Number.isSafeInteger(e.seq) ? { seq: e.seq } : {}),
        ...(at ? { at } : {}),
        type: untrustedText(e.type, 64),
        details: untrustedText(JSON.stringify(e.details ?? {})),
      };
    }),
    ...(view.auditUnread ? { auditUnread: view.auditUnread } : {}),
  };
}

/** `Label:` padded to a column, as kubectl describe aligns values; no label continues the one above. */
function line(label: string, value: string): string {
  return `${(label ? `${label}:` : '').padEnd(20)}${value}`;
}

/** The report as text, the way `kubectl describe` lays a resource out. */
export function statusReportText(report: StatusReport, now: Date): string {
  const s = report.summary;
  const out: string[] = [];
  out.push(`Connector ${s.namespace}/${s.name}`);
  out.push(
    indent(
      [
        line('Connector ID', s.connectorId ?? '<none>'),
        line('Phase', s.phase || '<none>'),
        line('Mode', s.mode || '<none>'),
        line('Last heartbeat', heartbeatText(s, now, true)),
        line('Token', tokenText(s, now)),
        line('Control plane', s.controlPlane),
      ].join('\n'),
    ),
  );
  const d = report.diagnosis;
  out.push('', 'Diagnosis:');
  if (d?.failureClass) {
    out.push(
      indent(
        [
          line('Failure class', d.failureClass),
          line('Reason', d.reason ?? ''),
          ...(d.evidence ?? []).map((e, i) => line(i === 0 ? 'Evidence' : '', e)),
          line('Next step', d.nextStep ?? ''),
          line('Since', d.since ? `${d.since} (${age(d.since, now)} ago)` : '<unknown>'),
        ].join('\n'),
      ),
    );
  } else {
    out.push('  none');
  }
  const r = report.recovery;
  out.push('', 'Recovery:');
  if (r?.requestId) {
    out.push(
      indent(
        [
          line('Request', r.requestId),
          line('Step', `${r.step ?? ''}${r.outcome ? ` (${r.outcome})` : ''}`),
          ...(r.reason ? [line('Reason', r.reason)] : []),
          ...(r.startedAt ? [line('Started', r.startedAt)] : []),
          ...(r.finishedAt ? [line('Finished', r.finishedAt)] : []),
        ].join('\n'),
      ),
    );
  } else {
    out.push('  none');
  }
  out.push('', 'Conditions:');
  out.push(
    indent(
      report.conditions.length > 0
        ? table(
            ['TYPE', 'STATUS', 'REASON', 'AGE', 'MESSAGE'],
            report.conditions.map((c) => [c.type, c.status, c.reason, c.age, c.message]),
          )
        : 'none written yet',
    ),
  );
  out.push('', 'Owned objects:');
  out.push(
    indent(
      table(
        ['KIND', 'NAME', 'STATE'],
        report.objects.map((o) => [o.kind, o.name, o.state]),
      ),
    ),
  );
  out.push('', 'Pod:');
  if (report.pod) {
    const p = report.pod;
    out.push(
      indent(
        [
          line('Name', `${p.name}${p.node ? ` on ${p.node}` : ''}`),
          line('Phase', p.phase),
          line('Agent', `${p.agent}, ${p.ready ? 'ready' : 'not ready'}, ${p.restarts} restart(s)`),
          line('Last termination', p.lastTermination ?? 'none'),
        ].join('\n'),
      ),
    );
  } else {
    out.push(`  ${report.podsUnreadable ? `not readable: ${report.podsUnreadable}` : 'none'}`);
  }
  const cp = report.controlPlane;
  out.push('', "Control plane's view:");
  const cpLines = [
    line(
      'Control plane',
      `${cp.source}${cp.url ? ` (${cp.url})` : ''}${cp.ready ? `, Ready ${cp.ready}` : ''}`,
    ),
  ];
  if (cp.notAsked) {
    cpLines.push(line('Not asked', cp.notAsked));
  } else if (cp.askFailed) {
    cpLines.push(line('Asked', cp.askFailed));
  } else {
    cpLines.push(
      line('State', cp.state ?? '<none>'),
      line('Bootstrap retired', String(cp.bootstrapRetired ?? false)),
      line('Last heartbeat', cp.lastHeartbeatAt ?? 'never'),
      line(
        'Certificate',
        cp.certificate
          ? `serial ${cp.certificate.serial}, expires ${cp.certificate.notAfter} (${cp.certificate.expires})`
          : 'none',
      ),
      line('Live token', cp.liveTokenExpiresAt ? `expires ${cp.liveTokenExpiresAt}` : 'none'),
      line('Last refusal', cp.lastEnrollmentFailure ?? 'none'),
    );
  }
  out.push(indent(cpLines.join('\n')));
  out.push('', 'Last audit entries:');
  out.push(
    indent(
      report.audit.length > 0
        ? table(
            ['SEQ', 'TIME', 'TYPE', 'DETAILS'],
            report.audit.map((e) => [
              e.seq === undefined ? '?' : String(e.seq),
              e.at ?? '?',
              e.type,
              e.details,
            ]),
          )
        : cp.notAsked
          ? 'not asked (see above)'
          : cp.askFailed
            ? 'none read (see above)'
            : report.auditUnread
              ? `not read: ${report.auditUnread}`
              : 'none',
    ),
  );
  return `${out.join('\n')}\n`;
}
