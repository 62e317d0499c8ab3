// The local cluster's lifecycle: it starts from the cached binaries and leaves nothing behind.
import { access } from 'node:fs/promises';
import test from 'ava';
import { startTestCluster } from '../helpers/cluster.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('stop() ends every component process and removes the work directory', async (t) => {
  const cluster = await startTestCluster();
  t.teardown(() => cluster.stop());
  const pids = cluster.pids();
  t.is(pids.length, 3, 'etcd, kube-apiserver and kube-controller-manager run');
  t.true(pids.every(alive));
  await cluster.stop();
  t.deepEqual(pids.filter(alive), []);
  await t.throwsAsync(() => access(cluster.workDir));
});
