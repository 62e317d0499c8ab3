// docs/operator-runtime.md's table of metrics lists exactly what the operator exports, with the
// labels it exports: a metric added without a row, a row left after its metric went, or a label
// that changed fails here. Read from the real registry (createOperatorMetrics).
import { readFileSync } from 'node:fs';
import test from 'ava';
import { createOperatorMetrics } from '../../src/operator/runtime/metrics.ts';

const doc = readFileSync(new URL('../../docs/operator-runtime.md', import.meta.url), 'utf8');

/**
 * The rows of the "## Metrics" table: each metric named in the first cell (a row may name several:
 * `vaultpam_operator_connector_phase`, `_stalled`, ... share the first one's prefix) with the
 * labels named in the third (each label is the first word of a backticked span there).
 */
function documentedMetrics(): Map<string, string[]> {
  const section = doc.split('\n## Metrics\n')[1]?.split('\n## ')[0] ?? '';
  const rows = section.split('\n').filter((line) => line.startsWith('| `vaultpam_operator_'));
  const documented = new Map<string, string[]>();
  for (const row of rows) {
    const cells = row.split(' | ');
    const names = [...(cells[0] ?? '').matchAll(/`([a-z_]+)`/g)].map((m) => m[1] ?? '');
    const labels = [...(cells[2] ?? '').matchAll(/`([a-z_]+)`/g)].map((m) => m[1] ?? '');
    const first = names[0] ?? '';
    const prefix = first.slice(0, first.lastIndexOf('_'));
    for (const name of names) documented.set(name.startsWith('_') ? `${prefix}${name}` : name, labels);
  }
  return documented;
}

test('the metrics table of docs/operator-runtime.md names every metric the operator exports, and no other', (t) => {
  const exported = createOperatorMetrics()
    .registry.getMetricsAsArray()
    .map((metric) => metric.name)
    .sort();
  t.deepEqual([...documentedMetrics().keys()].sort(), exported);
});

test('each row names the labels its metric has', (t) => {
  const labelsOf = new Map(
    createOperatorMetrics()
      .registry.getMetricsAsArray()
      .map((metric) => [metric.name, [...((metric as { labelNames?: string[] }).labelNames ?? [])]]),
  );
  for (const [name, documented] of documentedMetrics()) {
    const exported = labelsOf.get(name) ?? [];
    // A row that shares its labels cell among several metrics names the union of their labels.
    t.true(
      exported.every((label) => documented.includes(label)),
      `${name}: exports ${exported.join(', ') || 'no label'}, the table says ${documented.join(', ') || 'none'}`,
    );
  }
});
