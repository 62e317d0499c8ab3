// The load generator of the control-plane scale benchmark (bench/control-plane-scale.ts): one process
// of simulated connector agents, forked by it. Each agent talks to the control plane exactly as a real
// one does, through the agent's own client (src/agent/control-plane-client.ts: its connection reuse,
// TLS session cache and deadline): it enrolls with its token and a fresh P-256 key, switches the
// client to the issued certificate, then heartbeats over mTLS, waiting the interval the control plane
// answers after each answer (src/agent/heartbeat-loop.ts). Keys and CSRs are made before the
// enrollment clock starts. Nothing renews: a run is far shorter than a certificate's lifetime.
//
// Driven over IPC by the parent, step by step (init -> prepared, enroll -> enrolled, beat -> beaten,
// exit); it exits when told, or when the parent goes away. Traffic goes to the parent's control plane
// on loopback only, and every step is bounded by the parent's times.
import { ControlPlaneClient } from '../src/agent/control-plane-client.ts';
import { systemClock } from '../src/lib/clock.ts';
import { asCodedError } from '../src/lib/errors.ts';
import { createCsrPem, generateKeyPairPem } from '../src/lib/pki.ts';

export interface AgentsInit {
  type: 'init';
  url: string;
  caPem: string;
  agents: Array<{ connectorId: string; token: string }>;
  /** This process's first agent in the whole fleet, and the fleet size: spreads the first beats. */
  firstIndex: number;
  total: number;
}
export interface AgentsEnroll {
  type: 'enroll';
  /** Enrollments in flight at once in this process. */
  concurrency: number;
}
export interface AgentsBeat {
  type: 'beat';
  /** Epoch ms: agent i of the fleet sends its first heartbeat at firstAt + (i / total) * rampMs. */
  firstAt: number;
  rampMs: number;
  /** Epoch ms: heartbeats sent in [measureFrom, measureUntil) are measured; none is sent after stopAt. */
  measureFrom: number;
  measureUntil: number;
  stopAt: number;
}
export type AgentsCommand = AgentsInit | AgentsEnroll | AgentsBeat | { type: 'exit' };

export interface AgentsEnrolled {
  type: 'enrolled';
  latencies: number[];
  failures: number;
  /** Epoch ms of the first request and of the last answer. */
  startedAt: number;
  endedAt: number;
  /** The heartbeat interval the control plane answered, in seconds. */
  intervalSeconds: number;
  lastError?: string;
}
export interface AgentsBeaten {
  type: 'beaten';
  /** Latencies (ms) of the accepted heartbeats sent in the measured window. */
  latencies: number[];
  /** Failed heartbeats in the window, by error code. */
  errors: Record<string, number>;
  /** Heartbeats sent over the whole run (ramp and settle included), and failed ones. */
  sent: number;
  failed: number;
}
export type AgentsReport = { type: 'prepared' } | AgentsEnrolled | AgentsBeaten;

interface SimAgent {
  connectorId: string;
  token: string;
  globalIndex: number;
  keyPem: string;
  csrPem: string;
  client: ControlPlaneClient;
  /** Set once enrolled. */
  certPem?: string;
}

const REQUEST_TIMEOUT_MS = 30_000;
const BEAT_BODY_PATHS = [{ name: 'tunnel', healthy: true, detail: 'mTLS session established' }];

let agents: SimAgent[] = [];
let intervalMs = 10_000;
const send = (report: AgentsReport) => process.send?.(report);

async function prepare(init: AgentsInit): Promise<void> {
  agents = [];
  for (const [i, item] of init.agents.entries()) {
    const { privateKeyPem } = await generateKeyPairPem('ec-p256');
    agents.push({
      connectorId: item.connectorId,
      token: item.token,
      globalIndex: init.firstIndex + i,
      keyPem: privateKeyPem,
      csrPem: createCsrPem(privateKeyPem, item.connectorId),
      client: new ControlPlaneClient({
        baseUrl: init.url,
        caPem: init.caPem,
        caFile: undefined,
        requestTimeoutMs: REQUEST_TIMEOUT_MS,
        clock: systemClock,
      }),
    });
  }
  send({ type: 'prepared' });
}

async function enroll(command: AgentsEnroll): Promise<void> {
  const latencies: number[] = [];
  let failures = 0;
  let lastError: string | undefined;
  let next = 0;
  const startedAt = Date.now();
  const worker = async () => {
    while (next < agents.length) {
      const agent = agents[next++] as SimAgent;
      const started = performance.now();
      try {
        const answer = await agent.client.enroll({
          connectorId: agent.connectorId,
          token: agent.token,
          csrPem: agent.csrPem,
        });
        latencies.push(performance.now() - started);
        intervalMs = answer.heartbeatIntervalSeconds * 1000;
        // As the agent does once its identity is written: the client now presents the certificate.
        agent.client.setIdentity({ keyPem: agent.keyPem, certPem: answer.certificatePem });
        agent.certPem = answer.certificatePem;
      } catch (error) {
        failures += 1;
        lastError = asCodedError(error, 'INTERNAL_ERROR').code;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(command.concurrency, agents.length) }, worker));
  send({
    type: 'enrolled',
    latencies,
    failures,
    startedAt,
    endedAt: Date.now(),
    intervalSeconds: intervalMs / 1000,
    ...(lastError ? { lastError } : {}),
  });
}

async function beat(command: AgentsBeat, total: number): Promise<void> {
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let sent = 0;
  let failed = 0;
  const sleepUntil = (at: number) => new Promise((done) => setTimeout(done, Math.max(0, at - Date.now())));
  const loop = async (agent: SimAgent) => {
    let due = command.firstAt + (agent.globalIndex / total) * command.rampMs;
    while (due < command.stopAt) {
      await sleepUntil(due);
      const sentAt = Date.now();
      const measured = sentAt >= command.measureFrom && sentAt < command.measureUntil;
      const started = performance.now();
      sent += 1;
      try {
        const answer = await agent.client.heartbeat({ paths: BEAT_BODY_PATHS, agentVersion: 'bench' });
        if (measured) latencies.push(performance.now() - started);
        // The agent waits the interval the control plane answers, counted from the answer.
        due = Date.now() + answer.heartbeatIntervalSeconds * 1000;
      } catch (error) {
        failed += 1;
        if (measured) {
          const code = asCodedError(error, 'INTERNAL_ERROR').code;
          errors[code] = (errors[code] ?? 0) + 1;
        }
        due = Date.now() + intervalMs;
      }
    }
  };
  await Promise.all(agents.filter((agent) => agent.certPem !== undefined).map(loop));
  send({ type: 'beaten', latencies, errors, sent, failed });
}

let total = 0;
process.on('message', (command: AgentsCommand) => {
  if (command.type === 'init') {
    total = command.total;
    void prepare(command);
  } else if (command.type === 'enroll') {
    void enroll(command);
  } else if (command.type === 'beat') {
    void beat(command, total);
  } else {
    for (const agent of agents) agent.client.close();
    process.exit(0);
  }
});
// The parent went away (it failed or was interrupted): nothing is left to report to.
process.on('disconnect', () => process.exit(0));
