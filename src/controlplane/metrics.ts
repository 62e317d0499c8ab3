// Prometheus metrics on a per-instance Registry (never prom-client's global one), so several
// control planes in one test process do not share counters.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { CONNECTOR_STATES, type ConnectorState } from './state.ts';

export const ENROLLMENT_FAILURE_REASONS = [
  'retired',
  'unknown',
  'used',
  'expired',
  'revoked',
  'wrong_connector',
  'csr_invalid',
  'csr_subject_mismatch',
  'csr_key_unsupported',
] as const;
export type EnrollmentFailureReason = (typeof ENROLLMENT_FAILURE_REASONS)[number];

export interface ControlPlaneMetrics {
  registry: Registry;
  heartbeats: Counter;
  heartbeatTimeouts: Counter;
  enrollments: Counter;
  enrollmentsAnsweredAgain: Counter;
  enrollmentFailures: Counter<'reason'>;
  tokensMinted: Counter;
  certRenewals: Counter;
  /** Refused-enrollment and refused-certificate audit entries not written because one source sent too many. */
  auditSuppressed: Counter;
  /** Refused client certificates, by error code: a bounded label set. */
  certificateRefusals: Counter<'code'>;
  /** Writes a budget declined (budgets.ts), by budget name: a bounded label set. */
  budgetExceeded: Counter<'budget'>;
  requestDuration: Histogram<'route' | 'status'>;
  /** Completed TLS handshakes, by whether they resumed a session (a ticket) or were full. */
  tlsHandshakes: Counter<'resumed'>;
  connectionsRefused: Counter<'reason'>;
}

/**
 * `processMetrics` adds prom-client's process and Node metrics (CPU, memory, event-loop lag, GC) to
 * this registry; the CLI turns it on, tests that start many control planes in one process do not.
 */
export function createMetrics(
  countByState: () => Map<ConnectorState, number>,
  options: { processMetrics?: boolean; openConnections?: () => number } = {},
): ControlPlaneMetrics {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const metrics: ControlPlaneMetrics = {
    registry,
    heartbeats: new Counter({ name: 'cp_heartbeats_total', help: 'Heartbeats accepted.', registers }),
    heartbeatTimeouts: new Counter({
      name: 'cp_tunnel_heartbeat_timeouts_total',
      help: 'Connectors moved to offline because no heartbeat arrived within the offline threshold.',
      registers,
    }),
    enrollments: new Counter({ name: 'cp_enrollments_total', help: 'Successful enrollments.', registers }),
    enrollmentsAnsweredAgain: new Counter({
      name: 'cp_enrollments_answered_again_total',
      help: 'Enrollments answered again: the spent token and the same key before any heartbeat (a lost answer).',
      registers,
    }),
    enrollmentFailures: new Counter({
      name: 'cp_enrollment_failures_total',
      help: 'Refused enrollments by reason.',
      labelNames: ['reason'],
      registers,
    }),
    tokensMinted: new Counter({
      name: 'cp_tokens_minted_total',
      help: 'Enrollment tokens minted.',
      registers,
    }),
    certRenewals: new Counter({ name: 'cp_cert_renewals_total', help: 'Certificates renewed.', registers }),
    auditSuppressed: new Counter({
      name: 'cp_audit_suppressed_total',
      help: 'gateway.enrollment_failed and endpoint.certificate_refused audit entries not written because too many came for one connector (or for unknown ones).',
      registers,
    }),
    certificateRefusals: new Counter({
      name: 'cp_client_certificate_refusals_total',
      help: 'Client certificates refused on the mTLS routes, by error code (CLIENT_CERTIFICATE_*).',
      labelNames: ['code'],
      registers,
    }),
    budgetExceeded: new Counter({
      name: 'cp_budget_exceeded_total',
      help: 'Writes not made because a caller without an admin credential spent a write budget, by budget.',
      labelNames: ['budget'],
      registers,
    }),
    requestDuration: new Histogram({
      name: 'cp_http_request_duration_seconds',
      help: 'HTTP request duration by route and status.',
      labelNames: ['route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    connectionsRefused: new Counter({
      name: 'cp_connections_refused_total',
      help: 'Connections refused before any request: per_address, one address held the most it may; total, the control plane held the most it may.',
      labelNames: ['reason'],
      registers,
    }),
    tlsHandshakes: new Counter({
      name: 'cp_http_tls_handshakes_total',
      help: 'Completed TLS handshakes: resumed="true" resumed a session from a ticket, "false" was a full handshake.',
      labelNames: ['resumed'],
      registers,
    }),
  };
  // Both series from the start, so a rate of full handshakes is never missing for lack of one.
  for (const resumed of ['true', 'false']) metrics.tlsHandshakes.inc({ resumed }, 0);
  for (const reason of ['per_address', 'total']) metrics.connectionsRefused.inc({ reason }, 0);
  const openConnections = options.openConnections;
  if (openConnections) {
    new Gauge({
      name: 'cp_http_open_connections',
      help: 'Open client connections (each TLS connection holds about 75 KiB of this process).',
      registers,
      collect() {
        this.set(openConnections());
      },
    });
  }
  // Every reason is exported from the start at 0, so rate() and increase() count the first refusal
  // after a restart too (a series that appears at 1 reads as no increase).
  for (const reason of ENROLLMENT_FAILURE_REASONS) metrics.enrollmentFailures.inc({ reason }, 0);
  new Gauge({
    name: 'cp_connectors',
    help: 'Connectors by state.',
    labelNames: ['state'],
    registers,
    collect() {
      const counts = countByState();
      for (const state of CONNECTOR_STATES) this.set({ state }, counts.get(state) ?? 0);
    },
  });
  return metrics;
}
