#!/usr/bin/env bash
# Builds what the chart tests (test/chart/) run, from the Go modules pinned in go.mod, into a cache
# directory outside the repository keyed by go.mod, go.sum and the build scripts, and prints that
# directory:
#   helm                 helm.sh/helm/v4/cmd/helm (`helm lint`, `helm template`)
#   controller-gen       sigs.k8s.io/controller-tools, run once here to write ...
#   monitoring-crds/     the ServiceMonitor and PrometheusRule CRDs, generated from the Prometheus
#                        operator's API types (pkg/apis/monitoring/v1) as that project generates
#                        its own, so the chart's monitoring objects meet the real schema on a real
#                        API server without a download.
# A second run with the same inputs finds everything and returns at once; concurrent runs wait on
# one lock. Progress goes to stderr, the directory alone to stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/go-tool-cache.sh
source "$here/../lib/go-tool-cache.sh"

log() { echo "[helm-build] $*" >&2; }

cd "$here"
binaries=(helm controller-gen)
monitoring_crds=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml)
key="$(go_tool_key go.mod go.sum tools.go build.sh ../lib/go-tool-cache.sh)"
helm_version="$(go_tool_module_version go.mod helm.sh/helm/v4)"
monitoring_module=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring
monitoring_version="$(go_tool_module_version go.mod "$monitoring_module")"
out="$(go_tool_cache_root helm "${VAULTPAM_HELM_CACHE:-}")/helm-$helm_version-monitoring-$monitoring_version-$key"

complete() {
  go_tool_complete "$out" "${binaries[@]}" || return 1
  local crd
  for crd in "${monitoring_crds[@]}"; do [[ -s "$out/monitoring-crds/$crd" ]] || return 1; done
}

if complete; then
  echo "$out"
  exit 0
fi

go_tool_ensure_go
# Whoever holds the lock builds; the others wait, then find everything complete.
go_tool_lock "$out" log
if complete; then
  echo "$out"
  exit 0
fi

start=$SECONDS
log "downloading Go modules (helm.sh/helm/v4 $helm_version, monitoring API $monitoring_version)"
go mod download
if ! go_tool_complete "$out" helm; then
  # A build inside this module carries no release tag of its own: the version comes from -X, as
  # helm's Makefile sets it for a release, so `helm version` names the pinned release.
  log "building helm $helm_version (about a minute on 2 cores the first time)"
  go_tool_build "$out" helm helm.sh/helm/v4/cmd/helm -ldflags \
    "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
fi
if ! go_tool_complete "$out" controller-gen; then
  log "building controller-gen $(go_tool_module_version go.mod sigs.k8s.io/controller-tools)"
  go_tool_build "$out" controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen -ldflags "-s -w"
fi
log "generating the ServiceMonitor and PrometheusRule CRDs from $monitoring_module/v1 $monitoring_version"
# Into a side folder first, so an interrupted run never leaves a folder that looks complete.
rm -rf "$out/monitoring-crds.partial" "$out/monitoring-crds"
"$out/controller-gen" crd:crdVersions=v1,maxDescLen=0 "paths=$monitoring_module/v1" \
  "output:crd:dir=$out/monitoring-crds.partial"
mkdir -p "$out/monitoring-crds"
for crd in "${monitoring_crds[@]}"; do
  mv "$out/monitoring-crds.partial/$crd" "$out/monitoring-crds/$crd"
done
rm -rf "$out/monitoring-crds.partial"
log "done in $((SECONDS - start)) s: $out"
echo "$out"
