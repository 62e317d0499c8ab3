#!/usr/bin/env bash
# Builds promtool, Prometheus's own rule checker and rule-test runner, from the pinned Go module in
# this folder (github.com/prometheus/prometheus, whose v0.3XX.Y tags are Prometheus 3.XX.Y), and two
# small checkers in cmd/: promql-metrics, which names the metrics PromQL expressions read with
# Prometheus's own parser, and monitoring-objects, which decodes ServiceMonitors and PrometheusRules
# strictly into the Prometheus Operator's own Go types. They go into a cache directory outside the
# repository, keyed by go.mod, go.sum, the sources and the build scripts, and this prints that
# directory; the monitoring tests (test/monitoring/) run them from there. A second run with the
# same inputs finds the binaries and returns at once; concurrent runs wait on one lock. Progress
# goes to stderr, the directory alone to stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/go-tool-cache.sh
source "$here/../lib/go-tool-cache.sh"

log() { echo "[promtool-build] $*" >&2; }

cd "$here"
binaries=(promtool promql-metrics monitoring-objects)
mapfile -t sources < <(find cmd -name '*.go' -type f | LC_ALL=C sort)
key="$(go_tool_key go.mod go.sum tools.go build.sh ../lib/go-tool-cache.sh "${sources[@]}")"
module_version="$(go_tool_module_version go.mod github.com/prometheus/prometheus)"
# v0.316.0 is Prometheus 3.16.0: what `promtool --version` should say.
IFS=. read -r _ series patch <<<"${module_version#v}"
release="$((series / 100)).$((series % 100)).$patch"
out="$(go_tool_cache_root promtool "${VAULTPAM_PROMTOOL_CACHE:-}")/prometheus-$module_version-$key"

if go_tool_complete "$out" "${binaries[@]}"; then
  echo "$out"
  exit 0
fi

go_tool_ensure_go
# Whoever holds the lock builds; the others wait, then find the binaries complete.
go_tool_lock "$out" log
if go_tool_complete "$out" "${binaries[@]}"; then
  echo "$out"
  exit 0
fi

start=$SECONDS
log "downloading Go modules (github.com/prometheus/prometheus $module_version, Prometheus $release)"
go mod download
version_flags="-X github.com/prometheus/common/version.Version=$release"
version_flags+=" -X github.com/prometheus/common/version.Branch=HEAD"
version_flags+=" -X github.com/prometheus/common/version.Revision=$module_version"
log "building promtool $release (the first build takes a few minutes on 2 cores)"
go_tool_build "$out" promtool github.com/prometheus/prometheus/cmd/promtool -ldflags "-s -w $version_flags"
for b in promql-metrics monitoring-objects; do
  log "building $b"
  go_tool_build "$out" "$b" "./cmd/$b" -ldflags "-s -w"
done
log "done in $((SECONDS - start)) s: $out"
echo "$out"
