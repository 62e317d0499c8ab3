// kstatus, the library Flux's health checks and cli-utils' apply --wait use, on real Connectors:
// each situation of connector-situations.ts is created on the real local API server, its status
// written through the status subresource with the operator's own writer (server-side apply, as the
// operator writes it), the spec changed or the object deleted where the situation says so, and the
// objects read back are judged by the kstatus binary (sigs.k8s.io/cli-utils/pkg/kstatus/status).
// The demands: Current when Online, InProgress while reconciling or recovering, Failed when
// NeedsRecovery under policy Manual or Stalled. The same objects also go through Argo CD's check.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import test from 'ava';
import * as yaml from 'js-yaml';
import { silentLogger } from '../../src/lib/logger.ts';
import { FINALIZER, GROUP, PLURAL, VERSION } from '../../src/operator/api/constants.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import { KubeWriter } from '../../src/operator/runtime/apply.ts';
import { createOperatorMetrics } from '../../src/operator/runtime/metrics.ts';
import { RESOURCE_TYPES } from '../../src/operator/runtime/resources.ts';
import { createTestNamespace, installCrds, useCluster } from '../helpers/cluster.ts';
import { type Situation, situations } from './connector-situations.ts';
import { type KstatusResult, kstatus, luaHealth } from './ecosystem.ts';
import { docTable, gitopsDoc } from './gitops-doc.ts';
import { CONNECTOR_CHECK_DIR } from './health-testdata.ts';

/**
 * What kstatus says of each situation. The demands are marked; the rest is what kstatus
 * makes of the conditions the operator writes (docs/gitops.md explains each).
 */
const EXPECTED: Record<string, string> = {
  // kstatus's rule for an object with no status and no conditions: Current. docs/gitops.md says why.
  'progressing-no-status': 'Current',
  'progressing-pending-applying-resources': 'InProgress', // demanded: reconciling
  'progressing-pending-enrolling': 'InProgress', // demanded: reconciling
  'progressing-pending-token-expired': 'InProgress', // demanded: reconciling
  'progressing-pending-enrollment-rejected': 'InProgress', // demanded: reconciling
  'progressing-enrolling': 'InProgress', // demanded: reconciling
  'healthy-online': 'Current', // demanded: Online
  'healthy-online-ephemeral-by-choice': 'Current', // demanded: Online
  'healthy-online-recovery-not-needed': 'Current', // demanded: Online (the request holds nothing back)
  'degraded-online-emptydir': 'InProgress', // Ready=False without Stalled
  'progressing-online-rolling-out': 'InProgress', // demanded: reconciling
  'progressing-online-expanding-storage': 'InProgress', // demanded: reconciling
  'degraded-stalled-storage-expansion-unsupported': 'Failed', // demanded: Stalled
  'progressing-online-control-plane-unreachable': 'InProgress', // demanded: reconciling (retrying)
  'degraded-degraded': 'InProgress', // Ready=False without Stalled
  'degraded-offline': 'InProgress', // Ready=False without Stalled
  'degraded-needs-recovery-manual': 'Failed', // demanded: NeedsRecovery, policy Manual
  // The last need for a person to act stays while the control plane cannot be asked (not InProgress).
  'degraded-needs-recovery-manual-unreachable': 'Failed',
  'degraded-needs-recovery-claim-replaced': 'Failed', // demanded: NeedsRecovery, policy Manual
  'degraded-needs-recovery-automatic-failed': 'Failed', // Stalled RecoveryFailed: it runs once per incident
  'progressing-recovering-requested': 'InProgress', // demanded: recovering
  'progressing-recovering-scaling-down': 'InProgress', // demanded: recovering
  'progressing-recovering-paired-not-beating': 'InProgress', // demanded: recovering, with why it waits
  'degraded-stalled-recovery-failed': 'Failed', // demanded: Stalled
  'progressing-terminating': 'Terminating',
  'suspended-paused-online': 'Current', // demanded: Online
  'suspended-paused-recovering': 'InProgress', // demanded: recovering
  'suspended-paused-needs-recovery': 'Failed', // demanded: NeedsRecovery, policy Manual
  'progressing-generation-not-observed': 'InProgress',
  'degraded-stalled-invalid-spec': 'Failed', // demanded: Stalled
  'degraded-stalled-control-plane-config-invalid': 'Failed', // demanded: Stalled
  'degraded-stalled-control-plane-unauthorized': 'Failed', // demanded: Stalled
  'degraded-stalled-control-plane-rejected': 'Failed', // demanded: Stalled
  'degraded-stalled-connector-id-conflict': 'Failed', // demanded: Stalled
  'degraded-stalled-workload-not-found': 'Failed', // demanded: Stalled
  'degraded-stalled-adoption-not-consented': 'Failed', // demanded: Stalled
  'degraded-stalled-ownership-conflict': 'Failed', // demanded: Stalled
  // Stalled alone: the temporary error adds no Reconciling, which kstatus reads first (InProgress).
  'degraded-stalled-ownership-conflict-unreachable': 'Failed',
  'degraded-stalled-claim-not-found': 'Failed', // demanded: Stalled
  'degraded-stalled-priority-class-not-found': 'Failed', // demanded: Stalled
  'degraded-stalled-service-account-not-found': 'Failed', // demanded: Stalled
  'degraded-stalled-pod-reference-forbidden': 'Failed', // demanded: Stalled
  'degraded-stalled-finalizer-refused': 'Failed', // demanded: Stalled
};

const cluster = useCluster(test);
let all: Situation[] = [];
/** Each situation's Connector as read back from the API server. */
const live = new Map<string, Connector>();
let verdicts = new Map<string, KstatusResult>();

test.serial.before(async () => {
  const { kc } = cluster();
  all = await situations();
  await installCrds(kc);
  const namespace = await createTestNamespace(kc, 'kstatus');
  const api = kc.makeApiClient(CustomObjectsApi);
  const ref = { group: GROUP, version: VERSION, namespace, plural: PLURAL };
  // The operator's own writer: server-side apply of the status subresource, its field manager.
  const writer = new KubeWriter({ kc, logger: silentLogger(), metrics: createOperatorMetrics() });
  await Promise.all(
    all.map(async (situation) => {
      const name = situation.file;
      const written = situation.connector;
      await api.createNamespacedCustomObject({
        ...ref,
        body: {
          apiVersion: 'vaultpam.io/v1alpha1',
          kind: 'Connector',
          metadata: { name, namespace, ...(situation.deleting ? { finalizers: [FINALIZER] } : {}) },
          // The spec the status was computed from (generation 1); a later change comes below.
          spec: situation.specChangedAfterStatus ? specBefore(written) : written.spec,
        },
      });
      // Deleting first: the operator writes the Terminating status once it sees the deletion.
      if (situation.deleting) await api.deleteNamespacedCustomObject({ ...ref, name });
      if (written.status)
        await writer.applyStatus(RESOURCE_TYPES.connector, { namespace, name }, written.status);
      if (situation.specChangedAfterStatus)
        await api.patchNamespacedCustomObject(
          { ...ref, name, body: { spec: written.spec } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
      live.set(name, (await api.getNamespacedCustomObject({ ...ref, name })) as Connector);
    }),
  );
  const results = await kstatus(all.map((s) => live.get(s.file) as object));
  verdicts = new Map(results.map((r) => [r.name, r]));
});

test.after.always(async () => {
  // Let the namespace go: nothing else removes the finalizer of the deleted Connectors.
  const { kc } = cluster();
  const api = kc.makeApiClient(CustomObjectsApi);
  for (const situation of all.filter((s) => s.deleting)) {
    const object = live.get(situation.file);
    if (!object?.metadata.namespace) continue;
    await api
      .patchNamespacedCustomObject(
        {
          group: GROUP,
          version: VERSION,
          namespace: object.metadata.namespace,
          plural: PLURAL,
          name: situation.file,
          body: { metadata: { finalizers: null } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      )
      .catch(() => undefined);
  }
});

/** The spec before the change a situation makes after the status was written. */
function specBefore(connector: Connector): Connector['spec'] {
  const { enrollment: _changed, ...rest } = connector.spec;
  return rest;
}

test.serial(
  'the API server keeps every status as the operator wrote it, and the generations the situations say',
  (t) => {
    for (const situation of all) {
      const object = live.get(situation.file);
      t.truthy(object, situation.file);
      t.deepEqual(object?.status, situation.connector.status, `${situation.file}: status as written`);
      t.is(
        object?.metadata.generation,
        situation.connector.metadata.generation,
        `${situation.file}: generation`,
      );
      t.is(
        Boolean(object?.metadata.deletionTimestamp),
        Boolean(situation.deleting),
        `${situation.file}: deleting`,
      );
    }
  },
);

test.serial(
  'kstatus: Current when Online, InProgress while reconciling or recovering, Failed when NeedsRecovery under Manual or Stalled',
  (t) => {
    t.deepEqual(
      Object.keys(EXPECTED).sort(),
      all.map((s) => s.file).sort(),
      'every situation has an expectation',
    );
    for (const situation of all) {
      const verdict = verdicts.get(situation.file);
      t.is(verdict?.status, EXPECTED[situation.file], `${situation.file}: ${verdict?.message}`);
    }
    // The rules, read from the objects themselves rather than the table above.
    for (const situation of all) {
      const object = live.get(situation.file);
      const status = object?.status;
      const has = (type: string) => status?.conditions?.some((c) => c.type === type && c.status === 'True');
      const verdict = verdicts.get(situation.file)?.status;
      const observed = status?.observedGeneration === object?.metadata.generation;
      if (situation.deleting || !observed || !status) continue;
      if (has('Stalled')) t.is(verdict, 'Failed', `${situation.file}: Stalled is Failed`);
      else if (has('Reconciling'))
        t.is(verdict, 'InProgress', `${situation.file}: reconciling is InProgress`);
      else if (status.phase === 'Recovering')
        t.is(verdict, 'InProgress', `${situation.file}: recovering is InProgress`);
      if (status.phase === 'NeedsRecovery' && (object?.spec.recovery?.policy ?? 'Manual') === 'Manual')
        t.is(verdict, 'Failed', `${situation.file}: NeedsRecovery under Manual is Failed`);
      // Online and Ready: an Online connector whose Ready is False (its data directory is not durable
      // although durable storage was asked for) is InProgress, as its Ready says.
      if (status.phase === 'Online' && has('Ready') && !has('Reconciling') && !has('Stalled'))
        t.is(verdict, 'Current', `${situation.file}: Online is Current`);
    }
  },
);

test.serial('kstatus names the condition that stalls: the reason and message the operator wrote', (t) => {
  for (const situation of all) {
    const stalled = live.get(situation.file)?.status?.conditions?.find((c) => c.type === 'Stalled');
    const verdict = verdicts.get(situation.file);
    if (verdict?.status !== 'Failed' || !stalled) continue;
    t.is(verdict.message, stalled.message, situation.file);
    t.like(verdict.conditions[0], { type: 'Stalled', status: 'True', reason: stalled.reason });
  }
});

test.serial(
  "Argo CD's check says of the objects read back what health_test.yaml says of their test data",
  async (t) => {
    const tests = (
      yaml.load(await readFile(join(CONNECTOR_CHECK_DIR, 'health_test.yaml'), 'utf8')) as {
        tests: { inputPath: string; healthStatus: { status: string; message: string } }[];
      }
    ).tests;
    const expected = new Map(tests.map((c) => [c.inputPath, c.healthStatus]));
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'kstatus-argocd-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const files = await Promise.all(
      all.map(async (s) => {
        const path = join(dir, `${s.file}.json`);
        await writeFile(path, JSON.stringify(live.get(s.file)));
        return path;
      }),
    );
    const results = await luaHealth(join(CONNECTOR_CHECK_DIR, 'health.lua'), files);
    for (const [i, situation] of all.entries()) {
      // The check reads the status, the spec and metadata.generation and deletionTimestamp, all of
      // which the API server kept as the test data has them: the same health and the same message.
      const want = expected.get(`testdata/${situation.file}.yaml`);
      t.deepEqual({ status: results[i]?.status, message: results[i]?.message }, want, situation.file);
    }
    // Argo CD itself, around the script: a Connector being deleted is Pending deletion.
    const deleting = all.flatMap((s, i) => (s.deleting && files[i] ? [files[i]] : []));
    for (const result of await luaHealth(join(CONNECTOR_CHECK_DIR, 'health.lua'), deleting, {
      resource: true,
    }))
      t.like(result, { status: 'Progressing', message: 'Pending deletion' });
  },
);

test.serial("docs/gitops.md's table says what kstatus says for each case it names", async (t) => {
  const rows = docTable(await gitopsDoc());
  t.true(rows.length >= 8, 'the table was found');
  for (const row of rows)
    t.is<string | undefined, string | undefined>(
      row.kstatus,
      EXPECTED[row.testCase],
      `${row.testCase}: kstatus`,
    );
});
