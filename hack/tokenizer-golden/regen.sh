#!/usr/bin/env bash
# Regenerates internal/tokenizer/testdata/tiny (a small byte-level BPE made
# from cl100k_base's first ranks) and testdata/metaspace (a sentencepiece-
# style BPE from the same ranks) and their golden ids from Hugging Face's
# JavaScript implementation.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/@huggingface/tokenizers ] || npm ci --no-audit --no-fund --loglevel=error
root=../..
(cd "$root" && go run ./hack/tokenizer-golden/mktiny -n 4000 -out internal/tokenizer/testdata/tiny)
(cd "$root" && go run ./hack/tokenizer-golden/mktiny -metaspace -n 4000 -out internal/tokenizer/testdata/metaspace)
for t in tiny metaspace; do
  node golden.mjs "$root/internal/tokenizer/testdata/$t" "$root/internal/tokenizer/testdata/cases.json" \
    > "$root/internal/tokenizer/testdata/$t/golden.json"
done
