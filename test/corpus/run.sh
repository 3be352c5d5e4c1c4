#!/usr/bin/env bash
# Runs `slipway plan` on every app of a public corpus of compose projects
# (say a checkout of docker/awesome-compose: one app per directory) and
# reports how many plan cleanly and how many are image-only (build nothing).
# Not part of `make test`: CI has no network to fetch a corpus.
#
#   test/corpus/run.sh CORPUS_DIR [SLIPWAY_BINARY]
#
# CORPUS_DIR must be a clean git checkout (plan reads the commit and refuses
# uncommitted changes). Without SLIPWAY_BINARY the script builds one.
# Per-app output goes to $OUT (default: a temporary directory, printed).
# Exit status: 0 when every app plans, 1 otherwise, 2 on bad usage.
set -euo pipefail

corpus=${1:?usage: test/corpus/run.sh CORPUS_DIR [SLIPWAY_BINARY]}
corpus=$(cd "$corpus" && pwd)
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${2:-}
if [ -z "$bin" ]; then
  bin=$(mktemp -d)/slipway
  (cd "$here" && go build -o "$bin" ./tools/cmd/slipway)
fi
out=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/slipway-corpus.XXXXXX")}
mkdir -p "$out"

total=0 ok=0 imageonly=0 failed=()
while IFS= read -r file; do
  app=$(dirname "$file")
  name=${app#"$corpus"/}
  total=$((total + 1))
  # A minimal environment: the corpus's ${VAR} defaults, not the caller's.
  if (cd "$app" && env -i PATH="$PATH" HOME="$HOME" "$bin" plan --json >"$out/$name.json" 2>"$out/$name.err"); then
    ok=$((ok + 1))
    built=$(jq '.services | length' "$out/$name.json")
    ext=$(jq '.external // {} | length' "$out/$name.json")
    kind="builds $built, external $ext"
    if [ "$built" = 0 ]; then
      imageonly=$((imageonly + 1))
      kind="image-only, external $ext"
    fi
    warn=$(grep -c -i 'warn' "$out/$name.err" || true)
    printf 'ok    %-32s %s%s\n' "$name" "$kind" "$([ "$warn" != 0 ] && echo ", $warn warning(s)")"
  else
    failed+=("$name")
    printf 'FAIL  %-32s %s\n' "$name" "$(tail -n 1 "$out/$name.err")"
  fi
done < <(find "$corpus" -mindepth 2 -maxdepth 2 \( -name compose.yaml -o -name compose.yml -o -name docker-compose.yaml -o -name docker-compose.yml \) -not -path '*/.*' | sort)

echo
echo "corpus $corpus: $total app(s), $ok planned cleanly ($imageonly image-only), ${#failed[@]} failed; output in $out"
[ "${#failed[@]}" = 0 ]
