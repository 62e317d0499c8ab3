#!/usr/bin/env bash
# Copies into the Helm chart what it carries from elsewhere in the repository, since a chart can read
# only its own files: the CRDs (crds/*.vaultpam.io.yaml into the chart's crds/, which Helm installs
# before the templates), the alert rules (monitoring/rules.yaml into the chart's files/, which the
# PrometheusRule template reads) and the Grafana dashboards (monitoring/dashboards/ into
# files/dashboards/). Run it after changing any of them; test/chart/chart.test.ts fails while a copy
# differs from its original.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
chart="$root/charts/vaultpam-connector-operator"

rm -f "$chart"/crds/*.yaml
cp "$root"/crds/*.vaultpam.io.yaml "$chart/crds/"
cp "$root/monitoring/rules.yaml" "$chart/files/rules.yaml"
rm -rf "$chart/files/dashboards"
mkdir -p "$chart/files/dashboards"
cp "$root"/monitoring/dashboards/*.json "$chart/files/dashboards/"
echo "sync-chart: copied crds/, monitoring/rules.yaml and monitoring/dashboards/ into ${chart#"$root"/}" >&2
