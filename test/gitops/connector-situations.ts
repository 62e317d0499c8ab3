// Connectors in every phase and condition combination the operator writes, for the GitOps health
// checks (Argo CD's health.lua, kstatus). Each status is produced by the operator's own code, as
// the reconciler composes it: the planner (plan), the status of the pass (statusOfPass: the steps
// that ran, and the error that stopped the rest or the control plane's) and the status of a
// Connector being deleted (finalizingStatus), from observed worlds built with the planner tests'
// builder, at a fixed time. The Argo CD test data (gitops/argocd/.../testdata) is written from these
// (test/gitops/write-health-testdata.ts) and a test fails when the two drift apart; the kstatus test
// writes the same statuses through the status subresource of a real API server.
import { CodedError } from '../../src/lib/errors.ts';
import { FINALIZER } from '../../src/operator/api/constants.ts';
import { type Connector, type ConnectorStatus, defaultedSpec } from '../../src/operator/api/types.ts';
import { resolveConnection } from '../../src/operator/reconcile/observe.ts';
import type { Observed, PodReferenceProblem } from '../../src/operator/reconcile/observed.ts';
import { statusOfPass } from '../../src/operator/reconcile/pass-status.ts';
import { plan } from '../../src/operator/reconcile/plan.ts';
import type { PlannedAction } from '../../src/operator/reconcile/plan-types.ts';
import { recoveryMintKey } from '../../src/operator/reconcile/recovery-requests.ts';
import { invalidSpecFromRefusal } from '../../src/operator/reconcile/spec-fields.ts';
import {
  finalizerRefusedMessage,
  finalizerRefusedStatus,
  finalizingStatus,
} from '../../src/operator/reconciler.ts';
import { writeError } from '../../src/operator/runtime/apply.ts';
import {
  CLAIM_UID,
  claim,
  connector,
  observed,
  pendingRecord,
  pod,
  record,
  tokenSecret,
  UID,
} from '../helpers/observed-builder.ts';

/** The time every pass below runs at. */
export const NOW = new Date('2026-01-01T00:00:10Z');
const CREATED = '2025-12-31T22:58:00Z';

export interface Situation {
  /** The test-data file's name without .yaml: what Argo CD should say first, then the situation. */
  file: string;
  /** One line: the situation and why the status is what it is. */
  title: string;
  /** The Connector as stored: metadata, spec and the status the operator wrote. */
  connector: Connector;
  /** The status was written at generation 1, then the spec changed (generation 2, not yet observed). */
  specChangedAfterStatus?: boolean;
  /** The Connector is being deleted (metadata.deletionTimestamp set, the finalizer holds it). */
  deleting?: boolean;
}

type Spec = Partial<Connector['spec']>;

/** The stored Connector: the planner's input object with the status it wrote. */
function stored(input: Connector, status: ConnectorStatus | undefined): Connector {
  const { status: _previous, ...rest } = input;
  return {
    ...rest,
    metadata: { ...input.metadata, creationTimestamp: CREATED as unknown as Date, finalizers: [FINALIZER] },
    ...(status ? { status } : {}),
  };
}

/** The status one pass writes when every step of its plan ran (and the control plane answered). */
function passStatus(o: Observed): ConnectorStatus {
  const planned = plan(o, NOW);
  const error = o.controlPlane.reachable ? undefined : o.controlPlane.error;
  return statusOfPass(
    planned,
    { ran: planned.steps.length, ...(error ? { error } : {}) },
    NOW,
    o.connector.metadata.generation,
  );
}

/** One pass; the Connector it judged, with the status it wrote. */
function planned(o: Observed): Connector {
  return stored(o.connector, passStatus(o));
}

/**
 * A pass whose first step with an action of `kind` failed with `error`: the steps before it ran,
 * the rest did not, and the error is in a condition (as the reconciler writes it).
 */
function failedAt(o: Observed, kind: PlannedAction['kind'], error: CodedError): Connector {
  const planned = plan(o, NOW);
  const at = planned.steps.findIndex((step) => step.action?.kind === kind);
  if (at < 0) throw new Error(`the plan has no ${kind} step to fail`);
  return stored(o.connector, statusOfPass(planned, { ran: at, error }, NOW, o.connector.metadata.generation));
}

/** A pass whose control plane answered `error` when the record was read. */
function refusedByControlPlane(o: Observed, error: CodedError): Connector {
  return planned({ ...o, controlPlane: { reachable: false, error } });
}

const input = (spec: Spec = {}, status?: ConnectorStatus) =>
  connector({ spec, ...(status ? { status } : {}) });

/** A new Connector, no pod yet, whose pod would name a PriorityClass or ServiceAccount that is wrong. */
function podReferenceSituation(
  field: PodReferenceProblem['field'],
  kind: PodReferenceProblem['kind'],
  name: string,
  state: PodReferenceProblem['state'],
  refusal?: string,
): Connector {
  const o = observed({
    connector: input({ [field.slice('spec.'.length)]: name }),
    record: undefined,
    pods: [],
    claims: [],
    noWorkload: true,
  });
  return planned({ ...o, podReferences: [{ field, kind, name, state, ...(refusal ? { refusal } : {}) }] });
}

/** The status of a connector that is Online: the starting point of later passes. */
function onlineStatus(spec: Spec = {}): ConnectorStatus {
  return passStatus(observed({ connector: input(spec) }));
}

/** A recovery record at a step, under way for request r1. */
const recoveryAt = (step: NonNullable<ConnectorStatus['recovery']>['step']) => ({
  requestId: 'r1',
  step,
  attempts: 1,
  startedAt: '2026-01-01T00:00:00Z',
  mintKey: recoveryMintKey('r1'),
  evidence: { phaseBefore: 'NeedsRecovery', controlPlaneStateBefore: 'needs_recovery', replicasBefore: 1 },
});

/** The agent's last exit, as its termination message says it. */
const termination = (failureClass: string, code: string, exitCode: number, reason: string) => ({
  exitCode,
  message: JSON.stringify({ failureClass, code, reason }),
  finishedAt: '2026-01-01T00:00:05Z',
});

/** spec.storage.size grown past the claim's request; its StorageClass can expand it or not. */
function grownClaim(allowVolumeExpansion: boolean): Connector {
  const spec: Spec = { storage: { size: '2Gi', storageClassName: 'fast' } };
  const o = observed({
    connector: input(spec, onlineStatus(spec)),
    claims: [claim({ requested: '1Gi', capacity: '1Gi', storageClassName: 'fast' })],
  });
  return planned({ ...o, storageClass: { name: 'fast', allowVolumeExpansion } });
}

function situationsWith(configInvalid: CodedError): Situation[] {
  const needsRecovery = record({ state: 'needs_recovery', stateChangedAt: '2026-01-01T00:00:00.000Z' });
  const list: Situation[] = [
    {
      file: 'progressing-no-status',
      title: 'just created: the operator has not written a status yet',
      connector: stored(input(), undefined),
    },
    {
      file: 'progressing-pending-applying-resources',
      title: 'Pending: the first pass creates the workload and registers the connector',
      connector: planned(observed({ record: undefined, pods: [], claims: [], noWorkload: true })),
    },
    {
      file: 'progressing-pending-enrolling',
      title: 'Pending: a token is minted; waiting for the agent to pair',
      connector: planned(
        observed({
          connector: input({}, { enrollment: { mintCount: 1, lastMintKey: `enroll-${UID}-1` } }),
          record: pendingRecord({ liveToken: { tokenId: 't', expiresAt: '2026-01-01T04:00:00.000Z' } }),
          tokenSecret: tokenSecret(),
        }),
      ),
    },
    {
      file: 'progressing-pending-token-expired',
      title: 'Pending: tokens keep expiring unused (FirstBootBootstrap); the operator re-mints with backoff',
      connector: planned(
        observed({
          connector: input(
            {},
            {
              enrollment: {
                mintCount: 2,
                lastMintKey: `enroll-${UID}-2`,
                tokenExpiresAt: '2026-01-01T00:00:00.000Z',
              },
            },
          ),
          record: pendingRecord({ liveToken: null }),
          tokenSecret: tokenSecret({ expiresAt: '2026-01-01T00:00:00.000Z', mintKey: `enroll-${UID}-2` }),
        }),
      ),
    },
    {
      file: 'progressing-pending-enrollment-rejected',
      title: "Pending: the agent's pairing was refused (CA_UNTRUSTED); the diagnosis says what to fix",
      connector: planned(
        observed({
          record: pendingRecord(),
          pods: [
            pod({
              terminated: termination(
                'FirstBootBootstrap',
                'CA_UNTRUSTED',
                11,
                'the control plane certificate is not signed by the configured CA',
              ),
            }),
          ],
        }),
      ),
    },
    {
      file: 'progressing-enrolling',
      title: 'Enrolling: paired, waiting for the first heartbeat',
      connector: planned(
        observed({
          record: pendingRecord({ state: 'enrolling', enrolledAt: '2026-01-01T00:00:05.000Z' }),
        }),
      ),
    },
    {
      file: 'healthy-online',
      title: 'Online: heartbeats arrive, enrolled, identity on a bound claim',
      connector: planned(observed({ connector: input({}, onlineStatus()) })),
    },
    {
      file: 'healthy-online-ephemeral-by-choice',
      title: 'Online on an emptyDir asked for with storage.ephemeral: Ready, in guided-recovery mode',
      connector: planned(
        observed({
          connector: input({ storage: { ephemeral: true } }),
          pods: [pod({ dataVolume: 'emptyDir' })],
          claims: [],
        }),
      ),
    },
    {
      file: 'healthy-online-recovery-not-needed',
      title:
        'Online, with a spec.recovery.requestId the control plane refused as not needed (a manifest kept an old id): not held back',
      connector: planned(
        observed({
          connector: input(
            { recovery: { requestId: 'r1' } },
            {
              ...onlineStatus(),
              recovery: {
                requestId: 'r1',
                step: 'Checking',
                attempts: 1,
                startedAt: '2026-01-01T00:00:00Z',
                evidence: { phaseBefore: 'Online', controlPlaneStateBefore: 'online', replicasBefore: 1 },
              },
            },
          ),
          recoveryCheck: {
            requestId: 'r1',
            allowed: false,
            code: 'RECOVERY_NOT_NEEDED',
            message: 'a connector in state online needs no recovery',
          },
        }),
      ),
    },
    {
      file: 'degraded-online-emptydir',
      title: 'Online, but the pod mounts an emptyDir although durable storage was asked for',
      connector: planned(observed({ pods: [pod({ dataVolume: 'emptyDir' })], claims: [] })),
    },
    {
      file: 'progressing-online-rolling-out',
      title: 'Online while the StatefulSet rolls out a changed spec',
      connector: (() => {
        const o = observed({ connector: input({}, onlineStatus()) });
        const sts = o.workload?.object;
        if (sts) {
          sts.metadata = { ...sts.metadata, generation: 2 };
          sts.status = { replicas: 1, observedGeneration: 1 };
        }
        return planned(o);
      })(),
    },
    {
      file: 'progressing-online-expanding-storage',
      title: 'Online while the claim grows to a larger spec.storage.size',
      connector: grownClaim(true),
    },
    {
      file: 'degraded-stalled-storage-expansion-unsupported',
      title: "Online, but spec.storage.size grew and the claim's StorageClass cannot expand it",
      connector: grownClaim(false),
    },
    {
      file: 'progressing-online-control-plane-unreachable',
      title: 'Online before; now the operator cannot reach the control plane and retries',
      connector: planned(observed({ connector: input({}, onlineStatus()), record: 'unreachable' })),
    },
    {
      file: 'degraded-degraded',
      title: 'Degraded: heartbeats arrive but a runtime path is unhealthy',
      connector: planned(
        observed({
          connector: input({}, onlineStatus()),
          record: record({
            state: 'degraded',
            paths: [
              { name: 'tunnel', healthy: true, detail: '' },
              { name: 'db', healthy: false, detail: 'connect refused' },
            ],
          }),
        }),
      ),
    },
    {
      file: 'degraded-offline',
      title: 'Offline: heartbeats stopped; the identity is intact (Reconnect)',
      connector: planned(
        observed({
          connector: input({}, onlineStatus()),
          record: record({ state: 'offline', stateChangedAt: '2026-01-01T00:00:00.000Z' }),
          pods: [],
        }),
      ),
    },
    {
      file: 'degraded-needs-recovery-manual',
      title:
        'NeedsRecovery, policy Manual: the control plane says needs_recovery; waiting for spec.recovery.requestId',
      connector: planned(observed({ connector: input({}, onlineStatus()), record: needsRecovery })),
    },
    {
      file: 'degraded-needs-recovery-manual-unreachable',
      title:
        "NeedsRecovery, policy Manual, then the control plane unreachable: Stalled stays (the last need for a person to act), the retried error in Ready's message",
      connector: planned(
        observed({
          connector: input(
            {},
            passStatus(observed({ connector: input({}, onlineStatus()), record: needsRecovery })),
          ),
          record: 'unreachable',
        }),
      ),
    },
    {
      file: 'degraded-needs-recovery-claim-replaced',
      title: 'NeedsRecovery at once: the claim was replaced after pairing (identity lost), policy Manual',
      connector: planned(
        observed({
          connector: input(
            {},
            { ...onlineStatus(), storage: { claimUID: 'old-claim-uid' }, enrollment: { retired: true } },
          ),
          record: record({ state: 'offline' }),
          claims: [claim({ uid: CLAIM_UID })],
        }),
      ),
    },
    {
      file: 'degraded-needs-recovery-automatic-failed',
      title: 'NeedsRecovery, policy Automatic: the one automatic recovery of this incident failed',
      connector: (() => {
        const spec: Spec = { recovery: { policy: 'Automatic' } };
        const first = passStatus(
          observed({ connector: input(spec, onlineStatus(spec)), record: needsRecovery }),
        );
        const recovery = first.recovery;
        if (!recovery) throw new Error('expected an automatic recovery');
        const failedRecord = {
          ...recovery,
          step: 'Failed' as const,
          outcome: 'Failed' as const,
          finishedAt: '2026-01-01T00:00:09Z',
          reason: 'the recovery token expired before the agent paired',
        };
        return planned(
          observed({ connector: input(spec, { ...first, recovery: failedRecord }), record: needsRecovery }),
        );
      })(),
    },
    {
      file: 'progressing-recovering-requested',
      title: 'Recovering: spec.recovery.requestId asked for a guided recovery; its first step is recorded',
      connector: planned(
        observed({
          connector: input(
            { recovery: { requestId: 'r1' } },
            passStatus(observed({ record: needsRecovery })),
          ),
          record: needsRecovery,
        }),
      ),
    },
    {
      file: 'progressing-recovering-scaling-down',
      title: 'Recovering: the control plane agreed; the workload scales to zero',
      connector: planned(
        observed({
          connector: input(
            { recovery: { requestId: 'r1' } },
            { ...passStatus(observed({ record: needsRecovery })), recovery: recoveryAt('ScalingDown') },
          ),
          record: needsRecovery,
        }),
      ),
    },
    {
      file: 'progressing-recovering-paired-not-beating',
      title:
        "Recovering: the agent paired with the recovery's token but gives up reaching the control plane (exit 14); the wait has no bound, and says why",
      connector: planned(
        observed({
          connector: input({ recovery: { requestId: 'r1' } }, { recovery: recoveryAt('AwaitingOnline') }),
          record: record({
            state: 'enrolling',
            enrolledAt: '2026-01-01T00:00:03.000Z',
            lastHeartbeatAt: null,
            recovery: { requestId: 'r1', startedAt: '2026-01-01T00:00:01.000Z', completedAt: null },
          }),
          pods: [
            pod({
              restartCount: 2,
              terminated: {
                ...termination(
                  'Reconnect',
                  'CONTROL_PLANE_UNREACHABLE',
                  14,
                  'the control plane did not answer for 5m (--give-up-after)',
                ),
                finishedAt: '2026-01-01T00:00:08Z',
              },
            }),
          ],
        }),
      ),
    },
    {
      file: 'degraded-stalled-recovery-failed',
      title:
        "RecoveryFailed: the recovery's token expired before the agent paired; a new request id is needed",
      connector: planned(
        observed({
          connector: input({ recovery: { requestId: 'r1' } }, { recovery: recoveryAt('AwaitingOnline') }),
          record: record({ state: 'recovering', bootstrapRetired: false }),
          tokenSecret: tokenSecret({ mintKey: recoveryMintKey('r1'), expiresAt: '2026-01-01T00:00:05.000Z' }),
        }),
      ),
    },
    {
      file: 'progressing-terminating',
      title: 'Terminating: deleted; the finalizer releases the control-plane record',
      deleting: true,
      connector: (() => {
        const online = stored(input({}, onlineStatus()), onlineStatus());
        // Setting metadata.deletionTimestamp on an object with finalizers raises its generation.
        const deleting = {
          ...online,
          metadata: {
            ...online.metadata,
            generation: 2,
            deletionTimestamp: '2026-01-01T00:00:08Z' as unknown as Date,
          },
        };
        return {
          ...deleting,
          status: finalizingStatus(deleting, NOW, { deadline: new Date('2026-01-01T00:05:08Z').getTime() }),
        };
      })(),
    },
    {
      file: 'suspended-paused-online',
      title: 'spec.paused: the operator observes and reports only; the connector is Online',
      connector: planned(observed({ connector: input({ paused: true }, onlineStatus()) })),
    },
    {
      file: 'suspended-paused-recovering',
      title: 'spec.paused during a guided recovery: the recovery holds its step',
      connector: planned(
        observed({
          connector: input(
            { paused: true, recovery: { requestId: 'r1' } },
            { ...passStatus(observed({ record: needsRecovery })), recovery: recoveryAt('ScalingDown') },
          ),
          record: record({ state: 'recovering' }),
        }),
      ),
    },
    {
      file: 'suspended-paused-needs-recovery',
      title:
        'spec.paused while the identity is lost (policy Manual): Stalled, but nothing runs until unpaused',
      connector: planned(
        observed({ connector: input({ paused: true }, onlineStatus()), record: needsRecovery }),
      ),
    },
    {
      file: 'progressing-generation-not-observed',
      title: 'Online at generation 1; the spec changed (generation 2) and the operator has not seen it yet',
      specChangedAfterStatus: true,
      connector: (() => {
        const online = planned(observed({ connector: input({}, onlineStatus()) }));
        return {
          ...online,
          metadata: { ...online.metadata, generation: 2 },
          spec: { ...online.spec, enrollment: { tokenTTL: '2h' } },
        };
      })(),
    },
    {
      file: 'degraded-stalled-invalid-spec',
      title:
        'InvalidSpec: Kubernetes refuses (dry run, before a token is minted) the StatefulSet built from spec.podLabels',
      connector: failedAt(
        observed({ record: pendingRecord() }),
        'dryRun',
        invalidSpecFromRefusal(
          'StatefulSet',
          writeError(
            'server-side apply of StatefulSet prod/edge',
            Object.assign(new Error('HTTP-Code: 422'), {
              code: 422,
              body: JSON.stringify({
                kind: 'Status',
                message: 'StatefulSet.apps "edge" is invalid',
                details: {
                  causes: [
                    {
                      reason: 'FieldValueInvalid',
                      field: 'spec.template.metadata.labels',
                      message:
                        'Invalid value: "platform/team": a valid label must be an empty string or consist of alphanumeric characters',
                    },
                  ],
                },
              }),
            }),
          ),
        ) ?? new CodedError('InvalidSpec', 'expected a refusal'),
      ),
    },
    {
      file: 'degraded-stalled-control-plane-config-invalid',
      title:
        'ControlPlaneConfigInvalid: no spec.controlPlaneRef and the operator has no default control plane',
      connector: refusedByControlPlane(
        observed({ record: undefined, pods: [], claims: [], noWorkload: true }),
        configInvalid,
      ),
    },
    {
      file: 'degraded-stalled-control-plane-unauthorized',
      title: "ControlPlaneUnauthorized: the control plane refuses the operator's admin credential",
      connector: refusedByControlPlane(
        observed({ connector: input({}, onlineStatus()) }),
        new CodedError('UNAUTHORIZED', 'the admin credential was not accepted', { httpStatus: 401 }),
      ),
    },
    {
      file: 'degraded-stalled-control-plane-rejected',
      title: 'ControlPlaneRejected: the control plane refuses the token TTL for good',
      connector: failedAt(
        observed({ record: pendingRecord() }),
        'mintToken',
        new CodedError('TTL_TOO_LONG', 'ttlSeconds 14400 is more than this control plane allows (3600)', {
          httpStatus: 400,
        }),
      ),
    },
    {
      file: 'degraded-stalled-connector-id-conflict',
      title: 'ConnectorIdConflict: another Connector owns the control-plane record of this connector id',
      connector: planned(observed({ record: record({ ownerUid: 'another-connector-uid' }) })),
    },
    {
      file: 'degraded-stalled-workload-not-found',
      title: 'WorkloadNotFound: spec.workloadRef names a Deployment that does not exist',
      connector: planned(
        observed({
          noWorkload: true,
          pods: [],
          claims: [],
          connector: input({ workloadRef: { kind: 'Deployment', name: 'legacy-connector' } }),
          record: undefined,
        }),
      ),
    },
    {
      file: 'degraded-stalled-adoption-not-consented',
      title: 'AdoptionNotConsented: the adopted Deployment does not carry vaultpam.io/adopted-by',
      connector: planned(
        observed({
          connector: input({ workloadRef: { kind: 'Deployment', name: 'legacy-connector' } }),
          workload: { kind: 'Deployment', name: 'legacy-connector', consented: false },
          pods: [],
          claims: [],
          record: undefined,
        }),
      ),
    },
    {
      file: 'degraded-stalled-ownership-conflict',
      title: "OwnershipConflict: a ConfigMap with the connector's child name belongs to someone else",
      connector: planned({
        ...observed({ record: undefined, pods: [], claims: [], noWorkload: true }),
        foreign: [{ kind: 'ConfigMap', name: 'edge-config' }],
      }),
    },
    {
      file: 'degraded-stalled-ownership-conflict-unreachable',
      title:
        "OwnershipConflict while the control plane is unreachable: Stalled alone (not Reconciling too), the retried error in Ready's message",
      connector: planned({
        ...observed({ record: 'unreachable', pods: [], claims: [], noWorkload: true }),
        foreign: [{ kind: 'ConfigMap', name: 'edge-config' }],
      }),
    },
    {
      file: 'degraded-stalled-claim-not-found',
      title: 'ClaimNotFound: spec.storage.existingClaim names a claim that does not exist',
      connector: planned(
        observed({
          connector: input({ storage: { existingClaim: 'original-data' } }),
          record: undefined,
          pods: [],
          claims: [],
          noWorkload: true,
        }),
      ),
    },
    {
      file: 'degraded-stalled-priority-class-not-found',
      title: 'PriorityClassNotFound: spec.priorityClassName names a PriorityClass that does not exist',
      connector: podReferenceSituation('spec.priorityClassName', 'PriorityClass', 'high-priority', 'missing'),
    },
    {
      file: 'degraded-stalled-service-account-not-found',
      title: 'ServiceAccountNotFound: spec.serviceAccountName names a ServiceAccount that does not exist',
      connector: podReferenceSituation(
        'spec.serviceAccountName',
        'ServiceAccount',
        'connector-runner',
        'missing',
      ),
    },
    {
      file: 'degraded-stalled-pod-reference-forbidden',
      title:
        'PodReferenceForbidden: the operator may not read the PriorityClass spec.priorityClassName names',
      connector: podReferenceSituation(
        'spec.priorityClassName',
        'PriorityClass',
        'high-priority',
        'forbidden',
        'priorityclasses.scheduling.k8s.io "high-priority" is forbidden: User "system:serviceaccount:vaultpam-system:vaultpam-connector-operator" cannot get resource "priorityclasses" in API group "scheduling.k8s.io" at the cluster scope',
      ),
    },
    {
      file: 'degraded-stalled-finalizer-refused',
      title: "FinalizerRefused: an admission policy refuses the operator's finalizer on a new Connector",
      connector: (() => {
        // Not stored(): the finalizer is what was refused, and no pass has written a status yet.
        const fresh = input();
        fresh.metadata = { ...fresh.metadata, creationTimestamp: CREATED as unknown as Date };
        const refusal =
          "connectors.vaultpam.io \"edge\" is forbidden: ValidatingAdmissionPolicy 'no-finalizers' with binding 'no-finalizers' denied request: no finalizers on Connectors in this namespace";
        return { ...fresh, status: finalizerRefusedStatus(fresh, NOW, finalizerRefusedMessage(refusal)) };
      })(),
    },
  ];
  return list;
}

/** Every situation, in a fixed order. */
export async function situations(): Promise<Situation[]> {
  // What the operator's observe step says when a Connector names no control plane and the operator
  // has none by default.
  const resolved = await resolveConnection(
    { controlPlanes: undefined as never, defaultConnection: undefined },
    defaultedSpec(connector()),
  );
  if (!('error' in resolved)) throw new Error('expected ControlPlaneConfigInvalid without any control plane');
  return situationsWith(resolved.error);
}
