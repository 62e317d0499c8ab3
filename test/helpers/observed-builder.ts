// Builds Observed values for planner table tests: a realistic default (a Connector with a bound
// claim, a running pod, a reachable control plane) that each case changes in one or two places.
import type { V1Pod } from '@kubernetes/client-node';
import { CodedError } from '../../src/lib/errors.ts';
import type { Connector, ConnectorStatus } from '../../src/operator/api/types.ts';
import { defaultedSpec } from '../../src/operator/api/types.ts';
import type { Connector as ControlPlaneConnector } from '../../src/operator/control-plane/admin-client.ts';
import {
  childNames,
  desiredConfigMap,
  desiredStatefulSet,
} from '../../src/operator/reconcile/desired-objects.ts';
import type {
  ClaimFacts,
  Observed,
  RecoveryCheck,
  TokenSecretFacts,
  WorkloadFacts,
} from '../../src/operator/reconcile/observed.ts';
import { recoveryMintKey } from '../../src/operator/reconcile/recovery-requests.ts';

export const UID = '1b4e28ba-2fa1-11d2-883f-0016d3cca427';
export const CLAIM_UID = 'c1a1m-0000-0000-0000-000000000001';

export function connector(
  overrides: { spec?: Partial<Connector['spec']>; status?: ConnectorStatus; generation?: number } = {},
): Connector {
  return {
    apiVersion: 'vaultpam.io/v1alpha1',
    kind: 'Connector',
    metadata: { name: 'edge', namespace: 'prod', uid: UID, generation: overrides.generation ?? 1 },
    spec: {
      connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] },
      ...overrides.spec,
    },
    ...(overrides.status ? { status: overrides.status } : {}),
  };
}

export function record(overrides: Partial<ControlPlaneConnector> = {}): ControlPlaneConnector {
  return {
    connectorId: 'prod.edge',
    org: 'acme',
    endpointId: 'ep-1',
    allowedNetworks: ['10.0.0.0/8'],
    state: 'online',
    bootstrapRetired: true,
    lastHeartbeatAt: '2026-01-01T00:00:00.000Z',
    stateChangedAt: '2025-12-31T23:00:00.000Z',
    enrolledAt: '2025-12-31T23:00:00.000Z',
    paths: [{ name: 'tunnel', healthy: true, detail: '' }],
    certificate: {
      serial: 'ab12',
      notBefore: '2025-12-31T23:00:00.000Z',
      notAfter: '2026-01-01T23:00:00.000Z',
      fingerprintSha256: 'ff00',
    },
    liveToken: null,
    recovery: null,
    lastEnrollmentFailure: null,
    revision: 7,
    ownerUid: UID,
    ...overrides,
  };
}

/** The status of recovery r1 at its validation restart, with `extra` (status fields) merged in. */
export function validatingRestartStatus(extra: Partial<ConnectorStatus> = {}): ConnectorStatus {
  return {
    phase: 'Recovering',
    enrollment: { retired: true },
    recovery: {
      requestId: 'r1',
      step: 'ValidatingRestart',
      attempts: 1,
      startedAt: '2026-01-01T00:00:00Z',
      mintKey: recoveryMintKey('r1'),
    },
    ...extra,
  };
}

/** A connector that never paired: no heartbeat, no certificate. */
export function pendingRecord(overrides: Partial<ControlPlaneConnector> = {}): ControlPlaneConnector {
  return record({
    state: 'pending',
    bootstrapRetired: false,
    lastHeartbeatAt: null,
    certificate: null,
    enrolledAt: null,
    ...overrides,
  });
}

export interface PodOptions {
  dataVolume?: 'claim' | 'emptyDir' | 'none';
  claimName?: string;
  running?: boolean;
  ready?: boolean;
  terminated?: { exitCode: number; message?: string; finishedAt?: string };
  restartCount?: number;
  annotations?: Record<string, string>;
  startTime?: string;
  name?: string;
  uid?: string;
}

export function pod(options: PodOptions = {}): V1Pod {
  const name = options.name ?? 'edge-0';
  const volume =
    options.dataVolume === 'emptyDir'
      ? [{ name: 'data', emptyDir: {} }]
      : options.dataVolume === 'none'
        ? []
        : [{ name: 'data', persistentVolumeClaim: { claimName: options.claimName ?? 'data-edge-0' } }];
  const running = options.running ?? !options.terminated;
  return {
    metadata: {
      name,
      namespace: 'prod',
      uid: options.uid ?? `pod-${name}`,
      annotations: options.annotations ?? {},
    },
    spec: {
      containers: [
        {
          name: 'connector',
          image: 'vaultpam-connector:test',
          env: [{ name: 'PAM_AGENT_DATA_DIR', value: '/data' }],
          volumeMounts: options.dataVolume === 'none' ? [] : [{ name: 'data', mountPath: '/data' }],
        },
      ],
      volumes: volume,
    },
    status: {
      phase: 'Running',
      startTime: (options.startTime ?? '2025-12-31T22:59:00Z') as unknown as Date,
      containerStatuses: [
        {
          name: 'connector',
          image: 'vaultpam-connector:test',
          imageID: '',
          ready: options.ready ?? running,
          restartCount: options.restartCount ?? 0,
          state: running ? { running: {} } : { waiting: { reason: 'CrashLoopBackOff' } },
          ...(options.terminated
            ? {
                lastState: {
                  terminated: {
                    exitCode: options.terminated.exitCode,
                    ...(options.terminated.message ? { message: options.terminated.message } : {}),
                    finishedAt: (options.terminated.finishedAt ?? '2026-01-01T00:00:00Z') as unknown as Date,
                  },
                },
              }
            : {}),
        },
      ],
    },
  };
}

export function claim(overrides: Partial<ClaimFacts> = {}): ClaimFacts {
  return {
    name: 'data-edge-0',
    uid: CLAIM_UID,
    phase: 'Bound',
    deleting: false,
    labelledFor: 'edge',
    ...overrides,
  };
}

export function tokenSecret(overrides: Partial<TokenSecretFacts> = {}): TokenSecretFacts {
  return {
    name: 'edge-enrollment-token',
    uid: 'secret-uid-1',
    mintKey: `enroll-${UID}-1`,
    expiresAt: '2026-01-01T04:00:00.000Z',
    deleting: false,
    ...overrides,
  };
}

export interface ObservedOptions {
  connector?: Connector;
  record?: ControlPlaneConnector | undefined | 'unreachable';
  pods?: V1Pod[];
  claims?: ClaimFacts[];
  tokenSecret?: TokenSecretFacts;
  workloadReplicas?: number;
  noWorkload?: boolean;
  templateAnnotations?: Record<string, string>;
  /** Overrides of the workload facts (an adopted workload: kind, name, consented, adoptedBy). */
  workload?: Partial<WorkloadFacts>;
  /** The control plane's dry-run answer for a recovery at step Checking. */
  recoveryCheck?: RecoveryCheck;
}

export function observed(options: ObservedOptions = {}): Observed {
  const c = options.connector ?? connector();
  const spec = defaultedSpec(c);
  const configMap = desiredConfigMap(c, spec, { url: 'https://cp.example:8443', caPem: 'CA' });
  const sts = desiredStatefulSet(c, spec, {
    image: 'vaultpam-connector:test',
    replicas: options.workloadReplicas ?? 1,
    configHash: 'h',
    restartedFor: undefined,
  });
  const claims = new Map((options.claims ?? [claim()]).map((cl) => [cl.name, cl]));
  const recordOption = 'record' in options ? options.record : record();
  return {
    connector: c,
    spec: { ok: true, value: spec },
    defaultImage: 'vaultpam-connector:test',
    controlPlaneUrl: 'https://cp.example:8443',
    caPem: 'CA',
    workload: options.noWorkload
      ? undefined
      : {
          kind: 'StatefulSet',
          name: childNames('edge').statefulSet,
          replicas: options.workloadReplicas ?? 1,
          readyReplicas: 1,
          templateAnnotations: options.templateAnnotations ?? {},
          object: sts,
          ...options.workload,
        },
    configMap,
    ...(options.tokenSecret ? { tokenSecret: options.tokenSecret } : { tokenSecret: undefined }),
    pods: options.pods ?? [pod()],
    claims,
    controlPlane:
      recordOption === 'unreachable'
        ? {
            reachable: false,
            error: new CodedError('CONTROL_PLANE_UNREACHABLE', 'connect ECONNREFUSED 127.0.0.1:8443', {
              temporary: true,
            }),
          }
        : { reachable: true, record: recordOption },
    ...(options.recoveryCheck ? { recoveryCheck: options.recoveryCheck } : {}),
  };
}
