// The pod cache keeps only the fields a pass reads (src/operator/reconcile/pod-cache.ts). Held here:
// for pods as the API server and the kubelet report them, in every shape the planner tells apart
// (running, failed closed with a termination message, waiting, emptyDir, a moved data directory, a
// sidecar, being deleted, restarted for a recovery), the plan made from the cached pods is the plan
// made from the full ones, and so are the agent's facts and the data volume.
import type { V1Pod } from '@kubernetes/client-node';
import test from 'ava';
import { defaultedSpec } from '../../src/operator/api/types.ts';
import { desiredStatefulSet } from '../../src/operator/reconcile/desired-objects.ts';
import { statusOfSteps } from '../../src/operator/reconcile/pass-status.ts';
import { plan } from '../../src/operator/reconcile/plan.ts';
import { podAsCached } from '../../src/operator/reconcile/pod-cache.ts';
import { agentPodFacts } from '../../src/operator/reconcile/pod-facts.ts';
import { dataVolumeOf } from '../../src/operator/reconcile/storage-posture.ts';
import { connector, observed, record, validatingRestartStatus } from '../helpers/observed-builder.ts';

const NOW = new Date('2026-01-01T00:10:00Z');
const TERMINATION = JSON.stringify({
  failureClass: 'IdentityLoss',
  code: 'IDENTITY_LOST',
  reason: 'the identity file is there, its key is not',
  nextStep: 'request a guided recovery',
});

/** A connector pod as the kubelet reports it: the operator's template, the API server's defaults, the kubelet's status. */
function fullPod(shape: (pod: V1Pod) => void = () => {}): V1Pod {
  const c = connector();
  const template = desiredStatefulSet(c, defaultedSpec(c), {
    image: 'vaultpam-connector:test',
    replicas: 1,
    configHash: 'h',
    restartedFor: undefined,
  }).spec?.template;
  const pod: V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...template?.metadata,
      name: 'edge-connector-0',
      namespace: 'prod',
      uid: 'pod-uid-1',
      resourceVersion: '4711',
      creationTimestamp: new Date('2026-01-01T00:00:00Z'),
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'StatefulSet',
          name: 'edge-connector',
          uid: 'sts-uid',
          controller: true,
        },
      ],
    },
    spec: {
      ...template?.spec,
      containers: (template?.spec?.containers ?? []).map((container) => ({
        ...container,
        env: [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=64' }, ...(container.env ?? [])],
        terminationMessagePath: '/dev/termination-log',
        terminationMessagePolicy: 'FallbackToLogsOnError',
        imagePullPolicy: 'IfNotPresent',
        volumeMounts: [
          ...(container.volumeMounts ?? []),
          {
            name: 'kube-api-access-x1',
            mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
            readOnly: true,
          },
        ],
      })),
      volumes: [
        { name: 'data', persistentVolumeClaim: { claimName: 'data-edge-connector-0' } },
        ...(template?.spec?.volumes ?? []),
        {
          name: 'kube-api-access-x1',
          projected: {
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
              { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
            ],
          },
        },
      ],
      nodeName: 'node-1',
      dnsPolicy: 'ClusterFirst',
      schedulerName: 'default-scheduler',
      tolerations: [
        {
          key: 'node.kubernetes.io/not-ready',
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: 300,
        },
      ],
    },
    status: {
      phase: 'Running',
      hostIP: '10.0.0.5',
      podIP: '10.244.0.7',
      qosClass: 'Burstable',
      startTime: new Date('2026-01-01T00:00:05Z'),
      conditions: [{ type: 'Ready', status: 'True' }],
      containerStatuses: [
        {
          name: 'connector',
          image: 'vaultpam-connector:test',
          imageID: 'sha256:abc',
          containerID: 'containerd://1',
          ready: true,
          started: true,
          restartCount: 0,
          state: { running: { startedAt: new Date('2026-01-01T00:00:06Z') } },
          volumeMounts: [{ name: 'data', mountPath: '/data' }],
        },
      ],
    },
  };
  shape(pod);
  return pod;
}

const agentStatus = (pod: V1Pod) => {
  const status = pod.status?.containerStatuses?.[0];
  if (!status) throw new Error('the fixture has a container status');
  return status;
};

const shapes: Record<string, (pod: V1Pod) => void> = {
  'running and ready': () => {},
  'failed closed, its message in lastState': (pod) => {
    Object.assign(agentStatus(pod), {
      ready: false,
      started: false,
      restartCount: 3,
      state: { waiting: { reason: 'CrashLoopBackOff' } },
      lastState: {
        terminated: { exitCode: 12, message: TERMINATION, finishedAt: new Date('2026-01-01T00:09:00Z') },
      },
    });
  },
  'terminated now, a log tail as its message': (pod) => {
    Object.assign(agentStatus(pod), {
      ready: false,
      state: {
        terminated: {
          exitCode: 11,
          message: `starting\n${JSON.stringify({ failureClass: 'FirstBootBootstrap', code: 'ENROLLMENT_TOKEN_MISSING' })}\n`,
          finishedAt: new Date('2026-01-01T00:08:00Z'),
        },
      },
    });
  },
  'the data directory on an emptyDir': (pod) => {
    const volumes = pod.spec?.volumes ?? [];
    volumes[0] = { name: 'data', emptyDir: {} };
  },
  'the data directory moved by PAM_AGENT_DATA_DIR, a sidecar first': (pod) => {
    const agent = pod.spec?.containers[0];
    if (!agent || !pod.spec) throw new Error('the fixture has a container');
    agent.name = 'agent';
    agent.env = [...(agent.env ?? []), { name: 'PAM_AGENT_DATA_DIR', value: '/var/lib/agent/' }];
    agent.volumeMounts = [{ name: 'state', mountPath: '/var/lib' }];
    pod.spec.volumes = [...(pod.spec.volumes ?? []), { name: 'state', emptyDir: { medium: 'Memory' } }];
    pod.spec.containers = [
      { name: 'proxy', image: 'envoy', volumeMounts: [{ name: 'data', mountPath: '/data' }] },
      agent,
    ];
  },
  'being deleted': (pod) => {
    if (pod.metadata) pod.metadata.deletionTimestamp = new Date('2026-01-01T00:09:30Z');
  },
  'pending, not started': (pod) => {
    if (pod.status) {
      pod.status.phase = 'Pending';
      pod.status.containerStatuses = [
        {
          ...agentStatus(pod),
          ready: false,
          started: false,
          state: { waiting: { reason: 'ContainerCreating' } },
        },
      ];
    }
  },
  'restarted for a recovery': (pod) => {
    if (pod.metadata)
      pod.metadata.annotations = { ...pod.metadata.annotations, 'vaultpam.io/restarted-for': 'r1/cd34' };
  },
};

for (const [name, shape] of Object.entries(shapes)) {
  test(`${name}: the plan from the cached pod is the plan from the full one`, (t) => {
    const full = fullPod(shape);
    const cached = podAsCached(structuredClone(full));
    t.deepEqual(agentPodFacts(cached), agentPodFacts(full));
    t.deepEqual(dataVolumeOf(cached.spec), dataVolumeOf(full.spec));
    for (const rec of [
      record(),
      record({ state: 'offline' }),
      record({ state: 'needs_recovery' }),
      undefined,
    ]) {
      const world = (pods: V1Pod[]) => observed({ pods, record: rec, claims: undefined });
      t.deepEqual(plan(world([cached]), NOW), plan(world([full]), NOW));
      // Two pods, one of them older and gone: the same one is chosen from either form.
      const older = fullPod((pod) => {
        shape(pod);
        if (pod.metadata) {
          pod.metadata.name = 'edge-connector-0-old';
          pod.metadata.creationTimestamp = new Date('2025-12-31T00:00:00Z');
        }
      });
      t.deepEqual(
        plan(world([podAsCached(structuredClone(older)), cached]), NOW),
        plan(world([older, full]), NOW),
      );
    }
  });
}

test('a validation restart: its proof (the restarted pod, when it started) reads the same from the cached pod', (t) => {
  const inRecovery = connector({
    spec: { recovery: { policy: 'Manual', requestId: 'r1' } },
    status: validatingRestartStatus(),
  });
  const beatAfterStart = record({
    state: 'online',
    lastHeartbeatAt: '2026-01-01T00:00:08.000Z',
    certificate: { serial: 'cd34', notBefore: '', notAfter: '', fingerprintSha256: '' },
  });
  const full = fullPod(shapes['restarted for a recovery']);
  const world = (pods: V1Pod[]) =>
    observed({
      connector: inRecovery,
      record: beatAfterStart,
      pods,
      templateAnnotations: { 'vaultpam.io/restarted-for': 'r1/cd34' },
    });
  const fromFull = plan(world([full]), NOW);
  t.deepEqual(plan(world([podAsCached(structuredClone(full))]), NOW), fromFull);
  t.is(statusOfSteps(fromFull.steps).recovery?.step, 'Completed', 'the proof holds: the case is not vacuous');
});

test('the cached pod is a fraction of the full one, and keeps its identity and metadata', (t) => {
  const full = fullPod();
  const cached = podAsCached(structuredClone(full));
  t.deepEqual(cached.metadata, full.metadata);
  t.is(cached.status?.containerStatuses?.[0]?.image, '');
  t.is(cached.spec?.containers[0]?.image, undefined);
  t.true(JSON.stringify(cached).length < JSON.stringify(full).length * 0.75);
});
