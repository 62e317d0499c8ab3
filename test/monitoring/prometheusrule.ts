// The PrometheusRule (monitoring/prometheusrule.yaml) is monitoring/rules.yaml wrapped for the
// Prometheus Operator: the same groups, text and comments, under spec. The rule groups are written
// once, in rules.yaml, which promtool reads directly; this builds the wrapper from it, and
// rules.test.ts fails while the file on disk differs (rewrite it with
// `npx node test/monitoring/write-prometheusrule.ts`).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export const RULES_FILE = fileURLToPath(new URL('../../monitoring/rules.yaml', import.meta.url));
export const PROMETHEUS_RULE_FILE = fileURLToPath(
  new URL('../../monitoring/prometheusrule.yaml', import.meta.url),
);

const HEADER = `# Written by test/monitoring/write-prometheusrule.ts from monitoring/rules.yaml: edit that file,
# then run \`npx node test/monitoring/write-prometheusrule.ts\` (test/monitoring/rules.test.ts fails
# while the two differ). The alerts the connector runbook implies, for the Prometheus Operator; see
# docs/monitoring.md. Your Prometheus may select rules by a label (kube-prometheus-stack: release):
# add it with a patch in your overlay.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: vaultpam-connector-operator
  namespace: vaultpam-system
  labels:
    app.kubernetes.io/name: vaultpam-connector-operator
    app.kubernetes.io/part-of: vaultpam
    app.kubernetes.io/component: monitoring
spec:
`;

/** The PrometheusRule's text for this rules file: its `groups:` block, comments and all, under spec. */
export function renderPrometheusRule(rulesText: string): string {
  const start = rulesText.search(/^groups:/m);
  if (start < 0) throw new Error('monitoring/rules.yaml has no top-level groups: key');
  const body = rulesText
    .slice(start)
    .split('\n')
    .map((line) => (line === '' ? line : `  ${line}`))
    .join('\n');
  return `${HEADER}${body}`;
}

export async function expectedPrometheusRule(): Promise<string> {
  return renderPrometheusRule(await readFile(RULES_FILE, 'utf8'));
}
