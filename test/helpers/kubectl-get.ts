// `kubectl get connectors` as a person runs it, with the kubectl built for the test cluster's
// version: what the API server's printer columns look like once kubectl has printed them.
import { execFile } from 'node:child_process';
import { ensureKubectl } from '../../dev/local-cluster/binaries.ts';

/** The output of `kubectl get connectors NAME -n NAMESPACE EXTRA...` against the cluster of `kubeconfigPath`. */
export async function kubectlGetConnector(
  kubeconfigPath: string,
  namespace: string,
  name: string,
  ...extra: string[]
): Promise<string> {
  const kubectl = await ensureKubectl(() => {});
  return new Promise<string>((resolve, reject) =>
    execFile(
      kubectl,
      ['--kubeconfig', kubeconfigPath, 'get', 'connectors', '-n', namespace, name, ...extra],
      (error, stdout, stderr) => (error ? reject(new Error(`${error.message}: ${stderr}`)) : resolve(stdout)),
    ),
  );
}

/**
 * A one-row table as column -> cell, cut at the header's column starts, so an empty cell reads as
 * '' instead of shifting the cells after it (headers have single spaces, columns at least two).
 */
export function tableRow(text: string): Record<string, string> {
  const [header = '', row = ''] = text.trimEnd().split('\n');
  const starts = [...header.matchAll(/\S+(?: \S+)*/g)].map((m) => ({ column: m[0], at: m.index ?? 0 }));
  return Object.fromEntries(
    starts.map(({ column, at }, i) => [column, row.slice(at, starts[i + 1]?.at ?? row.length).trim()]),
  );
}
