// Connectors and the facts the plugin gathers about them, built by hand for the pure modules'
// table tests (runbook checks, recovery and token refusals). The cluster tests use real ones.
import type { Condition, Connector, ConnectorStatus } from '../../src/operator/api/types.ts';
import type { ConnectorFacts, PodFacts } from '../../src/plugin/connector-facts.ts';

export const NOW = new Date('2026-03-01T12:00:00Z');
export const UID = '4b1c0e9a-0000-4000-8000-000000000001';

export function cond(
  type: string,
  status: Condition['status'],
  reason: string,
  message = `${type} ${reason}`,
): Condition {
  return { type, status, reason, message, lastTransitionTime: '2026-03-01T11:00:00Z' };
}

export function connector(status: ConnectorStatus = {}, spec: Partial<Connector['spec']> = {}): Connector {
  return {
    apiVersion: 'vaultpam.io/v1alpha1',
    kind: 'Connector',
    metadata: { name: 'edge', namespace: 'team-a', uid: UID, resourceVersion: '42' },
    spec: { connector: { org: 'acme', endpointId: 'ep-1' }, ...spec },
    status,
  };
}

export const ONLINE_STATUS: ConnectorStatus = {
  phase: 'Online',
  mode: 'Autonomous',
  connectorId: 'team-a.edge',
  controlPlaneState: 'online',
  enrollment: { retired: true, mintCount: 1, lastMintKey: `enroll-${UID}-1` },
  storage: {
    source: 'PersistentVolumeClaim',
    claimName: 'data-edge-0',
    claimUID: 'claim-1',
    podName: 'edge-0',
  },
  conditions: [
    cond('Ready', 'True', 'Ready'),
    cond('DurableStorage', 'True', 'ClaimBound', 'claim data-edge-0 is bound'),
    cond('Enrolled', 'True', 'BootstrapRetired'),
    cond('Healthy', 'True', 'HeartbeatOk'),
  ],
};

export function runningPod(
  overrides: Partial<PodFacts> = {},
  agent: Partial<PodFacts['agent']> = {},
): PodFacts {
  return {
    name: 'edge-0',
    phase: 'Running',
    scheduled: true,
    deleting: false,
    nodeName: 'node-1',
    claims: ['data-edge-0'],
    agentState: 'running',
    agent: { podName: 'edge-0', podUID: 'p1', running: true, ready: true, restartCount: 0, ...agent },
    ...overrides,
  };
}

export function facts(c: Connector, overrides: Partial<ConnectorFacts> = {}): ConnectorFacts {
  return {
    connector: c,
    connectorId: 'team-a.edge',
    workload: {
      ok: true,
      value: {
        kind: 'StatefulSet',
        name: 'edge',
        adopted: false,
        object: {
          metadata: { name: 'edge' },
          spec: { replicas: 1, selector: {}, template: {}, serviceName: '' },
        },
      },
    },
    pods: { ok: true, value: [runningPod()] },
    claim: { ok: true, value: { name: 'data-edge-0', uid: 'claim-1', phase: 'Bound' } },
    events: { ok: true, value: [] },
    controlPlane: {
      source: {
        kind: 'ControlPlane',
        name: 'team-a/vaultpam',
        url: 'https://cp',
        ready: { status: 'True', reason: 'Reachable', message: 'ok' },
      },
      unavailable: 'not asked in this test',
    },
    at: NOW,
    ...overrides,
  };
}
