// The person's own Kubernetes credentials, found the way kubectl finds them: --kubeconfig, else
// the KUBECONFIG list, else ~/.kube/config (client-node's loadFromDefault, which also covers a pod's
// ServiceAccount); --context picks a context; the namespace is -n, else the context's, else
// "default". The plugin acts with these rights only: it is nobody's deputy.
import { existsSync } from 'node:fs';
import { delimiter } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { reuseConnections } from '../lib/client-node-connections.ts';
import { CodedError, errorMessage } from '../lib/errors.ts';
import { isRecord } from '../lib/is-record.ts';

export interface ClusterTarget {
  kc: KubeConfig;
  /** The namespace of a named Connector, and of a listing without -A. */
  namespace: string;
}

export interface KubeConfigFlags {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
}

/** Where in the file a YAML parse error is (1-based), and what is wrong, if it is one. */
function yamlFault(error: unknown): { line: number; column: number; reason: string } | undefined {
  if (!(error instanceof Error) || error.name !== 'YAMLException') return undefined;
  const { mark, reason } = error as Error & { mark?: unknown; reason?: unknown };
  if (!isRecord(mark) || typeof mark.line !== 'number' || typeof mark.column !== 'number') return undefined;
  // The reason is the parser's words, but some quote the file (an alias: an unquoted "*secret"
  // reads as one; a tag): only the words before a quoted or interpolated part are kept.
  const words = typeof reason === 'string' ? (reason.split(/["!<(]|: /)[0] ?? '').trim() : '';
  return { line: mark.line + 1, column: mark.column + 1, reason: words || 'not valid YAML' };
}

/**
 * Why a kubeconfig could not be loaded. A YAML error's message quotes the lines around the fault,
 * and a kubeconfig holds keys and tokens (client-key-data, token): it is said by its file, line,
 * column and the parser's reason, never by the file's content.
 */
function cannotLoad(where: string, error: unknown, files: readonly string[]): CodedError {
  const fault = yamlFault(error);
  // client-node loads a KUBECONFIG list file by file and does not say which one failed.
  const file =
    fault && files.length > 1 ? files.find((f) => yamlFault(loadError(f)) !== undefined) : undefined;
  const what = fault
    ? `${file ? `${file} (of ${where})` : where} is not valid YAML: ${fault.reason} at line ${fault.line}, column ${fault.column}`
    : `cannot load ${where}: ${errorMessage(error)}`;
  return new CodedError(
    'KUBECONFIG_INVALID',
    `${what}; point --kubeconfig or KUBECONFIG at a readable kubeconfig`,
  );
}

/** The error loading one file throws, if any. */
function loadError(file: string): unknown {
  try {
    new KubeConfig().loadFromFile(file);
    return undefined;
  } catch (error) {
    return error;
  }
}

/**
 * Whether loadFromDefault found nothing to load: it then falls back to this one made-up context
 * (client-node's loadFromDefault, its last line), which no kubeconfig file or pod yields.
 */
function foundNoKubeconfig(kc: KubeConfig): boolean {
  const cluster = kc.getCurrentCluster();
  return (
    kc.getCurrentContext() === 'loaded-context' &&
    kc.getContexts().length === 1 &&
    cluster?.name === 'cluster' &&
    cluster.server === 'http://localhost:8080'
  );
}

export function loadClusterTarget(flags: KubeConfigFlags, env: NodeJS.ProcessEnv): ClusterTarget {
  const kc = new KubeConfig();
  if (flags.kubeconfig) {
    if (!existsSync(flags.kubeconfig)) {
      throw new CodedError(
        'KUBECONFIG_INVALID',
        `--kubeconfig: ${flags.kubeconfig} does not exist; give the path of a kubeconfig file`,
      );
    }
    try {
      kc.loadFromFile(flags.kubeconfig);
    } catch (error) {
      throw cannotLoad(`--kubeconfig ${flags.kubeconfig}`, error, [flags.kubeconfig]);
    }
  } else {
    try {
      kc.loadFromDefault();
    } catch (error) {
      const files = (env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
      throw cannotLoad(env.KUBECONFIG ? `KUBECONFIG=${env.KUBECONFIG}` : '~/.kube/config', error, files);
    }
    if (foundNoKubeconfig(kc)) {
      // client-node then makes up a cluster at http://localhost:8080, and the first request fails
      // with "HTTP protocol is not allowed when skipTLSVerify is not set", which names nothing
      // a person can fix.
      throw new CodedError(
        'KUBECONFIG_INVALID',
        "no kubeconfig: KUBECONFIG is not set, ~/.kube/config does not exist and this is not a pod with a ServiceAccount token; give --kubeconfig PATH or set KUBECONFIG to your cluster's kubeconfig",
      );
    }
  }
  if (flags.context) {
    if (!kc.getContextObject(flags.context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new CodedError(
        'KUBECONFIG_INVALID',
        `--context: no context "${flags.context}" in the kubeconfig; it has ${known.length > 0 ? known.join(', ') : 'none'}`,
      );
    }
    kc.setCurrentContext(flags.context);
  }
  if (!kc.getCurrentCluster()) {
    throw new CodedError(
      'KUBECONFIG_INVALID',
      'the kubeconfig names no cluster for its current context; pick one with --context, or fix the kubeconfig',
    );
  }
  const contextNamespace = kc.getContextObject(kc.getCurrentContext())?.namespace;
  // A command makes several requests (a Connector, its pods, its Events): one TLS handshake for all.
  return { kc: reuseConnections(kc), namespace: flags.namespace || contextNamespace || 'default' };
}
