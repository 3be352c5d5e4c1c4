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
# The fan-out uses every target in env.json (SLIPWAY_TARGETS=10
# test/scripts/services.sh up starts 10), or the first FANOUT_HOSTS of them;
# FANOUT_ONLY=1 skips the drop counts; ROLLOUT_LOG=FILE keeps the full output
# (per-host times and the timestamped log of the parallel run).
set -euo pipefail
cd "$(dirname "$0")/../.."
export SLIPWAY_ROLLOUT_BENCH=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! go test -count=1 -v -timeout 30m -run '^TestRolloutBench$' ./tools/internal/deploy/ >"$out" 2>&1; then
  [ -z "${ROLLOUT_LOG:-}" ] || cp "$out" "$ROLLOUT_LOG"
  tail -n 60 "$out" >&2
  echo "rollout.sh: the benchmark failed (full output above)" >&2
  exit 1
fi
[ -z "${ROLLOUT_LOG:-}" ] || cp "$out" "$ROLLOUT_LOG"
grep '^TARGET' "$out"
