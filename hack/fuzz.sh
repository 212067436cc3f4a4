#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a fixed number of executions
# (default 50000 each). A count rather than a duration: Go's coordinator can
# report a spurious "context deadline exceeded" when a -fuzztime duration ends
# while a loaded machine's worker is mid-call (go.dev/issue/75804).
set -euo pipefail
fuzztime=${1:-50000x}
cd "$(dirname "$0")/.."
found=0
while IFS= read -r file; do
  pkg=./$(dirname "$file")
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
    found=1
    echo "fuzz $pkg $target ($fuzztime)"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg"
  done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' || true)
[ "$found" = 1 ] || echo "no fuzz targets"
