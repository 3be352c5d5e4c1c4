#!/usr/bin/env bash
# Runs every Go fuzz target for a bounded time each (default 30s; CI uses a few
# seconds). Seeds live in each package's testdata/fuzz and also run as plain
# tests under `go test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
fuzztime=${1:-30s}
found=0
while IFS= read -r file; do
  pkg="./$(dirname "$file")"
  for fn in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
    found=$((found + 1))
    echo "fuzz: $pkg $fn for $fuzztime"
    go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "$pkg"
  done
done < <(grep -rl --include='*_test.go' '^func Fuzz' tools | sort)
echo "fuzz: $found targets, each ran $fuzztime without a failure"
