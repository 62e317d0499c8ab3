// The Grafana dashboard (monitoring/dashboards/vaultpam-connectors.json): a dashboard Grafana loads
// (a datasource variable every panel uses, unique ids, panels on the 24-column grid without
// overlaps), whose queries all parse with Prometheus's own parser and read only metrics the code
// exports, and which shows what the issue asks for: the fleet by phase, transitions, recoveries,
// token mints, reconcile latency and queue depth.
import { readFile } from 'node:fs/promises';
import test from 'ava';
import { metricsOfQueries } from './promtool.ts';
import { queryProblems } from './query-check.ts';

interface Target {
  refId: string;
  expr: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  templating: { list: Array<{ name: string; type: string; query?: string }> };
  panels: Panel[];
}

const dashboard = JSON.parse(
  await readFile(new URL('../../monitoring/dashboards/vaultpam-connectors.json', import.meta.url), 'utf8'),
) as Dashboard;
const queryPanels = dashboard.panels.filter((p) => p.type !== 'row');
/** Grafana's own syntax for the datasource variable, not a template string. */
const DATASOURCE_VARIABLE = ['$', '{datasource}'].join('');

/** Grafana's built-in interval variables, as Grafana would fill them in, so the parser can read the query. */
function withGrafanaVariables(expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)\b/g, '5m');
}

const queries = queryPanels.flatMap((panel) =>
  (panel.targets ?? []).map((target) => ({
    id: `panel "${panel.title}" query ${target.refId}`,
    expr: withGrafanaVariables(target.expr),
  })),
);

test('a dashboard Grafana loads: a Prometheus datasource variable every query uses, unique ids, a grid without overlaps', (t) => {
  t.is(dashboard.uid, 'vaultpam-connectors');
  const variable = dashboard.templating.list.find((v) => v.name === 'datasource');
  t.deepEqual([variable?.type, variable?.query], ['datasource', 'prometheus']);
  const ids = dashboard.panels.map((p) => p.id);
  t.is(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const panel of queryPanels) {
    t.deepEqual(panel.datasource, { type: 'prometheus', uid: DATASOURCE_VARIABLE }, panel.title);
    t.true((panel.targets ?? []).length > 0, `${panel.title} has a query`);
    for (const target of panel.targets ?? []) t.is(target.datasource?.uid, DATASOURCE_VARIABLE, panel.title);
  }
  const cells = new Map<string, string>();
  const overlaps = new Set<string>();
  for (const panel of dashboard.panels) {
    const { x, y, w, h } = panel.gridPos;
    t.true(x >= 0 && w > 0 && x + w <= 24, `${panel.title} fits the 24 columns`);
    for (let row = y; row < y + h; row++) {
      for (let column = x; column < x + w; column++) {
        const other = cells.get(`${row}:${column}`);
        if (other) overlaps.add(`${panel.title} overlaps ${other}`);
        cells.set(`${row}:${column}`, panel.title);
      }
    }
  }
  t.deepEqual([...overlaps], []);
});

test('every query parses and reads only metrics the code exports, with labels and values they have', async (t) => {
  t.true(queries.length >= 15);
  t.deepEqual(await queryProblems(queries), []);
});

test('it shows the fleet by phase, transitions, recoveries, token mints, reconcile latency and queue depth', async (t) => {
  const read = await metricsOfQueries(queries);
  const panelsReading = (metric: string, also: (expr: string) => boolean = () => true) =>
    queries.filter((q, i) => read[i]?.metrics?.includes(metric) && also(q.expr)).map((q) => q.id);
  const wanted: Array<[string, string[]]> = [
    ['fleet by phase', panelsReading('vaultpam_operator_connectors', (e) => e.includes('by (phase)'))],
    ['transitions', panelsReading('vaultpam_operator_connector_phase', (e) => e.includes('offset'))],
    ['recoveries', panelsReading('vaultpam_operator_recoveries_total')],
    ['token mints', panelsReading('vaultpam_operator_enrollment_tokens_minted_total')],
    ['reconcile latency', panelsReading('vaultpam_operator_reconcile_duration_seconds_bucket')],
    ['queue depth', panelsReading('vaultpam_operator_work_queue_depth')],
  ];
  for (const [what, panels] of wanted) t.true(panels.length > 0, `no query shows ${what}`);
});
