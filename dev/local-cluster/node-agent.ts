// The Node this runner stands for: registered with Ready=True, its Lease in kube-node-lease
// renewed and its Ready heartbeat refreshed, so the node lifecycle controller neither taints it
// nor evicts its pods. Stopping the agent stops the heartbeats and leaves the Node as it is, as a
// stopped kubelet does.
import { arch, cpus, hostname, totalmem } from 'node:os';
import {
  type CoordinationV1Api,
  type CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  type V1NodeCondition,
} from '@kubernetes/client-node';
import type { Clock } from '../../src/lib/clock.ts';
import { errorMessage } from '../../src/lib/errors.ts';
import type { Logger } from '../../src/lib/logger.ts';
import { LOCAL_POD_IP } from './container-spec.ts';
import { isoSeconds } from './pod-status.ts';

export const DEFAULT_NODE_NAME = 'vaultpam-local-node';
export const NODE_LEASE_NAMESPACE = 'kube-node-lease';
const LEASE_DURATION_SECONDS = 40;

export interface NodeAgentOptions {
  core: CoreV1Api;
  coordination: CoordinationV1Api;
  nodeName: string;
  clock: Clock;
  logger: Logger;
  /** How often the Lease is renewed (kubelet: 10 s). */
  leaseRenewMs?: number;
  /** How often the Ready condition's heartbeat is refreshed (kubelet: at most 5 min when unchanged). */
  statusHeartbeatMs?: number;
  /** Reported as nodeInfo.kubeletVersion. */
  version: string;
}

function statusCode(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

export class NodeAgent {
  private readonly options: NodeAgentOptions;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly readySince: string;

  constructor(options: NodeAgentOptions) {
    this.options = options;
    this.readySince = isoSeconds(options.clock.now());
  }

  get nodeName(): string {
    return this.options.nodeName;
  }

  /** Registers the Node (or takes over an existing one), reports Ready and starts the heartbeats. */
  async start(): Promise<void> {
    const { core, nodeName } = this.options;
    try {
      await core.createNode({
        body: {
          metadata: {
            name: nodeName,
            labels: {
              'kubernetes.io/hostname': nodeName,
              'kubernetes.io/os': 'linux',
              'kubernetes.io/arch': arch() === 'x64' ? 'amd64' : arch(),
              'vaultpam.io/local-pod-runner': 'true',
            },
          },
        },
      });
    } catch (error) {
      if (statusCode(error) !== 409) throw error;
    }
    await this.postStatus();
    await this.renewLease();
    const every = (ms: number, beat: () => Promise<void>, what: string) => {
      const timer = setInterval(() => {
        beat().catch((error: unknown) =>
          this.options.logger.warn({ node: nodeName, err: errorMessage(error) }, `node ${what} failed`),
        );
      }, ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(this.options.leaseRenewMs ?? 10_000, () => this.renewLease(), 'lease renewal');
    every(this.options.statusHeartbeatMs ?? 60_000, () => this.postStatus(), 'status heartbeat');
  }

  stop(): void {
    for (const timer of this.timers.splice(0)) clearInterval(timer);
  }

  private conditions(now: string): V1NodeCondition[] {
    const condition = (type: string, status: string, reason: string, message: string) =>
      ({
        type,
        status,
        reason,
        message,
        lastHeartbeatTime: now,
        lastTransitionTime: this.readySince,
      }) as unknown as V1NodeCondition;
    return [
      condition(
        'MemoryPressure',
        'False',
        'KubeletHasSufficientMemory',
        'local pod runner: no memory pressure',
      ),
      condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'local pod runner: no disk pressure'),
      condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'local pod runner: no PID pressure'),
      condition('Ready', 'True', 'KubeletReady', 'local pod runner is posting ready status'),
    ];
  }

  /** Writes the Node's status: Ready, capacity and addresses, with a fresh heartbeat. */
  async postStatus(): Promise<void> {
    const now = isoSeconds(this.options.clock.now());
    const capacity = {
      cpu: String(cpus().length),
      memory: `${Math.floor(totalmem() / 1024)}Ki`,
      pods: '110',
    };
    await this.options.core.patchNodeStatus(
      {
        name: this.options.nodeName,
        body: {
          status: {
            capacity,
            allocatable: capacity,
            conditions: this.conditions(now),
            addresses: [
              { type: 'InternalIP', address: LOCAL_POD_IP },
              { type: 'Hostname', address: this.options.nodeName },
            ],
            nodeInfo: {
              architecture: arch() === 'x64' ? 'amd64' : arch(),
              operatingSystem: 'linux',
              kubeletVersion: this.options.version,
              kubeProxyVersion: '',
              containerRuntimeVersion: `local-processes://${process.version}`,
              kernelVersion: '',
              osImage: `local pod runner on ${hostname()}`,
              machineID: '',
              systemUUID: '',
              bootID: '',
            },
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /** Creates or renews the Node's Lease, the heartbeat the node lifecycle controller watches. */
  async renewLease(): Promise<void> {
    const { coordination, nodeName, clock } = this.options;
    const renewTime = new V1MicroTime(clock.now().getTime());
    try {
      await coordination.patchNamespacedLease(
        {
          name: nodeName,
          namespace: NODE_LEASE_NAMESPACE,
          body: { spec: { renewTime: renewTime.toISOString() } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (error) {
      if (statusCode(error) !== 404) throw error;
      const node = await this.options.core.readNode({ name: nodeName });
      await coordination.createNamespacedLease({
        namespace: NODE_LEASE_NAMESPACE,
        body: {
          metadata: {
            name: nodeName,
            ownerReferences: [
              { apiVersion: 'v1', kind: 'Node', name: nodeName, uid: node.metadata?.uid ?? '' },
            ],
          },
          spec: { holderIdentity: nodeName, leaseDurationSeconds: LEASE_DURATION_SECONDS, renewTime },
        },
      });
    }
  }
}
