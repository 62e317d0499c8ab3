// `report NAME [-f FILE] [--tail N]`: one .tar.gz for a support ticket: the status report and the
// runbook checks, the Connector, its Events, the objects it owns, the tail of its pod's logs, the
// operator's log lines about it (when the person may read them), and the control plane's record and
// audit entries (when the person may read its credential). What could not be collected is listed
// with the reason. No Secret's data is collected, and every file passes through redactBundleText
// with the credential the plugin read, so the bundle holds no token, credential or key.
import { writeFile } from 'node:fs/promises';
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { errorMessage } from '../../lib/errors.ts';
import { selectorLabels } from '../../operator/api/constants.ts';
import type { Connector } from '../../operator/api/types.ts';
import { childNames } from '../../operator/reconcile/desired-objects.ts';
import { describeApiError } from '../../operator/runtime/api-errors.ts';
import { type ConnectorFacts, gatherFacts } from '../connector-facts.ts';
import { type CommandContext, EXIT, readConnector } from '../context.ts';
import { LOG_LIMIT_BYTES } from '../kube-api.ts';
import { table, toYaml } from '../output.ts';
import { redactBundleText, withoutPlainValues } from '../redaction.ts';
import { runbookChecks } from '../runbook-checks.ts';
import { liveTokenWords, statusReport, statusReportText } from '../status-report.ts';
import { type TarEntry, tarGz } from '../tar-gz.ts';
import { diagnoseText } from './diagnose.ts';

/** The operator's pods, as the shipped Deployment labels them. */
const OPERATOR_SELECTOR = 'app.kubernetes.io/name=vaultpam-connector-operator';
const OPERATOR_CONTAINER = 'operator';
/** Audit entries the bundle takes (`status` shows the newest 20). */
const BUNDLE_AUDIT = 500;

/**
 * An object as YAML without what says nothing to support (managedFields) and without the values a
 * pod spec holds in the open (withoutPlainValues: env and header values, secret-named flags'
 * values, the last-applied copy). An adopted workload is a person's own, written as they wrote it.
 */
function objectYaml(object: { metadata?: V1ObjectMeta } & Record<string, unknown>): string {
  const { managedFields: _fields, ...metadata } = object.metadata ?? {};
  return toYaml(withoutPlainValues({ ...object, metadata }));
}

/**
 * The bundle's name (its file and its top directory): vaultpam-report-<namespace>-<name>-<UTC time>,
 * the time as 20261205-082700. No upper case, as Kubernetes names have none: an error line quotes a
 * file it could not write cleaned as server text is, where a run of 32 characters with upper and
 * lower case and digits reads as a key and is redacted, so with ISO's "T" the name came out as
 * "[REDACTED].tar.gz".
 */
function bundleName(namespace: string, name: string, now: Date): string {
  const [date = '', time = ''] = now.toISOString().slice(0, 19).split('T');
  return `vaultpam-report-${namespace}-${name}-${date.replaceAll('-', '')}-${time.replaceAll(':', '')}`;
}

interface Collector {
  add(path: string, content: string): void;
  missing(what: string, why: string): void;
  /** A line for README.txt about what there was to collect. */
  note(line: string): void;
}

async function collectObjects(ctx: CommandContext, facts: ConnectorFacts, out: Collector): Promise<void> {
  const { connector } = facts;
  const namespace = ctx.namespace;
  out.add('connector.yaml', objectYaml(connector as never));
  if (facts.workload.ok && facts.workload.value?.object) {
    const w = facts.workload.value;
    out.add(`objects/${w.kind.toLowerCase()}-${w.name}.yaml`, objectYaml(w.object as never));
  } else if (!facts.workload.ok) {
    out.missing('the workload', facts.workload.why);
  }
  if (!connector.spec.workloadRef) {
    const name = childNames(connector.metadata.name ?? '').configMap;
    await ctx.api.readConfigMap(namespace, name).then(
      (configMap) => out.add(`objects/configmap-${name}.yaml`, objectYaml(configMap as never)),
      (error: unknown) => out.missing(`ConfigMap ${name}`, describeApiError(error)),
    );
  }
  if (facts.claim?.ok && facts.claim.value) {
    const name = facts.claim.value.name;
    await ctx.api.readClaim(namespace, name).then(
      (claim) => out.add(`objects/persistentvolumeclaim-${name}.yaml`, objectYaml(claim as never)),
      (error: unknown) => out.missing(`PersistentVolumeClaim ${name}`, describeApiError(error)),
    );
  }
  const tokenSecret = tokenSecretNote(connector);
  if (tokenSecret.live) out.missing(tokenSecret.what, tokenSecret.why);
  else out.note(tokenSecret.line);
}

type TokenSecretNote = { live: true; what: string; why: string } | { live: false; line: string };

/**
 * What README.txt says of the enrollment token Secret: "never collected" only when the operator's
 * status shows a live one (status.enrollment.tokenSecretName); otherwise that there is none, so the
 * bundle does not claim a token exists that does not.
 */
export function tokenSecretNote(connector: Connector): TokenSecretNote {
  const enrollment = connector.status?.enrollment;
  const secret = enrollment?.tokenSecretName;
  if (secret) {
    return {
      live: true,
      what: `Secret ${secret}`,
      why: `never collected: it holds ${liveTokenWords(connector.status ?? {})}; its name and expiry are in status.txt`,
    };
  }
  const name = childNames(connector.metadata.name ?? '').tokenSecret;
  const why = enrollment?.retired
    ? `bootstrap is retired and the operator deleted Secret ${name}`
    : `no live token is minted into Secret ${name}`;
  return {
    live: false,
    line: `No live enrollment token Secret (status.enrollment.tokenSecretName is empty: ${why}).`,
  };
}

/**
 * One log into the bundle at `path` (what `keep` takes of it), or `what` could not be read and why.
 * A log the kubelet cut at LOG_LIMIT_BYTES holds the first bytes of its last lines, not the newest:
 * README.txt says so, lest its end be taken for the pod's last word.
 */
async function collectLog(
  out: Collector,
  path: string,
  what: string,
  read: () => Promise<string>,
  keep: (log: string) => string = (log) => log,
): Promise<void> {
  let log: string;
  try {
    log = await read();
  } catch (error) {
    out.missing(what, describeApiError(error));
    return;
  }
  out.add(path, keep(log));
  if (Buffer.byteLength(log) >= LOG_LIMIT_BYTES) {
    out.note(
      `${path}: the ${what} was cut at ${LOG_LIMIT_BYTES} bytes (limitBytes): it is the start of the last lines asked for, and the newest lines are missing.`,
    );
  }
}

async function collectPodsAndLogs(ctx: CommandContext, facts: ConnectorFacts, out: Collector): Promise<void> {
  const { connector } = facts;
  const namespace = ctx.namespace;
  const selector = connector.spec.workloadRef
    ? Object.entries(
        facts.workload.ok ? (facts.workload.value?.object?.spec?.selector?.matchLabels ?? {}) : {},
      )
    : Object.entries(selectorLabels(connector.metadata.name ?? ''));
  if (selector.length === 0) {
    out.missing('pods and their logs', 'the workload has no pod selector to find them by');
    return;
  }
  let pods: Awaited<ReturnType<typeof ctx.api.listPods>>;
  try {
    pods = await ctx.api.listPods(namespace, selector.map(([k, v]) => `${k}=${v}`).join(','));
  } catch (error) {
    out.missing('pods and their logs', describeApiError(error));
    return;
  }
  for (const pod of pods) {
    const podName = pod.metadata?.name ?? 'pod';
    out.add(`objects/pod-${podName}.yaml`, objectYaml(pod as never));
    for (const status of pod.status?.containerStatuses ?? []) {
      const tail = ctx.options.tailLines;
      const where = `${podName}/${status.name}`;
      await collectLog(out, `logs/${where}.log`, `log of ${where}`, () =>
        ctx.api.readPodLog(namespace, podName, status.name, tail),
      );
      if ((status.restartCount ?? 0) > 0) {
        await collectLog(out, `logs/${where}.previous.log`, `previous log of ${where}`, () =>
          ctx.api.readPodLog(namespace, podName, status.name, tail, true),
        );
      }
    }
  }
  if (pods.length === 0) out.missing('pod logs', 'the workload has no pod');
}

/** The operator's log lines about this Connector (its reconciler logs with connector: ns/name). */
async function collectOperatorLogs(
  ctx: CommandContext,
  facts: ConnectorFacts,
  out: Collector,
): Promise<void> {
  const operatorNamespace = ctx.options.operatorNamespace;
  const key = `${ctx.namespace}/${facts.connector.metadata.name}`;
  let pods: Awaited<ReturnType<typeof ctx.api.listPods>>;
  try {
    pods = await ctx.api.listPods(operatorNamespace, OPERATOR_SELECTOR);
  } catch (error) {
    out.missing(
      'operator logs',
      `cannot list the operator's pods in ${operatorNamespace}: ${describeApiError(error)}`,
    );
    return;
  }
  if (pods.length === 0) {
    out.missing(
      'operator logs',
      `no operator pod (${OPERATOR_SELECTOR}) in namespace ${operatorNamespace} (--operator-namespace)`,
    );
    return;
  }
  for (const pod of pods) {
    const podName = pod.metadata?.name ?? 'operator';
    // The reconciler's lines about one Connector are a small share of the operator's: read more.
    await collectLog(
      out,
      `operator/${podName}.log`,
      `operator log of ${operatorNamespace}/${podName}`,
      () => ctx.api.readPodLog(operatorNamespace, podName, OPERATOR_CONTAINER, ctx.options.tailLines * 20),
      (log) =>
        log
          .split('\n')
          .filter((line) => line.includes(`"connector":"${key}"`) || line.includes(facts.connectorId))
          .slice(-ctx.options.tailLines)
          .join('\n'),
    );
  }
}

function eventsText(facts: ConnectorFacts): string {
  if (!facts.events.ok) return `not readable: ${facts.events.why}\n`;
  const events = facts.events.value ?? [];
  return `${table(
    ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'COUNT', 'NOTE'],
    events.map((e) => [
      e.lastSeen,
      e.type,
      e.reason,
      `${e.regarding.kind}/${e.regarding.name}`,
      String(e.count),
      e.note,
    ]),
  )}\n`;
}

export async function reportCommand(ctx: CommandContext): Promise<number> {
  const { io, options } = ctx;
  const name = options.name ?? '';
  const now = io.now();
  const connector = await readConnector(ctx, name);
  const known: string[] = [];
  const facts = await gatherFacts({
    api: ctx.api,
    connector,
    operatorNamespace: options.operatorNamespace,
    defaults: options.defaultControlPlane,
    auditCount: BUNDLE_AUDIT,
    onCredential: (credential) => known.push(credential),
  });
  const top = bundleName(ctx.namespace, name, now);
  const files: Array<{ path: string; content: string }> = [];
  const missing: Array<[string, string]> = [];
  const notes: string[] = [];
  const out: Collector = {
    add: (path, content) => files.push({ path, content }),
    missing: (what, why) => missing.push([what, why]),
    note: (line) => notes.push(line),
  };
  const report = statusReport(facts);
  out.add('status.txt', statusReportText(report, facts.at));
  out.add('status.json', `${JSON.stringify(report, null, 2)}\n`);
  out.add('diagnose.txt', diagnoseText(runbookChecks(facts)));
  out.add('events.txt', eventsText(facts));
  await collectObjects(ctx, facts, out);
  await collectPodsAndLogs(ctx, facts, out);
  await collectOperatorLogs(ctx, facts, out);
  const view = facts.controlPlane;
  if (view.record) {
    out.add('control-plane/record.json', `${JSON.stringify(view.record, null, 2)}\n`);
    out.add('control-plane/audit.json', `${JSON.stringify(view.audit ?? [], null, 2)}\n`);
  } else {
    out.missing("the control plane's record and audit", view.unavailable ?? view.askFailed ?? 'not asked');
  }
  const readme = [
    `VaultPAM connector report: Connector ${ctx.namespace}/${name} (connector id ${facts.connectorId})`,
    `Collected ${now.toISOString()} by ${io.program} report, with the rights of the kubeconfig user.`,
    '',
    'Redacted: no Secret was read for this bundle except the control-plane credential (to ask the control plane),',
    'and that value, enrollment tokens, private keys and credential-shaped text are replaced with [REDACTED].',
    // Worded so that this file's own redaction leaves it whole (it took "--api-key=VALUE)" for a key).
    'In objects/, every container env value and HTTP header value is replaced with [REDACTED] (valueFrom,',
    'which names a Secret and holds nothing, is kept), and so is every value given to a secret-named flag in',
    "command and args (the word after --password, or after the '=' of such a flag); the",
    'kubectl.kubernetes.io/last-applied-configuration annotation, a copy of the object with those values, is left out.',
    '',
    'Files:',
    ...files.map((f) => `  ${f.path}`),
    '',
    'Not collected:',
    ...(missing.length > 0 ? missing.map(([what, why]) => `  ${what} (${why})`) : ['  nothing']),
    ...(notes.length > 0 ? ['', ...notes] : []),
    '',
  ].join('\n');
  const entries: TarEntry[] = [
    { path: `${top}/README.txt`, content: readme },
    ...files.map((f) => ({ path: `${top}/${f.path}`, content: f.content })),
  ].map((entry) => ({ path: entry.path, content: redactBundleText(String(entry.content), known) }));
  const file = options.file ?? `${top}.tar.gz`;
  // Building the archive and writing it fail for different reasons, said apart: a build failure
  // is the plugin's (an entry path no tar may hold), a write failure the file's (EACCES, ENOENT).
  let archive: Buffer;
  try {
    archive = tarGz(entries, now);
  } catch (error) {
    throw new Error(`cannot build the bundle (nothing was written): ${errorMessage(error)}`);
  }
  try {
    await writeFile(file, archive, { mode: 0o600 });
  } catch (error) {
    throw new Error(`cannot write ${file}: ${errorMessage(error)}`);
  }
  io.stdout.write(
    `Wrote ${file}: ${entries.length} files${missing.length > 0 ? `, ${missing.length} thing(s) not collected (see README.txt)` : ''}.\n`,
  );
  return EXIT.ok;
}
