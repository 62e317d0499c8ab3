// `recover NAME [--request-id ID] [--dry-run] [--timeout 15m]`: asks for a guided recovery the way
// GitOps does (spec.recovery.requestId), then follows status.recovery step by step through a watch
// on the Connector, and prints the evidence at the end. The operator does the recovery; this only
// asks and watches, so stopping it (Ctrl-C, --timeout) stops the watching, not the recovery.
import { type Connector, RECOVERY_STEPS, type RecoveryStatus } from '../../operator/api/types.ts';
import { untrustedText } from '../../operator/reconcile/untrusted-text.ts';
import { httpStatusOf } from '../../operator/runtime/api-errors.ts';
import { connectorIdOf } from '../connector-facts.ts';
import { apiFailure, type CommandContext, EXIT, readConnector, refusal } from '../context.ts';
import { controlPlaneAccess, controlPlaneOutcome } from '../control-plane-access.ts';
import type { EventRecord } from '../kube-api.ts';
import { indent, serialize, table } from '../output.ts';
import { defaultRequestId, recoveryRefusal } from '../recovery-request.ts';
import { humanDuration } from '../time-text.ts';

/** What each step does, as the operator takes it (docs/architecture.md, "Guided recovery"). */
const STEP_MEANING: Record<string, string> = {
  Requested: "the workload's replicas are recorded",
  Checking:
    "the control plane's dry run of beginning the recovery: a refusal ends it before anything is scaled",
  ScalingDown: 'the workload is scaled to zero, and the operator waits until no pod exists',
  StorageReady: 'the claim for /data exists (an existing claim must; the StatefulSet provisions its own)',
  TokensRevoked:
    'the control plane begins the recovery: live tokens and the certificate are revoked, the token Secret deleted',
  TokenMinted: 'one single-use token is minted (key recovery-<request id>) into the token Secret',
  ScalingUp: 'one replica starts and pairs, once, with that token',
  AwaitingOnline: 'paired and bootstrap retired; the spent Secret is deleted',
  ValidatingRestart: 'the pod is restarted once and must reconnect with the persisted identity and no token',
  Completed: 'done, with the evidence (phase and state before and after, audit entries, the proof line)',
};

/** Steps a recovery takes to its end (Failed is the other end). */
const STEPS = RECOVERY_STEPS.filter((s) => s !== 'Failed');

function stepNumber(step: string): string {
  const index = STEPS.indexOf(step as (typeof STEPS)[number]);
  return index < 0 ? step : `${index + 1}/${STEPS.length} ${step}`;
}

export function evidenceText(recovery: RecoveryStatus): string {
  const e = recovery.evidence ?? {};
  const rows = [
    ['Phase', `${e.phaseBefore ?? '?'} -> ${e.phaseAfter ?? '?'}`],
    ['Control plane state', `${e.controlPlaneStateBefore ?? '?'} -> ${e.controlPlaneStateAfter ?? '?'}`],
    ['Replicas before', e.replicasBefore === undefined ? '?' : String(e.replicasBefore)],
    ['Proof', e.proof ?? 'none recorded'],
    ['Window', `${e.windowStart ?? '?'} .. ${e.windowEnd ?? '?'}`],
  ];
  const lines = rows.map(([label, value]) => `${`${label}:`.padEnd(21)}${value}`);
  const audit = e.auditEntries ?? [];
  lines.push(audit.length === 0 ? `${'Audit entries:'.padEnd(21)}none` : 'Audit entries:');
  if (audit.length > 0) {
    lines.push(
      indent(
        table(
          ['SEQ', 'TIME', 'TYPE'],
          audit.map((a) => [String(a.seq), a.at, a.type]),
        ),
      ),
    );
  }
  return lines.join('\n');
}

/**
 * The rest of the dry run, once the API server's dry run accepted the change on `connector` (judged
 * as it was then): the control plane's dry run, then the steps the operator would take.
 */
async function dryRun(ctx: CommandContext, connector: Connector, requestId: string): Promise<number> {
  const { io } = ctx;
  const { namespace, name } = connector.metadata;
  const out: string[] = [
    `Dry run: a guided recovery of Connector ${namespace}/${name} as request ${requestId}.`,
    `- spec.recovery.requestId=${requestId}: the API server accepts the change (dry run; nothing stored)`,
  ];
  const access = await controlPlaneAccess({
    api: ctx.api,
    connector,
    operatorNamespace: ctx.options.operatorNamespace,
    defaults: ctx.options.defaultControlPlane,
  });
  let allowed = true;
  if ('unavailable' in access) {
    out.push(`- the control plane: not asked: ${access.unavailable}`);
  } else {
    try {
      const check = await access.client.checkRecovery(connectorIdOf(connector), requestId, {
        ownerUid: connector.metadata.uid ?? '',
      });
      out.push(
        `- the control plane would begin it (its dry run answered: state ${untrustedText(check.state, 64)})`,
      );
    } catch (error) {
      // A never-paired connector whose identity the control plane refuses is recovered without its
      // begin (the operator skips Checking for it), so that refusal is not the end.
      allowed = connector.status?.controlPlaneState === 'pending';
      out.push(
        `- the control plane, asked for its dry run, ${controlPlaneOutcome(error, access.credential)}`,
      );
    }
    access.client.close();
  }
  const adopted = connector.spec.workloadRef;
  out.push(
    `- then the operator would take these steps, each recorded in status.recovery.step before it is taken:`,
    ...STEPS.filter(
      (s) => s !== 'ValidatingRestart' || connector.spec.recovery?.validateRestart !== false,
    ).map((s) => `    ${stepNumber(s)}: ${STEP_MEANING[s] ?? ''}`),
    adopted
      ? `- the adopted ${adopted.kind} ${adopted.name} is scaled to 0, to 1 for the pairing, and back to its replicas at the end; it is not restarted for validation`
      : `- the StatefulSet ${name} is scaled to 0, then back to 1`,
    `Nothing was changed. Without --dry-run, ${io.program} recover ${name} -n ${namespace} --request-id ${requestId} asks for it.`,
  );
  io.stdout.write(`${out.join('\n')}\n`);
  return allowed ? EXIT.ok : EXIT.no;
}

/** The reasons of the Event that ends a recovery, whatever its outcome. */
const OUTCOME_EVENTS = new Set(['RecoverySucceeded', 'RecoveryFailed', 'RecoveryNotNeeded']);

/**
 * The operator's Events about this request, oldest first: the why of each step (the Event that
 * records a step is written a moment after the status, so they are read once it ended).
 */
async function recoveryEvents(ctx: CommandContext, name: string, requestId: string): Promise<string> {
  let mine: EventRecord[] = [];
  // The outcome's Event follows the status by a moment; wait for it a little, not for good.
  for (let attempt = 0; attempt < 10; attempt += 1) {
    const events = await ctx.api.eventsAbout(ctx.namespace, [{ kind: 'Connector', name }]).catch(() => []);
    mine = events.filter((e) => e.note.includes(`recovery ${requestId}`));
    if (mine.some((e) => OUTCOME_EVENTS.has(e.reason))) break;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  const notes = mine.map((e) => `${e.lastSeen}  ${e.reason}: ${untrustedText(e.note)}`);
  return notes.length > 0 ? notes.join('\n') : 'none recorded yet';
}

interface FollowOutcome {
  connector?: Connector;
  timedOut?: boolean;
}

/**
 * Follows the Connector until its recovery record of `requestId` ends (Completed or Failed) or is
 * replaced, through a watch from `fromVersion`; a watch the server ends is started again from the
 * last version seen (a Get first, so nothing between the two is missed).
 */
async function follow(
  ctx: CommandContext,
  name: string,
  fromVersion: string | undefined,
  deadline: number,
  onChange: (connector: Connector) => boolean,
): Promise<FollowOutcome> {
  let version = fromVersion;
  for (;;) {
    if (Date.now() >= deadline) return { timedOut: true };
    const outcome = await new Promise<FollowOutcome | undefined>((resolve) => {
      let stop: (() => void) | undefined;
      let settled = false;
      const finish = (value: FollowOutcome | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        stop?.();
        resolve(value);
      };
      const timer = setTimeout(() => finish({ timedOut: true }), Math.max(0, deadline - Date.now()));
      ctx.api
        .watchConnector(
          ctx.namespace,
          name,
          version,
          (connector) => {
            version = connector.metadata.resourceVersion ?? version;
            if (onChange(connector)) finish({ connector });
          },
          () => finish(undefined),
        )
        .then(
          (stopWatch) => {
            stop = stopWatch;
            if (settled) stopWatch();
          },
          () => finish(undefined),
        );
    });
    if (outcome) return outcome;
    // The watch ended (a server timeout, a dropped connection, an expired version): read, go on.
    const current = await readConnector(ctx, name);
    version = current.metadata.resourceVersion;
    if (onChange(current)) return { connector: current };
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/**
 * How often the request is judged and written before a Connector that keeps changing is left to a
 * person: the operator writes its status as the world moves (a crash-looping agent's restarts), and
 * each status write is a new resourceVersion the write's precondition no longer holds for.
 */
const JUDGE_AND_WRITE_TRIES = 3;

/**
 * Reads the Connector, judges it and writes, the write holding only while the Connector is as it was
 * read (its resourceVersion): when it changed meanwhile (409), it is read and judged again, up to
 * JUDGE_AND_WRITE_TRIES times.
 */
export async function judgeAndWrite<T>(steps: {
  read: () => Promise<Connector>;
  /** Throws when the Connector as read must not be written. */
  judge: (connector: Connector) => void;
  write: (connector: Connector) => Promise<T>;
  failed: (error: unknown) => Error;
  keptChanging: (tries: number) => Error;
}): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    const connector = await steps.read();
    steps.judge(connector);
    try {
      return await steps.write(connector);
    } catch (error) {
      if (httpStatusOf(error) !== 409) throw steps.failed(error);
      if (attempt >= JUDGE_AND_WRITE_TRIES) throw steps.keptChanging(attempt);
    }
  }
}

export async function recoverCommand(ctx: CommandContext): Promise<number> {
  const { io, options } = ctx;
  const name = options.name ?? '';
  const requestId = options.requestId ?? defaultRequestId(io.now());
  const judge = (connector: Connector) => {
    const refused = recoveryRefusal(connector, requestId, io.program);
    if (refused) throw refusal(`no recovery asked for ${ctx.namespace}/${name}: ${refused}`);
  };
  // The dry run's write holds on the Connector as read just as the real one does, so a status the
  // operator wrote meanwhile is read and judged again in both (a CI run caught the dry run without).
  const ask = (dryRun: boolean) =>
    judgeAndWrite({
      read: () => readConnector(ctx, name),
      judge,
      write: async (connector) => {
        const written = await ctx.api.setRecoveryRequest(
          ctx.namespace,
          name,
          requestId,
          connector.metadata.resourceVersion,
          dryRun,
        );
        return dryRun ? connector : written;
      },
      failed: (error) =>
        apiFailure(
          `set spec.recovery.requestId on Connector ${ctx.namespace}/${name}${dryRun ? ' (dry run)' : ''}`,
          error,
        ),
      keptChanging: (tries) =>
        refusal(
          `Connector ${ctx.namespace}/${name} changed while this ran, ${tries} times; run it again to judge it afresh`,
        ),
    });
  if (options.dryRun) return dryRun(ctx, await ask(true), requestId);
  const patched = await ask(false);
  const progress = options.output === 'table' ? io.stdout : io.stderr;
  const started = Date.now();
  progress.write(
    `Asked for guided recovery ${requestId} of Connector ${ctx.namespace}/${name} (spec.recovery.requestId).\n` +
      `Following it for up to ${humanDuration(options.timeoutMs)}; stopping this does not stop the recovery.\n`,
  );
  let lastStep: string | undefined;
  const onChange = (current: Connector): boolean => {
    const recovery = current.status?.recovery;
    if (recovery?.requestId !== requestId) {
      // Another record (an automatic recovery) or none yet: ours has not been taken up.
      return lastStep !== undefined;
    }
    if (recovery.step && recovery.step !== lastStep) {
      lastStep = recovery.step;
      const elapsed = humanDuration(Date.now() - started).padStart(6);
      progress.write(`  [+${elapsed}] ${stepNumber(recovery.step)}\n`);
    }
    return recovery.step === 'Completed' || recovery.step === 'Failed';
  };
  onChange(patched);
  const outcome = await follow(
    ctx,
    name,
    patched.metadata.resourceVersion,
    started + options.timeoutMs,
    onChange,
  );
  if (outcome.timedOut || !outcome.connector) {
    throw refusal(
      `recovery ${requestId} is still at step ${lastStep ?? 'not started'} after ${humanDuration(options.timeoutMs)}; it goes on without this command: ${io.program} status ${name} -n ${ctx.namespace}`,
    );
  }
  const recovery = outcome.connector.status?.recovery ?? {};
  if (recovery.requestId !== requestId) {
    throw refusal(
      `recovery ${requestId} was replaced by ${recovery.requestId ?? 'nothing'} before it ended (spec.recovery.requestId changed, or an automatic recovery took over)`,
    );
  }
  if (options.output === 'json' || options.output === 'yaml') {
    io.stdout.write(serialize(recovery, options.output));
  } else {
    const took = humanDuration(Date.now() - started);
    io.stdout.write(
      recovery.step === 'Completed'
        ? `Recovery ${requestId} completed in ${took}: the connector is ${recovery.evidence?.phaseAfter ?? 'back'}.\n`
        : recovery.outcome === 'NotNeeded'
          ? `Recovery ${requestId} NOT RUN after ${took}, as none was needed: ${recovery.reason ?? 'no reason recorded'}.\n`
          : `Recovery ${requestId} FAILED after ${took}: ${recovery.reason ?? 'no reason recorded'}.\n`,
    );
    io.stdout.write(`Evidence (status.recovery.evidence):\n${indent(evidenceText(recovery))}\n`);
    io.stdout.write(`Events:\n${indent(await recoveryEvents(ctx, name, requestId))}\n`);
  }
  return recovery.step === 'Completed' ? EXIT.ok : EXIT.no;
}
