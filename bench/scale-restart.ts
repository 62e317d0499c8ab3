// Figure 6 of the scale benchmark: an operator restart. Once the operator has written nothing for
// 10 s, it gets SIGTERM (as Kubernetes stops a pod: it releases its lease on the way out) and a new
// process starts with the same flags. "Every Connector reconciled again" is read from the new
// process's /metrics: it leads (vaultpam_operator_leader 1), its vaultpam_operator_reconciles_total
// (every result) has reached N, and its work queue is empty (vaultpam_operator_work_queue_depth and
// _in_flight both 0). A fair definition: on taking the lease the operator queues every Connector its
// informer listed, one key each (the queue dedupes), and a key leaves the queue only when a
// reconcile of it starts; so nothing queued and nothing running, after at least N finished
// reconciles, means each of the N has finished one. The counter alone would not do (a key
// reconciled twice counts twice), nor the queue alone (it is empty before the lease is taken).
// Sampled every ~250 ms. The writes are the new process's own counter, which starts at zero: those
// up to that moment, and those until it has been quiet for 10 s; the watch says whether any
// Connector's status changed meanwhile (none should: nothing changed).
import type { CpuBreakdown } from './process-usage.ts';
import { connectorEventsSince, type PhaseContext } from './scale-context.ts';
import { statusDiff } from './scale-observer.ts';
import type { OperatorProcess } from './scale-operator.ts';
import {
  counterSum,
  diffWrites,
  nonLeaseWrites,
  round,
  say,
  sleep,
  until,
  waitForQuiet,
} from './scale-util.ts';

export async function runRestart(
  ctx: PhaseContext,
  old: OperatorProcess,
  start: () => Promise<OperatorProcess>,
  connectors: number,
  /**
   * Takes a CPU snapshot of every process; the function it returns gives the CPU spent since, the
   * operator's being the new process (the pid given).
   */
  cpuSince: () => (operatorPid: number) => CpuBreakdown,
) {
  const quietBefore = await waitForQuiet(old.metrics, 10_000, 180_000);
  // What each status write during the restart changed, by what it changed (there should be none).
  const changes: Record<string, number> = {};
  let recording = true;
  ctx.observer.onStatus((_name, before, object) => {
    if (!recording) return;
    const what = statusDiff(before, object.status).join(' + ');
    changes[what] = (changes[what] ?? 0) + 1;
  });
  const cpBefore = await ctx.controlPlaneOperatorRequests();
  const sigtermAt = Date.now();
  const cpu = cpuSince();
  const exit = await old.stop();
  const exitedAt = Date.now();
  const operator = await start();
  const readyAt = Date.now();
  let leaderAt: number | undefined;
  let allAt = 0;
  let atAll = '';
  await until('the restarted operator to reconcile every Connector', ctx.timeoutMs, async () => {
    const text = await operator.metrics();
    const leads = counterSum(text, 'vaultpam_operator_leader') === 1;
    if (leads) leaderAt ??= Date.now();
    const done =
      leads &&
      counterSum(text, 'vaultpam_operator_reconciles_total') >= connectors &&
      counterSum(text, 'vaultpam_operator_work_queue_depth') === 0 &&
      counterSum(text, 'vaultpam_operator_work_queue_in_flight') === 0;
    if (done) {
      allAt = Date.now();
      atAll = text;
    } else await sleep(150);
    return done;
  });
  // From SIGTERM to every Connector reconciled: what each process spent, and what waited.
  const machineCpu = cpu(operator.pid);
  const quietAfter = await waitForQuiet(operator.metrics, 10_000, 120_000);
  const settled = await operator.metrics();
  const settledAt = Date.now();
  recording = false;
  const statusWrites = ctx.observer.statusChangesBetween(sigtermAt, settledAt);
  const events = await connectorEventsSince(ctx, sigtermAt);
  const writesToAll = diffWrites('', atAll);
  const writesSettled = diffWrites('', settled);
  const reconciles = (text: string, result: string) =>
    counterSum(text, 'vaultpam_operator_reconciles_total', (l) => l.includes(`result="${result}"`));
  const result = {
    definition:
      'new process leads, vaultpam_operator_reconciles_total >= N, work queue depth and in flight 0 (sampled every ~250 ms)',
    quietBefore,
    exit,
    sigtermToExitSeconds: round((exitedAt - sigtermAt) / 1000, 2),
    startToReadySeconds: round((readyAt - exitedAt) / 1000, 2),
    startToLeaderSeconds: round(((leaderAt ?? NaN) - exitedAt) / 1000, 2),
    startToAllReconciledSeconds: round((allAt - exitedAt) / 1000, 2),
    sigtermToAllReconciledSeconds: round((allAt - sigtermAt) / 1000, 2),
    reconcilesToAll: {
      success: reconciles(atAll, 'success'),
      requeue: reconciles(atAll, 'requeue'),
      error: reconciles(atAll, 'error'),
    },
    writesToAllReconciled: nonLeaseWrites(writesToAll),
    writesToAllReconciledByKind: writesToAll,
    quietAfter,
    writesUntilQuiet: nonLeaseWrites(writesSettled),
    writesUntilQuietByKind: writesSettled,
    connectorsWithStatusWrites: statusWrites.size,
    statusChanges: changes,
    connectorsWithEvents: events.size,
    controlPlaneRequestsFromOperator: (await ctx.controlPlaneOperatorRequests()) - cpBefore,
    machineCpu,
  };
  say(`    operator restart: ${JSON.stringify(result)}`);
  return { operator, result };
}
