#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager and kustomize from the pinned Go modules in
# this folder into a cache directory outside the repository, keyed by go.mod, go.sum and this script,
# and prints that directory. A second run with the same pins finds the binaries and returns at once.
# Concurrent runs (several test files starting at once) wait on one lock instead of racing to write
# the same files.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${VAULTPAM_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vaultpam-connector-operator/cluster}"
kube_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$here/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v/ {print $2; exit}' "$here/go.mod")"
kustomize_version="$(awk '$1 == "sigs.k8s.io/kustomize/kustomize/v5" && $2 ~ /^v/ {print $2; exit}' "$here/go.mod")"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)"
out="$cache_root/kube-$kube_version-etcd-$etcd_version-$key"
binaries=(etcd kube-apiserver kube-controller-manager kustomize)

complete() {
  for b in "${binaries[@]}"; do [[ -x "$out/$b" ]] || return 1; done
}

if complete; then
  echo "$out"
  exit 0
fi

log() { echo "[cluster-build] $*" >&2; }
mkdir -p "$out"
# Whoever holds the lock builds; the others wait, then find the binaries complete.
exec 9>"$out.lock"
if ! flock -n 9; then
  log "another build of $out is running; waiting for it"
  flock 9
fi
if complete; then
  echo "$out"
  exit 0
fi
cd "$here"
minor="${kube_version#v1.}"; minor="${minor%%.*}"
kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version"
kube_ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
kube_ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
kube_ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$kube_version"

start=$SECONDS
log "downloading Go modules (k8s.io/kubernetes $kube_version, etcd $etcd_version, kustomize $kustomize_version)"
go mod download
export CGO_ENABLED=0
# kustomize first: it is small, and the install-manifest tests need only it.
# Its version string comes from -X because a build inside this module has no release tag of its own.
log "building kustomize $kustomize_version"
go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kustomize/api/provenance.version=kustomize/$kustomize_version" \
  -o "$out/kustomize.partial" sigs.k8s.io/kustomize/kustomize/v5
mv "$out/kustomize.partial" "$out/kustomize"
for b in kube-apiserver kube-controller-manager; do
  log "building $b $kube_version (first build takes several minutes on 2 cores)"
  go build -trimpath -ldflags "$kube_ldflags" -o "$out/$b.partial" "k8s.io/kubernetes/cmd/$b"
  mv "$out/$b.partial" "$out/$b"
done
log "building etcd $etcd_version"
go build -trimpath -ldflags "-s -w" -o "$out/etcd.partial" go.etcd.io/etcd/server/v3
mv "$out/etcd.partial" "$out/etcd"
log "done in $((SECONDS - start)) s: $out"
echo "$out"
