#!/usr/bin/env bash
# rollout.sh: what a deploy does to a running service, and the host fan-out.
# Prints TARGET lines (make bench collects them):
#   rolling-drops   requests dropped by a rolling update of the sample app
#                   under continuous load through its proxy (target 0)
#   recreate-drops  the same with the recreate strategy (for comparison)
#   fanout-ratio    one update on every test target at --parallel N against
#                   the same update on each target one after another
#                   (target <= 0.4x at 10 hosts; measured with the targets
#                   test/scripts/services.sh started, 3 by default)
# Needs the test services (test/scripts/services.sh up). Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
export SLIPWAY_ROLLOUT_BENCH=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! go test -count=1 -v -timeout 30m -run '^TestRolloutBench$' ./tools/internal/deploy/ >"$out" 2>&1; then
  tail -n 60 "$out" >&2
  echo "rollout.sh: the benchmark failed (full output above)" >&2
  exit 1
fi
grep '^TARGET' "$out"
