// One real Kubernetes control plane per test file (ava runs each file in its own process), started
// before the file's tests and stopped after them, even when a test fails.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { TestFn } from 'ava';
import { type LocalCluster, startLocalCluster } from '../../dev/local-cluster/cluster.ts';

export interface ClusterContext {
  cluster: LocalCluster;
  kc: KubeConfig;
}

/**
 * Starts a local cluster for a test file. Free ports are probed, then bound by the component:
 * another test process can take one in between. One fresh attempt (new ports, new directory) tells
 * that race from a real failure.
 */
export async function startTestCluster(): Promise<LocalCluster> {
  try {
    return await startLocalCluster();
  } catch (first) {
    return startLocalCluster().catch((second: unknown) => {
      throw new AggregateError(
        [first, second],
        `the local cluster did not start twice: ${(second as Error).message}`,
      );
    });
  }
}

/**
 * Registers before/after hooks on `test` that start a local cluster for this file. Returns a getter
 * for the running cluster (valid inside tests).
 */
export function useCluster(test: TestFn<unknown>): () => ClusterContext {
  let context: ClusterContext | undefined;
  test.serial.before(async () => {
    const cluster = await startTestCluster();
    context = { cluster, kc: cluster.adminKubeConfig() };
  });
  test.after.always(async () => {
    await context?.cluster.stop();
  });
  return () => {
    if (!context) throw new Error('the local cluster is not running (did test.before fail?)');
    return context;
  };
}

let namespaceCounter = 0;

/** Creates a uniquely named namespace for one test; the namespace controller removes it afterwards. */
export async function createTestNamespace(kc: KubeConfig, prefix = 't'): Promise<string> {
  namespaceCounter += 1;
  const name = `${prefix}-${process.pid}-${namespaceCounter}`.slice(0, 63);
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
  return name;
}

// Installing the CRDs is the same code the local run uses.
export { installCrds, repoRoot } from '../../dev/local-cluster/install.ts';
