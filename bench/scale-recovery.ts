// Figure 5 of the scale benchmark: guided recovery, request -> Online, one after another and many at
// once. The fleet loses the identities (key and certificate gone from the data volume, identity.json
// kept): each agent fails closed at its next heartbeat (IDENTITY_LOST, exit 10) and crash-loops;
// the operator shows NeedsRecovery. Requests wait until the control plane has marked each offline
// (its heartbeat timeout): before that its dry run answers RECOVERY_NOT_NEEDED and the operator
// waits, so the figure would be the timeout's. A recovery is requested as the kubectl plugin does:
// a merge patch of spec.recovery.requestId. The operator then scales to zero, begins the recovery
// (revoking), mints one token, scales up; the new pod's agent pairs once with it; the operator
// deletes the spent Secret and restarts the pod, whose agent must reconnect with the persisted
// identity and no token; then the recovery is Completed and the Connector Online. Request -> Online
// is the time from the patch to the watch showing Online; each step's first sight is kept too.
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { connectorIdOf, type PhaseContext } from './scale-context.ts';
import {
  diffWrites,
  latencySummary,
  nonLeaseWrites,
  percentile,
  pool,
  round,
  say,
  sleep,
  until,
} from './scale-util.ts';

export interface RecoveryOptions {
  /** Recovered one after another (the median is the figure). */
  sequential: string[];
  /** Recovered all at once. */
  atOnce: string[];
  /** How the at-once count was chosen, said with the figure. */
  atOnceRule: string;
  offlineAfterSeconds: number;
}

const STEPS = [
  'Checking',
  'ScalingDown',
  'StorageReady',
  'TokensRevoked',
  'TokenMinted',
  'ScalingUp',
  'AwaitingOnline',
  'ValidatingRestart',
  'Completed',
] as const;

export async function runRecoveries(ctx: PhaseContext, options: RecoveryOptions) {
  const run = Date.now().toString(36);
  // requestId -> step -> when the watch first showed it.
  const stepSeen = new Map<string, Map<string, number>>();
  ctx.observer.onStatus((_name, _before, object) => {
    const recovery = object.status?.recovery;
    if (!recovery?.requestId || !recovery.step) return;
    const steps = stepSeen.get(recovery.requestId) ?? new Map<string, number>();
    if (!steps.has(recovery.step)) steps.set(recovery.step, Date.now());
    stepSeen.set(recovery.requestId, steps);
  });

  /** Loses the identities, then waits for NeedsRecovery and for the control plane's offline. */
  const loseIdentities = async (names: string[]) => {
    const lostAt = Date.now();
    ctx.command({ type: 'lose-identity', ids: names.map((n) => connectorIdOf(ctx, n)) });
    const bound = options.offlineAfterSeconds * 1000 + ctx.timeoutMs;
    await until(`${names.length} Connectors to show NeedsRecovery`, bound, () =>
      names.every((n) => ctx.observer.phaseSince(n, 'NeedsRecovery', lostAt) !== undefined),
    );
    const needsRecovery = names.map(
      (n) => (ctx.observer.phaseSince(n, 'NeedsRecovery', lostAt) ?? NaN) - lostAt,
    );
    const offline = new Set<string>();
    await until(`the control plane to mark ${names.length} connectors offline`, bound, async () => {
      await pool(
        names.filter((n) => !offline.has(n)),
        8,
        async (n) => {
          if ((await ctx.record(connectorIdOf(ctx, n))).state === 'offline') offline.add(n);
        },
      );
      if (offline.size < names.length) await sleep(900);
      return offline.size === names.length;
    });
    return {
      lostToNeedsRecovery: latencySummary(needsRecovery),
      lostToOfflineSeconds: round((Date.now() - lostAt) / 1000),
    };
  };

  const request = async (name: string, requestId: string) => {
    const at = Date.now();
    await ctx.objects.patchNamespacedCustomObject(
      {
        group: 'vaultpam.io',
        version: 'v1alpha1',
        namespace: ctx.namespace,
        plural: 'connectors',
        name,
        body: { spec: { recovery: { requestId } } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    return { name, requestId, at };
  };

  const awaitEnd = async ({ name, requestId, at }: { name: string; requestId: string; at: number }) => {
    await until(`the recovery ${requestId} of ${name} to end`, ctx.timeoutMs, () => {
      const recovery = ctx.observer.latest.get(name)?.status?.recovery;
      return (
        recovery?.requestId === requestId && (recovery.step === 'Completed' || recovery.step === 'Failed')
      );
    });
    const recovery = ctx.observer.latest.get(name)?.status?.recovery;
    if (recovery?.step === 'Failed')
      throw new Error(`the recovery ${requestId} of ${name} failed: ${recovery.reason}`);
    await until(
      `${name} to show Online after its recovery`,
      ctx.timeoutMs,
      () => ctx.observer.phaseSince(name, 'Online', at) !== undefined,
    );
    const steps = stepSeen.get(requestId) ?? new Map<string, number>();
    return {
      requestToOnlineMs: (ctx.observer.phaseSince(name, 'Online', at) ?? NaN) - at,
      requestToCompletedMs: (steps.get('Completed') ?? NaN) - at,
      steps: Object.fromEntries(STEPS.map((s) => [s, (steps.get(s) ?? NaN) - at])),
    };
  };

  const stepMedians = (results: Array<{ steps: Record<string, number> }>) =>
    Object.fromEntries(
      STEPS.map((s) => [
        s,
        Math.round(
          percentile(
            results.map((r) => r.steps[s] ?? NaN),
            50,
          ),
        ),
      ]),
    );

  // ---- one after another --------------------------------------------------------------------
  say(
    `    recovery: ${options.sequential.length} connectors lose their identity; then one recovery at a time`,
  );
  const seqLoss = await loseIdentities(options.sequential);
  const pairingsBefore = ctx.fleet()?.enrolled ?? 0;
  const sequential = [];
  for (const [i, name] of options.sequential.entries())
    sequential.push(await awaitEnd(await request(name, `bench-${run}-s${i}`)));
  const seqOnline = sequential.map((r) => r.requestToOnlineMs);
  const oneAtATime = {
    recoveries: sequential.length,
    ...seqLoss,
    medianRequestToOnlineMs: Math.round(percentile(seqOnline, 50)),
    minRequestToOnlineMs: Math.round(Math.min(...seqOnline)),
    maxRequestToOnlineMs: Math.round(Math.max(...seqOnline)),
    medianRequestToCompletedMs: Math.round(
      percentile(
        sequential.map((r) => r.requestToCompletedMs),
        50,
      ),
    ),
    medianMsFromRequestToStep: stepMedians(sequential),
    pairings: (ctx.fleet()?.enrolled ?? 0) - pairingsBefore,
  };
  say(`    recovery, one at a time: ${JSON.stringify(oneAtATime)}`);

  // ---- all at once ----------------------------------------------------------------------------
  say(`    recovery: ${options.atOnce.length} connectors lose their identity; then all recover at once`);
  const batchLoss = await loseIdentities(options.atOnce);
  const batchPairingsBefore = ctx.fleet()?.enrolled ?? 0;
  const metricsBefore = await ctx.operatorMetrics();
  const started = Date.now();
  const requests: Array<{ name: string; requestId: string; at: number }> = [];
  await pool([...options.atOnce.entries()], 32, async ([i, name]) => {
    requests.push(await request(name, `bench-${run}-b${i}`));
  });
  const batch = await Promise.all(requests.map(awaitEnd));
  const lastOnline = Math.max(...requests.map((r, i) => r.at + (batch[i]?.requestToOnlineMs ?? NaN)));
  const writes = diffWrites(metricsBefore, await ctx.operatorMetrics());
  const atOnce = {
    recoveries: batch.length,
    rule: options.atOnceRule,
    ...batchLoss,
    requestToOnline: latencySummary(batch.map((r) => r.requestToOnlineMs)),
    firstRequestToLastOnlineSeconds: round((lastOnline - started) / 1000, 2),
    medianMsFromRequestToStep: stepMedians(batch),
    pairings: (ctx.fleet()?.enrolled ?? 0) - batchPairingsBefore,
    operatorWrites: nonLeaseWrites(writes),
    operatorWritesPerRecovery: round(nonLeaseWrites(writes) / Math.max(1, batch.length), 1),
    writesByKind: writes,
  };
  say(`    recovery, all at once: ${JSON.stringify(atOnce)}`);
  return { oneAtATime, atOnce };
}
