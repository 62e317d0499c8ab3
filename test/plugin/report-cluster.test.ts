// `kubectl vaultpam report` against the real API server, with what a namespace's users put in its
// way, its bundles read back by the real tar: a pod or claim whose long name the bundle must hold,
// an adopted workload written with its secrets in the open, which the bundle must not hold, and a
// log of one endless line, which it must not read whole. No operator runs here: the report reads
// what the API server has, which is all these tests need.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import test from 'ava';
import { selectorLabels } from '../../src/operator/api/constants.ts';
import { LOG_LIMIT_BYTES } from '../../src/plugin/kube-api.ts';
import { selfSignedCertificate } from '../helpers/certificates.ts';
import { createTestNamespace, installCrds, useCluster } from '../helpers/cluster.ts';
import { eventually } from '../helpers/eventually.ts';
import { connectors } from '../helpers/operator-env.ts';
import { listFiles, type Run, runPluginProcess, runProcess } from '../helpers/plugin-process.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';

const cluster = useCluster(test);

let namespace: string;
let work: string;

test.serial.before(async () => {
  const { kc } = cluster();
  await installCrds(kc);
  namespace = await createTestNamespace(kc, 'report');
  work = await mkdtemp(join(tmpdir(), 'report-cluster-'));
  // Pods are admitted once the ServiceAccount controller has made the namespace's default account.
  await eventually(
    () => kc.makeApiClient(CoreV1Api).readNamespacedServiceAccount({ namespace, name: 'default' }),
    {
      description: `ServiceAccount ${namespace}/default`,
    },
  );
});

test.after.always(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

function plugin(args: string[], cwd?: string): Promise<Run> {
  return runPluginProcess(args, {
    kubeconfig: cluster().cluster.kubeconfigPath,
    home: work,
    ...(cwd ? { cwd } : {}),
  });
}

/** `report NAME` into a file, extracted by the real tar: the bundle's files by their path in it. */
async function reportFiles(t: import('ava').ExecutionContext, name: string): Promise<Map<string, string>> {
  const bundle = join(work, `${name}.tar.gz`);
  const report = await plugin(['report', name, '-n', namespace, '-f', bundle]);
  t.is(report.code, 0, report.stderr);
  const out = join(work, `${name}-extracted`);
  await mkdir(out);
  const extracted = await runProcess('tar', ['-xzf', bundle, '-C', out], { PATH: process.env.PATH }, work);
  t.is(extracted.code, 0, extracted.stderr);
  const [top = ''] = (await listFiles(out)).map((path) => path.split('/')[0] ?? '');
  const files = new Map<string, string>();
  for (const path of await listFiles(join(out, top)))
    files.set(path, await readFile(join(out, top, path), 'utf8'));
  return files;
}

/** A Connector, and a pod with its selector labels (on `node`, when one is named). */
async function connectorWithPod(name: string, pod: string, node?: string): Promise<void> {
  const { kc } = cluster();
  await connectors(kc).create(namespace, {
    metadata: { name, namespace },
    spec: { connector: { org: 'acme', endpointId: 'ep-1' } },
  });
  await kc.makeApiClient(CoreV1Api).createNamespacedPod({
    namespace,
    body: {
      metadata: { name: pod, labels: selectorLabels(name) },
      spec: {
        ...(node ? { nodeName: node } : {}),
        containers: [{ name: 'connector', image: 'vaultpam-connector:test' }],
      },
    },
  });
}

test.serial(
  'long names: a pod and a claim of legal length are in the bundle under their full names',
  async (t) => {
    const { kc } = cluster();
    const core = kc.makeApiClient(CoreV1Api);
    // Anyone who may create a pod in the namespace may give it the Connector's labels: the report
    // collects it, and its name (here 126 characters) must not stop the bundle.
    const pod = `plain-${'a'.repeat(120)}`;
    await connectorWithPod('plain', pod);
    // A person's own claim, named as a DNS subdomain may be (95 characters).
    const claim = `data.${'b'.repeat(90)}`;
    await core.createNamespacedPersistentVolumeClaim({
      namespace,
      body: {
        metadata: { name: claim },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
      },
    });
    await connectors(kc).create(namespace, {
      metadata: { name: 'longclaim', namespace },
      spec: { connector: { org: 'acme', endpointId: 'ep-1' }, storage: { existingClaim: claim } },
    });

    const plain = await reportFiles(t, 'plain');
    t.regex(plain.get(`objects/pod-${pod}.yaml`) ?? '', new RegExp(`name: ${pod}\n`));
    t.regex(plain.get('README.txt') ?? '', new RegExp(`^ {2}objects/pod-${pod}\\.yaml$`, 'm'));
    const longclaim = await reportFiles(t, 'longclaim');
    t.regex(
      longclaim.get(`objects/persistentvolumeclaim-${claim}.yaml`) ?? '',
      new RegExp(`name: ${claim}\n`),
    );

    // A file that cannot be written is named whole in the error: the default name is the bundle's
    // own (here in /proc, where nobody may create a file), not "[REDACTED].tar.gz".
    const unwritable = await plugin(['report', 'plain', '-n', namespace], '/proc');
    t.is(unwritable.code, 3);
    t.regex(
      unwritable.stderr,
      new RegExp(`^error: cannot write vaultpam-report-${namespace}-plain-\\d{8}-\\d{6}\\.tar\\.gz: `),
    );
    t.false(unwritable.stderr.includes('[REDACTED]'), unwritable.stderr);
  },
);

test.serial(
  'an adopted workload: its env values, secret flags and last-applied copy stay out of the bundle',
  async (t) => {
    const { kc } = cluster();
    // What a person's own Deployment holds in the open, as the reviewer found it kept: values on the
    // line after their names, a password as the item after its flag, one in a shell line, and
    // kubectl apply's copy of all of it in an annotation.
    const password = 'Tr0ub4dor&3-horse';
    const awsKey = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    const vaultToken = 'hvs.CAESIJ1abcdefgh';
    const apiKey = 'sk_live_short1234';
    const shellPassword = 'hunter2-in-a-shell-line';
    const headerKey = 'header-api-key-0123';
    const initSecret = 'init-container-secret';
    const secrets = [password, awsKey, vaultToken, apiKey, shellPassword, headerKey, initSecret];
    const podSpec = {
      initContainers: [
        { name: 'migrate', image: 'migrate', env: [{ name: 'MIGRATION_CONN', value: initSecret }] },
      ],
      containers: [
        {
          name: 'connector',
          image: 'vaultpam-connector:test',
          command: [
            'sh',
            '-c',
            `exec agent --db-password ${shellPassword} --token-file /var/run/vaultpam/token`,
          ],
          args: ['--password', password, `--api-key=${apiKey}`, '--verbose'],
          env: [
            { name: 'DB_PASSWORD', value: password },
            { name: 'AWS_SECRET_ACCESS_KEY', value: awsKey },
            { name: 'VAULT_TOKEN', value: vaultToken },
            { name: 'FROM_SECRET', valueFrom: { secretKeyRef: { name: 'db-secret', key: 'password' } } },
          ],
          readinessProbe: {
            httpGet: { path: '/ready', port: 8080, httpHeaders: [{ name: 'X-Api-Key', value: headerKey }] },
          },
        },
      ],
    };
    const deployment = {
      metadata: { name: 'legacy', labels: { 'vaultpam.io/adopted-by': 'adopted' } },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'legacy-connector' } },
        template: { metadata: { labels: { app: 'legacy-connector' } }, spec: podSpec },
      },
    };
    const lastApplied = JSON.stringify({ apiVersion: 'apps/v1', kind: 'Deployment', ...deployment });
    await kc.makeApiClient(AppsV1Api).createNamespacedDeployment({
      namespace,
      body: {
        ...deployment,
        metadata: {
          ...deployment.metadata,
          annotations: { 'kubectl.kubernetes.io/last-applied-configuration': lastApplied, team: 'payments' },
        },
      },
    });
    // Its pod, made from the template by the ReplicaSet controller (no node runs it: it stays Pending).
    const podName = await eventually(
      async () =>
        (
          await kc
            .makeApiClient(CoreV1Api)
            .listNamespacedPod({ namespace, labelSelector: 'app=legacy-connector' })
        ).items[0]?.metadata?.name,
      { description: "the Deployment's pod" },
    );
    await connectors(kc).create(namespace, {
      metadata: { name: 'adopted', namespace },
      spec: {
        connector: { org: 'acme', endpointId: 'ep-1' },
        workloadRef: { kind: 'Deployment', name: 'legacy' },
      },
    });

    const files = await reportFiles(t, 'adopted');
    const workload = files.get('objects/deployment-legacy.yaml') ?? '';
    const pod = files.get(`objects/pod-${podName}.yaml`) ?? '';
    assertNoSecrets(t, 'the bundle', [...files.values()].join('\n'), secrets);
    for (const [what, yaml] of [
      ['the Deployment', workload],
      ['its pod', pod],
    ] as const) {
      t.regex(
        yaml,
        /- name: DB_PASSWORD\n\s+value: '\[REDACTED\]'\n/,
        `${what}: the name stays, the value goes`,
      );
      t.regex(
        yaml,
        /secretKeyRef:\n\s+key: password\n\s+name: db-secret\n/,
        `${what}: valueFrom names, it is kept`,
      );
      t.regex(yaml, /- --password\n\s+- '\[REDACTED\]'\n\s+- --api-key=\[REDACTED\]\n\s+- --verbose\n/, what);
      t.regex(
        yaml,
        /--db-password \[REDACTED\] --token-file \/var\/run\/vaultpam\/token/,
        `${what}: a path stays`,
      );
      t.regex(yaml, /- name: X-Api-Key\n\s+value: '\[REDACTED\]'\n/, what);
      t.regex(yaml, /- name: MIGRATION_CONN\n\s+value: '\[REDACTED\]'\n/, `${what}: init containers too`);
    }
    t.false(workload.includes('last-applied-configuration'), 'the last-applied copy is left out');
    t.regex(workload, /^ {4}team: payments$/m, 'other annotations stay');
    t.regex(
      files.get('README.txt') ?? '',
      /every container env value and HTTP header value is replaced with \[REDACTED\] \(valueFrom,\n.*\ncommand and args \(the word after --password, or after the '=' of such a flag\); the\n/,
      'said whole: the README passes through the redaction too',
    );
  },
);

test.serial(
  'a log of one endless line: the kubelet is asked for at most LOG_LIMIT_BYTES, and the bundle says it is cut',
  async (t) => {
    const { kc } = cluster();
    const core = kc.makeApiClient(CoreV1Api);
    // The test's cluster has no kubelet: this one serves container logs, as the API server asks them
    // of a node (GET /containerLogs/<ns>/<pod>/<container>?<the client's options>), and keeps each
    // query. Its log is what a hostile agent writes: one line longer than the bound, then a last one.
    // It honours limitBytes as the kubelet does (it stops writing there); without it, all is sent.
    const log = `${'x'.repeat(LOG_LIMIT_BYTES + 1024 * 1024)}\nthe last line\n`;
    const asked: URLSearchParams[] = [];
    const { certPem, keyPem } = await selfSignedCertificate({
      commonName: 'report-node',
      sanIps: ['127.0.0.1'],
    });
    const kubelet = createServer({ cert: certPem, key: keyPem }, (request, response) => {
      const url = new URL(request.url ?? '/', 'https://kubelet');
      asked.push(url.searchParams);
      const limit = Number(url.searchParams.get('limitBytes') ?? Number.POSITIVE_INFINITY);
      response.writeHead(200, { 'Content-Type': 'text/plain' });
      response.end(Buffer.from(log).subarray(0, limit));
    });
    await new Promise<void>((resolve) => kubelet.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => kubelet.close(() => resolve())));
    const port = (kubelet.address() as AddressInfo).port;
    // The API server finds a node's kubelet by its Node: the address, and the port it registered.
    // (With no --kubelet-certificate-authority, it does not verify the kubelet's certificate.)
    await core.createNode({
      body: {
        metadata: { name: 'report-node' },
        status: {
          addresses: [{ type: 'InternalIP', address: '127.0.0.1' }],
          daemonEndpoints: { kubeletEndpoint: { Port: port } },
        },
      },
    });
    await connectorWithPod('chatty', 'chatty-0', 'report-node');
    // Running after a restart, as the kubelet would write it: the report reads the log and the previous one.
    await core.patchNamespacedPodStatus(
      {
        namespace,
        name: 'chatty-0',
        body: {
          status: {
            phase: 'Running',
            containerStatuses: [
              {
                name: 'connector',
                image: 'vaultpam-connector:test',
                imageID: '',
                ready: true,
                restartCount: 1,
                state: { running: { startedAt: new Date() } },
              },
            ],
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );

    const files = await reportFiles(t, 'chatty');
    t.deepEqual(
      asked.map((query) => [
        query.get('previous') ?? 'false',
        query.get('limitBytes'),
        query.get('tailLines'),
      ]),
      [
        ['false', String(LOG_LIMIT_BYTES), '500'],
        ['true', String(LOG_LIMIT_BYTES), '500'],
      ],
      'both reads carry limitBytes through the API server to the kubelet',
    );
    for (const path of ['logs/chatty-0/connector.log', 'logs/chatty-0/connector.previous.log']) {
      t.is(Buffer.byteLength(files.get(path) ?? ''), LOG_LIMIT_BYTES, `${path}: the first LOG_LIMIT_BYTES`);
      t.regex(
        files.get('README.txt') ?? '',
        new RegExp(
          `^${path.replaceAll('.', '\\.')}: the .* was cut at ${LOG_LIMIT_BYTES} bytes \\(limitBytes\\)`,
          'm',
        ),
      );
    }
  },
);
