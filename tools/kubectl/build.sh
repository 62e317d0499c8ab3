#!/usr/bin/env bash
# Builds the kubectl that matches the local cluster (`npm start`, the tests): k8s.io/kubernetes/
# cmd/kubectl at the version tools/cluster/go.mod pins, with the same version stamp as the cluster
# binaries, into a cache directory outside the repository, and prints that directory.
#
# It builds inside the cluster wrapper module (tools/cluster) with the same go.mod, so every
# dependency has the cluster's version and the packages the cluster build already compiled come
# from Go's build cache. kubectl imports a few modules the cluster binaries do not, whose checksums
# tools/cluster/go.sum lacks; they are in extra.sum here. Rather than touching tools/cluster (its
# build script hashes go.mod and go.sum into its cache key: a change rebuilds the cluster, about 12
# minutes), the build reads a copy of go.mod and of go.sum plus extra.sum through `go build
# -modfile`. The cache key hashes the cluster's go.mod and go.sum, extra.sum and this script.
# Progress goes to stderr as "[kubectl-build] ..." lines, the directory alone to stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cluster="$here/../cluster"
# shellcheck source=../lib/go-tool-cache.sh
source "$here/../lib/go-tool-cache.sh"

log() { echo "[kubectl-build] $*" >&2; }

cd "$here"
key="$(go_tool_key ../cluster/go.mod ../cluster/go.sum extra.sum build.sh ../lib/go-tool-cache.sh)"
kube_version="$(go_tool_module_version "$cluster/go.mod" k8s.io/kubernetes)"
out="$(go_tool_cache_root kubectl "${VAULTPAM_KUBECTL_CACHE:-}")/kubectl-$kube_version-$key"

if go_tool_complete "$out" kubectl; then
  echo "$out"
  exit 0
fi

go_tool_ensure_go
# Whoever holds the lock builds; the others wait, then find the binary complete.
go_tool_lock "$out" log
if go_tool_complete "$out" kubectl; then
  echo "$out"
  exit 0
fi

# The module files go build reads: the cluster's go.mod as it is, its go.sum plus extra.sum.
modfiles="$(mktemp -d)"
trap 'rm -rf "$modfiles"' EXIT
cp "$cluster/go.mod" "$modfiles/kubectl.mod"
{ cat "$cluster/go.sum"; grep -v '^#' extra.sum; } >"$modfiles/kubectl.sum"

minor="${kube_version#v1.}"
minor="${minor%%.*}"
# The same stamp as the cluster binaries, so `kubectl version` names the cluster's version.
kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version"
kube_ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
kube_ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
kube_ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$kube_version"

start=$SECONDS
cd "$cluster"
# Only the modules kubectl adds are new; the rest came with the cluster build.
mapfile -t extra_modules < <(awk '!/^#/ && $2 !~ /\/go\.mod$/ {print $1 "@" $2}' "$here/extra.sum")
log "downloading the ${#extra_modules[@]} Go modules kubectl needs beyond the cluster's"
go mod download -modfile="$modfiles/kubectl.mod" "${extra_modules[@]}"
log "building kubectl $kube_version (reuses the cluster build's compiled packages; a minute or two on 2 cores)"
go_tool_build "$out" kubectl k8s.io/kubernetes/cmd/kubectl -modfile="$modfiles/kubectl.mod" -ldflags "$kube_ldflags"
log "done in $((SECONDS - start)) s: $out"
echo "$out"
