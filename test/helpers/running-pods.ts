// The whole system with connector pods that really run: the operator environment (real API server,
// control plane, operator as its ServiceAccount) plus the local pod runner playing kubelet, started
// before a file's tests and stopped after them; and a wait for a Connector's status that, when it
// times out, says what the status, the pod, the agent's log, the control plane's audit entries and
// the Connector's Events looked like. The node can be restarted: the pod runner stopped and a new
// one started on the same root, as a rebooted kubelet.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, EventsV1Api } from '@kubernetes/client-node';
import type { TestFn } from 'ava';
import { crashBackoffFrom } from '../../dev/local-cluster/crash-backoff.ts';
import { PodRunner, type PodRunnerOptions } from '../../dev/local-cluster/pod-runner.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import type { ClusterContext } from './cluster.ts';
import { eventually } from './eventually.ts';
import { connectors, type OperatorEnvironment, startOperatorEnvironment } from './operator-env.ts';

export const LONG = { timeoutMs: 90_000, intervalMs: 250 };

export interface RunningPods {
  env: OperatorEnvironment;
  /** The pod runner now running (a new one after restartRunner()). */
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
  /**
   * Restarts the node: stops the pod runner (every container process stops, pods stay in the API as
   * they were), runs `whileDown` if given, and starts a new one on the same root, which starts the
   * containers of the pods it finds afresh. Returns the new runner (also `runner` from then on).
   */
  restartRunner(whileDown?: () => Promise<void>): Promise<PodRunner>;
}

/**
 * Registers hooks on `test` that start the environment and the pod runner; returns a getter.
 * `runnerOptions` replace the runner's test settings, e.g. `{ probePeriodMs: undefined }` runs the
 * probes on the periods the pod declares (a kubelet's timing) instead of every 300 ms.
 */
export function useRunningPods(
  test: TestFn<unknown>,
  cluster: () => ClusterContext,
  runnerOptions: Partial<Omit<PodRunnerOptions, 'kubeConfig' | 'rootDir'>> = {},
): () => RunningPods {
  let context: RunningPods | undefined;
  let env: OperatorEnvironment | undefined;
  let runner: PodRunner | undefined;
  let root: string | undefined;
  const newRunner = (rootDir: string) =>
    new PodRunner({
      kubeConfig: cluster().kc,
      rootDir,
      logger: silentLogger(),
      crashBackoff: crashBackoffFrom(500, 3_000),
      probePeriodMs: 300,
      resyncPeriodMs: 1_000,
      leaseRenewMs: 2_000,
      ...runnerOptions,
    });
  test.serial.before(async () => {
    env = await startOperatorEnvironment(cluster());
    root = await mkdtemp(join(tmpdir(), 'vaultpam-pods-'));
    runner = newRunner(root);
    await runner.start();
    const started = { env, root };
    context = {
      ...started,
      get runner() {
        return runner as PodRunner;
      },
      waitForStatus: (namespace, name, description, predicate) =>
        waitForStatus(cluster(), started.env, runner as PodRunner, namespace, name, description, predicate),
      async restartRunner(whileDown) {
        await runner?.stop();
        try {
          await whileDown?.();
        } finally {
          // The node comes back even when what was checked meanwhile failed: later tests need it.
          runner = newRunner(started.root);
          await runner.start();
        }
        return runner;
      },
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
  env: OperatorEnvironment,
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
    // Say what the world looked like, so a failure can be read without re-running it. The pod is
    // the one the status names (an adopted workload's pods have their own names), else <name>-0.
    const podName = last?.status?.storage?.podName ?? `${name}-0`;
    const pod = await cluster.kc
      .makeApiClient(CoreV1Api)
      .readNamespacedPod({ namespace, name: podName })
      .catch(() => undefined);
    const logs = await runner.getLogs(namespace, podName, { allInstances: true }).catch(() => '');
    const connectorId = last?.status?.connectorId ?? `${namespace}.${name}`;
    // Audit details and Event notes hold public facts only (ids, serials, states, codes).
    const audit = await env.admin
      .audit({ connectorId, limit: 1000 })
      .then((entries) =>
        entries
          .slice(-40)
          .map((e) => `${e.seq} ${e.at} ${e.type} ${JSON.stringify(e.details)}`)
          .join('\n'),
      )
      .catch((e: Error) => `(audit unreadable: ${e.message})`);
    const events = await cluster.kc
      .makeApiClient(EventsV1Api)
      .listNamespacedEvent({ namespace })
      .then((list) =>
        list.items
          .filter((e) => e.regarding?.kind === 'Connector' && e.regarding.name === name)
          .map((e) => `${e.type} ${e.reason} x${e.series?.count ?? 1}: ${e.note ?? ''}`.slice(0, 400))
          .join('\n'),
      )
      .catch((e: Error) => `(events unreadable: ${e.message})`);
    throw new Error(
      `${(error as Error).message}\nstatus: ${JSON.stringify(last?.status)}\npod ${podName}: ${JSON.stringify(pod?.status?.containerStatuses)}\nlogs: ${logs.slice(-3000)}\naudit (last 40):\n${audit}\nevents:\n${events}`,
    );
  }
}
