// Invariants of the planner under any order of events (issue 8): fast-check generates long random
// sequences of events applied to a simulated world (test/helpers/connector-world.ts): pods appearing,
// vanishing and failing closed, claims replaced, control-plane states, time passing (tokens expire),
// spec.recovery.requestId and the policy changing, spec.paused toggled, operator passes that fail
// half way or die before writing the status. After every pass its actions are fed back into the
// world, and after every step each property checks what it promises. A counterexample is shrunk and
// printed with the steps that led to it; shrunk counterexamples become fixed examples at the end.
import { isDeepStrictEqual } from 'node:util';
import test from 'ava';
import fc from 'fast-check';
import { loadConnectorCrd } from '../../src/operator/api/crd.ts';
import type { ConnectorStatus, RecoveryStep } from '../../src/operator/api/types.ts';
import { enrollmentMintKey, secretHoldsLiveToken } from '../../src/operator/reconcile/enrollment.ts';
import type { Observed } from '../../src/operator/reconcile/observed.ts';
import { recoveryMintKey } from '../../src/operator/reconcile/recovery-requests.ts';
import {
  apply,
  describe,
  liveTokens,
  mintedKey,
  newWorld,
  observationJson,
  type Pass,
  REQUEST_IDS,
  type Step,
  WORLD_UID,
  type World,
  type WorldOptions,
} from '../helpers/connector-world.ts';
import {
  documentedEventReasons,
  documentedFailureClasses,
  documentedPhases,
  documentedReasons,
} from '../helpers/documented-reasons.ts';
import { connector, observed, record, tokenSecret } from '../helpers/observed-builder.ts';
import { type PlanView, planView } from '../helpers/plan-view.ts';

// ---- generating runs ----

const optionsArb: fc.Arbitrary<WorldOptions> = fc.record({
  storage: fc.constantFrom('claim', 'ephemeral', 'adopted'),
  tokenTTL: fc.constantFrom('5m', '30m', '4h'),
  policy: fc.constantFrom('Manual', 'Automatic'),
  validateRestart: fc.boolean(),
});

const MINUTE = 60_000;
const effectIndex = fc.nat({ max: 6 });
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 14, arbitrary: fc.constant({ kind: 'reconcile' as const }) },
  { weight: 2, arbitrary: effectIndex.map((at) => ({ kind: 'reconcileFails' as const, at })) },
  { weight: 2, arbitrary: effectIndex.map((at) => ({ kind: 'operatorRestart' as const, at })) },
  {
    weight: 3,
    arbitrary: fc
      .constantFrom(5_000, MINUTE, 6 * MINUTE, 31 * MINUTE, 4 * 60 * MINUTE + MINUTE)
      .map((ms) => ({ kind: 'advance' as const, ms })),
  },
  { weight: 8, arbitrary: fc.constant({ kind: 'controllers' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'controllers' as const, kubeletBehind: true }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'podDeleted' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'containerRestart' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'kubeletSync' as const }) },
  { weight: 5, arbitrary: fc.constant({ kind: 'heartbeat' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'cpMarksOffline' as const }) },
  { weight: 1, arbitrary: fc.boolean().map((healthy) => ({ kind: 'pathHealth' as const, healthy })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'claimReplaced' as const }) },
  { weight: 1, arbitrary: fc.boolean().map((reachable) => ({ kind: 'cpReachable' as const, reachable })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'adminRevokes' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'tokenSecretDeleted' as const }) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom<string | undefined>(...REQUEST_IDS, undefined)
      .map((id) => ({ kind: 'setRequestId' as const, id })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom('Manual' as const, 'Automatic' as const).map((policy) => ({
      kind: 'setPolicy' as const,
      policy,
    })),
  },
  { weight: 1, arbitrary: fc.boolean().map((paused) => ({ kind: 'setPaused' as const, paused })) },
  { weight: 1, arbitrary: fc.boolean().map((present) => ({ kind: 'foreignObject' as const, present })) },
  { weight: 1, arbitrary: fc.boolean().map((given) => ({ kind: 'consent' as const, given })) },
  { weight: 2, arbitrary: fc.boolean().map((held) => ({ kind: 'agentHeld' as const, held })) },
  {
    weight: 6,
    arbitrary: fc.integer({ min: 1, max: 8 }).map((rounds) => ({ kind: 'settle' as const, rounds })),
  },
);

const MAX_STEPS = 70;
// size 'max': lengths spread up to MAX_STEPS (the default size keeps arrays to about ten).
const stepsArb = fc.array(stepArb, { minLength: 1, maxLength: MAX_STEPS, size: 'max' });
const NUM_RUNS = 200;

// ---- running a sequence and checking after every step ----

/** What one property remembers across the steps of one run. */
interface Track {
  /** Request ids whose recovery was recorded as Requested, and how often. */
  requested: Map<string, number>;
  /** Request ids whose recovery was recorded as ended (Completed or Failed). */
  ended: Set<string>;
  /** Request ids recorded as Failed, with how often their token had paired by then. */
  failed: Map<string, number>;
}

interface Context {
  world: World;
  pass: Pass | undefined;
  track: Track;
}

/** Returns what is wrong, if anything. */
type Check = (ctx: Context) => string | undefined;

const TERMINAL: readonly (RecoveryStep | undefined)[] = ['Completed', 'Failed'];
const underway = (status: ConnectorStatus | undefined) =>
  status?.recovery?.step !== undefined && !TERMINAL.includes(status.recovery.step);

const showStep = (step: Step) => {
  const { kind, ...rest } = step;
  const args = Object.entries(rest).map(([k, v]) => `${k}=${String(v)}`);
  return args.length > 0 ? `${kind}(${args.join(', ')})` : kind;
};

function showPass(pass: Pass): string {
  const p = pass.plan;
  const actions = [
    ...p.controlPlane.map((a) => (a.kind === 'mintToken' ? `mint ${a.idempotencyKey}` : a.kind)),
    ...(p.deleteTokenSecret ? ['deleteTokenSecret'] : []),
    ...(p.statefulSet ? [`sts replicas=${p.statefulSet.spec?.replicas}`] : []),
    ...(p.scaleAdopted ? [`scale ${p.scaleAdopted.replicas}`] : []),
  ];
  const recovery = p.status.recovery;
  return `planned [${actions.join(', ')}] phase=${p.status.phase}${recovery ? ` recovery=${recovery.requestId}/${recovery.step}` : ''} -> ${pass.outcome}${pass.error ? ` (${pass.error.code})` : ''}, applied [${pass.applied.join(', ')}]`;
}

function run(options: WorldOptions, steps: Step[], checks: Check[], extra: { twins?: boolean } = {}): void {
  const world = newWorld(options);
  const track: Track = { requested: new Map(), ended: new Set(), failed: new Map() };
  const trace: string[] = [];
  let index = 0;
  const checkNow = (pass: Pass | undefined) => {
    if (pass) trace.push(`     ${showPass(pass)}`);
    for (const check of checks) {
      const problem = check({ world, pass, track });
      if (problem) {
        throw new Error(
          `${problem}\n  options: ${JSON.stringify(options)}\n  world: ${describe(world)}\n  steps (the last one failed):\n    ${trace.join('\n    ')}`,
        );
      }
    }
  };
  for (const step of steps) {
    trace.push(`${index++}: ${showStep(step)}`);
    // Each pass is checked right after it (a settle makes several); the world once the step is done.
    apply(world, step, { ...extra, afterPass: checkNow });
    checkNow(undefined);
  }
}

function property(checks: Check[], extra: { twins?: boolean } = {}) {
  return fc.property(optionsArb, stepsArb, (options, steps) => run(options, steps, checks, extra));
}

// ---- the properties ----

const mintsOf = (p: PlanView) => p.controlPlane.filter((a) => a.kind === 'mintToken');

/**
 * At most one live token per connector; no mint after retirement outside a recovery. Seen failing
 * with enrollment.ts minting past a live token, and minting for a retired offline connector.
 */
const oneLiveToken: Check = ({ world, pass }) => {
  if (liveTokens(world) > 1) return `${liveTokens(world)} live tokens in the control plane`;
  if (!pass) return undefined;
  const mints = mintsOf(pass.plan);
  if (mints.length > 1) return `one pass planned ${mints.length} mints`;
  const mint = mints[0];
  if (!mint) return undefined;
  const { observed } = pass;
  const record = observed.controlPlane.reachable ? observed.controlPlane.record : undefined;
  const held = observed.tokenSecret;
  if (secretHoldsLiveToken(held, record, pass.now) && held?.mintKey !== mint.idempotencyKey)
    return `minted ${mint.idempotencyKey} while the Secret holds the live token ${held?.mintKey}`;
  // A retried mint (same key) answers the live token; a new key would replace a token still live.
  // A key minted before (an older one, asked again for a token whose Secret went) makes no token:
  // the control plane answers it with its live token or refuses it as consumed.
  const live = pass.truth.liveTokenKey;
  const askedBefore = world.ledger.minted.some(
    (m) => m.key === mint.idempotencyKey && m.at < pass.now.getTime(),
  );
  if (live !== undefined && live !== mint.idempotencyKey && !askedBefore)
    return `minted ${mint.idempotencyKey} while the token ${live} is live in the control plane`;
  const retired = record?.bootstrapRetired === true || pass.previous.enrollment?.retired === true;
  if (retired) {
    const recovery = pass.plan.status.recovery;
    if (!underway(pass.plan.status) || mint.idempotencyKey !== recoveryMintKey(recovery?.requestId ?? ''))
      return `minted ${mint.idempotencyKey} for a retired connector outside a recovery (recovery ${recovery?.requestId}/${recovery?.step})`;
  }
  return undefined;
};

/**
 * One request id mints at most one token and pairs at most once, and never runs again once ended.
 * Seen failing with a recovery mint key that changes per pass, and newRequest ignoring the last id.
 */
const oneRequestOneToken: Check = ({ world, pass, track }) => {
  const written = pass?.written;
  const recovery = written?.recovery;
  if (pass && written && recovery?.requestId) {
    const id = recovery.requestId;
    const before = pass.previous.recovery;
    if (track.ended.has(id) && !TERMINAL.includes(recovery.step))
      return `request ${id} ended before, and runs again (step ${recovery.step})`;
    const newlyRequested =
      recovery.step === 'Requested' && !(before?.requestId === id && before.step === 'Requested');
    if (newlyRequested) track.requested.set(id, (track.requested.get(id) ?? 0) + 1);
    if ((track.requested.get(id) ?? 0) > 1) return `request ${id} was requested twice`;
    if (TERMINAL.includes(recovery.step)) track.ended.add(id);
    if (recovery.outcome === 'Failed' && !track.failed.has(id)) {
      const key = recoveryMintKey(id);
      track.failed.set(id, world.ledger.pairings.filter((p) => p.key === key).length);
    }
  }
  // An attempt recorded Failed leaves no token behind to pair with later, outside any attempt.
  for (const [id, pairedBefore] of track.failed) {
    const key = recoveryMintKey(id);
    const paired = world.ledger.pairings.filter((p) => p.key === key).length;
    if (paired > pairedBefore) return `request ${id} ended Failed, and its token ${key} paired afterwards`;
  }
  const requests = new Set([
    ...world.ledger.minted.flatMap((m) => (m.forRecovery ? [m.forRecovery] : [])),
    ...world.ledger.pairings.flatMap((p) => (p.cpRecovery ? [p.cpRecovery] : [])),
    ...world.ledger.minted.flatMap((m) => (m.key.startsWith('recovery-') ? [m.key.slice(9)] : [])),
  ]);
  for (const id of requests) {
    const key = recoveryMintKey(id);
    const tokens = world.ledger.minted.filter((m) => m.forRecovery === id || m.key === key);
    if (tokens.length > 1)
      return `request ${id} minted ${tokens.length} tokens (${tokens.map((m) => m.key)})`;
    const pairings = world.ledger.pairings.filter((p) => p.cpRecovery === id || p.key === key);
    if (pairings.length > 1) return `request ${id} paired ${pairings.length} times`;
  }
  return undefined;
};

const ACTION_EVENTS = new Set([
  'TokenMinted',
  'TokenSecretRestored',
  'TokenConsumed',
  'BootstrapRetired',
  'TokenSecretDeleted',
  'RecoveryRequested',
  'RecoveryStep',
  'RecoverySucceeded',
  'RecoveryFailed',
  'StorageExpansionRequested',
]);

/** Words in which a condition or next step says the operator acts next (not that it waits). */
const PROMISES = [/a fresh (one|token) is minted/, /starts automatically \(once for this incident\)/];

/**
 * Paused (or blocked: a foreign object, a workload without consent): no action at all, nothing
 * counted, and nothing in the status that says an action comes next. Seen failing with plan.ts
 * ignoring spec.paused, planEnrollment counting while paused, and Enrolled saying "a fresh one is
 * minted" of an expired token while paused.
 */
const nothingWhilePaused: Check = ({ pass }) => {
  if (!pass) return undefined;
  const { observed, plan: p, previous } = pass;
  const spec = observed.spec.ok ? observed.spec.value : undefined;
  const blocked =
    (observed.foreign?.length ?? 0) > 0 ||
    (spec?.workloadRef !== undefined && observed.workload?.consented !== true);
  if (!spec?.paused && !blocked) return undefined;
  const why = spec?.paused ? 'paused' : 'blocked';
  const actions = [
    ...p.controlPlane.map((a) => a.kind),
    ...(p.deleteTokenSecret ? ['deleteTokenSecret'] : []),
    ...(p.configMap ? ['configMap'] : []),
    ...(p.statefulSet ? ['statefulSet'] : []),
    ...(p.scaleAdopted ? ['scaleAdopted'] : []),
    ...(p.expandClaim ? ['expandClaim'] : []),
  ];
  if (actions.length > 0) return `${why}, yet planned ${actions.join(', ')}`;
  if (pass.applied.length > 0) return `${why}, yet applied ${pass.applied.join(', ')}`;
  const announced = p.events.filter((e) => ACTION_EVENTS.has(e.reason)).map((e) => e.reason);
  if (announced.length > 0) return `${why}, yet an Event announces ${announced.join(', ')}`;
  const was = previous.enrollment ?? {};
  const now = p.status.enrollment ?? {};
  if ((now.mintCount ?? 0) !== (was.mintCount ?? 0) || now.lastMintKey !== was.lastMintKey)
    return `${why}, yet the mint counter moved from ${was.mintCount}/${was.lastMintKey} to ${now.mintCount}/${now.lastMintKey}`;
  if (!isDeepStrictEqual(p.status.recovery, previous.recovery))
    return `${why}, yet the recovery record moved from ${previous.recovery?.step} to ${p.status.recovery?.step}`;
  const said = [...(p.status.conditions ?? []).map((c) => c.message), p.status.diagnosis?.nextStep ?? ''];
  const promise = said.find((m) => PROMISES.some((words) => words.test(m)));
  if (promise) return `${why}, yet the status says the operator is about to act: ${promise}`;
  return undefined;
};

const AFTER_MINT: readonly (RecoveryStep | undefined)[] = [
  'ScalingUp',
  'AwaitingOnline',
  'ValidatingRestart',
];
const AFTER_BEGIN: readonly (RecoveryStep | undefined)[] = ['TokenMinted', ...AFTER_MINT];

/**
 * The status never claims an action that did not run. Seen failing with TokenMinted advancing to
 * ScalingUp without the token's Secret, and the re-mint backoff counting a mint it does not make.
 */
const claimsOnlyWhatRan: Check = ({ world, pass }) => {
  if (!pass) return undefined;
  const p = pass.plan;
  const mints = mintsOf(p);
  const reasons = new Set(p.events.map((e) => e.reason));
  for (const reason of ['TokenMinted', 'TokenSecretRestored'])
    if (reasons.has(reason) && mints.length === 0) return `a ${reason} Event without a mint`;
  for (const reason of ['TokenConsumed', 'BootstrapRetired', 'TokenSecretDeleted'])
    if (reasons.has(reason) && !p.deleteTokenSecret) return `a ${reason} Event without deleting the Secret`;
  const written = pass.written;
  if (!written) return undefined;
  const enrollment = written.enrollment ?? {};
  const was = pass.previous.enrollment ?? {};
  const count = enrollment.mintCount ?? 0;
  for (let n = 1; n <= count; n++) {
    const key = enrollmentMintKey(WORLD_UID, n);
    if (!mintedKey(world, key)) return `status counts ${count} mints, but ${key} was never minted`;
  }
  if (enrollment.lastMintKey && !mintedKey(world, enrollment.lastMintKey))
    return `status names the last mint ${enrollment.lastMintKey}, which was never minted`;
  const mintApplied = pass.applied.some((a) => a.startsWith('mint '));
  // A mint an earlier pass made and stored, but never counted (it failed, or the operator died,
  // before writing the status), is counted once its Secret shows it: the Secret proves it ran.
  const provenBySecret = pass.observed.tokenSecret?.mintKey === enrollmentMintKey(WORLD_UID, count);
  if (count > (was.mintCount ?? 0) && !mintApplied && !provenBySecret)
    return `mintCount went to ${count} without a mint applied or a Secret that shows it`;
  // That mint's time is its Secret's creation (or none known), never the time of an older mint.
  const countedFromSecret = count > (was.mintCount ?? 0) && provenBySecret;
  if (
    enrollment.tokenMintedAt !== was.tokenMintedAt &&
    !mintApplied &&
    !(countedFromSecret && enrollment.tokenMintedAt === pass.observed.tokenSecret?.createdAt)
  )
    return `tokenMintedAt changed to ${enrollment.tokenMintedAt} without a mint applied or a Secret that shows it`;
  if (
    countedFromSecret &&
    !mintApplied &&
    enrollment.tokenMintedAt !== undefined &&
    enrollment.tokenMintedAt !== pass.observed.tokenSecret?.createdAt
  )
    return `mint ${count} counted from its Secret kept the mint time ${enrollment.tokenMintedAt} of another mint`;
  if (enrollment.tokenSecretName && !world.secret)
    return `status names the token Secret ${enrollment.tokenSecretName}, which does not exist`;
  if (enrollment.retired && !world.cp.record?.bootstrapRetired)
    return 'status says retired, the control plane does not';
  const recovery = written.recovery;
  if (recovery?.requestId) {
    const id = recovery.requestId;
    const succeeded = recovery.outcome === 'Succeeded';
    if ((AFTER_MINT.includes(recovery.step) || succeeded) && !mintedKey(world, recoveryMintKey(id)))
      return `recovery ${id} is at ${recovery.step}, but its token was never minted`;
    const refusedIdentity = recovery.evidence?.controlPlaneStateBefore === 'pending';
    if ((AFTER_BEGIN.includes(recovery.step) || succeeded) && !world.ledger.begun.has(id) && !refusedIdentity)
      return `recovery ${id} is at ${recovery.step}, but the control plane never began it`;
    if (succeeded && !world.ledger.pairings.some((x) => x.key === recoveryMintKey(id)))
      return `recovery ${id} Succeeded without a pairing with its token`;
  }
  return undefined;
};

/** Fields of the stored status the planner must not read: scrambled, they change nothing it decides. */
function scrambled(status: ConnectorStatus | undefined): ConnectorStatus | undefined {
  if (!status) return status;
  const s: ConnectorStatus = structuredClone(status);
  s.observedGeneration = 9_999;
  s.connectorId = 'elsewhere.other';
  s.controlPlaneState = 'recovering';
  s.identity = { certificateSerial: 'bogus', notAfter: '2000-01-01T00:00:00Z', fingerprintSHA256: 'bogus' };
  s.mode = status.mode === 'Autonomous' ? 'GuidedRecovery' : 'Autonomous';
  s.storage = {
    source: 'HostPath',
    volumeName: 'bogus',
    claimName: 'bogus',
    claimPhase: 'Lost',
    podName: 'bogus-0',
    ...(status.storage?.claimUID ? { claimUID: status.storage.claimUID } : {}),
  };
  if (s.enrollment) {
    if (s.enrollment.tokenSecretName) delete s.enrollment.tokenSecretName;
    else s.enrollment.tokenSecretName = 'bogus-token';
  }
  if (s.diagnosis) s.diagnosis = { ...s.diagnosis, reason: 'bogus', evidence: ['bogus'], nextStep: 'bogus' };
  return s;
}

const withoutTransitions = (p: PlanView) => ({ ...p, transitions: undefined });
const json = observationJson;

/**
 * The status is a function of the world and the carried-over records: planning equal inputs gives
 * equal outputs, the input is not changed, and what the stored status says beyond the carried-over
 * records (recovery, enrollment counters, claim UID, heartbeat time, phase, diagnosis class and
 * since, conditions) changes nothing in the plan but the transition Events that compare with it.
 * Seen failing with a counter kept between calls of plan(), plan() writing to a pod it was given,
 * and status.mode taken from the stored status.
 */
const functionOfWorld: Check = ({ pass }) => {
  if (!pass?.twins || !pass.observedJson) return undefined;
  const [twin, other] = pass.twins;
  if (json(pass.observed) !== pass.observedJson) return 'plan() changed its input';
  const again = planView(twin, pass.now);
  if (!isDeepStrictEqual(again, pass.plan)) return 'planning equal inputs twice gave different plans';
  const variant: Observed = {
    ...other,
    connector: { ...other.connector, status: scrambled(other.connector.status) },
    configMap: undefined,
  };
  const different = planView(variant, pass.now);
  if (!isDeepStrictEqual(withoutTransitions(different), withoutTransitions(pass.plan))) {
    const fields = Object.keys(withoutTransitions(pass.plan)).filter(
      (k) =>
        !isDeepStrictEqual(
          (pass.plan as unknown as Record<string, unknown>)[k],
          (different as unknown as Record<string, unknown>)[k],
        ),
    );
    return `fields of the stored status that are not carried over changed the plan: ${fields.join(', ')}\n  planned: ${json(pass.plan.status)}\n  with scrambled status: ${json(different.status)}`;
  }
  return undefined;
};

/**
 * The status tells the truth about the identity: IdentityLoss is never diagnosed, nor NeedsRecovery
 * shown, while the agent runs with the very certificate the control plane holds. Seen failing with
 * plan.ts showing NeedsRecovery for an offline connector.
 */
const identityLossOnlyWhenLost: Check = ({ pass }) => {
  if (!pass) return undefined;
  const { agentSerial, recordSerial } = pass.truth;
  if (agentSerial === undefined || agentSerial !== recordSerial) return undefined;
  const status = pass.plan.status;
  if (status.diagnosis?.failureClass === 'IdentityLoss')
    return `IdentityLoss diagnosed (${status.diagnosis.reason}) while the agent runs with the identity ${agentSerial} the control plane holds`;
  if (status.phase === 'NeedsRecovery')
    return `NeedsRecovery shown while the agent runs with the identity ${agentSerial} the control plane holds`;
  return undefined;
};

const isTrue = (status: ConnectorStatus | undefined, type: string) =>
  status?.conditions?.some((c) => c.type === type && c.status === 'True') === true;

/**
 * Stalled and Reconciling are never True together, in what a pass plans or writes
 * (docs/connector-resource.md, "Conditions"): kstatus reads Reconciling before Stalled, so Flux
 * would show InProgress, and wait out its timeout, for a Connector that waits for a person. Seen
 * failing with a temporary error of a stalled pass (the control plane unreachable while a blocker
 * or a failed or required recovery held, a step after the report failing) adding Reconciling
 * RetryingAfterError next to the stall.
 */
const neverStalledAndReconciling: Check = ({ pass }) => {
  if (!pass) return undefined;
  for (const [where, status] of [
    ['planned', pass.plan.status],
    ['written', pass.written],
  ] as const) {
    if (isTrue(status, 'Stalled') && isTrue(status, 'Reconciling')) {
      const reason = (type: string) => status?.conditions?.find((c) => c.type === type)?.reason;
      return `${where} status: Stalled (${reason('Stalled')}) and Reconciling (${reason('Reconciling')}) both True`;
    }
  }
  return undefined;
};

const DOCUMENTED = {
  phases: documentedPhases(),
  reasons: documentedReasons(),
  classes: documentedFailureClasses(),
  events: documentedEventReasons(),
};
const ANY_CONDITION_REASON = new Set([...DOCUMENTED.reasons.values()].flatMap((set) => [...set]));

function undocumented(status: ConnectorStatus | undefined, where: string): string | undefined {
  if (!status) return undefined;
  if (status.phase && !DOCUMENTED.phases.has(status.phase))
    return `${where}: phase ${status.phase} is not documented`;
  const failureClass = status.diagnosis?.failureClass;
  if (failureClass && !DOCUMENTED.classes.has(failureClass))
    return `${where}: failure class ${failureClass} is not documented`;
  for (const condition of status.conditions ?? []) {
    // Ready carries the reason of the condition that blocks it.
    const allowed =
      condition.type === 'Ready'
        ? new Set([...(DOCUMENTED.reasons.get('Ready') ?? []), ...ANY_CONDITION_REASON])
        : DOCUMENTED.reasons.get(condition.type);
    if (!allowed?.has(condition.reason))
      return `${where}: condition ${condition.type} reason ${condition.reason} is not documented`;
  }
  return undefined;
}

/**
 * Every phase, condition reason, failure class and Event reason the planner produces is documented.
 * Seen failing with an Event reason and a Healthy reason renamed in plan.ts.
 */
const onlyDocumentedWords: Check = ({ pass }) => {
  if (!pass) return undefined;
  for (const event of [...pass.plan.events, ...(pass.plan.transitions ?? [])])
    if (!DOCUMENTED.events.has(event.reason)) return `Event reason ${event.reason} is not documented`;
  return undocumented(pass.plan.status, 'planned status') ?? undocumented(pass.written, 'written status');
};

/**
 * The token the status counts, live and unused, is never said to have expired, and a pass that
 * finds its Secret gone (deleted by hand) stores that same token in it again: no new token, the
 * counters as they were. Seen failing with the Secret deleted before the agent paired: Enrolled
 * said TokenExpired "... a fresh one is minted", nothing was minted, and the next look was at the
 * live token's expiry, the agent exiting ENROLLMENT_TOKEN_MISSING meanwhile.
 */
const liveTokenKeptInItsSecret: Check = ({ world, pass }) => {
  const written = pass?.written;
  if (!pass || !written) return undefined;
  const counted = pass.previous.enrollment?.lastMintKey;
  const live = pass.truth.liveTokenKey;
  const enrolled = written.conditions?.find((c) => c.type === 'Enrolled');
  if (enrolled?.reason === 'TokenExpired' && live !== undefined && live === counted)
    return `Enrolled TokenExpired (${enrolled.message}) while the counted token ${live} is live`;
  const spec = pass.observed.spec.ok ? pass.observed.spec.value : undefined;
  const record = pass.observed.controlPlane.reachable ? pass.observed.controlPlane.record : undefined;
  const free =
    pass.outcome === 'ok' &&
    spec !== undefined &&
    !spec.paused &&
    !pass.observed.foreign?.length &&
    (spec.workloadRef === undefined || pass.observed.workload?.consented === true);
  const restorable =
    free &&
    counted !== undefined &&
    counted === live &&
    counted.startsWith('enroll-') &&
    pass.observed.tokenSecret === undefined &&
    record?.state === 'pending' &&
    !underway(pass.previous) &&
    !underway(written) &&
    !pass.applied.includes('revokeTokens');
  if (!restorable) return undefined;
  if (world.secret?.key !== counted)
    return `the Secret of the live token ${counted} went, and the pass left ${world.secret ? `a Secret of ${world.secret.key}` : 'no Secret'}`;
  const newTokens = world.ledger.minted.filter((m) => m.at === pass.now.getTime());
  if (newTokens.length > 0) return `restoring the Secret of ${counted} minted ${newTokens.map((m) => m.key)}`;
  if (written.enrollment?.mintCount !== pass.previous.enrollment?.mintCount)
    return `restoring the Secret of ${counted} moved mintCount to ${written.enrollment?.mintCount}`;
  return undefined;
};

/**
 * The phase, the conditions and the transition Events speak of a recovery only when the status they
 * are written with records it under way: phase Recovering, Healthy or Reconciling Recovering, the
 * Event PhaseRecovering. (Phase Recovering and Healthy Recovering also follow a control plane that
 * reports the record recovering, whatever this Connector recorded.) Seen failing with a pass that
 * opened a request and failed before its record step: Recovering, "guided recovery r1 is in
 * progress", no status.recovery, as long as the error lasted.
 */
const recoveryTalkHasRecord: Check = ({ pass }) => {
  const written = pass?.written;
  if (!pass || !written || underway(written)) return undefined;
  const record = pass.observed.controlPlane.reachable ? pass.observed.controlPlane.record : undefined;
  const cpRecovering = record?.state === 'recovering';
  const recorded = `status.recovery ${written.recovery?.requestId}/${written.recovery?.step}`;
  if (written.phase === 'Recovering' && !cpRecovering && pass.observed.controlPlane.reachable)
    return `phase Recovering written with ${recorded}`;
  const healthy = written.conditions?.find((c) => c.type === 'Healthy');
  if (healthy?.reason === 'Recovering' && !cpRecovering)
    return `Healthy Recovering (${healthy.message}) written with ${recorded}`;
  const reconciling = written.conditions?.find((c) => c.type === 'Reconciling');
  if (reconciling?.reason === 'Recovering')
    return `Reconciling Recovering (${reconciling.message}) written with ${recorded}`;
  if ((pass.plan.transitions ?? []).some((e) => e.reason === 'PhaseRecovering') && !cpRecovering)
    return `a PhaseRecovering Event with ${recorded}`;
  return undefined;
};

/** The Connector CRD's printer columns: what `kubectl get connectors` shows of a status. */
const PRINTER_COLUMNS = (await loadConnectorCrd()).spec.versions[0]?.additionalPrinterColumns ?? [];

/**
 * A printer column's value for a status, as the API server's JSONPath reads the paths the CRD uses:
 * `.status.a.b`, and `.status.conditions[?(@.type=="X")].field`.
 */
function printerColumn(status: ConnectorStatus | undefined, name: string): string | undefined {
  const path = PRINTER_COLUMNS.find((c) => c.name === name)?.jsonPath;
  if (!path?.startsWith('.status.')) return undefined;
  let value: unknown = status;
  for (const part of path.slice('.status.'.length).split(/\.(?![^[]*\])/)) {
    const filter = /^(\w+)\[\?\(@\.(\w+)=="([^"]*)"\)\]$/.exec(part);
    if (filter) {
      const [, list = '', key = '', wanted] = filter;
      const items = (value as Record<string, unknown> | undefined)?.[list];
      value = Array.isArray(items)
        ? items.find((i) => (i as Record<string, unknown>)[key] === wanted)
        : undefined;
    } else value = (value as Record<string, unknown> | undefined)?.[part];
  }
  return value === undefined ? undefined : String(value);
}

/**
 * `kubectl get connectors` never shows a phase the operator could not check as if it held: while
 * the control plane cannot be asked, the phase and Last Heartbeat are the last ones seen, and the
 * READY column says Unknown (or False), with the reason in -o wide. Seen failing with the control
 * plane unreachable for hours and the agent gone: PHASE Online, LAST HEARTBEAT empty (documented as
 * "heartbeats arrive"), and no column that said otherwise.
 */
const printedStatusTruthful: Check = ({ pass }) => {
  const written = pass?.written;
  if (!pass || !written) return undefined;
  const ready = written.conditions?.find((c) => c.type === 'Ready');
  const shown = { ready: printerColumn(written, 'Ready'), reason: printerColumn(written, 'Reason') };
  if (shown.ready !== ready?.status || shown.reason !== ready?.reason)
    return `kubectl get shows READY ${shown.ready} (${shown.reason}) for Ready ${ready?.status} (${ready?.reason})`;
  if (!pass.observed.controlPlane.reachable && shown.ready === 'True')
    return `the control plane could not be asked, and kubectl get shows PHASE ${printerColumn(written, 'Phase')} READY True`;
  return undefined;
};

/**
 * Progress (beyond the issue's list): after any prefix, once nothing goes wrong any more (the
 * control plane reachable, not paused or blocked, the agent free to start, its paths healthy), the
 * connector ends Online with its agent running, given at most three new recovery request ids from a
 * person who answers NeedsRecovery or a failed recovery. A wedge (a pass that fails the same way
 * forever) fails it. Seen failing with a recovery that never leaves ScalingUp.
 */
const HEALING_ROUNDS = 60;
function endsOnline(options: WorldOptions, steps: Step[]): void {
  const world = newWorld(options);
  const trace: string[] = [];
  for (const [i, step] of steps.entries()) {
    trace.push(`${i}: ${showStep(step)}`);
    apply(world, step);
  }
  const heal: Step[] = [
    { kind: 'cpReachable', reachable: true },
    { kind: 'setPaused', paused: false },
    { kind: 'foreignObject', present: false },
    { kind: 'consent', given: true },
    { kind: 'agentHeld', held: false },
    { kind: 'pathHealth', healthy: true },
  ];
  for (const step of heal) apply(world, step);
  let asked = 0;
  for (let round = 0; round < HEALING_ROUNDS; round++) {
    const passes = apply(world, { kind: 'settle', rounds: 1 });
    trace.push(`heal ${round}: ${passes.map(showPass).join('; ')}`);
    apply(world, { kind: 'advance', ms: 10_000 });
    const status = world.status;
    if (status?.phase === 'Online' && world.pod?.agent.running) return;
    const waiting =
      !underway(status) && (status?.phase === 'NeedsRecovery' || status?.recovery?.outcome === 'Failed');
    if (waiting && asked < 3) apply(world, { kind: 'setRequestId', id: `heal-${++asked}` });
  }
  throw new Error(
    `not Online ${HEALING_ROUNDS} rounds after healing\n  options: ${JSON.stringify(options)}\n  world: ${describe(world)}\n  steps:\n    ${trace.slice(-40).join('\n    ')}`,
  );
}

// ---- the tests ----

// PROPERTY_RUNS=5000 soaks; PROPERTY_SEED (with the seed fast-check printed) replays a failure.
const params = {
  numRuns: Number(process.env.PROPERTY_RUNS ?? NUM_RUNS),
  includeErrorInReport: true,
  ...(process.env.PROPERTY_SEED ? { seed: Number(process.env.PROPERTY_SEED) } : {}),
};

test('property: at most one live token per connector, and no mint after retirement outside a recovery', (t) => {
  fc.assert(property([oneLiveToken]), params);
  t.pass();
});

test('property: one request id mints at most one token, pairs at most once, never runs again, and its token pairs nobody once it failed', (t) => {
  fc.assert(property([oneRequestOneToken]), params);
  t.pass();
});

test('property: no action at all while paused or blocked, nothing counted, and nothing promised', (t) => {
  fc.assert(property([nothingWhilePaused]), params);
  t.pass();
});

test('property: the status never claims an action that did not run', (t) => {
  fc.assert(property([claimsOnlyWhatRan]), params);
  t.pass();
});

test('property: the status is a function of the world and the carried-over records', (t) => {
  fc.assert(property([functionOfWorld], { twins: true }), params);
  t.pass();
});

test('property: IdentityLoss and NeedsRecovery only when the agent does not run with its identity', (t) => {
  fc.assert(property([identityLossOnlyWhenLost]), params);
  t.pass();
});

test('property: the live token is kept in its Secret and never said to have expired', (t) => {
  fc.assert(property([liveTokenKeptInItsSecret]), params);
  t.pass();
});

test('property: the phase, conditions and transition Events speak of a recovery only with its record', (t) => {
  fc.assert(property([recoveryTalkHasRecord]), params);
  t.pass();
});

test('property: kubectl get shows Ready beside the phase, never True for a phase the operator could not check', (t) => {
  fc.assert(property([printedStatusTruthful]), params);
  t.pass();
});

test('property: once nothing goes wrong any more, the connector ends Online', (t) => {
  fc.assert(
    fc.property(optionsArb, stepsArb, (options, steps) => endsOnline(options, steps)),
    params,
  );
  t.pass();
});

test('property: Stalled and Reconciling are never both True after a pass', (t) => {
  fc.assert(property([neverStalledAndReconciling]), params);
  t.pass();
});

test('property: every phase, condition reason, failure class and Event reason is one the docs list', (t) => {
  fc.assert(property([onlyDocumentedWords]), params);
  t.pass();
});

// ---- shrunk counterexamples, kept as fixed examples ----

/** Runs one fixed sequence with the given checks; a problem fails the test with the trace. */
function example(options: Partial<WorldOptions>, steps: Step[], checks: Check[]): void {
  run(
    { storage: 'claim', tokenTTL: '5m', policy: 'Manual', validateRestart: false, ...options },
    steps,
    checks,
  );
}

test('found, fixed: a recovery asked of a never-paired connector counted an enrollment mint it never made', (t) => {
  // The planner decided an enrollment mint (mintCount 1, lastMintKey, tokenMintedAt) while the
  // recovery in progress kept it from being planned: the status claimed a mint that never ran, one
  // more on every pass of the recovery (plan.ts now keeps the counters when a recovery preempts it).
  t.notThrows(() =>
    example(
      {},
      [
        { kind: 'setRequestId', id: 'r1' },
        { kind: 'reconcile' },
        { kind: 'reconcile' },
        { kind: 'reconcile' },
      ],
      [claimsOnlyWhatRan],
    ),
  );
});

test('found, fixed: a pass that deletes the token Secret does not name it in the status', (t) => {
  // Found as: a recovery at TokensRevoked deletes the Secret of an earlier recovery's live token,
  // while the status, built from the live token, named that Secret as holding it.
  const expiresAt = '2026-01-01T04:00:00.000Z';
  const result = planView(
    observed({
      connector: connector({
        spec: { recovery: { requestId: 'r2' } },
        status: {
          enrollment: { mintCount: 1, retired: true },
          recovery: {
            requestId: 'r2',
            step: 'TokensRevoked',
            attempts: 1,
            startedAt: '2026-01-01T00:00:00Z',
          },
        },
      }),
      record: record({
        state: 'recovering',
        certificate: null,
        recovery: { requestId: 'r1', startedAt: '2025-12-31T23:50:00Z', completedAt: null },
        liveToken: { tokenId: 't1', expiresAt },
      }),
      tokenSecret: tokenSecret({ mintKey: recoveryMintKey('r1'), expiresAt }),
      pods: [],
      workloadReplicas: 0,
    }),
    new Date('2026-01-01T00:00:10Z'),
  );
  t.is(result.deleteTokenSecret, 'edge-enrollment-token');
  t.is(result.status.enrollment?.tokenSecretName, undefined);
});

test('found: a failed pass keeps the lastMintKey and tokenMintedAt of the mint it did not make', (t) => {
  // The status after the failure (then statusAfterError, reconciler.ts) restored mintCount, and
  // lastMintKey only when the previous status had one; tokenMintedAt never. Here the mint failed
  // before it was made; the mint's status change is now written only once the mint ran.
  t.notThrows(() =>
    example({}, [{ kind: 'reconcile' }, { kind: 'reconcileFails', at: 0 }], [claimsOnlyWhatRan]),
  );
});

test('found: a failed first pass (no stored status yet) counts the mint it did not make', (t) => {
  // The operator died after creating the record and before writing any status; the next pass's
  // mint failed: statusAfterError (since replaced by pass-status.ts) kept the whole planned
  // enrollment when the stored status had none.
  t.notThrows(() =>
    example(
      {},
      [
        { kind: 'operatorRestart', at: 1 },
        { kind: 'reconcileFails', at: 0 },
      ],
      [claimsOnlyWhatRan],
    ),
  );
});

test('found, fixed: a request id handled before runs again when the spec returns to it', (t) => {
  // docs: "a handled value never runs twice". Only the last request was remembered (status.recovery),
  // so r3, abandoned when r1 replaced it, was a new request again once the spec said r3 (the first
  // pass abandons r1, the second requested r3 again). The rule now: a request id runs once per
  // Connector; the recovery record remembers the ids handled before it (handledRequestIds, the
  // newest 16), and a spec set back to one of them gets a Failed record that says so, run nowhere.
  const steps: Step[] = [
    { kind: 'setRequestId', id: 'r3' },
    { kind: 'reconcile' },
    { kind: 'setRequestId', id: 'r1' },
    { kind: 'settle', rounds: 2 },
    { kind: 'setRequestId', id: 'r3' },
    { kind: 'reconcile' },
    { kind: 'reconcile' },
  ];
  t.notThrows(() => example({}, steps, [oneRequestOneToken]));
  const world = newWorld(exampleOptions({}));
  const requested: string[] = [];
  for (const step of steps) {
    for (const pass of apply(world, step)) {
      const recovery = pass.written?.recovery;
      if (recovery?.step === 'Requested' && pass.previous.recovery?.step !== 'Requested')
        requested.push(recovery.requestId ?? '');
    }
  }
  t.deepEqual(requested, ['r3', 'r1'], 'each request id is requested once');
  const recovery = world.status?.recovery;
  t.is(recovery?.requestId, 'r3', describe(world));
  t.is(recovery?.step, 'Failed');
  t.is(recovery?.attempts, 0);
  t.regex(recovery?.reason ?? '', /request id r3 was handled before: a request id runs once per Connector/);
  t.deepEqual(recovery?.handledRequestIds, ['r1']);
  const stalled = world.status?.conditions?.find((c) => c.type === 'Stalled');
  t.is(stalled?.reason, 'RecoveryFailed');
  // Nothing more happens while the spec stays at r3.
  apply(world, { kind: 'settle', rounds: 3 });
  t.deepEqual(world.status?.recovery, recovery);
});

test('found, fixed: under policy Automatic a handled spec request id runs again after an automatic recovery', (t) => {
  // r1 was refused (the connector was online) and is still in the spec. The claim is replaced, an
  // automatic recovery runs and completes; its id replaces r1 in status.recovery, and the next pass
  // takes the stale r1 for a new request: Requested, Checking, refused, and Stalled/RecoveryFailed
  // on a healthy connector (had it been offline, the dry run would have let it scale down and revoke).
  // The automatic record now carries r1 in handledRequestIds, and r1, the newest id the spec asked
  // for, left in the spec, stays quiet.
  const steps: Step[] = [
    { kind: 'settle', rounds: 4 },
    { kind: 'setRequestId', id: 'r1' },
    { kind: 'settle', rounds: 3 },
    { kind: 'claimReplaced' },
    { kind: 'settle', rounds: 1 },
    { kind: 'advance', ms: 60_000 },
    { kind: 'settle', rounds: 8 },
    { kind: 'settle', rounds: 8 },
  ];
  t.notThrows(() => example({ policy: 'Automatic', tokenTTL: '30m' }, steps, [oneRequestOneToken]));
  const world = newWorld(exampleOptions({ policy: 'Automatic', tokenTTL: '30m' }));
  for (const step of steps) apply(world, step);
  t.is(world.status?.phase, 'Online', describe(world));
  t.regex(world.status?.recovery?.requestId ?? '', /^auto-/);
  t.is(world.status?.recovery?.outcome, 'Succeeded');
  t.deepEqual(world.status?.recovery?.handledRequestIds, ['r1']);
  t.is(
    world.status?.conditions?.find((c) => c.type === 'Stalled'),
    undefined,
  );
});

test('found: an old first-boot exit in lastState makes a running, paired agent IdentityLoss once offline', (t) => {
  // The pod's first start found no token yet (ENROLLMENT_TOKEN_MISSING in lastState); it restarted
  // and paired. When the control plane marks it offline (heartbeats stop while the process lives, a
  // partition), agentLostIdentity (assessment.ts) reads the old exit as identity loss: NeedsRecovery,
  // Stalled/RecoveryRequired, and under Automatic a recovery that revokes the intact identity.
  t.notThrows(() =>
    example(
      {},
      [{ kind: 'settle', rounds: 2 }, { kind: 'cpMarksOffline' }, { kind: 'settle', rounds: 1 }],
      [identityLossOnlyWhenLost],
    ),
  );
});

test('found: Event reasons of a blocked pass and Enrolled while the control plane is unreachable are not documented', (t) => {
  // The blocker's Warning Event carries its Stalled reason (OwnershipConflict, ConnectorIdConflict,
  // WorkloadNotFound, AdoptionNotConsented, ClaimNotFound), which the Events table does not list;
  // Enrolled is Unknown/ControlPlaneUnreachable, a reason the Conditions table lists for Healthy only.
  t.notThrows(() =>
    example({}, [{ kind: 'foreignObject', present: true }, { kind: 'reconcile' }], [onlyDocumentedWords]),
  );
  t.notThrows(() =>
    example({}, [{ kind: 'cpReachable', reachable: false }, { kind: 'reconcile' }], [onlyDocumentedWords]),
  );
});

test('found, fixed: a temporary error of a stalled pass made it Reconciling too, which kstatus and Flux read as InProgress', (t) => {
  // A foreign ConfigMap edge-config (OwnershipConflict) while the control plane is unreachable, and
  // RecoveryRequired when a later step failed: withError added Reconciling RetryingAfterError next
  // to the stall. Now the stall stands alone and Ready's message says the error after it.
  const cases: Step[][] = [
    [
      { kind: 'settle', rounds: 6 },
      { kind: 'foreignObject', present: true },
      { kind: 'cpReachable', reachable: false },
      { kind: 'reconcile' },
    ],
    [
      { kind: 'settle', rounds: 6 },
      { kind: 'claimReplaced' },
      { kind: 'settle', rounds: 2 },
      { kind: 'reconcileFails', at: 0 },
    ],
  ];
  for (const steps of cases) {
    t.notThrows(() => example({}, steps, [neverStalledAndReconciling]));
    const w = newWorld(exampleOptions({}));
    let last: Pass | undefined;
    for (const step of steps) last = apply(w, step).at(-1) ?? last;
    t.is(last?.outcome, 'failed');
    const ready = w.status?.conditions?.find((c) => c.type === 'Ready');
    const stalled = w.status?.conditions?.find((c) => c.type === 'Stalled');
    t.is(ready?.reason, stalled?.reason);
    t.true(
      ready?.message.endsWith(
        `; meanwhile a temporary error is retried with backoff: ${last?.error?.code}: ${last?.error?.message}`,
      ),
      ready?.message,
    );
  }
});

const exampleOptions = (options: Partial<WorldOptions>): WorldOptions => ({
  storage: 'claim',
  tokenTTL: '5m',
  policy: 'Manual',
  validateRestart: false,
  ...options,
});

test('found, fixed: a mint made by a pass that then failed is counted from its Secret, not minted again with its spent key', (t) => {
  // The pass minted and stored token 1, then failed (statusAfterError kept mintCount 0). The token
  // expired unused (the agent held back); every later pass asked for key 1 again and the control
  // plane refused it for good (IDEMPOTENCY_KEY_CONSUMED): no token ever again.
  t.notThrows(() =>
    endsOnline(exampleOptions({}), [
      { kind: 'agentHeld', held: true },
      { kind: 'reconcile' },
      { kind: 'reconcileFails', at: 2 },
      { kind: 'advance', ms: 6 * MINUTE },
      { kind: 'reconcile' },
    ]),
  );
});

test('found, fixed: a mint whose Secret was never stored, once its token is revoked or expired, is asked for again for good', (t) => {
  // The pass minted token 1 and failed before storing its Secret (the answer lost, the Secret write
  // refused, the operator gone); the token is revoked (or expires) before a retry. No Secret shows
  // the mint, statusAfterError (reconciler.ts) kept mintCount 0, and every pass asks for the spent
  // key 1: IDEMPOTENCY_KEY_CONSUMED forever. Needs the failed key to be counted (or the refusal).
  // Now the pass the control plane refuses records the key (status.enrollment.consumedMintKey, by
  // pass-status.ts), and the next mint counts on from it: key 2.
  t.notThrows(() =>
    endsOnline(exampleOptions({}), [
      { kind: 'reconcile' },
      { kind: 'reconcileFails', at: 1 },
      { kind: 'adminRevokes' },
      { kind: 'settle', rounds: 1 },
    ]),
  );
});

test('found, fixed: a token revoked while the operator died deleting its Secret does not hold the next mint back to its expiry', (t) => {
  // The revocation pass deleted the Secret and died before writing the status, which still had the
  // 4 h expiry of the revoked token: the next mint waited until then.
  t.notThrows(() =>
    endsOnline(exampleOptions({ tokenTTL: '4h' }), [
      { kind: 'agentHeld', held: true },
      { kind: 'settle', rounds: 2 },
      { kind: 'reconcile' },
      { kind: 'adminRevokes' },
      { kind: 'operatorRestart', at: 1 },
    ]),
  );
});

test('found, fixed: a validation restart whose agent finds no identity and no token ends the recovery', (t) => {
  // The claim was replaced during ValidatingRestart: the restarted agent said ENROLLMENT_TOKEN_MISSING
  // (FirstBootBootstrap), which the step did not read as a lost identity, so it waited for good.
  t.notThrows(() =>
    endsOnline(exampleOptions({ validateRestart: true }), [
      { kind: 'reconcile' },
      { kind: 'settle', rounds: 1 },
      { kind: 'claimReplaced' },
      { kind: 'setRequestId', id: 'r1' },
      { kind: 'settle', rounds: 3 },
      { kind: 'controllers' },
      { kind: 'reconcile' },
      { kind: 'settle', rounds: 5 },
      { kind: 'claimReplaced' },
      { kind: 'reconcile' },
    ]),
  );
});

test('found, fixed: a request id the control plane already began is not run again into a wedge', (t) => {
  // r3 recovered the connector; r1 was refused; the spec went back to r3. The control plane treats
  // r3 as the same request (dry run allowed, beginRecovery a no-op), so the healthy connector was
  // scaled to zero and waited at TokensRevoked for good. It now ends Failed, unscaled: r3 is in the
  // handled request ids, so it gets a Failed record at once (the Checking step's own guard against a
  // request id the control plane already began stays, for ids beyond that memory).
  const world = newWorld(exampleOptions({ tokenTTL: '30m' }));
  const steps: Step[] = [
    { kind: 'settle', rounds: 4 },
    { kind: 'claimReplaced' },
    { kind: 'setRequestId', id: 'r3' },
    { kind: 'settle', rounds: 1 },
    { kind: 'advance', ms: MINUTE },
    { kind: 'settle', rounds: 12 },
    { kind: 'setRequestId', id: 'r1' },
    { kind: 'settle', rounds: 3 },
    { kind: 'setRequestId', id: 'r3' },
    { kind: 'settle', rounds: 10 },
  ];
  for (const step of steps) apply(world, step);
  t.is(world.status?.phase, 'Online', describe(world));
  t.is(world.status?.recovery?.outcome, 'Failed');
  t.regex(world.status?.recovery?.reason ?? '', /already began recovery r3/);
  t.is(world.statefulSet?.spec?.replicas, 1);
});

test('found, fixed: an agent that loses its identity between pairing and its first heartbeat leaves the connector Enrolling for good', (t) => {
  // Adopted Deployment on emptyDir: the agent paired (record enrolling, not retired), its pod went
  // before the first heartbeat, and the new pod has neither identity nor token. No rule diagnoses it,
  // no token is minted for an enrolling record, and the control plane refuses a recovery of a
  // never-retired connector (RECOVERY_NOT_NEEDED: mint a token instead). Now a pairing lost before
  // the first heartbeat (enrollment.ts pairingLost) gets a fresh enrollment token, as the runbook's
  // first-boot branch says: bootstrap is not retired until that heartbeat.
  t.notThrows(() =>
    endsOnline(exampleOptions({ storage: 'adopted' }), [
      { kind: 'reconcile' },
      { kind: 'reconcile' },
      { kind: 'controllers' },
      { kind: 'podDeleted' },
      { kind: 'settle', rounds: 3 },
    ]),
  );
});

test('found, fixed: a pairing lost after a re-mint waits for the backoff, not for the spent token to expire', (t) => {
  // Token 1 was revoked, token 2 paired, and the claim was replaced before the first heartbeat. The
  // re-mint backoff (60 s after two mints) counted from min(the spent token's 30 min expiry, now),
  // which moves with every pass: no token until that expiry. It now counts from the pairing.
  t.notThrows(() =>
    endsOnline(exampleOptions({ tokenTTL: '30m' }), [
      { kind: 'reconcile' },
      { kind: 'reconcile' },
      { kind: 'adminRevokes' },
      { kind: 'reconcile' },
      { kind: 'reconcile' },
      { kind: 'reconcile' },
      { kind: 'controllers' },
      { kind: 'claimReplaced' },
      { kind: 'advance', ms: 5000 },
    ]),
  );
});

test('found, fixed: a recovery whose one token was minted but never stored waits at TokenMinted for good once it expires', (t) => {
  // The operator died after minting recovery-r1 and before storing its Secret; the token expired
  // before the next pass, and every pass asked for recovery-r1 again: IDEMPOTENCY_KEY_CONSUMED, the
  // workload held at zero. The refused key is now recorded (status.enrollment.consumedMintKey, by
  // pass-status.ts) and the attempt ends Failed at TokenMinted, scaling the workload back.
  t.notThrows(() =>
    endsOnline(exampleOptions({}), [
      { kind: 'settle', rounds: 2 },
      { kind: 'setRequestId', id: 'r1' },
      { kind: 'settle', rounds: 1 },
      { kind: 'settle', rounds: 1 },
      { kind: 'cpMarksOffline' },
      { kind: 'settle', rounds: 4 },
      { kind: 'reconcile' },
      { kind: 'operatorRestart', at: 2 },
      { kind: 'operatorRestart', at: 1 },
      { kind: 'advance', ms: 14_460_000 },
      { kind: 'settle', rounds: 1 },
    ]),
  );
});

test('found, fixed: a Secret that proved an uncounted mint, once deleted, leaves a mint below the live token planned', (t) => {
  // The operator died after minting and storing token 1, before writing any status. Once it
  // expired, the next pass deleted its Secret and minted 2, and failed before storing it: nothing
  // recorded that 1 was spent, so the pass after asked for key 1 while token 2 was live (refused,
  // IDEMPOTENCY_KEY_CONSUMED). The pass that deletes such a Secret now counts the mint it proves.
  t.notThrows(() =>
    example(
      { storage: 'claim', tokenTTL: '5m', policy: 'Manual' },
      [
        { kind: 'operatorRestart', at: 3 },
        { kind: 'advance', ms: 14_460_000 },
        { kind: 'reconcileFails', at: 2 },
        { kind: 'reconcile' },
        { kind: 'agentHeld', held: false },
      ],
      [oneLiveToken],
    ),
  );
});

test('found, fixed: a pass that deleted the Secret proving an uncounted mint, and minted, left that mint unrecorded when it died', (t) => {
  // Drawn by the property above (seed 1532281643). The operator died after minting and storing
  // token 1, before writing any status. Once it expired, a pass deleted its Secret and minted 2,
  // and died before storing 2 or writing its status: the deleted Secret was the only record that
  // 1 was spent, so the next pass asked for key 1 while token 2 was live. A pass that deletes the
  // only proof of a mint now mints nothing; the pass after it does, counting on from that proof.
  t.notThrows(() =>
    example(
      { storage: 'claim', tokenTTL: '5m', policy: 'Manual' },
      [
        { kind: 'operatorRestart', at: 3 },
        { kind: 'advance', ms: 1_860_000 },
        { kind: 'operatorRestart', at: 2 },
        { kind: 'reconcile' },
        { kind: 'reconcile' },
        { kind: 'reconcile' },
        { kind: 'agentHeld', held: false },
      ],
      [oneLiveToken],
    ),
  );
});

test('found, fixed: a re-pairing mint made by a pass that died before storing it does not wait out the spent token', (t) => {
  // Token 1 paired, the claim was replaced before the first heartbeat (pairing lost), and the pass
  // that minted token 2 died before storing its Secret. Token 2 is live in the control plane, no
  // Secret holds it, and the status still counts mint 1 with token 1's 4 h expiry: the re-mint
  // backoff counted from that expiry (a live token was taken for the counted one), so the connector
  // stayed Enrolling for 4 h. A live token with another expiry superseded the counted one, which
  // ended at the pairing; the next pass asks for key 2 again and gets token 2 back. (CI, seed
  // -460220664.)
  t.notThrows(() =>
    endsOnline(exampleOptions({ tokenTTL: '4h' }), [
      { kind: 'reconcile' },
      { kind: 'reconcileFails', at: 0 },
      { kind: 'controllers' },
      { kind: 'claimReplaced' },
      { kind: 'controllers' },
      { kind: 'reconcile' },
      { kind: 'controllers' },
      { kind: 'operatorRestart', at: 1 },
      { kind: 'advance', ms: 5000 },
    ]),
  );
});

test('found, fixed: a recovery whose agent paired and beat, then went quiet before a pass saw it online, is not failed as unpaired', (t) => {
  // The claim was replaced during an automatic recovery; the agent paired on the new claim with the
  // recovery token and beat once (the control plane recorded the recovery completed), and its pod
  // went before a pass saw it online. Four hours later the record was offline and the token
  // expired: AwaitingOnline failed with "the recovery token expired ... before the connector
  // paired", and the status said NeedsRecovery/IdentityLoss (the claim replaced) while the agent
  // ran with the very certificate the control plane holds. A token spent by a pairing in this
  // recovery no longer ends the wait. (Soak, seed 1747586038.)
  t.notThrows(() =>
    example(
      { tokenTTL: '5m', policy: 'Automatic' },
      [
        { kind: 'settle', rounds: 1 },
        { kind: 'claimReplaced' },
        { kind: 'settle', rounds: 4 },
        { kind: 'settle', rounds: 5 },
        { kind: 'reconcile' },
        { kind: 'operatorRestart', at: 2 },
        { kind: 'reconcile' },
        { kind: 'reconcileFails', at: 2 },
        { kind: 'claimReplaced' },
        { kind: 'reconcile' },
        { kind: 'reconcile' },
        { kind: 'controllers' },
        { kind: 'advance', ms: 5000 },
        { kind: 'podDeleted' },
        { kind: 'advance', ms: 14_460_000 },
        { kind: 'reconcile' },
        { kind: 'controllers' },
        { kind: 'controllers' },
        { kind: 'reconcile' },
      ],
      [identityLossOnlyWhenLost],
    ),
  );
});

test('found, fixed: an agent that started before its recovery token was in its volume neither ended the attempt nor paired outside it', (t) => {
  // An outsider review's reproduction: at ScalingUp the agent stopped (its pod started before the
  // kubelet had the token in its Secret volume, exit 11 ENROLLMENT_TOKEN_MISSING), so the attempt
  // ended Failed; nothing revoked its token or deleted its Secret, the enrollment status adopted
  // it, and once the kubelet synced the volume and restarted the container the agent paired with
  // recovery-r1 outside any attempt (phase Online, recovery Failed). The pass that ends an attempt
  // revokes its token (the next test). And an agent that found no token while the attempt's one
  // token is live and unused no longer ends it (the same exit follows a token Secret deleted by
  // hand, which is stored again): the restarted container pairs once with it, within the attempt,
  // and the token's expiry bounds the wait.
  const w = newWorld({ storage: 'claim', tokenTTL: '4h', policy: 'Manual', validateRestart: true });
  const until = (what: string, done: (w: World) => boolean) => {
    // Checked right after each pass too: the pod must not start in the round that recorded ScalingUp.
    for (let i = 0; i < 60; i++) {
      apply(w, { kind: 'reconcile' });
      if (done(w)) return;
      for (const kind of ['controllers', 'kubeletSync', 'heartbeat'] as const) apply(w, { kind });
      apply(w, { kind: 'advance', ms: 1_000 });
    }
    throw new Error(`never ${what}: ${describe(w)}`);
  };
  until('Online', (x) => x.status?.phase === 'Online' && x.status.enrollment?.retired === true);
  apply(w, { kind: 'claimReplaced' });
  until('NeedsRecovery', (x) => x.status?.phase === 'NeedsRecovery');
  apply(w, { kind: 'setRequestId', id: 'r1' });
  until('ScalingUp', (x) => x.status?.recovery?.step === 'ScalingUp');
  for (let i = 0; i < 5 && !w.pod; i++) {
    apply(w, { kind: 'reconcile' });
    const secret = w.secret;
    w.secret = undefined;
    apply(w, { kind: 'controllers' });
    w.secret = secret;
  }
  t.is(w.pod?.agent.last?.exitCode, 11, 'the agent failed closed before pairing');
  apply(w, { kind: 'advance', ms: 1_000 });
  apply(w, { kind: 'reconcile' });
  apply(w, { kind: 'reconcile' });
  t.is(w.status?.recovery?.outcome, undefined, 'the attempt goes on');
  t.is(w.secret?.key, recoveryMintKey('r1'), 'with its token in the Secret');
  until('Completed', (x) => x.status?.recovery?.step === 'Completed');
  t.is(w.status?.recovery?.outcome, 'Succeeded');
  t.deepEqual(
    w.ledger.pairings.filter((p) => p.key === recoveryMintKey('r1')).map((p) => p.cpRecovery),
    ['r1'],
    'paired once with its token, within the attempt',
  );
  t.is(w.ledger.minted.filter((m) => m.key === recoveryMintKey('r1')).length, 1, 'one token for the request');
});

test('found, fixed: a recovery token Secret deleted by hand after the agent found no token was not stored again, and the token was left live for a restarted container', (t) => {
  // A reviewer's reproduction: at ScalingUp the pod started before the kubelet had the token in its
  // volume (exit 11 ENROLLMENT_TOKEN_MISSING), the kubelet then wrote recovery-r1 there, and the
  // Secret was deleted by hand before the pass that ended the attempt Failed. The revoke of an
  // ended attempt's token depended on its Secret, so recovery-r1 stayed live; until its next sync the
  // kubelet keeps a deleted Secret's content in the volume of a running pod, and the restarted
  // container paired with it outside any attempt (phase Online beside recovery Failed). A live token
  // that can only be the ended attempt's is revoked whether or not its Secret is there
  // (operator-plan.test.ts); and now that exit does not end the attempt while its token is live and
  // unused: the Secret is stored again with that token (asked with the same key, no second token),
  // and the restarted container pairs once with it, within the attempt.
  const steps: Step[] = [
    { kind: 'settle', rounds: 6 },
    { kind: 'claimReplaced' },
    { kind: 'settle', rounds: 2 },
    { kind: 'setRequestId', id: 'r1' },
    { kind: 'advance', ms: MINUTE },
  ];
  for (let i = 0; i < 9; i++) steps.push({ kind: 'reconcile' }, { kind: 'controllers' });
  steps.push(
    { kind: 'reconcile' },
    { kind: 'controllers', kubeletBehind: true },
    { kind: 'kubeletSync' },
    { kind: 'tokenSecretDeleted' },
    // No kubelet sync since: the running pod's volume still holds the token.
    { kind: 'reconcile' },
    { kind: 'reconcile' },
    { kind: 'controllers' },
    { kind: 'heartbeat' },
    { kind: 'reconcile' },
  );
  const w = newWorld(exampleOptions({ tokenTTL: '4h' }));
  for (const step of steps.slice(0, -3)) apply(w, step);
  t.is(w.status?.recovery?.outcome, undefined, 'the attempt goes on');
  t.is(w.secret?.key, recoveryMintKey('r1'), 'its Secret is stored again');
  t.is(w.ledger.minted.filter((m) => m.key === recoveryMintKey('r1')).length, 1, 'no second token');
  for (const step of steps.slice(-3)) apply(w, step);
  t.deepEqual(
    w.ledger.pairings.filter((p) => p.key === recoveryMintKey('r1')).map((p) => p.cpRecovery),
    ['r1'],
    'paired once with its token, within the attempt',
  );
  t.notThrows(() =>
    example({ tokenTTL: '4h' }, steps, [oneRequestOneToken, oneLiveToken, claimsOnlyWhatRan]),
  );
});

test('found, fixed: a pass that failed before the record of the recovery it opened said Recovering without one', (t) => {
  // A reviewer's reproduction: spec.recovery.requestId set on an Online connector (or a Connector
  // recreated from GitOps with an old id), and the pass fails at its first action (here the
  // ConfigMap; there the control-plane PUT, 503). The report said phase Recovering, Healthy
  // "guided recovery r1 is in progress" and recorded PhaseRecovering, while the record step, last
  // in the plan, did not run: no status.recovery, for as long as the error lasted. The record of a
  // request takes no action, so it is now written with the report.
  const w = newWorld({ storage: 'claim', tokenTTL: '5m', policy: 'Manual', validateRestart: false });
  apply(w, { kind: 'settle', rounds: 6 });
  t.is(w.status?.phase, 'Online');
  apply(w, { kind: 'setRequestId', id: 'r1' });
  const [pass] = apply(w, { kind: 'reconcileFails', at: 0 });
  t.is(pass?.outcome, 'failed');
  t.deepEqual(pass?.applied, [], 'nothing was done');
  t.is(w.status?.recovery?.requestId, 'r1', 'the request is recorded with the phase that speaks of it');
  t.is(w.status?.recovery?.step, 'Requested');
  t.is(w.status?.phase, 'Recovering');
  t.true(pass?.plan.events.some((e) => e.reason === 'RecoveryRequested'));
  t.notThrows(() =>
    example(
      {},
      [
        { kind: 'settle', rounds: 6 },
        { kind: 'setRequestId', id: 'r1' },
        { kind: 'reconcileFails', at: 0 },
        { kind: 'reconcileFails', at: 0 },
        { kind: 'settle', rounds: 4 },
      ],
      [recoveryTalkHasRecord, claimsOnlyWhatRan, oneRequestOneToken],
    ),
  );
});

test('found, fixed: the token Secret deleted by hand while its token was live said TokenExpired and minted nothing until the old expiry', (t) => {
  // A reviewer's reproduction: the agent held back (an image that cannot be pulled), a 4h token
  // minted and seen live, then `kubectl delete secret edge-enrollment-token`. The next pass said
  // Enrolled=False TokenExpired "the enrollment token expired before the connector paired; a fresh
  // one is minted", planned no mint, and looked again at the live token's expiry, hours later. A
  // new key would revoke that token and burn another; the control plane answers the same key with
  // the token it minted for it, so the pass now asks again with status.enrollment.lastMintKey and
  // stores that same token in a new Secret (Event TokenSecretRestored).
  const w = newWorld({ storage: 'claim', tokenTTL: '4h', policy: 'Manual', validateRestart: false });
  apply(w, { kind: 'agentHeld', held: true });
  apply(w, { kind: 'reconcile' });
  apply(w, { kind: 'reconcile' });
  const key = enrollmentMintKey(WORLD_UID, 1);
  t.is(w.secret?.key, key);
  const expiresAt = w.status?.enrollment?.tokenExpiresAt;
  t.truthy(expiresAt);
  apply(w, { kind: 'tokenSecretDeleted' });
  const [pass] = apply(w, { kind: 'reconcile' });
  t.deepEqual(
    mintsOf(pass?.plan as PlanView).map((m) => m.idempotencyKey),
    [key],
    'asked again with the same key',
  );
  t.is(w.secret?.key, key, 'the same token is in a new Secret');
  t.is(w.ledger.minted.length, 1, 'no new token');
  t.is(liveTokens(w), 1);
  t.deepEqual(
    pass?.plan.events.map((e) => e.reason),
    ['TokenSecretRestored'],
  );
  const enrolled = w.status?.conditions?.find((c) => c.type === 'Enrolled');
  t.is(enrolled?.reason, 'TokenMinted');
  t.regex(enrolled?.message ?? '', /was deleted while its single-use token was live and unused/);
  t.is(w.status?.enrollment?.mintCount, 1);
  apply(w, { kind: 'reconcile' });
  t.is(w.status?.enrollment?.tokenExpiresAt, expiresAt, "the token expiry is the live token's");
  t.is(w.status?.enrollment?.tokenSecretName, 'edge-enrollment-token');
  apply(w, { kind: 'agentHeld', held: false });
  apply(w, { kind: 'settle', rounds: 4 });
  t.is(w.status?.phase, 'Online', 'the agent paired with the restored token');
  t.is(w.ledger.minted.length, 1);
  t.notThrows(() =>
    example(
      { tokenTTL: '4h' },
      [
        { kind: 'agentHeld', held: true },
        { kind: 'reconcile' },
        { kind: 'tokenSecretDeleted' },
        { kind: 'reconcile' },
        { kind: 'reconcile' },
        { kind: 'tokenSecretDeleted' },
        { kind: 'reconcile' },
      ],
      [liveTokenKeptInItsSecret, oneLiveToken, claimsOnlyWhatRan],
    ),
  );
});

test('found, fixed: the control plane unreachable for hours, the agent gone: kubectl get said Online with an empty Last Heartbeat, and nothing else', (t) => {
  // A reviewer's reproduction: the operator loses the control plane, the agent's pod goes, hours
  // pass. The phase stays the last one seen (Online) and Last Heartbeat stays empty, which the docs
  // called "heartbeats arrive"; the phase metric stayed Online too. Now the READY column shows the
  // Ready condition (Unknown) and -o wide its reason; the docs say what the kept phase means, and
  // the alert VaultpamConnectorControlPlaneUnreachable reads the Ready series.
  const w = newWorld({ storage: 'claim', tokenTTL: '5m', policy: 'Manual', validateRestart: false });
  const steps: Step[] = [
    { kind: 'settle', rounds: 6 },
    { kind: 'cpReachable', reachable: false },
    { kind: 'agentHeld', held: true },
    { kind: 'podDeleted' },
    { kind: 'controllers' },
    { kind: 'advance', ms: 4 * 60 * 60_000 },
    { kind: 'reconcile' },
  ];
  for (const step of steps) apply(w, step);
  t.is(printerColumn(w.status, 'Phase'), 'Online', 'the last phase seen');
  t.is(printerColumn(w.status, 'Last Heartbeat'), undefined);
  t.is(printerColumn(w.status, 'Ready'), 'Unknown');
  t.is(printerColumn(w.status, 'Reason'), 'ControlPlaneUnreachable');
  t.notThrows(() => example({}, steps, [printedStatusTruthful]));
});
