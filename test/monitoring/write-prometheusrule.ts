// Rewrites monitoring/prometheusrule.yaml from monitoring/rules.yaml (see prometheusrule.ts):
//   npx node test/monitoring/write-prometheusrule.ts
import { writeFile } from 'node:fs/promises';
import { expectedPrometheusRule, PROMETHEUS_RULE_FILE } from './prometheusrule.ts';

await writeFile(PROMETHEUS_RULE_FILE, await expectedPrometheusRule());
process.stdout.write(`wrote ${PROMETHEUS_RULE_FILE}\n`);
