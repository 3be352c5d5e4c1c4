#!/usr/bin/env bash
# make bench: every performance target, measured in one run on this machine and
# reported as figures or ratios against a baseline run in the same go. Nothing
# here asserts a time; the report says which targets were met.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
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
run plan go test -run '^$' -bench 'Plan500$' -benchtime 10x -count 5 ./tools/internal/plan/
# The plan target as a TARGET line: median ns/op of the 5 runs against 0.2 s.
awk '/^BenchmarkPlan500-/ {for (i = 1; i < NF; i++) if ($(i+1) == "ns/op") print $i}' "$out/plan.txt" | sort -n |
  awk '{v[NR] = $1} END {if (!NR) exit; m = v[int((NR + 1) / 2)] / 1e9;
       printf "TARGET plan-500-services: median %.3fs per plan (target < 0.2s): %s\n", m, (m < 0.2 ? "met" : "MISSED")}' |
  tee -a "$out/plan.txt"
for script in test/bench/*.sh; do
  [ "$(basename "$script")" = run.sh ] && continue
  run "$(basename "$script" .sh)" bash "$script"
done
echo "== summary (one line per target)"
grep -h '^TARGET' "$out"/*.txt 2>/dev/null || true
exit $status
