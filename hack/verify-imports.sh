#!/usr/bin/env bash
# Scheduler plugins build against the framework's contracts, not the router's
# internals: packages under internal/router/framework may import only each
# other from this module, and each plugin package (internal/router/plugins/<kind>/<name>)
# only the framework and internal/tokenizer. Fails listing each violation.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=$(go list -m)
allowed_plugin_imports="^${mod}/(internal/router/framework(/.*)?|internal/tokenizer(/.*)?)$"
allowed_framework_imports="^${mod}/internal/router/framework(/.*)?$"
fail=0
check() { # package-pattern allowed-regexp
  while read -r pkg imports; do
    for imp in $imports; do
      case "$imp" in "$mod"/*) ;; *) continue ;; esac
      if ! [[ "$imp" =~ $2 ]]; then
        echo "import rule: ${pkg#"$mod"/} imports ${imp#"$mod"/}"
        fail=1
      fi
    done
  done < <(go list -f '{{.ImportPath}} {{join .Imports " "}}' "$1" 2>/dev/null || true)
}
[ -d internal/router/framework ] && check ./internal/router/framework/... "$allowed_framework_imports"
for dir in internal/router/plugins/*/*/; do
  [ -d "$dir" ] && check "./$dir..." "$allowed_plugin_imports"
done
exit $fail
