// The plugin as a person runs it: its own process (node src/bin/kubectl-vaultpam.ts, and once
// through the real kubectl as `kubectl vaultpam`), a kubeconfig, the real API server, the real
// control plane over HTTPS behind a ControlPlane resource, the operator as its ServiceAccount, and
// connector pods really running the agent (the local pod runner). Connectors are brought into the
// runbook's situations for real: healthy (Online), offline (the agent's process stopped: heartbeats
// stop), identity lost (its claim deleted and recreated empty). Set VAULTPAM_PLUGIN_SAMPLES to a
// directory to keep the outputs (docs/kubectl-plugin.md shows them).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { AppsV1Api, CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import test from 'ava';
import { load } from 'js-yaml';
import type { PodRunner } from '../../dev/local-cluster/pod-runner.ts';
import { usableAdminCredential } from '../../src/controlplane/server.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import { createTestNamespace, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { connectors, controlPlaneResources, readyOf } from '../helpers/operator-env.ts';
import { listFiles, PLUGIN, type Run, runPluginProcess, runProcess } from '../helpers/plugin-process.ts';
import { useRunningPods } from '../helpers/running-pods.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';

const cluster = useCluster(test);
const system = useRunningPods(test, cluster);
const root = new URL('../../', import.meta.url).pathname;

let namespace: string;
let work: string;
/** The live token of the adopted connector, for the bundle scan (kept out of the samples). */
let adoptedToken = '';
/** Outputs kept for the documentation: name -> command and output. */
const samples = new Map<string, string>();

/** `kubectl vaultpam ARGS` as its own process, with the admin kubeconfig in KUBECONFIG. */
function plugin(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return runPluginProcess(args, { kubeconfig: cluster().cluster.kubeconfigPath, home: work, env });
}

function keep(name: string, command: string, run: Run): void {
  samples.set(name, `$ ${command}\n${run.stdout}${run.stderr ? run.stderr : ''}`);
}

const spec = (extra: Partial<Connector['spec']> = {}) => ({
  connector: { org: 'acme', endpointId: 'ep-1', allowedNetworks: ['10.0.0.0/8'] },
  controlPlaneRef: { kind: 'ControlPlane' as const, name: 'vaultpam' },
  ...extra,
});

async function onlineConnector(name: string): Promise<Connector> {
  await connectors(cluster().kc).create(namespace, { metadata: { name, namespace }, spec: spec() });
  return system().waitForStatus(
    namespace,
    name,
    `${name} Online and retired`,
    (c) =>
      c.status?.phase === 'Online' &&
      c.status.enrollment?.retired === true &&
      !c.status.enrollment.tokenSecretName,
  );
}

/** The agent's own process: a child of the watchdog whose pid the pod runner reports. */
async function agentPid(runner: PodRunner, pod: string): Promise<number> {
  const watchdog = runner.describePod(namespace, pod)?.pids[0];
  if (watchdog === undefined) throw new Error(`the pod runner runs no process for ${namespace}/${pod}`);
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid !== watchdog) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes('connector.ts')) return Number(entry);
  }
  throw new Error(`no agent process under the watchdog ${watchdog} of ${namespace}/${pod}`);
}

/** A kubeconfig file for a ServiceAccount of the namespace bound to the built-in `view` role. */
async function viewerKubeconfig(): Promise<string> {
  const { kc } = cluster();
  await kc
    .makeApiClient(CoreV1Api)
    .createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'viewer' } } });
  await kc.makeApiClient(RbacAuthorizationV1Api).createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: 'viewer-view' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
      subjects: [{ kind: 'ServiceAccount', name: 'viewer', namespace }],
    },
  });
  const viewer = await cluster().cluster.serviceAccountKubeConfig(namespace, 'viewer');
  const file = join(work, 'viewer.kubeconfig');
  await writeFile(file, viewer.exportConfig(), { mode: 0o600 });
  // The aggregated view role reaches the authorizer a moment after the binding.
  await eventually(async () => (await plugin(['status', '-n', namespace, '--kubeconfig', file])).code === 0, {
    description: 'the viewer may list Connectors',
  });
  return file;
}

test.serial.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'plugin-cluster-'));
  const { env } = system();
  await env.startOperator({ resyncMs: 2_000 });
  const { kc } = cluster();
  namespace = await createTestNamespace(kc, 'plugin');
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespacedSecret({
    namespace,
    body: {
      // Its owner says the credential may go to the ControlPlane's URL (the operator and the plugin
      // send it nowhere else).
      metadata: {
        name: 'vaultpam-admin',
        annotations: { 'vaultpam.io/control-plane-url': env.controlPlane.url },
      },
      stringData: { credential: usableAdminCredential(env.controlPlane) },
    },
  });
  await core.createNamespacedConfigMap({
    namespace,
    body: { metadata: { name: 'vaultpam-ca' }, data: { 'ca.crt': env.controlPlane.caPem } },
  });
  await controlPlaneResources(kc).create(namespace, 'vaultpam', {
    url: env.controlPlane.url,
    caConfigMapRef: { name: 'vaultpam-ca' },
    credentialSecretRef: { name: 'vaultpam-admin' },
  });
  await eventually(
    async () => readyOf(await controlPlaneResources(kc).get(namespace, 'vaultpam'))?.status === 'True',
    { description: 'the ControlPlane is Ready', timeoutMs: 60_000 },
  );
});

test.after.always(async () => {
  const dir = process.env.VAULTPAM_PLUGIN_SAMPLES;
  if (dir) {
    await mkdir(dir, { recursive: true });
    for (const [name, text] of samples) await writeFile(join(dir, `${name}.txt`), text);
  }
  if (work) await rm(work, { recursive: true, force: true });
});

test.serial('healthy: status lists it, reports it whole, diagnose exits 0', async (t) => {
  await onlineConnector('healthy');

  const list = await plugin(['status', '-n', namespace]);
  keep('healthy-list', `kubectl vaultpam status -n ${namespace}`, list);
  t.is(list.code, 0, list.stderr);
  t.regex(list.stdout, /^NAME\s+PHASE\s+MODE\s+LAST HEARTBEAT\s+TOKEN EXPIRY\s+DIAGNOSIS\s+RECOVERY\s+AGE$/m);
  t.regex(list.stdout, /^healthy\s+Online\s+Autonomous\s+arriving\s+retired\s+-\s+-\s+\d+s$/m);

  const all = await plugin(['status', '-A', '-o', 'json']);
  t.is(all.code, 0, all.stderr);
  const items = (
    JSON.parse(all.stdout) as { items: Array<{ namespace: string; name: string; phase: string }> }
  ).items;
  t.like(
    items.find((i) => i.namespace === namespace && i.name === 'healthy'),
    { phase: 'Online' },
  );

  const one = await plugin(['status', 'healthy', '-n', namespace]);
  keep('healthy-status', `kubectl vaultpam status healthy -n ${namespace}`, one);
  t.is(one.code, 0, one.stderr);
  t.regex(one.stdout, /^ {2}Phase: {14}Online$/m);
  t.regex(one.stdout, /^ {2}Token: {14}retired$/m);
  t.regex(one.stdout, /^ {2}Ready\s+True\s+Ready\s+\d+s/m, 'conditions with their ages');
  t.regex(one.stdout, /StatefulSet\s+healthy\s+1\/1 ready/);
  t.regex(
    one.stdout,
    /PersistentVolumeClaim\s+data-healthy-0\s+Bound, UID \S+ \(the one the identity is on\)/,
  );
  t.regex(one.stdout, /Secret\s+healthy-enrollment-token\s+none: deleted once bootstrap retired/);
  t.regex(one.stdout, /Name: {15}healthy-0 on /);
  t.regex(one.stdout, /Agent: {14}running, ready, 0 restart\(s\)/);
  t.regex(one.stdout, /State: {14}online/);
  t.regex(one.stdout, /Certificate: {8}serial [0-9a-f]+, expires \S+ \(in \S+\)/);
  t.regex(one.stdout, /endpoint\.enrolled/);
  t.regex(one.stdout, /endpoint\.bootstrap_retired/);

  const yaml = await plugin(['status', 'healthy', '-n', namespace, '-o', 'yaml']);
  t.is(yaml.code, 0, yaml.stderr);
  const report = load(yaml.stdout) as { summary: { phase: string }; controlPlane: { state: string } };
  t.is(report.summary.phase, 'Online');
  t.is(report.controlPlane.state, 'online');

  const diagnose = await plugin(['diagnose', 'healthy', '-n', namespace]);
  keep('healthy-diagnose', `kubectl vaultpam diagnose healthy -n ${namespace}; echo "exit $?"`, {
    ...diagnose,
    stdout: `${diagnose.stdout}exit ${diagnose.code}\n`,
  });
  t.is(diagnose.code, 0, diagnose.stdout + diagnose.stderr);
  t.regex(diagnose.stdout, /Healthy: Online, and every check passed\./);
  t.is((diagnose.stdout.match(/^\[ok\]/gm) ?? []).length, 6, diagnose.stdout);

  const refused = await plugin(['recover', 'healthy', '-n', namespace]);
  t.is(refused.code, 1);
  t.regex(
    refused.stderr,
    /^error: no recovery asked for .*\/healthy: no recovery is needed: the connector is Online/,
  );
  const token = await plugin(['token', 'healthy', '-n', namespace]);
  t.is(token.code, 1);
  t.regex(token.stderr, /the operator owns the workload .* token is for adopted workloads/);
});

test.serial(
  'offline: the agent stops beating, status and diagnose say Offline, Reconnect, and why not recover',
  async (t) => {
    await onlineConnector('offline');
    const { runner } = system();
    const pid = await agentPid(runner, 'offline-0');
    process.kill(pid, 'SIGSTOP');
    let continued = false;
    t.teardown(() => {
      if (!continued) process.kill(pid, 'SIGCONT');
    });
    await system().waitForStatus(namespace, 'offline', 'Offline', (c) => c.status?.phase === 'Offline');

    const list = await plugin(['status', '-n', namespace]);
    keep('offline-list', `kubectl vaultpam status -n ${namespace}`, list);
    t.regex(list.stdout, /^offline\s+Offline\s+Autonomous\s+\S+\s+retired\s+Reconnect\s+-/m);
    const one = await plugin(['status', 'offline', '-n', namespace]);
    keep('offline-status', `kubectl vaultpam status offline -n ${namespace}`, one);
    t.regex(one.stdout, /Failure class: {6}Reconnect/);
    t.regex(one.stdout, /State: {14}offline/);
    const diagnose = await plugin(['diagnose', 'offline', '-n', namespace]);
    keep('offline-diagnose', `kubectl vaultpam diagnose offline -n ${namespace}; echo "exit $?"`, {
      ...diagnose,
      stdout: `${diagnose.stdout}exit ${diagnose.code}\n`,
    });
    t.is(diagnose.code, 1, diagnose.stdout);
    t.regex(diagnose.stdout, /\[FAILED\] 5\. Failure class\n\s+Reconnect: /);
    t.regex(diagnose.stdout, /\[ok\] {5}4\. Durable storage intact/);
    t.regex(diagnose.stdout, /Not healthy: phase Offline, \d+ check\(s\) failed\. Next step: /);

    const json = await plugin(['diagnose', 'offline', '-n', namespace, '-o', 'json']);
    t.is(json.code, 1);
    t.like(JSON.parse(json.stdout), { healthy: false, phase: 'Offline' });

    const recover = await plugin(['recover', 'offline', '-n', namespace]);
    t.is(recover.code, 1);
    t.regex(recover.stderr, /identity intact \(Reconnect\), and a recovery would replace a working identity/);

    process.kill(pid, 'SIGCONT');
    continued = true;
    await system().waitForStatus(namespace, 'offline', 'Online again', (c) => c.status?.phase === 'Online');
    t.is((await plugin(['diagnose', 'offline', '-n', namespace])).code, 0);
  },
);

test.serial(
  'identity lost: diagnosed with the claim replaced; recover --dry-run changes nothing, recover follows it to the evidence',
  async (t) => {
    const before = await onlineConnector('lost');
    const { kc } = cluster();
    const core = kc.makeApiClient(CoreV1Api);
    await core.deleteNamespacedPersistentVolumeClaim({ namespace, name: 'data-lost-0' });
    await core.deleteNamespacedPod({ namespace, name: 'lost-0' });
    await system().waitForStatus(
      namespace,
      'lost',
      'NeedsRecovery with IdentityLoss',
      (c) => c.status?.phase === 'NeedsRecovery' && c.status.diagnosis?.failureClass === 'IdentityLoss',
    );
    // The pod on the new claim, for the claim check to compare.
    await eventually(
      async () =>
        (await core.readNamespacedPersistentVolumeClaim({ namespace, name: 'data-lost-0' })).metadata?.uid,
    );

    const list = await plugin(['status', '-n', namespace]);
    keep('lost-list', `kubectl vaultpam status -n ${namespace}`, list);
    t.regex(list.stdout, /^lost\s+NeedsRecovery\s+GuidedRecovery\s+\S+\s+retired\s+IdentityLoss\s+-/m);
    const one = await plugin(['status', 'lost', '-n', namespace]);
    keep('lost-status', `kubectl vaultpam status lost -n ${namespace}`, one);
    t.regex(one.stdout, /Failure class: {6}IdentityLoss/);
    t.regex(one.stdout, /Next step: {10}.*spec\.recovery\.requestId/);
    const diagnose = await plugin(['diagnose', 'lost', '-n', namespace]);
    keep('lost-diagnose', `kubectl vaultpam diagnose lost -n ${namespace}; echo "exit $?"`, {
      ...diagnose,
      stdout: `${diagnose.stdout}exit ${diagnose.code}\n`,
    });
    t.is(diagnose.code, 1);
    t.regex(diagnose.stdout, /\[FAILED\] 4\. Durable storage intact, the same claim as at pairing/);
    t.regex(diagnose.stdout, /\[FAILED\] 5\. Failure class\n\s+IdentityLoss: /);

    // A person with the view role: sees what the cluster shows, is told why the control plane is
    // left out, and cannot ask for a recovery.
    const viewer = await viewerKubeconfig();
    const seen = await plugin(['status', 'lost', '-n', namespace, '--kubeconfig', viewer]);
    keep(
      'viewer-status',
      `kubectl vaultpam status lost -n ${namespace}   # as a user with the view role`,
      seen,
    );
    t.is(seen.code, 0, seen.stderr);
    t.regex(
      seen.stdout,
      /Not asked: {10}you may not read the credential Secret .*\/vaultpam-admin \(HTTP 403/,
    );
    t.regex(seen.stdout, /Failure class: {6}IdentityLoss/);
    const viewerDiagnose = await plugin(['diagnose', 'lost', '-n', namespace, '--kubeconfig', viewer]);
    t.is(viewerDiagnose.code, 1);
    t.regex(viewerDiagnose.stdout, /not asked from here: you may not read the credential Secret/);
    const viewerRecover = await plugin([
      'recover',
      'lost',
      '-n',
      namespace,
      '--kubeconfig',
      viewer,
      '--dry-run',
    ]);
    t.is(viewerRecover.code, 3);
    t.regex(
      viewerRecover.stderr,
      /cannot set spec\.recovery\.requestId on Connector .*\/lost \(dry run\): HTTP 403/,
    );

    const dry = await plugin(['recover', 'lost', '-n', namespace, '--request-id', 'incident-7', '--dry-run']);
    keep(
      'lost-recover-dry-run',
      `kubectl vaultpam recover lost -n ${namespace} --request-id incident-7 --dry-run`,
      dry,
    );
    t.is(dry.code, 0, dry.stderr);
    t.regex(dry.stdout, /the API server accepts the change \(dry run; nothing stored\)/);
    t.regex(dry.stdout, /the control plane would begin it \(its dry run answered: state \w+\)/);
    const untouched = await connectors(kc).get(namespace, 'lost');
    t.is(untouched.spec.recovery?.requestId, undefined, 'a dry run stores nothing');

    const recover = await plugin(['recover', 'lost', '-n', namespace, '--request-id', 'incident-7']);
    keep('lost-recover', `kubectl vaultpam recover lost -n ${namespace} --request-id incident-7`, recover);
    t.is(recover.code, 0, recover.stdout + recover.stderr);
    t.regex(recover.stdout, /Asked for guided recovery incident-7/);
    t.regex(recover.stdout, /\[\+\s*\S+\] 6\/10 TokenMinted/);
    t.regex(recover.stdout, /Events:\n.*guided recovery incident-7 requested/);
    t.regex(recover.stdout, /\[\+\s*\S+\] 10\/10 Completed/);
    t.regex(recover.stdout, /Recovery incident-7 completed in /);
    t.regex(recover.stdout, /Phase: {15}NeedsRecovery -> Online/);
    t.regex(recover.stdout, /Control plane state: \w+ -> online/);
    t.regex(recover.stdout, /endpoint\.enrolled/);
    const after = await connectors(kc).get(namespace, 'lost');
    t.is(after.spec.recovery?.requestId, 'incident-7');
    t.is(after.status?.phase, 'Online');
    t.not(after.status?.identity?.certificateSerial, before.status?.identity?.certificateSerial);

    const again = await plugin(['recover', 'lost', '-n', namespace, '--request-id', 'incident-7']);
    t.is(again.code, 1);
    t.regex(again.stderr, /request id incident-7 was handled before/);
  },
);

test.serial(
  'token: an adopted workload gets the live token the operator minted, on stdout alone',
  async (t) => {
    const { kc } = cluster();
    const { env } = system();
    // The adopted workload, consenting, at zero replicas: its agent would be started by hand.
    await kc.makeApiClient(AppsV1Api).createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: 'legacy', labels: { 'vaultpam.io/adopted-by': 'adopted' } },
        spec: {
          replicas: 0,
          selector: { matchLabels: { app: 'legacy-connector' } },
          template: {
            metadata: { labels: { app: 'legacy-connector' } },
            spec: { containers: [{ name: 'connector', image: 'vaultpam-connector:test' }] },
          },
        },
      },
    });
    await connectors(kc).create(namespace, {
      metadata: { name: 'adopted', namespace },
      spec: spec({ workloadRef: { kind: 'Deployment', name: 'legacy' } }),
    });
    await system().waitForStatus(namespace, 'adopted', 'token minted', (c) =>
      Boolean(c.status?.enrollment?.tokenSecretName),
    );
    const connectorId = `${namespace}.adopted`;
    const mintsBefore = (await env.admin.audit({ connectorId })).filter(
      (e) => e.type === 'token.minted',
    ).length;
    const secret = await kc
      .makeApiClient(CoreV1Api)
      .readNamespacedSecret({ namespace, name: 'adopted-enrollment-token' });
    const operatorToken = Buffer.from(secret.data?.token ?? '', 'base64').toString();

    const run = await plugin(['token', 'adopted', '-n', namespace]);
    keep('adopted-token', `kubectl vaultpam token adopted -n ${namespace} > token`, { ...run, stdout: '' });
    t.is(run.code, 0, run.stderr);
    t.is(run.stdout, `${operatorToken}\n`, "the live token of the operator's key, on stdout alone");
    t.false(run.stderr.includes(operatorToken), 'never on stderr');
    t.regex(
      run.stderr,
      /The live enrollment token of connector .* \(mint key enroll-[0-9a-f-]+-1\), single use, expires /,
    );
    t.regex(run.stderr, /It is the live token, also in Secret adopted-enrollment-token/);
    const mintsAfter = (await env.admin.audit({ connectorId })).filter(
      (e) => e.type === 'token.minted',
    ).length;
    t.is(mintsAfter, mintsBefore, 'no second token: the operator and the plugin hold the same one');
    const json = await plugin(['token', 'adopted', '-n', namespace, '-o', 'json']);
    t.like(JSON.parse(json.stdout), { connectorId, token: operatorToken });

    // The bundle of a connector holding a live token, scanned below with the other secrets.
    const bundle = join(work, 'adopted.tar.gz');
    const report = await plugin(['report', 'adopted', '-n', namespace, '-f', bundle]);
    t.is(report.code, 0, report.stderr);
    adoptedToken = operatorToken;
  },
);

test.serial(
  'report: one .tar.gz with status, Events, objects, logs and audit, holding no token, credential or key',
  async (t) => {
    const { env, root: podRoot } = system();
    const bundle = join(work, 'healthy.tar.gz');
    const run = await plugin(['report', 'healthy', '-n', namespace, '-f', bundle]);
    keep('healthy-report', `kubectl vaultpam report healthy -n ${namespace} -f healthy.tar.gz`, run);
    t.is(run.code, 0, run.stderr);
    t.regex(run.stdout, /^Wrote .*healthy\.tar\.gz: \d+ files/);
    const out = join(work, 'extracted');
    await mkdir(out, { recursive: true });
    for (const file of [bundle, join(work, 'adopted.tar.gz')]) {
      const extracted = await runProcess('tar', ['-xzf', file, '-C', out], { PATH: process.env.PATH }, work);
      t.is(extracted.code, 0, extracted.stderr);
    }
    const tops = await readdir(out);
    const healthyTop = tops.find((d) => d.includes('-healthy-'));
    t.truthy(healthyTop);
    const files = await listFiles(join(out, healthyTop ?? ''));
    for (const expected of [
      'README.txt',
      'status.txt',
      'status.json',
      'diagnose.txt',
      'events.txt',
      'connector.yaml',
      'control-plane/record.json',
      'control-plane/audit.json',
      'objects/statefulset-healthy.yaml',
      'objects/pod-healthy-0.yaml',
    ]) {
      t.true(files.includes(expected), `${expected} in ${files.join(', ')}`);
    }
    const readme = await readFile(join(out, healthyTop ?? '', 'README.txt'), 'utf8');
    keep('healthy-report-readme', `tar -xzOf healthy.tar.gz --wildcards '*/README.txt'`, {
      code: 0,
      stdout: readme,
      stderr: '',
    });
    // Retired: the operator deleted the token Secret, so the bundle says there is none.
    t.regex(
      readme,
      /No live enrollment token Secret \(status\.enrollment\.tokenSecretName is empty: bootstrap is retired/,
    );
    t.false(readme.includes('never collected: it holds the live enrollment token'));
    const adoptedTop = tops.find((d) => d.includes('-adopted-'));
    t.regex(
      await readFile(join(out, adoptedTop ?? '', 'README.txt'), 'utf8'),
      /Secret adopted-enrollment-token \(never collected: it holds the live enrollment token, until /,
    );
    const nosuch = await plugin(['status', 'nosuch', '-n', namespace]);
    t.is(nosuch.code, 1, 'a Connector that does not exist is an answer, not "could not look"');
    t.regex(nosuch.stderr, new RegExp(`^error: connector ${namespace}/nosuch not found`));
    t.regex(
      readme,
      /operator logs \(no operator pod \(app.kubernetes.io\/name=vaultpam-connector-operator\) in namespace vaultpam-system/,
    );
    t.regex(
      await readFile(join(out, healthyTop ?? '', 'control-plane/audit.json'), 'utf8'),
      /endpoint\.enrolled/,
    );

    // Every secret of this run: the admin credential, the live token of the adopted connector, and
    // every private key the agents wrote to their claims.
    const keys: string[] = [];
    for (const file of await listFiles(podRoot)) {
      const text = await readFile(join(podRoot, file), 'utf8').catch(() => '');
      if (text.includes('PRIVATE KEY')) keys.push(text);
    }
    t.true(keys.length > 0, 'the agents wrote private keys to scan for');
    t.true(adoptedToken.startsWith('vpe_'), 'the token test ran first');
    const secrets = [usableAdminCredential(env.controlPlane), adoptedToken, ...keys];
    let everything = '';
    for (const top of tops) {
      for (const file of await listFiles(join(out, top)))
        everything += await readFile(join(out, top, file), 'utf8');
    }
    t.true(everything.length > 1000);
    assertNoSecrets(t, 'the report bundles', everything, secrets);
  },
);

test.serial('as a kubectl plugin: kubectl finds kubectl-vaultpam on the PATH and runs it', async (t) => {
  // A first build of kubectl (tools/kubectl/build.sh, cached outside the repository) takes minutes.
  t.timeout(25 * 60_000);
  const bin = join(work, 'bin');
  await mkdir(bin, { recursive: true });
  await symlink(PLUGIN, join(bin, 'kubectl-vaultpam'));
  // The plugin's #!/usr/bin/env node finds the project's Node first, as under npx.
  const path = [bin, dirname(process.execPath), process.env.PATH].join(':');
  const env = { PATH: path, HOME: work, KUBECONFIG: cluster().cluster.kubeconfigPath };
  const build = join(root, 'tools/kubectl/build.sh');
  if (existsSync(build)) {
    const built = await runProcess('bash', [build], { ...process.env, PATH: process.env.PATH }, work);
    t.is(built.code, 0, built.stderr.slice(-2000));
    const kubectl = join(built.stdout.trim().split('\n').at(-1) ?? '', 'kubectl');
    const listed = await runProcess(kubectl, ['plugin', 'list'], env, work);
    t.regex(listed.stdout, /kubectl-vaultpam/);
    const run = await runProcess(kubectl, ['vaultpam', 'status', '-n', namespace], env, work);
    keep('kubectl-plugin', `kubectl vaultpam status -n ${namespace}`, run);
    t.is(run.code, 0, run.stderr);
    t.regex(run.stdout, /^healthy\s+Online\s+Autonomous/m);
    // kubectl refuses its flags before a plugin's name and hands over everything after it, so the
    // plugin takes them there, before or after its command.
    const before = await runProcess(kubectl, ['--namespace', namespace, 'vaultpam', 'status'], env, work);
    t.regex(before.stderr, /flags cannot be placed before plugin name/);
    const flagsFirst = await runProcess(
      kubectl,
      ['vaultpam', '--namespace', namespace, 'diagnose', 'healthy'],
      env,
      work,
    );
    t.is(flagsFirst.code, 0, flagsFirst.stdout + flagsFirst.stderr);
    const help = await runProcess(kubectl, ['vaultpam', '--help'], env, work);
    t.regex(help.stdout, /^Usage: kubectl vaultpam COMMAND/);
  } else {
    t.log('tools/kubectl/build.sh is not there: running the plugin by its name on the PATH instead');
    const run = await runProcess('kubectl-vaultpam', ['status', '-n', namespace], env, work);
    t.is(run.code, 0, run.stderr);
    t.regex(run.stdout, /^healthy\s+Online\s+Autonomous/m);
  }
  const context = await runProcess(
    'kubectl-vaultpam',
    ['status', '-n', namespace, '--context', 'nope'],
    env,
    work,
  );
  t.is(context.code, 3);
  t.regex(context.stderr, /--context: no context "nope" in the kubeconfig; it has /);
});
