#!/usr/bin/env bash
# Builds the Helm client from source through the Go module proxy and caches
# it by version outside the work tree, as hack/envtest-bins.sh does for the
# control plane. The last line printed is the path of the helm binary.
#
# hack/tools/helm pins the version (helm.sh/helm/v3 in its go.mod). Helm's
# Kubernetes libraries are newer than the main module's, so little of this
# build is shared with the module's own builds: the first build takes a few
# minutes on two cores, later calls print the cached path at once.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/hack/tools/helm"
version=$(awk '$1=="require" && $2=="helm.sh/helm/v3" {print $3}' "$mod/go.mod")
# The Kubernetes version helm assumes without a cluster (helm template,
# helm lint) is that of its client libraries, as in Helm's own release
# builds; without it helm would assume 1.20.
k8s=$(awk '$1=="k8s.io/client-go" {print $2}' "$mod/go.mod")
k8s_major=1
k8s_minor=$(echo "$k8s" | cut -d. -f2)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${version} -X helm.sh/helm/v3/internal/version.metadata="
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X ${pkg}.k8sVersionMajor=${k8s_major} -X ${pkg}.k8sVersionMinor=${k8s_minor}"
done
# The tools module's dependency versions and the flags are part of the key:
# changing either rebuilds the binary.
deps=$( (cat "$mod/go.mod"; echo "$ldflags") | sha256sum | cut -c1-8)
cache=${KTHENA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kthena}
dir="$cache/helm/helm-${version}-$(go env GOOS)-$(go env GOARCH)-${deps}"

if [ ! -x "$dir/helm" ]; then
  echo "building helm ${version} from source (first time only; a few minutes)..." >&2
  mkdir -p "$dir"
  tmp=$(mktemp -d "$dir/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$mod" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="$ldflags" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm)
  mv "$tmp/helm" "$dir/helm"
  echo "built $dir/helm" >&2
fi
echo "$dir/helm"
