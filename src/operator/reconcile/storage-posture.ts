// Storage posture: what really backs the agent's data directory in the pod that runs (or would run)
// the connector. This decides the runbook's mode: a bound claim means the identity survives a
// restart (Autonomous); emptyDir, a generic ephemeral volume or no volume at all means the next
// restart loses it (GuidedRecovery). A claim whose UID changed since the identity was written is
// identity loss, even though a claim of the same name is bound.
import type { V1Container, V1Pod, V1PodSpec, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { AGENT_DATA_DIR } from '../api/constants.ts';
import type { ConnectorMode, StorageSource } from '../api/types.ts';
import { DurableStorageReasons } from '../conditions.ts';
import type { ClaimFacts } from './observed.ts';

export const DATA_DIR_ENV = 'PAM_AGENT_DATA_DIR';
export const AGENT_CONTAINER_NAME = 'connector';

export interface StoragePosture {
  source: StorageSource;
  /** True when the data directory survives a pod restart. */
  durable: boolean;
  /** DurableStorage condition status and reason. */
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  volumeName?: string;
  claimName?: string;
  claim?: ClaimFacts;
  podName?: string;
}

/**
 * The container that runs the agent: the one named `connector`, else the one that sets the data
 * dir, else the only container, else the only one that mounts something at the default data dir.
 * Undefined when none of these tells (an adopted pod with several look-alike containers).
 */
export function agentContainer(spec: V1PodSpec | undefined): V1Container | undefined {
  const containers = spec?.containers ?? [];
  const mountingDefault = containers.filter((c) => dataDirMounts(c, AGENT_DATA_DIR).length > 0);
  return (
    containers.find((c) => c.name === AGENT_CONTAINER_NAME) ??
    containers.find((c) => c.env?.some((e) => e.name === DATA_DIR_ENV)) ??
    (containers.length === 1 ? containers[0] : undefined) ??
    (mountingDefault.length === 1 ? mountingDefault[0] : undefined)
  );
}

/**
 * The agent's data directory: PAM_AGENT_DATA_DIR as set in the container, else the default /data.
 * When the variable is listed twice the last entry wins, as in the kubelet.
 */
export function dataDirOf(container: V1Container): string {
  return container.env?.findLast((e) => e.name === DATA_DIR_ENV)?.value || AGENT_DATA_DIR;
}

const normalise = (path: string) => (path.length > 1 ? path.replace(/\/+$/, '') : path);

/**
 * The agent container's mounts at the data directory or at a parent of it, closest first. One
 * matcher for pod volumes and claim-template mounts, so both see the same mount.
 */
function dataDirMounts(container: V1Container | undefined, dataDir: string): V1VolumeMount[] {
  return (container?.volumeMounts ?? [])
    .map((m) => ({ m, path: normalise(m.mountPath) }))
    .filter(({ path }) => dataDir === path || dataDir.startsWith(path === '/' ? '/' : `${path}/`))
    .sort((a, b) => b.path.length - a.path.length)
    .map(({ m }) => m);
}

/** The volume mounted at the data directory or at the closest parent of it. */
export function dataVolumeOf(spec: V1PodSpec | undefined): {
  volume?: V1Volume;
  mountPath?: string;
  dataDir: string;
} {
  const container = agentContainer(spec);
  if (!container) return { dataDir: AGENT_DATA_DIR };
  const dataDir = normalise(dataDirOf(container));
  const mount = dataDirMounts(container, dataDir)[0];
  if (!mount) return { dataDir };
  const volume = spec?.volumes?.find((v) => v.name === mount.name);
  return volume ? { volume, mountPath: mount.mountPath, dataDir } : { mountPath: mount.mountPath, dataDir };
}

export interface PostureInput {
  /** The pod spec to judge: the running pod's, else the workload template's. */
  podSpec: V1PodSpec | undefined;
  podName?: string;
  /** True when podSpec comes from a pod that exists (not only from a template). */
  fromPod: boolean;
  claims: Map<string, ClaimFacts>;
  /**
   * For a StatefulSet template: the claim a claim-template mount becomes in the pod
   * (`<template>-<statefulset>-<ordinal>`), or undefined when the name is no claim template.
   */
  claimForTemplateVolume?: (mountName: string) => string | undefined;
  /** UID of the claim the identity was written to, remembered since enrollment. */
  identityClaimUID: string | undefined;
  /** The spec deliberately chose ephemeral storage. */
  ephemeralByChoice: boolean;
}

/** Classifies what backs the data directory. Pure. */
export function storagePosture(input: PostureInput): StoragePosture {
  const where = input.podName ? `pod ${input.podName}` : 'the pod template';
  const { volume, dataDir } = dataVolumeOf(input.podSpec);
  const base = input.podName ? { podName: input.podName } : {};
  if (!input.podSpec) {
    return {
      ...base,
      source: 'Unknown',
      durable: false,
      status: 'Unknown',
      reason: DurableStorageReasons.NoRunningPod,
      message: 'no pod or workload template to inspect yet',
    };
  }
  if (!agentContainer(input.podSpec)) {
    // Saying "nothing is mounted" here would be a guess presented as a fact.
    return {
      ...base,
      source: 'Unknown',
      durable: false,
      status: 'Unknown',
      reason: DurableStorageReasons.AgentContainerUnknown,
      message: `cannot tell which container of ${where} is the connector agent: name it "${AGENT_CONTAINER_NAME}" or set ${DATA_DIR_ENV} in it`,
    };
  }
  // In a StatefulSet template the data mount names a claim template, not a pod volume.
  const mountName = agentMountName(input.podSpec, dataDir);
  const templateClaim = !volume && mountName ? input.claimForTemplateVolume?.(mountName) : undefined;
  if (!volume && !templateClaim) {
    return {
      ...base,
      source: 'None',
      durable: false,
      status: 'False',
      reason: DurableStorageReasons.NoVolume,
      message: `nothing is mounted at ${dataDir} in ${where}: the identity lives in the container layer and is lost on restart`,
    };
  }
  const claimName = volume?.persistentVolumeClaim?.claimName ?? templateClaim;
  if (claimName) {
    return claimPosture({
      ...input,
      claimName,
      volumeName: volume?.name ?? mountName ?? claimName,
      dataDir,
      where,
    });
  }
  const volumeName = volume?.name ?? '';
  if (volume?.emptyDir) {
    return input.ephemeralByChoice
      ? {
          ...base,
          volumeName,
          source: 'EmptyDir',
          durable: false,
          status: 'False',
          reason: DurableStorageReasons.EphemeralByChoice,
          message: `spec.storage.ephemeral is true: ${dataDir} is the emptyDir "${volumeName}"; every restart needs a guided recovery`,
        }
      : {
          ...base,
          volumeName,
          source: 'EmptyDir',
          durable: false,
          status: 'False',
          reason: DurableStorageReasons.EmptyDir,
          message: `${dataDir} in ${where} is the emptyDir "${volumeName}": the identity is lost when the pod goes; mount a PersistentVolumeClaim there`,
        };
  }
  if (volume?.ephemeral) {
    return {
      ...base,
      volumeName,
      source: 'Ephemeral',
      durable: false,
      status: 'False',
      reason: DurableStorageReasons.EphemeralVolume,
      message: `${dataDir} in ${where} is the generic ephemeral volume "${volumeName}", deleted with the pod; use a PersistentVolumeClaim`,
    };
  }
  if (volume?.hostPath) {
    return {
      ...base,
      volumeName,
      source: 'HostPath',
      durable: true,
      status: 'True',
      reason: DurableStorageReasons.HostPath,
      message: `${dataDir} in ${where} is the hostPath ${volume.hostPath.path}: durable only while the pod stays on the same node`,
    };
  }
  return {
    ...base,
    volumeName,
    source: 'Unknown',
    durable: false,
    status: 'Unknown',
    reason: DurableStorageReasons.UnrecognizedVolume,
    message: `${dataDir} in ${where} is the volume "${volumeName}" of a kind the operator does not classify; prefer a PersistentVolumeClaim`,
  };
}

function agentMountName(spec: V1PodSpec | undefined, dataDir: string): string | undefined {
  return dataDirMounts(agentContainer(spec), dataDir)[0]?.name;
}

function claimPosture(
  input: PostureInput & { claimName: string; volumeName: string; dataDir: string; where: string },
): StoragePosture {
  const claim = input.claims.get(input.claimName);
  const base = {
    ...(input.podName ? { podName: input.podName } : {}),
    source: 'PersistentVolumeClaim' as const,
    volumeName: input.volumeName,
    claimName: input.claimName,
  };
  if (!claim && !input.fromPod && input.identityClaimUID) {
    // No pod, and the claim the data was written to is gone: what the next pod gets is a new, empty
    // claim, not the durable storage the identity is on. Autonomous here would be a mode no storage
    // backs (between a deleted claim and its replacement: GuidedRecovery, then ClaimReplaced).
    return {
      ...base,
      durable: false,
      status: 'Unknown',
      reason: DurableStorageReasons.ClaimPending,
      message: `the claim ${input.claimName} the data directory was on (UID ${input.identityClaimUID}) is gone; the next pod gets a new, empty one`,
    };
  }
  if (!claim || claim.deleting) {
    return {
      ...base,
      ...(claim ? { claim } : {}),
      // A template's claim that is not created yet is still the durable storage the pod will get.
      durable: !claim && !input.fromPod,
      status: input.fromPod ? 'False' : 'Unknown',
      reason: input.fromPod ? DurableStorageReasons.ClaimLost : DurableStorageReasons.ClaimPending,
      message: claim
        ? `the claim ${input.claimName} behind ${input.dataDir} is being deleted`
        : input.fromPod
          ? `the claim ${input.claimName} mounted at ${input.dataDir} in ${input.where} does not exist`
          : `the claim ${input.claimName} is not created yet`,
    };
  }
  if (input.identityClaimUID && claim.uid !== input.identityClaimUID) {
    return {
      ...base,
      claim,
      durable: false,
      status: 'False',
      reason: DurableStorageReasons.ClaimReplaced,
      message: `the claim ${input.claimName} was replaced (UID ${input.identityClaimUID} became ${claim.uid}): the identity written to the old claim is gone`,
    };
  }
  if (claim.phase === 'Lost') {
    return {
      ...base,
      claim,
      durable: false,
      status: 'False',
      reason: DurableStorageReasons.ClaimLost,
      message: `the claim ${input.claimName} is Lost: its volume is gone`,
    };
  }
  if (claim.phase !== 'Bound') {
    return {
      ...base,
      claim,
      durable: true,
      status: 'Unknown',
      reason: DurableStorageReasons.ClaimPending,
      message: `the claim ${input.claimName} is ${claim.phase || 'Pending'}, not yet Bound`,
    };
  }
  return {
    ...base,
    claim,
    durable: true,
    status: 'True',
    reason: DurableStorageReasons.ClaimBound,
    message: `${input.dataDir} is the bound claim ${input.claimName}`,
  };
}

/** The runbook's mode for a posture: durable storage means the connector recovers by itself. */
export function modeOf(posture: StoragePosture): ConnectorMode | undefined {
  if (posture.source === 'Unknown' && posture.status === 'Unknown') return undefined;
  return posture.durable && posture.reason !== DurableStorageReasons.ClaimReplaced
    ? 'Autonomous'
    : 'GuidedRecovery';
}

/** The pod whose mount counts: a running, non-terminating pod first, then any non-terminating one. */
export function currentPod(pods: V1Pod[]): V1Pod | undefined {
  const live = pods.filter((p) => !p.metadata?.deletionTimestamp);
  // A running pod is what backs the identity now. Otherwise the newest: during a rollout of an
  // adopted Deployment the new pod has the template the workload is moving to.
  const created = (p: V1Pod) => new Date(p.metadata?.creationTimestamp ?? 0).getTime();
  const newestFirst = [...live].sort((a, b) => created(b) - created(a));
  return newestFirst.find((p) => p.status?.phase === 'Running') ?? newestFirst[0];
}
