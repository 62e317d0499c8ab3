// The metric names the code really exports, read from the real registries: the operator's
// (createOperatorMetrics) and the control plane's (createMetrics), each with the process and Node
// metrics its CLI turns on. A histogram is exported as its _bucket, _sum and _count series, a summary as
// itself, _sum and _count: those are the names a query can read.
import type { Registry } from 'prom-client';
import { createMetrics } from '../../src/controlplane/metrics.ts';
import { createOperatorMetrics } from '../../src/operator/runtime/metrics.ts';

/** Series Prometheus itself writes for every target: a query may read these too. */
export const PROMETHEUS_SERIES = ['up'] as const;

/**
 * Labels Prometheus adds to every series of a target (the Prometheus Operator's ServiceMonitor
 * adds these): a query may match on them whatever the metric.
 */
export const TARGET_LABELS = [
  'job',
  'instance',
  'namespace',
  'pod',
  'service',
  'endpoint',
  'container',
] as const;

export interface ExportedMetric {
  name: string;
  type: string;
  /** The labels its series carry (a histogram's _bucket series also carry le). */
  labels: string[];
  /** Which program exports it. */
  program: 'operator' | 'control-plane';
}

function metricsOf(registry: Registry, program: ExportedMetric['program']): ExportedMetric[] {
  const exported: ExportedMetric[] = [];
  for (const metric of registry.getMetricsAsArray()) {
    const { name } = metric;
    const type = String(metric.type);
    // prom-client keeps each metric's label names on the metric object (not in its public type).
    const labels = [...((metric as { labelNames?: readonly string[] }).labelNames ?? [])];
    const series: Array<[string, string[]]> =
      type === 'histogram'
        ? [
            [`${name}_bucket`, [...labels, 'le']],
            [`${name}_sum`, labels],
            [`${name}_count`, labels],
          ]
        : type === 'summary'
          ? [
              [name, [...labels, 'quantile']],
              [`${name}_sum`, labels],
              [`${name}_count`, labels],
            ]
          : [[name, labels]];
    for (const [seriesName, seriesLabels] of series) {
      exported.push({ name: seriesName, type, labels: seriesLabels, program });
    }
  }
  return exported;
}

/** Every series name the operator and the control plane export. */
export async function exportedMetrics(): Promise<ExportedMetric[]> {
  const operator = createOperatorMetrics({ processMetrics: true });
  const controlPlane = createMetrics(() => new Map(), { processMetrics: true });
  return [...metricsOf(operator.registry, 'operator'), ...metricsOf(controlPlane.registry, 'control-plane')];
}

/** What a query may read: each exported series name and Prometheus's own, with the labels it has. */
export async function readableMetrics(): Promise<Map<string, Set<string>>> {
  const readable = new Map<string, Set<string>>();
  for (const name of PROMETHEUS_SERIES) readable.set(name, new Set(TARGET_LABELS));
  for (const metric of await exportedMetrics()) {
    readable.set(metric.name, new Set([...metric.labels, ...TARGET_LABELS]));
  }
  return readable;
}
