#!/usr/bin/env bash
# Builds the GitOps ecosystem checkers the tests run (test/gitops/): lua-health, which runs an Argo
# CD health.lua the way Argo CD does (github.com/yuin/gopher-lua, the interpreter Argo CD uses), and
# kstatus, which prints what sigs.k8s.io/cli-utils' kstatus (used by Flux and cli-utils' apply
# --wait) computes for objects. Both come from the pinned Go modules and sources in this folder into
# a cache directory outside the repository, keyed by go.mod, go.sum, the sources and the build
# scripts, and this prints that directory. A second run with the same inputs finds the binaries
# and returns at once; concurrent runs wait on one lock. Progress goes to stderr, the directory
# alone to stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/go-tool-cache.sh
source "$here/../lib/go-tool-cache.sh"

log() { echo "[ecosystem-build] $*" >&2; }

cd "$here"
binaries=(lua-health kstatus)
mapfile -t sources < <(find cmd -name '*.go' -type f | LC_ALL=C sort)
key="$(go_tool_key go.mod go.sum build.sh ../lib/go-tool-cache.sh "${sources[@]}")"
lua_version="$(go_tool_module_version go.mod github.com/yuin/gopher-lua)"
kstatus_version="$(go_tool_module_version go.mod sigs.k8s.io/cli-utils)"
out="$(go_tool_cache_root ecosystem "${VAULTPAM_ECOSYSTEM_CACHE:-}")/gopher-lua-$lua_version-cli-utils-$kstatus_version-$key"

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
log "downloading Go modules (gopher-lua $lua_version, cli-utils $kstatus_version)"
go mod download
for b in "${binaries[@]}"; do
  log "building $b"
  go_tool_build "$out" "$b" "./cmd/$b" -ldflags "-s -w"
done
log "done in $((SECONDS - start)) s: $out"
echo "$out"
