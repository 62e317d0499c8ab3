// Holds PromQL (alert expressions, dashboard queries, the series of the rule tests) to what the code
// exports: every metric a selector names must be exported by the operator or the control plane (or
// be Prometheus's own `up`), every label it matches on must be one that metric has, and the values
// it matches for the labels whose values the code enumerates (phase, reconcile result, Stalled
// reason, Ready status and reason) must be values the code writes. Expressions are read by Prometheus's own parser
// (promql-metrics), so an expression that does not parse is a problem too.
import { CONNECTOR_PHASES } from '../../src/operator/api/types.ts';
import {
  DurableStorageReasons,
  EnrolledReasons,
  HealthyReasons,
  ReadyReasons,
  ReconcilingReasons,
  StalledReasons,
} from '../../src/operator/conditions.ts';
import { RECONCILE_RESULTS } from '../../src/operator/runtime/metrics.ts';
import { readableMetrics } from './exported-metrics.ts';
import { metricsOfQueries, type NamedQuery } from './promtool.ts';

/** Label values the code writes, per metric and label. */
const KNOWN_VALUES: Record<string, Record<string, readonly string[]>> = {
  vaultpam_operator_connectors: { phase: CONNECTOR_PHASES },
  vaultpam_operator_connector_phase: { phase: CONNECTOR_PHASES },
  vaultpam_operator_connector_stalled: { reason: Object.values(StalledReasons) },
  // Ready carries its own reasons or the reason of the condition that blocks it (deriveReady).
  vaultpam_operator_connector_ready: {
    status: ['True', 'False', 'Unknown'],
    reason: [
      ...new Set([
        ...Object.values(ReadyReasons),
        ...Object.values(StalledReasons),
        ...Object.values(HealthyReasons),
        ...Object.values(EnrolledReasons),
        ...Object.values(DurableStorageReasons),
        ReconcilingReasons.Finalizing,
      ]),
    ],
  },
  vaultpam_operator_reconciles_total: { result: RECONCILE_RESULTS },
};

/** The literal alternatives of a matcher value: `a|b|c` for regular expressions of plain words. */
function alternatives(type: string, value: string): string[] | undefined {
  if (type === '=' || type === '!=') return [value];
  return /^[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)*$/.test(value) ? value.split('|') : undefined;
}

/** Every problem found in these queries, each naming the query's id; empty when all is well. */
export async function queryProblems(queries: NamedQuery[]): Promise<string[]> {
  const readable = await readableMetrics();
  const problems: string[] = [];
  for (const answer of await metricsOfQueries(queries)) {
    if (answer.error) {
      problems.push(`${answer.id}: ${answer.error}`);
      continue;
    }
    for (const selector of answer.selectors ?? []) {
      const labels = readable.get(selector.metric);
      if (!labels) {
        problems.push(
          `${answer.id}: ${selector.metric} is not a metric the operator or the control plane exports`,
        );
        continue;
      }
      for (const matcher of selector.matchers) {
        if (!labels.has(matcher.name)) {
          problems.push(`${answer.id}: ${selector.metric} has no label ${matcher.name}`);
          continue;
        }
        const known = KNOWN_VALUES[selector.metric]?.[matcher.name];
        if (!known || matcher.value === '') continue;
        const values = alternatives(matcher.type, matcher.value);
        if (!values) {
          problems.push(
            `${answer.id}: ${selector.metric}{${matcher.name}${matcher.type}"${matcher.value}"} is not a list of values to check`,
          );
          continue;
        }
        for (const value of values.filter((v) => !known.includes(v))) {
          problems.push(
            `${answer.id}: ${selector.metric} never has ${matcher.name}="${value}" (it has ${known.join(', ')})`,
          );
        }
      }
    }
  }
  return problems;
}
