// The whole system with connector pods that really run: the operator environment (real API server,
// control plane, operator as its ServiceAccount) plus the local pod runner playing kubelet, started
// before a file's tests and stopped after them; and a wait for a Connector's status that, when it
// times out, says what the status, the pod and the agent's log looked like.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import type { TestFn } from 'ava';
import { silentLogger } from '../../src/lib/logger.ts';
import { crashBackoffFrom } from '../../src/local-cluster/crash-backoff.ts';
import { PodRunner } from '../../src/local-cluster/pod-runner.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import type { ClusterContext } from './cluster.ts';
import { eventually } from './eventually.ts';
import { connectors, type OperatorEnvironment, startOperatorEnvironment } from './operator-env.ts';

export const LONG = { timeoutMs: 90_000, intervalMs: 250 };

export interface RunningPods {
  env: OperatorEnvironment;
  runner: PodRunner;
  /** The runner's root: claims live in <root>/claims/<claim UID>. */
  root: string;
  /** Waits until the Connector's status satisfies `predicate`; a timeout describes the pod and its log. */
  waitForStatus(
    namespace: string,
    name: string,
    description: string,
    predicate: (c: Connector) => boolean,
  ): Promise<Connector>;
}

/** Registers hooks on `test` that start the environment and the pod runner; returns a getter. */
export function useRunningPods(test: TestFn<unknown>, cluster: () => ClusterContext): () => RunningPods {
  let context: RunningPods | undefined;
  let env: OperatorEnvironment | undefined;
  let runner: PodRunner | undefined;
  let root: string | undefined;
  test.serial.before(async () => {
    env = await startOperatorEnvironment(cluster());
    root = await mkdtemp(join(tmpdir(), 'vaultpam-pods-'));
    runner = new PodRunner({
      kubeConfig: cluster().kc,
      rootDir: root,
      logger: silentLogger(),
      crashBackoff: crashBackoffFrom(500, 3_000),
      probePeriodMs: 300,
      resyncPeriodMs: 1_000,
      leaseRenewMs: 2_000,
    });
    await runner.start();
    context = {
      env,
      runner,
      root,
      waitForStatus: (namespace, name, description, predicate) =>
        waitForStatus(cluster(), runner as PodRunner, namespace, name, description, predicate),
    };
  });
  test.after.always(async () => {
    await runner?.stop();
    await env?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });
  return () => {
    if (!context) throw new Error('the pod runner is not running (did test.before fail?)');
    return context;
  };
}

async function waitForStatus(
  cluster: ClusterContext,
  runner: PodRunner,
  namespace: string,
  name: string,
  description: string,
  predicate: (c: Connector) => boolean,
): Promise<Connector> {
  const api = connectors(cluster.kc);
  let last: Connector | undefined;
  try {
    return await eventually(
      () =>
        api.get(namespace, name).then((c) => {
          last = c;
          return predicate(c) ? c : undefined;
        }),
      { ...LONG, description },
    );
  } catch (error) {
    // Say what the world looked like, so a failure can be read without re-running it.
    const pod = await cluster.kc
      .makeApiClient(CoreV1Api)
      .readNamespacedPod({ namespace, name: `${name}-0` })
      .catch(() => undefined);
    const logs = await runner.getLogs(namespace, `${name}-0`, { allInstances: true }).catch(() => '');
    throw new Error(
      `${(error as Error).message}\nstatus: ${JSON.stringify(last?.status)}\npod: ${JSON.stringify(pod?.status?.containerStatuses)}\nlogs: ${logs.slice(-3000)}`,
    );
  }
}
