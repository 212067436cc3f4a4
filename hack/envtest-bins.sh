#!/usr/bin/env bash
# Builds the control-plane binaries (kube-apiserver, kubectl, etcd) from source
# through the Go module proxy and caches them by version outside the work tree.
# The last line printed is the directory that holds them (KUBEBUILDER_ASSETS).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
kube_version=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$root/hack/tools/kube/go.mod")
etcd_version=$(awk '$1=="require" && $2=="go.etcd.io/etcd/server/v3" {print $3}' "$root/hack/tools/etcd/go.mod")
cache=${KTHENA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kthena}
dir="$cache/envtest/kube-${kube_version}-etcd-${etcd_version}-$(go env GOOS)-$(go env GOARCH)"

build() { # name module-dir package
  local name=$1 moddir=$2 pkg=$3
  if [ -x "$dir/$name" ]; then return; fi
  echo "building $name from $pkg (first time only; several minutes)..." >&2
  mkdir -p "$dir"
  (cd "$root/hack/tools/$moddir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w $ldflags" -o "$dir/$name.tmp" "$pkg")
  mv "$dir/$name.tmp" "$dir/$name"
  echo "built $dir/$name" >&2
}

v=k8s.io/component-base/version
ldflags="-X $v.gitVersion=${kube_version} -X $v.gitMajor=1 -X $v.gitMinor=$(echo "$kube_version" | cut -d. -f2)"
build kube-apiserver kube k8s.io/kubernetes/cmd/kube-apiserver
build kubectl kube k8s.io/kubernetes/cmd/kubectl
ldflags=""
build etcd etcd .
echo "$dir"
