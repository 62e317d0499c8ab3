// What the operator's pod cache keeps of each connector pod: the fields a pass reads, nothing else.
// A pod as the API server serves it is mostly what the operator never looks at (images, resources,
// probes, security contexts, tolerations, the service-account token volume's sources, conditions,
// IPs, each container status's image and resources); at 10,000 connectors the cache held about
// 5 KB of JSON per pod (docs/performance.md). Kept, and read by:
//   metadata (all but managedFields)     names, uid, labels, annotations (restartedFor), creation and
//                                        deletion timestamps: storage-posture.ts currentPod,
//                                        recovery-machine.ts
//   spec.containers[].name, .volumeMounts,
//   .env (PAM_AGENT_DATA_DIR entries only) which container is the agent and where its data lives
//                                        (storage-posture.ts agentContainer, dataDirOf, dataVolumeOf)
//   spec.volumes                         what backs the data directory (storage-posture.ts, observe.ts)
//   status.phase, .startTime             currentPod, the validation restart's proof (recovery-machine.ts)
//   status.containerStatuses[].name, .ready, .restartCount, .started, .state, .lastState
//                                        the agent's facts and its termination message (pod-facts.ts)
// Reading another pod field means keeping it here first; test/unit/pod-cache.test.ts holds every
// decision the planner makes on a full pod and on its cached form to the same result.
import type { V1Container, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { DATA_DIR_ENV } from './storage-posture.ts';

export function podAsCached(pod: V1Pod): V1Pod {
  const cached: V1Pod = {};
  if (pod.apiVersion !== undefined) cached.apiVersion = pod.apiVersion;
  if (pod.kind !== undefined) cached.kind = pod.kind;
  if (pod.metadata !== undefined) cached.metadata = pod.metadata;
  if (pod.spec !== undefined) {
    cached.spec = { containers: pod.spec.containers.map(containerAsCached) };
    if (pod.spec.volumes !== undefined) cached.spec.volumes = pod.spec.volumes;
  }
  if (pod.status !== undefined) {
    const { phase, startTime, containerStatuses } = pod.status;
    cached.status = {};
    if (phase !== undefined) cached.status.phase = phase;
    if (startTime !== undefined) cached.status.startTime = startTime;
    if (containerStatuses !== undefined)
      cached.status.containerStatuses = containerStatuses.map(statusAsCached);
  }
  return cached;
}

function containerAsCached(container: V1Container): V1Container {
  const cached: V1Container = { name: container.name };
  const env = container.env?.filter((e) => e.name === DATA_DIR_ENV);
  if (env !== undefined && env.length > 0) cached.env = env;
  if (container.volumeMounts !== undefined) cached.volumeMounts = container.volumeMounts;
  return cached;
}

function statusAsCached(status: V1ContainerStatus): V1ContainerStatus {
  // image and imageID are required by the type, not read by the operator: kept empty.
  const cached: V1ContainerStatus = {
    name: status.name,
    ready: status.ready,
    restartCount: status.restartCount,
    image: '',
    imageID: '',
  };
  if (status.started !== undefined) cached.started = status.started;
  if (status.state !== undefined) cached.state = status.state;
  if (status.lastState !== undefined) cached.lastState = status.lastState;
  return cached;
}
