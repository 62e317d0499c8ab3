// The person's own Kubernetes credentials, found the way kubectl finds them: --kubeconfig, else
// the KUBECONFIG list, else ~/.kube/config (client-node's loadFromDefault, which also covers a pod's
// ServiceAccount); --context picks a context; the namespace is -n, else the context's, else
// "default". The plugin acts with these rights only: it is nobody's deputy.
import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { reuseConnections } from '../lib/client-node-connections.ts';
import { CodedError, errorMessage } from '../lib/errors.ts';

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

function cannotLoad(where: string, error: unknown): CodedError {
  return new CodedError(
    'KUBECONFIG_INVALID',
    `cannot load ${where}: ${errorMessage(error)}; point --kubeconfig or KUBECONFIG at a readable kubeconfig`,
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
      throw cannotLoad(`--kubeconfig ${flags.kubeconfig}`, error);
    }
  } else {
    try {
      kc.loadFromDefault();
    } catch (error) {
      throw cannotLoad(env.KUBECONFIG ? `KUBECONFIG=${env.KUBECONFIG}` : '~/.kube/config', error);
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
