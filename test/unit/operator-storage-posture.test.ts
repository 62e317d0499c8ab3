// Storage posture table tests: one case per thing that can back (or fail to back) the agent's data
// directory, judged from a running pod or from the workload template alone.
import type { V1Container, V1EnvVar, V1PodSpec, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import test from 'ava';
import type { ConnectorMode, StorageSource } from '../../src/operator/api/types.ts';
import { DurableStorageReasons } from '../../src/operator/conditions.ts';
import type { ClaimFacts } from '../../src/operator/reconcile/observed.ts';
import {
  currentPod,
  modeOf,
  type PostureInput,
  storagePosture,
} from '../../src/operator/reconcile/storage-posture.ts';
import { CLAIM_UID, claim, connector, observed, pod } from '../helpers/observed-builder.ts';
import { planView } from '../helpers/plan-view.ts';

interface SpecOptions {
  containerName?: string;
  env?: V1EnvVar[];
  mounts?: V1VolumeMount[];
  volumes?: V1Volume[];
  sidecars?: V1Container[];
}

/** A pod spec whose agent container mounts `mounts`; no env unless given (the agent then uses /data). */
function podSpec(options: SpecOptions = {}): V1PodSpec {
  return {
    containers: [
      {
        name: options.containerName ?? 'connector',
        image: 'vaultpam-connector:test',
        ...(options.env ? { env: options.env } : {}),
        volumeMounts: options.mounts ?? [],
      },
      ...(options.sidecars ?? []),
    ],
    volumes: options.volumes ?? [],
  };
}

const dataDirEnv = (value: string): V1EnvVar => ({ name: 'PAM_AGENT_DATA_DIR', value });
const claimVolume = (name = 'data', claimName = 'data-edge-0'): V1Volume => ({
  name,
  persistentVolumeClaim: { claimName },
});
const claimsOf = (...claims: ClaimFacts[]) => new Map(claims.map((c) => [c.name, c]));

/** A sidecar that mounts its own scratch space and must not be mistaken for the agent. */
const sidecar: V1Container = {
  name: 'log-shipper',
  image: 'fluent-bit:test',
  volumeMounts: [{ name: 'scratch', mountPath: '/data' }],
};

interface Expected {
  source: StorageSource;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  durable: boolean;
  mode: ConnectorMode | undefined;
  volumeName?: string;
  claimName?: string;
  podName?: string;
  /** Substrings the condition message must contain (the pod, the volume, the data dir...). */
  message: string[];
}

interface Case {
  name: string;
  input: Partial<PostureInput>;
  expected: Expected;
}

/** Defaults: the running pod edge-0, the bound claim data-edge-0, nothing remembered, durable asked. */
function inputOf(partial: Partial<PostureInput>): PostureInput {
  return {
    podSpec: undefined,
    ...('podName' in partial ? {} : { podName: 'edge-0' }),
    fromPod: true,
    claims: claimsOf(claim()),
    identityClaimUID: undefined,
    ephemeralByChoice: false,
    ...partial,
  };
}

const builtPod = pod().spec;
const claimTemplate = (mount: string) => (mount === 'data' ? 'data-edge-0' : undefined);

const cases: Case[] = [
  {
    name: 'a bound claim mounted at the data dir: Autonomous, ClaimBound',
    input: { podSpec: builtPod },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'True',
      reason: DurableStorageReasons.ClaimBound,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'data',
      claimName: 'data-edge-0',
      podName: 'edge-0',
      message: ['/data', 'bound claim data-edge-0'],
    },
  },
  {
    name: 'the claim the identity was written to (same UID) is still bound: ClaimBound',
    input: { podSpec: builtPod, identityClaimUID: CLAIM_UID },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'True',
      reason: DurableStorageReasons.ClaimBound,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'data',
      claimName: 'data-edge-0',
      podName: 'edge-0',
      message: ['bound claim data-edge-0'],
    },
  },
  {
    name: 'a pending claim: Unknown ClaimPending, still Autonomous (the storage is durable once bound)',
    input: { podSpec: builtPod, claims: claimsOf(claim({ phase: 'Pending' })) },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'Unknown',
      reason: DurableStorageReasons.ClaimPending,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'data',
      claimName: 'data-edge-0',
      podName: 'edge-0',
      message: ['claim data-edge-0 is Pending, not yet Bound'],
    },
  },
  {
    name: 'a claim with no phase yet reads as Pending',
    input: { podSpec: builtPod, claims: claimsOf(claim({ phase: '' })) },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'Unknown',
      reason: DurableStorageReasons.ClaimPending,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'data',
      claimName: 'data-edge-0',
      podName: 'edge-0',
      message: ['is Pending, not yet Bound'],
    },
  },
  {
    name: 'the claim a running pod mounts is missing: ClaimLost, GuidedRecovery, names claim, dir and pod',
    input: { podSpec: builtPod, claims: claimsOf() },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'False',
      reason: DurableStorageReasons.ClaimLost,
      durable: false,
      mode: 'GuidedRecovery',
      volumeName: 'data',
      claimName: 'data-edge-0',
      podName: 'edge-0',
      message: ['claim data-edge-0', '/data', 'pod edge-0', 'does not exist'],
    },
  },
  {
    name: 'the claim is being deleted: ClaimLost',
    input: { podSpec: builtPod, claims: claimsOf(claim({ deleting: true })) },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'False',
      reason: DurableStorageReasons.ClaimLost,
      durable: false,
      mode: 'GuidedRecovery',
      volumeName: 'data',
      claimName: 'data-edge-0',
      podName: 'edge-0',
      message: ['claim data-edge-0 behind /data is being deleted'],
    },
  },
  {
    name: 'the claim is Lost (its volume is gone): ClaimLost',
    input: { podSpec: builtPod, claims: claimsOf(claim({ phase: 'Lost' })) },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'False',
      reason: DurableStorageReasons.ClaimLost,
      durable: false,
      mode: 'GuidedRecovery',
      volumeName: 'data',
      claimName: 'data-edge-0',
      podName: 'edge-0',
      message: ['claim data-edge-0 is Lost'],
    },
  },
  {
    name: 'the claim was replaced (UID differs from the remembered one): ClaimReplaced, GuidedRecovery',
    input: {
      podSpec: builtPod,
      claims: claimsOf(claim({ uid: 'new-uid' })),
      identityClaimUID: 'old-uid',
    },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'False',
      reason: DurableStorageReasons.ClaimReplaced,
      durable: false,
      mode: 'GuidedRecovery',
      volumeName: 'data',
      claimName: 'data-edge-0',
      podName: 'edge-0',
      message: ['claim data-edge-0 was replaced', 'UID old-uid became new-uid'],
    },
  },
  {
    name: 'a replaced claim that is not bound yet is still ClaimReplaced (the UID is checked first)',
    input: {
      podSpec: builtPod,
      claims: claimsOf(claim({ uid: 'new-uid', phase: 'Pending' })),
      identityClaimUID: 'old-uid',
    },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'False',
      reason: DurableStorageReasons.ClaimReplaced,
      durable: false,
      mode: 'GuidedRecovery',
      volumeName: 'data',
      claimName: 'data-edge-0',
      podName: 'edge-0',
      message: ['UID old-uid became new-uid'],
    },
  },
  {
    name: 'an emptyDir at the data dir: EmptyDir, GuidedRecovery, names pod and volume',
    input: {
      podSpec: podSpec({
        mounts: [{ name: 'state', mountPath: '/data' }],
        volumes: [{ name: 'state', emptyDir: {} }],
      }),
    },
    expected: {
      source: 'EmptyDir',
      status: 'False',
      reason: DurableStorageReasons.EmptyDir,
      durable: false,
      mode: 'GuidedRecovery',
      volumeName: 'state',
      podName: 'edge-0',
      message: ['/data in pod edge-0', 'emptyDir "state"', 'mount a PersistentVolumeClaim'],
    },
  },
  {
    name: 'an emptyDir with medium Memory (tmpfs) is an emptyDir all the same',
    input: {
      podSpec: podSpec({
        mounts: [{ name: 'state', mountPath: '/data' }],
        volumes: [{ name: 'state', emptyDir: { medium: 'Memory', sizeLimit: '64Mi' as never } }],
      }),
    },
    expected: {
      source: 'EmptyDir',
      status: 'False',
      reason: DurableStorageReasons.EmptyDir,
      durable: false,
      mode: 'GuidedRecovery',
      volumeName: 'state',
      podName: 'edge-0',
      message: ['/data in pod edge-0', 'emptyDir "state"'],
    },
  },
  {
    name: 'an emptyDir the spec asked for (ephemeral: true): EphemeralByChoice',
    input: {
      podSpec: podSpec({
        mounts: [{ name: 'data', mountPath: '/data' }],
        volumes: [{ name: 'data', emptyDir: {} }],
      }),
      ephemeralByChoice: true,
    },
    expected: {
      source: 'EmptyDir',
      status: 'False',
      reason: DurableStorageReasons.EphemeralByChoice,
      durable: false,
      mode: 'GuidedRecovery',
      volumeName: 'data',
      podName: 'edge-0',
      message: ['spec.storage.ephemeral is true', 'emptyDir "data"'],
    },
  },
  {
    name: 'a generic ephemeral volume: EphemeralVolume, GuidedRecovery, names pod and volume',
    input: {
      podSpec: podSpec({
        mounts: [{ name: 'scratch-data', mountPath: '/data' }],
        volumes: [
          {
            name: 'scratch-data',
            ephemeral: {
              volumeClaimTemplate: {
                spec: {
                  accessModes: ['ReadWriteOnce'],
                  resources: { requests: { storage: '1Gi' as never } },
                },
              },
            },
          },
        ],
      }),
    },
    expected: {
      source: 'Ephemeral',
      status: 'False',
      reason: DurableStorageReasons.EphemeralVolume,
      durable: false,
      mode: 'GuidedRecovery',
      volumeName: 'scratch-data',
      podName: 'edge-0',
      message: ['/data in pod edge-0', 'generic ephemeral volume "scratch-data"'],
    },
  },
  {
    name: 'a hostPath: True HostPath (durable on the same node), Autonomous, names pod and host path',
    input: {
      podSpec: podSpec({
        mounts: [{ name: 'host-data', mountPath: '/data' }],
        volumes: [{ name: 'host-data', hostPath: { path: '/srv/vaultpam', type: 'DirectoryOrCreate' } }],
      }),
    },
    expected: {
      source: 'HostPath',
      status: 'True',
      reason: DurableStorageReasons.HostPath,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'host-data',
      podName: 'edge-0',
      message: ['/data in pod edge-0', 'hostPath /srv/vaultpam', 'same node'],
    },
  },
  {
    name: 'a volume kind the operator does not classify (nfs): Unknown, no mode',
    input: {
      podSpec: podSpec({
        mounts: [{ name: 'share', mountPath: '/data' }],
        volumes: [{ name: 'share', nfs: { server: 'nfs.example', path: '/exports/vaultpam' } }],
      }),
    },
    expected: {
      source: 'Unknown',
      status: 'Unknown',
      reason: DurableStorageReasons.UnrecognizedVolume,
      durable: false,
      mode: undefined,
      volumeName: 'share',
      podName: 'edge-0',
      message: ['/data in pod edge-0', 'volume "share"'],
    },
  },
  {
    name: 'nothing mounted at the data dir (container filesystem): NoVolume, GuidedRecovery, names pod',
    input: { podSpec: pod({ dataVolume: 'none' }).spec },
    expected: {
      source: 'None',
      status: 'False',
      reason: DurableStorageReasons.NoVolume,
      durable: false,
      mode: 'GuidedRecovery',
      podName: 'edge-0',
      message: ['nothing is mounted at /data in pod edge-0', 'container layer'],
    },
  },
  {
    name: 'only a subdirectory of the data dir is mounted: the data dir itself is on the container layer',
    input: {
      podSpec: podSpec({
        mounts: [{ name: 'data', mountPath: '/data/cache' }],
        volumes: [claimVolume()],
      }),
    },
    expected: {
      source: 'None',
      status: 'False',
      reason: DurableStorageReasons.NoVolume,
      durable: false,
      mode: 'GuidedRecovery',
      podName: 'edge-0',
      message: ['nothing is mounted at /data in pod edge-0'],
    },
  },
  {
    name: 'a mount whose path only starts with the same letters (/data-old) is not a parent of /data',
    input: {
      podSpec: podSpec({
        mounts: [{ name: 'data', mountPath: '/data-old' }],
        volumes: [claimVolume()],
      }),
    },
    expected: {
      source: 'None',
      status: 'False',
      reason: DurableStorageReasons.NoVolume,
      durable: false,
      mode: 'GuidedRecovery',
      podName: 'edge-0',
      message: ['nothing is mounted at /data in pod edge-0'],
    },
  },
  {
    name: 'the claim is mounted at /data but PAM_AGENT_DATA_DIR moved the data dir elsewhere: NoVolume',
    input: {
      podSpec: podSpec({
        env: [dataDirEnv('/var/lib/vaultpam')],
        mounts: [{ name: 'data', mountPath: '/data' }],
        volumes: [claimVolume()],
      }),
    },
    expected: {
      source: 'None',
      status: 'False',
      reason: DurableStorageReasons.NoVolume,
      durable: false,
      mode: 'GuidedRecovery',
      podName: 'edge-0',
      message: ['nothing is mounted at /var/lib/vaultpam in pod edge-0'],
    },
  },
  {
    name: 'the data dir set through PAM_AGENT_DATA_DIR, with the claim mounted there: ClaimBound',
    input: {
      podSpec: podSpec({
        env: [dataDirEnv('/var/lib/vaultpam')],
        mounts: [{ name: 'data', mountPath: '/var/lib/vaultpam' }],
        volumes: [claimVolume()],
      }),
    },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'True',
      reason: DurableStorageReasons.ClaimBound,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'data',
      claimName: 'data-edge-0',
      podName: 'edge-0',
      message: ['/var/lib/vaultpam is the bound claim data-edge-0'],
    },
  },
  {
    name: 'trailing slashes in PAM_AGENT_DATA_DIR and the mount path do not matter',
    input: {
      podSpec: podSpec({
        env: [dataDirEnv('/var/lib/vaultpam/')],
        mounts: [{ name: 'data', mountPath: '/var/lib/vaultpam//' }],
        volumes: [claimVolume()],
      }),
    },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'True',
      reason: DurableStorageReasons.ClaimBound,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'data',
      claimName: 'data-edge-0',
      podName: 'edge-0',
      message: ['/var/lib/vaultpam is the bound claim data-edge-0'],
    },
  },
  {
    name: 'PAM_AGENT_DATA_DIR given twice: the last entry wins, as in the kubelet',
    input: {
      podSpec: podSpec({
        env: [dataDirEnv('/data'), dataDirEnv('/var/lib/vaultpam')],
        mounts: [
          { name: 'data', mountPath: '/var/lib/vaultpam' },
          { name: 'scratch', mountPath: '/data' },
        ],
        volumes: [claimVolume(), { name: 'scratch', emptyDir: {} }],
      }),
    },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'True',
      reason: DurableStorageReasons.ClaimBound,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'data',
      claimName: 'data-edge-0',
      podName: 'edge-0',
      message: ['/var/lib/vaultpam is the bound claim data-edge-0'],
    },
  },
  {
    name: 'PAM_AGENT_DATA_DIR from a ConfigMap (valueFrom) cannot be read: the default /data is judged',
    input: {
      podSpec: podSpec({
        env: [{ name: 'PAM_AGENT_DATA_DIR', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'dir' } } }],
        mounts: [{ name: 'data', mountPath: '/data' }],
        volumes: [claimVolume()],
      }),
    },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'True',
      reason: DurableStorageReasons.ClaimBound,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'data',
      claimName: 'data-edge-0',
      podName: 'edge-0',
      message: ['/data is the bound claim data-edge-0'],
    },
  },
  {
    name: 'a subPath mount of the claim at the data dir: the claim backs it, ClaimBound',
    input: {
      podSpec: podSpec({
        mounts: [{ name: 'shared', mountPath: '/data', subPath: 'connectors/edge' }],
        volumes: [claimVolume('shared', 'shared-state')],
      }),
      claims: claimsOf(claim({ name: 'shared-state' })),
    },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'True',
      reason: DurableStorageReasons.ClaimBound,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'shared',
      claimName: 'shared-state',
      podName: 'edge-0',
      message: ['/data is the bound claim shared-state'],
    },
  },
  {
    name: 'a subPath mount of an emptyDir is still an emptyDir',
    input: {
      podSpec: podSpec({
        mounts: [{ name: 'scratch', mountPath: '/data', subPathExpr: '$(POD_NAME)' }],
        volumes: [{ name: 'scratch', emptyDir: {} }],
      }),
    },
    expected: {
      source: 'EmptyDir',
      status: 'False',
      reason: DurableStorageReasons.EmptyDir,
      durable: false,
      mode: 'GuidedRecovery',
      volumeName: 'scratch',
      podName: 'edge-0',
      message: ['/data in pod edge-0', 'emptyDir "scratch"'],
    },
  },
  {
    name: 'the claim mounted at a parent of the data dir backs it',
    input: {
      podSpec: podSpec({
        env: [dataDirEnv('/var/lib/vaultpam/agent')],
        mounts: [{ name: 'data', mountPath: '/var/lib/vaultpam' }],
        volumes: [claimVolume()],
      }),
    },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'True',
      reason: DurableStorageReasons.ClaimBound,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'data',
      claimName: 'data-edge-0',
      podName: 'edge-0',
      message: ['/var/lib/vaultpam/agent is the bound claim data-edge-0'],
    },
  },
  {
    name: 'nested mounts: the closest parent of the data dir wins over a farther one',
    input: {
      podSpec: podSpec({
        env: [dataDirEnv('/var/lib/vaultpam/agent')],
        mounts: [
          { name: 'var', mountPath: '/var//' },
          { name: 'data', mountPath: '/var/lib/vaultpam' },
        ],
        volumes: [{ name: 'var', emptyDir: {} }, claimVolume()],
      }),
    },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'True',
      reason: DurableStorageReasons.ClaimBound,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'data',
      claimName: 'data-edge-0',
      podName: 'edge-0',
      message: ['/var/lib/vaultpam/agent is the bound claim data-edge-0'],
    },
  },
  {
    name: 'nested mounts: closeness is judged on the cleaned path, not on trailing slashes',
    input: {
      podSpec: podSpec({
        env: [dataDirEnv('/srv/agent')],
        mounts: [
          { name: 'srv', mountPath: '/srv//////////' },
          { name: 'data', mountPath: '/srv/agent' },
        ],
        volumes: [{ name: 'srv', emptyDir: {} }, claimVolume()],
      }),
    },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'True',
      reason: DurableStorageReasons.ClaimBound,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'data',
      claimName: 'data-edge-0',
      podName: 'edge-0',
      message: ['/srv/agent is the bound claim data-edge-0'],
    },
  },
  {
    name: 'nested mounts: an emptyDir closer to the data dir hides the claim above it',
    input: {
      podSpec: podSpec({
        env: [dataDirEnv('/var/lib/vaultpam/agent')],
        mounts: [
          { name: 'data', mountPath: '/var/lib/vaultpam' },
          { name: 'scratch', mountPath: '/var/lib/vaultpam/agent' },
        ],
        volumes: [claimVolume(), { name: 'scratch', emptyDir: {} }],
      }),
    },
    expected: {
      source: 'EmptyDir',
      status: 'False',
      reason: DurableStorageReasons.EmptyDir,
      durable: false,
      mode: 'GuidedRecovery',
      volumeName: 'scratch',
      podName: 'edge-0',
      message: ['/var/lib/vaultpam/agent in pod edge-0', 'emptyDir "scratch"'],
    },
  },
  {
    name: "a sidecar's mount at /data does not count: only the agent container's mounts do",
    input: {
      podSpec: podSpec({
        mounts: [],
        volumes: [claimVolume(), { name: 'scratch', emptyDir: {} }],
        sidecars: [sidecar],
      }),
    },
    expected: {
      source: 'None',
      status: 'False',
      reason: DurableStorageReasons.NoVolume,
      durable: false,
      mode: 'GuidedRecovery',
      podName: 'edge-0',
      message: ['nothing is mounted at /data in pod edge-0'],
    },
  },
  {
    name: 'no pod and no template: Unknown NoRunningPod, no mode',
    input: { podSpec: undefined, podName: undefined, fromPod: false },
    expected: {
      source: 'Unknown',
      status: 'Unknown',
      reason: DurableStorageReasons.NoRunningPod,
      durable: false,
      mode: undefined,
      message: ['no pod or workload template'],
    },
  },
  {
    name: 'pod template only, claim template not created yet: Unknown ClaimPending, Autonomous',
    input: {
      podSpec: podSpec({ mounts: [{ name: 'data', mountPath: '/data' }] }),
      podName: undefined,
      fromPod: false,
      claims: claimsOf(),
      claimForTemplateVolume: claimTemplate,
    },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'Unknown',
      reason: DurableStorageReasons.ClaimPending,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'data',
      claimName: 'data-edge-0',
      message: ['claim data-edge-0 is not created yet'],
    },
  },
  {
    // The review's window: the claim data-edge-0 and its pod deleted, the StatefulSet not yet given
    // a new claim. It said "Autonomous: the claim is not created yet", then ClaimReplaced.
    name: 'pod template only, the claim the data was on gone (its UID remembered): not Autonomous, GuidedRecovery',
    input: {
      podSpec: podSpec({ mounts: [{ name: 'data', mountPath: '/data' }] }),
      podName: undefined,
      fromPod: false,
      claims: claimsOf(),
      claimForTemplateVolume: claimTemplate,
      identityClaimUID: 'old-uid',
    },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'Unknown',
      reason: DurableStorageReasons.ClaimPending,
      durable: false,
      mode: 'GuidedRecovery',
      volumeName: 'data',
      claimName: 'data-edge-0',
      message: [
        'claim data-edge-0 the data directory was on (UID old-uid) is gone; the next pod gets a new, empty one',
      ],
    },
  },
  {
    name: 'pod template only, the claim template mounted at a parent of the data dir, claim bound',
    input: {
      podSpec: podSpec({
        env: [dataDirEnv('/data/agent')],
        mounts: [{ name: 'data', mountPath: '/data' }],
      }),
      podName: undefined,
      fromPod: false,
      claimForTemplateVolume: claimTemplate,
    },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'True',
      reason: DurableStorageReasons.ClaimBound,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'data',
      claimName: 'data-edge-0',
      message: ['/data/agent is the bound claim data-edge-0'],
    },
  },
  {
    name: 'pod template only, the claim template mounted at the root: still the claim template',
    input: {
      podSpec: podSpec({ mounts: [{ name: 'data', mountPath: '/' }] }),
      podName: undefined,
      fromPod: false,
      claimForTemplateVolume: claimTemplate,
    },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'True',
      reason: DurableStorageReasons.ClaimBound,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'data',
      claimName: 'data-edge-0',
      message: ['/data is the bound claim data-edge-0'],
    },
  },
  {
    name: 'pod template only, the claim being deleted: Unknown ClaimPending yet GuidedRecovery',
    input: {
      podSpec: podSpec({ mounts: [{ name: 'data', mountPath: '/data' }] }),
      podName: undefined,
      fromPod: false,
      claims: claimsOf(claim({ deleting: true })),
      claimForTemplateVolume: claimTemplate,
    },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'Unknown',
      reason: DurableStorageReasons.ClaimPending,
      durable: false,
      mode: 'GuidedRecovery',
      volumeName: 'data',
      claimName: 'data-edge-0',
      message: ['claim data-edge-0 behind /data is being deleted'],
    },
  },
  {
    name: 'pod template only, mounting an emptyDir: the message names the pod template',
    input: {
      podSpec: podSpec({
        mounts: [{ name: 'data', mountPath: '/data' }],
        volumes: [{ name: 'data', emptyDir: {} }],
      }),
      podName: undefined,
      fromPod: false,
      claimForTemplateVolume: claimTemplate,
    },
    expected: {
      source: 'EmptyDir',
      status: 'False',
      reason: DurableStorageReasons.EmptyDir,
      durable: false,
      mode: 'GuidedRecovery',
      volumeName: 'data',
      message: ['/data in the pod template', 'emptyDir "data"'],
    },
  },
  {
    name: 'pod template only, a mount that names neither a volume nor a claim template: NoVolume',
    input: {
      podSpec: podSpec({ mounts: [{ name: 'other', mountPath: '/data' }] }),
      podName: undefined,
      fromPod: false,
      claimForTemplateVolume: claimTemplate,
    },
    expected: {
      source: 'None',
      status: 'False',
      reason: DurableStorageReasons.NoVolume,
      durable: false,
      mode: 'GuidedRecovery',
      message: ['nothing is mounted at /data in the pod template'],
    },
  },
  {
    name: 'an adopted Deployment pod: the container that sets PAM_AGENT_DATA_DIR is the agent',
    input: {
      podSpec: podSpec({
        containerName: 'agent',
        env: [dataDirEnv('/var/lib/vaultpam')],
        mounts: [{ name: 'state', mountPath: '/var/lib/vaultpam' }],
        volumes: [claimVolume('state', 'legacy-data'), { name: 'scratch', emptyDir: {} }],
        sidecars: [sidecar],
      }),
      podName: 'legacy-7d9f8c6b5-x2k4q',
      claims: claimsOf(claim({ name: 'legacy-data', uid: 'legacy-uid' })),
    },
    expected: {
      source: 'PersistentVolumeClaim',
      status: 'True',
      reason: DurableStorageReasons.ClaimBound,
      durable: true,
      mode: 'Autonomous',
      volumeName: 'state',
      claimName: 'legacy-data',
      podName: 'legacy-7d9f8c6b5-x2k4q',
      message: ['/var/lib/vaultpam is the bound claim legacy-data'],
    },
  },
  {
    name: 'several containers, none named connector nor setting the env: the only one mounting /data is the agent',
    input: {
      podSpec: {
        containers: [
          { name: 'vaultpam', image: 'x', volumeMounts: [{ name: 'state', mountPath: '/data' }] },
          { name: 'metrics', image: 'y' },
        ],
        volumes: [{ name: 'state', emptyDir: {} }],
      },
      podName: 'legacy-7d9f8c6b5-x2k4q',
    },
    expected: {
      source: 'EmptyDir',
      status: 'False',
      reason: DurableStorageReasons.EmptyDir,
      durable: false,
      mode: 'GuidedRecovery',
      volumeName: 'state',
      podName: 'legacy-7d9f8c6b5-x2k4q',
      message: ['/data in pod legacy-7d9f8c6b5-x2k4q', 'emptyDir "state"'],
    },
  },
  {
    name: 'several look-alike containers: Unknown AgentContainerUnknown, no mode, and how to make it tell',
    input: {
      podSpec: {
        containers: [
          { name: 'vaultpam', image: 'x', volumeMounts: [{ name: 'state', mountPath: '/data' }] },
          { name: 'backup', image: 'y', volumeMounts: [{ name: 'state', mountPath: '/data' }] },
        ],
        volumes: [claimVolume('state', 'legacy-data')],
      },
      podName: 'legacy-7d9f8c6b5-x2k4q',
      claims: claimsOf(claim({ name: 'legacy-data' })),
    },
    expected: {
      source: 'Unknown',
      status: 'Unknown',
      reason: DurableStorageReasons.AgentContainerUnknown,
      durable: false,
      mode: undefined,
      podName: 'legacy-7d9f8c6b5-x2k4q',
      message: ['pod legacy-7d9f8c6b5-x2k4q', 'name it "connector" or set PAM_AGENT_DATA_DIR'],
    },
  },
  {
    name: 'an adopted Deployment pod with one container of another name and no env: that container counts',
    input: {
      podSpec: podSpec({
        containerName: 'vaultpam',
        mounts: [{ name: 'state', mountPath: '/data' }],
        volumes: [{ name: 'state', emptyDir: {} }],
      }),
      podName: 'legacy-7d9f8c6b5-x2k4q',
    },
    expected: {
      source: 'EmptyDir',
      status: 'False',
      reason: DurableStorageReasons.EmptyDir,
      durable: false,
      mode: 'GuidedRecovery',
      volumeName: 'state',
      podName: 'legacy-7d9f8c6b5-x2k4q',
      message: ['/data in pod legacy-7d9f8c6b5-x2k4q', 'emptyDir "state"'],
    },
  },
];

for (const c of cases) {
  test(c.name, (t) => {
    const input = inputOf(c.input);
    const posture = storagePosture(input);
    const e = c.expected;
    t.is(posture.source, e.source, 'source');
    t.is(posture.status, e.status, 'condition status');
    t.is(posture.reason, e.reason, 'condition reason');
    t.is(posture.durable, e.durable, 'durable');
    t.is(modeOf(posture), e.mode, 'mode');
    t.is(posture.volumeName, e.volumeName, 'volumeName');
    t.is(posture.claimName, e.claimName, 'claimName');
    t.is(posture.podName, e.podName, 'podName');
    if (e.claimName)
      t.is(posture.claim, input.claims.get(e.claimName), 'the claim facts, when the claim exists');
    for (const part of e.message) {
      t.true(posture.message.includes(part), `message "${posture.message}" should contain "${part}"`);
    }
  });
}

test('every DurableStorage reason is covered by a case above', (t) => {
  const covered = new Set(cases.map((c) => c.expected.reason));
  t.deepEqual(
    Object.values(DurableStorageReasons).filter((r) => !covered.has(r)),
    [],
  );
});

test('the pod that counts: a running, non-terminating pod first, then any non-terminating one', (t) => {
  const pending = { ...pod({ name: 'edge-0' }), status: { phase: 'Pending' } };
  const terminating = pod({ name: 'old-0' });
  terminating.metadata = { ...terminating.metadata, deletionTimestamp: new Date('2026-01-01T00:00:00Z') };
  const running = pod({ name: 'new-0' });
  t.is(currentPod([terminating, pending, running])?.metadata?.name, 'new-0');
  t.is(currentPod([terminating, pending])?.metadata?.name, 'edge-0');
  t.is(currentPod([terminating]), undefined);
  t.is(currentPod([]), undefined);
});

test('among pods that do not run, the newest counts: a rollout moves to the new template', (t) => {
  const at = (name: string, iso: string) => {
    const p = { ...pod({ name }), status: { phase: 'Pending' } };
    p.metadata = { ...p.metadata, creationTimestamp: new Date(iso) };
    return p;
  };
  const old = at('legacy-aaaa', '2026-01-01T00:00:00Z');
  const fresh = at('legacy-bbbb', '2026-01-01T00:05:00Z');
  t.is(currentPod([old, fresh])?.metadata?.name, 'legacy-bbbb');
  t.is(currentPod([fresh, old])?.metadata?.name, 'legacy-bbbb', 'whatever the list order');
  const runningOld = { ...old, status: { phase: 'Running' } };
  t.is(currentPod([runningOld, fresh])?.metadata?.name, 'legacy-aaaa', 'a running pod still wins');
});

// Through the planner: the posture is what status.mode, status.storage and DurableStorage show.
const NOW = new Date('2026-01-01T00:00:10Z');
const durableStorage = (status: { conditions?: { type: string; status: string; reason: string }[] }) =>
  status.conditions?.find((c) => c.type === 'DurableStorage');

test('an adopted Deployment pod: the planner reports its claim, pod and mode', (t) => {
  const deploymentPod = pod({ name: 'legacy-7d9f8c6b5-x2k4q', claimName: 'legacy-data' });
  const base = observed({
    connector: connector({ spec: { workloadRef: { kind: 'Deployment', name: 'legacy' } } }),
    pods: [deploymentPod],
    claims: [claim({ name: 'legacy-data', uid: 'legacy-uid' })],
  });
  const result = planView(
    {
      ...base,
      workload: {
        kind: 'Deployment',
        name: 'legacy',
        replicas: 1,
        readyReplicas: 1,
        templateAnnotations: {},
      },
    },
    NOW,
  );
  t.is(result.status.mode, 'Autonomous');
  t.is(durableStorage(result.status)?.status, 'True');
  t.is(durableStorage(result.status)?.reason, 'ClaimBound');
  t.like(result.status.storage, {
    source: 'PersistentVolumeClaim',
    volumeName: 'data',
    claimName: 'legacy-data',
    claimUID: 'legacy-uid',
    claimPhase: 'Bound',
    podName: 'legacy-7d9f8c6b5-x2k4q',
  });
  t.is(result.statefulSet, undefined, 'an adopted workload gets no StatefulSet of the operator');
});

test('an adopted Deployment with no pod yet: DurableStorage Unknown NoRunningPod and no mode', (t) => {
  const base = observed({
    connector: connector({ spec: { workloadRef: { kind: 'Deployment', name: 'legacy' } } }),
    pods: [],
    claims: [],
  });
  const result = planView(
    {
      ...base,
      workload: {
        kind: 'Deployment',
        name: 'legacy',
        replicas: 1,
        readyReplicas: 0,
        templateAnnotations: {},
      },
    },
    NOW,
  );
  t.is(result.status.mode, undefined);
  t.is(durableStorage(result.status)?.status, 'Unknown');
  t.is(durableStorage(result.status)?.reason, 'NoRunningPod');
  t.is(result.status.storage?.source, 'Unknown');
});

test("the operator's StatefulSet template before its claim exists: the planner says Autonomous, ClaimPending", (t) => {
  const result = planView(observed({ pods: [], claims: [] }), NOW);
  t.is(result.status.mode, 'Autonomous');
  t.is(durableStorage(result.status)?.status, 'Unknown');
  t.is(durableStorage(result.status)?.reason, 'ClaimPending');
  t.is(result.status.storage?.claimName, 'data-edge-0');
  t.is(result.status.storage?.podName, undefined);
});

test('an adopted StatefulSet with no pod yet: its own claim <template>-<statefulset>-0 is judged', (t) => {
  const base = observed({
    connector: connector({ spec: { workloadRef: { kind: 'StatefulSet', name: 'legacy-db' } } }),
    pods: [],
    claims: [claim({ name: 'state-legacy-db-0', uid: 'adopted-claim-uid' })],
  });
  const result = planView(
    {
      ...base,
      workload: {
        kind: 'StatefulSet',
        name: 'legacy-db',
        replicas: 1,
        readyReplicas: 0,
        templateAnnotations: {},
        object: {
          metadata: { name: 'legacy-db' },
          spec: {
            serviceName: 'legacy-db',
            selector: { matchLabels: { app: 'legacy-db' } },
            volumeClaimTemplates: [{ metadata: { name: 'state' } }],
            template: {
              spec: {
                containers: [
                  { name: 'connector', image: 'x', volumeMounts: [{ name: 'state', mountPath: '/data' }] },
                ],
              },
            },
          },
        },
      },
    },
    NOW,
  );
  t.is(durableStorage(result.status)?.reason, 'ClaimBound');
  t.is(
    result.status.storage?.claimName,
    'state-legacy-db-0',
    'named after the adopted StatefulSet, not the Connector',
  );
  t.is(result.status.mode, 'Autonomous');
});
