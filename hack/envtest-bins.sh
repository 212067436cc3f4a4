#!/usr/bin/env bash
# Builds the control-plane binaries (kube-apiserver, kube-controller-manager,
# kubectl, etcd) from source through the Go module proxy and caches them by
# version outside the work tree.
# The last line printed is the directory that holds them (KUBEBUILDER_ASSETS).
#
# The build uses the same flags and environment as the module's own builds and
# tests (no -trimpath, no CGO_ENABLED override), and hack/tools/kube pins the
# dependencies it shares with the main module (apimachinery, client-go, x/net,
# protobuf, prometheus, ...) at the main module's versions, so the packages
# compiled here are reused from the Go build cache by `make build`, `go vet`
# and `go test` instead of being compiled a second time.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
kube_version=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$root/hack/tools/kube/go.mod")
etcd_version=$(awk '$1=="require" && $2=="go.etcd.io/etcd/server/v3" {print $3}' "$root/hack/tools/etcd/go.mod")
# The tools modules' dependency versions are part of the key: bumping one
# rebuilds the binaries.
deps=$(cat "$root/hack/tools/kube/go.mod" "$root/hack/tools/etcd/go.mod" | sha256sum | cut -c1-8)
cache=${KTHENA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kthena}
dir="$cache/envtest/kube-${kube_version}-etcd-${etcd_version}-$(go env GOOS)-$(go env GOARCH)-${deps}"

build() { # module-dir ldflags package...
  local moddir=$1 ldflags=$2 missing=()
  shift 2
  for pkg in "$@"; do [ -x "$dir/${pkg##*/}" ] || missing+=("$pkg"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "building ${missing[*]##*/} from source (first time only; several minutes)..." >&2
  mkdir -p "$dir"
  local tmp
  tmp=$(mktemp -d "$dir/.build.XXXXXX")
  # One go build for several commands shares their packages; only linking
  # is per binary.
  (cd "$root/hack/tools/$moddir" && GOFLAGS=-mod=mod go build -ldflags="-s -w $ldflags" -o "$tmp/" "${missing[@]}")
  for pkg in "${missing[@]}"; do
    mv "$tmp/${pkg##*/}" "$dir/${pkg##*/}"
    echo "built $dir/${pkg##*/}" >&2
  done
  rmdir "$tmp"
}

v=k8s.io/component-base/version
build kube "-X $v.gitVersion=${kube_version} -X $v.gitMajor=1 -X $v.gitMinor=$(echo "$kube_version" | cut -d. -f2)" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
build etcd "" github.com/kthena/kthena/hack/tools/etcd
echo "$dir"
