#!/usr/bin/env bash
# make bench: every performance target, measured in one run on this machine and
# reported as figures or ratios against a baseline run in the same go. Nothing
# here asserts a time; the report says which targets were met.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${BENCH_OUT:-bench-results}
mkdir -p "$out"
status=0
run() {
  local name=$1; shift
  echo "== $name"
  if ! "$@" 2>&1 | tee "$out/$name.txt"; then
    echo "bench $name: FAILED to run" >&2
    status=1
  fi
}
run plan go test -run '^$' -bench 'Plan500' -benchtime 10x -count 5 ./tools/internal/plan/
for script in test/bench/*.sh; do
  [ "$(basename "$script")" = run.sh ] && continue
  run "$(basename "$script" .sh)" bash "$script"
done
echo "== summary (one line per target)"
grep -h '^TARGET' "$out"/*.txt 2>/dev/null || true
exit $status
