#!/usr/bin/env node
// `npm start`: the whole system on this machine, on its embedded defaults. A real Kubernetes control
// plane (etcd, kube-apiserver, kube-controller-manager) on loopback with the CRD and the operator's
// RBAC installed; the reference control plane over HTTPS; the operator running as its
// ServiceAccount; the local pod runner standing in for kubelet; and a sample Connector that pairs and
// goes Online. It prints the Connector's row (some of `kubectl get connectors -o wide`'s columns)
// and keeps running until Ctrl-C
// (or, with --exit-when-online, stops once the Connector is Online). The first run builds the
// Kubernetes binaries and a matching kubectl from Go modules and says what it builds meanwhile; at
// the end it prints the kubectl commands that work against this system (kubeconfig, kubectl and the
// kubectl-vaultpam plugin included) and prepares manifests/samples/ so each sample applies as is.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { stopOnSignalOrOrphaned } from '../../src/bin/shutdown.ts';
import {
  type StartedControlPlane,
  startControlPlane,
  usableAdminCredential,
} from '../../src/controlplane/server.ts';
import { type FlagSpecs, flagError, helpText, parseFlags } from '../../src/lib/cli.ts';
import { CodedError, errorMessage } from '../../src/lib/errors.ts';
import { createLogger, isLogLevel } from '../../src/lib/logger.ts';
import type { Connector } from '../../src/operator/api/types.ts';
import { type RunningOperator, startOperator } from '../../src/operator/operator.ts';
import { buildReportingProgress, describeLocalRunBuild } from '../local-cluster/binaries.ts';
import { listWords } from '../local-cluster/build-progress.ts';
import { type LocalCluster, startLocalCluster } from '../local-cluster/cluster.ts';
import { installCrds, installOperatorAccess } from '../local-cluster/install.ts';
import {
  type PreparedSamples,
  prepareSamples,
  SAMPLE_CONTROL_PLANE_URL,
} from '../local-cluster/local-samples.ts';
import { PodRunner } from '../local-cluster/pod-runner.ts';
import { signalAllManaged } from '../local-cluster/processes.ts';
import { shellWord, writeToolBin } from '../local-cluster/tool-bin.ts';
import { readableDestination } from './readable-log.ts';

const flags: FlagSpecs = {
  'work-dir': {
    env: 'VAULTPAM_LOCAL_DIR',
    description: 'Where state, logs and kubeconfig go (kept after stop); a temporary directory when empty.',
  },
  'exit-when-online': {
    boolean: true,
    description: 'Stop everything and exit 0 once the sample Connector is Online.',
  },
  timeout: {
    default: '300',
    description: 'Seconds to wait for the sample Connector to go Online before giving up (exit 1).',
  },
  'log-level': {
    env: 'LOG_LEVEL',
    default: 'warn',
    description: 'Log level of the components (the progress lines are always printed).',
  },
  'log-format': {
    env: 'LOG_FORMAT',
    default: 'text',
    description:
      "How the components' log lines are printed: text (one readable line each) or json (as the programs write them).",
  },
};

const OPERATOR_NAMESPACE = 'vaultpam-system';
const DEMO_NAMESPACE = 'vaultpam-demo';
const CREDENTIAL_SECRET = 'vaultpam-operator-credential';
/** Bound of each stop step (the cluster bounds each of its components itself). */
const STEP_TIMEOUT_MS = 10_000;

/** The sample Connector: durable storage (a claim the local provisioner binds), the operator's control plane. */
const sample = (): Omit<Connector, 'status'> => ({
  apiVersion: 'vaultpam.io/v1alpha1',
  kind: 'Connector',
  metadata: { name: 'dc1-connector', namespace: DEMO_NAMESPACE },
  spec: {
    connector: { org: 'acme', endpointId: 'dc1-linux-fleet', allowedNetworks: ['10.20.0.0/16'] },
    image: 'vaultpam-connector:local',
    storage: { size: '1Gi' },
    enrollment: { tokenTTL: '1h' },
    recovery: { policy: 'Manual' },
  },
});

const say = (line: string) => process.stdout.write(`${line}\n`);

function table(c: Connector): string {
  const s = c.status ?? {};
  const rows = [
    ['NAME', 'PHASE', 'READY', 'MODE', 'LAST HEARTBEAT', 'CONNECTOR ID'],
    [
      c.metadata.name ?? '',
      s.phase ?? '',
      s.conditions?.find((condition) => condition.type === 'Ready')?.status ?? '',
      s.mode ?? '',
      s.lastHeartbeatTime ?? '',
      s.connectorId ?? '',
    ],
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd((widths[i] ?? 0) + 3))
        .join('')
        .trimEnd(),
    )
    .join('\n');
}

/** Where the plugin finds the operator's default control plane: none of it is a secret value. */
interface PluginControlPlane {
  url: string;
  caFile: string;
  /** <namespace>/<name> of the credential Secret, which the plugin reads with the kubeconfig's rights. */
  credentialSecret: string;
}

/** What to type next: the kubectl commands that work against this run, and the samples. */
function howToLook(options: {
  kubeconfig: string;
  binDir: string;
  samples: PreparedSamples;
  controlPlane: PluginControlPlane;
}): string[] {
  // The sample uses the operator's default control plane, which the plugin cannot find from the
  // cluster: the plugin's own variables (src/plugin/options.ts) tell it, as the operator's flags do.
  const cp = options.controlPlane;
  const env = [
    `KUBECONFIG=${shellWord(options.kubeconfig)}`,
    `PATH=${shellWord(options.binDir)}:$PATH`,
    `VAULTPAM_CONTROL_PLANE_URL=${shellWord(cp.url)}`,
    `VAULTPAM_CONTROL_PLANE_CA_FILE=${shellWord(cp.caFile)}`,
    `VAULTPAM_CREDENTIAL_SECRET=${shellWord(cp.credentialSecret)}`,
  ].join(' ');
  return [
    `kubectl (built to match this cluster) and the kubectl-vaultpam plugin are in ${options.binDir}:`,
    `    ${env} kubectl get connectors -A`,
    `    ${env} kubectl vaultpam status -A`,
    `    ${env} kubectl vaultpam status dc1-connector -n ${DEMO_NAMESPACE}`,
    'or, for this shell:',
    `    export ${env}`,
    'Samples: each Connector sample in manifests/samples/ applies as it is, e.g.',
    '    kubectl apply -f manifests/samples/connector.yaml',
    `The namespace ${listWords(options.samples.namespaces)} and the CA ConfigMaps and credential Secrets the samples name exist,`,
    `and ${listWords(options.samples.controlPlanes)} point at this control plane.`,
    `Every sample with this control plane's URL in place of ${SAMPLE_CONTROL_PLANE_URL}: ${options.samples.dir}/`,
  ];
}

async function main(): Promise<number> {
  const parsed = parseFlags(process.argv.slice(2), flags, process.env);
  if (parsed.help) {
    say(
      helpText(
        'vaultpam-local-run',
        'Runs the whole system locally and brings a sample Connector Online.',
        flags,
      ),
    );
    return 0;
  }
  const level = parsed.values['log-level'] ?? 'warn';
  if (!isLogLevel(level)) throw flagError(`--log-level: unknown level "${level}"`);
  const timeoutSeconds = Number(parsed.values.timeout);
  if (!(timeoutSeconds > 0))
    throw flagError(`--timeout: "${parsed.values.timeout}" must be a positive number of seconds`);
  const format = parsed.values['log-format'] ?? 'text';
  if (format !== 'text' && format !== 'json')
    throw flagError(`--log-format: unknown format "${format}"; use text or json`);
  const logger = createLogger({
    name: 'local-run',
    level,
    ...(format === 'text' ? { destination: readableDestination() } : {}),
  });
  const given = parsed.values['work-dir'];
  const workDir = given ?? (await mkdtemp(join(tmpdir(), 'vaultpam-local-')));
  await mkdir(workDir, { recursive: true });

  // What runs, stopped in dependency order: the operator and the pod runner (they use the API
  // server and the control plane), the control plane, then the cluster (controller-manager,
  // kube-apiserver, etcd). Each step is bounded; past its bound it is reported and skipped, and
  // whatever is left is killed with SIGKILL when this process exits (ManagedProcess's exit hook).
  let operator: RunningOperator | undefined;
  let runner: PodRunner | undefined;
  let controlPlane: StartedControlPlane | undefined;
  let cluster: LocalCluster | undefined;
  let stopping: Promise<void> | undefined;
  const step = async (what: string, stop: () => Promise<void>) => {
    say(`stopping ${what}…`);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      stop().then(
        () => 'stopped' as const,
        (error: unknown) => {
          say(`    stopping ${what} failed: ${errorMessage(error)}`);
          return 'failed' as const;
        },
      ),
      new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), STEP_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (outcome === 'late')
      say(`    ${what} did not stop within ${STEP_TIMEOUT_MS / 1000} s; moving on (it is killed on exit)`);
  };
  const stopAll = () => {
    stopping ??= (async () => {
      const [op, pods, cp, running] = [operator, runner, controlPlane, cluster];
      if (op) await step('the operator', () => op.stop());
      if (pods) await step('the local pod runner', () => pods.stop());
      if (cp) await step('the reference control plane', () => cp.close());
      if (running) {
        // The cluster bounds each component itself (SIGTERM, SIGKILL after 5 s) and names it.
        await running
          .stop({ graceMs: 5_000, onStopping: (component) => say(`stopping ${component}…`) })
          .catch((error: unknown) => say(`    stopping the cluster failed: ${errorMessage(error)}`));
      }
      // Anything a late step left running (its process group) goes now.
      signalAllManaged('SIGKILL');
      if (!given) await rm(workDir, { recursive: true, force: true });
      say('stopped');
    })();
    return stopping;
  };
  let signalled = false;
  stopOnSignalOrOrphaned(
    async () => {
      signalled = true;
      say('stopping (Ctrl-C again to kill everything at once)…');
      await stopAll();
    },
    process.exit,
    {
      onRepeat: () => {
        say('killing every process now');
        signalAllManaged('SIGKILL');
        process.exit(130);
      },
    },
  );

  try {
    say('1/5 starting a local Kubernetes control plane');
    const [, kubectlDir = ''] = await buildReportingProgress({
      say,
      heading:
        `    the first run builds ${describeLocalRunBuild()} from Go modules, once: ` +
        'about 12 minutes on 2 cores; later runs start in seconds',
    });
    const binDir = join(workDir, 'bin');
    await writeToolBin(binDir, { kubectl: join(kubectlDir, 'kubectl') });
    cluster = await startLocalCluster({
      workDir: join(workDir, 'cluster'),
      removeOnStop: false,
      onProgress: (line) => logger.info(line),
    });
    const kc = cluster.adminKubeConfig();
    await installCrds(kc);
    await installOperatorAccess(kc);
    say(`    kube-apiserver ${cluster.server}; kubeconfig ${cluster.kubeconfigPath}`);

    say('2/5 starting the reference control plane');
    controlPlane = await startControlPlane({
      dataDir: join(workDir, 'control-plane'),
      host: '127.0.0.1',
      port: 0,
      logger: logger.child({ component: 'control-plane' }),
    });
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedSecret({
      namespace: OPERATOR_NAMESPACE,
      body: {
        metadata: { name: CREDENTIAL_SECRET },
        stringData: { credential: usableAdminCredential(controlPlane) },
      },
    });
    const caFile = join(workDir, 'control-plane-ca.crt');
    await writeFile(caFile, controlPlane.caPem);
    say(`    ${controlPlane.url} (CA ${controlPlane.caPath})`);

    say('3/5 starting the operator as its ServiceAccount (least RBAC from manifests/)');
    const operatorKc = await cluster.serviceAccountKubeConfig(
      OPERATOR_NAMESPACE,
      'vaultpam-connector-operator',
      24 * 3600,
    );
    operator = await startOperator({
      kc: operatorKc,
      logger: logger.child({ component: 'operator' }),
      controlPlane: {
        url: controlPlane.url,
        caPem: controlPlane.caPem,
        credentialSecret: { namespace: OPERATOR_NAMESPACE, name: CREDENTIAL_SECRET, key: 'credential' },
      },
      // ClusterControlPlanes keep their Secret here, as in a real install (POD_NAMESPACE).
      clusterResourceNamespace: OPERATOR_NAMESPACE,
      connectorImage: 'vaultpam-connector:local',
      leaderElection: {
        namespace: OPERATOR_NAMESPACE,
        leaseName: 'vaultpam-connector-operator',
        identity: 'local-run',
      },
      listen: { host: '127.0.0.1', port: 0 },
      // A local run on loopback: /metrics without authentication (--metrics-auth=none). An
      // installed operator serves it over HTTPS to authorized bearer tokens only (docs/monitoring.md).
      metricsEndpoint: { listen: { host: '127.0.0.1', port: 0 }, auth: 'none' },
    });
    say(`    probes on http://127.0.0.1:${operator.address?.port}/healthz and /readyz`);
    say(`    metrics on ${operator.metricsEndpoint?.url}/metrics (no authentication: a local run only)`);

    say('4/5 starting the local pod runner (runs connector pods as local processes)');
    runner = new PodRunner({
      kubeConfig: kc,
      rootDir: join(workDir, 'pods'),
      logger: logger.child({ component: 'pod-runner' }),
      baseEnv: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin' },
    });
    await runner.start();

    say(`5/5 applying the sample Connector ${DEMO_NAMESPACE}/dc1-connector`);
    await core.createNamespace({ body: { metadata: { name: DEMO_NAMESPACE } } });
    const api = kc.makeApiClient(CustomObjectsApi);
    const ref = {
      group: 'vaultpam.io',
      version: 'v1alpha1',
      namespace: DEMO_NAMESPACE,
      plural: 'connectors',
    };
    await api.createNamespacedCustomObject({ ...ref, body: sample() });
    const samples = await prepareSamples(kc, {
      controlPlane: {
        url: controlPlane.url,
        caPem: controlPlane.caPem,
        credential: usableAdminCredential(controlPlane),
      },
      clusterResourceNamespace: OPERATOR_NAMESPACE,
      outDir: join(workDir, 'samples'),
    });

    const deadline = Date.now() + timeoutSeconds * 1000;
    let lastPhase = '';
    for (;;) {
      const c = (await api.getNamespacedCustomObject({ ...ref, name: 'dc1-connector' })) as Connector;
      const phase = c.status?.phase ?? 'Pending';
      if (phase !== lastPhase) {
        say(`    phase ${phase}${c.status?.mode ? `, mode ${c.status.mode}` : ''}`);
        lastPhase = phase;
      }
      if (phase === 'Online') {
        say(`\n${table(c)}\n`);
        say(`The sample Connector is Online. kubeconfig: ${cluster.kubeconfigPath}\n`);
        const pluginControlPlane = {
          url: controlPlane.url,
          caFile,
          credentialSecret: `${OPERATOR_NAMESPACE}/${CREDENTIAL_SECRET}`,
        };
        for (const line of howToLook({
          kubeconfig: cluster.kubeconfigPath,
          binDir,
          samples,
          controlPlane: pluginControlPlane,
        }))
          say(line);
        break;
      }
      if (Date.now() > deadline)
        throw new CodedError(
          'TIMEOUT',
          `the sample Connector did not go Online within ${timeoutSeconds} s (last phase ${phase})`,
        );
      await new Promise((done) => setTimeout(done, 500));
    }
    if (parsed.booleans['exit-when-online']) {
      await stopAll();
      return 0;
    }
    say('Everything keeps running; Ctrl-C stops it.');
    return -1;
  } catch (error) {
    await stopAll();
    // A failure caused by the stop itself (a request to a component that just stopped) is no error:
    // the signal handler exits once the stop is done.
    if (signalled) return -1;
    throw error;
  }
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(`vaultpam-local-run: ${errorMessage(error)}\n`);
    process.exit(1);
  },
);
